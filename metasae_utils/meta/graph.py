"""Two graphs on the latents of one SAE, and how many edges they share (the paper's 28.92 %).

* **Meta graph**: latents i and j are linked when their meta-SAE codes share an active meta-latent.
* **Neighbour graph**: i and j are linked when their nearest latent (max decoder cosine) in a smaller SAE is the
  same one.

Edges are undirected pairs ``i < j`` encoded as ``i * n + j`` (int64).  The control is a random graph with exactly
the meta graph's degree sequence (configuration model: node stubs paired at random, then double-edge swaps repair
self-loops and repeated edges), which keeps how many links each latent has but not with whom.
"""

from __future__ import annotations

import numpy as np
import torch

from .decompose import Decomposition


#: refuse graphs with more candidate pairs than this (int64 pairs: 8 bytes each)
MAX_PAIRS = 400_000_000


def _pairs_within(labels: np.ndarray, members: np.ndarray, n: int) -> np.ndarray:
    """Encoded pairs (i < j) of ``members`` (k,) that carry the same value of ``labels`` (k,): sorted unique int64."""
    order = np.argsort(labels, kind="stable")
    lab, mem = labels[order], members[order]
    cuts = np.flatnonzero(np.diff(lab)) + 1
    sizes = np.diff(np.concatenate([[0], cuts, [lab.size]])).astype(np.int64)
    total = int((sizes * (sizes - 1) // 2).sum())
    if total > MAX_PAIRS:
        big = lab[np.concatenate([[0], cuts])][np.argmax(sizes)] if sizes.size else None
        raise ValueError(f"the graph would have {total:,} candidate edges (> {MAX_PAIRS:,}); group {big} alone links "
                         f"{int(sizes.max())} latents — drop that meta-latent (e.g. one shared by every latent) first")
    out = []
    for grp in np.split(mem, cuts):
        if grp.size < 2:
            continue
        a, b = np.triu_indices(grp.size, k=1)
        i, j = np.minimum(grp[a], grp[b]), np.maximum(grp[a], grp[b])
        out.append(i.astype(np.int64) * n + j)
    return np.unique(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def meta_edges(decomposition: Decomposition, keep: torch.Tensor | None = None) -> np.ndarray:
    """Edges of the meta graph: latent pairs sharing an active meta-latent.  ``keep`` (n,) bool restricts the
    graph to some latents (e.g. those that fire).  Returns sorted unique encoded pairs (int64)."""
    n = len(decomposition)
    idx = decomposition.indices.numpy()
    rows = np.repeat(np.arange(n), idx.shape[1]).reshape(idx.shape)
    mask = idx >= 0
    if keep is not None:
        mask &= np.asarray(keep, dtype=bool)[:, None]
    return _pairs_within(idx[mask], rows[mask], n)


def neighbour_edges(nearest: torch.Tensor, keep: torch.Tensor | None = None) -> np.ndarray:
    """Edges of the neighbour graph: latent pairs whose nearest smaller-SAE latent ``nearest`` (n,) is the same."""
    lab = torch.as_tensor(nearest).numpy()
    n = lab.size
    members = np.arange(n) if keep is None else np.flatnonzero(np.asarray(keep, dtype=bool))
    return _pairs_within(lab[members], members, n)


def degrees(edges: np.ndarray, n: int) -> np.ndarray:
    """(n,) degree of every node of an encoded edge list."""
    return np.bincount(edges // n, minlength=n) + np.bincount(edges % n, minlength=n)


def degree_preserving_random(edges: np.ndarray, n: int, seed: int = 0, swap_rounds: int = 10) -> np.ndarray:
    """A random simple graph on ``n`` nodes with the degree sequence of ``edges`` (as nearly as a simple graph
    allows): stubs paired at random, then bad pairs (self-loops, repeats) re-paired by swapping with random
    edges for up to ``swap_rounds`` rounds; any left are dropped (their number is tiny next to the edge count)."""
    rng = np.random.default_rng(seed)
    stubs = np.repeat(np.arange(n), degrees(edges, n))
    rng.shuffle(stubs)
    if stubs.size % 2:
        stubs = stubs[:-1]
    a, b = stubs[0::2].copy(), stubs[1::2].copy()
    for _ in range(swap_rounds):
        code = np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)
        _, first = np.unique(code, return_index=True)
        bad = np.ones(a.size, dtype=bool)
        bad[first] = False
        bad |= a == b
        if not bad.any():
            break
        where = np.flatnonzero(bad)
        partner = rng.integers(0, a.size, size=where.size)
        b[where], b[partner] = b[partner].copy(), b[where].copy()
    i, j = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    ok = i != j
    return np.unique(i[ok] * n + j[ok])


def edge_overlap(meta: np.ndarray, nn: np.ndarray, n: int, seed: int = 0) -> dict:
    """How many edges the meta graph ``meta`` and the neighbour graph ``nn`` (encoded pairs on ``n`` latents) share.

    Returns edge counts, ``shared``, ``meta_in_nn`` (share of meta edges that are neighbour edges), ``nn_in_meta``
    (the reverse), ``jaccard``, and the control ``random_meta_in_nn`` / ``random_nn_in_meta``: the same shares for
    a degree-preserving random graph in place of the meta graph (seeded)."""
    shared = np.intersect1d(meta, nn, assume_unique=True).size
    rand = degree_preserving_random(meta, n, seed=seed)
    r_shared = np.intersect1d(rand, nn, assume_unique=True).size
    union = meta.size + nn.size - shared

    def frac(a, b):
        return a / b if b else float("nan")
    return {"meta_edges": int(meta.size), "nn_edges": int(nn.size), "shared": int(shared),
            "meta_in_nn": frac(shared, meta.size), "nn_in_meta": frac(shared, nn.size), "jaccard": frac(shared, union),
            "random_edges": int(rand.size), "random_meta_in_nn": frac(r_shared, rand.size),
            "random_nn_in_meta": frac(r_shared, nn.size)}


def nearest_smaller(widths: list[int], base_width: int, ratio: float = 1 / 16) -> int:
    """The width of the family member nearest (in log) to ``ratio`` × ``base_width`` among those narrower than it
    (the paper pairs SAE-49152 with SAE-3072: 1/16)."""
    smaller = [w for w in widths if w < base_width]
    if not smaller:
        raise ValueError(f"no SAE of the family is narrower than the base SAE ({base_width})")
    target = np.log(ratio * base_width)
    return min(smaller, key=lambda w: abs(np.log(w) - target))
