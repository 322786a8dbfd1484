"""Tests for metasae_utils.stitching on hand-built SAELens SAEs whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from sae_lens.saes import (
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)

from metasae_utils.evaluate import reconstruction_metrics
from metasae_utils.stitching import (
    BDEC_GROUP,
    classify_latents,
    insert_latents,
    insertion_deltas,
    interpolate,
    max_cosine,
    novel_fraction,
    pairs_above,
    stitch,
    swap_groups,
)

F64 = torch.float64
D_IN = 12
N_TOK = 300
CONFIGS = {StandardSAE: StandardSAEConfig, JumpReLUSAE: JumpReLUSAEConfig, GatedSAE: GatedSAEConfig}


# ---------------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------------


def unit_rows(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=1, keepdim=True)


def make_sae(cls, W_dec, b_dec, W_enc=None, b_enc=None, threshold=None, **cfg_kwargs):
    """A float64 SAELens SAE of class ``cls`` with the given weights (encoder defaults to W_dec^T)."""
    d_sae, d_in = W_dec.shape
    sae = cls(CONFIGS[cls](d_in=d_in, d_sae=d_sae, dtype="float64", **cfg_kwargs))
    W_enc = W_dec.T.clone() if W_enc is None else W_enc
    b_enc = torch.full((d_sae,), -0.3, dtype=F64) if b_enc is None else b_enc
    state = {"W_dec": W_dec, "b_dec": b_dec, "W_enc": W_enc}
    if cls is GatedSAE:
        state.update(b_gate=b_enc, b_mag=b_enc * 0.5, r_mag=torch.linspace(-0.2, 0.2, d_sae, dtype=F64))
    else:
        state["b_enc"] = b_enc
    if cls is JumpReLUSAE:
        state["threshold"] = torch.full((d_sae,), 0.1, dtype=F64) if threshold is None else threshold
    sae.load_state_dict({k: v.to(F64) for k, v in state.items()})
    return sae


def make_pair(cls=StandardSAE, seed=0, **cfg_kwargs):
    """Small (10 latents) and large (17 latents) SAEs on d=12: the large one has 4 near-copies of small
    latents, a 2-way split of small latent 4, and 11 random (mostly novel) latents; different b_dec."""
    g = torch.Generator().manual_seed(seed)
    small_dec = unit_rows(torch.randn(10, D_IN, generator=g, dtype=F64))
    copies = unit_rows(small_dec[:4] + 0.1 * torch.randn(4, D_IN, generator=g, dtype=F64))
    split = unit_rows(small_dec[4:5] + 0.35 * torch.randn(2, D_IN, generator=g, dtype=F64))
    extra = unit_rows(torch.randn(11, D_IN, generator=g, dtype=F64))
    large_dec = torch.cat([copies, split, extra]) * (1 + 0.2 * torch.rand(17, 1, generator=g, dtype=F64))
    small_enc = small_dec.T + 0.1 * torch.randn(D_IN, 10, generator=g, dtype=F64)
    large_enc = large_dec.T + 0.1 * torch.randn(D_IN, 17, generator=g, dtype=F64)
    b_s = 0.3 * torch.randn(D_IN, generator=g, dtype=F64)
    b_l = b_s + 0.5 * torch.randn(D_IN, generator=g, dtype=F64)
    small = make_sae(cls, small_dec, b_s, small_enc, -0.2 - 0.2 * torch.rand(10, generator=g, dtype=F64), **cfg_kwargs)
    large = make_sae(cls, large_dec, b_l, large_enc, -0.2 - 0.2 * torch.rand(17, generator=g, dtype=F64), **cfg_kwargs)
    return small, large


def make_acts(seed=1, n=N_TOK):
    """Sparse combinations of random directions plus an offset and noise: (n, D_IN) float64."""
    g = torch.Generator().manual_seed(seed)
    feats = unit_rows(torch.randn(24, D_IN, generator=g, dtype=F64))
    codes = torch.rand(n, 24, generator=g, dtype=F64) * (torch.rand(n, 24, generator=g, dtype=F64) < 0.15)
    return 0.2 + 2.0 * codes @ feats + 0.05 * torch.randn(n, D_IN, generator=g, dtype=F64)


@pytest.fixture(scope="module")
def acts():
    return make_acts()


# ---------------------------------------------------------------------------------------------------
# max_cosine / pairs_above
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 1, 5, 7, 36, 37, 100])
def test_max_cosine_matches_bruteforce(chunk):
    g = torch.Generator().manual_seed(3)
    W_a = torch.randn(37, 6, generator=g, dtype=F64) * torch.rand(37, 1, generator=g, dtype=F64)
    W_b = torch.randn(23, 6, generator=g, dtype=F64) * 3
    full = unit_rows(W_a) @ unit_rows(W_b).T
    values, indices = max_cosine(W_a, W_b, chunk_size=chunk)
    assert values.shape == (37,) and indices.dtype == torch.long
    torch.testing.assert_close(values, full.max(1).values, rtol=0, atol=1e-12)
    assert torch.equal(indices, full.argmax(1))
    i, j, cos = pairs_above(W_a, W_b, 0.4, chunk_size=chunk)
    bi, bj = torch.nonzero(full > 0.4, as_tuple=True)
    assert i.numel() > 10 and torch.equal(i, bi) and torch.equal(j, bj)
    torch.testing.assert_close(cos, full[bi, bj], rtol=0, atol=1e-12)


def test_max_cosine_float32_and_errors():
    W_a, W_b = torch.randn(50, 8), torch.randn(20, 8)
    values, indices = max_cosine(W_a, W_b, chunk_size=16)
    full = torch.nn.functional.normalize(W_a, dim=1) @ torch.nn.functional.normalize(W_b, dim=1).T
    torch.testing.assert_close(values, full.max(1).values)
    with pytest.raises(ValueError, match="equal d"):
        max_cosine(W_a, torch.randn(20, 7))


# ---------------------------------------------------------------------------------------------------
# classify_latents
# ---------------------------------------------------------------------------------------------------


def test_identical_decoders_are_all_reconstruction():
    small, _ = make_pair()
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    W = small.W_dec.detach()
    large = make_sae(StandardSAE, W[perm] * 2.5, small.b_dec.detach())
    res = classify_latents(small, large)
    assert res.novel.numel() == 0 and res.reconstruction.tolist() == list(range(10))
    assert torch.equal(res.match, perm)
    torch.testing.assert_close(res.max_cos, torch.ones(10, dtype=F64))


def test_orthogonal_added_latents_are_novel():
    g = torch.Generator().manual_seed(5)
    basis = torch.linalg.qr(torch.randn(D_IN, D_IN, generator=g, dtype=F64)).Q.T  # orthonormal rows
    small_dec = torch.randn(6, 5, generator=g, dtype=F64) @ basis[:5]  # span of the first 5 directions
    added = torch.randn(5, 7, generator=g, dtype=F64) @ basis[5:]  # orthogonal complement
    large_dec = torch.cat([small_dec[:3], added[:2], small_dec[3:], added[2:]])  # added at 3, 4, 8, 9, 10
    small = make_sae(StandardSAE, small_dec, torch.zeros(D_IN, dtype=F64))
    large = make_sae(StandardSAE, large_dec, torch.zeros(D_IN, dtype=F64))
    res = classify_latents(small, large, threshold=0.7)
    assert res.novel.tolist() == [3, 4, 8, 9, 10]
    assert res.reconstruction.tolist() == [0, 1, 2, 5, 6, 7]
    assert res.max_cos[res.novel].abs().max() < 1e-10
    assert res.match[res.reconstruction].tolist() == [0, 1, 2, 3, 4, 5]
    fractions = novel_fraction(small, large, [0.01, 0.5, 1.0 + 1e-9])
    torch.testing.assert_close(fractions, torch.tensor([5 / 11, 5 / 11, 1.0], dtype=F64))


# ---------------------------------------------------------------------------------------------------
# insert_latents
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [StandardSAE, JumpReLUSAE, GatedSAE])
@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_insert_latents_reproduces_large_activations(acts, cls, apply_b_dec):
    small, large = make_pair(cls, apply_b_dec_to_input=apply_b_dec)
    ids = [12, 2, 5]
    new = insert_latents(small, large, ids)
    assert type(new) is cls and new.cfg.d_sae == 13 and new.cfg.apply_b_dec_to_input == apply_b_dec
    assert small.cfg.d_sae == 10  # the small SAE is untouched
    torch.testing.assert_close(new.b_dec, small.b_dec, rtol=0, atol=0)
    torch.testing.assert_close(new.W_dec[10:], large.W_dec[ids], rtol=0, atol=0)
    f_new, f_large, f_small = new.encode(acts), large.encode(acts), small.encode(acts)
    assert (f_large[:, ids] != 0).float().mean() > 0.05  # the latents do fire
    torch.testing.assert_close(f_new[:, 10:], f_large[:, ids], rtol=0, atol=1e-12)
    torch.testing.assert_close(f_new[:, :10], f_small, rtol=0, atol=1e-12)
    if cls is JumpReLUSAE:
        torch.testing.assert_close(new.threshold[10:], large.threshold[ids], rtol=0, atol=0)
    if apply_b_dec:  # without the b_dec shift the activations would differ: the test can fail
        naive = (acts - small.b_dec) @ large.W_enc[:, ids] + large.b_enc[ids] if cls is not GatedSAE else None
        if naive is not None:
            assert (naive.relu() - f_large[:, ids]).abs().max() > 1e-2


def test_insert_latents_refuses_bad_pairs():
    small, large = make_pair()
    other = make_sae(StandardSAE, unit_rows(torch.randn(4, D_IN + 1, dtype=F64)), torch.zeros(D_IN + 1, dtype=F64))
    with pytest.raises(ValueError, match="d_in"):
        insert_latents(small, other, [0])
    jump_small, _ = make_pair(JumpReLUSAE)
    with pytest.raises(ValueError, match="architectures differ"):
        insert_latents(jump_small, large, [0])
    topk = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=8, k=2, dtype="float64"))
    with pytest.raises(ValueError, match="independent"):
        insert_latents(topk, topk, [0])
    with pytest.raises(ValueError, match="latent ids"):
        insert_latents(small, large, [17])
    with pytest.raises(ValueError, match="normalize_activations"):
        insert_latents(small, make_pair(normalize_activations="layer_norm")[1], [0])


# ---------------------------------------------------------------------------------------------------
# insertion_deltas
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls,cfg",
    [
        (StandardSAE, {}),
        (JumpReLUSAE, {}),
        (GatedSAE, {}),
        (StandardSAE, {"apply_b_dec_to_input": False}),
        (StandardSAE, {"normalize_activations": "layer_norm"}),
        (JumpReLUSAE, {"normalize_activations": "constant_norm_rescale"}),
    ],
)
def test_insertion_deltas_match_naive_insertion(acts, cls, cfg):
    small, large = make_pair(cls, **cfg)
    res = insertion_deltas(small, large, acts, batch_size=64, latent_chunk=3)  # 64 does not divide 300
    base = reconstruction_metrics(small, acts)
    assert res.latent_ids.tolist() == list(range(17))
    assert res.base["mse"] == pytest.approx(base["mse"], rel=1e-10)
    assert res.base["l0"] == pytest.approx(base["l0"], rel=1e-12)
    for j in range(17):
        m = reconstruction_metrics(insert_latents(small, large, [j]), acts)
        assert res.delta_mse[j].item() == pytest.approx(m["mse"] - base["mse"], rel=1e-6, abs=1e-12)
        assert res.delta_fvu[j].item() == pytest.approx(m["fvu"] - base["fvu"], rel=1e-6, abs=1e-12)
        assert res.delta_l0[j].item() == pytest.approx(m["l0"] - base["l0"], abs=1e-12)
    assert res.delta_mse.abs().max() > 1e-3 and (res.delta_l0 > 0).sum() >= 10  # non-trivial numbers
    sub = insertion_deltas(small, large, acts, latent_ids=[16, 3])
    torch.testing.assert_close(sub.delta_mse, res.delta_mse[[16, 3]], rtol=1e-9, atol=1e-14)


def test_novel_insertions_lower_mse_reconstruction_raise_it():
    """Data on 8 orthonormal features; the small SAE is exact on features 0-4, the large one has them all.

    Inserting a copy of a small latent double-counts its part (MSE rises); a novel latent reconstructs
    a feature the small SAE misses (MSE falls)."""
    g = torch.Generator().manual_seed(9)
    feats = torch.linalg.qr(torch.randn(D_IN, D_IN, generator=g, dtype=F64)).Q.T[:8]  # (8, d) orthonormal
    codes = torch.rand(400, 8, generator=g, dtype=F64) * (torch.rand(400, 8, generator=g, dtype=F64) < 0.3)
    b = torch.randn(D_IN, generator=g, dtype=F64)
    x = b + codes @ feats
    small = make_sae(StandardSAE, feats[:5], b, b_enc=torch.full((5,), -1e-9, dtype=F64))  # no rounding noise
    large = make_sae(StandardSAE, feats[[5, 0, 6, 1, 7, 2, 3, 4]], b, b_enc=torch.full((8,), -1e-9, dtype=F64))
    cls_ = classify_latents(small, large)
    assert cls_.novel.tolist() == [0, 2, 4] and cls_.reconstruction.tolist() == [1, 3, 5, 6, 7]
    res = insertion_deltas(small, large, x)
    assert (res.delta_mse[cls_.novel] < -1e-3).all() and (res.delta_mse[cls_.reconstruction] > 1e-3).all()
    # an exact copy's insertion adds back exactly its own contribution, i.e. its isolated removal cost
    for j, feat in zip([1, 3, 5, 6, 7], [0, 1, 2, 3, 4]):
        own = (codes[:, feat] ** 2).sum() / (400 * D_IN)
        assert res.delta_mse[j].item() == pytest.approx(own.item(), rel=1e-6)
    torch.testing.assert_close(res.delta_l0, (codes[:, [5, 0, 6, 1, 7, 2, 3, 4]] > 0).double().mean(0))
    assert reconstruction_metrics(large, x)["mse"] == pytest.approx(0.0, abs=1e-16)


# ---------------------------------------------------------------------------------------------------
# swap_groups
# ---------------------------------------------------------------------------------------------------


def test_swap_groups_hand_made_components():
    e = torch.eye(16, dtype=F64)
    small_dec = torch.stack([e[0], e[1], e[2] * 0.5, e[3], e[4], e[10], e[11]])  # s0..s6
    large_dec = torch.stack(
        [
            e[0] + 0.3 * e[5],  # l0 ~ s0   (split of s0)
            e[0] - 0.3 * e[6],  # l1 ~ s0
            e[1] + e[2],  # l2 ~ s1 and s2 (cos 0.707 each): merge
            3 * e[4],  # l3 ~ s4
            e[7],  # l4 novel
            e[8] + e[9],  # l5 novel
            e[10] + e[11],  # l6 ~ s5 and s6: chain s5 - l6 - s6 - l7
            e[11] + 0.3 * e[12],  # l7 ~ s6
        ]
    )
    small = make_sae(StandardSAE, small_dec, torch.zeros(16, dtype=F64))
    large = make_sae(StandardSAE, large_dec, torch.zeros(16, dtype=F64))
    groups = swap_groups(small, large, threshold=0.7)
    got = {(tuple(g.small_ids.tolist()), tuple(g.large_ids.tolist())) for g in groups}
    expected = {((0,), (0, 1)), ((1, 2), (2,)), ((3,), ()), ((4,), (3,)), ((), (4,)), ((), (5,)), ((5, 6), (6, 7))}
    assert got == expected and len(groups) == len(expected)
    kinds = {(tuple(g.small_ids.tolist()), tuple(g.large_ids.tolist())): g.kind for g in groups}
    assert kinds[((3,), ())] == "removed" and kinds[((), (4,))] == "novel" and kinds[((5, 6), (6, 7))] == "matched"
    # a higher threshold breaks the 0.707 links
    strict = {(tuple(g.small_ids.tolist()), tuple(g.large_ids.tolist())) for g in swap_groups(small, large, 0.75)}
    assert ((1,), ()) in strict and ((5,), ()) in strict and ((6,), (7,)) in strict and ((), (6,)) in strict


# ---------------------------------------------------------------------------------------------------
# interpolate
# ---------------------------------------------------------------------------------------------------


def _state_after(path, groups, k, n_small):
    """(small ids kept, large ids added, bias applied) after the first k steps of ``path``."""
    small_keep, large_add, bias = set(range(n_small)), [], False
    for point in path[1 : k + 1]:
        if point["group"] == BDEC_GROUP:
            bias = True
            continue
        grp = groups[point["group"]]
        small_keep -= set(grp.small_ids.tolist())
        large_add += grp.large_ids.tolist()
    return sorted(small_keep), large_add, bias


@pytest.mark.parametrize("cls", [StandardSAE, JumpReLUSAE])
@pytest.mark.parametrize("order", ["greedy", "isolated", "random"])
def test_interpolate_end_points(acts, cls, order):
    small, large = make_pair(cls)
    path = interpolate(small, large, acts, order=order, batch_size=128, progress=False)
    groups = swap_groups(small, large)
    assert len(path) == len(groups) + 2  # start + every group + the decoder-bias step
    assert [p["step"] for p in path] == list(range(len(path)))
    assert sorted(p["group"] for p in path[1:]) == [BDEC_GROUP] + list(range(len(groups)))
    first, last = reconstruction_metrics(small, acts), reconstruction_metrics(large, acts)
    for point, ref in ((path[0], first), (path[-1], last)):
        for key in ("mse", "fvu", "l0"):
            assert point[key] == pytest.approx(ref[key], rel=1e-9)
    assert abs(first["mse"] - last["mse"]) > 1e-3  # the two end points are genuinely different
    steps = [p["mse"] - q["mse"] for p, q in zip(path[1:], path[:-1])]
    assert steps == pytest.approx([p["delta_mse"] for p in path[1:]], abs=1e-12)


@pytest.mark.parametrize("order", ["greedy", "random"])
def test_interpolate_intermediate_points_match_materialised_sae(acts, order):
    small, large = make_pair(JumpReLUSAE, seed=4)
    groups = swap_groups(small, large)
    path = interpolate(small, large, acts, order=order, seed=2, progress=False)
    for k in range(1, len(path) - 1, 3):
        s_ids, l_ids, bias = _state_after(path, groups, k, small.cfg.d_sae)
        sae = stitch(small, large, s_ids, l_ids, b_dec="large" if bias else "small")
        ref = reconstruction_metrics(sae, acts)
        assert path[k]["mse"] == pytest.approx(ref["mse"], rel=1e-9)
        assert path[k]["l0"] == pytest.approx(ref["l0"], rel=1e-12)


def test_greedy_takes_best_step(acts):
    """At the first two steps, greedy's choice must be the best of all candidates, checked by brute force."""
    small, large = make_pair(StandardSAE, seed=7)
    groups = swap_groups(small, large)
    path = interpolate(small, large, acts, order="greedy", progress=False)
    for k in (1, 2):
        s_keep, l_add, bias = _state_after(path, groups, k - 1, small.cfg.d_sae)
        done = {p["group"] for p in path[1:k]}
        best = math.inf
        for gi in [BDEC_GROUP] + list(range(len(groups))):
            if gi in done:
                continue
            if gi == BDEC_GROUP:
                cand = stitch(small, large, s_keep, l_add, b_dec="large")
            else:
                s2 = [i for i in s_keep if i not in set(groups[gi].small_ids.tolist())]
                cand = stitch(small, large, s2, l_add + groups[gi].large_ids.tolist(), b_dec="large" if bias else "small")
            best = min(best, reconstruction_metrics(cand, acts)["mse"])
        assert path[k]["mse"] == pytest.approx(best, rel=1e-9)
    # isolated order sorts by the first-step deltas, so its first step equals greedy's
    iso = interpolate(small, large, acts, order="isolated", progress=False)
    assert iso[1]["group"] == path[1]["group"]


