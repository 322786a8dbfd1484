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


def test_a_number_equal_to_its_control_is_never_reproduced():
    r = claims.row("meta_variance", "50 %", "reproduced", 0.5, ("random rows", 0.5))
    assert r["verdict"] == "not reproduced" and "equal to its control" in r["ours"]
    assert r["control"] == {"name": "random rows", "value": 0.5}
    assert claims.row("meta_variance", "50 %", "reproduced", 0.5, ("random rows", 0.2))["verdict"] == "reproduced"
    assert claims.row("meta_variance", "-", "untestable here")["control"] == {"name": "none", "value": None}


def _shares(lowers, raises, novel_raises):
    return {"novel_lowers": lowers, "recon_raises": raises, "novel_raises": novel_raises}


def _seg(share, steps=10):
    """walk_segments-shaped numbers: ``share`` of ``steps`` swap steps lower the MSE."""
    return {"swap": {"steps": steps, "lowering": share, "delta_mse": -1.0},
            "removal": {"steps": 3, "lowering": 0.0, "delta_mse": 0.3}, "swap_lowers": share,
            "removal_first_step": steps + 1, "removals_last": True}


def test_stitching_verdicts_carry_their_controls():
    down = monotonicity([{"mse": v} for v in (5, 4, 3, 2, 1)])
    bumpy = monotonicity([{"mse": v} for v in (5, 6, 3, 4, 1)])
    twin = {"novel_lowers": 0.6, "recon_raises": 0.7, "segments": _seg(0.7)}
    v = claims.stitching_verdicts(0.35, 0.10, _shares(0.9, 0.8, 0.1), 0.2, down, bumpy, twin=twin,
                                  segments=_seg(0.95))
    assert [r["id"] for r in v] == ["novel_fraction", "novel_lowers", "recon_raises", "smooth_swaps"]
    assert [r["verdict"] for r in v] == ["reproduced"] * 4
    assert all(r["control"]["name"] != "none" for r in v)
    assert "seed twin" in v[0]["control"]["name"] and "seed twin" in v[1]["control"]["name"]
    assert v[1]["control"]["value"] == 0.6 and v[3]["control"]["value"] == 0.7
    # the novel fraction is no larger than between seed twins of one width: seed noise, not size
    assert claims.stitching_verdicts(0.35, 0.33, _shares(0.9, 0.8, 0.1), 0.2, down, bumpy)[0]["verdict"] == \
        "not reproduced"
    # self-duplicates lower the MSE for most latents: both insertion claims are untestable on this family
    u = claims.stitching_verdicts(0.35, 0.1, _shares(0.99, 0.01, 0.01), 0.93, down, bumpy)
    assert [r["verdict"] for r in u[1:3]] == ["untestable here"] * 2 and "93 %" in u[1]["ours"]
    # novel latents lower the MSE, but no more often than the twin's novel latents do
    w = claims.stitching_verdicts(0.35, 0.1, _shares(0.65, 0.8, 0.5), 0.2, down, bumpy,
                                  twin={"novel_lowers": 0.6, "recon_raises": 0.7})
    assert w[1]["verdict"] == "not reproduced" and w[2]["verdict"] == "reproduced"
    # without a twin the self-duplicates are the only control: at most partly
    assert claims.stitching_verdicts(0.35, 0.1, _shares(0.9, 0.8, 0.1), 0.2, down, bumpy)[1]["verdict"] == "partly"
    assert claims.stitching_verdicts(0.35, 0.1, _shares(0.45, 0.8, 0.5), 0.4, down, bumpy)[1]["verdict"] == \
        "not reproduced"
    none = claims.stitching_verdicts(0.9, None, _shares(0.9, float("nan"), 0.1), 0.2, down, bumpy)
    assert none[2]["verdict"] == "untestable here" and "no reconstruction latents" in none[2]["ours"]
    assert none[0]["control"]["value"] is None
    f = claims.stitching_verdicts(0.3, 0.1, _shares(0.9, 0.6, 0.1), 0.2, down, bumpy,
                                  franken={"d_sae": 10, "mse": 1.0, "equal_width_mse": 2.0})
    assert f[-1]["id"] == "frankenstein" and f[-1]["verdict"] == "reproduced" and f[-1]["value"] == 0.5
    assert claims.stitching_verdicts(0.3, 0.1, _shares(0.9, 0.6, 0.1), 0.2, down, bumpy,
                                     franken={"d_sae": 10, "mse": 1.0, "equal_width_mse": None})[-1]["verdict"] == \
        "untestable here"
    o = claims.stitching_verdicts(0.3, 0.1, _shares(0.9, 0.6, 0.1), 0.2, down, bumpy, segments=_seg(0.95),
                                  overshoot={"below": 0.07, "l0": 57.5, "step": 3})
    assert "dips 7.0 % below" in o[3]["ours"]
    d = claims.stitching_verdicts(0.3, 0.1, _shares(0.9, 0.6, 0.1), 0.2, down, bumpy,
                                  dead={"dead_small": 4, "dead_large": 660, "twin_dead_small": 763})
    assert "660 in the larger SAE, 4 in the smaller, 763 in the twin" in d[0]["ours"]


