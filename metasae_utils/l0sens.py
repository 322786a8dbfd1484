"""L0 sensitivity: do the paper's stitching and meta-SAE conclusions move with the SAEs' sparsity?

One pair of widths (``l0_widths``) is trained at several target L0s (``l0_targets``, plus the family's own
``target_l0``); at each, :func:`l0_row` turns the stitching numbers of the pair (with the larger SAE's seed twin at
that L0) and a meta-SAE's variance explained into a verdict-style row ``{"id": "l0_sensitivity", "l0_target", ...}``;
:func:`reading` says in words whether the conclusions change across targets.

The rule (:data:`RULE`, declared in :mod:`!metasae_utils.claims.registry` as ``l0_sensitivity``; first written here
before any number it judged existed): at one target L0 the paper's
conclusions *hold* when all of

* novelty beyond seed noise: the novel fraction (larger SAE's live latents with no decoder cosine > 0.7 in the
  smaller) exceeds the same fraction against the larger SAE's seed twin by ≥ :data:`MARGIN` (5 points: the
  ``novel_fraction`` claim's control margin);
* novel latents add information: ≥ 50 % of the novel latents lower the smaller SAE's MSE when inserted alone;
* meta-latents compose: the meta-SAE explains more of the (live) decoder rows' variance than a meta-SAE of the
  same shape explains of random rows, by ≥ :data:`MARGIN`.

Verdict: "reproduced" when all three hold, "partly" when one or two do, "not reproduced" when none does,
"untestable here" without a seed twin at that L0.
"""

from __future__ import annotations

import math

from .claims.registry import CLAIMS, row

#: margin (fraction) of the novelty-vs-twin and meta-vs-random checks
MARGIN = 0.05
#: share of novel latents that must lower the MSE
MOST = 0.5
#: the rule that judges one target L0 (the claim ``l0_sensitivity`` of the claims registry)
RULE = CLAIMS["l0_sensitivity"].rule
#: the checks in the order of the rule, as (key in the row, words) pairs
CHECKS = (("novel_beyond_twin", "novelty beyond the seed twin"), ("novel_lower_mse", "novel latents lower the MSE"),
          ("meta_beyond_random", "meta-SAE beats random rows"))
NUMBER_KEYS = ("novel_fraction", "twin_novel_fraction", "novel_lowers", "twin_novel_lowers", "recon_raises",
               "twin_recon_raises", "self_duplicate", "dead_small", "dead_large")


