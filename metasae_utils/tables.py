"""Tables for the book: HTML that never cuts a column off, with readable headers and consistent scales.

A chapter calls :func:`show` (or returns :func:`table`) instead of printing ``DataFrame.to_string()``.  The result
renders as an HTML table (transposed when it has more than :data:`MAX_COLUMNS` columns and fewer rows than columns)
inside a horizontally scrollable box (``.metasae-table``, styled by
``metasae_utils/web/metasae.css`` in the book) and, for nbval and plain consoles, as the same table in text.

* Column names become human headers with units (``l0`` → "L0 (latents / token)"); fractions are shown as
  percentages everywhere (``dead_fraction`` 0.012 → "dead %" 1.2), so no table mixes the two scales.
* Numbers use ``digits`` significant figures (or fixed decimals), integers thousands separators, NaN / None "—".
* Columns named ``verdict`` (or ``overall``) are coloured with :data:`VERDICT_COLORS`, as in the closing chapter.
"""

from __future__ import annotations

import math
from html import escape

#: verdict → background colour (the closing chapter, the verdict graphic and every verdict table use these).
VERDICT_COLORS = {"reproduced": "#d9f2d9", "partly": "#fff2cc", "not reproduced": "#f8d7da",
                  "untestable here": "#eeeeee", "qualitative": "#e7eefb", "not measured": "#ffffff", "undecided at this budget": "#fde2c8", "underpowered": "#e2d9f3"}
VERDICT_COLUMNS = ("verdict", "overall")
#: a table with more columns than this (and fewer rows than columns) is shown transposed, so it fits the page.
MAX_COLUMNS = 7

#: column → (header, scale).  A scale of 100 turns a fraction into a percentage (the header says "%").
COLUMNS: dict[str, tuple[str, float]] = {
    "l0": ("L0 (latents / token)", 1), "mse": ("MSE", 1), "fvu": ("FVU", 1),
    "variance_explained": ("variance explained %", 100), "dead_fraction": ("dead %", 100),
    "duplicates": ("near-duplicate latents %", 100), "ce": ("CE loss (nats / token)", 1),
    "ce_recovered": ("CE loss recovered %", 100), "l1_coefficient": ("L1 coefficient", 1),
    "l0_drift": ("L0 drift, last 10 % of steps (%)", 100), "fvu_drift": ("FVU drift, last 10 % of steps (%)", 100),
    "steps": ("training steps", 1), "tokens": ("training tokens", 1), "width": ("width (latents)", 1),
    "name": ("SAE", 1), "architecture": ("architecture", 1), "sae": ("SAE", 1),
    "novel_fraction": ("novel latents %", 100), "twin_novel_fraction": ("novel vs seed twin %", 100),
    "novel_lowers": ("novel latents that lower MSE %", 100), "recon_raises": ("reconstruction latents that raise MSE %", 100),
    "novel_raises": ("novel latents that raise MSE %", 100), "self_duplicate": ("self-duplicate control %", 100),
    "spearman": ("rank correlation (swap path)", 1), "spearman_random": ("rank correlation (random order)", 1),
    "fraction": ("fraction of the run %", 100), "step": ("step", 1),
    "mcc": ("MCC", 1), "precision": ("precision", 1), "recall": ("recall", 1),
    "mean_cosine": ("mean cosine", 1), "random_cosine": ("mean cosine, random rows", 1),
    "random_variance": ("variance explained, random rows %", 100),
}


def header(col: str) -> tuple[str, float]:
    """(header, scale) of a column: :data:`COLUMNS`, else ``frac_*`` / ``*_fraction`` as %, else the name."""
    if col in COLUMNS:
        return COLUMNS[col]
    if col.startswith("frac_"):
        return col[5:].replace("_", " ") + " %", 100
    if col.endswith("_fraction"):
        return col[: -len("_fraction")].replace("_", " ") + " %", 100
    return col.replace("_", " "), 1


def fmt(v, digits: int = 4, fixed: bool = False) -> str:
    """One cell as text: ``digits`` significant figures (``fixed``: decimals), ints with separators."""
    if v is None or isinstance(v, str):
        return "—" if v is None else v
    if isinstance(v, bool):
        return "yes" if v else "no"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(x):
        return "—"
    if isinstance(v, int) or type(v).__name__.startswith(("int", "uint")):
        return f"{int(v):,}"
    return f"{x:.{digits}f}" if fixed else f"{x:.{digits}g}"


