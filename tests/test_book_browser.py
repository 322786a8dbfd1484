"""Headless-Chromium checks for the built Jupyter Book (offline plotly + ipywidgets).

    BOOK_HTML=book/_build/html pytest test_book_browser.py

Environment:
  BOOK_HTML       built HTML folder (required; the whole module is skipped when unset)
  BOOK_TOC        path to _toc.yml (default: BOOK_HTML/../../_toc.yml)
  CHROMIUM        browser binary (default: /usr/bin/chromium, then `chromium` on PATH)
  BOOK_BROWSER_BUDGET_MS  --virtual-time-budget for each page (default 15000)

Only the standard library, pytest and PyYAML are used.  The HTML is served by an
in-process ``http.server`` on 127.0.0.1 (so requirejs/webpack/fonts behave as on a
real web server) and each page is loaded once with
``chromium --headless --dump-dom --log-net-log``; the serialized DOM after the scripts
ran and the NetLog (every URL request the browser made) are cached per page.
Chromium runs with ``--host-resolver-rules`` that make every host but 127.0.0.1
unresolvable, so the test behaves as offline even on a connected machine, and a CDN
reference shows up as a page-initiated request in the NetLog.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

BOOK_HTML = os.environ.get("BOOK_HTML")
pytestmark = pytest.mark.skipif(not BOOK_HTML, reason="BOOK_HTML not set (path of the built book HTML)")

BUDGET_MS = int(os.environ.get("BOOK_BROWSER_BUDGET_MS", "15000"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--no-pings", "--mute-audio",
    "--disable-dev-shm-usage",
    # offline: nothing but the local server resolves
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


# --------------------------------------------------------------------------- helpers
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "param", "source", "track", "wbr"}


class Node:
    __slots__ = ("tag", "attrs", "children", "parent", "text")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children: list[Node] = []
        self.text: list[str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag=None, cls=None, pred=None):
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.classes:
                continue
            if pred and not pred(n):
                continue
            yield n

    def ancestors(self):
        p = self.parent
        while p is not None:
            yield p
            p = p.parent

    def all_text(self) -> str:
        return "".join("".join(n.text) for n in self.iter())

    def prev_element(self):
        sib = self.parent.children if self.parent else []
        i = sib.index(self)
        return sib[i - 1] if i > 0 else None


class TreeBuilder(HTMLParser):
    """Tiny, forgiving DOM builder (Chrome's --dump-dom output is well formed)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text.append(data)


def parse_html(text: str) -> Node:
    b = TreeBuilder()
    b.feed(text)
    b.close()
    return b.root


def find_chromium() -> str | None:
    for c in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
              shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if c and Path(c).exists():
            return c
    return None


def toc_files(toc_path: Path) -> tuple[str, list[str], list[str]]:
    """(root, [file docnames in order], [external urls]) from a jb-book/jb-article _toc.yml."""
    import yaml

    toc = yaml.safe_load(toc_path.read_text())
    files: list[str] = []
    urls: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            if "file" in obj:
                files.append(re.sub(r"\.(md|ipynb|rst|py)$", "", str(obj["file"])))
            if "url" in obj:
                urls.append(obj["url"])
            for k in ("parts", "chapters", "sections", "entries"):
                if k in obj:
                    walk(obj[k])
        elif isinstance(obj, list):
            for o in obj:
                walk(o)

    walk(toc)
    root = re.sub(r"\.(md|ipynb|rst|py)$", "", str(toc["root"]))
    return root, files, urls


def page_of(docname: str) -> str:
    return docname + ".html"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session", params=(BOOK_HTML or "").split(os.pathsep) if BOOK_HTML else [""])
def html_dir(request) -> Path:
    """Each built book named in BOOK_HTML (os.pathsep-separated): `make test` checks the ci and the committed one."""
    d = Path(request.param).resolve()
    assert (d / "index.html").is_file(), f"no index.html in {d}"
    return d


@pytest.fixture(scope="session")
def toc(html_dir):
    p = Path(os.environ.get("BOOK_TOC") or html_dir.parent.parent / "_toc.yml")
    if not p.is_file():
        pytest.skip(f"_toc.yml not found at {p} (set BOOK_TOC)")
    return toc_files(p)


@pytest.fixture(scope="session")
def server(html_dir):
    """Serve html_dir on 127.0.0.1:<free port>; records (path, status) of every request."""
    log: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            try:
                log.append((self.path, int(code)))
            except (TypeError, ValueError):
                log.append((self.path, 0))

        def log_message(self, *a):  # quiet
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(html_dir)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield base, log
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser(server, tmp_path_factory):
    """browser(page) -> (dom_root, dom_text, page_requests); cached per page."""
    exe = find_chromium()
    if not exe:
        pytest.fail("chromium not found (apt-get install -y chromium, or set CHROMIUM); `make test` installs it")
    base, _ = server
    cache: dict[str, tuple] = {}
    tmp = tmp_path_factory.mktemp("chromium")

    def load(page: str):
        if page in cache:
            return cache[page]
        n = len(cache)
        netlog = tmp / f"net{n}.json"
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / f'profile{n}'}",
               f"--log-net-log={netlog}", f"--virtual-time-budget={BUDGET_MS}",
               "--dump-dom", urljoin(base, page)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0 and "<html" in r.stdout, (
            f"chromium failed on {page}: rc={r.returncode}\n{r.stderr[-2000:]}")
        cache[page] = (parse_html(r.stdout), r.stdout, page_requests(netlog))
        return cache[page]

    return load


