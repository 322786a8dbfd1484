"""Results files: every chapter records its verdicts on the paper's claims; the closing chapter tabulates them.

A chapter calls :func:`record` with rows from the verdict functions of :mod:`metasae_utils.claims` (one per
claim, from the registry ``CLAIMS`` so that the claim's wording and the paper's number are written once).  Rows go to
``results/<preset>/<chapter>.partial.json`` and become ``results/<preset>/<chapter>.json`` only when the
chapter finishes (:func:`finalize`, called by ``book.provenance``): a chapter that fails half-way never replaces
the last complete results.  Each recorded cell also gets an HTML anchor ``claim-<id>`` so the closing chapter
can link to the cell that computed the number.

The closing chapter reads every preset's files with :func:`load` and builds the table with :func:`table`;
nothing in it is typed by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .artifacts import REPO
from .claims import CLAIMS, UNDECIDED

#: where results files live: results/<preset>/<chapter>.json (override with $METASAE_RESULTS).
RESULTS = Path(os.environ.get("METASAE_RESULTS", REPO / "results"))

#: the chapter being run: set by :func:`begin` (``book.configure`` calls it), read by :func:`record`.
_CURRENT: dict = {}


def _paths(preset: str, chapter: str) -> tuple[Path, Path]:
    folder = RESULTS / preset
    return folder / f"{chapter}.partial.json", folder / f"{chapter}.json"


def record(rows: list[dict]) -> None:
    """Add ``rows`` (from :func:`metasae_utils.claims.row`) to the running chapter's partial results file and
    display one invisible anchor per row (``claim-<id>``), so that the closing chapter can link to this cell."""
    from IPython.display import HTML, display

    if "chapter" not in _CURRENT:
        raise RuntimeError("book.configure(...) must run before report.record()")
    partial, _ = _paths(_CURRENT["preset"], _CURRENT["chapter"])
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = json.loads(partial.read_text()) if partial.exists() else {"chapter": _CURRENT["chapter"], "rows": []}
    ids = {r["id"] for r in rows}
    page = _CURRENT["page"]
    have["rows"] = [r for r in have["rows"] if r["id"] not in ids] + [{**r, "page": page} for r in rows]
    partial.write_text(json.dumps(have, indent=1))
    display(HTML("".join(f'<span id="claim-{r["id"]}"></span>' for r in rows)))


def record_table(name: str, rows: list[dict]) -> None:
    """A table of measurements (not verdicts), e.g. ``sae_families``: written as ``results/<preset>/<name>.json``
    (``{"kind": "table", "rows": [...]}``) when the running chapter finishes, like its verdicts."""
    if "chapter" not in _CURRENT:
        raise RuntimeError("book.configure(...) must run before report.record_table()")
    partial, _ = _paths(_CURRENT["preset"], name)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps({"kind": "table", "chapter": _CURRENT["chapter"], "rows": rows}, indent=1,
                                  default=float))
    _CURRENT.setdefault("tables", []).append(name)


def record_data(name: str, data: dict) -> None:
    """A results file of another shape than rows, e.g. ``canonicality_map`` (``{"saes", "matched", ...}``):
    written as ``results/<preset>/<name>.json`` (``data`` plus ``"kind": "data"`` and the chapter) when the running
    chapter finishes, like its tables; :func:`load` skips it (it holds no verdicts)."""
    if "chapter" not in _CURRENT:
        raise RuntimeError("book.configure(...) must run before report.record_data()")
    partial, _ = _paths(_CURRENT["preset"], name)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps({"kind": "data", "chapter": _CURRENT["chapter"], **data}, indent=1, default=float))
    _CURRENT.setdefault("tables", []).append(name)


def begin(preset: str, chapter: str, page: str | None = None) -> None:
    """Start a chapter's results afresh (drops a partial file left by a failed run); ``page`` is the book page
    (notebook stem) that its anchors live on, the chapter name by default."""
    _CURRENT.clear()
    _CURRENT.update(preset=preset, chapter=chapter, page=page or chapter)
    partial, _ = _paths(preset, chapter)
    partial.unlink(missing_ok=True)


def finalize(preset: str, chapter: str, provenance: dict) -> Path | None:
    """Make the chapter's partial results final (atomic rename), stamped with its provenance record."""
    for table in _CURRENT.get("tables", []) if _CURRENT.get("chapter") == chapter else []:
        _finalize_file(*_paths(preset, table), preset, provenance)
    return _finalize_file(*_paths(preset, chapter), preset, provenance)


def _finalize_file(partial: Path, final: Path, preset: str, provenance: dict) -> Path | None:
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
        if data.get("kind") in ("table", "data"):
            continue
        for r in data.get("rows", []):
            out.setdefault(path.parent.name, {})[r["id"]] = {**r, "commit": data.get("git_commit")}
    return out


def overall(verdicts: list[str]) -> str:
    """One verdict across presets: the shared verdict if all presets that decided agree, else 'partly' (undecided,
    underpowered, untestable and qualitative rows decide nothing)."""
    testable = [v for v in verdicts if v not in UNDECIDED]
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
    for cid, c in CLAIMS.items():
        r = {"id": cid, "section": c.section, "claim": c.wording, "paper": c.paper, "rule": c.rule, "per_preset": {}}
        for p in presets:
            got = results.get(p, {}).get(cid)
            if got is None:
                continue
            link = f"{got['page']}.html#claim-{cid}" if p == link_preset else None
            r["per_preset"][p] = {"ours": got["ours"], "verdict": got["verdict"], "link": link,
                                  "value": got.get("value"), "control": got.get("control")}
        r["overall"] = overall([v["verdict"] for v in r["per_preset"].values()]) if r["per_preset"] \
            else "not measured"
        rows.append(r)
    return rows


#: committed benchmark results: bench/results/<device>-<preset>.json, written by ``bench/run.py``.
BENCH_RESULTS = REPO / "bench" / "results"


def load_bench(preset: str | None = None, root: Path | None = None) -> list[dict]:
    """The committed bench results for ``preset`` (all of them if none is for that preset).  Each dict has
    ``device``, ``preset``, ``date``, ``rows``, ..."""
    found = [json.loads(p.read_text()) for p in sorted(Path(root or BENCH_RESULTS).glob("*.json"))]
    return [r for r in found if r["preset"] == preset] or found


def load_table(preset: str, name: str, root: Path | None = None) -> list[dict]:
    """The rows of ``results/<preset>/<name>.json`` written by :func:`record_table` ([] when absent)."""
    path = Path(root or RESULTS) / preset / f"{name}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []
