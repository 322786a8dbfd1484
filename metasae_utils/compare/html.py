"""``report.html``: the numbers of a ``compare`` report as tables and two figures, in one self-contained file.

Nothing is fetched when the file is opened: the figures are plotly figures written as their JSON with a
``Plotly.newPlot`` call (:func:`!metasae_utils.pages.figure_html`, as in the book), and plotly.js itself is the bundle
that ships inside the ``plotly`` Python package, inlined once.  The tables are :func:`!metasae_utils.tables.table`.
"""

from __future__ import annotations

import json
from html import escape

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ddd;padding:4px 8px}"
         "td.num{text-align:right}caption{text-align:left;font-weight:600;padding:4px 0}small{color:#666}")


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def headline_rows(r: dict) -> list[dict]:
    """The headline table: one row per number, with the twin's value beside it where there is a twin."""
    t = r.get("twin") or {}
    ts = t.get("vs_small") or {}
    twin = bool(t)

    def row(label, ours, twin_value=None, what=""):
        out = {"number": label, "larger SAE": ours}
        if twin:
            out["seed twin"] = twin_value
        out["meaning"] = what
        return out
    return [
        row("live latents of the larger SAE", f"{r['live']:,} of {r['n_large']:,}",
            f"{ts.get('live', 0):,} of {ts.get('n_large', 0):,}" if twin else None,
            f"a latent firing on ≤ {r['dead_rate']:g} of the rows is dead"),
        row("dead latents", f"{r['dead']:,}", f"{t.get('dead', 0):,}" if twin else None, "left out of every share"),
        row("novel fraction", _pct(r["novel_fraction"]), _pct(ts.get("novel_fraction")),
            f"live latents with max decoder cosine ≤ {r['threshold']} to the smaller SAE"),
        row("novel latents that lower the MSE", _pct(r["novel_lowers"]), _pct(ts.get("novel_lowers")),
            "inserted alone into the smaller SAE"),
        row("reconstruction latents that raise the MSE", _pct(r["recon_raises"]), _pct(ts.get("recon_raises")),
            "inserted alone into the smaller SAE"),
        row("matched share", _pct(r["matched_share"]), _pct(ts.get("matched_share")),
            f"live latents with a decoder match > {r['threshold']} in the smaller SAE"),
        row("Hungarian-matched mean cosine", _num(r["hungarian_cosine"]), _num(ts.get("hungarian_cosine")),
            "best one-to-one matching with the smaller SAE's latents"),
    ]


def _num(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def control_rows(r: dict) -> list[dict]:
    """The controls: self-duplicate, the twin's noise floor, the quadrant agreement and the path's monotonicity."""
    q, mono, t = r["quadrants"], r["interpolation"], r.get("twin") or {}
    rand = (mono["monotonicity_random"] or {}).get("fraction_of_steps_lowering_mse")
    rows = [{"control": "self-duplicate", "value": _pct(r["self_duplicate"]),
             "reading": "share of the smaller SAE's own latents whose copy lowers its MSE; above 50 % the insertion "
                        "numbers say more about the smaller SAE than about the latents"},
            {"control": "quadrant agreement (chance)", "value": f"{_pct(q['agreement'])} ({_pct(q['chance'])})",
             "reading": "novel-and-lowers plus reconstruction-and-raises, against independence of cosine and ΔMSE"},
            {"control": "swap path: steps lowering the MSE (random order)",
             "value": f"{_pct(mono['monotonicity']['fraction_of_steps_lowering_mse'])} ({_pct(rand)})",
             "reading": "greedy swap order against a seeded random order (--random-order)"}]
    if t:
        rows.insert(1, {"control": "seed twin: novel vs the larger SAE", "value": _pct(t["novel_fraction_vs_large"]),
                        "reading": "what 'novel' means between two SAEs of one width (the noise floor of the novel "
                                   f"fraction); Hungarian cosine twin–larger {_num(t['hungarian_vs_large'])}"})
    return rows


def sae_rows(saes: list[dict]) -> list[dict]:
    return [{"role": s["role"], "SAE": s["label"], "source": s["spec"], "width": s["width"],
             "architecture": s["architecture"], "hook": s["hook"] or "—", "d_in": s["d_in"]} for s in saes]


def _figure(fig, div_id: str) -> str:
    from ..pages import figure_html
    return figure_html(json.loads(fig.to_json()), div_id)


def figures(result: dict, saes: list[dict]) -> list[str]:
    """The ΔMSE–cosine plane of the larger SAE's live latents and the interpolation path, as HTML snippets."""
    from ..figures import delta_cosine_scatter
    from ..plots import interpolation_curve
    r, walk = result["report"], result["paths"]
    plane = delta_cosine_scatter([result["panel"]], threshold=r["threshold"])
    points = [{"l0": r["base"]["l0"], "mse": r["base"]["mse"], "width": saes[0]["width"]},
              {"l0": r["large"]["l0"], "mse": r["large"]["mse"], "width": saes[1]["width"]}]
    lines = [("greedy order", walk["greedy"])] + ([("random order", walk["random"])] if walk["random"] else [])
    path = interpolation_curve(lines, points)
    path.update_layout(title="Interpolating from the smaller to the larger SAE by swapping matched groups")
    return [_figure(plane, "compare-plane"), _figure(path, "compare-path")]


def page(result: dict, saes: list[dict], acts_what: str) -> str:
    """The whole ``report.html``: ``result`` from :func:`metasae_utils.compare.numbers.numbers`, ``saes`` the
    report's SAE descriptions, ``acts_what`` where the activations came from."""
    from plotly.offline import get_plotlyjs

    from ..tables import table
    r = result["report"]
    plane, path = figures(result, saes)
    parts = [f"<h1>compare: {escape(saes[0]['label'])} → {escape(saes[1]['label'])}</h1>",
             f"<p>{r['rows']:,} activation rows ({escape(acts_what)}); cosine threshold {r['threshold']}.</p>",
             table(sae_rows(saes), caption="SAEs", raw=("d_in",))._repr_html_(),
             table(headline_rows(r), caption="Stitching numbers (live latents only)")._repr_html_(),
             table(control_rows(r), caption="Controls")._repr_html_(),
             "<h2>Single-insertion ΔMSE against max decoder cosine</h2>", plane,
             "<h2>Interpolation path</h2>", path]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>compare report</title>"
            f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>")
