"""Every stitching number of one (small, large) pair, each with its control, in one call.

Chapter 3 calls it for the headline pair of the trained family and again for the checkpoints of the same run
(the budget curve), so the numbers at every budget are computed the same way.
"""

from __future__ import annotations

import torch

from .classify import classify_latents
from .insertion import insertion_deltas, insertion_shares, self_duplicate_control
from .interpolation import interpolate, monotonicity, overshoot


def pair_numbers(small, large, activations: torch.Tensor, twin=None, threshold: float = 0.7, seed: int = 0,
                 paths: bool = True) -> dict:
    """The claims' numbers on one pair, on held-out ``activations`` (n, d_in).

    ``twin``: an SAE of the large SAE's width and recipe with another seed (the control of the novel fraction).
    Returns ``novel_fraction``, ``twin_novel_fraction`` (the share of the twin's latents with max cosine <=
    ``threshold`` to the large SAE; None without a twin), the :func:`insertion_shares` (without the per-latent
    tensors), ``self_duplicate`` (of the small SAE), and with ``paths``: the greedy and random-order
    interpolations' :func:`monotonicity` (``mono``, ``mono_random``), the greedy path's :func:`overshoot`, and the
    greedy ``path`` itself.
    """
    cls = classify_latents(small, large, threshold=threshold)
    shares = insertion_shares(cls, insertion_deltas(small, large, activations))
    out = {"novel_fraction": cls.novel_fraction,
           "twin_novel_fraction": None if twin is None else classify_latents(large, twin, threshold).novel_fraction,
           **{k: v for k, v in shares.items() if not k.startswith("d_")},
           "self_duplicate": self_duplicate_control(small, activations)}
    if paths:
        greedy = interpolate(small, large, activations, threshold=threshold, order="greedy", progress=False)
        rand = interpolate(small, large, activations, threshold=threshold, order="random", seed=seed, progress=False)
        out.update(mono=monotonicity(greedy), mono_random=monotonicity(rand), overshoot=overshoot(greedy),
                   path=greedy, path_random=rand)
    return out
