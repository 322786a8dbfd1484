"""The checks that tie a trained family's fields together: annealed budget branches and L0 variants.

Each returns the message of the first problem (None when there is none); :func:`!metasae_utils.presets.validate`
raises it as a ``ConfigError``.  They apply to a family trained here only (ignored for a pretrained or local one).
"""

from __future__ import annotations


def budget_problem(cfg) -> str | None:
    """The annealed budget branches' fields agree with each other and with the family."""
    if cfg.family != "train":
        return None
    if cfg.budget_reach is not None and cfg.budget_multiples is None:
        return "parameter 'budget_reach' needs 'budget_multiples'"
    if cfg.budget_multiples is None:
        return None
    mult = list(cfg.budget_multiples)
    if mult != sorted(set(mult)) or 1.0 not in mult:
        return f"parameter 'budget_multiples' = {mult} must be strictly increasing and hold 1"
    if cfg.checkpoint_fractions:
        return ("parameters 'budget_multiples' and 'checkpoint_fractions' exclude each other: the budgets "
                "below 1 replace the checkpoints")
    bad = [r for r in (cfg.budget_reach or ()) if r not in mult or r < 1]
    if bad:
        return (f"parameter 'budget_reach' = {list(cfg.budget_reach)} holds {bad[0]}, which is not one of "
                f"'budget_multiples' >= 1: allowed: {[m for m in mult if m >= 1]}")
    return None


def l0_problem(cfg) -> str | None:
    """The L0 variants name widths of the family, in the form the code reads."""
    if cfg.family != "train":
        return None
    if cfg.l0_targets and (len(cfg.l0_widths) != 2 or not set(cfg.l0_widths) <= set(cfg.widths)):
        return (f"parameter 'l0_widths' = {list(cfg.l0_widths)} must be two of 'widths' = "
                f"{list(cfg.widths)} when 'l0_targets' is given (or set l0_targets: [] and l0_extra: [] to train no "
                "L0 variants)")
    for item in cfg.l0_extra:
        w, _, l0 = str(item).partition("@")
        if not (w.isdigit() and int(w) in cfg.widths and l0.replace(".", "", 1).isdigit() and float(l0) > 0):
            return (f"parameter 'l0_extra' holds {item!r}: write 'width@L0' with a width of 'widths' = "
                    f"{list(cfg.widths)}, e.g. '{cfg.widths[-1]}@64' (or l0_extra: [] for none)")
    return None
