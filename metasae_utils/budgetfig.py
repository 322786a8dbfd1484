"""The figure that opens the stitching chapter: size against seed along the annealed training budget."""

from __future__ import annotations

PAPER_NOVEL = 0.35  # the paper: about 35 % of a larger SAE's latents are novel


def size_vs_seed(rows: list[dict]):
    """Two panels over the training budget (steps, log scale), one colour per pair (``rows``:
    :func:`metasae_utils.budget.annealed_rows`): the share of the larger SAE's live latents that are novel against
    the smaller SAE (solid) and against its own seed twin (dashed), with the paper's 35 % line; and the share of
    novel latents that lower the MSE when inserted (across sizes solid, between the twins dashed)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .plots import COLORS, clean_log_axes
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=["Novel latents (live only)", "Novel latents that lower the MSE"])
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    for i, pair in enumerate(pairs):
        pts = sorted((r for r in rows if r["pair"] == pair), key=lambda r: r["steps"])
        xs, color = [r["steps"] for r in pts], COLORS[i % len(COLORS)]
        for col, (key, twin_key) in enumerate([("novel_fraction", "twin_novel_fraction"),
                                               ("novel_lowers", "twin_novel_lowers")], start=1):
            fig.add_trace(go.Scatter(x=xs, y=[r[key] for r in pts], mode="lines+markers", name=f"{pair} across sizes",
                                     legendgroup=pair, showlegend=col == 1, line=dict(color=color)), row=1, col=col)
            fig.add_trace(go.Scatter(x=xs, y=[r[twin_key] for r in pts], mode="lines+markers",
                                     name=f"{pair} seed twins", legendgroup=pair + "t", showlegend=col == 1,
                                     line=dict(color=color, dash="dash"), marker=dict(symbol="circle-open")),
                          row=1, col=col)
    fig.add_hline(y=PAPER_NOVEL, line=dict(color="gray", dash="dot"), row=1, col=1,
                  annotation_text="paper: 35 %", annotation_position="bottom right")
    fig.update_xaxes(title_text="training steps (log scale)", type="log")
    fig.update_yaxes(title_text="share of live latents", tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="share of novel latents", tickformat=".0%", row=1, col=2)
    fig.update_layout(title="Size against seed: novelty across sizes and between seed twins, by training budget",
                      height=460, margin=dict(l=70, r=20, t=90, b=60),
                      legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
    return clean_log_axes(fig)
