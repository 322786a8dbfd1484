"""Saving, loading and caching trained SAEs (SAELens ``save_model`` / ``SAE.load_from_disk``, the artifact cache)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checks import _check_device
from .saelens import FAST_STEP


def save_sae(sae, path: str | Path) -> Path:
    """Save an inference SAE with SAELens ``save_model`` (``cfg.json`` + ``sae_weights.safetensors``)."""
    from sae_lens import SAE
    from sae_lens.saes.sae import TrainingSAE

    if not isinstance(sae, SAE) or isinstance(sae, TrainingSAE):
        raise ValueError(f"sae must be an inference sae_lens.SAE (as returned by train_sae), "
                         f"got {type(sae).__name__}")
    path = Path(path)
    sae.save_model(path)
    return path


def load_sae(path: str | Path, device: str = "cpu"):
    """Load an SAE saved by :func:`save_sae` (SAELens ``SAE.load_from_disk``), in eval mode on ``device``."""
    path = Path(path)
    if not (path / "cfg.json").is_file():
        raise FileNotFoundError(f"path = {str(path)!r} holds no SAELens SAE (no cfg.json)")
    dev = _check_device(device)
    from sae_lens import SAE

    return SAE.load_from_disk(path, device=str(dev)).eval()


def cached_sae(step: str, spec: dict, train=None, version: int = 1, device: str = "cpu", *, make=None, **info):
    """``train()`` (→ SAE) once per ``(step, spec, version)``: the SAE is saved with SAELens into the artifact
    cache and always returned as loaded back with ``SAE.load_from_disk``, so a fresh and a cached run hand out
    the same object.  ``info`` goes to the cache log.  Returns ``(sae, path)``.

    ``make(folder)`` instead of ``train``: it trains, saves the SAE into ``folder`` (:func:`save_sae`) and may
    write further files beside it (learning curves, checkpoints), all checksummed with the SAE.

    The process's training precision (:func:`metasae_utils.precision.training_dtype`) is part of the key when it
    is not fp32 (fp32 keys are those of runs made before precision was a setting), and so is the fast step
    (:data:`FAST_STEP`) for ``standard`` SAEs on the CPU, which it trains."""
    from .. import artifacts
    from ..precision import training_dtype
    if training_dtype() != "float32":
        spec = {**spec, "train_dtype": training_dtype()}
    if spec.get("architecture") == "standard" and torch.device(device).type == "cpu":
        spec = {**spec, "train_step": FAST_STEP}  # SAEs trained by SAETrainer keep their earlier keys
    if (train is None) == (make is None):
        raise ValueError("give exactly one of train (-> SAE) and make (folder -> None)")
    make = make or (lambda tmp: save_sae(train(), tmp))
    path = artifacts.entry(step, spec, version).get_or_make("sae", make, **info)
    return load_sae(path, device=device), path
