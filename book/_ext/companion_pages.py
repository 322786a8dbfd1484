"""Sphinx extension of the companion book (``_config.yml``: ``sphinx.local_extensions``).

Per page, at ``html-page-context``:

* ``plotly.min.js`` (the local copy staged into ``_static``) is added once, and only to pages whose body holds a
  plotly figure;
* every off-site script (the theme's MathJax, anything naming a CDN) is dropped: no page holds math, and the
  book must work offline;
* a script given twice (jupyter-book adds sphinx-thebe's inline ``const THEBE_JS_URL = ...`` twice, which throws
  "Identifier 'THEBE_JS_URL' has already been declared" on every page) is kept once;
* ``metasae.css`` (tables that scroll instead of being cut, the explorer, the tabs) is added to every page.
"""
from __future__ import annotations


def _page(app, pagename, templatename, context, doctree):
    body = context.get("body", "")
    if "plotly-graph-div" in body:
        app.add_js_file("plotly.min.js", priority=400)
    if "metasae-explorer" in body:
        app.add_js_file("explorer.js", priority=600)
    files = context.get("script_files")
    if files is not None:
        def offsite(f):
            name = getattr(f, "filename", f) or ""
            return str(name).startswith(("http:", "https:", "//"))
        context["script_files"] = _once([f for f in files if not offsite(f)])


def _once(files: list) -> list:
    """``files`` without repeats: two entries with the same file name and the same attributes (inline body
    included) are one script."""
    seen, out = set(), []
    for f in files:
        attrs = getattr(f, "attributes", {}) or {}
        key = (str(getattr(f, "filename", f) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def setup(app):
    app.add_css_file("metasae.css")
    app.connect("html-page-context", _page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
