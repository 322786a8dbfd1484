"""Executed notebooks made fit for the static book: no build noise, light figures.

The runner calls :func:`clean` on every executed notebook before it lands in ``book/`` (and ``runner.stage`` on
every notebook already there), so a person running a chapter still sees its progress bars while the book does not:

* progress bars and other widget views are dropped, with the saved widget state (so the page loads no widget
  library); stderr streams (progress bars printed as text, warnings) are dropped; known chatter lines on stdout
  ("Moving model to device") are removed;
* plotly outputs are rebuilt from their ``application/vnd.plotly.v1+json`` bundle as one ``div`` and one
  ``Plotly.newPlot`` call, numbers rounded to :data:`FIGURE_DIGITS` significant figures: no CDN ``<script>``, no
  module import, no MathJax; plotly.js itself is added once, only to pages with a figure, by the book's Sphinx
  extension (``book/_ext/companion_pages.py``);
* a figure title too long for one line is broken into lines, with room above the plot, so it is not clipped;
* each figure gets an accessible name (``role="img"`` and ``aria-label``: its title, else its axis titles);
* a cell whose HTML output holds a table of more than :data:`WIDE_COLUMNS` columns (or a ``metasae-wide`` box) is
  tagged ``full-width`` (the theme then gives it the page's full width, over the margin), so wide tables fit
  without a sideways scroll;
* papermill's injected-parameters cell is removed from the page (the provenance box states preset and overrides).

:func:`clean` is idempotent.
"""

from __future__ import annotations

import json
import re
from html import escape

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"
CHATTER = re.compile(r"^(Moving model to device: .*|Loaded pretrained model .*)\n?", re.M)
FIGURE_DIGITS = 4
MAX_LINE_POINTS = 1500  # a line trace with more points keeps every k-th (and its last) point in the book
WIDE_COLUMNS = 6  # a table with more columns takes the page's full width
TITLE_WIDTH = 80  # a figure title longer than this (characters, one line) is broken into lines
NARROW_TITLE_WIDTH = 44  # ... and, on a screen narrower than NARROW_PX pixels, one longer than this
NARROW_PX = 600
_ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S)
_CELL = re.compile(r"<t[hd][\s>]")


def _round(obj, digits: int = FIGURE_DIGITS):
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, list):
        return [_round(v, digits) for v in obj]
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    return obj