class Table:
    """An HTML table (scrollable box) that prints as text; returned by :func:`table`."""

    def __init__(self, headers: list[str], rows: list[list[str]], numeric: list[bool], html_cells: list[list[str]],
                 caption: str | None = None):
        self.headers, self.rows, self.numeric, self.html_cells, self.caption = headers, rows, numeric, html_cells, caption

    def _repr_html_(self) -> str:
        cap = f"<caption>{escape(self.caption)}</caption>" if self.caption else ""
        if len(self.headers) > MAX_COLUMNS and len(self.rows) < len(self.headers):
            return _box(cap + self._transposed(), "metasae-table transposed")
        head = "".join(f'<th class="{"num" if n else ""}">{escape(h)}</th>' for h, n in zip(self.headers, self.numeric))
        body = "".join("<tr>" + "".join(row) + "</tr>" for row in self.html_cells)
        return _box(f"{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>", "metasae-table")

    def _transposed(self) -> str:
        """A wide, short table turned on its side: one row per column, the first column's cells as headers."""
        first = "".join(f'<th class="num">{escape(r[0])}</th>' for r in self.rows)
        body = "".join(f"<tr><th>{escape(h)}</th>" + "".join(row[j] for row in self.html_cells) + "</tr>"
                       for j, h in enumerate(self.headers) if j)
        return f"<thead><tr><th>{escape(self.headers[0])}</th>{first}</tr></thead><tbody>{body}</tbody>"

    def __repr__(self) -> str:
        widths = [max([len(h)] + [len(r[i]) for r in self.rows]) for i, h in enumerate(self.headers)]
        line = lambda cells: "  ".join(c.rjust(w) if n else c.ljust(w)
                                       for c, w, n in zip(cells, widths, self.numeric)).rstrip()
        return "\n".join(([self.caption] if self.caption else []) + [line(self.headers)] +
                         [line(r) for r in self.rows])


def table(data, digits: int = 4, fixed: bool = False, caption: str | None = None, raw: tuple[str, ...] = ()) -> Table:
    """``data`` (a DataFrame or a list of dicts) as a :class:`Table`.  Columns in ``raw`` keep their name and
    scale; cells of ``verdict`` / ``overall`` columns are coloured."""
    records = data.to_dict("records") if hasattr(data, "to_dict") else [dict(r) for r in data]
    cols = list(data.columns) if hasattr(data, "columns") else list(dict.fromkeys(k for r in records for k in r))
    heads, scales = zip(*[(c, 1) if c in raw else header(c) for c in cols]) if cols else ((), ())
    numeric = [all(_is_num(r.get(c)) for r in records) and any(r.get(c) is not None for r in records) for c in cols]
    text, cells = [], []
    for r in records:
        row, hrow = [], []
        for c, s, n in zip(cols, scales, numeric):
            v = r.get(c)
            if s != 1 and _is_num(v) and v is not None:
                v = float(v) * s
            t = fmt(v, digits, fixed)
            row.append(t)
            style = f' style="background:{VERDICT_COLORS[t]}"' if c in VERDICT_COLUMNS and t in VERDICT_COLORS else ""
            hrow.append(f'<td class="{"num" if n else ""}"{style}>{escape(t)}</td>')
        text.append(row)
        cells.append(hrow)
    return Table(list(heads), text, numeric, cells, caption)


def _box(inner: str, cls: str) -> str:
    """A table in its horizontally scrollable box (a scroll is the last resort, at narrow widths)."""
    return f'<div class="{cls}" style="overflow-x:auto;max-width:100%"><table>{inner}</table></div>'


def _is_num(v) -> bool:
    if v is None or isinstance(v, (bool, str)):
        return v is None
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def show(data, digits: int = 4, fixed: bool = False, caption: str | None = None, raw: tuple[str, ...] = ()) -> None:
    """Display :func:`table` (the call that replaces ``print(df.to_string(...))`` in the chapters)."""
    from IPython.display import display
    display(table(data, digits, fixed, caption, raw))


def verdicts(rows: list[dict]) -> None:
    """Display a chapter's verdict rows (from :mod:`metasae_utils.claims`): claim, the paper's number, ours, the
    control and the verdict, the verdict cell coloured."""
    def control(r):
        c = r.get("control") or {}
        if c.get("name") in (None, "none"):
            return "—"
        v = c.get("value")
        return f"{c['name']}: {'n/a' if v is None else fmt(v, 3)}"
    show([{"claim": r["claim"], "paper": r["paper"], "ours": r["ours"], "control": control(r),
           "verdict": r["verdict"]} for r in rows])
