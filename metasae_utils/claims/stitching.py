"""Verdicts on the paper's stitching claims, each beside its control (rules in :data:`.registry.CLAIMS`)."""

from __future__ import annotations

import math

from .registry import pct, row
from .seed import size_vs_seed_row  # noqa: F401  (the decisive verdict: claims.stitching.size_vs_seed_row)

#: above this self-duplicate share the single-insertion claims cannot be tested on a family
SELF_DUPLICATE_LIMIT = 0.5


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _dead_text(dead: dict | None) -> str:
    """' (live latents; dead: …)' from pair_numbers' ``dead_small`` / ``dead_large`` / ``twin_dead_small``."""
    if not dead or dead.get("dead_large") is None:
        return ""
    parts = [f"{dead['dead_large']} in the larger SAE"]
    if dead.get("dead_small") is not None:
        parts.append(f"{dead['dead_small']} in the smaller")
    if dead.get("twin_dead_small") is not None:
        parts.append(f"{dead['twin_dead_small']} in the twin")
    return " (live latents only; dead: " + ", ".join(parts) + ")"


def novel_fraction_row(novel_frac: float, twin_frac: float | None, dead: dict | None = None) -> dict:
    """``novel_frac``: the headline pair's novel fraction (live latents); ``twin_frac``: the share of the larger SAE's
    live latents novel against its seed twin (None when the family has no twins); ``dead``: pair_numbers' dead
    counts (``dead_small``, ``dead_large``, ``twin_dead_small``), shown beside the numbers."""
    in_range = 0.2 <= novel_frac <= 0.5
    if twin_frac is None:
        return row("novel_fraction", f"{100 * novel_frac:.1f} % (no seed twin to compare){_dead_text(dead)}",
                   "reproduced" if in_range else "not reproduced", novel_frac, ("seed twin (none trained)", None))
    margin = novel_frac - twin_frac
    text = f"{100 * novel_frac:.1f} % across sizes vs {100 * twin_frac:.1f} % between seed twins of one width"
    if margin < 0.05:
        text += ": no more novel than seed noise"
    return row("novel_fraction", text + _dead_text(dead), "reproduced" if in_range and margin >= 0.05
               else "not reproduced", novel_frac, ("seed twin: novel fraction at the same width", twin_frac))


def _novel_lowers_row(lowers: float, self_dup: float, twin_lowers: float | None) -> dict:
    """The ``novel_lowers`` row on a testable family: against the twin's novel latents, else the self-duplicates."""
    if _nan(lowers):
        return row("novel_lowers", "no novel latents in this pair", "untestable here", None,
                   ("seed twin: its novel latents that lower the MSE", twin_lowers))
    if twin_lowers is None or _nan(twin_lowers):
        ok = lowers > 0.5 and lowers >= self_dup + 0.1
        return row("novel_lowers", f"{pct(lowers)} of novel latents lower it (no seed twin; self-duplicates: "
                                   f"{pct(self_dup)})", "partly" if ok else "not reproduced", lowers,
                   ("self-duplicates that lower the MSE (no seed twin)", self_dup))
    ok = lowers > 0.5 and lowers >= twin_lowers + 0.1
    return row("novel_lowers", f"{pct(lowers)} of novel latents lower it; the seed twin's novel latents, inserted into "
                               f"the twin: {pct(twin_lowers)} (self-duplicates: {pct(self_dup)})",
               "reproduced" if ok else "not reproduced", lowers,
               ("seed twin: its novel latents that lower the MSE", twin_lowers))


def insertion_rows(shares: dict, self_dup: float, twin: dict | None = None) -> list[dict]:
    """``shares``: :func:`metasae_utils.stitching.insertion_shares` (live latents); ``self_dup``:
    :func:`metasae_utils.stitching.self_duplicate_control` of the smaller SAE; ``twin``: the same numbers between
    the twins (``pair_numbers(...)["twin"]``: ``novel_lowers``, ``recon_raises``), None without a twin."""
    lowers, raises, novel_raises = shares["novel_lowers"], shares["recon_raises"], shares["novel_raises"]
    twin = twin or {}
    t_lowers, t_raises = twin.get("novel_lowers"), twin.get("recon_raises")
    if self_dup > SELF_DUPLICATE_LIMIT:
        why = (f"untestable on this family: a copy of the smaller SAE's own latent lowers its MSE for "
               f"{100 * self_dup:.0f} % of its latents")
        return [row("novel_lowers", f"{why} ({pct(lowers)} of novel latents lower it; seed twin {pct(t_lowers)})",
                    "untestable here", lowers, ("seed twin: its novel latents that lower the MSE", t_lowers)),
                row("recon_raises", f"{why} ({pct(raises)} of reconstruction latents raise it)", "untestable here",
                    raises, ("novel latents that raise the MSE", novel_raises))]
    out = [_novel_lowers_row(lowers, self_dup, t_lowers)]
    if _nan(raises):
        out.append(row("recon_raises", "no reconstruction latents in this pair", "untestable here", None,
                       ("novel latents that raise the MSE", novel_raises)))
    else:
        ok = raises > 0.5 and (_nan(novel_raises) or raises >= novel_raises + 0.1)
        twin_text = "" if t_raises is None else f"; seed twin: {pct(t_raises)}"
        out.append(row("recon_raises", f"{pct(raises)} of reconstruction latents raise it (novel latents: "
                                       f"{pct(novel_raises)}{twin_text})", "reproduced" if ok else "not reproduced",
                       raises, ("novel latents that raise the MSE", novel_raises)))
    return out