def page_requests(netlog: Path) -> list[tuple[str, str]]:
    """(initiator, url) of every URL request started on behalf of a web page.

    Browser-internal requests (update checks, account lookups...) have the
    initiator "not an origin" and are ignored; page loads/subresources/XHR/imports
    have the page origin as initiator (or none for the top-level navigation)."""
    raw = netlog.read_text(errors="replace")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:  # chromium killed before closing the array
        data = json.loads(raw.rstrip().rstrip(",") + "]}")
    types = {v: k for k, v in data["constants"]["logEventTypes"].items()}
    out = []
    for ev in data.get("events", []):
        if types.get(ev.get("type")) != "URL_REQUEST_START_JOB":
            continue
        p = ev.get("params") or {}
        init = p.get("initiator", "")
        if not p.get("url") or init == "not an origin":  # END events carry no params
            continue
        out.append((init, p.get("url", "")))
    return out


def html_pages(html_dir: Path) -> list[str]:
    skip = {"genindex.html", "search.html"}
    return sorted(str(p.relative_to(html_dir)) for p in html_dir.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts
                  and p.name not in skip and p.name != "index.html")


def pages_containing(html_dir: Path, needle: str) -> list[str]:
    return [p for p in html_pages(html_dir)
            if needle in (html_dir / p).read_text(encoding="utf-8", errors="replace")]


# --------------------------------------------------------------------------- (a) plotly
def test_plotly_figures_draw(html_dir, browser):
    pages = pages_containing(html_dir, "plotly-graph-div")
    if not pages:
        pytest.skip("no page with a plotly figure")
    for page in pages:
        static_n = (html_dir / page).read_text().count('class="plotly-graph-div')
        dom, _, _ = browser(page)
        divs = list(dom.find_all(cls="plotly-graph-div"))
        assert len(divs) == static_n, f"{page}: {static_n} figure divs in HTML, {len(divs)} in DOM"
        for i, div in enumerate(divs):
            svgs = list(div.find_all(tag="svg", cls="main-svg"))
            assert svgs, (f"{page}: plotly figure #{i} (id={div.attrs.get('id')}) was not drawn "
                          "(no svg.main-svg) - is _static/plotly.min.js present and loaded?")
            assert "js-plotly-plot" in div.classes, f"{page}: figure #{i} not initialised by Plotly"


# --------------------------------------------------------------------------- (b) widgets
def test_widgets_render(html_dir, browser):
    pages = pages_containing(html_dir, "application/vnd.jupyter.widget-view+json")
    if not pages:
        pytest.skip("no page with an ipywidgets view")
    for page in pages:
        dom, _, _ = browser(page)
        views = list(dom.find_all(tag="script", pred=lambda n: n.attrs.get("type") ==
                                  "application/vnd.jupyter.widget-view+json"))
        assert views, f"{page}: widget-view scripts vanished"
        for i, s in enumerate(views):
            prev = s.prev_element()
            ok = (prev is not None and "widget-subarea" in prev.classes
                  and any(prev.find_all(cls="jupyter-widgets")))
            assert ok, (f"{page}: widget view #{i} was not rendered (no .widget-subarea with "
                        ".jupyter-widgets before its script) - require.js / embed-amd.js / saved "
                        "widget state missing?")
        errs = list(dom.find_all(cls="jupyter-widgets-error-widget"))
        assert not errs, f"{page}: {len(errs)} widget(s) failed to load: {errs[0].all_text()[:300]}"


def test_widget_tab_present(html_dir, browser):
    """The sample book has a widgets.Tab; at least one rendered .widget-tab must exist."""
    pages = pages_containing(html_dir, "TabModel")
    if not pages:
        pytest.skip("no widgets.Tab in the book")
    found = [p for p in pages if any(browser(p)[0].find_all(cls="widget-tab"))]
    assert found, f"no rendered .widget-tab on {pages}"


