"""Results files: every chapter records its verdicts on the paper's claims; the closing chapter tabulates them.

A chapter calls :func:`record` with rows built by :func:`row` (one per claim, from the registry ``CLAIMS`` so
that the claim's wording and the paper's number are written once).  Rows go to
``results/<preset>/<chapter>.partial.json`` and become ``results/<preset>/<chapter>.json`` only when the
chapter finishes (:func:`finalize`, called by ``book.provenance``): a chapter that fails half-way never replaces
the last complete results.  Each recorded cell also gets an HTML anchor ``claim-<id>`` so the closing chapter
can link to the cell that computed the number.

The closing chapter reads every preset's files with :func:`load` and builds the table with :func:`table`;
nothing in it is typed by hand.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .artifacts import REPO

#: where results files live: results/<preset>/<chapter>.json (override with $METASAE_RESULTS).
RESULTS = Path(os.environ.get("METASAE_RESULTS", REPO / "results"))

VERDICTS = ("reproduced", "partly", "not reproduced", "untestable here", "qualitative")

#: id -> (section, claim, the paper's number or statement).  Order = the closing chapter's table order.
CLAIMS = {
    "novel_fraction": ("Stitching", "about 35 % of a larger SAE's latents are novel (max decoder cosine ≤ 0.7)",
                       "≈ 35 % novel, ≈ 65 % reconstruction"),
    "novel_lowers": ("Stitching", "inserting a novel latent into the smaller SAE lowers the MSE",
                     "yes, for most novel latents"),
    "recon_raises": ("Stitching", "inserting a reconstruction latent into the smaller SAE raises the MSE",
                     "yes, for most reconstruction latents"),
    "smooth_swaps": ("Stitching", "swapping matched groups interpolates smoothly between the two SAEs",
                     "monotonically decreasing MSE along the path"),
    "frankenstein": ("Stitching", "a 'Frankenstein' SAE stitched from several sizes beats trained SAEs of equal "
                                  "width on MSE", "lower MSE than equal-width SAEs (at higher L0)"),
    "meta_sparse": ("Meta-SAEs", "a k = 4 meta-SAE decomposes each latent into a few meta-latents",
                    "≈ 4 meta-latents per latent (k = 4)"),
    "meta_interpretable": ("Meta-SAEs", "decompositions are interpretable ('Einstein' → science, prominent "
                                        "figures, German, …)", "qualitative examples"),
    "meta_variance": ("Meta-SAEs", "a k = 4 meta-SAE at ¼ width explains a large share of decoder variance",
                      "≈ 55 % (BatchTopK base SAE; Matryoshka paper App. D.1)"),
    "meta_most_shared": ("Meta-SAEs", "meta-latents are specific: the most shared one is used by few latents",
                         "the most frequent meta-latent fires on 2 % of latents"),
    "meta_resemble_smaller": ("Meta-SAEs", "meta-latents resemble latents of smaller SAEs",
                              "many have a cosine > 0.7 match in a smaller SAE"),
    "smaller_use_fewer": ("Meta-SAEs", "latents of smaller SAEs use fewer meta-latents (one meta-SAE over all "
                                       "sizes)", "yes"),
    "split_gains": ("Meta-SAEs", "a latent that splits in the next size gains meta-latents", "yes"),
    "truth_novel": ("Ground truth", "novel latents are new true features or children of features the smaller "
                                    "SAE merged", "the paper's reading (not testable on real data)"),
    "truth_reconstruction": ("Ground truth", "reconstruction latents are the same true feature or a split of it",
                             "the paper's reading (not testable on real data)"),
    "truth_meta_parents": ("Ground truth", "meta-latents capture shared parent directions, used by their "
                                           "children's latents", "the paper's reading (not testable on real data)"),
    "matryoshka_meta": ("Architectures", "a Matryoshka SAE's decoder is less compositional: a meta-SAE explains "
                                         "less of it than of a BatchTopK SAE's",
                        "≈ 42 % vs ≈ 55 % (Matryoshka paper App. D.1)"),
    "novel_across_arch": ("Architectures", "inserting novel latents lowers the MSE for every stitchable "
                                           "architecture at matched L0", "(the paper: standard SAEs only)"),
}


def row(claim_id: str, ours: str, verdict: str, value: float | None = None) -> dict:
    """One verdict row for ``claim_id`` (a key of ``CLAIMS``): the claim and the paper's number from the
    registry, ``ours`` (text), ``verdict`` (one of ``VERDICTS``) and the number behind it (``value``)."""
    if claim_id not in CLAIMS:
        raise ValueError(f"claim id {claim_id!r} is not registered; known: {', '.join(CLAIMS)}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
    section, claim, paper = CLAIMS[claim_id]
    if value is not None:
        value = float(value)
        value = None if math.isnan(value) else value
    return {"id": claim_id, "section": section, "claim": claim, "paper": paper, "ours": ours, "verdict": verdict,
            "value": value}


def share_verdict(x: float, good: float = 0.8, partly: float = 0.5) -> str:
    """'reproduced' when a share is >= ``good``, 'partly' when >= ``partly``, else 'not reproduced';
    'untestable here' for NaN (nothing to measure)."""
    if x is None or math.isnan(x):
        return "untestable here"
    return "reproduced" if x >= good else "partly" if x >= partly else "not reproduced"


def _paths(preset: str, chapter: str) -> tuple[Path, Path]:
    folder = RESULTS / preset
    return folder / f"{chapter}.partial.json", folder / f"{chapter}.json"


def record(rows: list[dict]) -> None:
    """Add ``rows`` (from :func:`row`) to the running chapter's partial results file and display one invisible
    anchor per row (``claim-<id>``), so that the closing chapter can link to this cell."""
    from IPython.display import HTML, display

    from .book import _STATE
    if "chapter" not in _STATE:
        raise RuntimeError("book.configure(...) must run before report.record()")
    partial, _ = _paths(_STATE["preset"], _STATE["chapter"])
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = json.loads(partial.read_text()) if partial.exists() else {"chapter": _STATE["chapter"], "rows": []}
    ids = {r["id"] for r in rows}
    page = _STATE.get("page", _STATE["chapter"])
    have["rows"] = [r for r in have["rows"] if r["id"] not in ids] + [{**r, "page": page} for r in rows]
    partial.write_text(json.dumps(have, indent=1))
    display(HTML("".join(f'<span id="claim-{r["id"]}"></span>' for r in rows)))


def begin(preset: str, chapter: str) -> None:
    """Start a chapter's results afresh (drops a partial file left by a failed run)."""
    partial, _ = _paths(preset, chapter)
    partial.unlink(missing_ok=True)