def test_smooth_swaps_judges_the_swap_segment_against_the_twins_walk():
    row = claims.stitching.smooth_row
    assert row(_seg(0.95), _seg(0.5))["verdict"] == "reproduced"
    assert row(_seg(0.95), _seg(0.9))["verdict"] == "partly"  # smooth, but no smoother than between twins
    assert row(_seg(0.7), _seg(0.5))["verdict"] == "partly"  # above the twins, not smooth
    assert row(_seg(0.7), _seg(0.65))["verdict"] == "not reproduced"
    assert row(_seg(0.95), None)["verdict"] == "partly"  # without a twin at most partly
    assert row(None)["verdict"] == "untestable here"
    assert row(_seg(float("nan"), 0))["verdict"] == "untestable here"
    r = row(_seg(0.95), _seg(0.5))
    assert r["value"] == 0.95 and r["control"] == {"name": "the same walk between seed twins", "value": 0.5}
    assert "3 removals" in r["ours"]


def test_pair_verdicts_read_pair_numbers():
    seg = _seg(0.95)
    n = {"novel_fraction": 0.35, "twin_novel_fraction": 0.1, "novel_lowers": 0.9, "recon_raises": 0.8,
         "novel_raises": 0.1, "self_duplicate": 0.2, "segments": seg, "dead_small": 1, "dead_large": 2,
         "twin_dead_small": 3, "twin": {"novel_lowers": 0.5, "recon_raises": 0.6, "segments": _seg(0.5)}}
    rows = claims.pair_verdicts(n)
    assert [r["verdict"] for r in rows] == ["reproduced"] * 4
    assert rows[1]["control"]["value"] == 0.5 and rows[3]["control"]["value"] == 0.5


def _pts(nf, tnf, lw, tlw, steps=(2000, 4000, 8000, 16000)):
    return [{"steps": s, "novel_fraction": a, "twin_novel_fraction": b, "novel_lowers": c, "twin_novel_lowers": d}
            for s, a, b, c, d in zip(steps, nf, tnf, lw, tlw)]


def test_size_vs_seed_reproduced_needs_both_margins_at_the_largest_budget():
    pts = _pts([0.7, 0.65, 0.6, 0.6], [0.7, 0.6, 0.52, 0.48], [0.6, 0.62, 0.65, 0.7], [0.6, 0.6, 0.58, 0.55])
    r = claims.size_vs_seed_row("1152→2304", pts)
    assert r["verdict"] == "reproduced" and r["id"] == "size_vs_seed"
    assert r["margins"] == {"novel_fraction": pytest.approx(0.12), "novel_lowers": pytest.approx(0.15)}
    assert r["value"] == pytest.approx(0.12) and r["control"]["value"] == 0.48 and "seed twin" in r["control"]["name"]
    assert r["steps"] == 16000 and r["pair"] == "1152→2304" and r["extrapolation"] is None
    # the order of the points does not matter; only the largest budget is judged
    assert claims.size_vs_seed_row("p", pts[::-1])["verdict"] == "reproduced"
    # one margin short of 10 points: not reproduced yet
    short = _pts([0.7, 0.65, 0.6, 0.6], [0.7, 0.6, 0.52, 0.48], [0.6, 0.62, 0.65, 0.64], [0.6, 0.6, 0.58, 0.55])
    assert claims.size_vs_seed_row("p", short)["verdict"] == "undecided at this budget"


