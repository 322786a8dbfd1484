"""The numbers of a ``compare`` report, composed from the stitching and canonicality functions (no maths of its own).

A latent of an SAE is *dead* when it fires on at most :data:`DEAD_RATE` of the activation rows; dead latents are
counted (``dead``) and left out of every share, since their decoder rows are untrained and say nothing about which
directions the SAE found.
"""

from __future__ import annotations

import math

import torch

from ..canonicality import hungarian_cosine, matched_share
from ..stitching import (InsertionDeltas, LatentClassification, classify_latents, insertion_deltas, insertion_shares,
                         interpolate_many, monotonicity, overshoot, quadrant_shares, self_duplicates_of)

#: a latent firing on at most this share of the activation rows is dead
DEAD_RATE = 1e-5
#: the Hungarian matching is skipped (None) beyond this many cells of the cosine matrix, 8 bytes each in float64
#: (and ``linear_sum_assignment`` grows as about n^3); 64 M cells are 512 MB, e.g. 8,192 x 8,192 latents
HUNGARIAN_MAX_CELLS = 64 * 2**20


def hungarian_or_none(A: torch.Tensor, B: torch.Tensor) -> float | None:
    """:func:`~metasae_utils.canonicality.hungarian_cosine` of the rows A (n_a, d) and B (n_b, d), or None when the
    (n_a, n_b) cosine matrix would exceed :data:`HUNGARIAN_MAX_CELLS`."""
    if A.shape[0] * B.shape[0] > HUNGARIAN_MAX_CELLS:
        return None
    return hungarian_cosine(A, B)


def live_only(cls: LatentClassification, live: torch.Tensor) -> LatentClassification:
    """``cls`` with its ``novel`` and ``reconstruction`` id lists restricted to the ``live`` (n_large,) latents;
    ``max_cos`` and ``match`` stay (n_large,)."""
    live = live.to(cls.max_cos.device)
    return LatentClassification(cls.threshold, cls.novel[live[cls.novel]], cls.reconstruction[live[cls.reconstruction]],
                                cls.max_cos, cls.match)


def _share(k: int, n: int) -> float:
    return k / n if n else float("nan")


def pair(small, large, acts: torch.Tensor, threshold: float = 0.7, dead_rate: float = DEAD_RATE,
         deltas: InsertionDeltas | None = None) -> dict:
    """Stitching numbers of one (smaller, larger) pair on ``acts`` (n, d_in), over the larger SAE's live latents.

    Returns the JSON numbers (``n_large``, ``live``, ``dead``, ``novel``, ``reconstruction``, ``novel_fraction``,
    ``novel_lowers``, ``recon_raises``, ``novel_raises``, ``matched_share``, ``hungarian_cosine``, ``base``: the
    smaller SAE's mse / fvu / l0) and, under ``"_"``, what the figures need: ``max_cos`` (n_large,), ``delta_mse``
    (n_large,) and ``live`` (n_large,) bool.  ``deltas``: the larger SAE's
    :func:`~metasae_utils.stitching.insertion_deltas` into the smaller on ``acts`` when already computed."""
    cls = classify_latents(small, large, threshold)
    deltas = insertion_deltas(small, large, acts) if deltas is None else deltas
    live = torch.as_tensor(deltas.delta_l0) > dead_rate  # delta_l0: each latent's firing rate on acts
    lc = live_only(cls, live)
    shares = insertion_shares(lc, deltas)
    n_live = int(live.sum())
    return {"n_large": int(live.numel()), "live": n_live, "dead": int(live.numel() - n_live),
            "novel": int(lc.novel.numel()), "reconstruction": int(lc.reconstruction.numel()),
            "novel_fraction": _share(lc.novel.numel(), n_live),
            **{k: v for k, v in shares.items() if not k.startswith("d_")},
            "matched_share": matched_share(large.W_dec, small.W_dec, threshold, live),
            "hungarian_cosine": hungarian_or_none(large.W_dec.detach()[live.to(large.W_dec.device)],
                                                  small.W_dec.detach()),
            "base": dict(deltas.base),
            "_": {"max_cos": cls.max_cos.double().cpu(), "delta_mse": torch.as_tensor(deltas.delta_mse), "live": live}}


