"""The budget curve: the claims recomputed from checkpoints of the one training run (not retrained).

A monitored family (``families.monitored``) saves every SAE at fractions of its run (``checkpoint_fractions``).
Loading the small SAE, the large SAE and the large SAE's seed twin at the same step gives the family "as if trained
for that budget"; the stitching numbers (:func:`metasae_utils.stitching.pair_numbers`) and the meta-SAE numbers are
then computed exactly as for the final SAEs.  It answers: would this claim hold if the SAEs were trained longer?
"""

from __future__ import annotations

import torch

from .families import Member, at_checkpoint


def _at(member: Member | None, step: int | None) -> Member | None:
    """``member`` at checkpoint ``step`` (None: as trained to the end)."""
    return member if member is None or step is None else at_checkpoint(member, step)


def _fraction(step: int | None, total: int | None) -> float:
    """The share of the run at checkpoint ``step`` (None: the end, 1.0).  ``total`` is None for SAEs not trained
    here (a pretrained or local family records no step count)."""
    return 1.0 if step is None or not total else step / total


def common_steps(*members: Member) -> list[int]:
    """Checkpoint steps every member has (ascending); [] when a member has none."""
    steps = None
    for m in members:
        have = set((m.info.get("checkpoints") or {}).keys())
        steps = have if steps is None else steps & have
    return sorted(steps or ())


def stitching_budget(small: Member, large: Member, twin: Member | None, activations: torch.Tensor,
                     seed: int = 0) -> list[dict]:
    """:func:`metasae_utils.stitching.pair_numbers` at every common checkpoint and at the end of the run.

    Returns one dict per budget: ``step``, ``fraction`` (of the run), and the flat numbers: ``novel_fraction``,
    ``twin_novel_fraction``, ``novel_lowers``, ``recon_raises``, ``novel_raises``, ``self_duplicate``,
    ``spearman`` and ``spearman_random`` (greedy and random-order paths)."""
    from .stitching import pair_numbers
    members = [m for m in (small, large, twin) if m is not None]
    total = large.info.get("n_steps")
    out = []
    for step in [*common_steps(*members), None]:
        s, lg, tw = (_at(m, step) for m in (small, large, twin))
        nums = pair_numbers(s.sae, lg.sae, activations, twin=tw.sae if tw else None, seed=seed)
        out.append({"step": step or total, "fraction": _fraction(step, total),
                    **{k: v for k, v in nums.items() if not isinstance(v, (dict, list))},
                    "spearman": nums["mono"]["spearman_step_vs_mse"],
                    "spearman_random": nums["mono_random"]["spearman_step_vs_mse"]})
    return out


def meta_budget(base: Member, train_meta, measure) -> list[dict]:
    """``measure(base_sae, meta_sae) -> dict`` at every checkpoint of ``base`` and at the end of its run, with
    ``train_meta(base_member) -> meta_sae`` (a cached meta-SAE on that checkpoint's decoder).  Returns one dict per
    budget: ``step``, ``fraction`` and ``measure``'s keys."""
    total = base.info.get("n_steps")
    out = []
    for step in [*common_steps(base), None]:
        m = _at(base, step)
        out.append({"step": step or total, "fraction": _fraction(step, total), **measure(m.sae, train_meta(m))})
    return out
