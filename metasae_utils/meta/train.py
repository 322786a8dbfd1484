"""Training meta-SAEs: BatchTopK SAEs on (unit-norm) decoder rows, cached like every SAE of the book."""

from __future__ import annotations

import torch

from ..checks import _check_int, _check_number, check_data
from ..training import train_sae

#: The paper's meta-SAE hyper-parameters (for the 49152-latent SAE).
PAPER_META_SAE = {"d_meta": 2304, "k": 4, "steps": 2000, "batch_size": 16384, "lr": 1e-3}
#: The paper's dictionary ratio: 2304 meta-latents for the 49152 latents of its base SAE (≈ 1/21).
PAPER_RATIO = 2304 / 49152


def prepare_rows(decoder: torch.Tensor, normalize_rows: bool = True) -> torch.Tensor:
    """(n_latents, d) float32 copy of ``decoder``, each row divided by its norm if ``normalize_rows``."""
    check_data("decoder", decoder)
    rows = decoder.detach().to(torch.float32)
    if normalize_rows:
        norms = rows.norm(dim=-1, keepdim=True)
        zero = (norms.squeeze(-1) == 0).nonzero().flatten()
        if zero.numel():
            raise ValueError(f"decoder row {zero[0].item()} is all zeros and cannot be unit-normalised "
                             f"({zero.numel()} zero rows); drop those latents first")
        rows = rows / norms
    return rows


def train_meta_sae(decoder: torch.Tensor, d_meta: int, k: float, *, steps: int, batch_size: int, lr: float,
                   seed: int, device: str = "cpu", normalize_rows: bool = True, zero_b_dec: bool = True,
                   progress: bool = True, **train_kwargs):
    """Train a BatchTopK meta-SAE on the rows of ``decoder`` with :func:`!metasae_utils.training.train_sae`.

    Args:
        decoder: (n_latents, d) decoder matrix of the base SAE (``sae.W_dec.detach()``).
        d_meta: number of meta-latents.
        k: mean active meta-latents per row (BatchTopK ``k``); the paper uses 4.
        steps, batch_size, lr, seed: as in ``train_sae`` (paper: 2000, 16384, 1e-3).  Batches are drawn
            from seeded shuffled epochs over the rows, so ``steps * batch_size`` may exceed n_latents.
        device: training device and the device of the returned SAE.
        normalize_rows: train on unit-norm rows (default, as in the paper, whose decoder rows are unit
            norm).  The meta-SAE should explain a latent's *direction*, not its decoder norm: norms vary
            with an SAE's parameterisation (and are arbitrary in SAEs that fold them into the encoder).
            :func:`decompose` and :func:`meta_metrics` normalise the same way (read from the SAE's
            metadata).
        zero_b_dec: keep the meta-SAE's decoder bias at zero and frozen (default).  A learned ``b_dec``
            absorbs whatever direction the decoder rows share, so that component is explained by no
            meta-latent.  With ``b_dec`` at zero the shared direction becomes an explicit meta-latent used by
            every latent (visible as ``max_shared_fraction`` = 1 in :func:`meta_metrics`).  In a toy of 96
            planted atoms plus one direction common to all 3000 rows, the mean atom-to-meta-decoder cosine
            was 0.94 frozen vs 0.92 learned, and the learned ``b_dec`` took the common direction
            (norm 0.98).  An earlier toy gave 0.69 -> 0.90.  SAELens has no option for this, so ``train_sae``
            sets ``b_dec`` to zeros and ``requires_grad=False`` before training (``b_dec_init="zeros",
            freeze_b_dec=True``); Adam then never moves it.
        progress: show the trainer's progress bar.
        **train_kwargs: passed to ``train_sae`` (e.g. ``aux_loss_coefficient``, ``dead_feature_window``).

    Returns:
        The inference meta-SAE, a SAELens ``JumpReLUSAE`` (fixed threshold instead of the batch top-k)
        in eval mode, with ``W_enc`` (d, d_meta), unit-norm ``W_dec`` rows (d_meta, d), ``b_dec`` (d,).
        ``sae.cfg.metadata.meta`` records ``normalize_rows`` and the number of rows it was trained on.
    """
    rows = prepare_rows(decoder, normalize_rows)
    _check_int("d_meta", d_meta)
    _check_number("k", k, positive=True)
    _check_int("steps", steps)
    _check_int("batch_size", batch_size)
    _check_number("lr", lr, positive=True)
    for name in ("architecture", "b_dec_init", "freeze_b_dec", "n_steps", "d_sae"):
        if name in train_kwargs:
            raise ValueError(f"train_kwargs: {name!r} is fixed by train_meta_sae and cannot be passed")
    meta_sae = train_sae(rows, "batchtopk", d_meta, n_steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         k=k, device=device, progress=progress,
                         b_dec_init="zeros" if zero_b_dec else "mean", freeze_b_dec=zero_b_dec,
                         **train_kwargs)
    meta_sae.cfg.metadata.meta = {"normalize_rows": bool(normalize_rows), "n_latents": int(rows.shape[0]),
                                  "zero_b_dec": bool(zero_b_dec)}
    return meta_sae


def cached_meta_sae(spec: dict, decoder: torch.Tensor, d_meta: int, k: int, *, steps: int, batch_size: int,
                    lr: float, seed: int, progress: bool = True):
    """:func:`train_meta_sae` through the artifact cache: ``spec`` names what ``decoder`` (n, d) is (e.g. the
    base SAE's cache path); the meta-SAE is saved with SAELens and loaded back with ``SAE.load_from_disk``."""
    from .. import training
    spec = {**spec, "d_meta": d_meta, "k": k, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    return training.cached_sae("meta_saes", spec, lambda: train_meta_sae(
        decoder, d_meta, k, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress))[0]
