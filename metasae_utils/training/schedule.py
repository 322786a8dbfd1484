"""Learning-rate schedules: SAELens' warm-up / constant / linear decay, and annealed budget branches.

:func:`lr_factor` is the factor SAELens' ``get_lr_scheduler("constant", ...)`` applies at a step (tested equal,
step for step).  A *warm-up, stable, decay* run keeps the factor at 1 after the warm-up; an annealed branch at
budget ``P`` leaves the stable run at step ``P - round(anneal_fraction * P)`` and decays linearly to 0 over the
remaining steps (``int(anneal_fraction * P)``, the decay of an ordinary run of ``P`` steps), so the branch has
trained ``P`` steps in all (:func:`branch_plan`).
"""

from __future__ import annotations


def lr_factor(step: int, warm_up: int, decay_start: int, end: int) -> float:
    """The LR multiplier used by step ``step`` (0-based): linear warm-up over ``warm_up`` steps (SAELens: from
    ``1 / warm_up`` to 1), 1 until ``decay_start``, then linear decay reaching 0 at ``end``."""
    if warm_up > 0 and step < warm_up:
        if warm_up == 1:
            return 1.0
        return 1.0 / warm_up + (1.0 - 1.0 / warm_up) * step / (warm_up - 1)
    if step < decay_start or end <= decay_start:
        return 1.0
    return max(0.0, 1.0 - (step - decay_start) / (end - decay_start))


def branch_plan(budgets, anneal_fraction: float) -> list[dict]:
    """For each budget ``P`` (steps, ascending, unique): where its branch leaves the stable run (``start``) and its
    length (``anneal``).  The stable run must reach the largest ``start``; the branches' extra steps total
    ``sum(anneal)``."""
    budgets = [int(b) for b in budgets]
    if not budgets or budgets != sorted(set(budgets)) or budgets[0] < 1:
        raise ValueError(f"budgets must be ascending, unique, positive step counts, got {budgets}")
    if not 0 < anneal_fraction < 1:
        raise ValueError(f"anneal_fraction must be in (0, 1), got {anneal_fraction}")
    plan = []
    for p in budgets:
        anneal = max(1, int(anneal_fraction * p))  # as lr_decay_steps = int(lr_decay_fraction * steps)
        plan.append({"budget": p, "start": p - anneal, "anneal": anneal})
    return plan


def branch_overhead(budgets, anneal_fraction: float) -> float:
    """Steps of the stable run plus every branch, over the steps of one run to the largest budget: the cost of a
    whole annealed budget curve relative to training the largest budget alone."""
    plan = branch_plan(budgets, anneal_fraction)
    stable = plan[-1]["start"]
    return (stable + sum(p["anneal"] for p in plan)) / plan[-1]["budget"]
