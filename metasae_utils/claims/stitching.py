"""Verdicts on the paper's stitching claims, each beside its control (rules in :data:`.registry.CLAIMS`)."""

from __future__ import annotations

import math

from .registry import row

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
        return [row("novel_lowers", f"{why} ({_pct(lowers)} of novel latents lower it)", "untestable here", lowers,
                    ("self-duplicates that lower the MSE", self_dup)),
                row("recon_raises", f"{why} ({_pct(raises)} of reconstruction latents raise it)", "untestable here",
                    raises, ("novel latents that raise the MSE", novel_raises))]
    out = []
    if _nan(lowers):
        out.append(row("novel_lowers", "no novel latents in this pair", "untestable here", None,
                       ("self-duplicates that lower the MSE", self_dup)))
    else:
        out.append(row("novel_lowers", f"{_pct(lowers)} of novel latents lower it (self-duplicates: "
                                       f"{_pct(self_dup)})",
                       "reproduced" if lowers > 0.5 and lowers >= self_dup + 0.1 else "not reproduced", lowers,
                       ("self-duplicates that lower the MSE", self_dup)))
    if _nan(raises):
        out.append(row("recon_raises", "no reconstruction latents in this pair", "untestable here", None,
                       ("novel latents that raise the MSE", novel_raises)))
    else:
        ok = raises > 0.5 and (_nan(novel_raises) or raises >= novel_raises + 0.1)
        out.append(row("recon_raises", f"{_pct(raises)} of reconstruction latents raise it (novel latents: "
                                       f"{_pct(novel_raises)})", "reproduced" if ok else "not reproduced", raises,
                       ("novel latents that raise the MSE", novel_raises)))
    return out


def _pct(x) -> str:
    return "n/a" if _nan(x) else f"{100 * x:.1f} %"


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


def stitching_verdicts(novel_frac: float, twin_frac: float | None, shares: dict, self_dup: float, mono: dict,
                       mono_random: dict, overshoot: dict | None = None, franken: dict | None = None) -> list[dict]:
    """Every stitching row, each with its control (see the row functions above)."""
    out = [novel_fraction_row(novel_frac, twin_frac), *insertion_rows(shares, self_dup),
           smooth_row(mono, mono_random, overshoot)]
    if franken is not None:
        out.append(frankenstein_row(franken))
    return out
