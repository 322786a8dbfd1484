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


def _compute_dtype(precision: str, device) -> str:
    """The dtype name the similarity products run in: ``precision`` ("auto", "float32", "bfloat16") resolved."""
    from ..precision import resolve
    return resolve(precision, device)[0]


def _blocks(a: torch.Tensor, b: torch.Tensor, chunk: int, bf16: bool):
    """Yield ``(start, block)``: ``a[start:start+chunk] @ b.T`` ((rows, n_b)), from one reused buffer.

    In bf16 the inputs are rounded once and the block comes back as bf16; see :func:`_exact_pairs`."""
    if chunk < 1:
        raise ValueError("chunk_size must be positive")
    n_a, n_b = a.shape[0], b.shape[0]
    if bf16:
        a, b = a.to(torch.bfloat16), b.to(torch.bfloat16)
    bt = b.T.contiguous() if bf16 else b.T
    buf = torch.empty(min(chunk, n_a), n_b, dtype=a.dtype, device=a.device)
    for start in range(0, n_a, chunk):
        stop = min(start + chunk, n_a)
        yield start, torch.mm(a[start:stop], bt, out=buf[: stop - start])


def _exact_pairs(a: torch.Tensor, b: torch.Tensor, i: torch.Tensor, j: torch.Tensor, per: int = 65536) -> torch.Tensor:
    """cos(a[i], b[j]) for index pairs (p,), in a's dtype (fp32 / fp64): the re-check of bf16 candidates."""
    out = torch.empty(i.numel(), dtype=a.dtype, device=a.device)
    for s in range(0, i.numel(), per):
        out[s:s + per] = (a[i[s:s + per]] * b[j[s:s + per]]).sum(1)
    return out


@torch.no_grad()
def max_cosine(W_a: torch.Tensor, W_b: torch.Tensor, chunk_size: int | None = None,
               precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """For every row of ``W_a`` (n_a, d): the largest cosine similarity with a row of ``W_b`` (n_b, d).

    Rows are normalised once; then blocks of ``chunk_size`` rows of W_a are multiplied by W_b^T into a
    reused (chunk_size, n_b) buffer and reduced with ``max``, so the full n_a x n_b matrix is never held.
    ``chunk_size=None`` picks a block of about 256 MB.  Runs on W_a's device; values are float32 or float64
    (half precision inputs are upcast to float32).

    ``precision``: "float32" computes the products in the inputs' dtype; "bfloat16" computes them in bf16 (the
    fast path on AMX CPUs and GPUs) and then recomputes exactly, in the inputs' dtype, every candidate within
    ``2 * BF16_COSINE_ERROR`` of its row's bf16 maximum: the true maximum is always among them, so values and
    argmax equal the exact search's (up to float32 summation order, ~1e-7).  "auto": bf16 where it is fast
    (:func:`!metasae_utils.precision.resolve`).

    Returns ``(values, indices)``: (n_a,) max cosine and (n_a,) LongTensor argmax row of W_b.
    """
    a, b = _normalised_pair(W_a, W_b)
    n_a, n_b = a.shape[0], b.shape[0]
    bf16 = _compute_dtype(precision, a.device) == "bfloat16"
    chunk = int(chunk_size) if chunk_size else _auto_chunk(n_b, torch.bfloat16 if bf16 else a.dtype)
    values = torch.empty(n_a, dtype=a.dtype, device=a.device)
    indices = torch.empty(n_a, dtype=torch.long, device=a.device)
    for start, block in _blocks(a, b, chunk, bf16):
        stop = start + block.shape[0]
        if not bf16:
            torch.max(block, dim=1, out=(values[start:stop], indices[start:stop]))
            continue
        v, j = _exact_row_max(a[start:stop], b, block)
        values[start:stop], indices[start:stop] = v, j
    return values, indices


def _exact_row_max(a: torch.Tensor, b: torch.Tensor, block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (value, argmax) per row of a (m, d) against b (n_b, d), given the bf16 block (m, n_b) of products."""
    from ..precision import BF16_COSINE_ERROR
    approx = block.float()
    top = approx.max(dim=1, keepdim=True).values
    r, j = torch.nonzero(approx >= top - 2 * BF16_COSINE_ERROR, as_tuple=True)
    exact = _exact_pairs(a, b, r, j)
    m = a.shape[0]
    best = torch.full((m,), -torch.inf, dtype=a.dtype, device=a.device).scatter_reduce(0, r, exact, "amax")
    winner = exact == best[r]  # ties: the smallest index, as torch.max does
    arg = torch.full((m,), b.shape[0], dtype=torch.long, device=a.device).scatter_reduce(0, r[winner], j[winner], "amin")
    return best, arg


@torch.no_grad()
def pairs_above(
    W_a: torch.Tensor, W_b: torch.Tensor, threshold: float, chunk_size: int | None = None, precision: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs (i, j) with cos(W_a[i], W_b[j]) > threshold, computed in row blocks like :func:`max_cosine`.

    In bf16 (``precision`` as in :func:`max_cosine`) every pair within ``BF16_COSINE_ERROR`` below the threshold
    is a candidate, re-checked exactly in the inputs' dtype, so the set of pairs equals the exact search's.

    Returns ``(i, j, cos)``: (p,) LongTensor rows of W_a, (p,) LongTensor rows of W_b, (p,) cosines,
    sorted by i then j.
    """
    from ..precision import BF16_COSINE_ERROR
    a, b = _normalised_pair(W_a, W_b)
    n_b = b.shape[0]
    bf16 = _compute_dtype(precision, a.device) == "bfloat16"
    chunk = int(chunk_size) if chunk_size else _auto_chunk(n_b, torch.bfloat16 if bf16 else a.dtype)
    ii, jj, cc = [], [], []
    for start, block in _blocks(a, b, chunk, bf16):
        if bf16:
            i, j = torch.nonzero(block.float() > threshold - BF16_COSINE_ERROR, as_tuple=True)
            c = _exact_pairs(a, b, i + start, j)
            keep = c > threshold
            i, j, c = i[keep], j[keep], c[keep]
        else:
            i, j = torch.nonzero(block > threshold, as_tuple=True)
            c = block[i, j]
        ii.append(i + start)
        jj.append(j)
        cc.append(c)
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