def test_size_vs_seed_not_reproduced_needs_small_flat_margins():
    flat = _pts([0.6, 0.58, 0.56, 0.55], [0.6, 0.57, 0.54, 0.52], [0.6] * 4, [0.59, 0.58, 0.58, 0.57])
    r = claims.size_vs_seed_row("p", flat)
    assert r["verdict"] == "not reproduced"
    assert r["fits"]["novel_fraction"]["slope"] == pytest.approx(0.01) and r["fits"]["novel_fraction"]["se"] < 1e-9
    # the same small margins, growing 3 points per doubling: undecided
    grow = _pts([0.6, 0.6, 0.6, 0.6], [0.69, 0.66, 0.63, 0.6], [0.6] * 4, [0.59, 0.58, 0.58, 0.57])
    assert claims.size_vs_seed_row("p", grow)["verdict"] == "undecided at this budget"
    # two budgets give no slope with an error: never "not reproduced"
    assert claims.size_vs_seed_row("p", flat[-2:])["verdict"] == "undecided at this budget"


def test_size_vs_seed_undecided_extrapolates_with_its_uncertainty():
    # margins 0, 2, 4, 6 points (novel fraction) and 0, 3, 6, 9 points (lowers) at 1k, 2k, 4k, 8k steps
    pts = _pts([0.5] * 4, [0.5, 0.48, 0.46, 0.44], [0.6] * 4, [0.6, 0.57, 0.54, 0.51], steps=(1000, 2000, 4000, 8000))
    r = claims.size_vs_seed_row("p", pts)
    assert r["verdict"] == "undecided at this budget"
    # 10 points: novel fraction at 2^(5) x 1000 = 32,000 steps, lowers at 2^(10/3) x 1000; the later one decides
    assert r["extrapolation"]["steps"] == pytest.approx(32000)
    assert "32,000 steps" in r["ours"]
    # noisy margins: the range brackets the central value; a slope - se <= 0 never gets there
    noisy = _pts([0.5] * 4, [0.5, 0.47, 0.47, 0.44], [0.6] * 4, [0.6, 0.57, 0.54, 0.51],
                 steps=(1000, 2000, 4000, 8000))
    e = claims.size_vs_seed_row("p", noisy)["extrapolation"]
    assert e["low"] < e["steps"] < e["high"]
    falling = _pts([0.5] * 4, [0.44, 0.46, 0.48, 0.5], [0.6] * 4, [0.6, 0.57, 0.54, 0.51])
    f = claims.size_vs_seed_row("p", falling)
    assert f["verdict"] == "undecided at this budget" and f["extrapolation"]["steps"] is None
    assert "never reaches" in f["ours"]
    wobbly = _pts([0.5] * 4, [0.5, 0.44, 0.49, 0.45], [0.6] * 4, [0.6, 0.57, 0.54, 0.51])
    assert claims.size_vs_seed_row("p", wobbly)["extrapolation"]["high"] is None  # slope - se <= 0
    # one margin already past 10 points and flat, the other rising: the rising one decides
    met = _pts([0.6] * 4, [0.45] * 4, [0.6] * 4, [0.6, 0.57, 0.54, 0.51], steps=(1000, 2000, 4000, 8000))
    r = claims.size_vs_seed_row("p", met)
    assert r["verdict"] == "undecided at this budget"
    assert r["extrapolation"]["steps"] == pytest.approx(1000 * 2 ** (10 / 3))


