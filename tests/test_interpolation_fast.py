"""The interpolation walk's fast bookkeeping (decoder Gram matrix, sparse cross terms) against direct recomputation.

Every point of a walk is checked against the stitched SAE it describes, built with :func:`stitch` and run forward
(``reconstruction_metrics``); the Gram path against the decoder-row path it replaces; the sparse cross term against
the dense one.
"""

from __future__ import annotations

import pytest
import torch
from sae_lens.saes import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig

from metasae_utils.evaluate import reconstruction_metrics
from metasae_utils.stitching import interpolate, stitch, swap_groups
from metasae_utils.stitching import interpolation as interp
from metasae_utils.stitching.tokenstats import _masked_dot_sum, _sparse_dot_sum
from test_stitching import _state_after  # the same walk bookkeeping as the stitching tests

D_IN, N_SMALL, N_LARGE, N_TOK = 16, 24, 48, 400


def random_sae(cls, cfg_cls, d_sae: int, seed: int, dtype: str, base=None):
    """A random SAE of ``d_sae`` latents; with ``base`` (rows), its first rows are noisy copies of them."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_sae, D_IN, generator=g, dtype=torch.float64)
    if base is not None:
        W[: base.shape[0]] = base + 0.3 * torch.randn(base.shape, generator=g, dtype=torch.float64)
    W = W / W.norm(dim=1, keepdim=True)
    sae = cls(cfg_cls(d_in=D_IN, d_sae=d_sae, dtype=dtype))
    state = {"W_dec": W, "W_enc": W.T + 0.1 * torch.randn(D_IN, d_sae, generator=g, dtype=torch.float64),
             "b_enc": -0.5 - 0.5 * torch.rand(d_sae, generator=g, dtype=torch.float64),
             "b_dec": 0.2 * torch.randn(D_IN, generator=g, dtype=torch.float64)}
    if cls is JumpReLUSAE:
        state["threshold"] = torch.full((d_sae,), 0.05, dtype=torch.float64)
    sae.load_state_dict({k: v.to(getattr(sae, k).dtype) for k, v in state.items()})
    return sae


def case(cls=StandardSAE, dtype="float64"):
    cfg_cls = StandardSAEConfig if cls is StandardSAE else JumpReLUSAEConfig
    small = random_sae(cls, cfg_cls, N_SMALL, 0, dtype)
    large = random_sae(cls, cfg_cls, N_LARGE, 1, dtype, base=small.W_dec.detach().double()[:16])
    g = torch.Generator().manual_seed(2)
    acts = 1.5 * torch.randn(N_TOK, D_IN, generator=g, dtype=torch.float64) + 0.3
    return small, large, acts.to(small.W_dec.dtype)


@pytest.mark.parametrize("cls, dtype, rel", [(StandardSAE, "float64", 1e-9), (JumpReLUSAE, "float64", 1e-9),
                                             (StandardSAE, "float32", 2e-5)])
@pytest.mark.parametrize("order, removals", [("greedy", "last"), ("greedy", "any"), ("random", "any")])
def test_every_step_equals_the_stitched_sae(cls, dtype, rel, order, removals):
    small, large, acts = case(cls, dtype)
    groups = swap_groups(small, large)
    assert {g.kind for g in groups} == {"matched", "novel", "removed"}  # every kind of step occurs
    path = interpolate(small, large, acts, order=order, removals=removals, seed=3, batch_size=64, progress=False)
    assert len(path) == len(groups) + 2
    for k in range(len(path)):
        s_ids, l_ids, bias = _state_after(path, groups, k, N_SMALL)
        ref = reconstruction_metrics(stitch(small, large, s_ids, l_ids, b_dec="large" if bias else "small"), acts)
        assert path[k]["mse"] == pytest.approx(ref["mse"], rel=rel), k
        assert path[k]["fvu"] == pytest.approx(ref["fvu"], rel=rel), k
        assert path[k]["l0"] == pytest.approx(ref["l0"], rel=1e-12), k


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gram_path_equals_decoder_row_path(monkeypatch, dtype):
    small, large, acts = case(StandardSAE, dtype)
    fast = interpolate(small, large, acts, order="greedy", removals="last", progress=False)
    monkeypatch.setattr(interp, "GRAM_BUDGET_BYTES", 0)  # no Gram matrix: decoder rows read per step
    rows = interpolate(small, large, acts, order="greedy", removals="last", progress=False)
    assert [p["group"] for p in fast] == [p["group"] for p in rows]
    for a, b in zip(fast, rows):
        assert a["mse"] == pytest.approx(b["mse"], rel=1e-6 if dtype == "float32" else 1e-12)
        assert a["l0"] == b["l0"]


def test_sparse_cross_term_equals_dense():
    g = torch.Generator().manual_seed(5)
    err = torch.randn(50, 8, generator=g, dtype=torch.float64)
    A = torch.rand(50, 30, generator=g) * (torch.rand(50, 30, generator=g) < 0.1)
    W = torch.randn(30, 8, generator=g)
    r, k = torch.nonzero(A, as_tuple=True)
    sparse = _sparse_dot_sum(err, r, k, A[r, k], W)
    dense = _masked_dot_sum(err, A, W, chunk=7)
    torch.testing.assert_close(sparse, dense, rtol=1e-12, atol=1e-12)
    assert (sparse[(A != 0).sum(0) == 0] == 0).all()


def test_insertion_deltas_many_equals_one_call_per_sae():
    from metasae_utils.stitching import insertion_deltas, insertion_deltas_many, self_duplicates, self_duplicates_of
    small, large, acts = case(StandardSAE, "float64")
    other = random_sae(StandardSAE, StandardSAEConfig, N_LARGE, 7, "float64")
    many = insertion_deltas_many(small, [large, other, small], acts, batch_size=64)
    for got, sae in zip(many, (large, other, small)):
        ref = insertion_deltas(small, sae, acts, batch_size=64)
        for key in ("latent_ids", "delta_mse", "delta_l0", "delta_fvu"):
            assert torch.equal(torch.as_tensor(got[key]), torch.as_tensor(ref[key])), key
        assert got.base == ref.base
    mine, ref = self_duplicates_of(many[-1]), self_duplicates(small, acts, batch_size=64)
    assert mine["share"] == ref["share"] and torch.equal(mine["dead"], ref["dead"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_interpolate_many_equals_separate_calls(dtype):
    from metasae_utils.stitching import insertion_deltas, interpolate_many
    small, large, acts = case(StandardSAE, dtype)
    other = random_sae(StandardSAE, StandardSAEConfig, N_LARGE, 7, dtype)
    runs = [{"order": "greedy"}, {"order": "random", "seed": 4}, {"order": "greedy", "removals": "last"}]
    paths, deltas = interpolate_many(small, large, acts, runs, insert=[large, other, small], batch_size=64)
    for run, path in zip(runs, paths):
        assert path == interpolate(small, large, acts, batch_size=64, progress=False, **run)
    for got, sae in zip(deltas, (large, other, small)):
        ref = insertion_deltas(small, sae, acts, batch_size=64)
        for key in ("latent_ids", "delta_mse", "delta_l0", "delta_fvu"):
            assert torch.equal(torch.as_tensor(got[key]), torch.as_tensor(ref[key])), key
        assert got.base == ref.base
    with pytest.raises(ValueError, match="removals"):
        interpolate_many(small, large, acts, [{"removals": "first"}])
