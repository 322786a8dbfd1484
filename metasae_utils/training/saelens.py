"""Train any SAELens SAE architecture on a tensor of activations (or of decoder rows).

Everything SAE-specific is SAELens': the training SAE classes and configs (looked up in SAELens'
registry), ``SAETrainer`` (the training loop, Adam, the L1 / L0 warm-up schedulers, the dead-latent
bookkeeping that feeds the top-k auxiliary loss), the activation-norm scaling and its folding into the
weights, and ``save_inference_model`` / ``SAE.load_from_disk`` (which turn a training SAE into its
inference SAE: BatchTopK and Matryoshka-BatchTopK become JumpReLU SAEs whose threshold is the learned
batch-top-k threshold).  This module only supplies a seeded, shuffled iterator over the tensor and
sensible defaults for short runs.

Architectures and how each is configured (``ARCHITECTURES``):

===========================  ==========================================  ====================
architecture                 sparsity set by                              inference SAE
===========================  ==========================================  ====================
``standard``                 ``l1_coefficient`` (default                 ``StandardSAE``
                             ``5 * sqrt(d_in / 576)``), warmed up
                             linearly over ``l1_warm_up_steps``
                             (default 5 % of the run)
``batchtopk``                ``k`` (required): mean active latents per   ``JumpReLUSAE``
                             sample over the batch; top-k aux loss
                             revives dead latents
``jumprelu``                 ``k`` given: GemmaScope-2 quadratic L0      ``JumpReLUSAE``
                             penalty around ``target_l0=k``; else the
                             DeepMind "step" L0 penalty
                             (``l0_coefficient`` via ``**arch_kwargs``)
``matryoshka_batchtopk``     ``k`` (required); nested widths default to  ``JumpReLUSAE``
                             ``(d_sae//16, d_sae//4, d_sae)``
``matching_pursuit``         ``k`` given: at most ``k`` pursuit steps     ``MatchingPursuitSAE``
                             (``max_iterations``); else until the
                             residual norm < ``residual_threshold``
===========================  ==========================================  ====================

Arguments that an architecture does not use (``k`` for ``standard``, ``l1_coefficient`` for the others)
are ignored, so one call site can serve every architecture; any other SAELens config field of the
architecture can be set through ``**arch_kwargs`` (an unknown name is a ``ValueError``).

Units: by default (``normalize_activations=True``) the SAE is trained on the data scaled so that the
mean row norm is ``sqrt(d_in)`` (SAELens' ``expected_average_only_in``; the exact factor over the whole
tensor is handed to the trainer, which folds it back into the weights at the end), so the default
coefficients mean the same thing whatever the scale of the data.  The returned SAE takes raw data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import tempfile
from typing import Any
from unittest import mock

import torch

from .sparse import supported
from .lean import FastTrainer
from ..checks import _check_choice, _check_device, _check_int, _check_number, check_data

ARCHITECTURES = ("standard", "batchtopk", "jumprelu", "matryoshka_batchtopk", "matching_pursuit")

#: architectures whose sparsity is set by ``k`` and that cannot train without it.
_NEEDS_K = ("batchtopk", "matryoshka_batchtopk")


def _sae_lens():
    """Import SAELens lazily (~15 s) so that importing this module and input checks stay fast."""
    import sae_lens  # noqa: F401  (registers the architectures)
    from sae_lens.registry import get_sae_training_class

    return get_sae_training_class


def training_config_class(architecture: str):
    """The SAELens ``TrainingSAEConfig`` subclass that trains ``architecture`` (from SAELens' registry)."""
    _check_choice("architecture", architecture, ARCHITECTURES)
    return _sae_lens()(architecture)[1]


def _arch_defaults(architecture: str, d_in: int, d_sae: int, n_steps: int, k, l1_coefficient) -> dict[str, Any]:
    """Per-architecture config fields (the only place where architectures differ)."""
    warm_up = n_steps // 20
    if architecture == "standard":
        # decoder rows start at norm 1, not SAELens' 0.1: Adam moves every weight by about lr per step whatever
        # its gradient, so rows of norm 0.1 are overwritten within tens of steps by the sign of the early,
        # shared gradient, and ReLU + L1 SAEs collapsed onto near-duplicate latents (SmolLM2 layer 9, width
        # 4608, lr 4e-4: 91 % of latents with a cosine > 0.9 twin at norm 0.1, 4-6 % at norm 1).
        return {"l1_coefficient": 5.0 * math.sqrt(d_in / 576) if l1_coefficient is None else float(l1_coefficient),
                "l1_warm_up_steps": warm_up, "decoder_init_norm": 1.0}
    if architecture == "batchtopk":
        return {"k": float(k)}
    if architecture == "matryoshka_batchtopk":
        widths = sorted({w for w in (d_sae // 16, d_sae // 4) if 0 < w < d_sae} | {d_sae})
        return {"k": float(k), "matryoshka_widths": widths}
    if architecture == "jumprelu":
        if k is None:
            return {"l0_warm_up_steps": warm_up}
        return {"jumprelu_sparsity_loss_mode": "quadratic", "target_l0": float(k), "l0_warm_up_steps": warm_up}
    if architecture == "matching_pursuit":
        # SAELens forces (and warns about) decoder_init_norm=1.0 for matching pursuit
        return {"decoder_init_norm": 1.0, **({} if k is None else {"max_iterations": int(k)})}
    raise ValueError(f"architecture {architecture!r} is not one of {ARCHITECTURES}")


def build_training_config(architecture: str, d_in: int, d_sae: int, *, n_steps: int = 1000, k=None,
                          l1_coefficient=None, device: str = "cpu", **arch_kwargs):
    """The SAELens training config for ``architecture`` with this module's defaults, then ``arch_kwargs``."""
    cfg_cls = training_config_class(architecture)
    known = {f.name for f in dataclasses.fields(cfg_cls)} - {"d_in", "d_sae", "device", "dtype", "metadata"}
    unknown = sorted(set(arch_kwargs) - known)
    if unknown:
        raise ValueError(f"arch_kwargs: {unknown[0]!r} is not a field of {cfg_cls.__name__}; "
                         f"allowed: {', '.join(sorted(known))}")
    fields = {**_arch_defaults(architecture, d_in, d_sae, n_steps, k, l1_coefficient), **arch_kwargs}
    return cfg_cls(d_in=d_in, d_sae=d_sae, dtype="float32", device=device, **fields)


# -- data provider, trainer ------------------------------------------------------------------------------

def shuffled_batches(data: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Endless iterator of (batch_size, d) batches: epochs over ``data`` in a fresh random order each,
    an epoch's tail continuing into the next epoch, so every batch is full and every row is seen once
    per epoch.  The order depends only on ``generator``'s state (:class:`.lean.ShuffledBatches`, whose state
    can be saved)."""
    from .lean import ShuffledBatches
    return ShuffledBatches(data, batch_size, generator)


def _trainer_class():
    from sae_lens.training.sae_trainer import SAETrainer

    class _Trainer(SAETrainer):
        """SAETrainer whose progress bar moves every ``pbar_interval`` steps (SAELens: every 100) and that hands
        every step to ``monitor`` (:class:`metasae_utils.training.monitor.Monitor`), if one is set."""

        pbar_interval = 100
        monitor = None
        _last = None

        def _update_pbar(self, step_output, pbar, update_interval=100):  # noqa: ARG002
            super()._update_pbar(step_output, pbar, update_interval=self.pbar_interval)

        def step(self, batch):
            self._last = super().step(batch)
            return self._last

        def _checkpoint_if_needed(self):
            super()._checkpoint_if_needed()
            if self.monitor is not None:
                self.monitor.after_step(self, self._last)

    return _Trainer


@contextlib.contextmanager
def _trainer_progress(enabled: bool):
    """SAETrainer.fit always opens a tqdm bar (TQDM_DISABLE is not honoured); silence it when asked."""
    if enabled:
        yield
        return
    from tqdm.auto import tqdm

    import sae_lens.training.sae_trainer as trainer_module

    with mock.patch.object(trainer_module, "tqdm", functools.partial(tqdm, disable=True)):
        yield


# -- public API ------------------------------------------------------------------------------------------

def train_sae(data: torch.Tensor, architecture: str, d_sae: int, *, n_steps: int, batch_size: int, lr: float,
              seed: int, k: float | None = None, l1_coefficient: float | None = None, device: str = "cpu",
              progress: bool = True, normalize_activations: bool = True,
              normalize_decoder_rows: bool | None = None, b_dec_init: str = "mean", freeze_b_dec: bool = False,
              dead_feature_window: int | None = None, lr_warm_up_steps: int = 0, lr_decay_steps: int = 0,
              autocast: bool | None = None, monitor=None, fast_step: bool | None = None, **arch_kwargs):
    """Train a SAELens SAE of ``architecture`` on the rows of ``data`` and return its inference SAE.

    Args:
        data: (n, d_in) float tensor — activations, or decoder rows for a meta-SAE.  Training draws
            ``n_steps`` batches of ``batch_size`` rows from seeded shuffled epochs over it (rows repeat
            after an epoch).  It is moved to ``device`` once.
        architecture: one of ``ARCHITECTURES`` (see the module docstring for how each is configured).
        d_sae: number of latents.
        n_steps, batch_size, lr: SAETrainer steps, rows per step, Adam learning rate.
        seed: seeds the weight initialisation and the data order; on CPU two calls with the same
            arguments give bit-identical weights.  The global torch RNG state is left as it was.
        k: mean active latents per row for (matryoshka) BatchTopK (required); target L0 for JumpReLU
            (optional); maximum pursuit steps for matching pursuit (optional).  Ignored by ``standard``.
        l1_coefficient: L1 coefficient of ``standard`` (in normalised units; warmed up over 5 % of the
            run).  Default ``5 * sqrt(d_in / 576)``: 5 at SmolLM2's d_model = 576 (the book's preset), scaled
            with ``sqrt(d_in)`` because with rows of norm ``sqrt(d_in)`` the L1 term's relative shrinkage of
            a latent goes as ``l1 / sqrt(d_in)`` (5.0 at d_in = 32 leaves FVU ~0.95; 1.2 gives ~0.15).
            Ignored by other architectures.
        device: where to train and where the returned SAE lives.
        progress: show SAETrainer's tqdm bar.
        normalize_activations: train on data scaled to mean row norm ``sqrt(d_in)``; the factor is folded
            back into the weights, so the result works on raw data either way.
        normalize_decoder_rows: fold the decoder row norms into the encoder after training (SAELens
            ``fold_W_dec_norm``; outputs unchanged) so ``W_dec`` rows are unit norm and a latent's
            activation is the coefficient of a unit direction.  ``None`` (default): yes for every
            architecture where the fold is exact, i.e. all but ``matching_pursuit``.
        b_dec_init: ``"mean"`` (decoder bias starts at the data mean) or ``"zeros"``.
        freeze_b_dec: keep ``b_dec`` at its initial value (SAELens has no option for this: the parameter
            gets ``requires_grad=False`` before training, so Adam never moves it).
        dead_feature_window: steps without firing after which a latent counts as dead (feeds the top-k
            auxiliary loss).  Default ``min(1000, max(1, n_steps // 10))`` — SAELens' 1000 is longer than
            a short run.
        lr_warm_up_steps, lr_decay_steps: SAETrainer's linear lr warm-up / final decay to 0 (default none).
        autocast: run each training step under ``torch.autocast(device, torch.bfloat16)`` (SAELens
            ``SAETrainerConfig(autocast=True)``: bf16 products, fp32 master weights and Adam).  ``None``
            (default): when this process's training precision is bf16 (:func:`metasae_utils.precision.configure`).
        monitor: a :class:`metasae_utils.training.monitor.Monitor` called after every step (learning curves, checkpoints,
            the L1 controller); its results stay on it.
        fast_step: train ``standard`` SAEs with :class:`.lean.FastTrainer` (one dense product per step and a
            sparse kernel; the same loss, gradients, Adam, schedules and statistics as SAETrainer).  ``None``
            (default): whenever the architecture and config allow it (:func:`.sparse.supported`); ``False``:
            always SAETrainer.  The choice is recorded in ``sae.cfg.metadata.train["step"]``.
        **arch_kwargs: any other field of the architecture's SAELens training config
            (e.g. ``aux_loss_coefficient``, ``matryoshka_widths``, ``l0_coefficient``,
            ``rescale_acts_by_decoder_norm``, ``topk_threshold_lr``).

    Returns:
        The inference ``sae_lens.SAE`` (``StandardSAE``, ``JumpReLUSAE`` for jumprelu / batchtopk /
        matryoshka_batchtopk, ``MatchingPursuitSAE``) in eval mode on ``device``;
        ``W_enc`` (d_in, d_sae), ``W_dec`` (d_sae, d_in), ``b_dec`` (d_in,).  ``sae.cfg.metadata.train``
        records the training arguments and ``sae.cfg.metadata.l0`` the training-time L0.
    """
    normalize_decoder_rows, dead_feature_window = _check_args(
        data, architecture, d_sae, n_steps, batch_size, lr, seed, k, l1_coefficient, b_dec_init,
        normalize_decoder_rows, dead_feature_window, lr_warm_up_steps, lr_decay_steps)
    dev = _check_device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        trainer, use_fast = _prepare(data, architecture, d_sae, n_steps, batch_size, lr, seed, k, l1_coefficient, dev,
                                     normalize_activations, b_dec_init, freeze_b_dec, dead_feature_window,
                                     lr_warm_up_steps, lr_decay_steps, autocast, fast_step, arch_kwargs)
        trainer.monitor = monitor
        if monitor is not None:
            monitor.normalize_decoder_rows = normalize_decoder_rows
        with _trainer_progress(progress):
            training_sae = _fit(trainer, n_steps, progress) if use_fast else trainer.fit()

    from sae_lens import SAE
    with tempfile.TemporaryDirectory(prefix="metasae_train_") as tmp:
        training_sae.save_inference_model(tmp)
        sae = SAE.load_from_disk(tmp, device=str(dev))
    if normalize_decoder_rows:
        sae.fold_W_dec_norm()
    return sae.eval()


def _check_args(data, architecture, d_sae, n_steps, batch_size, lr, seed, k, l1_coefficient, b_dec_init,
                normalize_decoder_rows, dead_feature_window, lr_warm_up_steps, lr_decay_steps):
    """:func:`train_sae`'s argument checks (all before any compute); returns ``normalize_decoder_rows`` and
    ``dead_feature_window`` with their defaults filled in."""
    check_data("data", data)
    _check_choice("architecture", architecture, ARCHITECTURES)
    _check_int("d_sae", d_sae)
    _check_int("n_steps", n_steps)
    _check_int("batch_size", batch_size)
    _check_number("lr", lr, positive=True)
    _check_int("seed", seed, lo=0)
    if architecture in _NEEDS_K and k is None:
        raise ValueError(f"k is required for architecture {architecture!r}")
    if k is not None and architecture != "standard":
        _check_number("k", k, positive=True)
        if k > d_sae:
            raise ValueError(f"k = {k} must be <= d_sae = {d_sae}")
        if architecture == "matching_pursuit" and (not float(k).is_integer()):
            raise ValueError(f"k must be a whole number of pursuit steps for matching_pursuit, got {k}")
    if l1_coefficient is not None and architecture == "standard":
        _check_number("l1_coefficient", l1_coefficient, nonneg=True)
    _check_choice("b_dec_init", b_dec_init, ("mean", "zeros"))
    if normalize_decoder_rows is None:
        normalize_decoder_rows = architecture != "matching_pursuit"
    elif normalize_decoder_rows and architecture == "matching_pursuit":
        raise ValueError("normalize_decoder_rows=True is not possible for matching_pursuit: folding the "
                         "decoder norms changes its activations (SAELens refuses to fold them)")
    if dead_feature_window is None:
        dead_feature_window = min(1000, max(1, n_steps // 10))
    _check_int("dead_feature_window", dead_feature_window)
    _check_int("lr_warm_up_steps", lr_warm_up_steps, lo=0)
    _check_int("lr_decay_steps", lr_decay_steps, lo=0)
    if lr_warm_up_steps + lr_decay_steps > n_steps:
        raise ValueError(f"lr_warm_up_steps + lr_decay_steps = {lr_warm_up_steps + lr_decay_steps} "
                         f"exceeds n_steps = {n_steps}")
    return normalize_decoder_rows, dead_feature_window


def _prepare(data, architecture, d_sae, n_steps, batch_size, lr, seed, k, l1_coefficient, dev, normalize_activations,
             b_dec_init, freeze_b_dec, dead_feature_window, lr_warm_up_steps, lr_decay_steps, autocast, fast_step,
             arch_kwargs):
    """The training SAE (initialised from the global RNG, which the caller seeds), its data and the trainer that
    will fit it: ``(trainer, uses_the_fast_step)``.  Arguments as :func:`train_sae`'s, already checked."""
    if autocast is None:
        from ..precision import training_dtype
        autocast = training_dtype() == "bfloat16"
    n, d_in = data.shape
    cfg = build_training_config(architecture, d_in, d_sae, n_steps=n_steps, k=k,
                                l1_coefficient=l1_coefficient, device=str(dev), **arch_kwargs)

    from sae_lens.config import LoggingConfig, SAETrainerConfig

    x = data.detach().to(device=dev, dtype=torch.float32)
    scale = None
    if normalize_activations:
        mean_norm = x.norm(dim=-1).double().mean().item()
        if mean_norm == 0:
            raise ValueError("data is all zeros; nothing to normalise (pass normalize_activations=False)")
        scale = d_in ** 0.5 / mean_norm
        cfg.normalize_activations = "expected_average_only_in"
    cfg.metadata.train = {
        "architecture": architecture, "n_steps": n_steps, "batch_size": batch_size, "lr": lr,
        "seed": seed, "k": k, "n_rows": n, "normalize_activations": normalize_activations,
        "b_dec_init": b_dec_init, "freeze_b_dec": freeze_b_dec, "dead_feature_window": dead_feature_window,
        "autocast": bool(autocast),
    }

    trainer_cfg = SAETrainerConfig(
        total_training_samples=n_steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,  # SAETrainer asserts lr_end is set although its config leaves it None
        lr_warm_up_steps=lr_warm_up_steps,
        lr_decay_steps=lr_decay_steps,
        device=str(dev),
        dead_feature_window=dead_feature_window,
        feature_sampling_window=n_steps,  # one window: the saved L0 covers the whole run
        logger=LoggingConfig(log_to_wandb=False),
        autocast=bool(autocast),
    )

    training_sae = _sae_lens()(architecture)[0](cfg)
    with torch.no_grad():
        if b_dec_init == "mean":
            training_sae.b_dec.copy_(x.mean(0) * (scale if scale is not None else 1.0))
        else:
            training_sae.b_dec.zero_()
    if freeze_b_dec:
        training_sae.b_dec.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    batches = shuffled_batches(x, batch_size, generator)
    use_fast = fast_step is not False and step_kind(training_sae, dev) == FAST_STEP
    if fast_step and not use_fast:
        raise ValueError(f"fast_step=True, but the fast step cannot train this SAE: "
                         f"{supported(training_sae) or 'it runs on the CPU only'}")
    cfg.metadata.train["step"] = FAST_STEP if use_fast else "saetrainer"
    if use_fast:
        trainer = FastTrainer(trainer_cfg, training_sae, batches)
    else:
        trainer = _trainer_class()(cfg=trainer_cfg, sae=training_sae, data_provider=batches)
        trainer.pbar_interval = max(1, min(100, n_steps // 100))
    if scale is not None:
        trainer.activation_scaler.scaling_factor = scale  # fit() then skips its estimate and folds this
    return trainer, use_fast


def make_trainer(data: torch.Tensor, d_sae: int, *, n_steps: int, batch_size: int, lr: float, seed: int,
                 l1_coefficient: float | None = None, lr_warm_up_steps: int = 0, autocast: bool | None = None,
                 dead_feature_window: int | None = None, **arch_kwargs):
    """A :class:`.lean.FastTrainer` for a ``standard`` SAE, set up exactly as :func:`train_sae` sets it up
    (same initialisation for the same seed), not yet trained; ``n_steps`` sets the config's length (dead-latent
    and sparsity windows), and the LR stays constant after the warm-up (annealed budget branches,
    :mod:`.branches`, decay it)."""
    _, dead_feature_window = _check_args(data, "standard", d_sae, n_steps, batch_size, lr, seed, None,
                                         l1_coefficient, "mean", True, dead_feature_window, lr_warm_up_steps, 0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        trainer, use_fast = _prepare(data, "standard", d_sae, n_steps, batch_size, lr, seed, None, l1_coefficient,
                                     torch.device("cpu"), True, "mean", False, dead_feature_window, lr_warm_up_steps,
                                     0, autocast, True, arch_kwargs)
    return trainer


#: the name (and version) of the fast step, recorded in the SAE's metadata and in cache keys.
FAST_STEP = "sparse-step-1"


def step_kind(training_sae, device) -> str:
    """Which step trains ``training_sae``: :data:`FAST_STEP` for a standard SAE on the CPU the fast step
    supports, else ``"saetrainer"``."""
    if torch.device(device).type != "cpu" or supported(training_sae) is not None:
        return "saetrainer"
    return FAST_STEP


def _fit(trainer, n_steps: int, progress: bool):
    """Run a :class:`.lean.FastTrainer` with a progress bar over steps (when ``progress``)."""
    from tqdm.auto import tqdm
    with tqdm(total=n_steps, desc="Training SAE (sparse step)", disable=not progress,
              mininterval=1.0) as bar:
        trainer.progress = bar
        try:
            return trainer.fit()
        finally:
            trainer.progress = None