def test_interpolate_bias_placement_and_random_seed(acts):
    small, large = make_pair()
    first = interpolate(small, large, acts, order="greedy", b_dec_step="first", progress=False)
    last = interpolate(small, large, acts, order="random", b_dec_step="last", seed=1, progress=False)
    assert first[1]["group"] == BDEC_GROUP and first[1]["l0"] == first[0]["l0"]
    assert last[-1]["group"] == BDEC_GROUP
    assert first[-1]["mse"] == pytest.approx(last[-1]["mse"], rel=1e-9)
    again = interpolate(small, large, acts, order="random", b_dec_step="last", seed=1, progress=False)
    other = interpolate(small, large, acts, order="random", b_dec_step="last", seed=2, progress=False)
    assert [p["group"] for p in again] == [p["group"] for p in last]
    assert [p["group"] for p in other] != [p["group"] for p in last]
    with pytest.raises(ValueError, match="order"):
        interpolate(small, large, acts, order="best", progress=False)


def test_mismatched_d_in_raises_everywhere(acts):
    small, _ = make_pair()
    other = make_sae(StandardSAE, unit_rows(torch.randn(5, D_IN + 2, dtype=F64)), torch.zeros(D_IN + 2, dtype=F64))
    for call in (
        lambda: classify_latents(small, other),
        lambda: swap_groups(small, other),
        lambda: insertion_deltas(small, other, acts),
        lambda: interpolate(small, other, acts, progress=False),
        lambda: novel_fraction(small, other, [0.5]),
    ):
        with pytest.raises(ValueError, match="d_in|equal d"):
            call()
    with pytest.raises(ValueError, match="activations"):
        insertion_deltas(small, small, acts[:, :5])


