"""A lean training loop for SAELens ``standard`` SAEs around the sparse step (:mod:`.sparse`).

:class:`FastTrainer` does what SAELens' ``SAETrainer`` does for this architecture, step for step: Adam with the
trainer config's betas, SAELens' LR schedule (linear warm-up, constant, linear decay to 0), the L1 coefficient
warm-up (SAELens' own ``CoefficientScheduler``), the gradient-norm clip at 1, the dead-latent statistics
(``n_forward_passes_since_fired``, ``act_freq_scores``) and the final ``l0`` / ``num_dead_features`` metadata,
the activation scaler folded into the weights at the end.  It exposes the attributes that
:class:`~metasae_utils.training.monitor.Monitor` reads (``sae``, ``cfg``, ``activation_scaler``,
``coefficient_schedulers``, ``n_training_steps``), so learning curves, checkpoints and the L1 controller work
unchanged.  Only the loss and gradients differ in how they are computed: one dense product and a sparse kernel
instead of autograd over dense products (equal to SAELens' to float rounding; ``tests/test_fast_step.py``).

Its whole state (weights, Adam moments, schedulers, statistics, the data order) can be copied and restored
(:meth:`FastTrainer.state` / :meth:`FastTrainer.restore`): the annealed budget branches (:mod:`.branches`) use it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .sparse import fwd_bwd, supported
from .schedule import lr_factor


@dataclass
class StepOutput:
    """What one step reports (the monitor's L1 controller reads ``l0``)."""
    loss: float
    mse_loss: float
    l1_loss: float
    l0: float
    sparse: bool


class ShuffledBatches:
    """Endless (batch_size, d) batches over the rows of ``data``: epochs in a fresh random order each, an epoch's
    tail continuing into the next (the order of :func:`metasae_utils.training.shuffled_batches`), with a state
    that can be saved and restored."""

    def __init__(self, data: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self.pending = torch.empty(0, dtype=torch.long)

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        while self.pending.numel() < self.batch_size:
            self.pending = torch.cat([self.pending, torch.randperm(self.data.shape[0], generator=self.generator)])
        idx, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size:]
        return self.data[idx.to(self.data.device)]

    def state(self) -> dict:
        return {"rng": self.generator.get_state(), "pending": self.pending.clone()}

    def restore(self, state: dict) -> None:
        self.generator.set_state(state["rng"])
        self.pending = state["pending"].clone()


class FastTrainer:
    """``SAETrainer``'s loop for a SAELens ``StandardTrainingSAE`` with the sparse step.

    Args:
        cfg: the ``SAETrainerConfig`` SAETrainer would get (total samples, batch size, lr, warm-up / decay steps,
            Adam betas, ``dead_feature_window``, ``feature_sampling_window``, ``autocast``).
        sae: the training SAE (its weights are read at the start and written back by :attr:`sae`).
        data_provider: a :class:`ShuffledBatches` (or any iterator of (batch, d_in) tensors; only a
            ``ShuffledBatches`` can be saved with :meth:`state`).
    """

    def __init__(self, cfg, sae, data_provider):
        from sae_lens.training.activation_scaler import ActivationScaler
        from sae_lens.training.optim import CoefficientScheduler
        why = supported(sae)
        if why is not None:
            raise ValueError(f"FastTrainer cannot train this SAE: {why}")
        self.cfg, self.data_provider = cfg, data_provider
        self._sae, self._synced = sae, True
        self.activation_scaler = ActivationScaler()
        self.monitor = None
        self.progress = None
        self.n_training_steps = 0
        self.n_training_samples = 0
        with torch.no_grad():
            self.params = [sae.W_enc.detach().T.contiguous().float(), sae.b_enc.detach().clone().float(),
                           sae.W_dec.detach().clone().float(), sae.b_dec.detach().clone().float()]
        self.trainable = [sae.W_enc.requires_grad, sae.b_enc.requires_grad, sae.W_dec.requires_grad,
                          sae.b_dec.requires_grad]
        self.optimizer = torch.optim.Adam([p for p, t in zip(self.params, self.trainable) if t], lr=cfg.lr,
                                          betas=(cfg.adam_beta1, cfg.adam_beta2), **_adam_kwargs(self.params[0]))
        coeffs = sae.get_coefficients()
        l1 = coeffs["l1"]
        self.coefficient_schedulers = {"l1": CoefficientScheduler(warm_up_steps=l1.warm_up_steps,
                                                                  final_value=l1.value)}
        d_sae = sae.cfg.d_sae
        self.act_freq_scores = torch.zeros(d_sae)
        self.n_forward_passes_since_fired = torch.zeros(d_sae)
        self.n_frac_active_samples = 0
        self.total_steps = cfg.total_training_steps
        self.decay = (cfg.lr_warm_up_steps, cfg.total_training_steps - cfg.lr_decay_steps, cfg.total_training_steps)

    # -- the SAE as SAELens sees it ------------------------------------------------------------------------
    @property
    def sae(self):
        """The training SAE with the current weights (written back on first access after a step)."""
        if not self._synced:
            with torch.no_grad():
                W_encT, b_enc, W_dec, b_dec = self.params
                self._sae.W_enc.copy_(W_encT.T)
                self._sae.b_enc.copy_(b_enc)
                self._sae.W_dec.copy_(W_dec)
                self._sae.b_dec.copy_(b_dec)
            self._synced = True
        return self._sae

    @property
    def dead_neurons(self) -> torch.Tensor:
        return self.n_forward_passes_since_fired > self.cfg.dead_feature_window

    @property
    def feature_sparsity(self) -> torch.Tensor:
        return self.act_freq_scores / self.n_frac_active_samples

    # -- one step ------------------------------------------------------------------------------------------
    def lr(self) -> float:
        """The learning rate of the next step (SAELens' schedule; see :func:`.schedule.lr_factor`)."""
        warm, decay_start, end = self.decay
        return self.cfg.lr * lr_factor(self.n_training_steps, warm, decay_start, end)

    def step(self, batch: torch.Tensor) -> StepOutput:
        """One training step on a raw batch (scaled here, as SAETrainer does)."""
        batch = self.activation_scaler(batch.to(torch.float32))
        self.n_training_samples += batch.shape[0]
        l1 = float(self.coefficient_schedulers["l1"].value)
        bf16 = bool(self.cfg.autocast)
        r = fwd_bwd(batch, *self.params, l1, bf16=bf16)
        norm = r.grad_sumsq ** 0.5
        clip = 1.0 / (norm + 1e-6)
        for p, g, t in zip(self.params, r.grads, self.trainable):
            if t:
                p.grad = g.mul_(clip) if clip < 1.0 else g
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        self.optimizer.step()
        for p in self.params:
            p.grad = None
        self._synced = False
        fired = r.counts > 0
        self.n_forward_passes_since_fired += 1
        self.n_forward_passes_since_fired[fired] = 0
        self.act_freq_scores += r.counts
        self.n_frac_active_samples += self.cfg.train_batch_size_samples
        for s in self.coefficient_schedulers.values():
            s.step()
        return StepOutput(r.mse + r.l1_loss, r.mse, r.l1_loss, r.l0, r.sparse)

    def _maybe_reset_sparsity(self) -> None:
        if self.n_training_steps > 0 and self.n_training_steps % self.cfg.feature_sampling_window == 0:
            self.act_freq_scores.zero_()
            self.n_frac_active_samples = 0

    def run(self, until: int) -> None:
        """Train up to step ``until`` (exclusive of steps already done), calling the monitor after each step."""
        while self.n_training_steps < until:
            self._maybe_reset_sparsity()
            out = self.step(next(self.data_provider))
            if self.monitor is not None:
                self.monitor.after_step(self, out)
            self.n_training_steps += 1
            if self.progress is not None:
                self.progress.update(1)

    def finish(self):
        """The training SAE as ``SAETrainer.fit`` returns it: scaling folded into the weights, metadata set."""
        sae = self.sae
        if self.activation_scaler.scaling_factor is not None:
            sae.fold_activation_norm_scaling_factor(self.activation_scaler.scaling_factor)
            self.activation_scaler.scaling_factor = None
        if self.n_frac_active_samples > 0:
            sae.cfg.metadata.l0 = self.feature_sparsity.sum().item()
            sae.cfg.metadata.num_dead_features = int(self.dead_neurons.sum().item())
        return sae

    def fit(self):
        """Train for the config's ``total_training_steps`` and return the training SAE (SAETrainer.fit)."""
        self.run(self.total_steps)
        return self.finish()

    # -- state, for branches -------------------------------------------------------------------------------
    def state(self) -> dict:
        """A deep copy of everything the next steps depend on."""
        return copy.deepcopy({
            "params": self.params, "optimizer": self.optimizer.state_dict(),
            "schedulers": {k: vars(s) for k, s in self.coefficient_schedulers.items()},
            "act_freq_scores": self.act_freq_scores, "since_fired": self.n_forward_passes_since_fired,
            "n_frac_active_samples": self.n_frac_active_samples, "n_training_steps": self.n_training_steps,
            "n_training_samples": self.n_training_samples, "decay": self.decay,
            "scaling_factor": self.activation_scaler.scaling_factor, "data": self.data_provider.state(),
            "monitor": None if self.monitor is None else {k: getattr(self.monitor, k) for k in MONITOR_FIELDS}})

    def restore(self, state: dict) -> None:
        """Return to a :meth:`state` (the monitor's records too, when both have a monitor)."""
        state = copy.deepcopy(state)
        with torch.no_grad():
            for p, v in zip(self.params, state["params"]):
                p.copy_(v)
        self.optimizer.load_state_dict(state["optimizer"])
        for k, v in state["schedulers"].items():
            vars(self.coefficient_schedulers[k]).update(v)
        self.act_freq_scores = state["act_freq_scores"]
        self.n_forward_passes_since_fired = state["since_fired"]
        self.n_frac_active_samples = state["n_frac_active_samples"]
        self.n_training_steps = state["n_training_steps"]
        self.n_training_samples = state["n_training_samples"]
        self.decay = tuple(state["decay"])
        self.activation_scaler.scaling_factor = state["scaling_factor"]
        self.data_provider.restore(state["data"])
        if self.monitor is not None and state.get("monitor") is not None:
            for k, v in state["monitor"].items():
                setattr(self.monitor, k, v)
        self._synced = False


#: the monitor's records that a saved state carries (learning curve, L1 controller), so a resumed run goes on
#: with the curve and the controller as they were.
MONITOR_FIELDS = ("curve", "l1_history", "checkpoints", "_l0_sum", "_l0_n")


def _adam_kwargs(p: torch.Tensor) -> dict:
    """Fused Adam where torch has it for this device (same update as the default, one pass over memory)."""
    try:
        torch.optim.Adam([torch.zeros(1, device=p.device, requires_grad=True)], fused=True)
        return {"fused": True}
    except (RuntimeError, TypeError):
        return {"foreach": True}
