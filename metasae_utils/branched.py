"""A family member trained with annealed budget branches (presets with ``budget_multiples``).

One warm-up / stable run per SAE (:mod:`metasae_utils.training.branches`); at each budget ``m * steps`` (``m`` in
``budget_multiples`` up to the width's ``budget_reach``) a copy is annealed over ``budget_anneal_fraction`` of
that budget and cached as an SAE of its own.  The branch at ``m = 1`` is the family's SAE: the same run as the
plain recipe with ``lr_decay_fraction = budget_anneal_fraction`` (constant LR, then a linear decay), step for
step.  The L1 controller
and the learning curve follow the stable run, the controller for the first ``l1_control_until`` of the family's
run (not of the longest budget), so every budget of every width shares one L1 schedule.
"""

from __future__ import annotations

import json
from pathlib import Path

from .presets import Config

BRANCH_VERSION = 1


def budgets(cfg: Config, width: int, steps: int) -> list[int]:
    """The budgets (steps, ascending) of ``width``'s SAE: ``round(m * steps)`` for each multiple up to its reach."""
    reach = reach_of(cfg, width)
    return sorted({max(1, round(m * steps)) for m in cfg.budget_multiples if m <= reach})


def reach_of(cfg: Config, width: int) -> float:
    """The largest budget multiple of ``width``'s SAE: ``budget_reach`` from the smallest width up, else 1."""
    order = sorted(cfg.widths)
    reach = list(cfg.budget_reach or ())
    i = order.index(width) if width in order else len(reach)
    return reach[i] if i < len(reach) else 1.0


def _write_record(folder: Path, row: dict, trainer) -> None:
    """``curve.json`` beside a branch: the stable run's learning curve up to the branch point, the L1 history and the
    coefficient the branch trained with, its budget and where its decay began."""
    mon = trainer.monitor
    l1 = float(trainer.coefficient_schedulers["l1"].final_value)
    (folder / "curve.json").write_text(json.dumps({
        "curve": [] if mon is None else [p for p in mon.curve if p["step"] <= row["start"]],
        "l1_history": [] if mon is None else [h for h in mon.l1_history if h[0] <= row["start"]],
        "final_l1_coefficient": l1, "budget": row["budget"], "decay_start": row["start"], "checkpoints": {}},
        indent=1))


def train_branched(cfg: Config, train_acts, eval_acts, width: int, steps: int, hyper: dict, spec: dict,
                   progress: bool = True) -> dict[int, Path]:
    """Every budget branch of one SAE (``hyper``: the family's hyper-parameters and recipe; ``spec``: its cache
    key), through the cache; returns ``{budget steps: SAELens folder}``."""
    from .precision import training_dtype
    from .training import FAST_STEP, branches, make_trainer
    from .training.monitor import Monitor
    from .training.schedule import branch_plan
    plan = budgets(cfg, width, steps)
    r = hyper["recipe"]
    spec = {**spec, "train_dtype": training_dtype(), "train_step": FAST_STEP}
    rows = branch_plan(plan, cfg.budget_anneal_fraction)
    bar = {}

    def make():
        # the L1 warm-up of the family's run (5 % of it), whatever the longest budget
        trainer = make_trainer(train_acts, width, n_steps=plan[-1], batch_size=cfg.train_batch_size, lr=cfg.lr,
                               seed=hyper["seed"], l1_coefficient=cfg.l1_coefficient, l1_warm_up_steps=steps // 20)
        trainer.monitor = Monitor(
            n_steps=steps, eval_acts=eval_acts[: r["curve_tokens"]] if r["curve_every"] else None,
            curve_every=r["curve_every"], target_l0=r["target_l0"], control_until=r["l1_control_until"])
        if progress:
            from tqdm.auto import tqdm
            bar["bar"] = trainer.progress = tqdm(total=rows[-1]["start"] + sum(x["anneal"] for x in rows),
                                                 desc=f"Training SAE {width} (stable run + branches)", mininterval=1.0)
        return trainer

    try:
        return dict(branches.cached_branches("saes-branch", spec, plan, cfg.budget_anneal_fraction, make,
                                             version=BRANCH_VERSION, extra=_write_record))
    finally:
        if "bar" in bar:
            bar["bar"].close()