def twin_numbers(small, large, twin, acts: torch.Tensor, large_live: torch.Tensor, threshold: float = 0.7,
                 dead_rate: float = DEAD_RATE, deltas: InsertionDeltas | None = None) -> dict:
    """The seed twin's numbers: ``vs_small`` (the twin stitched onto the smaller SAE: :func:`pair`'s numbers, to set
    beside the larger SAE's) and the noise floor: ``novel_fraction_vs_large`` (the share of the twin's live latents
    with no decoder match > ``threshold`` in the larger SAE: what "novel" means between two SAEs of one width),
    ``matched_share_vs_large``, ``hungarian_vs_large`` (live latents of both) and ``band`` (10th and 90th percentile
    of the twin's live latents' max cosine to the larger SAE).  ``deltas``: the twin's insertion deltas into the
    smaller SAE when already computed."""
    vs_small = pair(small, twin, acts, threshold, dead_rate, deltas)
    twin_live = vs_small["_"]["live"]
    best = classify_latents(large, twin, threshold).max_cos.double().cpu()[twin_live]
    band = torch.quantile(best, torch.tensor([0.1, 0.9], dtype=torch.float64)).tolist() if best.numel() else None
    m = matched_share(twin.W_dec, large.W_dec, threshold, twin_live)
    return {"width": int(twin.cfg.d_sae), "dead": vs_small["dead"],
            "novel_fraction_vs_large": 1.0 - m if not math.isnan(m) else m, "matched_share_vs_large": m,
            "hungarian_vs_large": hungarian_or_none(twin.W_dec.detach()[twin_live.to(twin.W_dec.device)],
                                                    large.W_dec.detach()[large_live.to(large.W_dec.device)]),
            "band": band, "vs_small": {k: v for k, v in vs_small.items() if k != "_"}}


def paths(small, large, acts: torch.Tensor, threshold: float = 0.7, seed: int = 0, random_order: bool = False,
          insert=()) -> dict:
    """The interpolation from the smaller SAE to the larger: the ``greedy`` path (a list of
    :func:`~metasae_utils.stitching.interpolate` points) with its :func:`~metasae_utils.stitching.monotonicity` and
    :func:`~metasae_utils.stitching.overshoot`; with ``random_order`` also a seeded ``random`` path and its
    monotonicity (the control; it adds a second walk, not a second pass over ``acts``), else those two are None.
    ``insertions``: the :func:`~metasae_utils.stitching.insertion_deltas` of each SAE of ``insert`` into the smaller,
    from the same pass (:func:`~metasae_utils.stitching.interpolate_many`)."""
    runs = [{"order": "greedy"}] + ([{"order": "random", "seed": seed}] if random_order else [])
    found, inserted = interpolate_many(small, large, acts, runs, insert=insert, threshold=threshold)
    greedy, rand = found[0], (found[1] if random_order else None)
    return {"greedy": greedy, "random": rand, "monotonicity": monotonicity(greedy),
            "monotonicity_random": monotonicity(rand) if rand else None, "overshoot": overshoot(greedy),
            "insertions": inserted}


def numbers(small, large, acts: torch.Tensor, twin=None, threshold: float = 0.7, dead_rate: float = DEAD_RATE,
            seed: int = 0, random_order: bool = False) -> dict:
    """Everything the report shows (``random_order``: see :func:`paths`).  Returns the JSON-ready ``report``
    numbers and ``panel`` / ``paths`` for the figures (``panel`` as
    :func:`!metasae_utils.figures.delta_cosine_scatter` takes it, live latents only)."""
    # one pass over acts: the paths and every single insertion (LARGE's, the twin's, SMALL's own: its control)
    insert = [large] + ([] if twin is None else [twin]) + [small]
    walk = paths(small, large, acts, threshold, seed, random_order, insert=insert)
    found = walk.pop("insertions")
    main = pair(small, large, acts, threshold, dead_rate, found[0])
    extra = main.pop("_")
    live = extra["live"]
    twin_part = None if twin is None else twin_numbers(small, large, twin, acts, live, threshold, dead_rate, found[1])
    end = walk["greedy"][-1]
    report = {**main, "threshold": float(threshold), "dead_rate": float(dead_rate),
              "twin_novel_fraction": None if twin_part is None else twin_part["novel_fraction_vs_large"],
              "self_duplicate": self_duplicates_of(found[-1])["share"],
              "large": {"mse": end["mse"], "fvu": end["fvu"], "l0": end["l0"]},
              "quadrants": quadrant_shares(extra["max_cos"][live], extra["delta_mse"][live], threshold),
              "interpolation": {k: walk[k] for k in ("monotonicity", "monotonicity_random", "overshoot")},
              "twin": twin_part,
              "path": [{k: p[k] for k in ("step", "kind", "n_small", "n_large", "l0", "mse")} for p in walk["greedy"]]}
    panel = {"pair": f"{small.cfg.d_sae} → {large.cfg.d_sae}", "max_cos": extra["max_cos"][live],
             "delta_mse": extra["delta_mse"][live], "base_mse": main["base"]["mse"], "quadrants": report["quadrants"],
             "twin_band": None if twin_part is None else twin_part["band"]}
    return {"report": report, "panel": panel, "paths": walk}


def jsonable(x):
    """``x`` with tensors as lists, tuples as lists and NaN / inf as None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return jsonable(x.item())
    return x