def _ok(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def checks(numbers: dict, meta_ve: float | None, random_ve: float | None) -> dict:
    """The three checks of :data:`RULE` on one target's numbers (``numbers``:
    :func:`metasae_utils.stitching.pair_numbers` output, fractions in 0..1; ``meta_ve`` / ``random_ve``: variance
    explained, 0..1): a dict
    ``{check key: True / False / None}`` (None: not measurable)."""
    nf, tnf, nl = (numbers.get(k) for k in ("novel_fraction", "twin_novel_fraction", "novel_lowers"))
    return {"novel_beyond_twin": (nf - tnf >= MARGIN) if _ok(nf) and _ok(tnf) else None,
            "novel_lower_mse": (nl >= MOST) if _ok(nl) else None,
            "meta_beyond_random": (meta_ve - random_ve >= MARGIN) if _ok(meta_ve) and _ok(random_ve) else None}


def verdict(result: dict) -> str:
    """The verdict of :data:`RULE` from :func:`checks`' output."""
    if result.get("novel_beyond_twin") is None:
        return "untestable here"
    held = sum(bool(v) for v in result.values())
    return "reproduced" if held == len(CHECKS) else "partly" if held else "not reproduced"


def l0_row(l0_target: float, pair: str, numbers: dict, meta_ve: float | None, random_ve: float | None,
           l0_small: float | None = None, l0_large: float | None = None, twin: str | None = None) -> dict:
    """One verdict-style row ``{"id": "l0_sensitivity", "l0_target", "pair", the stitching numbers of
    :data:`NUMBER_KEYS`, "meta_variance_explained", "random_variance_explained", the checks, "verdict", "ours",
    "rule"}``; ``l0_small`` / ``l0_large``: the SAEs' measured L0 on held-out activations."""
    got = checks(numbers, meta_ve, random_ve)
    v = verdict(got)
    pct = lambda x: "n/a" if not _ok(x) else f"{100 * x:.1f} %"
    ours = (f"L0 {l0_target:g}: novel {pct(numbers.get('novel_fraction'))} vs twin "
            f"{pct(numbers.get('twin_novel_fraction'))}; novel lowering MSE {pct(numbers.get('novel_lowers'))}; "
            f"meta-SAE variance explained {pct(meta_ve)} vs random {pct(random_ve)}")
    return {"id": "l0_sensitivity", "l0_target": float(l0_target), "pair": pair, "twin": twin,
            "l0_small": l0_small, "l0_large": l0_large, **{k: numbers.get(k) for k in NUMBER_KEYS},
            "meta_variance_explained": meta_ve, "random_variance_explained": random_ve, **got,
            "verdict": v, "ours": ours, "value": numbers.get("novel_fraction"),
            "control": {"name": "seed twin at this L0", "value": numbers.get("twin_novel_fraction")}, "rule": RULE}


def reading(rows: list[dict]) -> str:
    """A paragraph (markdown) on whether the conclusions move with L0: the verdict per target, which checks change,
    and the range of the novelty margin over the seed twin."""
    if not rows:
        return "No L0 variants were trained on this preset (`l0_targets`), so L0 sensitivity is not measured."
    rows = sorted(rows, key=lambda r: r["l0_target"])
    per = "; ".join(f"L0 {r['l0_target']:g}: *{r['verdict']}*" for r in rows)
    moved = [words for key, words in CHECKS if len({r.get(key) for r in rows if r.get(key) is not None}) > 1]
    margins = [r["novel_fraction"] - r["twin_novel_fraction"] for r in rows
               if _ok(r.get("novel_fraction")) and _ok(r.get("twin_novel_fraction"))]
    targets = ", ".join(f"{r['l0_target']:g}" for r in rows)
    text = f"Across target L0 {targets} on {rows[0]['pair']}: {per}. "
    if margins:
        text += (f"The novel fraction exceeds the seed twin's by {100 * min(margins):.1f} to {100 * max(margins):.1f} "
                 "points. ")
    lowers = [(r["novel_lowers"], r["twin_novel_lowers"]) for r in rows
              if _ok(r.get("novel_lowers")) and _ok(r.get("twin_novel_lowers"))]
    if lowers:
        gaps = [a - b for a, b in lowers]
        text += (f"Novel latents lower the smaller SAE's MSE for {100 * min(a for a, _ in lowers):.1f}–"
                 f"{100 * max(a for a, _ in lowers):.1f} % of them, the seed twin's novel latents for "
                 f"{100 * min(b for _, b in lowers):.1f}–{100 * max(b for _, b in lowers):.1f} % (difference "
                 f"{100 * min(gaps):+.1f} to {100 * max(gaps):+.1f} points): check 2 has no twin margin, so it shows "
                 "that novel latents add information, not that size adds more of it than a new seed does "
                 "(`size_vs_seed` in the stitching chapter asks that). ")
    meta = [(r["meta_variance_explained"], r["random_variance_explained"]) for r in rows
            if _ok(r.get("meta_variance_explained")) and _ok(r.get("random_variance_explained"))]
    if meta:
        text += (f"The meta-SAE explains {100 * min(m for m, _ in meta):.1f}–{100 * max(m for m, _ in meta):.1f} % of "
                 f"the larger SAE's decoder variance (random rows: {100 * min(r for _, r in meta):.1f}–"
                 f"{100 * max(r for _, r in meta):.1f} %). ")
    if len({r["verdict"] for r in rows}) == 1 and not moved:
        text += "The paper's conclusions do **not** move with L0 over this range: every check gives the same answer."
    else:
        text += ("The conclusions **move** with L0: " + (", ".join(moved) if moved else "the verdict") +
                 " change" + ("s" if len(moved) == 1 else "") + " between targets.")
    return text


def pair_at(members: list, twins: dict, variants: list, widths, l0_target: float, family_l0: float | None):
    """The (small, large, twin) Members of ``widths`` (two widths) at ``l0_target``: the family and its seed twins
    (``twins``: {width: Member}) at ``family_l0``, else the L0 variants ``standard-<w>-l0<L0>`` and
    ``standard-<w>-l0<L0>-twin``; None for any not trained."""
    if len(widths or ()) != 2:
        return None, None, None
    w0, w1 = (int(w) for w in widths)
    if family_l0 is not None and float(l0_target) == float(family_l0):
        by_width = {m.width: m for m in members}
        return by_width.get(w0), by_width.get(w1), twins.get(w1)
    by_name = {m.name: m for m in variants}
    name = lambda w: f"standard-{w}-l0{l0_target:g}"
    return by_name.get(name(w0)), by_name.get(name(w1)), by_name.get(name(w1) + "-twin")


def measure(cfg, small, large, twin, activations, l0_target: float) -> dict:
    """:func:`l0_row` of one target: :func:`metasae_utils.stitching.pair_numbers` of ``small`` → ``large`` (Members)
    with ``twin`` on held-out ``activations`` (n, d_in), and a meta-SAE at ``cfg.meta_fraction`` of ``large``'s width
    (k = ``cfg.meta_k``, ``cfg.meta_steps`` steps, cached) on its live decoder rows, against one of the same shape
    on random rows (chapter 4's control)."""
    from . import meta
    from .evaluate import reconstruction_metrics
    from .stitching import pair_numbers
    nums = pair_numbers(small.sae, large.sae, activations, twin=getattr(twin, "sae", None), seed=cfg.seed,
                        paths=False)
    rows = meta.live_decoder(large.sae, activations)[0]
    d_meta = max(1, round(cfg.meta_fraction * large.width))
    train = dict(steps=cfg.meta_steps, batch_size=cfg.meta_batch_size, lr=cfg.meta_lr,
                 seed=cfg.seed, progress=False)
    m = meta.cached_meta_sae({"base": str(large.path or large.name), "dead_removed": 1e-5}, rows, d_meta, cfg.meta_k,
                             **train)
    rand = meta.random_rows(*rows.shape, seed=cfg.seed)
    r = meta.cached_meta_sae({"random_rows": list(rows.shape), "seed": cfg.seed}, rand, d_meta, cfg.meta_k, **train)
    return l0_row(l0_target, f"{small.width}→{large.width}", nums, meta.meta_metrics(m, rows)["variance_explained"],
                  meta.meta_metrics(r, rand)["variance_explained"],
                  l0_small=reconstruction_metrics(small.sae, activations)["l0"],
                  l0_large=reconstruction_metrics(large.sae, activations)["l0"], twin=getattr(twin, "name", None))


def rows(cfg, members: list, twins: dict, variants: list, activations) -> list[dict]:
    """:func:`measure` at every target L0 of ``cfg.l0_targets`` and the family's ``cfg.target_l0`` (ascending) on
    the pair ``cfg.l0_widths``, skipping targets whose pair was not trained; [] when none was."""
    targets = sorted({float(t) for t in cfg.l0_targets or ()} | ({float(cfg.target_l0)} if cfg.target_l0 else set()))
    out = []
    for t in targets:
        small, large, twin = pair_at(members, twins, variants, cfg.l0_widths, t, cfg.target_l0)
        if small is not None and large is not None:
            out.append(measure(cfg, small, large, twin, activations, t))
    return out


def summary_row(rows: list[dict]) -> dict:
    """The one ``l0_sensitivity`` verdict row of the closing chapter over the per-target ``rows`` (:func:`l0_row`):
    reproduced when every testable target is, not reproduced when none is, partly otherwise; value: the smallest
    novelty margin over the seed twin."""
    testable = [r for r in rows if r["verdict"] != "untestable here"]
    margins = [r["novel_fraction"] - r["twin_novel_fraction"] for r in testable]
    ours = "; ".join(f"L0 {r['l0_target']:g}: {r['verdict']}" for r in sorted(rows, key=lambda r: r["l0_target"]))
    if margins:
        ours += f" (novel fraction above the seed twin's by {100 * min(margins):.1f}–{100 * max(margins):.1f} points)"
    if not testable:
        verdict = "untestable here"
    elif all(r["verdict"] == "reproduced" for r in testable):
        verdict = "reproduced"
    elif all(r["verdict"] == "not reproduced" for r in testable):
        verdict = "not reproduced"
    else:
        verdict = "partly"
    return row("l0_sensitivity", ours or "no L0 variants trained", verdict, min(margins) if margins else None,
               ("the seed twins at each L0: no margin", 0.0))
