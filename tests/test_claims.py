"""The claims registry and the verdict functions: every rule on numbers whose verdict is known."""

import math

import pytest

from metasae_utils import claims
from metasae_utils.stitching import monotonicity


def test_row_uses_the_registry_and_rejects_unknowns():
    r = claims.row("novel_fraction", "80 %", "not reproduced", 0.8)
    assert r["paper"].startswith("≈ 35 %") and r["section"] == "Stitching" and r["value"] == 0.8
    assert r["claim"] == claims.CLAIMS["novel_fraction"].wording
    assert claims.row("novel_fraction", "-", "untestable here", float("nan"))["value"] is None
    with pytest.raises(ValueError, match="not registered"):
        claims.row("novel_fractoin", "x", "reproduced")
    with pytest.raises(ValueError, match="verdict"):
        claims.row("novel_fraction", "x", "yes")


def test_every_claim_states_its_rule():
    for c in claims.CLAIMS.values():
        assert c.rule and c.paper and c.wording and c.section, c.id


def test_share_and_both_verdicts():
    assert [claims.share_verdict(x) for x in (0.9, 0.6, 0.1, float("nan"), None)] == [
        "reproduced", "partly", "not reproduced", "untestable here", "untestable here"]
    assert [claims.both_verdict(a, b) for a, b in ((1, 1), (1, 0), (0, 1), (0, 0))] == [
        "reproduced", "partly", "partly", "not reproduced"]


def test_stitching_verdicts():
    down = [{"mse": v} for v in (5, 4, 3, 2, 1)]
    bumpy = [{"mse": v} for v in (5, 6, 3, 4, 1)]
    verdicts = claims.stitching_verdicts
    v = verdicts(0.9, 0.2, monotonicity(bumpy), 0.35)
    assert [r["id"] for r in v] == ["novel_fraction", "novel_lowers", "recon_raises", "smooth_swaps"]
    assert [r["verdict"] for r in v] == ["reproduced", "reproduced", "not reproduced", "not reproduced"]
    none = verdicts(0.9, float("nan"), monotonicity(down), 1.0)  # a pair without reconstruction latents
    assert none[2]["verdict"] == "untestable here" and "no reconstruction latents" in none[2]["ours"]
    f = verdicts(0.9, 0.6, monotonicity(down), 0.3, {"d_sae": 10, "mse": 1.0, "equal_width_mse": 2.0})
    assert f[-1]["id"] == "frankenstein" and f[-1]["verdict"] == "reproduced" and f[-1]["value"] == 0.5
    f = verdicts(0.9, 0.6, monotonicity(down), 0.3, {"d_sae": 10, "mse": 1.0, "equal_width_mse": None})
    assert f[-1]["verdict"] == "untestable here"


def test_meta_verdicts():
    usage = {2: 1.5, 3: 2.0}
    split = {"n_splits": 1, "mean_gain": 1.5, "frac_children_use_more": 1.0}
    mm = {"variance_explained": 0.55, "mean_meta_latents_per_latent": 4.1, "no_meta_latent_fraction": 0.0,
          "max_shared_fraction": 0.02}
    v = {r["id"]: r["verdict"] for r in claims.meta_verdicts(mm, 0.3, 0.01, usage, split)}
    assert v == {"meta_sparse": "reproduced", "meta_interpretable": "qualitative", "meta_variance": "reproduced",
                 "meta_most_shared": "reproduced", "meta_resemble_smaller": "reproduced",
                 "smaller_use_fewer": "reproduced", "split_gains": "reproduced"}
    bad = {**mm, "variance_explained": 0.2, "mean_meta_latents_per_latent": 0.5, "max_shared_fraction": 0.3}
    v = {r["id"]: r["verdict"] for r in claims.meta_verdicts(bad, 0.02, 0.01, {2: 2.0, 3: 1.0},
                                                             {"n_splits": 0, "mean_gain": float("nan"),
                                                              "frac_children_use_more": float("nan")})}
    assert v == {"meta_sparse": "not reproduced", "meta_interpretable": "qualitative",
                 "meta_variance": "not reproduced", "meta_most_shared": "not reproduced",
                 "meta_resemble_smaller": "not reproduced", "smaller_use_fewer": "not reproduced",
                 "split_gains": "untestable here"}


def test_ground_truth_verdicts():
    rows = claims.stitching_truth_verdicts({"novel_is_new_or_related": 0.9, "novel_is_new": 0.5,
                                            "reconstruction_is_same_or_related": 0.6}, 3)
    assert [(r["id"], r["verdict"]) for r in rows] == [("truth_novel", "reproduced"),
                                                       ("truth_reconstruction", "partly")]
    assert "pooled over 3 synthetic pairs" in rows[0]["ours"]
    meta = lambda found, used, chance: claims.meta_truth_verdicts(
        {"frac_roots_found": found, "parent_in_code": used, "chance": chance})[0]["verdict"]
    assert meta(0.6, 0.9, 0.05) == "reproduced"
    assert meta(0.1, 0.9, 0.05) == "partly"
    assert meta(0.6, 0.55, 0.3) == "partly"  # used, but not twice chance
    assert meta(0.1, math.nan, 0.05) == "not reproduced"


def test_architecture_verdicts():
    by = {"standard": {"meta_variance_explained": 0.6, "novel_lowers": 0.9},
          "batchtopk": {"meta_variance_explained": 0.55, "novel_lowers": 0.7},
          "matryoshka_batchtopk": {"meta_variance_explained": 0.42, "novel_lowers": float("nan")}}
    rows = {r["id"]: r for r in claims.architecture_verdicts(by)}
    assert rows["matryoshka_meta"]["verdict"] == "reproduced"
    assert rows["matryoshka_meta"]["value"] == pytest.approx(-0.13)
    assert rows["novel_across_arch"]["verdict"] == "reproduced" and rows["novel_across_arch"]["value"] == 0.7
    assert rows["novel_across_arch"]["ours"] == "standard: 90 %, batchtopk: 70 %"
    by["batchtopk"] = {"meta_variance_explained": 0.43, "novel_lowers": 0.2}
    rows = {r["id"]: r for r in claims.architecture_verdicts(by)}
    assert rows["matryoshka_meta"]["verdict"] == "partly" and rows["novel_across_arch"]["verdict"] == "partly"
    rows = {r["id"]: r for r in claims.architecture_verdicts({"standard": {"meta_variance_explained": 0.5,
                                                                           "novel_lowers": None}})}
    assert rows["matryoshka_meta"]["verdict"] == "untestable here"
    assert rows["novel_across_arch"]["verdict"] == "untestable here"
