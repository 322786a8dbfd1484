"""Classification of a large SAE's latents into *novel* and *reconstruction* latents by max decoder cosine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..evaluate import DEAD_RATE, firing_rates
from .compat import _check_decoders, _ItemAccess
from .similarity import max_cosine


@dataclass
class LatentClassification(_ItemAccess):
    """Large-SAE latents split by their best decoder cosine with the small SAE.

    ``novel`` (LongTensor): live large ids with max cos <= threshold; ``reconstruction`` (LongTensor): live, > threshold;
    ``dead`` (LongTensor): large ids firing on <= ``dead_rate`` of the held-out rows (empty when the classification
    had no activations: then every latent counts as live); ``max_cos`` (n_large,) best cosine; ``match`` (n_large,)
    index of the best small latent; ``fire_rate`` (n_large,) float64 firing rates (None without activations).
    """

    threshold: float
    novel: torch.Tensor
    reconstruction: torch.Tensor
    max_cos: torch.Tensor
    match: torch.Tensor
    dead: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    fire_rate: torch.Tensor | None = None

    @property
    def n_live(self) -> int:
        """Number of live large latents (all of them without activations)."""
        return self.novel.numel() + self.reconstruction.numel()

    @property
    def novel_fraction(self) -> float:
        """Share of the live large latents that are novel (over all latents without activations)."""
        return self.novel.numel() / max(1, self.n_live)


def classify_latents(small, large, threshold: float = 0.7, activations: torch.Tensor | None = None,
                     dead_rate: float = DEAD_RATE, chunk_size: int | None = None,
                     fire_rate: torch.Tensor | None = None) -> LatentClassification:
    """Classify each of the large SAE's live latents as novel (max decoder cos <= threshold) or reconstruction.

    With held-out ``activations`` (n, d_in), a large latent firing on <= ``dead_rate`` of the rows is *dead*: it is
    listed in ``.dead`` and in neither class, so ``.novel_fraction`` is over live latents (a dead latent's decoder row
    is whatever initialisation left; counting it as novel inflates the share).  ``fire_rate`` (n_large,) may be
    given instead of ``activations`` when the rates are already known (e.g. ``insertion_deltas(...).delta_l0``).
    Without either, every latent counts as live (the behaviour before dead latents were set apart).
    """
    _check_decoders(small, large)
    max_cos, match = max_cosine(large.W_dec, small.W_dec, chunk_size=chunk_size)
    if fire_rate is None and activations is not None:
        fire_rate = firing_rates(large, activations)
    live = torch.ones(max_cos.numel(), dtype=torch.bool)
    if fire_rate is not None:
        fire_rate = torch.as_tensor(fire_rate, dtype=torch.float64).cpu()
        if fire_rate.shape != (large.cfg.d_sae,):
            raise ValueError(f"fire_rate has shape {tuple(fire_rate.shape)}, expected ({large.cfg.d_sae},)")
        live = fire_rate > dead_rate
    above = max_cos.cpu() > threshold
    return LatentClassification(
        threshold=float(threshold),
        novel=torch.nonzero(~above & live).flatten(),
        reconstruction=torch.nonzero(above & live).flatten(),
        max_cos=max_cos,
        match=match,
        dead=torch.nonzero(~live).flatten(),
        fire_rate=fire_rate,
    )


def novel_fraction(small, large, thresholds: Sequence[float] | torch.Tensor,
                   live: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of the large SAE's latents that are novel at each threshold: (len(thresholds),) float64.

    The max cosines are computed once, so a whole threshold sweep costs one :func:`max_cosine`.  Over every latent,
    dead or alive, unless ``live`` (n_large,) bool (e.g. ``alive_latents(firing_rates(large, acts), 1)``) keeps only
    the live ones, as :func:`classify_latents` with activations does.
    """
    _check_decoders(small, large)
    max_cos, _ = max_cosine(large.W_dec, small.W_dec)
    if live is not None:
        max_cos = max_cos[torch.as_tensor(live, dtype=torch.bool).to(max_cos.device)]
    t = torch.as_tensor(thresholds, dtype=torch.float64).flatten()
    return (max_cos.double().cpu()[None, :] <= t[:, None]).double().mean(dim=1)
