"""The canonicality map (chapter 09): inventory order, seed-twin cells, the results file, the readings, and the L0
sensitivity rule — on tiny synthetic decoders."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from metasae_utils import book, canonfig, canonmap, l0sens, report
from metasae_utils.families import Member


def _dec(n, d=16, seed=0):
    return torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def _sae(n, seed=0):
    return SimpleNamespace(W_dec=_dec(n, seed=seed))


def _entry(name, width, seed=0, l0=32, steps=100, arch="standard", kind="family", sae=None):
    return canonmap.MapSAE(name, sae or _sae(width, seed), width, seed, l0, steps, arch, kind, key=name)


def _inventory():
    return [_entry("std-16-twin", 16, seed=1, kind="twin"), _entry("bt-8", 8, arch="batchtopk", kind="architecture"),
            _entry("std-16", 16), _entry("std-8", 8), _entry("std-16@50", 16, steps=50, kind="budget"),
            _entry("std-16-l016", 16, seed=2, l0=16, kind="l0"), _entry("std-16-l016-twin", 16, seed=3, l0=16,
                                                                        kind="l0-twin"),
            _entry("std-8-l016", 8, seed=2, l0=16, kind="l0"), _entry("std-8-none", 8, l0=None)]


def test_order_is_width_seed_l0_budget_architecture():
    got = [s.name for s in canonmap.order(_inventory())]
    assert got == ["std-8", "bt-8", "std-8-none", "std-8-l016", "std-16@50", "std-16", "std-16-twin", "std-16-l016",
                   "std-16-l016-twin"]
    dup = _inventory() + [_entry("std-8", 8)]
    assert len(canonmap.order(dup)) == len(_inventory())  # the same key once


def test_twin_cells_mark_only_seed_twins():
    saes = canonmap.order(_inventory())
    names = [s.name for s in saes]
    got = {(names[i], names[j]) for i, j in canonmap.twin_cells(saes)}
    assert got == {("std-16", "std-16-twin"), ("std-16-twin", "std-16"),
                   ("std-16-l016", "std-16-l016-twin"), ("std-16-l016-twin", "std-16-l016")}


def test_from_member_and_branches():
    m = Member("standard-16", _sae(16), 16, "standard", Path("/c/16@100"),
               {"n_steps": 100, "branches": {50: Path("/c/16@50"), 100: Path("/c/16@100"), 200: Path("/c/16@200")}})
    e = canonmap.from_member(m, "family", 0, 32)
    assert (e.seed, e.l0_target, e.steps, e.key) == (0, 32, 100, "/c/16@100")
    v = Member("standard-16-l016-twin", _sae(16), 16, "standard", None, {"target_l0": 16, "seed_offset": 3})
    assert canonmap.from_member(v, "l0-twin", 2, None).row()["seed"] == 3
    loaded = []
    got = canonmap.branch_saes(m, 0, 32, load=lambda p: loaded.append(p) or _sae(16))
    assert [b.name for b in got] == ["standard-16@50", "standard-16@200"] and [b.steps for b in got] == [50, 200]
    assert loaded == [Path("/c/16@50"), Path("/c/16@200")] and all(b.kind == "budget" for b in got)
    with pytest.raises(ValueError, match="kind"):
        canonmap.from_member(m, "cousin", 0, 32)


def test_map_json_shape_and_values():
    twin_sae = SimpleNamespace(W_dec=_dec(16, seed=5))
    saes = [_entry("a-8", 8, sae=SimpleNamespace(W_dec=_dec(16)[:8])), _entry("a-16", 16, sae=SimpleNamespace(W_dec=_dec(16))),
            _entry("a-16-twin", 16, seed=1, kind="twin", sae=twin_sae)]
    live = [torch.ones(8, dtype=torch.bool), torch.ones(16, dtype=torch.bool), torch.ones(16, dtype=torch.bool)]
    live[1][0] = False  # one dead latent: left out of row 1
    got = canonmap.compute_map(saes, live)
    data = json.loads(json.dumps(canonmap.map_json(saes, got)))  # plain JSON (no NaN)
    assert set(data) >= {"saes", "matched", "hungarian", "twin_cells"}
    assert [s["name"] for s in data["saes"]] == ["a-8", "a-16", "a-16-twin"]
    assert set(data["saes"][0]) >= {"name", "width", "seed", "l0_target", "steps", "architecture"}
    assert all(len(r) == 3 for r in data["matched"] + data["hungarian"]) and len(data["matched"]) == 3
    assert data["matched"][0][1] == pytest.approx(1.0)  # a-8's rows are a-16's first rows
    assert data["matched"][1][0] == pytest.approx(7 / 15)  # 7 of a-16's 15 live rows are in a-8
    assert data["hungarian"][0][0] == pytest.approx(1.0) and data["n_live"] == [8, 15, 16]
    assert data["twin_cells"] == [[1, 2], [2, 1]]
    with pytest.raises(ValueError, match="3 x 3"):
        canonmap.map_json(saes, {**got, "matched": got["matched"][:2]})


def test_readings_points_and_floor():
    saes = [_entry("s-8", 8), _entry("s-8-twin", 8, seed=1, kind="twin"), _entry("s-16", 16),
            _entry("s-16-twin", 16, seed=1, kind="twin"), _entry("s-16-l016", 16, seed=2, l0=16, kind="l0"),
            _entry("s-8-l016", 8, seed=2, l0=16, kind="l0"), _entry("s-16-l016-twin", 16, seed=3, l0=16, kind="l0-twin")]
    n = len(saes)
    m = [[(10 * i + j) / 100 for j in range(n)] for i in range(n)]
    assert canonfig.twin_floor(saes, m) == pytest.approx((0.01 + 0.10 + 0.23 + 0.32 + 0.46 + 0.64) / 6)
    wp = canonfig.width_points(saes, m)
    assert {(p["a"], p["b"], p["ratio"], p["share"]) for p in wp} == {("s-8", "s-16", 2.0, 0.02), ("s-16", "s-8", 0.5, 0.20)}
    sp = {(p["width"], p["series"]): p["share"] for p in canonfig.seed_points(saes, m)}
    assert sp == {(8, "seed twin: same width, other seed"): 0.01, (8, "next width, same seed"): 0.02,
                  (8, "next width, other seed"): 0.03, (16, "seed twin: same width, other seed"): 0.23}
    lp = {(p["l0"], p["series"]): p["share"] for p in canonfig.l0_points(saes, m, 32)}
    assert lp[(16, "same width, in the family's L0 32, another seed (16)")] == 0.42
    assert lp[(16, "seed twin (16)")] == 0.46 and lp[(32, "seed twin (16)")] == 0.23
    assert lp[(16, "across widths: 16 in 8")] == 0.45 and lp[(32, "across widths: 16 in 8")] == 0.20
    for fig in (canonfig.width_figure(saes, m), canonfig.seed_figure(saes, m), canonfig.l0_figure(saes, m, 32),
                canonfig.heatmap(saes, m, "t", "share")):
        assert fig.layout.title.text and len(fig.data) >= 1


def test_l0_rule_and_reading():
    good = {"novel_fraction": 0.4, "twin_novel_fraction": 0.2, "novel_lowers": 0.9}
    r = l0sens.l0_row(16, "8→16", good, 0.6, 0.3, twin="t")
    assert r["id"] == "l0_sensitivity" and r["l0_target"] == 16 and r["verdict"] == "reproduced"
    assert r["rule"] == l0sens.RULE and r["control"]["value"] == 0.2
    mixed = l0sens.l0_row(64, "8→16", {**good, "novel_lowers": 0.2}, 0.6, 0.3)
    assert mixed["verdict"] == "partly" and mixed["novel_lower_mse"] is False
    assert l0sens.l0_row(32, "8→16", {**good, "twin_novel_fraction": None}, 0.6, 0.3)["verdict"] == "untestable here"
    assert "do **not** move" in l0sens.reading([r, l0sens.l0_row(32, "8→16", good, 0.5, 0.2)])
    text = l0sens.reading([r, mixed])
    assert "**move**" in text and "novel latents lower the MSE" in text and "L0 16: *reproduced*" in text
    assert "not measured" in l0sens.reading([])


def test_pair_at_picks_family_or_variants():
    fam = [Member(f"standard-{w}", None, w, "standard") for w in (8, 16)]
    twins = {16: Member("standard-16-twin", None, 16, "standard")}
    var = [Member(n, None, w, "standard") for n, w in (("standard-8-l016", 8), ("standard-16-l016", 16),
                                                      ("standard-16-l016-twin", 16))]
    assert [m.name for m in l0sens.pair_at(fam, twins, var, (8, 16), 32, 32)] == ["standard-8", "standard-16",
                                                                                  "standard-16-twin"]
    assert [m.name for m in l0sens.pair_at(fam, twins, var, (8, 16), 16.0, 32)] == ["standard-8-l016",
                                                                                    "standard-16-l016",
                                                                                    "standard-16-l016-twin"]
    assert l0sens.pair_at(fam, twins, var, (8, 16), 64, 32) == (None, None, None)


def test_record_data_is_written_when_the_chapter_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    book.configure("canonicality", {"preset": "ci"})
    assert book._STATE["page"] == "09_canonicality"
    report.record_data("canonicality_map", {"saes": [{"name": "a"}], "matched": [[1.0]], "hungarian": [[1.0]]})
    assert not (tmp_path / "ci" / "canonicality_map.json").exists()
    book.provenance()
    data = json.loads((tmp_path / "ci" / "canonicality_map.json").read_text())
    assert data["saes"] == [{"name": "a"}] and data["matched"] == [[1.0]] and data["kind"] == "data"
    assert report.load(tmp_path) == {}  # no verdicts in it


def test_hungarian_is_left_out_above_its_size_limit():
    saes = [_entry("a-8", 8), _entry("a-16", 16)]
    live = [torch.ones(8, dtype=torch.bool), torch.ones(16, dtype=torch.bool)]
    got = canonmap.compute_map(saes, live, max_cells=100)  # 8 x 8 = 64 fits, 8 x 16 and 16 x 16 do not
    assert got["hungarian"][0][0] == pytest.approx(1.0) and got["hungarian"][0][1] is None
    assert got["hungarian"][1][1] is None and got["matched"][1][1] == pytest.approx(1.0)


def test_a_preset_without_an_axis_draws_nothing_for_it():
    saes = [_entry("p-8", 8, l0=None, steps=None), _entry("p-16", 16, l0=None, steps=None)]  # a pretrained family
    m = [[1.0, 0.5], [0.25, 1.0]]
    assert canonfig.l0_figure(saes, m, None) is None and canonfig.twin_floor(saes, m) is None
    assert canonfig.width_figure(saes, m) is not None and canonfig.seed_figure(saes, m) is not None
    assert l0sens.pair_at([], {}, [], (), 32, 32) == (None, None, None)


def test_summary_cites_the_floor_and_the_ranges():
    saes = [_entry("s-8", 8), _entry("s-8-twin", 8, seed=1, kind="twin"), _entry("s-16", 16)]
    m = [[1.0, 0.3, 0.6], [0.2, 1.0, 0.5], [0.4, 0.1, 1.0]]
    text = canonfig.summary(saes, m)
    assert "3 SAEs" in text and "25.0 %" in text  # the floor: (0.3 + 0.2) / 2
    assert "a wider family SAE at 60.0–60.0 %" in text and "a narrower family SAE at 40.0–40.0 %" in text
    assert "next width, same seed 60.0 %" in text


def test_l0_summary_row_over_targets():
    from metasae_utils import l0sens
    def r(t, v, nf=0.6, tnf=0.5):
        return {"l0_target": t, "verdict": v, "novel_fraction": nf, "twin_novel_fraction": tnf}
    s = l0sens.summary_row([r(16, "reproduced", 0.55), r(32, "reproduced"), r(64, "untestable here")])
    assert s["id"] == "l0_sensitivity" and s["verdict"] == "reproduced" and abs(s["value"] - 0.05) < 1e-9
    assert "L0 16: reproduced; L0 32: reproduced; L0 64: untestable here" in s["ours"]
    assert l0sens.summary_row([r(16, "reproduced"), r(32, "partly")])["verdict"] == "partly"
    assert l0sens.summary_row([r(16, "not reproduced"), r(32, "not reproduced")])["verdict"] == "not reproduced"
    assert l0sens.summary_row([r(16, "untestable here")])["verdict"] == "untestable here"


def test_l0_reading_sets_novel_lowers_beside_the_twins():
    good = {"novel_fraction": 0.4, "twin_novel_fraction": 0.2, "novel_lowers": 0.9, "twin_novel_lowers": 0.95}
    text = l0sens.reading([l0sens.l0_row(16, "8→16", good, 0.6, 0.3, twin="t"),
                           l0sens.l0_row(64, "8→16", {**good, "novel_lowers": 0.7, "twin_novel_lowers": 0.6}, 0.6, 0.3)])
    assert "seed twin's novel latents for 60.0–95.0 %" in text and "-5.0 to +10.0 points" in text
    assert "check 2 has no twin margin" in text