def _thin(trace: dict) -> dict:
    """A long line trace (``mode`` "lines", > :data:`MAX_LINE_POINTS` points) with every k-th point kept."""
    xs, ys = trace.get("x"), trace.get("y")
    if trace.get("mode") != "lines" or not isinstance(xs, list) or not isinstance(ys, list) \
            or len(xs) <= MAX_LINE_POINTS or len(xs) != len(ys):
        return trace
    step = -(-len(xs) // MAX_LINE_POINTS)
    idx = list(range(0, len(xs), step)) + ([len(xs) - 1] if (len(xs) - 1) % step else [])
    return {**trace, "x": [xs[i] for i in idx], "y": [ys[i] for i in idx]}


def wrap(text: str, width: int = 60) -> str:
    """``text`` with ``<br>`` between words so that no line is longer than ``width`` characters (plotly titles
    do not wrap by themselves, so a long one is clipped or runs over its neighbours)."""
    if "<br>" in text or len(text) <= width:
        return text
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join(lines + [line])


def _text(title) -> str:
    """The text of a plotly title (a string or ``{"text": ...}``), tags and ``<br>`` removed."""
    text = title.get("text", "") if isinstance(title, dict) else str(title or "")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def figure_name(layout: dict) -> str:
    """An accessible name for a figure: its title, else its axis titles, else "figure"."""
    title = _text(layout.get("title"))
    if title:
        return title
    axes = [_text(v.get("title")) for k, v in sorted(layout.items()) if k.startswith(("xaxis", "yaxis"))
            and isinstance(v, dict)]
    return "figure: " + " against ".join(a for a in axes if a) if any(axes) else "figure"


def table_columns(html: str) -> int:
    """The most cells in one row of any table in ``html`` (0 without a table)."""
    return max((len(_CELL.findall(row)) for row in _ROW.findall(html)), default=0)


def figure_html(spec: dict, div_id: str) -> str:
    """The static HTML of one plotly figure: a div and a ``Plotly.newPlot`` call (plotly.js from the page)."""
    layout = dict(spec.get("layout", {}))
    layout.pop("template", None)  # the template is most of a figure's bytes; plotly_white's look is set below
    layout.setdefault("plot_bgcolor", "white")
    layout.setdefault("paper_bgcolor", "white")
    title = layout.get("title")
    text = title.get("text", "") if isinstance(title, dict) else title
    fit = ""
    if isinstance(text, str) and text:
        # Every title hangs from the top below the mode bar's strip (pad), so the two never overlap; a long one is
        # broken into lines, and on a narrow screen (a phone) into shorter lines in a smaller font.
        wide = _title_layout(title, text, TITLE_WIDTH, layout.get("margin"), 17)
        layout.update(wide)
        if len(text) > NARROW_TITLE_WIDTH and "<br>" not in text:
            narrow = _title_layout(title, text, NARROW_TITLE_WIDTH, layout.get("margin"), 14)
            fit = (f'<script>(function(g, w, n) {{function f() {{Plotly.relayout(g, g.offsetWidth < {NARROW_PX} ? n : w)}}'
                   f'window.addEventListener("resize", f); f()}})(document.getElementById("{escape(div_id)}"), '
                   f'{json.dumps(_flat(wide), ensure_ascii=False)}, {json.dumps(_flat(narrow), ensure_ascii=False)})'
                   '</script>')
    for axis in [k for k in layout if k.startswith(("xaxis", "yaxis"))]:
        layout[axis] = {"gridcolor": "#ebf0f8", "zerolinecolor": "#ebf0f8", "automargin": True, **layout[axis]}
    height = layout.get("height", 450)
    data = json.dumps(_round([_thin(t) for t in spec.get("data", [])]), separators=(",", ":"))
    lay = json.dumps(_round(layout), separators=(",", ":"))
    name = escape(figure_name(layout))
    return (f'<div id="{escape(div_id)}" class="plotly-graph-div" role="img" aria-label="{name}" title="{name}" '
            f'style="height:{int(height)}px;width:100%"></div>'
            f'<script>Plotly.newPlot("{escape(div_id)}",{data},{lay},'
            '{"responsive":true,"displaylogo":false})</script>' + fit)


def _title_layout(title, text: str, width: int, margin, size: int) -> dict:
    """The ``title`` and ``margin`` layout entries that set ``text`` (broken at ``width`` characters, font ``size``)
    from the top of the figure below the mode bar, with a top margin that holds its lines."""
    lines = wrap(text, width).count("<br>") + 1
    font = {**((title or {}).get("font") or {} if isinstance(title, dict) else {}), "size": size}
    t = {**(title if isinstance(title, dict) else {}), "text": wrap(text, width), "font": font,
         "yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 32}}
    m = dict(margin or {})
    m["t"] = max(m.get("t", 80), 40 + 12 + int(1.4 * size) * lines)
    return {"title": t, "margin": m}


def _flat(update: dict) -> dict:
    """A ``Plotly.relayout`` update (``title.text``, ``margin.t``, …) from :func:`_title_layout`'s entries."""
    return {"title.text": update["title"]["text"], "title.font.size": update["title"]["font"]["size"],
            "margin.t": update["margin"]["t"]}


def _html(out) -> str:
    """The ``text/html`` of an output as one string ("" without one)."""
    html = out.get("data", {}).get("text/html", "")
    return "".join(html) if isinstance(html, list) else html


def _is_plotly_preamble(out) -> bool:
    html = out.get("data", {}).get("text/html", "")
    return (out.get("output_type") == "display_data" and set(out.get("data", {})) == {"text/html"}
            and "PlotlyConfig" in html and "plotly-graph-div" not in html)


def clean(nb) -> dict:
    """Clean ``nb`` (nbformat node) in place; returns counts of what was dropped or rebuilt."""
    counts = {"widget_views": 0, "stderr": 0, "figures": 0, "chatter": 0}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "hide-cell"] + \
                ([] if "remove-cell" in tags else ["remove-cell"])
        elif "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif not tags:
            del cell.metadata["tags"]
        keep = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                counts["widget_views"] += 1
                continue
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                counts["stderr"] += 1
                continue
            if _is_plotly_preamble(out):
                continue
            if out.get("output_type") == "stream":
                text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
                new = CHATTER.sub("", text)
                if new != text:
                    counts["chatter"] += 1
                    if not new:
                        continue
                    out["text"] = new
            if PLOTLY in data:
                div = f"fig-{cell.get('id', 'c')}-{len(keep)}"
                html = figure_html(data[PLOTLY], div).replace(
                    'class="plotly-graph-div"', 'class="plotly-graph-div" data-metasae="figure"', 1)
                counts["figures"] += html != _html(out)
                data["text/html"] = html
            keep.append(out)
        if "outputs" in cell:
            cell.outputs = keep
        if any("metasae-wide" in _html(o) or table_columns(_html(o)) > WIDE_COLUMNS for o in keep):
            cell.metadata["tags"] = cell.metadata.get("tags", []) + \
                ([] if "full-width" in cell.metadata.get("tags", []) else ["full-width"])
    nb.metadata.pop("widgets", None)
    return counts


def copy_explorer_data(nb, static, keep=None) -> list[str]:
    """Copy every explorer data file named in ``nb``'s output metadata (``metasae_explorer``, written by
    ``explorer.publish``) into ``static/explorer/``; the names copied.  The source is the artifact cache; with
    ``keep`` (a folder committed beside the executed notebooks, e.g. ``book/explorer``) a copy is kept there too, and
    read from there when the cache lacks it (a fresh clone builds the committed book without re-running it)."""
    import shutil
    from pathlib import Path

    from .artifacts import cache_root
    copied = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("metasae_explorer")
            if not meta:
                continue
            src = cache_root() / meta["file"]
            kept = Path(keep) / meta["name"] if keep is not None else None
            if not src.exists():
                if kept is None or not kept.exists():
                    raise FileNotFoundError(f"explorer data {src} is missing: re-run the explorer chapter")
                src = kept
            (Path(static) / "explorer").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, Path(static) / "explorer" / meta["name"])
            if kept is not None and src != kept:
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, kept)
            copied.append(meta["name"])
    return copied
