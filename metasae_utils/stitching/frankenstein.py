"""The Frankenstein SAE: one SAE assembled from the latents of a whole family, judged on the (L0, MSE) plane.

Two constructions.  ``method="single"`` (the first version of the book) keeps every novel latent whose insertion
*alone* lowers the MSE; single effects are not additive (two latents that each fill the same gap overshoot it
together), so their sum over-promises.  ``method="joint"`` (the default) inserts latents greedily *given the current
state*: at each step the candidate whose insertion lowers the MSE most, with every candidate's ΔMSE kept exact after
each insertion, until none lowers it — the same exact bookkeeping as :func:`~.interpolation.interpolate`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from .build import insert_latents
from .classify import classify_latents
from .compat import _check_acts, _check_pair
from .insertion import insertion_deltas
from .interpolation import _apply_group, _collect_unit_stats


@torch.no_grad()
def greedy_insertion(small, large, activations: torch.Tensor, candidates: torch.Tensor, batch_size: int = 4096,
                     progress: bool = True) -> dict:
    """Insert latents of ``large`` into ``small`` one at a time, each time the candidate (of ``candidates`` (m,))
    that lowers the MSE most given what is already inserted, until no candidate lowers it.

    Exact, not additive: with the units' activations A (n, N) and decoder rows D (N, d) gathered once, inserting
    unit u changes the squared error by ``-2 c_u + Q_u`` (``c_u = sum_n A_nu (R_n . D_u)`` for the current residual
    R, ``Q_u = sum_n A_nu^2 |D_u|^2``), and afterwards ``c_v -= G_vu`` for every unit v co-firing with u.

    Returns ``chosen`` (LongTensor of large latent ids, in insertion order), ``delta_mse`` (float64, the exact
    ΔMSE of each insertion at its turn), ``single_delta_mse`` (float64 (m,): each candidate's ΔMSE alone) and
    ``mse_start`` / ``mse_end`` on ``activations``.
    """
    _check_pair(small, large)
    _check_acts(small, activations)
    cand = torch.as_tensor(candidates, dtype=torch.long).flatten().cpu()
    n_s = small.cfg.d_sae
    stats = _collect_unit_stats(small, large, activations, batch_size, progress=False)
    N = stats.D.shape[0]
    units = n_s + cand.numpy()
    diag = np.asarray(stats.At[units].multiply(stats.At[units]).sum(axis=1)).ravel()
    Q = diag * (stats.D[units].astype(np.float64) ** 2).sum(1)
    c = stats.c.copy()
    gid = np.full(N, len(units), dtype=np.int64)  # every non-candidate unit maps to a dummy slot
    gid[units] = np.arange(len(units))
    score = np.append(-2.0 * c[units] + Q, np.inf)  # the dummy slot stays +inf
    single = score[:-1].copy()
    sign = np.ones(N)
    nd = stats.n * stats.d
    chosen, deltas = [], []
    bar = tqdm(total=len(units), desc="greedy insertion", disable=not progress, leave=False)
    while len(units) and np.min(score[:-1]) < 0:
        k = int(np.argmin(score[:-1]))
        deltas.append(score[k] / nd)
        chosen.append(int(cand[k]))
        _apply_group(stats, units[k : k + 1], sign, c, score, gid)
        score[k] = np.inf
        bar.update(1)
    bar.close()
    sq_end = stats.sq_small + float(np.sum(deltas)) * nd
    return {"chosen": torch.tensor(chosen, dtype=torch.long), "delta_mse": torch.tensor(deltas, dtype=torch.float64),
            "single_delta_mse": torch.from_numpy(single / nd), "mse_start": stats.sq_small / nd,
            "mse_end": sq_end / nd}


def frankenstein(saes: list, activations: torch.Tensor, threshold: float = 0.7, batch_size: int = 4096,
                 method: str = "joint", progress: bool = True):
    """An SAE assembled from a family (``saes`` ordered by width): start from the smallest, then from each larger
    SAE insert latents that are novel (max decoder cosine <= ``threshold``) with respect to what has been assembled
    so far — with ``method="joint"`` greedily given the current state (:func:`greedy_insertion`), with
    ``method="single"`` every one whose ΔMSE alone is negative — measured on ``activations`` (n, d_in).

    Returns ``(sae, sources, stages)``: ``sources`` lists ``(index of the family member, latent id in it)`` per
    latent of the result; ``stages`` per larger SAE: ``member``, ``n_novel``, ``n_inserted``, ``sum_single`` (the sum
    of the inserted latents' single-insertion ΔMSE) and ``joint`` (the ΔMSE of inserting them together).
    """
    if method not in ("joint", "single"):
        raise ValueError(f"method must be 'joint' or 'single'; got {method!r}")
    current = saes[0]
    sources = [(0, i) for i in range(saes[0].cfg.d_sae)]
    stages = []
    for j, large in enumerate(saes[1:], start=1):
        cls = classify_latents(current, large, threshold)
        if len(cls.novel) == 0:
            stages.append({"member": j, "n_novel": 0, "n_inserted": 0, "sum_single": 0.0, "joint": 0.0})
            continue
        if method == "joint":
            got = greedy_insertion(current, large, activations, cls.novel, batch_size=batch_size, progress=progress)
            keep = got["chosen"]
            single = dict(zip(cls.novel.tolist(), got["single_delta_mse"].tolist()))
            sum_single = float(sum(single[int(i)] for i in keep))
            joint = got["mse_end"] - got["mse_start"]
        else:
            deltas = torch.as_tensor(insertion_deltas(current, large, activations, cls.novel,
                                                      batch_size=batch_size).delta_mse)
            keep = cls.novel[deltas < 0]
            sum_single = float(deltas[deltas < 0].sum())
            joint = float("nan")
        if len(keep):
            current = insert_latents(current, large, keep)
            sources += [(j, int(i)) for i in keep]
        stages.append({"member": j, "n_novel": int(len(cls.novel)), "n_inserted": int(len(keep)),
                       "sum_single": sum_single, "joint": joint})
    return current, sources, stages


def frontier_at(points: list[dict], l0: float) -> dict:
    """The trained family's (L0, MSE) frontier at ``l0``.

    ``points``: dicts with ``l0`` and ``mse`` (one per trained SAE).  The frontier is the lower envelope of the
    Pareto-optimal points, linear in log L0 between neighbours.  Beyond the largest L0 of the family no trained SAE
    says what MSE that L0 buys: the frontier is then the best MSE of the family (an *upper bound* on the true
    frontier, ``extrapolated=True``); below the smallest L0 it is undefined (NaN).  Returns ``mse``, ``extrapolated``.
    """
    pts = sorted(((float(p["l0"]), float(p["mse"])) for p in points), key=lambda t: (t[0], t[1]))
    pareto = []
    for x, y in pts:
        if not pareto or y < pareto[-1][1]:
            pareto.append((x, y))
    if not pareto or l0 < pareto[0][0]:
        return {"mse": float("nan"), "extrapolated": True}
    if l0 >= pareto[-1][0]:
        return {"mse": pareto[-1][1], "extrapolated": l0 > pareto[-1][0]}
    for (x0, y0), (x1, y1) in zip(pareto, pareto[1:]):
        if x0 <= l0 <= x1:
            t = (math.log(l0) - math.log(x0)) / (math.log(x1) - math.log(x0)) if x1 > x0 else 0.0
            return {"mse": y0 + t * (y1 - y0), "extrapolated": False}
    return {"mse": pareto[-1][1], "extrapolated": False}  # pragma: no cover (unreachable)


def frontier_curve(points: list[dict], l0_max: float, n: int = 60) -> list[dict]:
    """:func:`frontier_at` on ``n`` L0 values, log-spaced from the family's smallest L0 to ``l0_max``: dicts with
    ``l0``, ``mse``, ``extrapolated`` (for plotting)."""
    lo = min(float(p["l0"]) for p in points)
    hi = max(l0_max, lo)
    grid = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)] if hi > lo else [lo]
    return [{"l0": x, **frontier_at(points, x)} for x in grid]
