"""A meta-SAE's numbers over several of its own training seeds: per-seed values, their mean, spread and standard error.

The base SAE stays fixed: only the meta-SAE is retrained, so the spread measures the meta-SAE's training noise
(initialisation and batch order), not the base SAE's.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from ..checks import _check_int, check_data
from .decompose import meta_metrics

#: how many meta-SAE seeds the seed-judged claims (``meta_sparse``, ``matryoshka_meta``) train; preset-free
N_META_SEEDS = 3
#: the scalar numbers of :func:`metasae_utils.meta.meta_metrics` kept per seed
SCALAR_KEYS = ("variance_explained", "mean_cosine", "mean_meta_latents_per_latent", "max_shared_fraction",
               "dead_fraction")


def meta_seeds(seed: int, n: int = N_META_SEEDS) -> list[int]:
    """The ``n`` meta-SAE seeds derived from a preset's ``seed``: ``[seed, seed + 1, ..., seed + n - 1]``.  The first
    is the seed every single-seed meta-SAE of the book already uses, so its cached meta-SAE is reused."""
    _check_int("seed", seed, lo=0)
    _check_int("n", n)
    return [seed + i for i in range(n)]


def spread(values: Iterable[float]) -> dict:
    """``values`` (one number per seed) with ``n``, ``mean``, ``std`` (sample std, n − 1) and ``se`` (std / √n);
    ``std`` and ``se`` are NaN with fewer than 2 values, every statistic is NaN with none."""
    v = [float(x) for x in values]
    n = len(v)
    mean = sum(v) / n if n else float("nan")
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n >= 2 else float("nan")
    return {"values": v, "n": n, "mean": mean, "std": std, "se": std / math.sqrt(n) if n >= 2 else float("nan")}


def difference(a: dict, b: dict) -> dict:
    """``a`` − ``b`` for two :func:`~metasae_utils.meta.spread` results: ``diff`` (difference of the means), ``se_welch``
    (√(se_a² + se_b²): no pairing assumed) and, when both have the same number of values, ``se_paired`` (the
    standard error of the per-seed differences, seed i of ``a`` against seed i of ``b``; NaN otherwise)."""
    paired = spread(x - y for x, y in zip(a["values"], b["values"])) if a["n"] == b["n"] else None
    return {"diff": a["mean"] - b["mean"], "se_welch": math.sqrt(a["se"] ** 2 + b["se"] ** 2),
            "se_paired": paired["se"] if paired else float("nan")}


def over_seeds(make: Callable[[int], object], decoder: torch.Tensor, seeds: Iterable[int],
               keys: tuple[str, ...] = SCALAR_KEYS) -> dict:
    """Train (or load) one meta-SAE per seed and measure it on the same rows.

    Args:
        make: ``seed -> meta-SAE`` (e.g. ``lambda s: meta.cached_meta_sae(spec, rows, ..., seed=s)``); the rows it
            trains on and the recipe are the same for every seed.
        decoder: (n_latents, d) the rows each meta-SAE is measured on (:func:`~metasae_utils.meta.meta_metrics`).
        seeds: the meta-SAE seeds (:func:`~metasae_utils.meta.meta_seeds`).
        keys: scalar numbers of ``meta_metrics`` to keep.

    Returns:
        ``{"seeds": [...], "per_seed": [{key: float, ...} per seed], key: spread(...) for each key}``.
    """
    check_data("decoder", decoder)
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one meta-SAE seed")
    per_seed = []
    for s in seeds:
        mm = meta_metrics(make(s), decoder)
        per_seed.append({k: float(mm[k]) for k in keys})
    return {"seeds": seeds, "per_seed": per_seed, **{k: spread(p[k] for p in per_seed) for k in keys}}
