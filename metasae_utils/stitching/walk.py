"""The swap walk as the paper describes it: swap matched groups and insert novel latents, then remove the small
latents nothing matched, as a segment of its own.

The greedy interpolation of :func:`!metasae_utils.stitching.interpolation.interpolate` mixes removals of unmatched small latents into the
walk; late in the walk most steps are such removals, so a rank correlation of step and MSE measures how the walk is
built more than whether swapping is smooth.  Here the walk keeps the removals for the end
(``interpolate(..., removals="last")``) and :func:`walk_segments` reports the two segments apart.  The claim is
judged on the swap segment: the share of its steps that lower the MSE, beside the same walk between seed twins.
"""

from __future__ import annotations

import numpy as np

from .interpolation import interpolate

#: step kinds of the swap segment ("b_dec": the decoder-bias change, ordered like any swap)
SWAP_KINDS = ("matched", "novel", "b_dec")


def swap_walk(small, large, activations, threshold: float = 0.7, progress: bool = False) -> list[dict]:
    """The greedy walk from ``small`` to ``large`` on ``activations`` (n, d_in) with the removals last: a list of
    path points as :func:`!metasae_utils.stitching.interpolation.interpolate` returns them."""
    return interpolate(small, large, activations, threshold=threshold, order="greedy", removals="last",
                       progress=progress)


def _segment(steps: list[dict], eps: float) -> dict:
    lower = [p["delta_mse"] < -eps for p in steps]
    return {"steps": len(steps), "lowering": float(np.mean(lower)) if steps else float("nan"),
            "delta_mse": float(sum(p["delta_mse"] for p in steps))}


def walk_segments(path: list[dict]) -> dict:
    """Split a walk (path points with ``kind`` and ``delta_mse``, the start point first) into its swap segment
    (matched groups, novel insertions, the decoder-bias step) and its removal segment (small latents with no match).

    Returns ``swap`` and ``removal``, each ``{"steps", "lowering" (share of steps with ΔMSE < 0; NaN when empty),
    "delta_mse" (their summed ΔMSE)}``, ``swap_lowers`` (= ``swap["lowering"]``), ``removal_first_step`` (the step
    at which removals begin; None when there are none or they are mixed in) and ``removals_last`` (True when no
    swap step follows a removal: the walk was built with ``removals="last"``)."""
    steps = path[1:]
    eps = 1e-12 * max((abs(p["mse"]) for p in path), default=1.0)
    swaps = [p for p in steps if p["kind"] in SWAP_KINDS]
    removals = [p for p in steps if p["kind"] == "removed"]
    first_removal = min((p["step"] for p in removals), default=None)
    last_swap = max((p["step"] for p in swaps if p["kind"] != "b_dec"), default=0)  # a pinned bias step may follow
    last = first_removal is None or last_swap < first_removal
    return {"swap": _segment(swaps, eps), "removal": _segment(removals, eps),
            "swap_lowers": _segment(swaps, eps)["lowering"],
            "removal_first_step": first_removal if last else None, "removals_last": last}
