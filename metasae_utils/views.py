"""Kernel-free interactive views: plain HTML with a few lines of inline JavaScript (or none), so they work the
same in Jupyter, on Colab and in the static book, without a widget library.

* :func:`tabs` — CSS-only tabs (radio buttons and labels), no script at all;
* :func:`switcher` — a dropdown of entries, each filling a two-column table (the entries travel as JSON in the
  output; the ``onchange`` handler swaps the table body).
"""

from __future__ import annotations

import itertools
import json
from html import escape

_ids = itertools.count()


class HTMLView:
    """Displays as HTML, prints as a short text summary (so saved text outputs stay stable for nbval)."""

    def __init__(self, html: str, text: str):
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def _uid(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def tabs(panels: dict[str, str]) -> HTMLView:
    """One tab per ``label → HTML`` (CSS only: clicking a label shows its panel)."""
    uid = _uid("mtabs")
    radios, labels, bodies = [], [], []
    for i, (label, html) in enumerate(panels.items()):
        rid = f"{uid}-{i}"
        radios.append(f'<input type="radio" name="{uid}" id="{rid}" class="mtab-radio"{" checked" if i == 0 else ""}>')
        labels.append(f'<label for="{rid}" class="mtab-label">{escape(label)}</label>')
        bodies.append(f'<div class="mtab-panel">{html}</div>')
    # radio i checked → label i highlighted, panel i shown (nth-of-type keeps the rule independent of the count)
    rules = "".join(f"#{uid}-{i}:checked ~ .mtab-bodies .mtab-panel:nth-of-type({i + 1}){{display:block}}"
                    f"#{uid}-{i}:checked ~ .mtab-labels label:nth-of-type({i + 1}){{background:#e8eef8;"
                    "border-bottom-color:#e8eef8}" for i in range(len(panels)))
    style = (f"<style>#{uid} .mtab-radio{{display:none}}#{uid} .mtab-panel{{display:none;padding:6px;"
             f"border:1px solid #ccd}}#{uid} .mtab-label{{display:inline-block;padding:4px 10px;margin-right:2px;"
             f"border:1px solid #ccd;border-bottom:none;cursor:pointer;border-radius:4px 4px 0 0}}"
             + rules.replace("#" + uid + "-", f"#{uid} #{uid}-") + "</style>")
    html = (f'<div class="metasae-tabs" id="{uid}">{style}{"".join(radios)}'
            f'<div class="mtab-labels">{"".join(labels)}</div><div class="mtab-bodies">{"".join(bodies)}</div></div>')
    return HTMLView(html, f"<tabs: {', '.join(panels)}>")


def _rows_html(rows) -> str:
    return "".join(f"<tr><th>{escape(str(k))}</th><td>{v}</td></tr>" for k, v in rows)


def switcher(entries: list[dict], title: str) -> HTMLView:
    """A dropdown of ``entries`` (dicts with ``label`` and ``rows``: (field, HTML value) pairs) over a table that
    shows the chosen entry; works without a kernel."""
    uid = _uid("mswitch")
    options = "".join(f'<option value="{i}">{escape(e["label"])}</option>' for i, e in enumerate(entries))
    bodies = json.dumps([_rows_html(e["rows"]) for e in entries]).replace("</", "<\\/")
    html = (f'<div class="metasae-switcher" id="{uid}"><p><b>{escape(title)}</b></p>'
            f'<label>latent <select class="mswitch-select" onchange="var d=JSON.parse(document.getElementById('
            f"'{uid}-data').textContent);document.getElementById('{uid}-body').innerHTML=d[this.value]\">"
            f"{options}</select></label>"
            f'<div class="metasae-table" style="overflow-x:auto"><table class="mswitch-table"><tbody id="{uid}-body">'
            f"{_rows_html(entries[0]['rows']) if entries else ''}</tbody></table></div>"
            f'<script type="application/json" id="{uid}-data">{bodies}</script></div>')
    return HTMLView(html, f"<{title}: {len(entries)} entries>")
