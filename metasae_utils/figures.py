"""Figures and small HTML views of the paper's remaining experiments: the ΔMSE–cosine plane, the Frankenstein SAE
on the (L0, MSE) plane, meta-SAEs at two dictionary ratios, and a named decomposition."""

from __future__ import annotations

from html import escape

import torch

from .plots import COLORS, top_title

#: points drawn per panel of the ΔMSE–cosine scatter (a seeded sample beyond this; all are counted)
MAX_POINTS = 2500


def _sample(n: int, limit: int, seed: int) -> torch.Tensor:
    if n <= limit:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def delta_cosine_scatter(panels: list[dict], threshold: float = 0.7, seed: int = 0):
    """One panel per adjacent pair: every latent of the larger SAE at (max decoder cosine to the smaller SAE, ΔMSE
    inserted alone, as a % of the smaller SAE's MSE), coloured by class, with the threshold line, the zero line and,
    where the larger width has a seed twin, the band (10th–90th percentile) of max cosines between the larger SAE
    and its twin: how similar two SAEs of the *same* width are.

    ``panels``: dicts with ``pair`` (label), ``max_cos`` (m,), ``delta_mse`` (m,), ``base_mse`` (the smaller SAE's
    MSE), ``quadrants`` (:func:`metasae_utils.stitching.quadrant_shares`) and ``twin_band`` ((lo, hi) or None).
    The y axis is clipped to the 1st–99th percentile of all panels (stated in the title)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[_panel_title(p) for p in panels])
    ys = torch.cat([100 * torch.as_tensor(p["delta_mse"]).double() / p["base_mse"] for p in panels])
    lo, hi = torch.quantile(ys, torch.tensor([0.01, 0.99], dtype=torch.float64)).tolist()
    pad = 0.05 * (hi - lo)
    for c, p in enumerate(panels, start=1):
        x = torch.as_tensor(p["max_cos"]).double()
        y = 100 * torch.as_tensor(p["delta_mse"]).double() / p["base_mse"]
        keep = _sample(len(x), MAX_POINTS, seed + c)
        x, y = x[keep], y[keep]
        for name, mask, color in (("novel (cos ≤ 0.7)", x <= threshold, COLORS[2]),
                                  ("reconstruction (cos > 0.7)", x > threshold, COLORS[3])):
            fig.add_trace(go.Scatter(x=x[mask].tolist(), y=y[mask].clamp(lo - pad, hi + pad).tolist(),
                                       mode="markers", name=name, legendgroup=name, showlegend=c == 1,
                                       marker=dict(size=4, color=color, opacity=0.55)), row=1, col=c)
        if p.get("twin_band"):
            fig.add_vrect(x0=p["twin_band"][0], x1=p["twin_band"][1], fillcolor="gray", opacity=0.15, line_width=0,
                          row=1, col=c)
        fig.add_vline(x=threshold, line_dash="dot", row=1, col=c)
        fig.add_hline(y=0, line_color="black", line_width=1, row=1, col=c)
        fig.update_xaxes(title_text="max cosine to the smaller SAE", range=[0, 1.02], row=1, col=c)
    fig.update_yaxes(title_text="ΔMSE inserted alone (% of the smaller SAE's MSE)", range=[lo - pad, hi + pad],
                     row=1, col=1)
    fig.update_layout(title=top_title("Single-insertion ΔMSE against max decoder cosine, per pair<br><sup>y clipped "
                                      f"to its 1st–99th percentile · at most {MAX_POINTS} points drawn per panel · grey "
                                      "band: seed twins of the larger width, 10th–90th percentile</sup>"),
                      height=510, margin=dict(t=150), legend=dict(orientation="h", y=-0.25))
    fig.update_annotations(font_size=12)
    return fig


def _panel_title(p: dict) -> str:
    q = p["quadrants"]
    return (f"{p['pair']}:<br>agree {100 * q['agreement']:.0f} % (chance {100 * q['chance']:.0f} %)")


def quadrant_table(panels: list[dict]) -> str:
    """HTML: the share of firing latents in each quadrant of every panel, with agreement, chance and AUC."""
    from .stitching import QUADRANTS
    head = "".join(f"<th>{escape(h)}</th>" for h in ("pair", *QUADRANTS, "agreement", "chance", "AUC",
                                                     "best cut", "silent"))
    body = []
    for p in panels:
        q = p["quadrants"]
        cells = [p["pair"], *[f"{100 * q[k]:.1f} %" for k in QUADRANTS], f"{100 * q['agreement']:.1f} %",
                 f"{100 * q['chance']:.1f} %", f"{q['auc']:.2f}", f"{q['best_threshold']:.2f}", str(q["n_silent"])]
        body.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in cells) + "</tr>")
    return _scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def frankenstein_plane(family_points: list[dict], frankensteins: list[dict], frontier: list[dict]):
    """The trained SAEs and the Frankenstein SAEs on the (L0, MSE) plane, with the trained SAEs' frontier (lower
    envelope, linear in log L0; dashed beyond their largest L0, where it is only an upper bound).  ``family_points``:
    dicts with ``width``, ``l0``, ``mse`` and optionally ``label`` (the marker's text; default: the width)."""
    import plotly.graph_objects as go
    fig = go.Figure()
    inside = [p for p in frontier if not p["extrapolated"]]
    beyond = [p for p in frontier if p["extrapolated"]]
    fig.add_trace(go.Scatter(x=[p["l0"] for p in inside], y=[p["mse"] for p in inside], mode="lines",
                             name="frontier of the trained SAEs", line=dict(color="gray")))
    if beyond:
        dashed = inside[-1:] + beyond  # joined to the last interpolated point
        fig.add_trace(go.Scatter(x=[p["l0"] for p in dashed], y=[p["mse"] for p in dashed], mode="lines",
                                 name="frontier beyond the trained L0s (upper bound)", line=dict(color="gray", dash="dash")))
    fig.add_trace(go.Scatter(x=[p["l0"] for p in family_points], y=[p["mse"] for p in family_points],
                             mode="markers+text", text=[p.get("label", str(p["width"])) for p in family_points],
                             textposition="top right", name="trained SAEs", marker=dict(size=11, color="black")))
    for f, color in zip(frankensteins, (COLORS[4], COLORS[1])):
        fig.add_trace(go.Scatter(x=[f["l0"]], y=[f["mse"]], mode="markers", name=f["name"],
                                 marker=dict(symbol="star", size=15, color=color)))
    fig.update_layout(title="Frankenstein SAEs against the trained family", xaxis_title="L0 (active latents per token)",
                      yaxis_title="MSE on held-out activations", height=420)
    return fig


def ratio_table(rows: list[dict]) -> str:
    """HTML: meta-SAEs at several dictionary ratios beside their random-row controls.  ``rows``: dicts with
    ``ratio`` (label), ``d_meta`` and the :func:`metasae_utils.meta.meta_metrics` of the meta-SAE (``mm``) and of
    its control (``random``)."""
    head = ("<tr><th>ratio</th><th>meta-latents</th><th>variance explained</th><th>random rows</th>"
            "<th>cosine</th><th>random rows</th><th>meta-latents per latent</th><th>most shared meta-latent's users</th>"
            "<th>dead meta-latents</th></tr>")
    body = []
    for r in rows:
        m, c = r["mm"], r["random"]
        cells = [r["ratio"], f"{r['d_meta']:,}", f"{100 * m['variance_explained']:.1f} %",
                 f"{100 * c['variance_explained']:.1f} %", f"{m['mean_cosine']:.3f}", f"{c['mean_cosine']:.3f}",
                 f"{m['mean_meta_latents_per_latent']:.2f}", f"{100 * m['max_shared_fraction']:.1f} %",
                 f"{100 * m['dead_fraction']:.1f} %"]
        body.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in cells) + "</tr>")
    return _scroll(f"<table>{head}{''.join(body)}</table>")