def smooth_row(segments: dict | None, twin_segments: dict | None = None, mono: dict | None = None,
               mono_random: dict | None = None, overshoot: dict | None = None) -> dict:
    """``segments`` / ``twin_segments``: :func:`metasae_utils.stitching.walk_segments` of the least smooth pair's swap
    walk (removals last) and of the same walk between the larger SAE's seed twin and the larger SAE; ``mono`` /
    ``mono_random`` / ``overshoot``: the mixed greedy path's numbers, shown, not judged."""
    twin_share = None if not twin_segments else twin_segments["swap_lowers"]
    control = ("the same walk between seed twins", twin_share)
    if not segments or _nan(segments["swap_lowers"]):
        return row("smooth_swaps", "no swap steps to judge", "untestable here", None, control)
    share, sw, rm = segments["swap_lowers"], segments["swap"], segments["removal"]
    text = (f"{pct(share)} of {sw['steps']} swap steps lower the MSE (seed twins: {pct(twin_share)}); the "
            f"{rm['steps']} removals of unmatched latents, a segment of their own, change it by {rm['delta_mse']:+.3g}")
    if mono and mono_random:
        text += (f"; mixed greedy path: Spearman(step, MSE) {mono['spearman_step_vs_mse']:.3f} (random order "
                 f"{mono_random['spearman_step_vs_mse']:.3f})")
    if overshoot and overshoot["below"] > 0:
        text += (f"; the path dips {100 * overshoot['below']:.1f} % below the larger SAE's MSE at L0 "
                 f"{overshoot['l0']:.1f}")
    smooth = share >= 0.9
    above = twin_share is not None and not _nan(twin_share) and share >= twin_share + 0.1
    verdict = "reproduced" if smooth and above else "partly" if smooth or above else "not reproduced"
    return row("smooth_swaps", text, verdict, share, control)


def frankenstein_row(franken: dict) -> dict:
    """``franken``: the Frankenstein SAE's ``{"d_sae", "mse"}`` and ``"equal_width_mse"`` (the MSE of the narrowest
    trained SAE at least as wide, None when none is that wide)."""
    eq = franken.get("equal_width_mse")
    control = ("an equal-width trained SAE (MSE ratio 1)", 1.0)
    if eq is None:
        return row("frankenstein", f"{franken['d_sae']} latents: no trained SAE that wide to compare",
                   "untestable here", None, control)
    ratio = franken["mse"] / eq
    return row("frankenstein", f"{franken['d_sae']} latents, MSE {franken['mse']:.4g} vs {eq:.4g} for the narrowest "
                               f"trained SAE at least as wide (ratio {ratio:.3f})",
               "reproduced" if ratio < 1 else "not reproduced", ratio, control)


