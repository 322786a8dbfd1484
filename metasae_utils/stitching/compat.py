"""Which SAEs can be stitched, and the input checks every stitching function shares.

Only SAEs whose latents are *independent* are supported: a latent's activation depends on the input alone, never
on the other latents (StandardSAE / JumpReLUSAE / GatedSAE and their training classes; BatchTopK-trained SAEs are
saved as JumpReLU for inference and so qualify).  TopK, AbsTopK, BatchTopK and Matryoshka (at training time),
MatchingPursuit, Temporal SAEs and transcoders are refused.
"""

from __future__ import annotations

import dataclasses

import torch


class _ItemAccess:
    """Lets result dataclasses be read like dicts (``res["novel"]``) as well as attributes."""

    def __getitem__(self, key: str):
        return getattr(self, key)

    def keys(self):
        return [f.name for f in dataclasses.fields(self)]


# per-latent parameters and the axis along which they index latents
_LATENT_AXES = {
    "standard": {"W_enc": 1, "b_enc": 0, "W_dec": 0},
    "jumprelu": {"W_enc": 1, "b_enc": 0, "W_dec": 0, "threshold": 0},
    "gated": {"W_enc": 1, "W_dec": 0, "b_gate": 0, "b_mag": 0, "r_mag": 0},
}


def _supported_classes() -> dict[type, str]:
    """SAELens classes whose latents are independent, mapped to their parameter layout."""
    from sae_lens.saes import (
        GatedSAE,
        GatedTrainingSAE,
        JumpReLUSAE,
        JumpReLUTrainingSAE,
        StandardSAE,
        StandardTrainingSAE,
    )

    return {
        StandardSAE: "standard",
        StandardTrainingSAE: "standard",
        JumpReLUSAE: "jumprelu",
        JumpReLUTrainingSAE: "jumprelu",
        GatedSAE: "gated",
        GatedTrainingSAE: "gated",
    }


def _layout(sae) -> str:
    """Parameter layout name of a supported SAE; ValueError (with the reason) otherwise."""
    supported = _supported_classes()
    layout = supported.get(type(sae))
    if layout is None:
        names = ", ".join(sorted(c.__name__ for c in supported))
        raise ValueError(
            f"{type(sae).__name__} is not supported for stitching: its latents must be independent "
            f"(each latent's activation a function of the input alone), and it must be one of: {names}. "
            "TopK / BatchTopK / Matryoshka (at training time), MatchingPursuit, Temporal SAEs and transcoders "
            "are refused."
        )
    return layout


def _check_pair(small, large) -> str:
    """Validate that ``small`` and ``large`` can be stitched; return their parameter layout."""
    layout = _layout(small)
    _layout(large)
    if type(small) is not type(large):
        raise ValueError(
            f"architectures differ: small is {type(small).__name__}, large is {type(large).__name__}"
        )
    if small.cfg.d_in != large.cfg.d_in:
        raise ValueError(f"d_in differs: small has d_in={small.cfg.d_in}, large has d_in={large.cfg.d_in}")
    for name in ("normalize_activations", "reshape_activations"):
        a, b = getattr(small.cfg, name), getattr(large.cfg, name)
        if a != b:
            raise ValueError(f"cfg.{name} differs: small has {a!r}, large has {b!r}")
    return layout


def _check_decoders(small, large) -> None:
    if small.W_dec.shape[1] != large.W_dec.shape[1]:
        raise ValueError(
            f"d_in differs: small W_dec is {tuple(small.W_dec.shape)}, large W_dec is {tuple(large.W_dec.shape)}"
        )


def _check_acts(sae, acts: torch.Tensor) -> None:
    if acts.ndim != 2 or acts.shape[1] != sae.cfg.d_in:
        raise ValueError(f"activations must be (n_tokens, d_in={sae.cfg.d_in}); got {tuple(acts.shape)}")
    if acts.shape[0] == 0:
        raise ValueError("activations are empty")


def stitchable(sae) -> bool:
    """Can this SAE be stitched (its latents independent, see the module docstring)?"""
    return type(sae) in _supported_classes()
