"""Mechanical clean-up of the chapter sources (``notebooks/*.ipynb``); idempotent, re-run it after merging edits.

    python tests/tools/tidy_notebooks.py [--check] [notebooks/*.ipynb]

1. nbval comment markers (``# NBVAL_CHECK_OUTPUT`` ...) become cell tags (``nbval-check-output`` ...).
2. Text tables become HTML tables: ``print(X.to_string(index=False, float_format=lambda v: f"{v:.3f}"))`` →
   ``tables.show(X, digits=3, fixed=True)``; the verdict printout → ``tables.verdicts(rows)``;
   ``display(pd.DataFrame(...))`` → ``tables.show(pd.DataFrame(...))``; ``tables`` is added to the imports.
3. Setup cells leave the page: the Colab cell, the ``_before`` cell and the parameters cell are tagged
   ``remove-cell`` (papermill still finds ``parameters``); the ``book.configure`` cell stays the one hidden toggle.
4. The kernel-only explorer cell (``plots.live_explorer(entries)``) is removed: the static explorer replaces it.

``--check`` changes nothing and exits 1 when a notebook would change (for CI / after a merge).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

NBVAL = {"NBVAL_CHECK_OUTPUT": "nbval-check-output", "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
         "NBVAL_SKIP": "nbval-skip", "NBVAL_RAISES_EXCEPTION": "nbval-raises-exception"}
VERDICT_PRINT = re.compile(
    r'print\(pd\.DataFrame\(\[\{\*\*r, "control": [^\n]*\} for r in (?P<rows>\w+)\]\)\[\s*'
    r'\["claim", "paper", "ours", "control", "verdict"\]\]\.to_string\(index=False\)\)')
TABLE_PRINT = re.compile(r'print\((?P<expr>.+?)\.to_string\(index=False'
                         r'(?:, float_format=lambda v: (?:f"\{v:\.(?P<d>\d)(?P<k>[fg])\}"|(?P<other>[^\n]+?)))?\)\)$', re.M)
DISPLAY_DF = re.compile(r"\bdisplay\(pd\.DataFrame\(")


def _table_call(m: re.Match) -> str:
    args = [m["expr"]]
    if m["other"]:  # a custom float format: four significant figures
        args.append("digits=4")
    if m["d"]:
        args.append(f"digits={m['d']}")
        if m["k"] == "f":
            args.append("fixed=True")
    return f"tables.show({', '.join(args)})"


def tidy_source(src: str) -> tuple[str, list[str]]:
    """(new source, tags to add) for one code cell."""
    tags = []
    lines = []
    for line in src.split("\n"):
        marker = line.strip().lstrip("#").strip()
        if line.strip().startswith("#") and marker in NBVAL:
            tags.append(NBVAL[marker])
            continue
        lines.append(line)
    src = "\n".join(lines)
    src = VERDICT_PRINT.sub(lambda m: f"tables.verdicts({m['rows']})", src)
    src = TABLE_PRINT.sub(_table_call, src)
    src = DISPLAY_DF.sub("tables.show(pd.DataFrame(", src)
    return src, tags


def _add_import(cells) -> None:
    """Add ``tables`` to the first ``from metasae_utils import ...`` line after the configure cell."""
    if not any("tables." in c.source for c in cells) or any(
            re.search(r"^from metasae_utils import .*\btables\b", c.source, re.M) for c in cells):
        return
    for c in cells:
        m = re.search(r"^from metasae_utils import (.+)$", c.source, re.M)
        if m and "book" not in m.group(1).split(", "):
            names = sorted({*m.group(1).split(", "), "tables"})
            c.source = c.source[:m.start(1)] + ", ".join(names) + c.source[m.end(1):]
            return


def tidy(nb) -> None:
    keep = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            keep.append(cell)
            continue
        if cell.source.strip() == "plots.live_explorer(entries)":
            continue
        tags = cell.metadata.get("tags", [])
        cell.source, new = tidy_source(cell.source)
        tags = [t for t in tags if t not in new] + new
        setup = ("google.colab" in cell.source or "_before = set(globals())" in cell.source
                 or "parameters" in tags)
        if setup:
            tags = [t for t in tags if t != "hide-cell"] + ([] if "remove-cell" in tags else ["remove-cell"])
        if tags:
            cell.metadata["tags"] = tags
        keep.append(cell)
    nb.cells = keep
    _add_import([c for c in nb.cells if c.cell_type == "code"])


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"] or sorted(Path("notebooks").glob("*.ipynb"))
    changed = []
    for path in paths:
        before = path.read_text()
        nb = nbformat.reads(before, as_version=4)
        tidy(nb)
        after = nbformat.writes(nb) + "\n"
        if after != before:
            changed.append(str(path))
            if not check:
                path.write_text(after)
    print(("would change: " if check else "changed: ") + (", ".join(changed) or "nothing"))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
