"""Per-token statistics shared by the insertion deltas and the interpolation walk."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


def _output_scale(sae, x: torch.Tensor) -> torch.Tensor | None:
    """Per-token factor s (B,) with ``sae.decode(f) = s * (f @ W_dec + b_dec) + offset(x)``; None if s = 1.

    Mirrors SAELens' run-time normalisations: ``constant_norm_rescale`` divides the output by
    ``sqrt(d_in) / |x|``; ``layer_norm`` multiplies it by the (unbiased) std of the centred input.  Other
    modes ("none", "expected_average_only_in", "covariance_whitening") do nothing at inference.
    """
    mode = sae.cfg.normalize_activations
    x = x.to(sae.dtype)
    if mode == "constant_norm_rescale":
        return 1.0 / ((sae.cfg.d_in**0.5) / x.norm(dim=-1))
    if mode == "layer_norm":
        return (x - x.mean(dim=-1, keepdim=True)).std(dim=-1)
    return None


def _masked_dot_sum(err: torch.Tensor, acts: torch.Tensor, W: torch.Tensor, chunk: int) -> torch.Tensor:
    """``sum_n acts[n, j] * (err[n] . W[j])`` for every j: (m,) float64.

    err (B, d) float64, acts (B, m), W (m, d); dense products in blocks of ``chunk`` latents (the CUDA path of
    :func:`_sparse_dot_sum`).
    """
    m = W.shape[0]
    out = torch.empty(m, dtype=torch.float64, device=err.device)
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        proj = err @ W[s:e].to(device=err.device, dtype=torch.float64).T  # (B, e-s)
        out[s:e] = (proj * acts[:, s:e].to(torch.float64)).sum(0)
    return out


def _sparse_dot_sum(err: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor,
                    W: torch.Tensor) -> torch.Tensor:
    """``sum_n A[n, j] * (err[n] . W[j])`` for every j: (m,) float64, for the sparse A (B, m) given by its
    non-zeros ``A[rows[i], cols[i]] = vals[i]`` (nnz,).

    err (B, d) float64, W (m, d).  On the CPU it is ``(A^T err)_j . W_j``: one sparse (m, B) x dense (B, d) product
    (scipy, float64) touching only the non-zeros, instead of the dense (B, m) product ``err @ W^T``; the same sum,
    reordered (float64 rounding).  On CUDA the dense blocks of :func:`_masked_dot_sum`.
    """
    import numpy as np
    import scipy.sparse as sp

    m, B = W.shape[0], err.shape[0]
    if err.is_cuda:
        A = torch.zeros(B, m, dtype=torch.float64, device=err.device)
        A[rows.to(err.device), cols.to(err.device)] = vals.to(device=err.device, dtype=torch.float64)
        from .similarity import _auto_chunk
        return _masked_dot_sum(err, A, W, _auto_chunk(B, torch.float64))
    v, e = vals.detach().double().cpu().numpy(), err.detach().cpu().numpy()
    At = sp.csr_matrix((v, (cols.cpu().numpy(), rows.cpu().numpy())), shape=(m, B))
    M = At @ e  # (m, d): sum_n A[n, j] err[n]
    Wd = W.detach().to(torch.float64).cpu().numpy()
    return torch.from_numpy(np.einsum("ij,ij->i", M, Wd)).to(err.device)


class _VarianceAccumulator:
    """Accumulates sum x and sum |x|^2 in float64 for the FVU denominator (as in evaluate.py)."""

    def __init__(self, d: int):
        self.s1 = torch.zeros(d, dtype=torch.float64)
        self.s2 = torch.zeros((), dtype=torch.float64)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        xd = x.double().cpu()
        self.s1 += xd.sum(0)
        self.s2 += (xd**2).sum()
        self.n += xd.shape[0]

    @property
    def total(self) -> float:
        return float(self.s2 - (self.s1**2).sum() / self.n)


def _batches(acts: torch.Tensor, batch_size: int, desc: str, progress: bool):
    n = acts.shape[0]
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        yield start, acts[start : start + batch_size]
