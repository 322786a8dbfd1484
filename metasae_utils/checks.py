"""Input checks shared by the training functions: each names the argument and what is allowed."""

from __future__ import annotations

import math

import torch


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} = {value!r} is not allowed; choose one of {', '.join(map(repr, choices))}")


def _check_int(name, value, lo=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")


def _check_number(name, value, *, positive=False, nonneg=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0) or (nonneg and value < 0):
        kind = "a positive" if positive else "a non-negative" if nonneg else "a finite"
        raise ValueError(f"{name} must be {kind} number, got {value!r}")


def check_data(name: str, data) -> None:
    """``data`` must be a finite floating tensor of shape (n >= 1, d >= 1)."""
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (n, d), got {type(data).__name__}")
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n, d >= 1, got {tuple(data.shape)}")
    if not data.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {data.dtype}")
    if not torch.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or inf")


def _check_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device = {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device = {device!r} but CUDA is not available here")
    return dev
