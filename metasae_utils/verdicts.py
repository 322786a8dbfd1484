"""The at-a-glance verdict picture: every claim × every preset, coloured by verdict (plain HTML, no script).

Hovering a cell shows our number and its control (``title``); each row links to the claim's row in the closing
chapter.  :func:`claims_table` is the closing chapter's table; :func:`page` (the first-screen paragraph of
:mod:`.overview` and the grid) is what ``runner.stage`` writes into ``book/verdicts.html`` (included by
``book/intro.md``) from ``results/``; the closing chapter displays :func:`grid` too.
"""

from __future__ import annotations

import re
from html import escape

from .tables import VERDICT_COLORS, fmt


def _hover(got: dict) -> str:
    ctl = got.get("control") or {}
    text = f"ours: {got['ours']}"
    if ctl.get("name") not in (None, "none"):
        text += f"\ncontrol ({ctl['name']}): {'n/a' if ctl.get('value') is None else fmt(ctl['value'], 3)}"
    return text + f"\nverdict: {got['verdict']}"


def grid(rows: list[dict], presets: list[str], link: str | None = "06_paper_vs_reproduction.html") -> str:
    """HTML grid of ``report.table`` rows: one row per claim, one column per preset, colour = verdict."""
    head = "".join(f'<th class="vg-preset">{escape(p)}</th>' for p in presets)
    body = []
    for r in rows:
        name = escape(r["claim"])
        if link:
            name = f'<a href="{escape(link)}#row-{escape(r["id"])}">{name}</a>'
        cells = [_verdict_cell(r["per_preset"].get(p), "vg-cell") for p in presets]
        body.append(f'<tr><td class="vg-section">{escape(r["section"])}</td><td class="vg-claim">{name}</td>'
                    + "".join(cells) + "</tr>")
    legend = " ".join(f'<span class="vg-key" style="background:{c}">{escape(v)}</span>'
                      for v, c in VERDICT_COLORS.items() if v != "not measured")
    return ('<div class="metasae-verdicts"><div class="metasae-table" style="overflow-x:auto"><table>'
            f'<thead><tr><th>section</th><th>claim</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f'</div><p class="vg-legend">{legend} · hover a cell for our number and its control</p></div>')


def _verdict_cell(got: dict | None, css: str) -> str:
    """One preset's verdict cell (``got``: its row, None when that preset did not run the claim): coloured by
    verdict, our number and its control on hover."""
    v = got["verdict"] if got else "not measured"
    tip = escape(_hover(got)) if got else "not run on this preset"
    return (f'<td class="{css}" title="{tip}" style="background:{VERDICT_COLORS.get(v, "#fff")}">'
            f"{escape(_short(v))}</td>")


def _short(verdict: str) -> str:
    return {"reproduced": "✓ reproduced", "not reproduced": "✗ not reproduced", "partly": "◐ partly",
            "untestable here": "– untestable", "qualitative": "~ qualitative", "undecided at this budget": "? undecided",
            "underpowered": "⊘ underpowered"}.get(verdict, verdict)


def summary(rows: list[dict], preset: str) -> str:
    """One sentence: how many claims reproduce on ``preset`` and which."""
    got = [(r, r["per_preset"][preset]) for r in rows if preset in r["per_preset"]]
    if not got:
        return f"No chapter has recorded results on `{preset}` yet."
    yes = [r for r, g in got if g["verdict"] == "reproduced"]
    part = [r for r, g in got if g["verdict"] == "partly"]
    no = [r for r, g in got if g["verdict"] == "not reproduced"]
    names = lambda rs: "; ".join(r["claim"] for r in rs[:3]) + (" …" if len(rs) > 3 else "")
    text = f"On `{preset}`, {len(yes)} of {len(got)} claims reproduce"
    text += f" ({names(yes)})" if yes else ""
    text += f", {len(part)} partly" if part else ""
    text += f" and {len(no)} do not" + (f" ({names(no)})" if no else "") if no else ""
    return text + "."


def page(results_root=None, preset: str = "offline") -> str:
    """The HTML that ``book/intro.md`` includes: the first-screen paragraph (:func:`overview.first_screen`: what
    reproduces, what does not, why, and the totals) and the grid over every preset with results."""
    from . import overview, report
    results = report.load(results_root)
    presets = sorted(results, key=lambda p: (p != preset, p))
    rows = report.table(results, presets)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(overview.first_screen(rows, preset)))
    return f'<p class="vg-summary"><b>In short.</b> {text}</p>' + grid(rows, presets)


def claims_table(rows: list[dict], presets: list[str], book_preset: str) -> str:
    """The closing chapter's table: per claim (grouped by section, the paper's claims before the checks beyond it)
    the claim with its rule folded in a ``<details>``, the paper's number, ours and the control on ``book_preset``
    (linked to the computing cell), and one verdict column per preset (hover: that preset's number)."""
    from .overview import BEYOND_PAPER
    heads = "".join(f'<th class="vg-preset">verdict<br>{escape(p)}</th>' for p in presets)
    body, section = [], None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            label = section + (" (beyond the paper)" if section in BEYOND_PAPER else "")
            body.append(f'<tr class="claims-section"><th colspan="{4 + len(presets)}">{escape(label)}</th></tr>')
        got = r["per_preset"].get(book_preset) or {}
        ours = escape(got.get("ours", "—"))
        if got.get("link"):
            ours = f'<a href="{escape(got["link"])}">{ours}</a>'
        rule = f"<details><summary>rule</summary><small>{escape(r['rule'])}</small></details>" if r.get("rule") else ""
        cells = [f'<td class="claim">{escape(r["claim"])}{rule}</td><td>{escape(r["paper"])}</td><td>{ours}</td>'
                 f"<td>{escape(_control(got))}</td>"]
        cells += [_verdict_cell(r["per_preset"].get(p), "verdict") for p in presets]
        body.append(f'<tr id="row-{escape(r["id"])}">' + "".join(cells) + "</tr>")
    return ('<div class="metasae-table metasae-wide" style="overflow-x:auto;max-width:100%"><table class="claims"><thead><tr>'
            f"<th>claim</th><th>paper</th><th>ours ({escape(book_preset)})</th><th>control</th>{heads}</tr></thead>"
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _control(got: dict) -> str:
    ctl = got.get("control") or {}
    if ctl.get("name") in (None, "none"):
        return "—"
    return f"{ctl['name']}: {'n/a' if ctl.get('value') is None else fmt(ctl['value'], 3)}"