def test_size_vs_seed_leaves_out_unusable_points_and_records_the_rule_commit():
    assert claims.size_vs_seed_row("p", [])["verdict"] == "untestable here"
    pts = _pts([0.7, 0.65, 0.6, 0.6], [0.7, 0.6, 0.52, 0.48], [0.6, 0.62, 0.65, 0.7], [0.6, 0.6, 0.58, 0.55])
    pts[-1]["annealed"] = False  # a mid-run checkpoint at peak learning rate: not a budget point
    r = claims.size_vs_seed_row("p", pts + [{"steps": 32000, "novel_fraction": 0.6, "twin_novel_fraction": None,
                                             "novel_lowers": 0.7, "twin_novel_lowers": 0.5}])
    assert r["steps"] == 8000
    from metasae_utils.claims import seed
    commit = seed.rule_commit()
    assert r["rule_commit"] == commit and (commit is None or len(commit) == 40)


def test_new_verdict_words_are_coloured_and_known():
    from metasae_utils.tables import VERDICT_COLORS
    for v in ("undecided at this budget", "underpowered"):
        assert v in claims.VERDICTS and v in VERDICT_COLORS and v in claims.UNDECIDED
        assert claims.row("size_vs_seed", "x", v)["verdict"] == v


def _mm(var, cos, top, per=4.0):
    return {"variance_explained": var, "mean_cosine": cos, "max_shared_fraction": top,
            "mean_meta_latents_per_latent": per}


def test_meta_verdicts_carry_their_controls():
    resemble = {"smaller_not_base": 0.3, "in_smaller": 0.4, "in_base": 0.1, "random_smaller_not_base": 0.01}
    split = {"n_splits": 3, "mean_gain": 1.5, "se_gain": 0.2, "frac_children_use_more": 0.9, "n_one_to_one": 40,
             "mean_gain_one_to_one": 0.1, "se_gain_one_to_one": 0.1, "frac_one_to_one_use_more": 0.3}
    usage, cos = {576: 1.5, 1152: 2.0}, {576: 0.80, 1152: 0.78}
    v = {r["id"]: r["verdict"] for r in claims.meta_verdicts(_mm(0.55, 0.8, 0.02), _mm(0.2, 0.4, 0.01), resemble,
                                                             usage, cos, split, seeds=_seeds([0.80, 0.81, 0.79],
                                                                                              [0.40, 0.41, 0.39]))}
    assert v == {"meta_sparse": "reproduced", "meta_interpretable": "qualitative", "meta_variance": "reproduced",
                 "meta_most_shared": "reproduced", "meta_resemble_smaller": "reproduced",
                 "smaller_use_fewer": "reproduced", "split_gains": "reproduced"}
    # random rows explain as much: neither the fit nor the variance says anything about structure
    v = {r["id"]: r["verdict"] for r in claims.meta_verdicts(_mm(0.55, 0.8, 0.02), _mm(0.5, 0.75, 0.01), resemble,
                                                             usage, cos, split, seeds=_seeds([0.80, 0.81, 0.79],
                                                                                              [0.75, 0.76, 0.74]))}
    assert v["meta_sparse"] == "not reproduced" and v["meta_variance"] == "not reproduced"
    # one meta-SAE seed has no spread: meta_sparse cannot be judged
    v = {r["id"]: r["verdict"] for r in claims.meta_verdicts(_mm(0.55, 0.8, 0.02), _mm(0.2, 0.4, 0.01), resemble,
                                                             usage, cos, split)}
    assert v["meta_sparse"] == "untestable here"
    # counts that follow fit quality cannot test the claim
    rows = {r["id"]: r for r in claims.meta_verdicts(_mm(0.55, 0.8, 0.02), _mm(0.2, 0.4, 0.01), resemble,
                                                     usage, {576: 0.87, 1152: 0.66}, split)}
    assert rows["smaller_use_fewer"]["verdict"] == "untestable here"
    assert rows["smaller_use_fewer"]["control"]["value"] == pytest.approx(0.21)
    # children of splits gain no more than one-to-one matches do (within two standard errors of the difference)
    v = {r["id"]: r["verdict"] for r in claims.meta_verdicts(
        _mm(0.55, 0.8, 0.02), _mm(0.2, 0.4, 0.01), {**resemble, "random_smaller_not_base": 0.2}, usage, cos,
        {**split, "mean_gain_one_to_one": 1.2})}
    assert v["split_gains"] == "not reproduced" and v["meta_resemble_smaller"] == "not reproduced"
    none = {r["id"]: r["verdict"] for r in claims.meta_verdicts(
        _mm(0.55, 0.8, 0.02), _mm(0.2, 0.4, 0.01), resemble, usage, cos,
        {"n_splits": 0, "mean_gain": float("nan"), "frac_children_use_more": float("nan"),
         "frac_one_to_one_use_more": float("nan")})}
    assert none["split_gains"] == "untestable here"


