"""Decoder-direction similarity: the max-cosine search and the pairs above a threshold.

Decoder matrices are SAELens' ``W_dec`` of shape ``(d_sae, d_in)``.  Rows are normalised once; the similarity
matrix is formed in row blocks of about :data:`SIM_BUDGET_BYTES`, so the full ``n_a x n_b`` matrix is never held.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIM_BUDGET_BYTES = 256 * 2**20  # size of one similarity / product block


def _sim_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = torch.promote_types(tensors[0].dtype, tensors[1].dtype)
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _auto_chunk(n_cols: int, dtype: torch.dtype, budget: int = SIM_BUDGET_BYTES) -> int:
    """Rows per block so that a (rows, n_cols) block of ``dtype`` takes about ``budget`` bytes."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(1, budget // max(1, n_cols * itemsize))


def _normalised_pair(W_a: torch.Tensor, W_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm rows of W_a (n_a, d) and W_b (n_b, d), on W_a's device; zero rows stay zero."""
    if W_a.ndim != 2 or W_b.ndim != 2 or W_a.shape[1] != W_b.shape[1]:
        raise ValueError(f"need W_a (n_a, d) and W_b (n_b, d) with equal d; got {tuple(W_a.shape)}, {tuple(W_b.shape)}")
    if W_b.shape[0] == 0:
        raise ValueError("W_b has no rows")
    dtype = _sim_dtype(W_a, W_b)
    a = F.normalize(W_a.detach().to(dtype), dim=1)
    b = F.normalize(W_b.detach().to(device=W_a.device, dtype=dtype), dim=1)
    return a, b


@torch.no_grad()
def max_cosine(W_a: torch.Tensor, W_b: torch.Tensor, chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For every row of ``W_a`` (n_a, d): the largest cosine similarity with a row of ``W_b`` (n_b, d).

    Rows are normalised once; then blocks of ``chunk_size`` rows of W_a are multiplied by W_b^T into a
    reused (chunk_size, n_b) buffer and reduced with ``max``, so the full n_a x n_b matrix is never held.
    ``chunk_size=None`` picks a block of about 256 MB.  Runs on W_a's device, in float32 or float64
    (half precision inputs are upcast to float32).

    Returns ``(values, indices)``: (n_a,) max cosine and (n_a,) LongTensor argmax row of W_b.
    """
    a, b = _normalised_pair(W_a, W_b)
    n_a, n_b = a.shape[0], b.shape[0]
    chunk = int(chunk_size) if chunk_size else _auto_chunk(n_b, a.dtype)
    if chunk < 1:
        raise ValueError("chunk_size must be positive")
    values = torch.empty(n_a, dtype=a.dtype, device=a.device)
    indices = torch.empty(n_a, dtype=torch.long, device=a.device)
    buf = torch.empty(min(chunk, n_a), n_b, dtype=a.dtype, device=a.device)
    bt = b.T
    for start in range(0, n_a, chunk):
        stop = min(start + chunk, n_a)
        block = torch.mm(a[start:stop], bt, out=buf[: stop - start])
        torch.max(block, dim=1, out=(values[start:stop], indices[start:stop]))
    return values, indices


@torch.no_grad()
def pairs_above(
    W_a: torch.Tensor, W_b: torch.Tensor, threshold: float, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs (i, j) with cos(W_a[i], W_b[j]) > threshold, computed in row blocks like :func:`max_cosine`.

    Returns ``(i, j, cos)``: (p,) LongTensor rows of W_a, (p,) LongTensor rows of W_b, (p,) cosines,
    sorted by i then j.
    """
    a, b = _normalised_pair(W_a, W_b)
    n_a, n_b = a.shape[0], b.shape[0]
    chunk = int(chunk_size) if chunk_size else _auto_chunk(n_b, a.dtype)
    if chunk < 1:
        raise ValueError("chunk_size must be positive")
    buf = torch.empty(min(chunk, n_a), n_b, dtype=a.dtype, device=a.device)
    bt = b.T
    ii, jj, cc = [], [], []
    for start in range(0, n_a, chunk):
        stop = min(start + chunk, n_a)
        block = torch.mm(a[start:stop], bt, out=buf[: stop - start])
        i, j = torch.nonzero(block > threshold, as_tuple=True)
        ii.append(i + start)
        jj.append(j)
        cc.append(block[i, j])
    if not ii:
        empty = torch.empty(0, dtype=torch.long, device=a.device)
        return empty, empty.clone(), torch.empty(0, dtype=a.dtype, device=a.device)
    return torch.cat(ii), torch.cat(jj), torch.cat(cc)


@torch.no_grad()
def top_matches(W_a: torch.Tensor, W_b: torch.Tensor, ids, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``W_b`` (n_b, d) closest in cosine to each of the rows ``ids`` (m,) of ``W_a`` (n_a, d).

    Returns ``(cosines, indices)``, both (m, min(k, n_b)), best first.  For a few latents of an explorer;
    the whole-matrix search is :func:`max_cosine`.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    a, b = _normalised_pair(W_a[ids.to(W_a.device)], W_b)
    return (a @ b.T).topk(min(int(k), b.shape[0]), dim=1)
