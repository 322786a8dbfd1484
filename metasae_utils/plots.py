"""Figures and small HTML views.  Plotly figures render in the static book without a kernel or network
(``pages.clean`` rebuilds each from its plotly mime bundle; the book loads a local plotly.js once per figure
page) and live in Jupyter and Colab.  Axis titles carry units (:data:`AXIS_TITLES`), log axes get 1-2-5 ticks
(:func:`clean_log_axes`).  Tabs and explorers are kernel-free HTML (:mod:`metasae_utils.views`)."""

from __future__ import annotations

from html import escape

import torch

from .pages import wrap  # noqa: F401  (long plotly titles broken into lines)

RENDERER = "plotly_mimetype+notebook_connected"
COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


#: axis titles with units for the metric keys the chapters plot.
AXIS_TITLES = {"l0": "L0 (active latents per token)", "fvu": "FVU (fraction of variance unexplained)",
               "mse": "MSE on held-out activations", "ce_recovered": "CE loss recovered (fraction)",
               "width": "SAE width (latents)", "variance_explained": "variance explained (fraction)"}


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick values 1-2-5 per decade covering [lo, hi] (all > 0) and their labels (k / M suffixes)."""
    import math
    vals = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        vals += [m * 10 ** e for m in (1, 2, 5) if lo / 1.5 <= m * 10 ** e <= hi * 1.5]
    if len(vals) > 12:
        vals = [v for v in vals if f"{v:.0e}".startswith("1")]

    def label(v):
        for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= div:
                return f"{v / div:g}{suf}"
        return f"{v:g}"
    return vals, [label(v) for v in vals]


def top_title(text: str, width: int = 70) -> dict:
    """A figure title pinned to the top of the figure (wrapped at ``width`` characters), so that a two-line title
    stays clear of the subplot titles below it."""
    return dict(text=wrap(text, width), yref="container", y=1, yanchor="top", pad=dict(t=32))  # below the mode bar


def clean_log_axes(fig):
    """Replace plotly's default log ticks ("6 7 8 9 1000 2 3") by 1-2-5 ticks with readable labels on every log
    axis of ``fig``."""
    for ax_name in [k for k in fig.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
        ax = fig.layout[ax_name]
        if ax.type != "log":
            continue
        letter, suffix = ax_name[0], ax_name[5:]
        ref = letter + (suffix or "")
        vals = [v for t in fig.data if (getattr(t, letter + "axis", None) or letter) == ref
                for v in (getattr(t, letter) or []) if isinstance(v, (int, float)) and v > 0]
        if vals:
            tv, tt = log_ticks(min(vals), max(vals))
            ax.update(tickvals=tv, ticktext=tt)
    return fig


def setup() -> None:
    import plotly.io as pio
    pio.renderers.default = RENDERER
    pio.templates.default = "plotly_white"


# -- tokens ------------------------------------------------------------------------------------------

def era_samples(corpus, n_chars: int = 200, n_eras: int = 4) -> dict[str, str]:
    """One opening passage from documents spread evenly over the (chronological) training corpus."""
    docs, labels = corpus.train, corpus.train_labels or [str(i) for i in range(len(corpus.train))]
    picks = [round(i * (len(docs) - 1) / max(n_eras - 1, 1)) for i in range(n_eras)]
    out = {}
    for i in picks:
        text = " ".join(docs[i].split())
        cut = text[:n_chars]
        out[labels[i]] = cut[: cut.rfind(" ")] if " " in cut else cut
    return out


def token_html(tokenizer, text: str) -> str:
    """``text`` as a strip of token boxes with their ids underneath."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    boxes = []
    for i, t in enumerate(ids):
        piece = tokenizer.decode([t]).replace(" ", "·").replace("\n", "⏎")
        bg = "#e8eef8" if i % 2 == 0 else "#fbeee3"
        boxes.append(f'<span style="display:inline-block;margin:2px;padding:1px 3px;background:{bg};'
                     f'border-radius:3px;font-family:monospace;text-align:center">{escape(piece)}'
                     f'<br><small style="color:#777">{t}</small></span>')
    return (f'<div style="line-height:1.1">{"".join(boxes)}</div>'
            f'<p><small>{len(ids)} tokens for {len(text)} characters '
            f'({len(text) / max(len(ids), 1):.2f} characters per token)</small></p>')


