"""The reader's pages: HTML tables, cleaned executed notebooks, kernel-free views, the verdict grid, the explorer."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch

from metasae_utils import explorer, pages, plots, tables, verdicts, views
from metasae_utils.artifacts import REPO

sys.path.insert(0, str(REPO / "tests" / "tools"))
import tidy_notebooks  # noqa: E402


# -- tables ----------------------------------------------------------------------------------------------------
def test_table_headers_units_percentages_and_verdict_colours():
    t = tables.table([{"width": 1024, "l0": 12.345, "dead_fraction": 0.0125, "ce_recovered": 0.9,
                       "verdict": "not reproduced", "fvu": float("nan")}])
    assert t.headers == ["width (latents)", "L0 (latents / token)", "dead %", "CE loss recovered %", "verdict", "FVU"]
    assert t.rows == [["1,024", "12.35", "1.25", "90", "not reproduced", "—"]]
    html = t._repr_html_()
    assert 'overflow-x:auto' in html and tables.VERDICT_COLORS["not reproduced"] in html
    assert "1.25" in repr(t) and "dead %" in repr(t)


def test_verdicts_table_shows_every_column(capsys, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    tables.verdicts([{"claim": "c", "paper": "35 %", "ours": "60 %", "verdict": "partly",
                      "control": {"name": "seed twin", "value": 0.61234}}])
    assert shown[0].headers == ["claim", "paper", "ours", "control", "verdict"]
    assert shown[0].rows[0][3] == "seed twin: 0.612"


# -- tidy_notebooks ----------------------------------------------------------------------------------------------
def test_tidy_turns_markers_into_tags_and_text_tables_into_html():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# Colab\nimport sys\nif 'google.colab' in sys.modules: pass"),
        nbformat.v4.new_code_cell('from metasae_utils import plots\nx = 1'),
        nbformat.v4.new_code_cell('# NBVAL_CHECK_OUTPUT\nprint(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))'),
        nbformat.v4.new_code_cell('print(pd.DataFrame([{**r, "control": f"{r}"} for r in rows])[\n'
                                  '    ["claim", "paper", "ours", "control", "verdict"]].to_string(index=False))'),
        nbformat.v4.new_code_cell("plots.live_explorer(entries)")])
    tidy_notebooks.tidy(nb)
    src = [c.source for c in nb.cells]
    assert nb.cells[0].metadata["tags"] == ["remove-cell"]
    assert src[1] == "from metasae_utils import plots, tables\nx = 1"
    assert src[2] == "tables.show(df, digits=3, fixed=True)" and nb.cells[2].metadata["tags"] == ["nbval-check-output"]
    assert src[3] == "tables.verdicts(rows)"
    assert len(nb.cells) == 4
    before = nbformat.writes(nb)
    tidy_notebooks.tidy(nb)
    assert nbformat.writes(nb) == before  # idempotent


def test_chapter_sources_are_tidy():
    """After a merge, run `python tests/tools/tidy_notebooks.py` (this fails until then)."""
    assert tidy_notebooks.main(["--check", *map(str, sorted((REPO / "notebooks").glob("*.ipynb")))]) == 0


# -- pages.clean -------------------------------------------------------------------------------------------------
def _executed():
    fig = {"data": [{"type": "scatter", "mode": "lines", "x": list(range(5000)), "y": [i / 3 for i in range(5000)]}],
           "layout": {"height": 300, "template": {"data": {"big": "x" * 1000}}}}
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={pages.WIDGET_VIEW: {"model_id": "a"}, "text/plain": "w"}),
        nbformat.v4.new_output("stream", name="stderr", text="activations: 50%|#####"),
        nbformat.v4.new_output("stream", name="stdout", text="Moving model to device:  cpu\nkept\n"),
        nbformat.v4.new_output("display_data", data={"text/html": "<script>window.PlotlyConfig = {};</script>"
                                                                  '<script type="module">import "https://cdn.plot.ly/x"</script>'}),
        nbformat.v4.new_output("display_data", data={pages.PLOTLY: fig, "text/html": '<script src="https://cdn.plot.ly/'
                                                                                    'plotly.min.js"></script>'})]
    inj = nbformat.v4.new_code_cell("preset = 'ci'", metadata={"tags": ["injected-parameters"]})
    nb = nbformat.v4.new_notebook(cells=[inj, cell])
    nb.metadata["widgets"] = {"state": {}}
    return nb


def test_clean_drops_noise_and_rebuilds_figures_without_cdn():
    nb = _executed()
    counts = pages.clean(nb)
    assert counts == {"widget_views": 1, "stderr": 1, "figures": 1, "chatter": 1}
    outs = nb.cells[1].outputs
    assert [o.output_type for o in outs] == ["stream", "display_data"] and outs[0].text == "kept\n"
    html = outs[1].data["text/html"]
    assert "cdn" not in html and "Plotly.newPlot" in html and "x" * 1000 not in html
    spec = json.loads(html.split("Plotly.newPlot(")[1].split(",", 1)[1].rsplit(",{", 1)[0].rsplit(",{\"height", 1)[0])
    assert len(spec[0]["x"]) <= pages.MAX_LINE_POINTS + 1 and spec[0]["x"][-1] == 4999
    assert "remove-cell" in nb.cells[0].metadata["tags"] and "widgets" not in nb.metadata
    before = nbformat.writes(nb)
    assert pages.clean(nb) == {"widget_views": 0, "stderr": 0, "figures": 0, "chatter": 0}
    assert nbformat.writes(nb) == before


# -- views, verdicts, figures ------------------------------------------------------------------------------------
def test_tabs_and_switcher_need_no_kernel():
    t = views.tabs({"1790": "<b>a</b>", "1850": "<b>b</b>"})
    assert t.html.count('role="tab"') == 2 and t.html.count('role="tabpanel"') == 1 + t.html.count(" hidden>")
    assert 'role="tablist"' in t.html and "ArrowRight" in t.html and 'aria-selected="true"' in t.html
    s = views.switcher([{"label": "a", "rows": [("k", "v1")]}, {"label": "b", "rows": [("k", "</script>")]}], "T")
    assert "<select" in s.html and "onchange" in s.html and s.html.count("</script>") == 1


def test_verdict_grid_and_sentence():
    rows = [{"id": "x", "section": "S", "claim": "novel ≈ 35 %", "paper": "35 %", "overall": "partly",
             "per_preset": {"offline": {"ours": "60 %", "verdict": "not reproduced", "control": {"name": "twin",
                                                                                                  "value": 0.5}},
                            "ci": {"ours": "34 %", "verdict": "reproduced", "control": None}}},
            {"id": "y", "section": "S", "claim": "smooth", "paper": "yes", "overall": "reproduced",
             "per_preset": {"offline": {"ours": "yes", "verdict": "reproduced", "control": None}}}]
    html = verdicts.grid(rows, ["offline", "ci"])
    assert html.count('class="vg-cell"') == 4 and "control (twin): 0.5" in html and "not run on this preset" in html
    assert verdicts.summary(rows, "offline") == ("On `offline`, 1 of 2 claims reproduce (smooth) and 1 do not "
                                                 "(novel ≈ 35 %).")


def test_log_ticks_are_one_two_five():
    vals, labels = plots.log_ticks(600, 4700)
    assert vals == [500, 1000, 2000, 5000] and labels == ["500", "1k", "2k", "5k"]


# -- explorer ----------------------------------------------------------------------------------------------------
class _SAE:
    def __init__(self, w_enc, w_dec):
        self.W_enc, self.W_dec = w_enc, w_dec
        self.cfg = SimpleNamespace(d_sae=w_dec.shape[0])

    def encode(self, x):
        return torch.relu(x @ self.W_enc)


def test_activation_stats_and_logit_effects():
    torch.manual_seed(0)
    sae = _SAE(torch.randn(8, 5), torch.randn(5, 8))
    acts = torch.randn(1000, 8)
    st = explorer.activation_stats(sae, acts, bins=4, batch_size=128)
    f = sae.encode(acts)
    assert torch.equal(st["fire"], (f > 0).sum(0)) and torch.allclose(st["max"], f.max(0).values)
    assert torch.equal(st["hist"].sum(1), st["fire"])
    w_u = torch.randn(8, 30)
    uv, ui, dv, di = explorer.logit_effects(sae.W_dec, w_u, k=3, chunk=2)
    full = sae.W_dec @ w_u
    assert torch.equal(ui, full.topk(3, dim=1).indices) and torch.allclose(dv, -(-full).topk(3, dim=1).values)


def test_figure_titles_hang_below_the_mode_bar_and_shorten_on_narrow_screens():
    long = "Novel latents across sizes and across seeds against the training budget (annealed, live latents only)"
    html = pages.figure_html({"data": [], "layout": {"title": {"text": long}}}, "fig-long")
    assert html.count("<script>") == 2 and 'g.offsetWidth < 600' in html
    import re
    wide, narrow = map(json.loads, re.search(r'getElementById\("fig-long"\), (\{.*?\}), (\{.*\})\)</script>$',
                                             html).groups())
    assert wide["title.font.size"] == 17 and wide["title.text"].count("<br>") == 1
    assert narrow["title.font.size"] == 14 and all(len(line) <= pages.NARROW_TITLE_WIDTH
                                                   for line in narrow["title.text"].split("<br>"))
    assert narrow["margin.t"] >= 40 + 20 * (narrow["title.text"].count("<br>") + 1)
    short = pages.figure_html({"data": [], "layout": {"title": "Width vs CE loss recovered"}}, "fig-short")
    assert short.count("<script>") == 1 and '"yanchor":"top"' in short and '"pad":{"t":32}' in short
