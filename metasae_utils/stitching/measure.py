"""Every stitching number of one (small, large) pair, each with its control, in one call — and the same numbers
between the large SAE and its seed twin, so that every number has the twin beside it.

Chapter 3 calls it for the headline pair of the trained family and again for the checkpoints of the same run
(the budget curve), so the numbers at every budget are computed the same way.  Only live latents are counted:
a latent firing on at most ``dead_rate`` of the held-out rows is dead, set apart and counted (``dead_small``,
``dead_large``).
"""

from __future__ import annotations

import torch

from ..evaluate import DEAD_RATE
from .classify import classify_latents
from .insertion import insertion_deltas, insertion_shares, self_duplicates
from .interpolation import interpolate, monotonicity, overshoot
from .walk import swap_walk, walk_segments

#: the flat keys that :func:`pair_numbers` also returns with a ``twin_`` prefix (None without a twin)
TWIN_KEYS = ("novel_fraction", "novel_lowers", "recon_raises", "novel_raises", "self_duplicate", "n_live", "n_novel",
             "n_reconstruction", "dead_small", "dead_large", "swap_lowers", "spearman")


def side_numbers(small, large, activations: torch.Tensor, threshold: float = 0.7, seed: int = 0,
                 paths: bool = True, dead_rate: float = DEAD_RATE) -> dict:
    """One side of :func:`pair_numbers`: the stitching numbers of ``small`` → ``large`` on ``activations`` (n, d_in),
    live latents only.  Keys: ``novel_fraction`` (share of the large SAE's live latents with max cosine <=
    ``threshold``), ``n_live``, ``n_novel``, ``n_reconstruction``, ``dead_small`` / ``dead_large`` (dead latent
    counts), ``novel_lowers``, ``recon_raises``, ``novel_raises`` (:func:`insertion_shares` over live latents),
    ``self_duplicate`` (of ``small``, live latents), and with ``paths``: ``mono`` / ``mono_random`` (greedy and
    random-order :func:`monotonicity`), ``overshoot``, ``path``, ``path_random``, ``spearman``, the swap walk with
    removals last (``walk``) and its :func:`walk_segments` (``segments``, ``swap_lowers``)."""
    deltas = insertion_deltas(small, large, activations)
    cls = classify_latents(small, large, threshold=threshold, fire_rate=deltas.delta_l0, dead_rate=dead_rate)
    shares = insertion_shares(cls, deltas)
    dup = self_duplicates(small, activations, dead_rate=dead_rate)
    out = {"novel_fraction": cls.novel_fraction, "n_live": cls.n_live, "n_novel": int(cls.novel.numel()),
           "n_reconstruction": int(cls.reconstruction.numel()), "dead_small": int(dup["dead"].numel()),
           "dead_large": int(cls.dead.numel()), **{k: v for k, v in shares.items() if not k.startswith("d_")},
           "self_duplicate": dup["share"]}
    if paths:
        greedy = interpolate(small, large, activations, threshold=threshold, order="greedy", progress=False)
        rand = interpolate(small, large, activations, threshold=threshold, order="random", seed=seed, progress=False)
        walk = swap_walk(small, large, activations, threshold=threshold)
        segments = walk_segments(walk)
        out.update(mono=monotonicity(greedy), mono_random=monotonicity(rand), overshoot=overshoot(greedy),
                   path=greedy, path_random=rand, spearman=monotonicity(greedy)["spearman_step_vs_mse"],
                   walk=walk, segments=segments, swap_lowers=segments["swap_lowers"])
    return out


def pair_numbers(small, large, activations: torch.Tensor, twin=None, threshold: float = 0.7, seed: int = 0,
                 paths: bool = True, dead_rate: float = DEAD_RATE) -> dict:
    """The claims' numbers on one pair, on held-out ``activations`` (n, d_in), live latents only.

    Returns :func:`!side_numbers` of ``small`` → ``large``.  ``twin``: an SAE of the large SAE's width and recipe with
    another seed.  With it, the same measurement between the twins (``side_numbers(twin, large)``: the novel
    fraction of the large SAE's live latents against the twin, those novel latents inserted into the twin, its
    self-duplicates, its swap walk) is returned whole as ``twin`` and flat as ``twin_<key>`` for every key of
    :data:`!TWIN_KEYS` (``twin_novel_fraction``, ``twin_novel_lowers``, ``twin_recon_raises``, …); without a twin
    ``twin`` and every ``twin_<key>`` are None.
    """
    out = side_numbers(small, large, activations, threshold, seed, paths, dead_rate)
    other = None if twin is None else side_numbers(twin, large, activations, threshold, seed, paths, dead_rate)
    out.update({f"twin_{k}": None if other is None else other.get(k) for k in TWIN_KEYS}, twin=other)
    return out