# ---------------------------------------------------------------------------------------------------
# chapter-level analyses: cumulative insertion, Frankenstein, monotonicity, verdicts
# ---------------------------------------------------------------------------------------------------

from metasae_utils.stitching import cumulative_insertion, frankenstein, monotonicity  # noqa: E402


def _orthonormal_case():
    g = torch.Generator().manual_seed(9)
    feats = torch.linalg.qr(torch.randn(D_IN, D_IN, generator=g, dtype=F64)).Q.T[:8]
    codes = torch.rand(400, 8, generator=g, dtype=F64) * (torch.rand(400, 8, generator=g, dtype=F64) < 0.3)
    b = torch.randn(D_IN, generator=g, dtype=F64)
    small = make_sae(StandardSAE, feats[:5], b, b_enc=torch.full((5,), -1e-9, dtype=F64))
    large = make_sae(StandardSAE, feats[[5, 0, 6, 1, 7, 2, 3, 4]], b, b_enc=torch.full((8,), -1e-9, dtype=F64))
    return small, large, b + codes @ feats


def test_cumulative_insertion_is_exact_and_ends_with_all_inserted():
    small, large, x = _orthonormal_case()
    pts = cumulative_insertion(small, large, x, torch.tensor([0, 2, 4]), n_points=4)
    assert [p["n"] for p in pts] == [0, 1, 2, 3]
    assert pts[0]["mse"] == pytest.approx(reconstruction_metrics(small, x)["mse"])
    assert pts[-1]["mse"] == pytest.approx(0.0, abs=1e-14)  # all novel features inserted: exact
    assert all(b["mse"] < a["mse"] for a, b in zip(pts, pts[1:]))


