"""The canonicality map's figures: the matrix with its seed-twin cells marked, and its three readings — matched
share against width ratio, against seed, against L0 — each beside the twin floor.

Inputs are the map's entries (:class:`metasae_utils.canonmap.MapSAE`, or their ``row()`` dicts) and the matched
matrix (n, n nested lists, row i = the share of SAE i's live latents matched in SAE j).  The ``*_points`` functions
return plain dicts (tested); the figure functions only draw them.
"""

from __future__ import annotations

import math

from .canonmap import twin_cells


def _row(s) -> dict:
    return s if isinstance(s, dict) else s.row()


def _val(m, i, j):
    v = m[i][j]
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def twin_floor(saes, matched) -> float | None:
    """The noise floor: the mean matched share over the seed-twin cells (None without twins)."""
    vals = [v for i, j in twin_cells(saes) if (v := _val(matched, i, j)) is not None]
    return sum(vals) / len(vals) if vals else None


def width_points(saes, matched) -> list[dict]:
    """Family SAEs (seed offset 0, kind "family") of different widths: ``{"a", "b", "a_width", "ratio"
    (width of b / width of a), "share" (A's live latents matched in B)}``."""
    rows = [_row(s) for s in saes]
    fam = [i for i, r in enumerate(rows) if r["kind"] == "family"]
    return [{"a": rows[i]["name"], "b": rows[j]["name"], "a_width": rows[i]["width"],
             "ratio": rows[j]["width"] / rows[i]["width"], "share": _val(matched, i, j)}
            for i in fam for j in fam if rows[i]["width"] != rows[j]["width"] and _val(matched, i, j) is not None]


def seed_points(saes, matched) -> list[dict]:
    """Per width of the family: the share of its SAE matched in its seed twin ("seed twin: same width, other
    seed"), in the next larger family SAE ("next width, same seed") and in that SAE's seed twin ("next width, other
    seed"): ``{"width", "series", "share"}``."""
    rows = [_row(s) for s in saes]
    fam = {r["width"]: i for i, r in enumerate(rows) if r["kind"] == "family"}
    twin = {r["width"]: i for i, r in enumerate(rows) if r["kind"] == "twin"}
    widths = sorted(fam)
    out = []
    for k, w in enumerate(widths):
        i = fam[w]
        targets = [("seed twin: same width, other seed", twin.get(w))]
        if k + 1 < len(widths):
            nxt = widths[k + 1]
            targets += [("next width, same seed", fam[nxt]), ("next width, other seed", twin.get(nxt))]
        out += [{"width": w, "series": s, "share": _val(matched, i, j)} for s, j in targets
                if j is not None and _val(matched, i, j) is not None]
    return out


def l0_points(saes, matched, family_l0: float | None) -> list[dict]:
    """Standard SAEs along L0 (the family's and the L0 variants, twins included): ``{"l0", "series", "share"}``
    for "same width: in the family's L0 (<w>)" (a variant's latents matched in the family SAE of its width),
    "seed twin (<w>)" (in its seed twin at the same L0) and "across widths: <w1> in <w0>" (the larger width's
    latents matched in the smaller at the same L0 and seed: 1 − novel fraction)."""
    rows = [_row(s) for s in saes]
    std = {(r["width"], r["l0_target"], r["seed"]): i for i, r in enumerate(rows)
           if r["kind"] in ("family", "twin", "l0", "l0-twin")}
    main = {(w, l0): i for (w, l0, seed), i in std.items() if seed in (0, 2)}
    out = []
    for (w, l0), i in sorted(main.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        fam = main.get((w, family_l0))
        if l0 != family_l0 and fam is not None:
            out.append({"l0": l0, "series": f"same width, in the family's L0 {family_l0:g}, another seed ({w})",
                        "share": _val(matched, i, fam), "group": w})
        tw = std.get((w, l0, 1 if l0 == family_l0 else 3))
        if tw is not None:
            out.append({"l0": l0, "series": f"seed twin ({w})", "share": _val(matched, i, tw), "group": w})
        smaller = [v for v in {ww for ww, ll in main if ll == l0} if v < w]
        if smaller:
            j = main[(max(smaller), l0)]
            out.append({"l0": l0, "series": f"across widths: {w} in {max(smaller)}", "share": _val(matched, i, j),
                        "group": w})
    return [p for p in out if p["share"] is not None and p["l0"] is not None]


def _lines(points: list[dict], x: str, title: str, x_title: str, floor: float | None, log_x: bool = False,
           ticks_at_points: bool = False):
    """One line per ``series`` of ``points`` over ``x`` (one colour per ``group`` when the points carry one, else
    per series; seed-twin series dotted, across-width series dashed), the twin floor as a dashed grey line;
    ``ticks_at_points``: x ticks at the points' x values (widths, target L0s).  None without points (a preset
    without that axis: nothing is drawn)."""
    if not points:
        return None
    import plotly.graph_objects as go

    from .plots import COLORS, clean_log_axes, top_title
    fig = go.Figure()
    groups = list(dict.fromkeys(p.get("group", p["series"]) for p in points))
    points = sorted(points, key=lambda p: groups.index(p.get("group", p["series"])))
    for s in dict.fromkeys(p["series"] for p in points):
        pts = sorted((p for p in points if p["series"] == s), key=lambda p: p[x])
        dash = "dot" if s.startswith("seed twin") else "dash" if s.startswith("across") else None
        color = COLORS[groups.index(pts[0].get("group", s)) % len(COLORS)]
        fig.add_trace(go.Scatter(x=[p[x] for p in pts], y=[p["share"] for p in pts], mode="lines+markers", name=s,
                                 line=dict(color=color, dash=dash)))
    if floor is not None:
        fig.add_hline(y=floor, line=dict(color="gray", dash="dash"), annotation_text="seed-twin floor (mean)",
                      annotation_position="top right")
    fig.update_layout(title=top_title(title), xaxis_title=x_title,
                      yaxis=dict(title="share of live latents matched (cosine > 0.7)", tickformat=".0%",
                                 rangemode="tozero"),
                      height=440, margin=dict(l=70, r=20, t=90, b=110),
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0))
    if log_x:
        fig.update_xaxes(type="log")
        clean_log_axes(fig)
    if ticks_at_points and points:
        xs = sorted({p[x] for p in points})
        fig.update_xaxes(tickvals=xs, ticktext=[f"{v:g}" for v in xs])
    return fig


