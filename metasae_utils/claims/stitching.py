"""Verdicts on the paper's stitching claims, each beside its control (rules in :data:`.registry.CLAIMS`)."""

from __future__ import annotations

import math

from .registry import pct, row

#: above this self-duplicate share the single-insertion claims cannot be tested on a family
SELF_DUPLICATE_LIMIT = 0.5


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def novel_fraction_row(novel_frac: float, twin_frac: float | None) -> dict:
    """``novel_frac``: the headline pair's novel fraction; ``twin_frac``: the novel fraction between the larger
    SAE and its seed twin (None when the family has no twins)."""
    in_range = 0.2 <= novel_frac <= 0.5
    if twin_frac is None:
        return row("novel_fraction", f"{100 * novel_frac:.1f} % (no seed twin to compare)",
                   "reproduced" if in_range else "not reproduced", novel_frac, ("seed twin (none trained)", None))
    margin = novel_frac - twin_frac
    text = f"{100 * novel_frac:.1f} % across sizes vs {100 * twin_frac:.1f} % between seed twins of one width"
    if margin < 0.05:
        text += ": no more novel than seed noise"
    return row("novel_fraction", text, "reproduced" if in_range and margin >= 0.05 else "not reproduced",
               novel_frac, ("seed twin: novel fraction at the same width", twin_frac))


def insertion_rows(shares: dict, self_dup: float) -> list[dict]:
    """``shares``: :func:`metasae_utils.stitching.insertion_shares`; ``self_dup``:
    :func:`metasae_utils.stitching.self_duplicate_control` of the smaller SAE."""
    lowers, raises, novel_raises = shares["novel_lowers"], shares["recon_raises"], shares["novel_raises"]
    if self_dup > SELF_DUPLICATE_LIMIT:
        why = (f"untestable on this family: a copy of the smaller SAE's own latent lowers its MSE for "
               f"{100 * self_dup:.0f} % of its latents")
        return [row("novel_lowers", f"{why} ({pct(lowers)} of novel latents lower it)", "untestable here", lowers,
                    ("self-duplicates that lower the MSE", self_dup)),
                row("recon_raises", f"{why} ({pct(raises)} of reconstruction latents raise it)", "untestable here",
                    raises, ("novel latents that raise the MSE", novel_raises))]
    out = []
    if _nan(lowers):
        out.append(row("novel_lowers", "no novel latents in this pair", "untestable here", None,
                       ("self-duplicates that lower the MSE", self_dup)))
    else:
        out.append(row("novel_lowers", f"{pct(lowers)} of novel latents lower it (self-duplicates: "
                                       f"{pct(self_dup)})",
                       "reproduced" if lowers > 0.5 and lowers >= self_dup + 0.1 else "not reproduced", lowers,
                       ("self-duplicates that lower the MSE", self_dup)))
    if _nan(raises):
        out.append(row("recon_raises", "no reconstruction latents in this pair", "untestable here", None,
                       ("novel latents that raise the MSE", novel_raises)))
    else:
        ok = raises > 0.5 and (_nan(novel_raises) or raises >= novel_raises + 0.1)
        out.append(row("recon_raises", f"{pct(raises)} of reconstruction latents raise it (novel latents: "
                                       f"{pct(novel_raises)})", "reproduced" if ok else "not reproduced", raises,
                       ("novel latents that raise the MSE", novel_raises)))
    return out




def smooth_row(mono: dict, mono_random: dict, overshoot: dict | None = None) -> dict:
    """``mono`` / ``mono_random``: :func:`metasae_utils.stitching.monotonicity` of the least smooth pair's greedy
    and random-order paths; ``overshoot``: :func:`metasae_utils.stitching.overshoot` of the greedy path."""
    rho, rho_r = mono["spearman_step_vs_mse"], mono_random["spearman_step_vs_mse"]
    text = (f"Spearman(step, MSE) {rho:.3f} (random order {rho_r:.3f}); "
            f"{100 * mono['fraction_of_steps_lowering_mse']:.1f} % of steps lower the MSE")
    if overshoot and overshoot["below"] > 0:
        text += (f"; the path dips {100 * overshoot['below']:.1f} % below the larger SAE's MSE at L0 "
                 f"{overshoot['l0']:.1f}")
    return row("smooth_swaps", text, "reproduced" if rho <= -0.9 else "not reproduced", rho,
               ("the same swaps in a random order", rho_r))


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


def delta_vs_cosine_row(q: dict, self_dup: float | None = None) -> dict:
    """``q``: :func:`metasae_utils.stitching.quadrant_shares` of the headline pair; ``self_dup``: the smaller SAE's
    :func:`metasae_utils.stitching.self_duplicate_control` (above :data:`!SELF_DUPLICATE_LIMIT` a lowered MSE says
    more about the smaller SAE than about the latent, as for the insertion rows)."""
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
             f"MSE / frontier at L0 {f['l0']:.1f}: {ratio:.3f}" + (" (beyond the family's L0: an upper bound)"
                                                                     if fr["extrapolated"] else ""))
    both = lower_mse and higher_l0
    below = ratio is not None and ratio < 1 and not fr["extrapolated"]
    verdict = "reproduced" if both and below else "partly" if both else "not reproduced"
    return row("frankenstein_frontier", text, verdict, ratio, control)


def stitching_verdicts(novel_frac: float, twin_frac: float | None, shares: dict, self_dup: float, mono: dict,
                       mono_random: dict, overshoot: dict | None = None, franken: dict | None = None) -> list[dict]:
    """Every stitching row, each with its control (see the row functions above)."""
    out = [novel_fraction_row(novel_frac, twin_frac), *insertion_rows(shares, self_dup),
           smooth_row(mono, mono_random, overshoot)]
    if franken is not None:
        out.append(frankenstein_row(franken))
    return out
