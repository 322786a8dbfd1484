"""The reader's pages (issue 23): wide tables turned or given the full width, the closing chapter's claims table,
the first-screen totals, accessible figures, one copy of each script."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import nbformat

from metasae_utils import overview, pages, tables, verdicts

ROWS = [{"id": "novel_fraction", "section": "Stitching", "claim": "about 35 % novel", "paper": "35 %", "rule": "r1",
         "overall": "partly",
         "per_preset": {"offline": {"ours": "68.7 % vs 61.5 % between seed twins", "verdict": "not reproduced",
                                    "link": "03_stitching.html#claim-novel_fraction",
                                    "control": {"name": "seed twin", "value": 0.615}},
                        "ci": {"ours": "100 %", "verdict": "reproduced", "control": None}}},
        {"id": "novel_lowers", "section": "Stitching", "claim": "novel latents lower MSE", "paper": "yes",
         "rule": "r2", "overall": "reproduced",
         "per_preset": {"offline": {"ours": "71.6 %", "verdict": "reproduced", "control": None}}},
        {"id": "truth_novel", "section": "Ground truth", "claim": "novel = new", "paper": "—", "rule": "r3",
         "overall": "reproduced",
         "per_preset": {"offline": {"ours": "100 %", "verdict": "reproduced", "control": None}}}]


def test_wide_short_tables_are_transposed_and_narrow_ones_are_not():
    wide = tables.table([{f"c{j}": j for j in range(10)} for _ in range(3)])
    assert "transposed" in wide._repr_html_() and wide._repr_html_().count("<tr>") == 10
    narrow = tables.table([{f"c{j}": j for j in range(4)} for _ in range(3)])
    assert "transposed" not in narrow._repr_html_() and narrow._repr_html_().count("<tr>") == 4
    assert repr(wide).splitlines()[0].split() == [f"c{j}" for j in range(10)]  # the text form is unchanged


def test_claims_table_folds_the_rule_and_has_one_verdict_column_per_preset():
    html = verdicts.claims_table(ROWS, ["offline", "ci"], "offline")
    assert html.count("<details>") == 3 and "r1" in html and html.count('class="verdict"') == 6
    assert "Ground truth (beyond the paper)" in html and 'href="03_stitching.html#claim-novel_fraction"' in html
    assert "seed twin: 0.615" in html and 'id="row-novel_lowers"' in html


def test_totals_count_the_paper_apart_from_checks_beyond_it_and_skip_ci():
    text = overview.totals_sentence(ROWS, "offline")
    assert text.startswith("Of the paper's 2 claims, on `offline`: 1 reproduced and 1 do not reproduce; "
                           "of 1 checks beyond the paper: 1 reproduced")
    assert "Not counted: `ci`" in text
    first = overview.first_screen(ROWS, "offline", root=Path("/nonexistent"))
    assert "novel latents lower the MSE" in first and "≈ 35 % novel latents" in first and text in first
    assert "between seed twins" in first and "`gpt2-paper`" in first


def test_figures_get_an_accessible_name_and_wide_tables_the_full_width():
    nb = nbformat.v4.new_notebook()
    fig = {"data": [{"type": "scatter", "x": [1], "y": [2]}], "layout": {"title": {"text": "MSE <b>by</b> width"}}}
    wide = "<table><tr>" + "<th>h</th>" * 9 + "</tr></table>"
    nb.cells = [nbformat.v4.new_code_cell("f", outputs=[nbformat.v4.new_output(
                    "display_data", data={pages.PLOTLY: fig, "text/plain": "F"})]),
                nbformat.v4.new_code_cell("t", outputs=[nbformat.v4.new_output(
                    "display_data", data={"text/html": wide, "text/plain": "T"})]),
                nbformat.v4.new_code_cell("n", outputs=[nbformat.v4.new_output(
                    "display_data", data={"text/html": "<table><tr><td>1</td></tr></table>", "text/plain": "N"})])]
    pages.clean(nb)
    assert 'role="img" aria-label="MSE by width"' in nb.cells[0].outputs[0].data["text/html"]
    assert nb.cells[1].metadata["tags"] == ["full-width"] and "tags" not in nb.cells[2].metadata
    before = nbformat.writes(nb)
    pages.clean(nb)
    assert nbformat.writes(nb) == before
    assert pages.figure_name({"xaxis": {"title": {"text": "width"}}, "yaxis": {"title": "MSE"}}) == \
        "figure: width against MSE"


def test_the_book_extension_keeps_one_copy_of_each_script():
    spec = importlib.util.spec_from_file_location("companion_pages", Path(__file__).parents[1] / "book" / "_ext" /
                                                  "companion_pages.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    js = lambda name, body=None: SimpleNamespace(filename=name, attributes={"body": body} if body else {})
    files = [js(None, "const THEBE_JS_URL = 1"), js("a.js"), js(None, "const THEBE_JS_URL = 1"), js("a.js"),
             js(None, "other")]
    assert [f.attributes.get("body") or f.filename for f in ext._once(files)] == ["const THEBE_JS_URL = 1", "a.js",
                                                                                   "other"]


# -- the explorer's data, on a tiny hand-made SAE -----------------------------------------------------------------
class _TinySAE:
    """Two latents that read one coordinate each: latent 0 fires on token 7 (coordinate 0), latent 1 never fires."""

    def __init__(self):
        import torch
        self.W_enc = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
        self.W_dec = torch.eye(2)
        self.cfg = SimpleNamespace(d_sae=2)

    def encode(self, x):
        import torch
        return torch.relu(x.float() @ self.W_enc)


def _tiny():
    import torch
    from metasae_utils.sources import Activations
    tokens = torch.tensor([[1, 5, 7, 6, 7], [1, 6, 6, 7, 5]])  # BOS first; activations drop it
    body = tokens[:, 1:].reshape(-1)
    acts = torch.stack([(body == 7).float() * torch.tensor([3.0, 3.0, 3.0, 3.0, 2.0, 3.0, 3.0, 3.0])[: len(body)]
                        * torch.tensor([1, 1, 1, 0.5, 1, 1, 1, 1])[: len(body)], torch.zeros(len(body))], 1)
    acts[:, 0] += (body == 6).float() * 0.5  # latent 0 fires weakly on token 6: a low-band sample
    model = SimpleNamespace(W_U=torch.eye(2, 9), tokenizer=SimpleNamespace(decode=lambda t: f"<{t[0]}>"))
    return model, Activations(acts=acts, tokens=tokens, hook="h")


def test_explorer_data_of_a_tiny_sae():
    from metasae_utils import explorer
    model, acts_set = _tiny()
    data = explorer.build(model, acts_set, _TinySAE(), "tiny", k_contexts=3, before=2, after=1)
    l0, l1 = data["latents"]
    assert l0["f"] == 6 and l1["f"] == 0 and l1["x"] == [] and l1["q"] == []
    tok = lambda c: [data["tokens"][t] for t in explorer.tokens_of(data, c)]
    first = l0["x"][0]
    assert len(first) == 3 and isinstance(first[2], str) and data["tw"] == 1  # packed, one base-36 digit a token
    assert first[0] == 3.0 and tok(first)[first[1]] == "<7>"  # the firing token is marked
    assert len(l0["xs"][0]) == len(tok(first)) and l0["xs"][0][first[1]] == "9"  # shading: one digit per token
    assert [len(tok(c)) for c in l0["x"]] == [len(s) for s in l0["xs"]]
    assert any(tok(c)[c[1]] == "<6>" for c in l0["q"])  # a sample from the lowest activation band
    assert l0["x"][0][0] >= l0["x"][-1][0]  # strongest first


def test_explorer_data_is_trimmed_to_its_budget():
    """fit gives up window length first, then contexts beyond ten, then band samples; token and shading stay aligned."""
    from metasae_utils import explorer
    ctx = lambda: [5.0, 8] + list(range(12))  # 8 tokens before the firing one, 3 after
    lat = lambda: {"f": 1, "x": [ctx() for _ in range(12)], "xs": ["0123456789ab"] * 12, "q": [ctx()] * 3,
                   "qs": ["0123456789ab"] * 3}
    data = {"tokens": [], "latents": [lat() for _ in range(20)]}
    full = explorer.size(data)
    explorer.fit(data, max_bytes=int(full * 0.75))
    l = data["latents"][0]
    assert explorer.size(data) <= full * 0.75 and len(l["x"]) == 12 and l["q"]  # windows only
    assert explorer._span(data)[0] < 8 and all(len(c) - 2 == len(s) for c, s in zip(l["x"], l["xs"]))
    assert all(s[c[1]] == "8" for c, s in zip(l["x"], l["xs"]))  # the firing token keeps its own shading digit
    data = {"tokens": [], "latents": [lat() for _ in range(20)]}
    explorer.fit(data, max_bytes=int(full * 0.4))
    l = data["latents"][0]
    assert explorer.size(data) <= full * 0.4 and len(l["x"]) == 10 and explorer._span(data) == (3, 1)
    assert "q" not in l  # the band samples go last


def test_packed_tokens_round_trip():
    from metasae_utils import explorer
    ids = [0, 35, 36, 46655, 1185]
    assert explorer.tokens_of({"tw": 3}, [1.0, 0, explorer.pack(ids, 3)]) == ids
    assert explorer.tokens_of({}, [1.0, 0, 5, 6]) == [5, 6]  # the old, listed format


def test_explorer_links_open_a_view_by_address():
    from metasae_utils import explorer
    assert explorer.link(1185) == ('<a class="mx-link" href="08_explorer.html#latent-1185" title="open in the '
                                   'explorer">latent 1185</a>')
    assert 'href="08_explorer.html#meta-217"' in explorer.link(217, kind="meta")


def test_targeted_edit_table_is_readable():
    from metasae_utils.edits import experiment
    rows = experiment.readable([{"method": "full swap", "k": float("nan"), "n": 63, "success": 0.33, "keep": 0.14,
                                 "both": 0.02}, {"method": "SAE latents", "k": 2.0, "n": 63, "success": 0.0,
                                                 "keep": 0.98, "both": 0.0}])
    assert [r["units edited"] for r in rows] == ["all", 2] and rows[0]["target changed %"] == 33.0
    text = repr(tables.table(rows, digits=0, fixed=True))
    assert "NaN" not in text and "2.0" not in text and " 33 " in text
    html = experiment.chosen_links({("meta-latents", "country"): [217, 5], ("SAE latents", "country"): [1185]}, 1)
    assert "#meta-217" in html and "#meta-5" not in html and "#latent-1185" in html


# -- figures ------------------------------------------------------------------------------------------------------
def test_figure_fixes():
    from metasae_utils import figures, plots
    assert plots.wrap("a " * 50, 20).count("<br>") >= 4 and plots.wrap("short", 20) == "short"
    pts = [{"fraction": f, "a": 1, "ac": 0, "b": 2, "bc": 1, "c": 3, "cc": 2} for f in (0.125, 0.5, 1.0)]
    fig = plots.budget_curve(pts, {"claim one is long enough to wrap over two lines here": ("a", "ac", "%"),
                                   "two": ("b", "bc", "%"), "three": ("c", "cc", "%")}, "t")
    assert fig.layout.yaxis3.domain[1] < fig.layout.yaxis.domain[0] - 0.15  # a second row, well below the first
    assert "<br>" in fig.layout.annotations[0].text
    members = [SimpleNamespace(name="w", info={"curve": [{"step": 1, "l0": 5, "fvu": 2.0}, {"step": 2, "l0": 4,
                                                                                         "fvu": 0.2}]})]
    assert plots.learning_curves(members, "t").layout.yaxis2.type == "log"
    hist = plots.delta_histogram([0.1, -0.1], [1.0] * 50, "t")
    assert all(t.histnorm == "percent" for t in hist.data) and hist.layout.shapes[0].layer == "below"
    edit = figures.edit_curves([{"method": "m", "k": k, "n": 5, "success": 0.1 * k, "keep": 1 - 0.1 * k, "both": 0}
                                for k in (1, 2, 4)] + [{"method": "full", "k": None, "n": 5, "success": 0.3,
                                                        "keep": 0.1, "both": 0}], ["m", "full"], ("full",))
    assert list(edit.data[0].x) == [1, 2, 4] and edit.layout.xaxis.type == "log"
    long = {"data": [], "layout": {"title": {"text": "word " * 30}}}
    html = pages.figure_html(long, "f")
    assert '"text":"word word' in html and "<br>" in html and '"t":' in html


# -- the Performance page's chapter times ---------------------------------------------------------------------------
def test_chapter_times_of_the_staged_build(tmp_path):
    from metasae_utils import timings
    for stem, secs in (("01_a", 115.3), ("08_z", 3725.0), ("07_p", 4.6)):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Chapter {stem}")])
        nb.metadata.update(metasae_wall_time_s=secs, papermill={"end_time": "2026-12-01T23:11:05.1+00:00",
                                                                "parameters": {"preset": "offline"}})
        nbformat.write(nb, tmp_path / f"{stem}.ipynb")
    rows = timings.chapter_times(tmp_path, ["01_a", "07_p", "08_z"])
    assert [r["page"] for r in rows] == ["01_a", "07_p", "08_z"] and rows[2]["chapter"] == "Chapter 08_z"
    html = timings.page(rows)
    assert "3 chapters" in html and "<code>offline</code>" in html and "1 h 02 min" in html and "4.6 s" in html
    assert "1 min 55 s" in html and "2026-12-01 23:11 UTC" in html and "commit" not in html
    assert [timings.duration(s) for s in (None, 59.4, 60)] == ["—", "59 s", "1 min 00 s"]


def test_decompositions_link_their_ids_to_the_explorer():
    from metasae_utils import figures
    html = figures.decomposition_html("t", [{"meta": 217, "act": 0.3, "users": [(1185, "ctx"), ("label", "c")]}])
    assert 'href="08_explorer.html#meta-217"' in html and 'href="08_explorer.html#latent-1185"' in html
    assert "<b>label</b>" in html


def test_window_activations_encode_each_row_once_and_match_a_dense_encode():
    import torch
    from metasae_utils import explorer

    class Counting:
        def __init__(self):
            torch.manual_seed(0)
            self.W_dec, self.W_enc, self.rows = torch.randn(7, 5), torch.randn(5, 7), 0

        def encode(self, x):
            self.rows += len(x)
            return torch.relu(x.float() @ self.W_enc)
    sae, acts = Counting(), torch.randn(50, 5)
    win = torch.randint(-1, 50, (7, 9))
    got = explorer.window_activations(sae, acts, torch.arange(7), win, batch_size=4)
    dense = torch.relu(acts @ sae.W_enc)
    want = torch.where(win >= 0, dense[win.clamp(min=0), torch.arange(7)[:, None].expand_as(win)], torch.zeros(()))
    assert torch.allclose(got, want) and sae.rows == len(torch.unique(win[win >= 0]))
