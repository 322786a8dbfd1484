"""Matched groups: connected components of the (small, large) decoder-similarity graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .compat import _check_decoders
from .similarity import pairs_above


@dataclass
class Group:
    """One connected component of the (small, large) decoder-similarity graph.

    ``small_ids`` / ``large_ids``: LongTensors of small / large latent ids.  Swapping the group removes its
    small latents and adds its large ones.  ``kind``: "matched" (both sides), "removed" (small latent
    with no match) or "novel" (large latent with no match).
    """

    small_ids: torch.Tensor
    large_ids: torch.Tensor

    @property
    def kind(self) -> str:
        if self.small_ids.numel() and self.large_ids.numel():
            return "matched"
        return "removed" if self.small_ids.numel() else "novel"


def _components(n_small: int, n_large: int, i_large: np.ndarray, j_small: np.ndarray) -> np.ndarray:
    """Component label (n_small + n_large,) of the bipartite graph; nodes 0..n_small-1 are small latents."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = n_small + n_large
    rows = j_small.astype(np.int64)
    cols = n_small + i_large.astype(np.int64)
    graph = sp.coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels


def swap_groups(small, large, threshold: float = 0.7, chunk_size: int | None = None) -> list[Group]:
    """Connected components of the bipartite graph linking small latent j and large latent i when
    cos(W_dec_small[j], W_dec_large[i]) > threshold, orphans included.

    Every small and every large latent is in exactly one group.  Groups are ordered by their smallest
    node (small latents numbered first, then large ones), ids inside a group ascending.
    """
    _check_decoders(small, large)
    n_s, n_l = small.cfg.d_sae, large.cfg.d_sae
    i, j, _ = pairs_above(large.W_dec, small.W_dec, threshold, chunk_size=chunk_size)
    labels = _components(n_s, n_l, i.cpu().numpy(), j.cpu().numpy())
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels))[:-1]
    groups = []
    for members in np.split(order, bounds):
        members = torch.from_numpy(members)
        is_small = members < n_s
        groups.append(Group(small_ids=members[is_small], large_ids=members[~is_small] - n_s))
    return groups
