"""The interpolation walk: from the small SAE to the large one, swapping one matched group at a time.

In :func:`interpolate` the change of decoder bias ``b_dec_small -> b_dec_large`` is one extra step (a "b_dec"
pseudo-group with ΔL0 = 0), so the path starts at exactly the small SAE and ends at exactly the large SAE.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from .compat import _check_acts, _check_pair
from .groups import Group, swap_groups
from .insertion import InsertionDeltas, _Candidates
from .tokenstats import _VarianceAccumulator, _batches, _output_scale, _sparse_dot_sum

BDEC_GROUP = -1  # ``group`` index of the decoder-bias step in an interpolation path
#: the walk keeps the units' decoder Gram matrix D D^T (N, N) in float64 when it takes at most this many bytes
#: (N = 2,304 + 4,608 + 1 units: 382 MB; 4,608 + 4,608 + 1: 680 MB); beyond, each step reads the decoder rows of the
#: units it touches instead (the same numbers up to float rounding, several times slower)
GRAM_BUDGET_BYTES = 2**30


@dataclass
class _UnitStats:
    """Everything interpolate needs, gathered in one pass over the activations.

    Units are the small latents (0..n_s-1), the large latents (n_s..n_s+n_l-1) and the decoder-bias
    change (last unit: activation = output scale, decoder row = b_dec_large - b_dec_small).
    ``A`` / ``At``: (n, N) / (N, n) scipy CSR of the units' (scaled) activations; ``D``: (N, d) decoder
    rows; ``c``: (N,) sum_n A_nu (e_n . D_u) with e the small SAE's error; ``fires``: (N,) firing counts.
    """

    A: object
    At: object
    D: np.ndarray
    c: np.ndarray
    fires: np.ndarray
    sq_small: float
    sq_large: float
    total_var: float
    n: int
    d: int
    gram: np.ndarray | None = None  # (N, N) float64 D D^T, set by _attach_gram when it fits GRAM_BUDGET_BYTES
    inserted: list | None = None  # InsertionDeltas of the ``insert`` SAEs of _collect_unit_stats


def _collect_unit_stats(small, large, acts: torch.Tensor, batch_size: int, progress: bool, insert=()) -> _UnitStats:
    """One batched pass: encodings of both SAEs as a sparse matrix plus the first-order statistics.

    ``insert``: SAEs whose single-insertion deltas into ``small`` (:func:`!insertion_deltas`, all latents) the same
    pass accumulates, reusing the small SAE's encoding and error (and, for ``small`` and ``large`` themselves, the
    pass's own non-zeros, cross terms and firing counts of their units); they are ``stats.inserted``, in order."""
    import scipy.sparse as sp

    dev = small.W_dec.device
    n_s, n_l = small.cfg.d_sae, large.cfg.d_sae
    N, (n, d) = n_s + n_l + 1, acts.shape
    db = large.b_dec.detach().to(dev).double() - small.b_dec.detach().double()  # (d,)
    W_s, W_l = small.W_dec.detach(), large.W_dec.detach().to(dev)
    c = torch.zeros(N, dtype=torch.float64, device=dev)
    fires = torch.zeros(N, dtype=torch.float64, device=dev)
    rows, cols, vals = [], [], []
    sq_small = sq_large = l0_small = 0.0
    var = _VarianceAccumulator(d)
    cands = [_Candidates(small, sae, None, dev) for sae in insert]
    # which side of the pass each inserted SAE is (0: small, 1: large; None: another SAE, encoded by its candidate)
    side = [0 if sae is small else 1 if sae is large else None for sae in insert]
    for start, x in _batches(acts, batch_size, "stitching stats", progress):
        x = x.to(dev)
        f_s = small.encode(x)
        f_l = large.encode(x.to(large.W_dec.device)).to(dev)
        err = x.double() - small.decode(f_s).double()
        sq_small += float((err**2).sum())
        sq_large += float(((x.double() - large.decode(f_l.to(large.W_dec.device)).double().to(dev)) ** 2).sum())
        l0_small += float((f_s != 0).sum())
        var.add(x)
        scale = _output_scale(small, x)
        for cand, s in zip(cands, side):
            if s is None:
                cand.add(x, f_s, err, scale)
        scale = torch.ones(x.shape[0], dtype=torch.float64, device=dev) if scale is None else scale.double()
        for i, (f, W, offset) in enumerate(((f_s, W_s, 0), (f_l, W_l, n_s))):
            r, k = torch.nonzero(f, as_tuple=True)
            counts = torch.bincount(k, minlength=f.shape[1]).to(fires.dtype)
            a = f[r, k].double() * scale[r]  # (nnz,) the units' scaled activations
            cross = _sparse_dot_sum(err, r, k, a, W)
            fires[offset : offset + f.shape[1]] += counts
            c[offset : offset + f.shape[1]] += cross
            for cand, s in zip(cands, side):
                if s == i:
                    cand.add_sums(k, a, cross, counts)
            rows.append((r + start).cpu())
            cols.append((k + offset).cpu())
            vals.append(a.cpu())
        c[N - 1] += (scale * (err @ db)).sum()
        rows.append(torch.arange(start, start + x.shape[0]))
        cols.append(torch.full((x.shape[0],), N - 1, dtype=torch.long))
        vals.append(scale.cpu())
    fires[N - 1] = n
    A = sp.csr_matrix(
        (torch.cat(vals).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())), shape=(n, N)
    )
    d_dtype = torch.float64 if small.W_dec.dtype == torch.float64 else torch.float32
    D = torch.cat([W_s.to(d_dtype), W_l.to(d_dtype), db[None, :].to(d_dtype)]).cpu().numpy()
    base = {"mse": sq_small / (n * d), "fvu": sq_small / var.total, "l0": l0_small / n}
    return _UnitStats(
        A=A, At=A.T.tocsr(), D=D, c=c.cpu().numpy(), fires=fires.cpu().numpy(),
        sq_small=sq_small, sq_large=sq_large, total_var=var.total, n=n, d=d,
        inserted=[cand.result(n, d, var.total, base) for cand in cands],
    )