# --------------------------------------------------------------------------- (c) navigation
def test_nav_lists_every_toc_chapter(html_dir, toc, browser):
    root, files, urls = toc
    # index.html is a redirect to the root page; the sidebar of the root page is the book nav
    assert f"url={page_of(root)}" in (html_dir / "index.html").read_text(), \
        "index.html does not redirect to the toc root"
    dom, _, _ = browser(page_of(root))
    navs = [n for n in dom.find_all(tag="nav") if "bd-docs-nav" in n.classes
            or n.attrs.get("id") == "bd-docs-nav"]
    assert navs, "no sidebar navigation (nav.bd-docs-nav) on the root page"
    hrefs = set()
    for a in navs[0].find_all(tag="a"):
        h = a.attrs.get("href", "")
        hrefs.add(h if h.startswith(("http:", "https:")) else
                  unquote(urlsplit(urljoin(page_of(root), h)).path))
    missing = [f for f in files if f != root and page_of(f) not in hrefs]
    assert not missing, f"toc entries missing from the sidebar nav: {missing}; nav has {sorted(hrefs)}"
    missing_urls = [u for u in urls if u not in hrefs]
    assert not missing_urls, f"external toc urls missing from the nav: {missing_urls}"
    for f in files:
        assert (html_dir / page_of(f)).is_file(), f"{page_of(f)} was not built"


# --------------------------------------------------------------------------- (d) errors
ERROR_TEXT = ("Traceback (most recent call last)", "An Exception was encountered at",
              "Execution using papermill encountered an exception")


def test_no_notebook_errors(html_dir, toc, browser):
    root, files, _ = toc
    problems = []
    for f in files:
        page = page_of(f)
        dom, _, _ = browser(page)
        for n in dom.find_all():
            # cells tagged raises-exception show an error on purpose
            if any("tag_raises-exception" in a.classes for a in n.ancestors()):
                continue
            c = n.classes
            if "traceback" in c and "output" in c:
                problems.append(f"{page}: error output: {n.all_text()[:200]!r}")
            elif n.attrs.get("id") == "papermill-error-cell" or "tag_papermill-error-cell-tag" in c:
                problems.append(f"{page}: papermill error marker")
            elif "cell_output" in c:
                t = n.all_text()
                hit = [e for e in ERROR_TEXT if e in t]
                if hit:
                    problems.append(f"{page}: output contains {hit[0]!r}")
    assert not problems, "\n".join(dict.fromkeys(problems))


# --------------------------------------------------------------------------- (e) offline
# The prescribed renderer (plotly_mimetype+notebook_connected) keeps figures live in Jupyter and Colab; its HTML
# also names plotly's CDN as a fallback, and the theme names MathJax's.  Both are optional: the figures above are
# drawn from the local plotly.js with every off-site host unresolvable.  Anything else off-site is a failure.
OPTIONAL_OFFSITE = ("https://cdn.plot.ly/", "https://cdnjs.cloudflare.com/ajax/libs/mathjax/")


def test_no_network_requests(html_dir, toc, server, browser):
    base, served = server
    root, files, _ = toc
    origin = base.rstrip("/")
    offenders = []
    for f in [root, *files]:
        _, _, reqs = browser(page_of(f))
        assert any(u.startswith(origin) for _, u in reqs), f"netlog of {f} looks empty"
        for init, url in reqs:
            if not url.startswith((origin + "/", "data:", "blob:", "about:", *OPTIONAL_OFFSITE)):
                offenders.append(f"{page_of(f)}: {url}  (initiator {init or '-'})")
    assert not offenders, "page(s) tried to reach the network:\n" + "\n".join(offenders)
    bad = sorted({p for p, code in served if code >= 400 and not p.startswith("/favicon.ico")})
    assert not bad, f"local requests that failed (missing static files?): {bad}"


def test_static_html_has_no_remote_assets(html_dir):
    """Cheap check without a browser: no <script src>/<link href> pointing off-site."""
    pat = re.compile(r"<(?:script[^>]*\ssrc|link[^>]*\shref)=[\"'](?:https?:)?//", re.I)
    offenders = []
    for page in html_pages(html_dir):
        for m in pat.finditer((html_dir / page).read_text(encoding="utf-8", errors="replace")):
            tag = (html_dir / page).read_text()[m.start():m.start() + 200].split(">")[0]
            if any(o in tag for o in OPTIONAL_OFFSITE):
                continue
            if re.search(r"rel=[\"'](?:stylesheet|preload|modulepreload)", tag) or tag.lower().startswith("<script"):
                offenders.append(f"{page}: {tag}>")
    assert not offenders, "\n".join(offenders)


# --------------------------------------------------------------------------- papermill cell
def test_injected_parameters_cell_is_collapsed(html_dir):
    """papermill's injected-parameters cell must be hidden/collapsed (tag hide-cell added
    after execution), never shown expanded."""
    for page in html_pages(html_dir):
        root = parse_html((html_dir / page).read_text(encoding="utf-8", errors="replace"))
        for cell in root.find_all(cls="tag_injected-parameters"):
            hidden = any("hide" in d.classes for d in cell.find_all(tag="details"))
            assert hidden, (f"{page}: injected-parameters cell is shown expanded; "
                            "tag it hide-cell / hide-input / remove-cell after papermill")
