"""Verdicts on the paper's stitching claims (rules in :data:`.registry.CLAIMS`)."""

from __future__ import annotations

import math

from .registry import row


def _share(cid: str, x: float, what: str, verb: str) -> dict:
    """A share-type claim: NaN means the pair has no latent of that class, so it cannot be tested."""
    if math.isnan(x):
        return row(cid, f"no {what} latents in this pair", "untestable here")
    return row(cid, f"{100 * x:.1f} % of {what} latents {verb} it", "reproduced" if x > 0.5 else "not reproduced", x)


def _frankenstein(franken: dict) -> dict:
    eq = franken.get("equal_width_mse")
    if eq is None:
        return row("frankenstein", f"{franken['d_sae']} latents: no trained SAE that wide to compare",
                   "untestable here")
    ratio = franken["mse"] / eq
    return row("frankenstein", f"{franken['d_sae']} latents, MSE {franken['mse']:.4g} vs {eq:.4g} for the narrowest "
                               f"trained SAE at least as wide (ratio {ratio:.3f})",
               "reproduced" if ratio < 1 else "not reproduced", ratio)


def stitching_verdicts(novel_lowers: float, recon_raises: float, mono: dict, novel_frac: float,
                       franken: dict | None = None) -> list[dict]:
    """The paper's stitching claims against our numbers.

    ``novel_lowers`` / ``recon_raises``: shares from :func:`metasae_utils.stitching.insertion_shares`; ``mono``:
    :func:`metasae_utils.stitching.monotonicity` of the least smooth path; ``novel_frac``: the mean novel fraction
    over adjacent pairs; ``franken``: the Frankenstein SAE's ``{"d_sae", "mse"}`` and ``"equal_width_mse"`` (the
    MSE of the narrowest trained SAE at least as wide, None when none is that wide).
    """
    frac = mono["fraction_of_steps_lowering_mse"]
    out = [
        row("novel_fraction", f"{100 * novel_frac:.1f} %",
            "reproduced" if 0.2 <= novel_frac <= 0.5 else "not reproduced", novel_frac),
        _share("novel_lowers", novel_lowers, "novel", "lower"),
        _share("recon_raises", recon_raises, "reconstruction", "raise"),
        row("smooth_swaps", f"{100 * frac:.1f} % of steps lower the MSE, Spearman {mono['spearman_step_vs_mse']:.3f}",
            "reproduced" if frac >= 0.9 else "not reproduced", frac),
    ]
    if franken is not None:
        out.append(_frankenstein(franken))
    return out