def _group_units(groups: list[Group], n_s: int, n_units: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Unit ids of each group (the decoder-bias pseudo-group appended last) and the unit -> group map."""
    units = [np.concatenate([g.small_ids.numpy(), n_s + g.large_ids.numpy()]).astype(np.int64) for g in groups]
    units.append(np.array([n_units - 1], dtype=np.int64))
    gid = np.full(n_units, -1, dtype=np.int64)
    for k, u in enumerate(units):
        gid[u] = k
    if (gid < 0).any() or sum(u.size for u in units) != n_units:
        raise ValueError("groups must cover every small and large latent exactly once (use swap_groups)")
    return units, gid


def _self_terms(stats: _UnitStats, units: list[np.ndarray], sign: np.ndarray) -> np.ndarray:
    """Q_g = sum_n |sum_{u in g} sign_u A_nu D_u|^2 for every group: (G,) float64."""
    At, D = stats.At, stats.D
    diag = np.asarray(At.multiply(At).sum(axis=1)).ravel() * (D.astype(np.float64) ** 2).sum(1)
    Q = np.empty(len(units))
    for k, u in enumerate(units):
        if u.size == 1:
            Q[k] = diag[u[0]]
            continue
        co = (At[u] @ At[u].T).toarray()  # (|g|, |g|) co-activation sums
        gram = D[u].astype(np.float64) @ D[u].astype(np.float64).T
        s = sign[u]
        Q[k] = s @ (co * gram) @ s
    return Q


def _attach_gram(stats: _UnitStats, budget: int | None = None) -> None:
    """Set ``stats.gram`` = D D^T (N, N) float64 (one BLAS product) when it takes at most ``budget`` bytes
    (default :data:`GRAM_BUDGET_BYTES`).

    Every unit's row of co-firing units is visited once along a walk, so the walk reads about all of the Gram
    matrix's non-zero pattern; one dense product is far cheaper than gathering decoder rows per step."""
    N = stats.D.shape[0]
    if N * N * 8 <= (GRAM_BUDGET_BYTES if budget is None else budget):
        D = torch.from_numpy(stats.D).double()
        stats.gram = (D @ D.T).numpy()  # torch's float64 product: ~4x numpy's on one thread


def _apply_group(stats: _UnitStats, u: np.ndarray, sign: np.ndarray, c: np.ndarray, score: np.ndarray | None, gid) -> None:
    """Update c (N,) in place after toggling the units ``u`` (|g|,): c_v -= sum_w sign_w G_vw, with
    G_vw = (A^T A)_vw (D_v . D_w).  If ``score`` (G,) is given, propagate -2 sign_v Δc_v to it.

    D_v . D_w is read from ``stats.gram`` (N, N) when :func:`_attach_gram` set it, else from the decoder rows."""
    K = stats.At[u] @ stats.A  # (|g|, N) co-activation sums with every unit
    for r, w in enumerate(u):
        lo, hi = K.indptr[r], K.indptr[r + 1]
        cols = K.indices[lo:hi]
        dots = stats.gram[w, cols] if stats.gram is not None else (stats.D[cols] @ stats.D[w]).astype(np.float64)
        dc = -sign[w] * K.data[lo:hi] * dots
        c[cols] += dc
        if score is not None:
            np.add.at(score, gid[cols], -2.0 * sign[cols] * dc)


def _initial_order(order: str, scores: np.ndarray, seed: int) -> np.ndarray | None:
    if order == "isolated":
        return np.argsort(scores, kind="stable")
    if order == "random":
        return np.random.default_rng(seed).permutation(scores.size)
    if order == "greedy":
        return None
    raise ValueError(f"order must be 'greedy', 'isolated' or 'random'; got {order!r}")


def _next_group(step: int, n_groups: int, sequence, greedy_score, b_dec_step: str, hold=None) -> int:
    """Index of the group applied at ``step`` (1-based); the bias pseudo-group is ``n_groups - 1``.  ``hold`` (G,)
    bool: groups the greedy order may not pick yet (removals kept for the end)."""
    if sequence is not None:
        return int(sequence[step - 1])
    if (b_dec_step == "first" and step == 1) or (b_dec_step == "last" and step == n_groups):
        return n_groups - 1
    return int(np.argmin(greedy_score if hold is None else np.where(hold, np.inf, greedy_score)))


def _place_bias(sequence: np.ndarray, b_dec_step: str) -> np.ndarray:
    bias = sequence.max()  # the decoder-bias pseudo-group is the last group index
    rest = sequence[sequence != bias]
    if b_dec_step == "first":
        return np.concatenate([[bias], rest])
    if b_dec_step == "last":
        return np.concatenate([rest, [bias]])
    return sequence


@torch.no_grad()
def interpolate(
    small,
    large,
    activations: torch.Tensor,
    threshold: float = 0.7,
    order: Literal["greedy", "isolated", "random"] = "greedy",
    seed: int = 0,
    groups: list[Group] | None = None,
    b_dec_step: Literal["auto", "first", "last"] = "auto",
    batch_size: int = 4096,
    progress: bool = True,
    removals: Literal["any", "last"] = "any",
) -> list[dict]:
    """The (L0, MSE) path from the small SAE to the large one, swapping one group at a time.

    Start from the small SAE; each step applies one group of :func:`!swap_groups` (remove its small
    latents, add its large latents, each keeping exactly its own activation thanks to the encoder-bias
    shift) or the decoder-bias step ``b_dec_small -> b_dec_large`` (a pseudo-group with ``group = -1``,
    ΔL0 = 0).  Because that bias step is part of the path, the final state IS the large SAE: the first
    point equals ``reconstruction_metrics(small)`` and the last ``reconstruction_metrics(large)``.

    Orders: "greedy" applies at each step the group that lowers MSE most given the current state;
    "isolated" sorts groups by their ΔMSE when applied alone to the small SAE; "random" is a seeded
    permutation.  ``b_dec_step`` = "auto" orders the bias step like any group, "first"/"last" pin it.
    ``removals`` = "last" keeps the "removed" groups (small latents with no match) for the end, in the same order
    rule: the walk the paper describes (swap matched groups, insert novel latents), then the removals as a segment
    of their own (:func:`!metasae_utils.stitching.walk.walk_segments`).

    Method: latents of ReLU / JumpReLU / Gated SAEs act independently, so with unit activations A (n, N)
    (small latents, large latents, bias) and decoder rows D (N, d) the squared error of a state is a
    quadratic form.  Toggling group g (signs s = -1 remove, +1 add) changes it by
    ``-2 sum_{u in g} s_u c_u + Q_g`` where ``c_u = sum_n A_nu (R_n . D_u)`` for the current residual R
    and ``Q_g = sum_n |sum_{u in g} s_u A_nu D_u|^2``; afterwards ``c_v -= sum_{w in g} s_w G_vw`` with the
    sparse Gram entries ``G_vw = (A^T A)_vw (D_v . D_w)``.  The activations are gathered once (one
    batched encoding pass, stored sparse: memory ~ n * (L0_small + L0_large + 1) entries plus an (N, d)
    copy of the decoders), and each step only touches units that co-fire with the applied group.

    Returns a list of dicts, one per point: ``step`` (0 = the small SAE), ``group`` (index into
    ``groups``, -1 for the decoder-bias step, None at step 0), ``kind``, ``n_small``, ``n_large``,
    ``delta_mse``, ``l0``, ``mse``, ``fvu``.  ``groups`` defaults to ``swap_groups(small, large, threshold)``.
    """
    _check_pair(small, large)
    _check_acts(small, activations)
    _check_options(b_dec_step, removals)
    groups = swap_groups(small, large, threshold) if groups is None else groups
    stats = _collect_unit_stats(small, large, activations, batch_size, progress)
    _attach_gram(stats)
    return _path(stats, groups, small, order, seed, b_dec_step, removals, progress)


@torch.no_grad()
def interpolate_many(small, large, activations: torch.Tensor, runs: list[dict], insert=(), threshold: float = 0.7,
                     batch_size: int = 4096, progress: bool = False) -> tuple[list[list[dict]], list[InsertionDeltas]]:
    """Several :func:`interpolate` paths and single-insertion deltas from ONE pass over ``activations`` (n, d_in).

    ``runs``: one dict of :func:`interpolate`'s path options per path (``order``, ``seed``, ``b_dec_step``,
    ``removals``; omitted keys take its defaults); ``insert``: SAEs whose :func:`!insertion_deltas` (all latents)
    into ``small`` the same pass gives.  Returns (the paths, in the order of ``runs``; the deltas, in the order of
    ``insert``), the same numbers as separate :func:`interpolate` and :func:`!insertion_deltas` calls, which
    would encode the activations once per call."""
    _check_pair(small, large)
    _check_acts(small, activations)
    for sae in insert:
        _check_pair(small, sae)
    for run in runs:
        _check_options(run.get("b_dec_step", "auto"), run.get("removals", "any"))
    groups = swap_groups(small, large, threshold)
    stats = _collect_unit_stats(small, large, activations, batch_size, progress, insert)
    _attach_gram(stats)
    paths = [_path(stats, groups, small, run.get("order", "greedy"), run.get("seed", 0), run.get("b_dec_step", "auto"),
                   run.get("removals", "any"), progress) for run in runs]
    return paths, stats.inserted


def _check_options(b_dec_step: str, removals: str) -> None:
    if b_dec_step not in ("auto", "first", "last"):
        raise ValueError(f"b_dec_step must be 'auto', 'first' or 'last'; got {b_dec_step!r}")
    if removals not in ("any", "last"):
        raise ValueError(f"removals must be 'any' or 'last'; got {removals!r}")


def _path(stats: _UnitStats, groups: list[Group], small, order: str, seed: int, b_dec_step: str, removals: str,
          progress: bool) -> list[dict]:
    """One path of :func:`interpolate` from the collected ``stats`` (left unchanged: paths can share them)."""
    n_s = small.cfg.d_sae
    units, gid = _group_units(groups, n_s, stats.D.shape[0])
    sign = np.ones(stats.D.shape[0])
    sign[:n_s] = -1.0  # small latents are removed, large latents and the bias change added
    Q = _self_terms(stats, units, sign)
    score = -2.0 * np.bincount(gid, weights=sign * stats.c, minlength=len(units)) + Q
    sequence = _initial_order(order, score, seed)
    removed = np.array([g.kind == "removed" for g in groups] + [False]) if removals == "last" else None
    if sequence is not None:
        sequence = _place_bias(sequence, b_dec_step)
        if removed is not None:
            sequence = np.concatenate([sequence[~removed[sequence]], sequence[removed[sequence]]])
    elif b_dec_step != "auto":
        score[len(units) - 1] = np.inf  # greedy never picks the bias step; it is placed by hand
    walk = _walk(stats, units, gid, sign, Q, sequence, score if sequence is None else None, b_dec_step, n_s,
                 desc=f"interpolate ({order})", progress=progress, hold=removed if sequence is None else None)
    path, sq = [], stats.sq_small
    nd = stats.n * stats.d
    for step, k, delta, l0 in walk:
        sq += delta
        if k is None:
            group, kind, n_small, n_large = None, "start", 0, 0
        elif k == len(units) - 1:
            group, kind, n_small, n_large = BDEC_GROUP, "b_dec", 0, 0
        else:
            group, kind = k, groups[k].kind
            n_small, n_large = groups[k].small_ids.numel(), groups[k].large_ids.numel()
        path.append(_point(step, group, kind, n_small, n_large, delta / nd, l0, sq, nd, stats.total_var))
    _check_endpoint(sq, stats.sq_large, small.W_dec.dtype)
    return path


def _walk(stats, units, gid, sign, Q, sequence, greedy_score, b_dec_step, n_s, desc, progress, hold=None):
    """Yield ``(step, group index, Δ squared error, l0)`` from the start (group None, Δ = 0) to the end.

    ``greedy_score`` (G,) is the current Δ squared error of every group (greedy order, kept up to date
    as groups are applied); otherwise ``sequence`` (G,) fixes the order.  ``hold`` (G,) bool: groups the greedy
    order leaves until every other group is applied.
    """
    hold = None if hold is None or not hold.any() else hold.copy()
    # groups the greedy order must apply before the held ones (a pinned bias step is placed by hand, not counted)
    left = 0 if hold is None else int((~hold[:-1]).sum()) + (b_dec_step == "auto")
    c = stats.c.copy()
    fires = stats.fires.copy()
    fires[-1] = 0.0  # the decoder-bias change is not a latent
    fired = float(fires[:n_s].sum())
    yield 0, None, 0.0, fired / stats.n
    for step in tqdm(range(1, len(units) + 1), desc=desc, disable=not progress, leave=False):
        k = _next_group(step, len(units), sequence, greedy_score, b_dec_step, hold if left else None)
        if hold is not None and not hold[k] and (k != len(units) - 1 or b_dec_step == "auto"):
            left -= 1
        u = units[k]
        delta = float(-2.0 * (sign[u] * c[u]).sum() + Q[k])
        fired += float((sign[u] * fires[u]).sum())
        _apply_group(stats, u, sign, c, greedy_score, gid)
        if greedy_score is not None:
            greedy_score[k] = np.inf
        yield step, k, delta, fired / stats.n


def _point(step, group, kind, n_small, n_large, delta_mse, l0, sq, nd, total_var) -> dict:
    return {
        "step": step, "group": group, "kind": kind, "n_small": n_small, "n_large": n_large,
        "delta_mse": delta_mse, "l0": l0, "mse": sq / nd, "fvu": sq / total_var,
    }


def _check_endpoint(sq_path: float, sq_large: float, dtype: torch.dtype) -> None:
    """Warn if the incrementally updated error drifted from the large SAE's directly computed error."""
    tol = 1e-8 if dtype == torch.float64 else 1e-3
    if abs(sq_path - sq_large) > tol * max(abs(sq_large), 1e-30):
        warnings.warn(
            f"interpolate: path end point ({sq_path:.6g}) differs from the large SAE's squared error "
            f"({sq_large:.6g}) by more than {tol:g} relative; numerical drift",
            RuntimeWarning,
            stacklevel=3,
        )


def monotonicity(path: list[dict]) -> dict:
    """How monotone an interpolation path is: the fraction of steps that lower MSE, and the Spearman rank
    correlation between step and MSE (-1 = perfectly monotone decreasing)."""
    mse = np.array([p["mse"] for p in path])
    steps = np.arange(len(mse))
    down = float(np.mean(np.diff(mse) <= 1e-12 * max(abs(mse).max(), 1))) if len(mse) > 1 else 1.0
    rank = np.argsort(np.argsort(mse))
    rho = float(np.corrcoef(steps, rank)[0, 1]) if len(mse) > 2 else -1.0
    return {"fraction_of_steps_lowering_mse": down, "spearman_step_vs_mse": rho}


def overshoot(path: list[dict]) -> dict:
    """How far an interpolation path dips below its end point (the larger SAE): ``below`` = (MSE_end - min MSE) /
    MSE_end (0 when it never dips), with the ``l0`` and ``step`` of the lowest point."""
    low = min(path, key=lambda p: p["mse"])
    end = path[-1]["mse"]
    return {"below": max(0.0, (end - low["mse"]) / end) if end > 0 else 0.0, "l0": low["l0"], "step": low["step"]}
