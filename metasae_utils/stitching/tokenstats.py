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

    err (B, d) float64, acts (B, m), W (m, d); done in blocks of ``chunk`` latents.
    """
    m = W.shape[0]
    out = torch.empty(m, dtype=torch.float64, device=err.device)
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        proj = err @ W[s:e].to(device=err.device, dtype=torch.float64).T  # (B, e-s)
        out[s:e] = (proj * acts[:, s:e].to(torch.float64)).sum(0)
    return out


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