@pytest.mark.parametrize("method", ["joint", "single"])
def test_frankenstein_takes_only_helpful_novel_latents(method):
    small, large, x = _orthonormal_case()
    sae, sources, stages = frankenstein([small, large], x, method=method, progress=False)
    assert sae.cfg.d_sae == 8 and sorted(i for j, i in sources if j == 1) == [0, 2, 4]
    assert reconstruction_metrics(sae, x)["mse"] == pytest.approx(0.0, abs=1e-14)
    assert stages[0]["n_novel"] == 3 and stages[0]["n_inserted"] == 3


def _duplicated_feature_case():
    """A small SAE with 5 of 8 orthonormal features; the large SAE holds feature 5 TWICE (two identical latents),
    feature 6, and copies of the small SAE's.  Each copy of feature 5 lowers the MSE alone; together they overshoot
    it (2 x its contribution) and undo the gain: single effects are not additive."""
    g = torch.Generator().manual_seed(11)
    feats = torch.linalg.qr(torch.randn(D_IN, D_IN, generator=g, dtype=F64)).Q.T[:8]
    codes = torch.rand(400, 8, generator=g, dtype=F64) * (torch.rand(400, 8, generator=g, dtype=F64) < 0.3)
    b = torch.randn(D_IN, generator=g, dtype=F64)
    tiny = torch.full((5,), -1e-9, dtype=F64)
    small = make_sae(StandardSAE, feats[:5], b, b_enc=tiny)
    large = make_sae(StandardSAE, feats[[5, 5, 6, 0, 1, 2, 3, 4]], b, b_enc=torch.full((8,), -1e-9, dtype=F64))
    return small, large, b + codes[:, :7] @ feats[:7]