def _spread(values):
    from metasae_utils.meta import spread
    return spread(values)


def _seeds(base, random, l0=4.0):
    """``meta_verdicts``' ``seeds``: over_seeds-shaped results with the given per-seed mean cosines."""
    return {"base": {"mean_cosine": _spread(base), "mean_meta_latents_per_latent": _spread([l0] * len(base))},
            "random": {"mean_cosine": _spread(random)}}


def _around(mean, se, n=3):
    """n values with the given mean and standard error (std = se * sqrt(n))."""
    std = se * math.sqrt(n)
    if n == 3:  # values mean - std, mean, mean + std have sample std = std
        return [mean - std, mean, mean + std]
    raise ValueError(n)


def test_meta_sparse_over_seeds():
    row = claims.meta_sparse_row
    ctl = _spread(_around(0.4, 0.01))
    v = lambda m, se, c=ctl: row(_spread(_around(m, se)), c, 4.0)["verdict"]
    assert v(0.80, 0.01) == "reproduced"
    assert v(0.75, 0.02499) == "reproduced"  # mean - 2 SE just above 0.70
    assert v(0.75, 0.02501) == "undecided at this budget"  # mean - 2 SE just below 0.70
    assert v(0.708, 0.01) == "undecided at this budget"  # one seed's 0.708 against a 0.70 line is not decisive
    assert v(0.69, 0.01) == "undecided at this budget"  # 0.7 within mean + 2 SE
    assert v(0.65, 0.02) == "not reproduced"  # mean + 2 SE = 0.69 < 0.7
    assert v(0.68, 0.01001) == "undecided at this budget"  # mean + 2 SE just above 0.70: 0.7 is inside
    assert v(0.68, 0.00999) == "not reproduced"  # mean + 2 SE just below 0.70
    assert v(0.80, 0.01, _spread(_around(0.71, 0.01))) == "not reproduced"  # 0.09 above the control
    assert v(0.80, 0.01, _spread(_around(0.699, 0.01))) == "reproduced"  # > 0.1 above the control
    assert v(0.80, 0.01, _spread(_around(0.75, 0.01))) == "not reproduced"
    r = row(_spread([0.81, 0.80, 0.82]), ctl, 3.5)
    assert r["value"] == pytest.approx(0.81) and r["control"]["value"] == pytest.approx(0.4)
    assert "3 meta-SAE seeds" in r["ours"] and "0.810" in r["ours"] and "same seeds" in r["control"]["name"]
    assert row(_spread([0.9]), ctl, 4.0)["verdict"] == "untestable here"  # no spread from one seed
    assert "meta-SAE seeds" in claims.CLAIMS["meta_sparse"].rule and "base SAE" in claims.CLAIMS["meta_sparse"].rule


