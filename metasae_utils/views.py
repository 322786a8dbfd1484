"""Kernel-free interactive views: plain HTML with a few lines of inline JavaScript (or none), so they work the
same in Jupyter, on Colab and in the static book, without a widget library.

* :func:`tabs` — ARIA tabs (``role=tablist`` / ``tab`` / ``tabpanel``), switched by click or arrow keys;
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


#: the tab behaviour (ARIA tabs pattern): click or Enter / Space selects, arrow keys, Home and End move between tabs.
_TAB_JS = ("window.metasaeTab=window.metasaeTab||function(e){var t=e.target.closest('[role=tab]');if(!t)return;"
           "var l=[].slice.call(t.parentNode.querySelectorAll('[role=tab]')),i=l.indexOf(t),n=i;"
           "if(e.type==='keydown'){var k=e.key;if(k==='ArrowRight'||k==='ArrowDown')n=(i+1)%l.length;"
           "else if(k==='ArrowLeft'||k==='ArrowUp')n=(i-1+l.length)%l.length;else if(k==='Home')n=0;"
           "else if(k==='End')n=l.length-1;else return;e.preventDefault();}"
           "l.forEach(function(x,j){var on=j===n;x.setAttribute('aria-selected',on);x.tabIndex=on?0:-1;"
           "document.getElementById(x.getAttribute('aria-controls')).hidden=!on;});l[n].focus();};")


def tabs(panels: dict[str, str]) -> HTMLView:
    """One tab per ``label → HTML``, keyboard reachable (``role=tablist`` / ``tab`` / ``tabpanel``: Tab reaches
    the selected tab, arrow keys switch, as in the WAI-ARIA tabs pattern), a few lines of inline script."""
    uid = _uid("mtabs")
    buttons, bodies = [], []
    for i, (label, html) in enumerate(panels.items()):
        on = i == 0
        buttons.append(f'<button type="button" role="tab" id="{uid}-t{i}" aria-controls="{uid}-p{i}" '
                       f'aria-selected="{"true" if on else "false"}" tabindex="{0 if on else -1}" class="mtab-label"'
                       f' onclick="metasaeTab(event)" onkeydown="metasaeTab(event)">{escape(label)}</button>')
        bodies.append(f'<div role="tabpanel" id="{uid}-p{i}" aria-labelledby="{uid}-t{i}" class="mtab-panel"'
                      f'{"" if on else " hidden"}>{html}</div>')
    html = (f'<div class="metasae-tabs" id="{uid}"><script>{_TAB_JS}</script>'
            f'<div role="tablist" class="mtab-labels">{"".join(buttons)}</div>'
            f'<div class="mtab-bodies">{"".join(bodies)}</div></div>')
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
