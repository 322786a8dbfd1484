"""The built book read in a real browser session: headless Chromium driven over the DevTools protocol.

    BOOK_HTML=_build/ci/_build/html pytest tests/test_book_browser.py

Environment:
  BOOK_HTML   built HTML folder(s), os.pathsep-separated (required; the module is skipped when unset)
  BOOK_TOC    path to _toc.yml (default: BOOK_HTML/../../_toc.yml)
  CHROMIUM    browser binary (default: /usr/bin/chromium, then `chromium` on PATH)

The HTML is served by an in-process ``http.server`` on 127.0.0.1; Chromium (``tests/tools/cdp.py``: the DevTools
protocol over ``--remote-debugging-pipe``, standard library only) resolves no other host, so the book is read
offline and any off-site reference shows up as a request.  Each page is loaded once per width (1400 and 800 px);
the DOM is queried by the browser (``Runtime.evaluate``), not parsed here.  The checks: figures drawn, no
off-site or failed request, transferred bytes within the page's goal, plotly.js loaded once and only where a
figure is, no table wider than its (scrollable) container, no build noise, controls that change the page when
clicked (tabs, dropdowns, the explorer's search), provenance shown once.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tools"))
import cdp  # noqa: E402

BOOK_HTML = os.environ.get("BOOK_HTML")
pytestmark = pytest.mark.skipif(not BOOK_HTML, reason="BOOK_HTML not set (path of the built book HTML)")

MB = 1_000_000
WEIGHT_GOAL = {"figures": 6 * MB, "plain": 3 * MB}  # bytes transferred per page (uncompressed, as served)
WIDTHS = (1400, 800)


# --------------------------------------------------------------------------- fixtures
def toc_files(toc_path: Path) -> tuple[str, list[str]]:
    """(root, [docnames in order]) of a jb-book _toc.yml."""
    import yaml
    toc = yaml.safe_load(toc_path.read_text())
    files: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            if "file" in obj:
                files.append(re.sub(r"\.(md|ipynb)$", "", str(obj["file"])))
            for k in ("parts", "chapters", "sections"):
                walk(obj.get(k, []))
        elif isinstance(obj, list):
            for o in obj:
                walk(o)
    walk(toc)
    return re.sub(r"\.(md|ipynb)$", "", str(toc["root"])), files


@pytest.fixture(scope="session", params=(BOOK_HTML or "").split(os.pathsep) if BOOK_HTML else [""])
def html_dir(request) -> Path:
    d = Path(request.param).resolve()
    assert (d / "index.html").is_file(), f"no index.html in {d}"
    return d


@pytest.fixture(scope="session")
def pages(html_dir) -> list[str]:
    p = Path(os.environ.get("BOOK_TOC") or html_dir.parent.parent / "_toc.yml")
    if not p.is_file():
        pytest.skip(f"_toc.yml not found at {p} (set BOOK_TOC)")
    root, files = toc_files(p)
    return [root] + [f for f in files if f != root]


@pytest.fixture(scope="session")
def site(html_dir):
    """(base url, [(path, status)]) of an http server on html_dir."""
    log: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            log.append((self.path, int(code) if str(code).isdigit() else 0))

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(html_dir)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", log
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def chrome():
    exe = cdp.find_chromium()
    if not exe:
        pytest.fail("chromium not found (apt-get install -y chromium, or set CHROMIUM); `make test` installs it")
    b = cdp.Browser(exe)
    yield b
    b.close()


@pytest.fixture(scope="session")
def visit(chrome, site):
    """visit(docname, width) -> (page, load record); the load is cached per (docname, width)."""
    base, _ = site
    tabs: dict[int, cdp.Page] = {}
    loads: dict[tuple[str, int], dict] = {}

    def go(doc: str, width: int = 1400, fresh: bool = False):
        if width not in tabs:
            tabs[width] = chrome.new_page(width)
        page = tabs[width]
        key = (doc, width)
        if fresh or key not in loads or page.js("location.pathname") != urlsplit(urljoin(base, doc + ".html")).path:
            loads[key] = page.goto(urljoin(base, doc + ".html"))
        return page, loads[key]
    return go


# --------------------------------------------------------------------------- loading, weight, network
def test_every_page_loads_offline_within_its_weight(pages, visit, site):
    base, served = site
    origin = base.rstrip("/")
    problems, weights = [], {}
    for doc in pages:
        page, load = visit(doc)
        figures = page.js("document.querySelectorAll('.plotly-graph-div').length")
        offsite = [u for u in load["requests"] if not u.startswith((origin + "/", "data:", "blob:", "about:"))]
        problems += [f"{doc}: off-site request {u}" for u in offsite]
        problems += [f"{doc}: {u} answered {s}" for u, s in load["status"].items() if s >= 400
                     and not u.endswith("favicon.ico")]
        goal = WEIGHT_GOAL["figures" if figures else "plain"]
        weights[doc] = load["bytes"]
        if load["bytes"] > goal:
            problems.append(f"{doc}: {load['bytes'] / MB:.2f} MB transferred, goal {goal / MB:.0f} MB")
        plotly = [u for u in load["requests"] if "plotly" in u and u.endswith(".js") or "plotly" in u and ".js?" in u]
        if figures and len(plotly) != 1:
            problems.append(f"{doc}: {figures} figures, plotly.js requested {len(plotly)} times")
        if not figures and plotly:
            problems.append(f"{doc}: no figure, yet plotly.js is loaded")
        widgets = [u for u in load["requests"] if "html-manager" in u or "require.js" in u]
        if widgets and not page.js("document.querySelectorAll('.widget-subarea').length"):
            problems.append(f"{doc}: widget library loaded without a widget")
    print("\n".join(f"weight {d}: {b / MB:.2f} MB" for d, b in weights.items()))
    assert not problems, "\n".join(problems)


def test_static_html_names_no_cdn(html_dir):
    """No page names an off-site script, stylesheet or module (a CDN copy would download for online readers)."""
    pat = re.compile(r"""<(?:script|link)[^>]*\s(?:src|href)=["'](?:https?:)?//|import\s+["']https?://""", re.I)
    bad = [str(p.relative_to(html_dir)) for p in html_dir.rglob("*.html") if "_static" not in p.parts
           and pat.search(p.read_text(errors="replace"))]
    assert not bad, f"pages naming off-site scripts: {bad}"


# --------------------------------------------------------------------------- figures
def test_plotly_figures_draw(pages, visit):
    for doc in pages:
        page, _ = visit(doc)
        n, drawn = page.js("[document.querySelectorAll('.plotly-graph-div').length,"
                           " document.querySelectorAll('.plotly-graph-div .main-svg').length > 0 ?"
                           " [...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector("
                           "'.main-svg')).length : 0]")
        assert n == drawn, f"{doc}: {n} figures, {drawn} drawn by plotly.js"


# --------------------------------------------------------------------------- tables
TABLES_FIT = """(() => {
  const main = document.querySelector('main') || document.body;
  const limit = main.getBoundingClientRect().right + 1;
  const out = [];
  for (const t of main.querySelectorAll('table')) {
    const r = t.getBoundingClientRect();
    if (r.width === 0) continue;  // in a closed <details> or a hidden tab
    let box = t.parentElement, scrolls = false;
    while (box && box !== main) {
      const o = getComputedStyle(box).overflowX;
      if (o === 'auto' || o === 'scroll') { scrolls = true; break; }
      box = box.parentElement;
    }
    const right = scrolls ? box.getBoundingClientRect().right : r.right;
    if (right > limit) out.push((t.innerText || '').slice(0, 60).replace(/\\s+/g, ' ') + ` (${Math.round(right)} > ${Math.round(limit)})`);
  }
  return out;
})()"""


@pytest.mark.parametrize("width", WIDTHS)
def test_no_table_is_wider_than_its_container(pages, visit, width):
    problems = []
    for doc in pages:
        page, _ = visit(doc, width)
        problems += [f"{doc} @ {width}px: {t}" for t in page.js(TABLES_FIT)]
    assert not problems, "tables cut off:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- noise
NOISE = ("NBVAL_", "Moving model to device", "'wall_time_s':", "it/s]")


def test_no_build_noise(html_dir, pages, visit):
    problems = []
    book_root = Path(os.environ.get("BOOK_TOC") or html_dir.parent.parent / "_toc.yml").parent
    for doc in pages:
        hand_written = (book_root / f"{doc}.md").is_file()  # intro, API reference: no notebook, no provenance box
        page, _ = visit(doc)
        text = page.js("(document.querySelector('main') || document.body).innerText")
        problems += [f"{doc}: shows {n!r}" for n in NOISE if n in text]
        found = page.js("""[document.querySelectorAll('.output.stderr, .widget-subarea .progress').length,
                           document.querySelectorAll('.tag_parameters, .tag_injected-parameters').length,
                           document.querySelectorAll('details.provenance').length,
                           [...document.querySelectorAll('.cell_output')].filter(o => o.innerText.trim() === ''
                             && o.getBoundingClientRect().height > 40).length]""")
        stderr, params, prov, gaps = found
        if stderr:
            problems.append(f"{doc}: {stderr} stderr / progress-bar outputs")
        if params:
            problems.append(f"{doc}: the parameters cell is on the page")
        if not hand_written and prov != 1:
            problems.append(f"{doc}: {prov} provenance boxes (want one)")
        if gaps:
            problems.append(f"{doc}: {gaps} empty outputs taking space")
    assert not problems, "\n".join(problems)


def test_no_notebook_errors(pages, visit):
    problems = []
    for doc in pages:
        page, _ = visit(doc)
        n = page.js("[...document.querySelectorAll('.cell_output .traceback, .output.error, #papermill-error-cell')]"
                    ".filter(e => !e.closest('.tag_raises-exception')).length")
        if n:
            problems.append(f"{doc}: {n} error outputs")
    assert not problems, "\n".join(problems)


def test_nav_lists_every_chapter(html_dir, pages, visit):
    assert f"url={pages[0]}.html" in (html_dir / "index.html").read_text(), "index.html does not redirect to the root"
    page, _ = visit(pages[0])
    hrefs = page.js("[...document.querySelectorAll('nav.bd-docs-nav a, #bd-docs-nav a')].map(a => a.href)")
    got = {unquote(urlsplit(h).path).lstrip("/").removesuffix(".html") for h in hrefs}
    assert not [d for d in pages[1:] if d not in got], f"chapters missing from the sidebar: {sorted(got)}"


# --------------------------------------------------------------------------- controls
def _state(page, selector: str) -> str:
    return page.js(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => "
                   "e.getBoundingClientRect().height > 0 ? e.innerText : '').join('|')")


def _pages_with(pages, visit, selector: str, what: str) -> list[str]:
    """The pages holding at least one element matching ``selector``; skips the test when none does."""
    docs = [d for d in pages if visit(d)[0].js(f"document.querySelectorAll({json.dumps(selector)}).length")]
    if not docs:
        pytest.skip(f"no {what} in this book")
    return docs


def test_tabs_switch(pages, visit):
    docs = _pages_with(pages, visit, ".metasae-tabs", "tabs")
    for doc in docs:
        page, _ = visit(doc)
        before = _state(page, ".metasae-tabs .mtab-panel")
        page.js("document.querySelectorAll('.metasae-tabs .mtab-label')[1].click()")
        page.settle(0.3)
        after = _state(page, ".metasae-tabs .mtab-panel")
        assert before and after and before != after, f"{doc}: clicking the second tab changed nothing"


def test_dropdowns_switch(pages, visit):
    docs = _pages_with(pages, visit, ".metasae-switcher select", "dropdown")
    for doc in docs:
        page, _ = visit(doc)
        for i in range(page.js("document.querySelectorAll('.metasae-switcher select').length")):
            sel = f"document.querySelectorAll('.metasae-switcher')[{i}]"
            before = page.js(f"{sel}.querySelector('tbody').innerText")
            n = page.js(f"{sel}.querySelector('select').options.length")
            if n < 2:
                continue
            page.js(f"(() => {{ const s = {sel}.querySelector('select'); s.value = '{n - 1}';"
                    " s.dispatchEvent(new Event('change')); })()")
            after = page.js(f"{sel}.querySelector('tbody').innerText")
            assert after and after != before, f"{doc}: choosing another latent changed nothing"


def test_explorer_search_and_pages(pages, visit):
    docs = _pages_with(pages, visit, ".metasae-explorer", "explorer")
    for doc in docs:
        page, _ = visit(doc)
        assert page.js("window.metasaeExplorer !== undefined"), f"{doc}: explorer.js not loaded"
        for i in range(page.js("document.querySelectorAll('.metasae-explorer').length")):
            ex = f"document.querySelectorAll('.metasae-explorer')[{i}]"
            page.js(f"metasaeExplorer.ready({ex})")  # the data file is fetched on demand
            before = page.js(f"{ex}.querySelector('.mx-view').innerText")
            last = page.js(f"{ex}.dataset.last")
            page.js(f"(() => {{ const q = {ex}.querySelector('input.mx-search'); q.value = '{last}';"
                    " q.dispatchEvent(new Event('input')); })()")
            page.settle(0.3)
            page.js(f"{ex}.querySelector('.mx-results a') && {ex}.querySelector('.mx-results a').click()")
            page.settle(0.3)
            after = page.js(f"{ex}.querySelector('.mx-view').innerText")
            assert after != before and f"latent {last}" in after, f"{doc}: searching latent {last} showed {after[:200]!r}"
            word = page.js(f"{ex}.dataset.word || ''")
            if word:
                page.js(f"(() => {{ const q = {ex}.querySelector('input.mx-search'); q.value = {json.dumps(word)};"
                        " q.dispatchEvent(new Event('input')); })()")
                page.settle(0.3)
                hits = page.js(f"{ex}.querySelectorAll('.mx-results a').length")
                assert hits > 0, f"{doc}: no latent found for the word {word!r}"
            slider = page.js(f"!!{ex}.querySelector('input[type=range]')")
            if slider:
                v0 = page.js(f"{ex}.querySelector('.mx-view').innerText")
                page.js(f"(() => {{ const s = {ex}.querySelector('input[type=range]'); s.value = s.min;"
                        " s.dispatchEvent(new Event('input')); })()")
                page.settle(0.3)
                assert page.js(f"{ex}.querySelector('.mx-view').innerText") != v0, f"{doc}: the slider did nothing"


def test_the_table_check_can_fail(chrome):
    """The width check flags a wide table with no scrolling box, and accepts the same table inside one."""
    page = chrome.new_page(800)
    wide = '<table style="width:3000px"><tr><td>x</td></tr></table>'
    page.js(f"document.body.innerHTML = '<main style=\"width:700px\">{wide}</main>'")
    assert len(page.js(TABLES_FIT)) == 1
    page.js(f"document.body.innerHTML = '<main style=\"width:700px\"><div style=\"overflow-x:auto\">{wide}</div></main>'")
    assert page.js(TABLES_FIT) == []