def test_matryoshka_meta_over_seeds():
    row = claims.matryoshka_meta_row
    b = _spread(_around(0.55, 0.005))
    v = lambda m, se: row(_spread(_around(m, se)), b)["verdict"]
    # Welch SE = sqrt(se^2 + 0.005^2)
    assert v(0.42, 0.005) == "reproduced"  # -13 points, SE 0.7
    assert v(0.53, 0.005) == "partly"  # -2 points, 2 SE = 1.4 points
    assert v(0.515, 0.005) == "reproduced"  # -3.5 points beyond 2 SE
    assert v(0.5201, 0.005) == "partly"  # just above -3 points
    assert v(0.5199, 0.005) == "reproduced"  # just below -3 points
    assert v(0.56, 0.005) == "not reproduced"  # +1 point beyond 2 SE: the other direction
    assert v(0.545, 0.005) == "not reproduced"  # -0.5 within 2 SE = 1.4 points <= 3 points
    assert v(0.50, 0.05) == "underpowered"  # -5 points, but 2 SE = 10 points
    assert v(0.53, 0.02) == "underpowered"  # within 2 SE (4.1 points) and 2 SE > 3 points
    r = row(_spread([0.42, 0.43, 0.44]), _spread([0.55, 0.56, 0.57]))
    assert r["value"] == pytest.approx(-0.13) and r["control"]["value"] == 0.0
    assert "Welch" in r["ours"] and "paired" in r["ours"] and "3 seeds" in r["ours"]
    assert row(_spread([0.42]), _spread([0.55]))["verdict"] == "untestable here"
    assert "meta-SAE seeds" in claims.CLAIMS["matryoshka_meta"].rule


def test_split_gains_judges_mean_gains_not_shares():
    row = claims.meta._split_row
    base = {"n_splits": 30, "mean_gain": 0.5, "se_gain": 0.1, "frac_children_use_more": 0.4, "n_one_to_one": 50,
            "mean_gain_one_to_one": 0.0, "se_gain_one_to_one": 0.1, "frac_one_to_one_use_more": 0.45}
    r = row(base)
    # fewer children "use more" than one-to-one matches, yet they gain more on average: judged on the means
    assert r["verdict"] == "reproduced" and r["value"] == 0.5 and r["control"]["value"] == 0.0
    assert "mean gain" in r["control"]["name"]
    assert row({**base, "mean_gain_one_to_one": 0.25})["verdict"] == "not reproduced"  # 0.25 < 2 SE (0.28)
    assert row({**base, "mean_gain_one_to_one": 0.2})["verdict"] == "reproduced"  # 0.30 > 0.28
    assert row({**base, "mean_gain": -0.5, "mean_gain_one_to_one": -1.0})["verdict"] == "not reproduced"  # no gain
    # a toy with no effect: shares differ (40 % vs 45 %) but the mean gains are equal
    assert row({**base, "mean_gain": 0.1, "mean_gain_one_to_one": 0.1})["verdict"] == "not reproduced"
    r1 = row({**base, "se_gain": float("nan")})  # a single split: no standard error
    assert r1["verdict"] == "untestable here" and "n/a" in r1["ours"]


def test_ground_truth_verdicts():
    rows = claims.stitching_truth_verdicts({"novel_is_new_or_related": 0.9, "novel_is_new": 0.5,
                                            "reconstruction_is_same_or_related": 0.6, "all_new_or_related": 0.5,
                                            "all_same_or_related": 0.4}, 3)
    assert [(r["id"], r["verdict"]) for r in rows] == [("truth_novel", "reproduced"),
                                                       ("truth_reconstruction", "partly")]
    same = claims.stitching_truth_verdicts({"novel_is_new_or_related": 0.9, "novel_is_new": 0.5,
                                            "reconstruction_is_same_or_related": 0.9, "all_new_or_related": 0.85,
                                            "all_same_or_related": 0.4}, 3)
    assert same[0]["verdict"] == "not reproduced"  # novel latents are no more new than latents in general
    assert "pooled over 3 synthetic pairs" in rows[0]["ours"]
    meta = lambda found, used, chance: claims.meta_truth_verdicts(
        {"frac_roots_found": found, "parent_in_code": used, "chance": chance})[0]["verdict"]
    assert meta(0.6, 0.9, 0.05) == "reproduced"
    assert meta(0.1, 0.9, 0.05) == "partly"
    assert meta(0.6, 0.55, 0.3) == "partly"  # used, but not twice chance
    assert meta(0.1, math.nan, 0.05) == "not reproduced"