def test_joint_frankenstein_does_not_add_up_single_effects():
    small, large, x = _duplicated_feature_case()
    d = insertion_deltas(small, large, x).delta_mse
    assert d[0] < 0 and d[1] < 0 and d[0] == pytest.approx(d[1])  # each copy helps alone
    joint, src_j, st_j = frankenstein([small, large], x, method="joint", progress=False)
    single, src_s, st_s = frankenstein([small, large], x, method="single", progress=False)
    assert sorted(i for j, i in src_s if j == 1) == [0, 1, 2]  # single effects take both copies
    took = sorted(i for j, i in src_j if j == 1)
    assert len(took) == 2 and 2 in took and took[0] in (0, 1)  # joint takes one copy and feature 6
    mse_j, mse_s = reconstruction_metrics(joint, x)["mse"], reconstruction_metrics(single, x)["mse"]
    assert mse_j == pytest.approx(0.0, abs=1e-14) and mse_s > 1e-3
    # the joint stage's bookkeeping is exact, and the single sum over-promises
    assert st_j[0]["joint"] == pytest.approx(mse_j - reconstruction_metrics(small, x)["mse"], abs=1e-12)
    assert st_s[0]["sum_single"] < mse_s - reconstruction_metrics(small, x)["mse"]


def test_greedy_insertion_matches_building_the_sae():
    from metasae_utils.stitching import greedy_insertion
    small, large = make_pair(seed=3)
    x = make_acts(seed=4)
    cls = classify_latents(small, large)
    got = greedy_insertion(small, large, x, cls.novel, progress=False)
    assert (got["delta_mse"] < 0).all()
    built = insert_latents(small, large, got["chosen"]) if len(got["chosen"]) else small
    assert reconstruction_metrics(built, x)["mse"] == pytest.approx(got["mse_end"], rel=1e-9)
    # no remaining candidate lowers the MSE of the result
    rest = [int(i) for i in cls.novel if int(i) not in set(got["chosen"].tolist())]
    if rest:
        assert (insertion_deltas(built, large, x, torch.tensor(rest)).delta_mse >= -1e-15).all()