def width_figure(saes, matched):
    """Matched share against the width ratio (log scale), one line per width of A, with the twin floor."""
    pts = [{**p, "series": f"A = {p['a_width']} latents"} for p in width_points(saes, matched)]
    return _lines(pts, "ratio", "Across widths: share of A's live latents matched in B, by B's width over A's",
                  "width of B / width of A (log scale)", twin_floor(saes, matched), log_x=True)


def seed_figure(saes, matched):
    """Matched share against seed: each family width in its seed twin and in the next width (same / other seed)."""
    return _lines(seed_points(saes, matched), "width", "Across seeds: each family SAE's live latents matched in "
                  "its seed twin and in the next width", "SAE width (latents, log scale)", twin_floor(saes, matched),
                  log_x=True, ticks_at_points=True)


def l0_figure(saes, matched, family_l0):
    """Matched share against target L0: in the family's L0, in the seed twin, across widths at one L0."""
    return _lines(l0_points(saes, matched, family_l0), "l0", "Across L0: live latents matched in the family's L0, "
                  "in the seed twin, and across widths", "target L0 (active latents per token, log scale)",
                  twin_floor(saes, matched), log_x=True, ticks_at_points=True)


def heatmap(saes, matrix, title: str, colorbar: str):
    """The (n, n) ``matrix`` as a heatmap (row: SAE A, column: SAE B), seed-twin cells outlined."""
    import plotly.graph_objects as go

    from .plots import top_title
    names = [_row(s)["name"] for s in saes]
    z = [[None if v is None else float(v) for v in r] for r in matrix]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, colorscale="Viridis", zmin=0, zmax=1,
                               colorbar=dict(title=colorbar), hovertemplate="A %{y}<br>B %{x}<br>%{z:.3f}"
                               "<extra></extra>"))
    cells = twin_cells(saes)
    if cells:
        fig.add_trace(go.Scatter(x=[names[j] for _, j in cells], y=[names[i] for i, _ in cells], mode="markers",
                                 marker=dict(symbol="square-open", size=14, color="red", line=dict(width=2)),
                                 name="seed twins: the noise floor", hoverinfo="skip"))
    n = len(names)
    fig.update_layout(title=top_title(title), height=max(480, 26 * n + 260), width=None,
                      xaxis=dict(title="SAE B", tickangle=-60, type="category"),
                      yaxis=dict(title="SAE A", autorange="reversed", type="category"),
                      margin=dict(l=200, r=20, t=90, b=200), showlegend=bool(cells), legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1, xanchor="right"))
    return fig


def summary(saes, matched) -> str:
    """The map's reading in words (markdown): the seed-twin floor, the range of matched shares in wider and in
    narrower family SAEs, and the means of :func:`seed_points`' series over the family's widths."""
    text = [f"The map holds {len(saes)} SAEs."]
    floor = twin_floor(saes, matched)
    if floor is not None:
        text.append(f"Seed twins share {100 * floor:.1f} % of their live latents on average: the floor.")
    wp = width_points(saes, matched)
    for label, pts in (("a wider", [p["share"] for p in wp if p["ratio"] > 1]),
                       ("a narrower", [p["share"] for p in wp if p["ratio"] < 1])):
        if pts:
            text.append(f"A family SAE's live latents are matched in {label} family SAE at {100 * min(pts):.1f}–"
                        f"{100 * max(pts):.1f} %.")
    sp = seed_points(saes, matched)
    series = list(dict.fromkeys(p["series"] for p in sp))
    if series:
        means = {s: [p["share"] for p in sp if p["series"] == s] for s in series}
        text.append("Means over the family's widths: " + "; ".join(f"{s} {100 * sum(v) / len(v):.1f} %"
                                                                   for s, v in means.items()) + ".")
    return " ".join(text)
