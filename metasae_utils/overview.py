"""The book's first screen: what reproduces, what does not, and why, generated from the result rows.

The paper's claims are counted apart from the checks this book adds beyond the paper (:data:`BEYOND_PAPER`
sections), on the book's own preset only: ``ci`` is a smoke test (a few thousand tokens, tiny SAEs) whose verdicts
the grid shows but no total counts.  :func:`totals_sentence` is the one sentence that the intro and the closing
chapter both print, so they cannot disagree; :func:`first_screen` is the intro's opening paragraph.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

#: sections of the claim registry that are checks beyond the paper (not claims of the paper).
BEYOND_PAPER = ("Ground truth", "Architectures", "Sparsity (L0)", "Feature absorption")

#: the paper's headline numbers (a share, a ratio, a frontier); its other claims are mechanisms (a sign, an ordering).
HEADLINES = ("novel_fraction", "size_vs_seed", "meta_variance", "smooth_swaps", "frankenstein", "frankenstein_frontier", "meta_ratio_paper",
             "edge_overlap", "meta_resemble_smaller", "meta_most_shared")

#: short names of claims for the first screen (the full wording is in the grid below it).
SHORT = {"novel_fraction": "≈ 35 % novel latents", "size_vs_seed": "novel latents beyond a seed twin's", "novel_lowers": "novel latents lower the MSE when inserted",
         "recon_raises": "reconstruction latents raise it", "smooth_swaps": "a smooth, monotone swap path",
         "frankenstein": "the Frankenstein SAE beating equal widths", "delta_vs_cosine": "the 0.7 cosine line "
         "separating the two", "frankenstein_frontier": "the Frankenstein SAE below the family's frontier",
         "meta_sparse": "meta-SAEs decomposing latents into a few meta-latents", "meta_variance": "≈ 55 % of decoder "
         "variance explained", "meta_most_shared": "the most shared meta-latent on ≈ 2 % of latents",
         "meta_resemble_smaller": "meta-latents resembling smaller-SAE latents", "split_gains": "split latents "
         "gaining meta-latents", "meta_ratio_paper": "the paper's meta-SAE ratio", "edge_overlap": "28.9 % of "
         "graph edges shared", "targeted_edit": "targeted edits with meta-latents",
         "smaller_use_fewer": "smaller SAEs using fewer meta-latents"}

#: presets that run the paper's own models and SAEs (need a GPU and the Hugging Face hub).
PAPER_PRESETS = ("gpt2-paper", "gemma-scope")

#: presets whose verdicts no total counts, and why.
NOT_COUNTED = {"ci": "a smoke test of the code on a few thousand tokens"}

_ORDER = ("reproduced", "partly", "not reproduced", "undecided at this budget", "underpowered", "untestable here",
          "qualitative", "not measured")


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(claims of the paper, checks beyond the paper) among ``report.table`` rows."""
    return ([r for r in rows if r["section"] not in BEYOND_PAPER], [r for r in rows if r["section"] in BEYOND_PAPER])


def totals(rows: list[dict], preset: str) -> dict[str, Counter]:
    """Verdict counts on ``preset``: ``{"paper": Counter, "beyond": Counter}`` (claims not run there: "not measured")."""
    paper, beyond = split(rows)
    count = lambda rs: Counter(r["per_preset"][preset]["verdict"] if preset in r["per_preset"] else "not measured"
                               for r in rs)
    return {"paper": count(paper), "beyond": count(beyond)}


def _counts(c: Counter) -> str:
    order = list(_ORDER) + sorted(v for v in c if v not in _ORDER)
    parts = [f"{c[v]} {'do not reproduce' if v == 'not reproduced' else v}" for v in order if c.get(v)]
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else "none"


def totals_sentence(rows: list[dict], preset: str) -> str:
    """"Of the paper's 17 claims, on `offline` 6 reproduced, ...; of 5 checks beyond the paper, ...": the totals that
    the intro and the closing chapter both show."""
    t = totals(rows, preset)
    n_paper, n_beyond = sum(t["paper"].values()), sum(t["beyond"].values())
    text = f"Of the paper's {n_paper} claims, on `{preset}`: {_counts(t['paper'])}"
    if n_beyond:
        text += f"; of {n_beyond} checks beyond the paper: {_counts(t['beyond'])}"
    skipped = [f"`{p}` ({why})" for p, why in NOT_COUNTED.items()
               if p != preset and any(p in r["per_preset"] for r in rows)]
    if skipped:
        text += ". Not counted: " + ", ".join(skipped)
    return text + "."


def _names(rows: list[dict], limit: int = 5) -> str:
    names = [SHORT.get(r["id"], r["claim"]) for r in rows[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 and not more else ", ".join(names)) + more


def scale(preset: str, root: Path | None = None) -> str:
    """The scale of ``preset`` in words, from its YAML file ("" when there is none)."""
    import yaml

    from .artifacts import REPO
    path = Path(root or REPO / "presets") / f"{preset}.yaml"
    if not path.is_file():
        return ""
    cfg = yaml.safe_load(path.read_text()) or {}
    widths = cfg.get("widths") or []
    text = cfg.get("description", preset).split(",")[0]
    if widths:
        text += f", SAEs of {min(widths):,}–{max(widths):,} latents"
    if cfg.get("n_train_tokens"):
        seen = cfg["n_train_tokens"] * float(cfg.get("train_epochs", 1))
        text += f" trained on {cfg['n_train_tokens'] / 1e3:,.0f} k tokens, {seen / 1e6:.1f} M seen over the epochs"
    return text


def first_screen(rows: list[dict], preset: str, root: Path | None = None) -> str:
    """The intro's opening paragraph (markdown-free text): mechanisms that reproduce, headline numbers that do not,
    the seed control, the scale of this setup, and the totals."""
    paper, _ = split(rows)
    on = [r for r in paper if preset in r["per_preset"]]
    if not on:
        return f"No chapter has recorded results on `{preset}` yet."
    verdict = lambda r: r["per_preset"][preset]["verdict"]
    mech_yes = [r for r in on if r["id"] not in HEADLINES and verdict(r) == "reproduced"]
    head_no = [r for r in on if r["id"] in HEADLINES and verdict(r) in ("not reproduced", "partly")]
    text = []
    if mech_yes:
        text.append(f"What reproduces on `{preset}` are mostly the paper's mechanisms: {_names(mech_yes)}.")
    head_yes = [r for r in on if r["id"] in HEADLINES and verdict(r) == "reproduced"]
    if head_no:
        text.append(f"What does not are most of its headline numbers: {_names(head_no)}"
                    + (f" (those that do: {_names(head_yes)})." if head_yes else "."))
    seed = next((r for name in ("size_vs_seed", "novel_fraction") for r in on if r["id"] == name), None)
    if seed is not None:
        text.append(f"The seed control is the reason to doubt a novel share here: {seed['per_preset'][preset]['ours']}"
                    " (two SAEs that differ only in their seed already disagree on many latents).")
    where = scale(preset, root)
    if where:
        text.append(f"This is a small setup ({where}), far from the paper's GPT-2 small with SAEs of up to 98,304 "
                    "latents trained on OpenWebText.")
    missing = [p for p in PAPER_PRESETS if not any(p in r["per_preset"] for r in rows)]
    if missing:
        text.append(f"The paper's own setups ({', '.join(f'`{p}`' for p in missing)}) need a GPU and the Hugging "
                    "Face hub and have not been run for this book.")
    return " ".join(text + [totals_sentence(rows, preset)])
