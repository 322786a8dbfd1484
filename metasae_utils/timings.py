"""The chapter times of the build that made the book, for the Performance page.

The runner writes each executed notebook's wall time into its metadata (``metasae_wall_time_s``) and papermill its
start and end; ``runner.stage`` calls :func:`page` on the executed notebooks of the book being staged and writes
``book/chapter_times.html``, which the Performance chapter includes.  So the table always lists every chapter of
the build being published (the Performance chapter itself and the chapters after it included), never another run's.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path


def duration(seconds: float | None) -> str:
    """Seconds for people: "4.7 s", "1 min 55 s", "1 h 02 min"; "—" for None."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _title(nb: dict, stem: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            src = "".join(cell.get("source", ""))
            for line in src.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return stem


def chapter_times(book: Path, order: list[str] | None = None) -> list[dict]:
    """One row per executed notebook in ``book`` (in ``order`` of stems when given): ``chapter`` (its title),
    ``page`` (stem), ``seconds``, ``start`` / ``end`` (papermill's ISO times) and ``preset``."""
    paths = {p.stem: p for p in Path(book).glob("*.ipynb")}
    stems = [s for s in (order or sorted(paths)) if s in paths]
    rows = []
    for stem in stems:
        nb = json.loads(paths[stem].read_text())
        meta = nb.get("metadata", {})
        pm = meta.get("papermill", {})
        rows.append({"chapter": _title(nb, stem), "page": stem, "seconds": meta.get("metasae_wall_time_s"),
                     "start": pm.get("start_time"), "end": pm.get("end_time"),
                     "preset": (pm.get("parameters") or {}).get("preset")})
    return rows


def _share(seconds: float | None, total: float) -> str:
    share = 100 * (seconds or 0) / total if total else 0
    return "< 1 %" if 0 < share < 0.5 else f"{share:.0f} %"


def page(rows: list[dict]) -> str:
    """The HTML table of :func:`chapter_times` rows with the total, and a sentence naming the build."""
    if not rows:
        return "<p>No executed chapter found: the book has not been built yet.</p>"
    total = sum(r["seconds"] or 0 for r in rows)
    presets = sorted({r["preset"] for r in rows if r["preset"]})
    ends = sorted(r["end"] for r in rows if r["end"])
    when = f", finished {escape(ends[-1][:16].replace('T', ' '))} UTC" if ends else ""
    body = "".join(f'<tr><td><a href="{escape(r["page"])}.html">{escape(r["chapter"])}</a></td>'
                   f'<td class="num">{duration(r["seconds"])}</td>'
                   f'<td class="num">{_share(r["seconds"], total)}</td></tr>'
                   for r in rows)
    return (f"<p>The build that made this book ran {len(rows)} chapters on preset "
            f"{', '.join(f'<code>{escape(p)}</code>' for p in presets) or 'unknown'} in {duration(total)} of "
            f"notebook time{when}.</p>"
            '<div class="metasae-table" style="overflow-x:auto;max-width:100%"><table><thead><tr><th>chapter</th>'
            '<th class="num">wall time</th><th class="num">share</th></tr></thead>'
            f"<tbody>{body}<tr><th>total</th><th class=\"num\">{duration(total)}</th><th class=\"num\">100 %</th>"
            "</tr></tbody></table></div>")
