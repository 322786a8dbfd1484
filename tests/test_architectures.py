"""Matched-L0 families and the per-architecture comparison."""

import math

import pytest
import torch

from metasae_utils import architectures as A
from metasae_utils import synthetic as S
from metasae_utils.synthetic.family import _tied_jumprelu


def test_sparsity_args_per_architecture():
    assert A.sparsity_args("batchtopk", 32) == {"k": 32}
    assert A.sparsity_args("matryoshka_batchtopk", 6) == {"k": 6}
    assert A.sparsity_args("jumprelu", 6) == {"k": 6}
    assert A.sparsity_args("matching_pursuit", 6.4) == {"k": 6}
    assert A.sparsity_args("standard", 32, 2.5) == {"l1_coefficient": 2.5}
    with pytest.raises(ValueError, match="gated"):
        A.sparsity_args("gated", 32)


def test_calibration_hits_a_power_law_target():
    """L0 = 100 / c: the first secant step along the prior slope -1 lands exactly on the target."""
    trained = []

    def train(c):
        trained.append(c)
        return {"l0": 100 / c}
    cal = A.calibrate_l0(train, lambda s: s["l0"], target=32, start=2.5)
    assert [round(c, 6) for c in trained] == [2.5, 3.125] and cal.l0 == pytest.approx(32)
    assert cal.coefficient == pytest.approx(3.125) and len(cal.tries) == 2


def test_calibration_learns_the_slope_and_keeps_the_closest():
    """L0 = 400 / c^2: the secant through two tries finds the true slope -2; with one try left it keeps the best."""
    cal = A.calibrate_l0(lambda c: 400 / c ** 2, float, target=16, start=2.0, max_tries=3)
    assert cal.l0 == pytest.approx(16, rel=0.1)
    one = A.calibrate_l0(lambda c: 400 / c ** 2, float, target=16, start=2.0, max_tries=1)
    assert one.tries == [(2.0, 100.0)] and one.l0 == 100.0
    with pytest.raises(ValueError, match="target"):
        A.calibrate_l0(lambda c: 1, float, target=0, start=1.0)


def test_matched_pair_calibrates_only_standard():
    calls = []

    def train(arch, width, args):
        calls.append((arch, width, tuple(sorted(args.items()))))
        return {"l0": (args.get("k") or 100 / args["l1_coefficient"] * width / 64)}
    pair = A.matched_pair(train, lambda s: s["l0"], "batchtopk", (64, 128), 8, l1_start=1.0)
    assert [p.l0 for p in pair] == [8, 8] and len(calls) == 2
    calls.clear()
    pair = A.matched_pair(train, lambda s: s["l0"], "standard", (64, 128), 50, l1_start=1.0)
    assert [p.l0 for p in pair] == [pytest.approx(50), pytest.approx(50)]
    assert all(a == "standard" for a, _, _ in calls) and len(calls) == 4
    with pytest.raises(ValueError, match="increasing"):
        A.matched_pair(train, float, "standard", (128, 64), 8, 1.0)


def test_compare_pair_known_by_construction():
    data = S.generate(S.SyntheticSpec(n_train=1024, n_eval=512), cache=False, progress=False)
    roots, children, free = (m.nonzero().squeeze(1) for m in (data.is_root, data.is_child, data.is_free))

    def sae_from(rows):
        return _tied_jumprelu(rows, data, threshold=0.5)
    small = sae_from(torch.cat([data.features[roots], data.features[free[:32]]]))
    large = sae_from(torch.cat([data.features[children], data.features[free]]))
    res = A.compare_pair(small, large, data.eval)
    # the 64 children and 32 unshared free features, among live latents: the few latents whose feature never occurs in
    # the 512 held-out rows are dead, and they are novel ones (children or free features)
    assert 0 < res["dead_large"] <= 4 and res["dead_small"] >= 0
    assert res["novel_fraction"] == pytest.approx((96 - res["dead_large"]) / (128 - res["dead_large"]))
    assert 0 <= res["novel_lowers"] <= 1 and 0 <= res["recon_raises"] <= 1
    assert math.isnan(res["meta_variance_explained"])
    assert A.stitchable(small)


def test_l0_report_names_the_architectures_that_missed():
    rows = [{"architecture": "batchtopk", "l0_small": 32.0, "l0_large": 33.0},
            {"architecture": "jumprelu", "l0_small": 30.0, "l0_large": 60.0}]
    assert A.l0_report(rows, 32) == "L0 NOT matched within 25 % of 32 for: jumprelu (30.0, 60.0)"
    assert A.l0_report(rows[:1], 32).startswith("L0 matched")
    meta = [{"architecture": "jumprelu", "meta_l0": 15.2}, {"architecture": "batchtopk", "meta_l0": 4.5}]
    assert A.l0_report(meta, 4, columns=("meta_l0",), what="meta-SAE L0") == \
        "meta-SAE L0 NOT matched within 25 % of 4 for: jumprelu (15.2)"


def test_compare_builds_one_row_per_architecture():
    data = S.generate(S.SyntheticSpec(n_train=1024, n_eval=512), cache=False, progress=False)
    built = []

    def train(arch, width, args):
        built.append((arch, width))
        return _tied_jumprelu(data.features[:width], data, threshold=0.5)
    rows, pairs = A.compare(train, lambda s: 2.0, ["batchtopk", "jumprelu"], (32, 64), 2, 1.0, data.eval,
                            lambda arch, pair: None, extra=lambda a, b: {"width_large": b.cfg.d_sae})
    assert [r["architecture"] for r in rows] == ["batchtopk", "jumprelu"] and set(pairs) == {"batchtopk", "jumprelu"}
    assert built == [("batchtopk", 32), ("batchtopk", 64), ("jumprelu", 32), ("jumprelu", 64)]
    assert rows[0]["novel_fraction"] == pytest.approx(0.5)  # the large SAE's last 32 features are not in the small
    assert rows[0]["width_large"] == 64 and math.isnan(rows[0]["l1 (standard)"])


def test_config_overrides_map_sparsity_args_to_preset_fields():
    plain = A._PLAIN_RECIPE
    assert A.config_overrides("standard", {"l1_coefficient": 2.5}, 4e-4) == {"l1_coefficient": 2.5, **plain}
    assert A.config_overrides("batchtopk", {"k": 32}, 4e-4, 0.5) == {"k": 32, **plain, "train_epochs": 0.5}
    assert A.config_overrides("jumprelu", {"k": 32}, 4e-4) == {"k": 32, "lr": pytest.approx(4e-3), **plain}
    assert plain["target_l0"] is None and plain["checkpoint_fractions"] is None  # the pairs set their own L0