def decomposition_html(title: str, rows: list[dict]) -> str:
    """HTML: one latent's meta-latents, each with its activation and the latents that use it most with their top
    contexts.  ``rows``: dicts with ``meta`` (id), ``act``, ``users`` (list of (latent id or label, contexts HTML)).
    Latent and meta-latent ids link to their views in the explorer (:func:`metasae_utils.explorer.link`)."""
    from .explorer import link
    body = []
    for r in rows:
        users = "".join(f"<li><b>{link(lab) if isinstance(lab, int) else escape(str(lab))}</b>: {ctx}</li>"
                        for lab, ctx in r["users"])
        body.append(f"<tr><td>{link(r['meta'], kind='meta')}</td><td>{r['act']:.2f}</td><td><ul>{users}</ul></td></tr>")
    return _scroll(f"<p><b>{escape(title)}</b></p><table><tr><th>meta-latent</th><th>activation</th>"
                   f"<th>the latents that use it most, and where they fire</th></tr>{''.join(body)}</table>")


def _scroll(html: str) -> str:
    return f'<div style="overflow-x:auto;max-width:100%">{html}</div>'


def edit_curves(summary: list[dict], methods: list[str], references: tuple[str, ...] = ()):
    """The targeted-edit rates against the number of units edited: one panel for "target changed" (success), one
    for "others kept" (keep), a line per method over its ``k``; methods in ``references`` (whole-code or residual
    swaps, no ``k``) are horizontal dashed lines.  ``summary``: rows of ``edits.experiment.summary``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=2, subplot_titles=("target attribute changed", "other attributes kept"),
                        horizontal_spacing=0.12)
    ks = sorted({int(r["k"]) for r in summary if r["k"] is not None and r["k"] == r["k"]}) or [1]
    for method, color in zip(methods, COLORS * 2):
        pts = sorted((r for r in summary if r["method"] == method), key=lambda r: r["k"] or 0)
        for col, key in ((1, "success"), (2, "keep")):
            if method in references:
                xs, ys, line = [ks[0], ks[-1]], [pts[0][key]] * 2 if pts else [], dict(color=color, dash="dash")
            else:
                xs, ys, line = [int(r["k"]) for r in pts], [r[key] for r in pts], dict(color=color)
            fig.add_trace(go.Scatter(x=xs, y=ys, name=method, legendgroup=method, showlegend=col == 1, line=line,
                                     mode="lines" if method in references else "lines+markers"), row=1, col=col)
    fig.update_xaxes(title_text="units edited (k)", type="log", tickvals=ks, ticktext=[str(k) for k in ks])
    fig.update_yaxes(title_text="share of held-out edits", range=[-0.05, 1.05], tickformat=".0%")
    fig.update_layout(title="Targeted edits: the target changes, the rest stays?", height=420,
                      margin=dict(l=60, r=20, t=80, b=50), legend=dict(orientation="h", y=-0.25))
    return fig