def test_frontier_at():
    from metasae_utils.stitching import frontier_at
    pts = [{"l0": 10, "mse": 4.0}, {"l0": 40, "mse": 1.0}, {"l0": 20, "mse": 5.0}]  # (20, 5) is dominated
    assert frontier_at(pts, 20)["mse"] == pytest.approx(4.0 + 0.5 * (1.0 - 4.0))  # halfway in log L0
    assert frontier_at(pts, 40) == {"mse": 1.0, "extrapolated": False}
    assert frontier_at(pts, 80) == {"mse": 1.0, "extrapolated": True}
    assert math.isnan(frontier_at(pts, 5)["mse"])


def test_quadrant_shares():
    from metasae_utils.stitching import quadrant_shares
    cos = torch.tensor([0.1, 0.2, 0.3, 0.9, 0.95, 0.8, 0.5])
    dm = torch.tensor([-1.0, -2.0, 1.0, 2.0, 3.0, -1.0, 0.0])  # the last never fires
    q = quadrant_shares(cos, dm)
    assert q["n"] == 6 and q["n_silent"] == 1
    assert q["novel, lowers"] == pytest.approx(2 / 6) and q["reconstruction, raises"] == pytest.approx(2 / 6)
    assert q["agreement"] == pytest.approx(4 / 6)
    assert q["chance"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert q["auc"] == pytest.approx(8 / 9)  # raisers {0.3, 0.9, 0.95} vs lowerers {0.1, 0.2, 0.8}
    perfect = quadrant_shares(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([-1.0, -1.0, 1.0]))
    assert perfect["agreement"] == 1.0 and perfect["auc"] == 1.0 and 0.2 <= perfect["best_threshold"] < 0.9
    with pytest.raises(ValueError, match="same shape"):
        quadrant_shares(cos, dm[:3])


def test_monotonicity():
    down = [{"mse": v} for v in (5, 4, 3, 2, 1)]
    bumpy = [{"mse": v} for v in (5, 6, 3, 4, 1)]
    assert monotonicity(down) == {"fraction_of_steps_lowering_mse": 1.0, "spearman_step_vs_mse": pytest.approx(-1.0)}
    assert monotonicity(bumpy)["fraction_of_steps_lowering_mse"] == 0.5


def test_self_duplicate_control_on_hand_built_saes():
    from metasae_utils.stitching import self_duplicate_control
    _, exact, x = _orthonormal_case()  # reconstructs x exactly: a copy only adds error
    assert reconstruction_metrics(exact, x)["mse"] == pytest.approx(0.0, abs=1e-14)
    assert self_duplicate_control(exact, x) == 0.0
    # the same decoder with an encoder that halves every code: it under-reconstructs along each latent's own
    # direction, so every firing latent's copy lowers the MSE
    half = make_sae(StandardSAE, exact.W_dec.detach(), exact.b_dec.detach(), W_enc=0.5 * exact.W_enc.detach(),
                    b_enc=exact.b_enc.detach())
    assert self_duplicate_control(half, x) == 1.0
    # a latent that never fires is dead: left out by default, counted as not lowering with dead_rate=None
    dead_enc = 0.5 * exact.W_enc.detach()
    dead_b = exact.b_enc.detach().clone()
    dead_b[0] = -1e6
    with_dead = make_sae(StandardSAE, exact.W_dec.detach(), exact.b_dec.detach(), W_enc=dead_enc, b_enc=dead_b)
    assert self_duplicate_control(with_dead, x) == 1.0
    assert self_duplicate_control(with_dead, x, dead_rate=None) == 7 / 8


# ---------------------------------------------------------------------------------------------------
# live latents only, the seed twin behind every number, the swap walk with removals last
# ---------------------------------------------------------------------------------------------------


def _with_dead(sae, ids):
    """A copy of the standard ``sae`` whose latents ``ids`` never fire (encoder bias -1e6)."""
    b = sae.b_enc.detach().clone()
    b[ids] = -1e6
    return make_sae(StandardSAE, sae.W_dec.detach(), sae.b_dec.detach(), W_enc=sae.W_enc.detach(), b_enc=b)


def test_classify_latents_sets_dead_latents_apart():
    small, large, x = _orthonormal_case()  # large latents 0, 2, 4 are novel; 1, 3, 5, 6, 7 reconstruction
    large = _with_dead(large, [0, 5])
    before = classify_latents(small, large)  # without activations every latent counts as live
    assert before.novel.tolist() == [0, 2, 4] and before.dead.numel() == 0 and before.novel_fraction == 3 / 8
    live = classify_latents(small, large, activations=x)
    assert live.dead.tolist() == [0, 5] and live.novel.tolist() == [2, 4]
    assert live.reconstruction.tolist() == [1, 3, 6, 7] and live.n_live == 6 and live.novel_fraction == 2 / 6
    from metasae_utils.evaluate import firing_rates
    rates = firing_rates(large, x)
    assert rates[0] == 0 and rates[5] == 0 and (rates[[1, 2, 3, 4, 6, 7]] > 0).all()
    same = classify_latents(small, large, fire_rate=rates)
    assert same.novel.tolist() == live.novel.tolist() and same.dead.tolist() == live.dead.tolist()
    # a latent firing on exactly dead_rate of the rows is dead; one row more and it is live
    assert classify_latents(small, large, fire_rate=torch.full((8,), 0.25), dead_rate=0.25).n_live == 0
    alive = torch.tensor([False, True, True, True, True, False, True, True])
    torch.testing.assert_close(novel_fraction(small, large, [0.7], live=alive), torch.tensor([2 / 6], dtype=F64))
    with pytest.raises(ValueError, match="fire_rate"):
        classify_latents(small, large, fire_rate=torch.ones(3))


def test_pair_numbers_counts_live_latents_and_measures_the_twin_the_same_way():
    from metasae_utils.stitching import TWIN_KEYS, pair_numbers, side_numbers
    small, large, x = _orthonormal_case()
    large = _with_dead(large, [0])
    twin = make_sae(StandardSAE, large.W_dec.detach()[[3, 1, 2, 0, 4, 5, 6, 7]], large.b_dec.detach(),
                    b_enc=torch.full((8,), -1e-9, dtype=F64))  # the same directions, reordered: nothing is novel
    alone = pair_numbers(small, large, x, paths=False)
    assert alone["twin"] is None and all(alone[f"twin_{k}"] is None for k in TWIN_KEYS)
    assert alone["dead_large"] == 1 and alone["dead_small"] == 0 and alone["n_live"] == 7
    assert alone["novel_fraction"] == 2 / 7 and alone["novel_lowers"] == 1.0
    out = pair_numbers(small, large, x, twin=twin, paths=False)
    direct = side_numbers(twin, large, x, paths=False)
    assert out["twin"].keys() == direct.keys()
    assert all(out["twin"][k] == direct[k] or (math.isnan(out["twin"][k]) and math.isnan(direct[k])) for k in direct)
    assert out["twin_novel_fraction"] == 0.0 and out["twin_n_novel"] == 0 and out["twin_dead_large"] == 1
    assert math.isnan(out["twin_novel_lowers"]) and out["twin_recon_raises"] == 1.0
    assert out["novel_fraction"] == alone["novel_fraction"]  # the twin changes nothing on the main side


def test_pair_numbers_with_paths_carries_the_twin_walk(acts):
    from metasae_utils.stitching import pair_numbers
    small, large = make_pair()
    _, twin = make_pair(seed=3)
    out = pair_numbers(small, large, acts, twin=twin)
    for key in ("mono", "mono_random", "overshoot", "path", "walk", "segments"):
        assert key in out and key in out["twin"]
    assert out["twin_swap_lowers"] == out["twin"]["segments"]["swap_lowers"]
    assert out["twin_spearman"] == out["twin"]["mono"]["spearman_step_vs_mse"]


@pytest.mark.parametrize("b_dec_step", ["auto", "first", "last"])
def test_swap_walk_keeps_removals_for_the_end(acts, b_dec_step):
    from metasae_utils.stitching import walk_segments
    small, large = make_pair()
    groups = swap_groups(small, large)
    assert any(g.kind == "removed" for g in groups) and any(g.kind != "removed" for g in groups)
    mixed = interpolate(small, large, acts, order="greedy", b_dec_step=b_dec_step, progress=False)
    walk = interpolate(small, large, acts, order="greedy", b_dec_step=b_dec_step, removals="last", progress=False)
    assert sorted(p["group"] for p in walk[1:]) == sorted(p["group"] for p in mixed[1:])  # every group once
    kinds = [p["kind"] for p in walk[1:]]
    first = kinds.index("removed")
    assert set(kinds[first:]) <= ({"removed", "b_dec"} if b_dec_step == "last" else {"removed"})
    assert walk[-1]["mse"] == pytest.approx(mixed[-1]["mse"])  # both end at the large SAE
    seg = walk_segments(walk)
    assert seg["removals_last"] and seg["removal"]["steps"] == kinds.count("removed")
    assert seg["swap"]["steps"] + seg["removal"]["steps"] == len(walk) - 1
    rand = interpolate(small, large, acts, order="random", removals="last", progress=False)
    assert walk_segments(rand)["removals_last"]
    with pytest.raises(ValueError, match="removals"):
        interpolate(small, large, acts, removals="first", progress=False)


def test_walk_segments_on_a_hand_made_walk():
    from metasae_utils.stitching import walk_segments
    walk = [{"step": 0, "kind": "start", "delta_mse": 0.0, "mse": 5.0},
            {"step": 1, "kind": "matched", "delta_mse": -1.0, "mse": 4.0},
            {"step": 2, "kind": "novel", "delta_mse": 0.5, "mse": 4.5},
            {"step": 3, "kind": "b_dec", "delta_mse": -0.5, "mse": 4.0},
            {"step": 4, "kind": "matched", "delta_mse": -1.0, "mse": 3.0},
            {"step": 5, "kind": "removed", "delta_mse": 0.2, "mse": 3.2}]
    seg = walk_segments(walk)
    assert seg["swap_lowers"] == 0.75 and seg["removal"] == {"steps": 1, "lowering": 0.0, "delta_mse": 0.2}
    assert seg["removal_first_step"] == 5 and seg["removals_last"]
    mixed = walk[:2] + [walk[5] | {"step": 2}] + [walk[2] | {"step": 3}]
    assert walk_segments(mixed)["removals_last"] is False and walk_segments(mixed)["removal_first_step"] is None