def test_architecture_verdicts():
    by = {"standard": {"meta_variance_explained": 0.6, "novel_lowers": 0.9, "self_duplicate": 0.1},
          "batchtopk": {"meta_variance_explained": 0.55, "novel_lowers": 0.7, "self_duplicate": 0.2},
          "matryoshka_batchtopk": {"meta_variance_explained": 0.42, "novel_lowers": float("nan")}}
    seeds = {"batchtopk": {"variance_explained": _spread([0.54, 0.55, 0.56])},
             "matryoshka_batchtopk": {"variance_explained": _spread([0.41, 0.42, 0.43])}}
    rows = {r["id"]: r for r in claims.architecture_verdicts(by, seeds)}
    assert rows["matryoshka_meta"]["verdict"] == "reproduced"
    assert rows["matryoshka_meta"]["value"] == pytest.approx(-0.13)
    # the seeds decide, not the single meta-SAE of the compare rows
    assert claims.architecture_verdicts(by)[0]["verdict"] == "untestable here"
    seeds["batchtopk"] = {"variance_explained": _spread([0.43, 0.44, 0.45])}
    assert claims.architecture_verdicts(by, seeds)[0]["verdict"] == "partly"
    assert rows["novel_across_arch"]["verdict"] == "reproduced" and rows["novel_across_arch"]["value"] == 0.7
    assert rows["novel_across_arch"]["ours"] == "standard: 90 %, batchtopk: 70 %"
    by["batchtopk"] = {"meta_variance_explained": 0.43, "novel_lowers": 0.2}
    rows = {r["id"]: r for r in claims.architecture_verdicts(by)}
    assert rows["novel_across_arch"]["verdict"] == "partly"
    rows = {r["id"]: r for r in claims.architecture_verdicts({"standard": {"meta_variance_explained": 0.5,
                                                                           "novel_lowers": None}})}
    assert rows["matryoshka_meta"]["verdict"] == "untestable here"
    assert rows["novel_across_arch"]["verdict"] == "untestable here"
    by["standard"]["self_duplicate"] = 0.9
    rows = {r["id"]: r for r in claims.architecture_verdicts(by)}
    assert rows["novel_across_arch"]["verdict"] == "untestable here" and rows["novel_across_arch"]["control"]["value"] == 0.9


def _q(nl, nr, rl, rr, chance=0.5, auc=0.9):
    return {"n": 100, "n_silent": 0, "threshold": 0.7, "novel, lowers": nl, "novel, raises": nr,
            "reconstruction, lowers": rl, "reconstruction, raises": rr, "agreement": nl + rr, "chance": chance,
            "auc": auc, "best_threshold": 0.7, "best_agreement": nl + rr}


def test_delta_vs_cosine_rule():
    ok = claims.delta_vs_cosine_row(_q(0.4, 0.05, 0.05, 0.5), self_dup=0.1)
    assert ok["verdict"] == "reproduced" and ok["value"] == pytest.approx(0.9) and ok["control"]["value"] == 0.5
    assert claims.delta_vs_cosine_row(_q(0.3, 0.15, 0.15, 0.4))["verdict"] == "partly"  # 70 %: margin only
    assert claims.delta_vs_cosine_row(_q(0.28, 0.23, 0.22, 0.27))["verdict"] == "not reproduced"  # 55 % vs 50 %
    assert claims.delta_vs_cosine_row(_q(0.99, 0.01, 0.0, 0.0))["verdict"] == "untestable here"  # all novel
    assert claims.delta_vs_cosine_row(_q(0.4, 0.05, 0.05, 0.5), self_dup=0.8)["verdict"] == "untestable here"
    # the seed twins' plane is shown beside, and changes no verdict
    tw = claims.delta_vs_cosine_row(_q(0.4, 0.05, 0.05, 0.5), self_dup=0.1, twin_q=_q(0.2, 0.3, 0.1, 0.4))
    assert tw["verdict"] == "reproduced" and "between seed twins 60.0 % agree" in tw["ours"]