def finalize(preset: str, chapter: str, provenance: dict) -> Path | None:
    """Make the chapter's partial results final (atomic rename), stamped with its provenance record."""
    partial, final = _paths(preset, chapter)
    if not partial.exists():
        return None
    data = json.loads(partial.read_text())
    data.update(preset=preset, git_commit=provenance.get("git_commit"), overrides=provenance.get("overrides"))
    tmp = final.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(final)
    partial.unlink()
    return final


def load(root: Path | None = None) -> dict[str, dict[str, dict]]:
    """Every finished results file: ``{preset: {claim id: row}}`` (partial files ignored)."""
    root = Path(root or RESULTS)
    out: dict[str, dict[str, dict]] = {}
    for path in sorted(root.glob("*/*.json")):
        if path.name.endswith(".partial.json"):
            continue
        data = json.loads(path.read_text())
        for r in data.get("rows", []):
            out.setdefault(path.parent.name, {})[r["id"]] = {**r, "commit": data.get("git_commit")}
    return out


def overall(verdicts: list[str]) -> str:
    """One verdict across presets: the shared verdict if all testable presets agree, else 'partly'."""
    testable = [v for v in verdicts if v not in ("untestable here", "qualitative")]
    if not testable:
        return verdicts[0] if verdicts else "untestable here"
    if all(v == "reproduced" for v in testable):
        return "reproduced"
    if all(v == "not reproduced" for v in testable):
        return "not reproduced"
    return "partly"


def table(results: dict[str, dict[str, dict]], presets: list[str] | None = None, link_preset: str | None = None) -> list[dict]:
    """Rows of the closing chapter, in ``CLAIMS`` order: section, claim, paper, then per preset ``ours`` and
    ``verdict`` (and ``link``: ``<page>.html#claim-<id>`` for ``link_preset``, whose pages this book holds),
    and ``overall`` (:func:`overall`).  Claims no preset recorded are listed as 'not measured'."""
    presets = presets or sorted(results)
    rows = []
    for cid, (section, claim, paper) in CLAIMS.items():
        r = {"id": cid, "section": section, "claim": claim, "paper": paper, "per_preset": {}}
        for p in presets:
            got = results.get(p, {}).get(cid)
            if got is None:
                continue
            link = f"{got['page']}.html#claim-{cid}" if p == link_preset else None
            r["per_preset"][p] = {"ours": got["ours"], "verdict": got["verdict"], "link": link}
        r["overall"] = overall([v["verdict"] for v in r["per_preset"].values()]) if r["per_preset"] \
            else "not measured"
        rows.append(r)
    return rows
