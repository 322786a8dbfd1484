"""Evaluation of SAEs on held-out activations: MSE, fraction of variance unexplained, L0, dead latents,
and (for language models) cross-entropy with the SAE spliced in.

Conventions used everywhere in this book:

* ``mse``  = mean over tokens *and* dimensions of ``(x - x_hat)**2`` (SAELens' convention).
* ``fvu``  = ``sum((x - x_hat)**2) / sum((x - mean(x))**2)`` over the whole evaluation set;
  variance explained = ``1 - fvu``.
* ``l0``   = mean number of non-zero latents per token.
* ``dead`` = fraction of latents that never fire on the evaluation set.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def reconstruction_metrics(sae, acts: torch.Tensor, batch_size: int = 4096, progress: bool = False) -> dict:
    """Reconstruction metrics of a SAELens ``sae`` on ``acts`` (n_tokens, d_in), in batches.

    Returns a dict with ``mse``, ``fvu``, ``variance_explained``, ``l0``, ``dead_fraction``, ``n_tokens``
    and ``fire_counts`` (d_sae,) — how many tokens each latent fired on.
    """
    device = sae.W_dec.device
    dtype = sae.W_dec.dtype
    n, d = acts.shape
    if d != sae.cfg.d_in:
        raise ValueError(f"activations have d={d} but the SAE expects d_in={sae.cfg.d_in}")
    sq_err = torch.zeros((), dtype=torch.float64)
    l0_sum = torch.zeros((), dtype=torch.float64)
    fire = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    s1 = torch.zeros(d, dtype=torch.float64)
    s2 = torch.zeros((), dtype=torch.float64)
    for start in tqdm(range(0, n, batch_size), desc="evaluate", disable=not progress, leave=False):
        x = acts[start:start + batch_size].to(device=device, dtype=dtype)
        f = sae.encode(x)
        x_hat = sae.decode(f)
        sq_err += ((x - x_hat).double() ** 2).sum().cpu()
        active = f != 0
        l0_sum += active.sum().double().cpu()
        fire += active.sum(0).cpu()
        xd = x.double().cpu()
        s1 += xd.sum(0)
        s2 += (xd ** 2).sum()
    total_var = s2 - (s1 ** 2).sum() / n
    fvu = (sq_err / total_var).item()
    return {
        "mse": (sq_err / (n * d)).item(),
        "fvu": fvu,
        "variance_explained": 1.0 - fvu,
        "l0": (l0_sum / n).item(),
        "dead_fraction": (fire == 0).double().mean().item(),
        "n_tokens": n,
        "fire_counts": fire,
    }