def test_frankenstein_frontier_rule():
    eq = {"width": 4608, "l0": 30.0, "mse": 1.0}
    inside = {"mse": 0.9, "extrapolated": False}
    beyond = {"mse": 0.9, "extrapolated": True}
    base = {"d_sae": 3000, "l0": 40.0, "mse": 0.8, "equal": eq}
    assert claims.frankenstein_frontier_row({**base, "frontier": inside})["verdict"] == "reproduced"
    assert claims.frankenstein_frontier_row({**base, "frontier": beyond})["verdict"] == "partly"  # only an upper bound
    above = claims.frankenstein_frontier_row({**base, "mse": 0.95, "frontier": inside})
    assert above["verdict"] == "partly" and above["value"] == pytest.approx(0.95 / 0.9)
    worse = claims.frankenstein_frontier_row({**base, "mse": 1.2, "frontier": inside})
    assert worse["verdict"] == "not reproduced"
    assert claims.frankenstein_frontier_row({**base, "equal": None, "frontier": inside})["verdict"] == "untestable here"


def test_meta_ratio_and_edge_overlap_rules():
    mm = {"variance_explained": 0.5, "mean_cosine": 0.75, "mean_meta_latents_per_latent": 4.0}
    rnd = {"variance_explained": 0.3, "mean_cosine": 0.6}
    assert claims.meta_ratio_row(mm, rnd, 216, 4608)["verdict"] == "reproduced"
    assert claims.meta_ratio_row({**mm, "mean_cosine": 0.65}, rnd, 216, 4608)["verdict"] == "partly"
    assert claims.meta_ratio_row(mm, {**rnd, "variance_explained": 0.45}, 216, 4608)["verdict"] == "not reproduced"
    ov = {"meta_edges": 1000, "nn_edges": 800, "meta_in_nn": 0.2, "nn_in_meta": 0.25, "jaccard": 0.12,
          "random_meta_in_nn": 0.05, "random_nn_in_meta": 0.06}
    r = claims.edge_overlap_row(ov, "standard-576")
    # both directions hold; the value is the one nearer the paper's 28.92 %, with its own control
    assert r["verdict"] == "reproduced" and r["value"] == 0.25 and r["control"]["value"] == 0.06
    assert "28.92" in r["paper"] and "28.92" in r["ours"] and "both directions" in r["ours"]
    assert claims.edge_overlap_row({**ov, "random_meta_in_nn": 0.12}, "s")["verdict"] == "partly"  # < 2x one way
    assert claims.edge_overlap_row({**ov, "random_meta_in_nn": 0.12, "random_nn_in_meta": 0.2}, "s")["verdict"] == \
        "not reproduced"
    few = {**ov, "meta_in_nn": 0.04, "random_meta_in_nn": 0.01, "nn_in_meta": 0.3, "random_nn_in_meta": 0.27}
    assert claims.edge_overlap_row(few, "s")["verdict"] == "not reproduced"  # 4x but only 3 points; 0.3 < 2x
    # the audit's case: 10 % one way, 28.5 % the other; the value is the direction nearer the paper's
    audit = {**ov, "meta_in_nn": 0.102, "nn_in_meta": 0.285, "random_meta_in_nn": 0.02, "random_nn_in_meta": 0.05}
    assert claims.edge_overlap_row(audit, "s")["value"] == 0.285
    assert claims.edge_overlap_row({**ov, "nn_edges": 0}, "s")["verdict"] == "untestable here"


def test_stitching_reading_follows_the_swap_walk():
    rows = [claims.stitching.smooth_row(_seg(0.95), _seg(0.9))]
    text = claims.stitching_reading(rows)
    assert "95.0 %" in text and "smooth by the ≥ 90 % rule" in text and "no smoother across sizes" in text
    text = claims.stitching_reading([claims.stitching.smooth_row(_seg(0.5), _seg(0.2))])
    assert "not smooth" in text and "no smoother" not in text
