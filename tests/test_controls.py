"""The helpers behind the controls: resemblance halves, balanced rows, split control, overshoot, family tables."""

import json
import math

import pytest
import torch

from metasae_utils import book, families, meta, report, stitching
from metasae_utils.meta import Decomposition


def _sims(mc, rc, d):
    return {"sae": f"w{d}", "d_sae": d, "max_cos": torch.tensor(mc), "random_max_cos": torch.tensor(rc)}


def test_resemblance_reports_both_halves():
    sims = [_sims([0.9, 0.9, 0.1, 0.1], [0.0, 0.8, 0.0, 0.0], 8),   # a smaller SAE
            _sims([0.2, 0.95, 0.8, 0.1], [0.0, 0.0, 0.0, 0.0], 16)]  # the base SAE
    r = meta.resemblance(sims, 16)
    assert r["in_smaller"] == 0.5 and r["in_base"] == 0.5 and r["smaller_not_base"] == 0.25
    assert r["random_in_smaller"] == 0.25 and r["random_smaller_not_base"] == 0.25


def test_balanced_rows_and_cosine_by_group():
    groups = torch.tensor([1] * 3 + [2] * 6 + [4] * 12)
    keep = meta.balanced_rows(torch.zeros(21, 2), groups, seed=0)
    assert torch.bincount(groups[keep]).tolist()[1:5:1] == [12, 12, 0, 12]
    assert set(keep.tolist()) == set(range(21))  # every row is seen
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    dec = Decomposition(indices=torch.zeros(3, 1, dtype=torch.long), values=torch.ones(3, 1),
                        n_active=torch.ones(3, dtype=torch.long), reconstruction=torch.tensor([[1.0, 0], [1, 0], [1, 0]]),
                        rows=rows, d_meta=1)
    assert meta.cosine_by_group(dec, torch.tensor([1, 1, 2])) == {1: pytest.approx(0.5), 2: pytest.approx(1.0)}


def test_split_usage_has_a_one_to_one_control():
    n_active = torch.tensor([1, 3, 1, 1, 3, 3, 0])  # small: rows 0-2 (width 3); large: rows 3-6 (width 4)
    idx = torch.zeros(7, 3, dtype=torch.long)
    dec = Decomposition(indices=idx, values=idx.float(), n_active=n_active, reconstruction=torch.zeros(7, 2),
                        rows=torch.zeros(7, 2), d_meta=3)
    # small 0 splits into large 1 and 2; small 1 matches large 0 one-to-one; small 2 matches large 3
    pairs = torch.tensor([[0, 1], [0, 2], [1, 0], [2, 3]])
    s = meta.split_usage(dec, {3: 0, 4: 3}, 3, 4, pairs)
    assert s["n_splits"] == 1 and s["frac_children_use_more"] == 1.0
    assert s["n_one_to_one"] == 2 and s["frac_one_to_one_use_more"] == 0.0
    # mean gains with their standard errors: children 3 and 3 meta-latents vs parent 1; one-to-one -2 and -1
    assert s["mean_gain"] == pytest.approx(2.0) and math.isnan(s["se_gain"])  # one split: no standard error
    assert s["mean_gain_one_to_one"] == pytest.approx(-1.5) and s["se_gain_one_to_one"] == pytest.approx(0.5)


def test_overshoot():
    path = [{"mse": 5.0, "l0": 10, "step": 0}, {"mse": 3.0, "l0": 20, "step": 1}, {"mse": 4.0, "l0": 30, "step": 2}]
    assert stitching.overshoot(path) == {"below": pytest.approx(0.25), "l0": 20, "step": 1}
    assert stitching.overshoot(path[:2])["below"] == 0.0


def test_family_rows_and_convergence():
    curve = [{"step": s, "l0": v, "fvu": 0.2} for s, v in ((1, 80.0), (90, 33.0), (100, 32.0))]
    m = families.Member("standard-64", None, 64, "standard", None,
                        {"n_steps": 100, "batch_size": 8, "curve": curve, "final_l1_coefficient": 3.0})
    rows = families.family_rows([m], [{"l0": 32.0, "fvu": 0.2, "dead_fraction": 0.0}], 500)
    assert rows[0]["tokens"] == 800 and rows[0]["l1_coefficient"] == 3.0
    assert rows[0]["l0_drift"] == pytest.approx(1 / 32) and rows[0]["fvu_drift"] == 0.0
    c = families.convergence(rows + [{**rows[0], "l0": 40.0, "l0_drift": 0.01}])
    assert not c["converged"] and c["l0_spread"] == pytest.approx(40 / 36 - 1) and c["flat"]


def test_record_table_is_final_with_the_chapter(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    book.configure("families", {"preset": "ci"})
    report.record_table("sae_families", [{"width": 64, "l0": 30.0}])
    assert report.load_table("ci", "sae_families", tmp_path) == []
    book.provenance()
    assert report.load_table("ci", "sae_families", tmp_path) == [{"width": 64, "l0": 30.0}]
    assert json.loads((tmp_path / "ci" / "sae_families.json").read_text())["kind"] == "table"
    assert report.load(tmp_path) == {}  # a table holds no verdicts


def test_budget_steps_are_the_checkpoints_every_member_has():
    from metasae_utils import budget
    a = families.Member("a", None, 8, "standard", None, {"checkpoints": {10: "x", 20: "y", 40: "z"}})
    b = families.Member("b", None, 16, "standard", None, {"checkpoints": {10: "x", 40: "z"}})
    assert budget.common_steps(a, b) == [10, 40]
    assert budget.common_steps(a, families.Member("c", None, 8, "standard", None, {})) == []


def test_budget_of_a_family_not_trained_here_is_its_end_point():
    """A pretrained or local family records no step count: its one budget point is the end of its run."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    from metasae_utils import budget
    torch.manual_seed(0)
    small, large = (families.Member(f"w{w}", StandardSAE(StandardSAEConfig(d_in=16, d_sae=w)), w, "standard")
                    for w in (8, 16))
    got = budget.stitching_budget(small, large, None, torch.randn(256, 16))
    assert len(got) == 1 and got[0]["fraction"] == 1.0 and got[0]["step"] is None
    out = budget.meta_budget(large, lambda m: None, lambda sae, meta: {"x": 1.0})
    assert out == [{"step": None, "fraction": 1.0, "x": 1.0}]