def token_tabs(tokenizer, samples: dict[str, str]):
    """One tokenised sample per tab (CSS tabs: they switch without a kernel or a widget library)."""
    from .views import tabs
    return tabs({label: token_html(tokenizer, t) for label, t in samples.items()})


# -- activations -------------------------------------------------------------------------------------

def norm_summary(acts: torch.Tensor) -> str:
    """Quantiles of the row norms of ``acts`` (n, d), as one line."""
    norms = acts.norm(dim=-1).double()
    q = torch.quantile(norms[:: max(1, len(norms) // 100_000)], torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64))
    return (f"‖x‖: mean {norms.mean():.3f}, 1% {q[0]:.3f}, median {q[1]:.3f}, 99% {q[2]:.3f}, "
            f"max {norms.max():.3f}")


def norm_histogram(sets: dict[str, torch.Tensor], title: str, bins: int = 80):
    """Overlaid density histograms of the L2 norms of each activation set (n_i, d).  Binned here (shared edges),
    so the page carries ``bins`` numbers per set instead of every norm."""
    import plotly.graph_objects as go
    norms = {name: acts.norm(dim=-1).double() for name, acts in sets.items()}
    lo = min(v.min().item() for v in norms.values())
    hi = max(v.max().item() for v in norms.values())
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    width = (edges[1] - edges[0]).item()
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    fig = go.Figure()
    for (name, v), color in zip(norms.items(), COLORS):
        density = torch.histc(v, bins=bins, min=lo, max=hi) / (len(v) * width)
        fig.add_trace(go.Bar(x=centres, y=density.tolist(), width=width, name=name, opacity=0.6,
                             marker_color=color))
    fig.update_layout(title=title + " (log density: the tail stays visible)", xaxis_title="‖activation‖₂ (L2 norm)",
                      yaxis_title="density (log scale)", barmode="overlay", bargap=0, height=400,
                      margin=dict(l=60, r=20, t=50, b=50))
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


# -- SAE families ------------------------------------------------------------------------------------

def frontier(rows: list[dict], x: str, y: str, title: str, log_x: bool = False, published: list[dict] | None = None):
    """One line per architecture through its family's points (``rows``: dicts with architecture, width, x, y)."""
    import plotly.graph_objects as go
    fig = go.Figure()
    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    for arch, color in zip(archs, COLORS):
        pts = sorted((r for r in rows if r["architecture"] == arch), key=lambda r: r["width"])
        fig.add_trace(go.Scatter(x=[p[x] for p in pts], y=[p[y] for p in pts], mode="lines+markers+text",
                                 name=arch, text=[str(p["width"]) for p in pts], textposition="top center",
                                 marker=dict(size=9, color=color), line=dict(color=color),
                                 hovertemplate=f"width %{{text}}<br>{AXIS_TITLES.get(x, x)} %{{x:.4g}}<br>{AXIS_TITLES.get(y, y)} "
                                               f"%{{y:.4g}}<extra>{arch}</extra>"))
    if published:
        fig.add_trace(go.Scatter(x=[p[x] for p in published], y=[p[y] for p in published], mode="markers",
                                 name="published (registry)", marker=dict(symbol="x", size=10, color="black")))
    fig.update_layout(title=title, xaxis_title=AXIS_TITLES.get(x, x), yaxis_title=AXIS_TITLES.get(y, y), height=420,
                      margin=dict(l=60, r=20, t=50, b=50))
    if log_x:
        fig.update_xaxes(type="log")
        if x == "width":  # ticks at the family's widths
            widths = sorted({r["width"] for r in rows})
            fig.update_xaxes(tickvals=widths, ticktext=[f"{w:,}" for w in widths])
        else:
            clean_log_axes(fig)
    return fig


def _context(tokenizer, tokens: torch.Tensor, seq: int, pos: int, before: int, after: int, mark) -> str:
    """Escaped tokens around ``tokens[seq, pos]`` (BOS skipped), the token itself wrapped by ``mark``."""
    row = tokens[seq].tolist()
    lo, hi = max(1, pos - before), min(len(row), pos + after + 1)
    pieces = (escape(tokenizer.decode([row[i]]).replace("\n", "⏎")) for i in range(lo, hi))
    return "…" + "".join(mark(p) if i == pos else p for i, p in zip(range(lo, hi), pieces)) + "…"


def context_html(tokenizer, tokens: torch.Tensor, seq: int, pos: int, before: int = 12, after: int = 4) -> str:
    """The tokens around ``tokens[seq, pos]`` with that token highlighted."""
    return _context(tokenizer, tokens, seq, pos, before, after, lambda p: f'<b style="background:#f6c85f">{p}</b>')


def latent_table(tokenizer, acts_set, sae, latents: torch.Tensor, fire_counts: torch.Tensor, k: int = 3,
                 link: bool = False) -> str:
    """HTML table: for each latent (``latents``: (n,) long ids), its firing rate and its top-``k`` contexts on
    ``acts_set`` (Activations); ``link``: the ids link to the explorer (only for the SAE the explorer shows)."""
    from .explorer import link as explorer_link
    from .evaluate import top_activations
    vals, rows = top_activations(sae, acts_set.acts, latents, k=k)
    seqs, poss = acts_set.position(rows)
    n = len(acts_set.acts)
    out = ['<table><tr><th>latent</th><th>fires on</th><th>top contexts (activation)</th></tr>']
    for j, lat in enumerate(latents.tolist()):
        ctx = "<br>".join(f"{context_html(tokenizer, acts_set.tokens, int(seqs[j, i]), int(poss[j, i]))} "
                          f"<small>({vals[j, i]:.2f})</small>" for i in range(k) if vals[j, i] > 0)
        name = explorer_link(lat, str(lat)) if link else str(lat)
        out.append(f"<tr><td>{name}</td><td>{100 * fire_counts[lat].item() / n:.2f} %</td><td>{ctx}</td></tr>")
    return "".join(out) + "</table>"


# -- stitching -----------------------------------------------------------------------------------------------

def threshold_sweep(rows: list[dict]):
    """Novel fraction vs threshold, one line per (small, large) pair; rows: pair, threshold, novel_fraction."""
    import plotly.graph_objects as go
    fig = go.Figure()
    for pair, color in zip(dict.fromkeys(r["pair"] for r in rows), COLORS * 4):
        pts = [r for r in rows if r["pair"] == pair]
        fig.add_trace(go.Scatter(x=[p["threshold"] for p in pts], y=[100 * p["novel_fraction"] for p in pts],
                                 mode="lines+markers", name=pair, line=dict(color=color)))
    fig.add_vline(x=0.7, line_dash="dot", annotation_text="paper's threshold")
    fig.add_hline(y=35, line_dash="dash", line_color="gray", annotation_text="paper: ≈ 35 % novel",
                  annotation_position="bottom right")
    fig.update_layout(title="Novel latents vs cosine threshold", xaxis_title="max decoder cosine threshold",
                      yaxis_title="novel latents (% of the larger SAE)", height=400)
    return fig


def delta_histogram(delta_novel, delta_recon, title: str):
    """Overlaid histograms of ΔMSE for inserting each novel / reconstruction latent alone, each class as a share of
    its own latents (so the smaller class is not flattened by the larger), the zero line drawn under the bars."""
    import plotly.graph_objects as go
    fig = go.Figure()
    for vals, name, color in [(delta_novel, "novel", COLORS[2]), (delta_recon, "reconstruction", COLORS[3])]:
        fig.add_trace(go.Histogram(x=[float(v) for v in vals], name=f"{name} ({len(vals):,})", opacity=0.6,
                                   nbinsx=80, histnorm="percent", marker_color=color))
    fig.add_vline(x=0, line_dash="dot", line_color="#888", layer="below")
    fig.update_layout(title=title, xaxis_title="ΔMSE when inserted alone into the smaller SAE",
                      yaxis_title="% of the class's latents", barmode="overlay", height=400)
    return fig


def cumulative_curves(curves: dict[str, list[dict]], title: str):
    """MSE after inserting the first n latents of each ordered set (curves: name → cumulative_insertion rows)."""
    import plotly.graph_objects as go
    fig = go.Figure()
    for (name, pts), color in zip(curves.items(), (COLORS[2], COLORS[3], COLORS[0])):
        fig.add_trace(go.Scatter(x=[p["n"] for p in pts], y=[p["mse"] for p in pts], mode="lines+markers",
                                 name=name, line=dict(color=color)))
    fig.update_layout(title=title, xaxis_title="latents inserted (count)", yaxis_title="MSE on held-out activations",
                      height=400)
    return fig


def interpolation_curve(paths: list[tuple[str, list[dict]]], family_points: list[dict], extra: list[dict] = ()):
    """The stitched (L0, MSE) path across the whole family, trained SAEs as markers, extra SAEs as stars; the steps
    that only remove an unmatched small latent are marked as a series of their own."""
    import plotly.graph_objects as go
    fig = go.Figure()
    for (name, path), color in zip(paths, COLORS * 4):
        fig.add_trace(go.Scatter(x=[p["l0"] for p in path], y=[p["mse"] for p in path], mode="lines",
                                 name=f"swaps {name}", line=dict(color=color, width=1.5)))
    removed = [p for _, path in paths for p in path if p["kind"] == "removed"]
    if removed:  # steps that only remove an unmatched small latent: their own series
        fig.add_trace(go.Scatter(x=[p["l0"] for p in removed], y=[p["mse"] for p in removed], mode="markers",
                                 name="removals of unmatched small latents",
                                 marker=dict(size=4, color="gray", symbol="line-ns-open")))
    fig.add_trace(go.Scatter(x=[p["l0"] for p in family_points], y=[p["mse"] for p in family_points],
                             mode="markers+text", text=[str(p["width"]) for p in family_points],
                             textposition="top right", name="trained SAEs", marker=dict(size=11, color="black")))
    for e in extra:
        fig.add_trace(go.Scatter(x=[e["l0"]], y=[e["mse"]], mode="markers", name=e["name"],
                                 marker=dict(symbol="star", size=15, color=COLORS[4])))
    fig.update_layout(title="Interpolating across the family by swapping matched groups",
                      xaxis_title="L0 (active latents per token)", yaxis_title="MSE on held-out activations",
                      height=460)
    return fig


def latent_explorer(entries: list[dict], title: str):
    """A kernel-free explorer: a dropdown of latents; each entry (dict with ``label`` and ``rows``: list of
    (field, value) pairs, values may hold simple HTML) fills a table that wraps, never clips."""
    from .views import switcher
    return switcher(entries, title)


def context_text(tokenizer, tokens: torch.Tensor, seq: int, pos: int, before: int = 10, after: int = 3) -> str:
    """Like :func:`context_html`, for plotly tables (bold brackets mark the token)."""
    return _context(tokenizer, tokens, seq, pos, before, after, lambda p: f"<b>[{p}]</b>")


# -- performance ---------------------------------------------------------------------------------------------

def measured_lines(points: list[dict], x: str, series: dict[str, str], title: str, x_title: str, y_title: str,
                   log: bool = True, dashed: tuple[str, ...] = ()):
    """One line per series over ``points`` (dicts) sorted by ``x``: ``series`` maps a legend label to the key of
    the y value (points whose value is None are skipped); labels in ``dashed`` are drawn dashed (references)."""
    import plotly.graph_objects as go
    fig = go.Figure()
    pts = sorted(points, key=lambda p: p[x])
    for (label, key), color in zip(series.items(), COLORS * 2):
        xs = [p[x] for p in pts if p.get(key) is not None]
        ys = [p[key] for p in pts if p.get(key) is not None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label,
                                 line=dict(color=color, dash="dash" if label in dashed else None)))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=420,
                      margin=dict(l=60, r=20, t=50, b=50))
    if log:
        fig.update_xaxes(type="log")
        fig.update_yaxes(type="log")
        clean_log_axes(fig)
    return fig


# -- training budget -------------------------------------------------------------------------------------------

def learning_curves(members: list, title: str):
    """Held-out L0 and FVU against training step, one line per SAE that recorded a learning curve (its
    ``info["curve"]``); the shaded band is the last 10 % of steps, over which the drift is measured."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=2, subplot_titles=("L0", "FVU (fraction of variance unexplained)"),
                        horizontal_spacing=0.12)
    curved = [m for m in members if m.info.get("curve")]
    for m, color in zip(curved, COLORS * 3):
        c = m.info["curve"]
        dash = "dot" if m.name.endswith("-twin") else None
        for col, key in ((1, "l0"), (2, "fvu")):
            fig.add_trace(go.Scatter(x=[p["step"] for p in c], y=[p[key] for p in c], mode="lines", name=m.name,
                                     legendgroup=m.name, showlegend=col == 1, line=dict(color=color, dash=dash)),
                          row=1, col=col)
    if curved:
        last = max(m.info["curve"][-1]["step"] for m in curved)
        for col in (1, 2):
            fig.add_vrect(x0=0.9 * last, x1=last, fillcolor="gray", opacity=0.15, line_width=0, row=1, col=col)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(type="log", row=1, col=1, title_text="L0 (log scale)")
    fig.update_yaxes(type="log", title_text="FVU (log scale)", row=1, col=2)
    fig.update_layout(title=top_title(title), height=480, margin=dict(l=60, r=20, t=130, b=50))
    return clean_log_axes(fig)


def budget_curve(points: list[dict], claims: dict[str, tuple[str, str, str]], title: str):
    """One small panel per claim: the claim's number and its control against the training budget.

    ``points``: dicts with ``fraction`` (of the full run) and the keys named in ``claims``, which maps a panel
    title to ``(value key, control key, y-axis title)``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    cols = min(2, len(claims))
    rows = -(-len(claims) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[wrap(c, 40) for c in claims],
                        horizontal_spacing=0.15, vertical_spacing=0.5 / rows if rows > 1 else 0.1)
    xs = [p["fraction"] for p in points]
    for n, (name, (key, ctl, y_title)) in enumerate(claims.items()):
        row, col = n // cols + 1, n % cols + 1
        fig.add_trace(go.Scatter(x=xs, y=[p[key] for p in points], mode="lines+markers", name="measured",
                                 legendgroup="m", showlegend=n == 0, line=dict(color=COLORS[0])), row=row, col=col)
        fig.add_trace(go.Scatter(x=xs, y=[p[ctl] for p in points], mode="lines+markers", name="control",
                                 legendgroup="c", showlegend=n == 0, line=dict(color="gray", dash="dash")),
                      row=row, col=col)
        fig.update_yaxes(title_text=y_title, row=row, col=col)
    fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="fraction of the training run (log scale)", row=rows)
    fig.update_layout(title=top_title(title), height=190 + 300 * rows, margin=dict(l=60, r=20, t=150, b=60))
    return clean_log_axes(fig)
