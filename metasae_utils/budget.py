"""The budget curve: the claims recomputed at shorter (or longer) training budgets of one run, not retrained.

A monitored family (``families.monitored``) keeps every SAE at several budgets: checkpoints at fractions of its run
(``checkpoint_fractions``, at peak learning rate), or — with ``budget_multiples`` — annealed branches
(:mod:`metasae_utils.branched`: the stable run copied and its LR decayed to 0 at each budget), which the family
exposes as its checkpoints below the full run.  Loading the small SAE, the large SAE and the large SAE's seed twin
at the same budget gives the family "as if trained for that budget"; the stitching numbers
(:func:`metasae_utils.stitching.pair_numbers`) and the meta-SAE numbers are then computed exactly as for the final
SAEs.  :func:`annealed_rows` measures every adjacent pair at every common annealed budget, beyond the family's run
too.  It answers: would this claim hold if the SAEs were trained longer?
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


def _common_keys(members, field: str) -> list[int]:
    """The keys of ``m.info[field]`` (a dict keyed by steps) that every member has, ascending; [] when one has none."""
    have = None
    for m in members:
        keys = set((m.info.get(field) or {}).keys())
        have = keys if have is None else have & keys
    return sorted(have or ())


def common_steps(*members: Member) -> list[int]:
    """Checkpoint steps every member has (ascending); [] when a member has none."""
    return _common_keys(members, "checkpoints")


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


# -- the annealed budget curve (presets with budget_multiples) ---------------------------------------------------

def branch_budgets(*members: Member) -> list[int]:
    """Budgets (steps) at which every member has an annealed branch (ascending); [] without branches."""
    return _common_keys(members, "branches")


def _at_branch(member: Member, budget: int) -> Member:
    from .training import load_sae
    path = member.info["branches"][budget]
    return Member(f"{member.name}@{budget}", load_sae(path), member.width, member.architecture, path,
                  {**member.info, "step": budget})


def annealed_rows(members: list[Member], twins: dict[int, Member], heldout: torch.Tensor, train: torch.Tensor,
                  seed: int = 0) -> list[dict]:
    """One row per (adjacent pair whose larger width has a seed twin, common annealed budget): the stitching
    numbers of :func:`metasae_utils.stitching.pair_numbers` on held-out rows ``heldout`` (n, d_in), live latents
    only, beside the same numbers between the larger SAE and its twin, and the larger SAE's FVU on ``train`` rows
    (m, d_in) and on held-out rows (is the family data-bound?).  Keys: ``pair``, ``steps``, ``annealed``,
    ``live_only``, ``novel_fraction``, ``twin_novel_fraction``, ``novel_lowers``, ``twin_novel_lowers``,
    ``recon_raises``, ``twin_recon_raises``, ``self_duplicate``, ``dead_small``, ``dead_large``, ``fvu_train``,
    ``fvu_heldout``, ``l0``."""
    from .evaluate import reconstruction_metrics
    from .stitching import pair_numbers
    rows = []
    for small, large in zip(members, members[1:]):
        twin = twins.get(large.width)
        if twin is None:
            continue
        for steps in branch_budgets(small, large, twin):
            s, lg, tw = (_at_branch(m, steps) for m in (small, large, twin))
            nums = pair_numbers(s.sae, lg.sae, heldout, twin=tw.sae, seed=seed, paths=False)
            held = reconstruction_metrics(lg.sae, heldout)
            rows.append({
                "pair": f"{small.width}→{large.width}", "small": small.width, "large": large.width,
                "steps": steps, "annealed": True, "live_only": "dead_large" in nums,
                **{k: nums.get(k) for k in ("novel_fraction", "twin_novel_fraction", "novel_lowers",
                                            "twin_novel_lowers", "recon_raises", "twin_recon_raises",
                                            "self_duplicate", "dead_small", "dead_large")},
                "fvu_train": reconstruction_metrics(lg.sae, train)["fvu"], "fvu_heldout": held["fvu"],
                "l0": held["l0"]})
    return rows
