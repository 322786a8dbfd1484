"""Annealed budget branches: one warm-up / stable run, and at each budget a copy of it annealed to LR 0.

A budget curve measured on mid-run checkpoints compares SAEs at peak learning rate with one that was annealed;
retraining each budget from scratch costs the sum of the budgets.  Here a :class:`~.lean.FastTrainer` runs at
constant LR after its warm-up; at each budget ``P`` of the plan (:func:`.schedule.branch_plan`) its whole state is
copied at step ``P - anneal``, the copy decays the LR linearly to 0 over ``anneal`` steps (the L1 coefficient and
the monitor frozen) and becomes the SAE *measured at budget P*, and the stable run continues from the copy point.
The cost is the stable run plus the branches (:func:`.schedule.branch_overhead`: about ``1 + anneal_fraction``
for budgets that double).

:func:`cached_branches` keeps every branch as a cached SAE of its own (its key holds the whole schedule), with the
stable run's state at the branch point beside it: a run killed part-way resumes from the last completed branch.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch

from .schedule import branch_plan


def inference_sae(trainer, normalize_decoder_rows: bool = True):
    """The trainer's SAE as an inference SAE (a copy: scaling folded, metadata set, decoder rows unit-norm where
    asked); the trainer is untouched."""
    from sae_lens import SAE
    sae = copy.deepcopy(trainer.sae)
    factor = trainer.activation_scaler.scaling_factor
    if factor is not None:
        sae.fold_activation_norm_scaling_factor(factor)
    if trainer.n_frac_active_samples > 0:
        sae.cfg.metadata.l0 = trainer.feature_sparsity.sum().item()
        sae.cfg.metadata.num_dead_features = int(trainer.dead_neurons.sum().item())
    with tempfile.TemporaryDirectory(prefix="metasae_branch_") as tmp:
        sae.save_inference_model(tmp)
        out = SAE.load_from_disk(tmp, device="cpu")
    if normalize_decoder_rows:
        out.fold_W_dec_norm()
    return out.eval()


def anneal(trainer, until: int) -> None:
    """Decay the trainer's LR linearly from now to 0 at step ``until`` and train to it, without the monitor and
    with the L1 coefficient held (a branch)."""
    monitor, trainer.monitor = trainer.monitor, None
    warm = trainer.decay[0]
    trainer.decay = (warm, trainer.n_training_steps, until)
    for s in trainer.coefficient_schedulers.values():
        s.warm_up_steps = min(s.warm_up_steps, s.current_step)  # a branch keeps the coefficient it has
    try:
        trainer.run(until)
    finally:
        trainer.monitor = monitor


def run_branches(trainer, budgets, anneal_fraction: float, on_branch, skip=()) -> None:
    """Drive ``trainer`` (a :class:`~.lean.FastTrainer` at constant LR: no decay in its config) through the plan:
    at each branch point copy, :func:`anneal`, call ``on_branch(plan_row, inference_sae, state_at_branch_point)``
    and go back.  Budgets in ``skip`` (already done) only advance the stable run."""
    plan = branch_plan(budgets, anneal_fraction)
    for row in plan:
        trainer.run(row["start"])
        if row["budget"] in skip:
            continue
        state = trainer.state()
        anneal(trainer, row["budget"])
        on_branch(row, inference_sae(trainer), state)
        trainer.restore(state)


def cached_branches(step: str, spec: dict, budgets, anneal_fraction: float, make_trainer, version: int = 1,
                    extra=None):
    """Every branch of the plan through the artifact cache; returns ``[(budget, path)]`` (SAELens folders).

    ``make_trainer()`` builds a fresh :class:`~.lean.FastTrainer` for the stable run (called only when a branch is
    missing).  Each branch's entry holds the SAE and ``stable_state.pt`` (the stable run at its branch point); the
    first missing branch resumes from the latest completed branch's state, so nothing finished is recomputed
    but the stable steps between that branch point and the next.  ``extra(folder, plan_row, trainer)`` may write
    further files into a branch's folder (learning curves)."""
    from .. import artifacts
    plan = branch_plan(budgets, anneal_fraction)
    schedule = {"budgets": [r["budget"] for r in plan], "anneal_fraction": anneal_fraction}
    entries = {r["budget"]: artifacts.entry(step, {**spec, "branches": schedule, "budget": r["budget"]}, version)
               for r in plan}
    done = {b for b, e in entries.items() if e.has("sae")}
    if len(done) < len(plan):
        trainer = make_trainer()
        first_missing = min(b for b in entries if b not in done)
        resume = [b for b in sorted(done) if b < first_missing
                  and (entries[b].path / "sae" / "stable_state.pt").is_file()]
        if resume:
            trainer.restore(torch.load(entries[resume[-1]].path / "sae" / "stable_state.pt", weights_only=False))

        def save(row, sae, state):
            def make(folder):
                sae.save_model(folder)
                torch.save(state, Path(folder) / "stable_state.pt")
                if extra is not None:
                    extra(Path(folder), row, trainer)
            entries[row["budget"]].get_or_make("sae", make, budget=row["budget"])

        run_branches(trainer, [r["budget"] for r in plan], anneal_fraction, save, skip=done)
    return [(b, entries[b].path / "sae") for b in sorted(entries)]
