"""The Frankenstein SAE: one SAE assembled from the latents of a whole family."""

from __future__ import annotations

import torch

from .build import insert_latents
from .classify import classify_latents
from .insertion import insertion_deltas


def frankenstein(saes: list, activations: torch.Tensor, threshold: float = 0.7, batch_size: int = 4096):
    """An SAE assembled from a family: start from the smallest, then from each larger SAE insert the latents
    that are novel with respect to what has been assembled so far *and* lower the MSE when inserted alone
    (measured on ``activations`` (n, d_in)).  Returns ``(sae, sources)`` where ``sources`` lists, per latent of
    the result, ``(index of the family member, latent id in it)``."""
    current = saes[0]
    sources = [(0, i) for i in range(saes[0].cfg.d_sae)]
    for j, large in enumerate(saes[1:], start=1):
        cls = classify_latents(current, large, threshold)
        if len(cls.novel) == 0:
            continue
        deltas = insertion_deltas(current, large, activations, cls.novel, batch_size=batch_size)
        keep = cls.novel[torch.as_tensor(deltas.delta_mse) < 0]
        if len(keep):
            current = insert_latents(current, large, keep)
            sources += [(j, int(i)) for i in keep]
    return current, sources
