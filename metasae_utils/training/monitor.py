"""Watching a training run: learning curves on held-out data, checkpoints, and the L1 controller.

``training.train_sae(..., monitor=Monitor(...))`` calls :meth:`Monitor.after_step` after every training step (of
SAELens' ``SAETrainer`` or of :class:`~metasae_utils.training.lean.FastTrainer`, which exposes the same attributes).
Nothing here draws random numbers or touches the trainer's state except the L1 coefficient (and only when a target
L0 is given), so a monitored run without a target gives bit-for-bit the SAE of a plain run.

* **Learning curves** — every ``curve_every`` steps the current SAE, in its inference form (activation scaling
  and decoder norms folded, exactly as at the end of training), is evaluated on ``eval_acts`` (m, d_in):
  ``(step, l0, fvu, mse, l1_coefficient)``.  :func:`drift` reads the relative change over the last 10 % of steps.
* **Checkpoints** — at each step of ``checkpoint_steps`` that inference SAE is saved with SAELens into
  ``checkpoint_dir/step_<n>``, so claims can be recomputed for a shorter budget without retraining.
* **L1 controller** (standard SAEs) — one L1 coefficient gives very different L0s across widths.  With
  ``target_l0`` set, every ``control_every`` steps the coefficient is multiplied by ``(L0 / target) ** gain``
  (clamped to ×[0.8, 1.25]), where L0 is the mean training-batch L0 since the last update.  It acts only after
  the L1 warm-up and stops at ``control_until`` of the run: the rest of training, and so the final SAE, runs at
  one fixed coefficient — an ordinary ReLU + L1 SAE whose coefficient was chosen by feedback rather than by a
  grid of separate trainings (a search would cost one full run per try, and short tries mispredict the L0 that
  a long run settles at).
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class Monitor:
    """Callbacks for one training run (see the module docstring).  Results: ``curve``, ``checkpoints``
    (step -> folder), ``l1_history`` ((step, coefficient) after each controller update)."""

    n_steps: int
    eval_acts: torch.Tensor | None = None
    curve_every: int = 0
    checkpoint_steps: tuple = ()
    checkpoint_dir: Path | None = None
    target_l0: float | None = None
    control_every: int = 25
    control_until: float = 0.7
    gain: float = 0.5
    normalize_decoder_rows: bool = True
    curve: list = field(default_factory=list)
    checkpoints: dict = field(default_factory=dict)
    l1_history: list = field(default_factory=list)
    _l0_sum: float = 0.0
    _l0_n: int = 0

    def __post_init__(self):
        if self.checkpoint_steps and self.checkpoint_dir is None:
            raise ValueError("checkpoint_steps need a checkpoint_dir")
        if self.curve_every and self.eval_acts is None:
            raise ValueError("curve_every needs eval_acts (held-out activations)")
        if self.target_l0 is not None and not self.target_l0 > 0:
            raise ValueError(f"target_l0 must be positive, got {self.target_l0}")

    # -- called by the trainer ------------------------------------------------------------------------------
    def after_step(self, trainer, output) -> None:
        """``trainer``: the SAETrainer after a step (``n_training_steps`` not yet advanced); ``output``: the step's
        TrainStepOutput."""
        step = trainer.n_training_steps + 1  # steps completed
        if self.target_l0 is not None:
            self._control(trainer, output, step)
        want_curve = self.curve_every and (step % self.curve_every == 0 or step == self.n_steps or step == 1)
        want_ckpt = step in self.checkpoint_steps
        if not (want_curve or want_ckpt):
            return
        sae = inference_copy(trainer, self.normalize_decoder_rows)
        if want_curve:
            self.curve.append({"step": step, **_metrics(sae, self.eval_acts), "l1_coefficient": _l1(trainer)})
        if want_ckpt:
            path = Path(self.checkpoint_dir) / f"step_{step}"
            sae.save_model(path)
            self.checkpoints[step] = path

    def _control(self, trainer, output, step: int) -> None:
        sched = trainer.coefficient_schedulers.get("l1")
        if sched is None:
            raise ValueError("target_l0 steers an L1 coefficient: only standard SAEs have one")
        l0 = getattr(output, "l0", None)  # the fast step reports it; SAETrainer's output has the activations
        self._l0_sum += float((output.feature_acts > 0).float().sum(-1).mean()) if l0 is None else float(l0)
        self._l0_n += 1
        if step % self.control_every or step <= sched.warm_up_steps or step > self.control_until * self.n_steps:
            return
        l0 = self._l0_sum / self._l0_n
        self._l0_sum, self._l0_n = 0.0, 0
        factor = min(1.25, max(0.8, (max(l0, 1e-3) / self.target_l0) ** self.gain))
        sched.final_value = float(sched.final_value * factor)
        sched.current_value = sched.final_value
        self.l1_history.append((step, sched.final_value, l0))


def _l1(trainer) -> float | None:
    sched = trainer.coefficient_schedulers.get("l1")
    return None if sched is None else float(sched.current_value)


@torch.no_grad()
def inference_copy(trainer, normalize_decoder_rows: bool = True):
    """The trainer's SAE as the inference SAE it would become if training stopped now (a copy; the trainer's own
    SAE and scaling factor are untouched)."""
    from sae_lens import SAE
    sae = copy.deepcopy(trainer.sae)
    factor = trainer.activation_scaler.scaling_factor
    if factor is not None:
        sae.fold_activation_norm_scaling_factor(factor)
    with tempfile.TemporaryDirectory(prefix="metasae_ckpt_") as tmp:
        sae.save_inference_model(tmp)
        out = SAE.load_from_disk(tmp, device=str(trainer.cfg.device))
    if normalize_decoder_rows:
        out.fold_W_dec_norm()
    return out.eval()


def _metrics(sae, acts: torch.Tensor) -> dict:
    from ..evaluate import reconstruction_metrics
    r = reconstruction_metrics(sae, acts)
    return {"l0": r["l0"], "fvu": r["fvu"], "mse": r["mse"]}


def drift(curve: list[dict], key: str, last: float = 0.1) -> float:
    """Relative change of ``key`` over the last ``last`` fraction of the run: ``|v_end - v_start| / |v_end|``, where
    ``v_start`` is the curve point closest to step ``(1 - last) * final step``.  NaN for fewer than 2 points."""
    if len(curve) < 2:
        return float("nan")
    end = curve[-1]
    at = (1 - last) * end["step"]
    start = min(curve[:-1], key=lambda p: abs(p["step"] - at))
    return abs(end[key] - start[key]) / max(abs(end[key]), 1e-12)
