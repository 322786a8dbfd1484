"""Classification of a large SAE's latents into *novel* and *reconstruction* latents by max decoder cosine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .compat import _check_decoders, _ItemAccess
from .similarity import max_cosine


@dataclass
class LatentClassification(_ItemAccess):
    """Large-SAE latents split by their best decoder cosine with the small SAE.

    ``novel`` (LongTensor): large ids with max cos <= threshold; ``reconstruction`` (LongTensor): > threshold;
    ``max_cos`` (n_large,) best cosine; ``match`` (n_large,) index of the best small latent.
    """

    threshold: float
    novel: torch.Tensor
    reconstruction: torch.Tensor
    max_cos: torch.Tensor
    match: torch.Tensor

    @property
    def novel_fraction(self) -> float:
        return self.novel.numel() / max(1, self.max_cos.numel())


def classify_latents(small, large, threshold: float = 0.7, chunk_size: int | None = None) -> LatentClassification:
    """Classify each of the large SAE's latents as novel (max decoder cos <= threshold) or reconstruction."""
    _check_decoders(small, large)
    max_cos, match = max_cosine(large.W_dec, small.W_dec, chunk_size=chunk_size)
    above = max_cos > threshold
    return LatentClassification(
        threshold=float(threshold),
        novel=torch.nonzero(~above).flatten(),
        reconstruction=torch.nonzero(above).flatten(),
        max_cos=max_cos,
        match=match,
    )


def novel_fraction(small, large, thresholds: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Fraction of the large SAE's latents that are novel at each threshold: (len(thresholds),) float64.

    The max cosines are computed once, so a whole threshold sweep costs one :func:`max_cosine`.
    """
    _check_decoders(small, large)
    max_cos, _ = max_cosine(large.W_dec, small.W_dec)
    t = torch.as_tensor(thresholds, dtype=torch.float64).flatten()
    return (max_cos.double().cpu()[None, :] <= t[:, None]).double().mean(dim=1)
