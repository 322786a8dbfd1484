"""The decisive verdict ``size_vs_seed``: is a larger SAE's novelty more than seed noise, at the budgets trained?

Its rule is declared in :data:`.registry.CLAIMS` (committed before the numbers it judges); every row records the
commit that last changed the registry (``rule_commit``), so a reader can check that the rule came first.  The input
is one pair's budget curve: annealed, live-only points ``{"steps", "novel_fraction", "twin_novel_fraction",
"novel_lowers", "twin_novel_lowers"}`` (fractions in 0..1).  Two margins are judged — novel fraction across sizes
minus the twin's, and novel latents lowering the MSE minus the twin's novel latents — at the largest budget, and
their growth per doubling of steps by least squares on log2(steps).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

from .registry import pct, row

#: the margins that decide (fractions): reproduced at >= GOOD, not reproduced below SMALL with slopes below SLOPE
GOOD, SMALL, SLOPE = 0.10, 0.05, 0.02
#: fewest budget points for a slope with a standard error
MIN_POINTS_FOR_SLOPE = 3
_TOL = 1e-12
_MARGINS = {"novel_fraction": ("novel_fraction", "twin_novel_fraction"),
            "novel_lowers": ("novel_lowers", "twin_novel_lowers")}


def rule_commit() -> str | None:
    """The git commit that last changed ``metasae_utils/claims/registry.py`` (None outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%H", "--", "metasae_utils/claims/registry.py"],
                             cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def fit_per_doubling(steps: list[float], values: list[float]) -> dict:
    """Least squares of ``values`` on log2(``steps``) (both length n): ``slope`` (per doubling; None for n < 2 or one
    distinct budget), ``se`` (its standard error; None for n < 3), ``x_mean`` (mean log2 steps), ``y_mean``,
    ``x_last`` (log2 of the largest budget)."""
    x = [math.log2(s) for s in steps]
    n = len(x)
    base = {"x_mean": sum(x) / n, "y_mean": sum(values) / n, "x_last": max(x)}
    xm, ym = base["x_mean"], base["y_mean"]
    sxx = sum((a - xm) ** 2 for a in x)
    if n < 2 or sxx == 0:
        return {"slope": None, "se": None, **base}
    slope = sum((a - xm) * (b - ym) for a, b in zip(x, values)) / sxx
    if n < 3:
        return {"slope": slope, "se": None, **base}
    ssr = sum((b - (ym + slope * (a - xm))) ** 2 for a, b in zip(x, values))
    return {"slope": slope, "se": math.sqrt(ssr / (n - 2) / sxx), **base}


def _steps_to_reach(fit: dict, slope: float | None, target: float = GOOD) -> float | None:
    """Steps at which the line through the fit's centroid with ``slope`` reaches ``target``.  A line that does not
    rise (slope <= 0) never reaches it — unless it is already there at the largest budget (``fit["x_last"]``), which
    is then the answer; None when it never gets there or there is no slope."""
    if slope is None:
        return None
    if slope <= 0:
        at_last = fit["y_mean"] + slope * (fit["x_last"] - fit["x_mean"])
        return 2.0 ** fit["x_last"] if at_last >= target - _TOL else None
    return 2.0 ** (fit["x_mean"] + (target - fit["y_mean"]) / slope)


def extrapolate(fits: dict[str, dict]) -> dict:
    """Budget at which every fitted margin reaches :data:`GOOD`: ``steps`` (the latest of the margins' crossings), and
    ``low`` / ``high`` from each slope ± one standard error (None when a slope, or slope - se, is <= 0: the fit never
    gets there)."""
    central, lows, highs = [], [], []
    for fit in fits.values():
        b, se = fit["slope"], fit["se"]
        central.append(_steps_to_reach(fit, b))
        ends = [] if b is None or se is None else [_steps_to_reach(fit, b + se), _steps_to_reach(fit, b - se)]
        known = [e for e in ends if e is not None]
        lows.append(min(known) if known else None)
        highs.append(None if not ends or None in ends else max(ends))

    def latest(xs):
        return None if not xs or any(v is None for v in xs) else max(xs)
    return {"steps": latest(central), "low": latest(lows), "high": latest(highs)}


def _usable(p: dict) -> bool:
    if p.get("annealed") is False or p.get("live_only") is False:
        return False
    return all(p.get(k) is not None and not math.isnan(float(p[k])) for pair in _MARGINS.values() for k in pair)


def _describe(pair: str, last: dict, margins: dict, fits: dict) -> str:
    def per_doubling(f):
        if f["slope"] is None:
            return "n/a"
        return f"{100 * f['slope']:+.1f}" + ("" if f["se"] is None else f" ± {100 * f['se']:.1f}")
    return (f"{pair} at {int(last['steps']):,} steps: novel {pct(last['novel_fraction'])} across sizes vs "
            f"{pct(last['twin_novel_fraction'])} between seed twins (margin {100 * margins['novel_fraction']:+.1f} "
            f"points); novel latents lower the MSE {pct(last['novel_lowers'])} vs {pct(last['twin_novel_lowers'])} "
            f"for the twin's (margin {100 * margins['novel_lowers']:+.1f} points); margins grow "
            f"{per_doubling(fits['novel_fraction'])} and {per_doubling(fits['novel_lowers'])} points per doubling")


def size_vs_seed_row(pair: str, points: list[dict]) -> dict:
    """The ``size_vs_seed`` verdict of one pair (e.g. ``"2304→4608"``) from its annealed, live-only budget
    ``points`` (see the module docstring; points marked ``annealed: False`` or ``live_only: False`` are left out).

    Returns a :func:`!metasae_utils.claims.registry.row` with ``value`` = the novel-fraction margin at the largest budget and ``control`` =
    the seed twin's novel fraction there, plus ``pair``, ``steps`` (the largest budget), ``margins`` (both margins
    there), ``fits`` (each margin's ``slope`` per doubling and its ``se``), ``extrapolation`` (for "undecided at this
    budget": ``steps`` at which both fitted margins reach 10 points, ``low`` / ``high`` from ± one standard error;
    None where the fit never gets there) and ``rule_commit``."""
    pts = sorted((p for p in points if _usable(p)), key=lambda p: p["steps"])
    extra = {"pair": pair, "steps": None, "margins": None, "fits": None, "extrapolation": None,
             "rule_commit": rule_commit()}
    if not pts:
        out = row("size_vs_seed", f"{pair}: no annealed, live-only budget point with a seed twin", "untestable here",
                  None, ("seed twin: novel fraction at the same width", None))
        return {**out, **extra}
    last = pts[-1]
    series = {name: [p[a] - p[b] for p in pts] for name, (a, b) in _MARGINS.items()}
    margins = {name: s[-1] for name, s in series.items()}
    steps = [p["steps"] for p in pts]
    fits = {name: fit_per_doubling(steps, s) for name, s in series.items()}
    text = _describe(pair, last, margins, fits)
    slopes_known = len(pts) >= MIN_POINTS_FOR_SLOPE and all(f["slope"] is not None for f in fits.values())
    ext = None
    if all(m >= GOOD - _TOL for m in margins.values()):
        verdict = "reproduced"
    elif (all(m < SMALL for m in margins.values()) and slopes_known
          and all(f["slope"] < SLOPE for f in fits.values())):
        verdict = "not reproduced"
    else:
        verdict = "undecided at this budget"
        ext = extrapolate(fits)
        low = "n/a" if ext["low"] is None else f"{ext['low']:,.0f}"
        high = "never" if ext["high"] is None else f"{ext['high']:,.0f}"
        text += ("; the fit never reaches 10 points on both margins" if ext["steps"] is None else
                 f"; the fit reaches 10 points on both at ≈ {ext['steps']:,.0f} steps (± one standard error: "
                 f"{low}–{high})")
        if not slopes_known:
            text += f" (a slope needs ≥ {MIN_POINTS_FOR_SLOPE} budgets; {len(pts)} here)"
    out = row("size_vs_seed", text, verdict, margins["novel_fraction"],
              ("seed twin: novel fraction at the same width", last["twin_novel_fraction"]))
    return {**out, **extra, "steps": last["steps"], "margins": margins,
            "fits": {k: {"slope": f["slope"], "se": f["se"]} for k, f in fits.items()}, "extrapolation": ext}
