"""One row of the bench table: a ratio, its goal, and whether it was met."""

from __future__ import annotations

import os


def row(bench, name, ratio, goal, detail, why=None, **extra) -> dict:
    """One table row.  ``goal``: ``(lo, hi)`` bounds on the ratio (None = open) or None (reported, no goal);
    ``why`` explains a miss."""
    lo, hi = goal or (None, None)
    met = None if goal is None else (lo is None or ratio >= lo) and (hi is None or ratio <= hi)
    text = ("report" if goal is None else f">= {lo:g}" if hi is None else f"<= {hi:g}" if lo is None
            else f"{lo:g} to {hi:g}")
    return {"bench": bench, "name": name, "ratio": ratio, "goal": text, "met": met, "detail": detail,
            "why": None if met in (True, None) else why, "load_avg_1min": round(os.getloadavg()[0], 2), **extra}
