"""Building stitched SAEs: latents of two SAEs in one, each keeping exactly its own activation.

SAELens encodes ``(x' - b_dec * apply_b_dec_to_input) @ W_enc + b_enc`` (``x'`` = the normalised input) and decodes
``f @ W_dec + b_dec``.  A latent moved from SAE ``L`` into an SAE whose input offset is ``o_new`` gets its encoder
bias shifted by ``(o_new - o_L) @ W_enc_L[:, i]`` (``o = b_dec`` when the SAE applies ``b_dec`` to its input, else
``0``), so its pre-activation, and hence its activation, equals its activation in ``L`` exactly (Gated SAEs:
``b_gate`` gets the shift, ``b_mag`` the shift times ``exp(r_mag)``; JumpReLU thresholds are copied unchanged).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Literal

import torch

from .compat import _LATENT_AXES, _check_pair


def _input_offset(sae) -> torch.Tensor:
    """What the SAE subtracts from its (normalised) input before encoding: (d_in,) float64."""
    b = sae.b_dec.detach().double()
    return b if sae.cfg.apply_b_dec_to_input else torch.zeros_like(b)


def _as_ids(ids, n: int, device) -> torch.Tensor:
    """Latent ids (any int sequence / tensor / None = all) as a (m,) LongTensor, range-checked."""
    if ids is None:
        return torch.arange(n, device=device)
    t = torch.as_tensor(ids, dtype=torch.long).flatten().to(device)
    if t.numel() and (t.min() < 0 or t.max() >= n):
        raise ValueError(f"latent ids must lie in [0, {n}); got min {int(t.min())}, max {int(t.max())}")
    return t


def _latent_params(sae, layout: str, ids: torch.Tensor, target_offset: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float64 per-latent parameters of ``sae`` for latents ``ids`` (m,), re-biased for a new input offset.

    ``target_offset`` (d_in,) is what the destination SAE subtracts from its input.  The encoder biases
    are shifted by ``(target_offset - own_offset) @ W_enc[:, ids]`` so the latents' pre-activations, and
    therefore their activations, are unchanged.  Returns name -> tensor with the latent axis of length m.
    """
    dev = target_offset.device
    ids = ids.to(sae.W_dec.device)
    params = {
        name: getattr(sae, name).detach().index_select(axis, ids).to(device=dev, dtype=torch.float64)
        for name, axis in _LATENT_AXES[layout].items()
    }
    shift = (target_offset - _input_offset(sae).to(dev)) @ params["W_enc"]  # (m,)
    if "b_enc" in params:
        params["b_enc"] = params["b_enc"] + shift
    if "b_gate" in params:
        params["b_gate"] = params["b_gate"] + shift
        params["b_mag"] = params["b_mag"] + shift * params["r_mag"].exp()
    return params


@torch.no_grad()
def stitch(
    small,
    large,
    small_ids=None,
    large_ids=None,
    b_dec: Literal["small", "large"] = "small",
):
    """A new SAE of the small SAE's class and config holding small latents ``small_ids`` then large ``large_ids``.

    ``small_ids`` (default: all small latents) and ``large_ids`` (default: none) are int sequences or
    LongTensors.  The new SAE's latents are ``small_ids`` followed by ``large_ids``, so
    ``d_sae = len(small_ids) + len(large_ids)``.  Its decoder bias is the small or the large SAE's
    (``b_dec="small" | "large"``); every latent's encoder bias is shifted so that its activation equals its
    activation in the SAE it came from (see the module docstring).  Built from ``dataclasses.replace`` of a
    copy of ``small.cfg`` and a loaded state dict, on the small SAE's device and dtype.
    """
    layout = _check_pair(small, large)
    if b_dec not in ("small", "large"):
        raise ValueError(f"b_dec must be 'small' or 'large', got {b_dec!r}")
    dev = small.W_dec.device
    s_ids = _as_ids(small_ids, small.cfg.d_sae, dev)
    l_ids = _as_ids(large_ids, large.cfg.d_sae, dev)
    bias_src = small if b_dec == "small" else large
    new_b_dec = bias_src.b_dec.detach().to(device=dev, dtype=torch.float64)
    target = new_b_dec if small.cfg.apply_b_dec_to_input else torch.zeros_like(new_b_dec)
    p_small = _latent_params(small, layout, s_ids, target)
    p_large = _latent_params(large, layout, l_ids, target)
    state = {name: torch.cat([p_small[name], p_large[name]], dim=axis) for name, axis in _LATENT_AXES[layout].items()}
    state["b_dec"] = new_b_dec
    cfg = dataclasses.replace(copy.deepcopy(small.cfg), d_sae=int(s_ids.numel() + l_ids.numel()))
    new = type(small)(cfg)
    new.load_state_dict({k: v.to(dtype=getattr(new, k).dtype) for k, v in state.items()})
    return new.to(dev)


def insert_latents(small, large, latent_ids):
    """The small SAE plus the large SAE's latents ``latent_ids`` (m,): a NEW SAE with d_sae = d_small + m.

    Copies, for each inserted latent i: the encoder column ``W_enc[:, i]``, encoder bias ``b_enc[i]``,
    decoder row ``W_dec[i]`` and (JumpReLU) ``threshold[i]`` (Gated: ``b_gate``, ``b_mag``, ``r_mag``).
    The decoder bias stays the small SAE's ``b_dec``.  SAELens subtracts ``b_dec`` from the input before
    encoding when ``cfg.apply_b_dec_to_input`` (StandardSAE, JumpReLUSAE, GatedSAE all do so via
    ``process_sae_in``), so the inserted latent's encoder bias is shifted by
    ``(b_dec_small - b_dec_large) @ W_enc_large[:, i]`` (each ``b_dec`` counted only if its SAE applies it
    to the input): its activation in the new SAE then equals exactly its activation in the large SAE.
    The new SAE's latents are the small SAE's (same order) followed by ``latent_ids``.

    Raises ValueError for unsupported architectures (latents not independent), differing architectures,
    ``d_in`` or input normalisation.
    """
    return stitch(small, large, small_ids=None, large_ids=latent_ids, b_dec="small")