def delta_vs_cosine_row(q: dict, self_dup: float | None = None, twin_q: dict | None = None) -> dict:
    """``q``: :func:`metasae_utils.stitching.quadrant_shares` of the headline pair; ``self_dup``: the smaller SAE's
    :func:`metasae_utils.stitching.self_duplicate_control` (above :data:`!SELF_DUPLICATE_LIMIT` a lowered MSE says
    more about the smaller SAE than about the latent, as for the insertion rows); ``twin_q``: the same shares between
    the larger SAE's seed twin and the larger SAE (shown beside, not judged)."""
    control = ("cosine and ΔMSE independent (shuffled pairing)", q["chance"])
    if q["n"] == 0 or _nan(q["agreement"]):
        return row("delta_vs_cosine", "no firing latent in the larger SAE", "untestable here", None, control)
    agree, chance = q["agreement"], q["chance"]
    n_novel = q["novel, lowers"] + q["novel, raises"]
    if n_novel == 0 or n_novel == 1:
        return row("delta_vs_cosine", f"every firing latent is {'novel' if n_novel else 'a reconstruction latent'}: "
                                      "nothing for the cosine to separate", "untestable here", agree, control)
    if self_dup is not None and self_dup > SELF_DUPLICATE_LIMIT:
        return row("delta_vs_cosine", f"untestable on this family: a copy of the smaller SAE's own latent lowers its "
                                      f"MSE for {100 * self_dup:.0f} % of its latents ({pct(agree)} agree with the "
                                      f"0.7 line, chance {pct(chance)})", "untestable here", agree, control)
    text = (f"{pct(agree)} of firing latents agree with the 0.7 line (novel and lowering {pct(q['novel, lowers'])}, "
            f"reconstruction and raising {pct(q['reconstruction, raises'])}); chance {pct(chance)}; AUC of the "
            f"cosine for 'raises' {q['auc']:.2f}; the best single cut would be {q['best_threshold']:.2f} "
            f"({pct(q['best_agreement'])})")
    if twin_q and twin_q.get("n"):
        text += (f"; between seed twins {pct(twin_q['agreement'])} agree (chance {pct(twin_q['chance'])}, novel and "
                 f"lowering {pct(twin_q['novel, lowers'])})")
    margin = agree >= chance + 0.1
    verdict = "reproduced" if margin and agree >= 0.75 else "partly" if margin else "not reproduced"
    return row("delta_vs_cosine", text, verdict, agree, control)


def frankenstein_frontier_row(f: dict) -> dict:
    """``f``: the Frankenstein SAE's ``d_sae``, ``l0``, ``mse``; ``equal`` (the narrowest trained SAE at least as
    wide: ``width``, ``l0``, ``mse``; None when none is that wide) and ``frontier``
    (:func:`metasae_utils.stitching.frontier_at` at its L0)."""
    fr, eq = f["frontier"], f.get("equal")
    ratio = f["mse"] / fr["mse"] if fr["mse"] and not _nan(fr["mse"]) else None
    control = ("the trained family's (L0, MSE) frontier at the same L0" +
               (" (extrapolated: an upper bound)" if fr["extrapolated"] else ""), 1.0)
    if eq is None:
        return row("frankenstein_frontier", f"{f['d_sae']} latents: no trained SAE that wide to compare",
                   "untestable here", ratio, control)
    lower_mse, higher_l0 = f["mse"] < eq["mse"], f["l0"] > eq["l0"]
    text = (f"{f['d_sae']} latents at L0 {f['l0']:.1f}, MSE {f['mse']:.4g}; the {eq['width']}-latent SAE: L0 "
            f"{eq['l0']:.1f}, MSE {eq['mse']:.4g}; ")
    text += ("no frontier at this L0" if ratio is None else
             f"MSE / frontier at L0 {f['l0']:.1f}: {ratio:.3f}" + (" (beyond the trained SAEs' L0: an upper bound)"
                                                                     if fr["extrapolated"] else ""))
    both = lower_mse and higher_l0
    below = ratio is not None and ratio < 1 and not fr["extrapolated"]
    verdict = "reproduced" if both and below else "partly" if both else "not reproduced"
    return row("frankenstein_frontier", text, verdict, ratio, control)


def stitching_verdicts(novel_frac: float, twin_frac: float | None, shares: dict, self_dup: float, mono: dict | None,
                       mono_random: dict | None, overshoot: dict | None = None, franken: dict | None = None,
                       twin: dict | None = None, segments: dict | None = None, twin_segments: dict | None = None,
                       dead: dict | None = None) -> list[dict]:
    """Every stitching row, each with its control (see the row functions above).  ``twin``: the twin side of
    :func:`metasae_utils.stitching.pair_numbers` (``out["twin"]``); ``segments`` / ``twin_segments``: the swap walks'
    :func:`~metasae_utils.stitching.walk_segments` (default: ``twin["segments"]``); ``dead``: the dead counts."""
    if twin_segments is None and twin:
        twin_segments = twin.get("segments")
    out = [novel_fraction_row(novel_frac, twin_frac, dead), *insertion_rows(shares, self_dup, twin),
           smooth_row(segments, twin_segments, mono, mono_random, overshoot)]
    if franken is not None:
        out.append(frankenstein_row(franken))
    return out


def pair_verdicts(n: dict, franken: dict | None = None) -> list[dict]:
    """:func:`stitching_verdicts` straight from :func:`metasae_utils.stitching.pair_numbers` ``n`` (with paths)."""
    return stitching_verdicts(n["novel_fraction"], n["twin_novel_fraction"], n, n["self_duplicate"], n.get("mono"),
                              n.get("mono_random"), n.get("overshoot"), franken, twin=n.get("twin"),
                              segments=n.get("segments"), dead={**n, "twin_dead_small": n.get("twin_dead_small")})
