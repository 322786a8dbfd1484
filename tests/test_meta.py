"""Tests for metasae_utils.meta on planted structure: decoder rows built as sparse sums of known unit
atoms, so a working meta-SAE must find the atoms and decompose each row into the atoms it was made of."""

from __future__ import annotations

import math

import pytest
import torch

from metasae_utils.evaluate import reconstruction_metrics
from metasae_utils.meta import (
    Decomposition,
    decompose,
    members,
    meta_metrics,
    prepare_rows,
    train_meta_sae,
)
from metasae_utils.training import load_sae, save_sae

D, N_ATOMS, N_LATENTS, K = 64, 96, 3000, 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    """``atoms`` (N_ATOMS, D) unit; ``decoder`` (N_LATENTS, D): each row a positive combination of K
    distinct atoms (``parts`` (N_LATENTS, K)), then rescaled by an arbitrary per-row norm."""
    g = torch.Generator().manual_seed(0)
    atoms = torch.randn(N_ATOMS, D, generator=g)
    atoms /= atoms.norm(dim=1, keepdim=True)
    parts = torch.rand(N_LATENTS, N_ATOMS, generator=g).topk(K, dim=1).indices
    coef = torch.rand(N_LATENTS, K, generator=g) + 0.5
    decoder = (coef.unsqueeze(-1) * atoms[parts]).sum(1) * (torch.rand(N_LATENTS, 1, generator=g) * 3 + 0.1)
    return atoms, parts, decoder


@pytest.fixture(scope="module")
def meta_sae(toy):
    _, _, decoder = toy
    return train_meta_sae(decoder, N_ATOMS, K, steps=600, batch_size=512, lr=3e-3, seed=0, progress=False)


@pytest.fixture(scope="module")
def decomposition(meta_sae, toy):
    return decompose(meta_sae, toy[2])


def atom_of_meta(meta_sae, atoms):
    """(d_meta,) best-matching atom of every meta-latent, and (d_meta,) its cosine."""
    cos, atom = (meta_sae.W_dec.detach() @ atoms.T).max(dim=1)
    return atom, cos


def test_meta_sae_is_a_unit_norm_jumprelu_sae_with_frozen_zero_bias(meta_sae):
    assert type(meta_sae).__name__ == "JumpReLUSAE" and not meta_sae.training
    assert (meta_sae.cfg.d_in, meta_sae.cfg.d_sae) == (D, N_ATOMS)
    assert torch.equal(meta_sae.b_dec.detach(), torch.zeros(D))
    torch.testing.assert_close(meta_sae.W_dec.norm(dim=1), torch.ones(N_ATOMS))
    assert meta_sae.cfg.metadata.meta == {"normalize_rows": True, "n_latents": N_LATENTS, "zero_b_dec": True}


def test_meta_sae_recovers_the_planted_atoms(meta_sae, toy):
    atoms = toy[0]
    best = (atoms @ meta_sae.W_dec.detach().T).max(dim=1).values  # per atom, best meta-decoder row
    assert (best > 0.8).float().mean() > 0.85, best


def test_decomposition_reconstructs_rows_with_the_planted_atoms(meta_sae, toy, decomposition):
    atoms, parts, decoder = toy
    dec = decomposition
    assert isinstance(dec, Decomposition) and len(dec) == N_LATENTS and dec.d_meta == N_ATOMS
    m = dec.indices.shape[1]
    assert dec.values.shape == (N_LATENTS, m) and dec.reconstruction.shape == (N_LATENTS, D)
    torch.testing.assert_close(dec.rows, decoder / decoder.norm(dim=1, keepdim=True))
    # padding: -1 <-> 0, active values positive and sorted in decreasing order
    assert torch.equal(dec.indices < 0, dec.values == 0) and (dec.values >= 0).all()
    assert (dec.values[:, :-1] >= dec.values[:, 1:]).all()
    assert torch.equal(dec.n_active, (dec.indices >= 0).sum(1))
    # the codes are the inference (JumpReLU, fixed-threshold) encoder's, the reconstruction its decode
    with torch.no_grad():
        f = meta_sae.encode(dec.rows)
        assert torch.equal(dec.to_dense(), f)
        torch.testing.assert_close(dec.reconstruction, meta_sae.decode(f))
    # most rows are explained by the atoms they were built from
    meta_atom, meta_cos = atom_of_meta(meta_sae, atoms)
    hits = []
    for i in range(0, N_LATENTS, 10):
        used = {int(meta_atom[j]) for j, _ in dec.code(i) if meta_cos[j] > 0.8}
        hits.append(len(used & set(parts[i].tolist())) / K)
    assert sum(hits) / len(hits) > 0.75


def test_meta_metrics_are_consistent(meta_sae, toy, decomposition):
    decoder = toy[2]
    met = meta_metrics(meta_sae, decoder, decomposition=decomposition)
    recomputed = meta_metrics(meta_sae, decoder)
    assert all(recomputed[key] == met[key] for key in ("fvu", "mean_meta_latents_per_latent", "dead_fraction"))
    shared_by = met["shared_by"]
    assert shared_by.shape == (N_ATOMS,)
    assert shared_by.sum().item() == decomposition.n_active.sum().item()
    assert met["mean_meta_latents_per_latent"] == pytest.approx(shared_by.sum().item() / N_LATENTS)
    assert met["dead_fraction"] == pytest.approx((shared_by == 0).double().mean().item())
    assert met["max_shared_fraction"] == pytest.approx(shared_by.max().item() / N_LATENTS)
    assert shared_by[met["most_shared_meta_latent"]] == shared_by.max()
    # same numbers as the book's generic evaluation on the normalised rows
    ref = reconstruction_metrics(meta_sae, prepare_rows(decoder))
    assert met["fvu"] == pytest.approx(ref["fvu"], rel=1e-4, abs=1e-6)
    assert met["mean_meta_latents_per_latent"] == pytest.approx(ref["l0"])
    assert torch.equal(shared_by, ref["fire_counts"])
    # and the planted structure is explained: ~K meta-latents per row, most variance explained
    assert met["variance_explained"] > 0.9, met["variance_explained"]
    assert 2.0 < met["mean_meta_latents_per_latent"] < 4.5
    assert met["mean_cosine"] > 0.9
    # every atom is shared by ~ N_LATENTS * K / N_ATOMS rows, so no meta-latent should be used by most rows
    assert met["max_shared_fraction"] < 0.2


def test_members_are_the_latents_built_from_the_atom(meta_sae, toy, decomposition):
    atoms, parts, _ = toy
    shared_by = meta_metrics(meta_sae, toy[2], decomposition=decomposition)["shared_by"]
    meta_atom, meta_cos = atom_of_meta(meta_sae, atoms)
    total = 0
    for meta_id in range(N_ATOMS):
        mem = members(decomposition, meta_id)
        assert len(mem.latents) == shared_by[meta_id]
        assert (mem.values[:-1] >= mem.values[1:]).all() and (mem.values > 0).all()
        assert all(meta_id in dict(decomposition.code(int(i))) for i in mem.latents[:5])
        total += len(mem.latents)
    assert total == decomposition.n_active.sum()
    good = int(torch.nonzero(meta_cos > 0.9)[0])
    mem = members(decomposition, good)
    built_from = (parts[mem.latents] == meta_atom[good]).any(1).float().mean()
    assert built_from > 0.8, built_from


def test_row_norms_do_not_matter(meta_sae, toy, decomposition):
    rescaled = toy[2] * torch.linspace(0.01, 100, N_LATENTS).unsqueeze(1)
    again = decompose(meta_sae, rescaled, batch_size=700)  # batches of another size, other padding width
    m = decomposition.indices.shape[1]
    assert torch.equal(again.indices[:, :m], decomposition.indices)
    torch.testing.assert_close(again.values[:, :m], decomposition.values)


def test_meta_sae_save_load_keeps_its_metadata(meta_sae, toy, tmp_path):
    loaded = load_sae(save_sae(meta_sae, tmp_path / "meta"))
    assert loaded.cfg.metadata.meta == meta_sae.cfg.metadata.meta
    a, b = decompose(loaded, toy[2][:100]), decompose(meta_sae, toy[2][:100])
    assert torch.equal(a.indices, b.indices) and torch.equal(a.values, b.values)


def test_unfrozen_bias_is_learned(toy):
    sae = train_meta_sae(toy[2][:500], 16, 2, steps=5, batch_size=64, lr=1e-2, seed=0, progress=False,
                         zero_b_dec=False)
    assert sae.b_dec.detach().abs().sum() > 0


@pytest.mark.parametrize("call, name", [
    (lambda d: train_meta_sae(torch.cat([d, torch.zeros(1, D)]), 8, 2, steps=1, batch_size=8, lr=1e-3,
                              seed=0), "decoder"),
    (lambda d: train_meta_sae(d[:, 0], 8, 2, steps=1, batch_size=8, lr=1e-3, seed=0), "decoder"),
    (lambda d: train_meta_sae(d, 0, 2, steps=1, batch_size=8, lr=1e-3, seed=0), "d_meta"),
    (lambda d: train_meta_sae(d, 8, 0, steps=1, batch_size=8, lr=1e-3, seed=0), "k"),
    (lambda d: train_meta_sae(d, 8, 2, steps=0, batch_size=8, lr=1e-3, seed=0), "steps"),
    (lambda d: train_meta_sae(d, 8, 2, steps=1, batch_size=8, lr=1e-3, seed=0, architecture="standard"),
     "architecture"),
])
def test_bad_training_input_raises(toy, call, name):
    with pytest.raises(ValueError, match=name):
        call(toy[2])


def test_bad_decompose_input_raises(meta_sae, decomposition, toy):
    with pytest.raises(ValueError, match="decoder"):
        decompose(meta_sae, torch.randn(5, D + 1))
    with pytest.raises(ValueError, match="meta_sae"):
        decompose(torch.nn.Linear(D, 4), toy[2])
    with pytest.raises(ValueError, match="meta_id"):
        members(decomposition, N_ATOMS)
    with pytest.raises(ValueError, match="decomposition"):
        meta_metrics(meta_sae, toy[2][:10], decomposition=decomposition)


# ---------------------------------------------------------------------------------------------------
# chapter-level helpers
# ---------------------------------------------------------------------------------------------------

def _fake_sae(W_dec):
    from sae_lens import StandardSAE, StandardSAEConfig
    sae = StandardSAE(StandardSAEConfig(d_in=W_dec.shape[1], d_sae=W_dec.shape[0]))
    with torch.no_grad():
        sae.W_dec.copy_(W_dec)
    return sae


def test_similarity_to_saes_beats_random_only_when_atoms_are_there(meta_sae, toy):
    from metasae_utils.meta import similarity_to_saes
    atoms = toy[0]
    noise = torch.randn(N_ATOMS, D, generator=torch.Generator().manual_seed(5))
    rows = similarity_to_saes(meta_sae, {"atoms": _fake_sae(atoms), "noise": _fake_sae(noise)})
    by = {r["sae"]: r for r in rows}
    assert by["atoms"]["frac_close"] > 0.8 and by["atoms"]["random_frac_close"] < 0.05
    assert by["noise"]["frac_close"] < 0.05
    assert by["atoms"]["max_cos"].shape == (meta_sae.cfg.d_sae,)


def test_usage_and_split():
    from metasae_utils.meta import split_usage, usage_by_group
    idx = torch.tensor([[0, -1, -1], [0, 1, -1], [0, 1, 2], [3, 4, -1], [5, -1, -1]])
    dec = Decomposition(indices=idx, values=(idx >= 0).float(), n_active=(idx >= 0).sum(-1),
                        reconstruction=torch.zeros(5, 2), rows=torch.zeros(5, 2), d_meta=6)
    usage = usage_by_group(dec, torch.tensor([2, 2, 3, 3, 3]))
    assert usage == {2: 1.5, 3: pytest.approx(2.0)}
    # small SAE = rows 0-1 (width 2), large = rows 2-4; small latent 0 splits into large latents 0 and 1
    split = split_usage(dec, {2: 0, 3: 2}, 2, 3, torch.tensor([[0, 0], [0, 1], [1, 2]]))
    assert split["n_splits"] == 1 and split["mean_gain"] == pytest.approx(1.5)


def test_cached_meta_sae_is_reused(tmp_cache, toy):
    from metasae_utils import artifacts
    from metasae_utils.meta import cached_meta_sae
    dec = toy[2][:400]
    a = cached_meta_sae({"base": "toy"}, dec, 16, 2, steps=20, batch_size=64, lr=1e-3, seed=0, progress=False)
    b = cached_meta_sae({"base": "toy"}, dec, 16, 2, steps=20, batch_size=64, lr=1e-3, seed=0, progress=False)
    assert torch.equal(a.W_dec, b.W_dec)
    assert [r["event"] for r in artifacts.read_log(tmp_cache) if r["step"] == "meta_saes"] == ["computed", "reused"]


# ---------------------------------------------------------------------------------------------------
# the graph comparison (meta-latent edges vs shared-neighbour edges), dead latents, the named-latent rule
# ---------------------------------------------------------------------------------------------------

def _hand_decomposition(indices):
    import numpy as np  # noqa: F401
    from metasae_utils.meta import Decomposition
    idx = torch.tensor(indices)
    n = idx.shape[0]
    return Decomposition(indices=idx, values=(idx >= 0).float(), n_active=(idx >= 0).sum(1), reconstruction=None,
                         rows=None, d_meta=int(idx.max()) + 1)


def test_edge_overlap_on_a_hand_made_graph():
    import numpy as np
    from metasae_utils.meta import edge_overlap, meta_edges, neighbour_edges
    # 5 latents; meta-latent 0 used by {0, 1, 2}, meta-latent 1 by {3, 4}, meta-latent 2 by {2, 3}
    dec = _hand_decomposition([[0, -1], [0, -1], [0, 2], [1, 2], [1, -1]])
    m = meta_edges(dec)
    n = 5
    assert sorted((int(e // n), int(e % n)) for e in m) == [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4)]
    # nearest smaller latents: {0, 1} -> a, {2, 3, 4} -> b
    nn = neighbour_edges(torch.tensor([7, 7, 9, 9, 9]))
    assert sorted((int(e // n), int(e % n)) for e in nn) == [(0, 1), (2, 3), (2, 4), (3, 4)]
    ov = edge_overlap(m, nn, n, seed=0)
    assert ov["shared"] == 3 and ov["meta_in_nn"] == pytest.approx(3 / 5) and ov["nn_in_meta"] == pytest.approx(3 / 4)
    assert ov["jaccard"] == pytest.approx(3 / 6)
    # restricting to some latents drops their edges
    keep = torch.tensor([True, True, True, False, True])
    assert sorted((int(e // n), int(e % n)) for e in meta_edges(dec, keep)) == [(0, 1), (0, 2), (1, 2)]
    assert np.array_equal(neighbour_edges(torch.tensor([7, 7, 9, 9, 9]), keep), np.array([0 * n + 1, 2 * n + 4]))


def test_degree_preserving_random_graph_keeps_degrees_and_differs():
    import numpy as np
    from metasae_utils.meta import degree_preserving_random
    from metasae_utils.meta.graph import degrees
    rng = np.random.default_rng(0)
    n = 200
    i, j = rng.integers(0, n, 3000), rng.integers(0, n, 3000)
    ok = i != j
    edges = np.unique(np.minimum(i[ok], j[ok]).astype(np.int64) * n + np.maximum(i[ok], j[ok]))
    rand = degree_preserving_random(edges, n, seed=1)
    assert (rand // n < rand % n).all() and np.unique(rand).size == rand.size  # simple graph, i < j
    d0, d1 = degrees(edges, n), degrees(rand, n)
    assert np.abs(d0 - d1).sum() <= 0.01 * d0.sum()  # degrees kept (up to a few dropped bad pairs)
    assert np.intersect1d(edges, rand).size < 0.3 * edges.size  # and the edges are not the same ones


def test_graph_refuses_a_meta_latent_shared_by_everything(monkeypatch):
    from metasae_utils.meta import graph, meta_edges
    monkeypatch.setattr(graph, "MAX_PAIRS", 5)
    with pytest.raises(ValueError, match="candidate edges"):
        meta_edges(_hand_decomposition([[0], [0], [0], [0], [0]]))


def test_nearest_smaller_and_alive_latents():
    from metasae_utils.meta import alive_latents, nearest_smaller
    assert nearest_smaller([768, 1536, 3072, 6144, 49152], 49152) == 3072
    assert nearest_smaller([576, 1152, 2304, 4608], 4608) == 576
    with pytest.raises(ValueError, match="narrower"):
        nearest_smaller([4608], 4608)
    alive = alive_latents(torch.tensor([0, 1, 5, 100]), n_tokens=100_000, min_rate=1e-5)
    assert alive.tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="n_tokens"):
        alive_latents(torch.tensor([1]), 0)


def test_live_decoder_drops_dead_rows():
    from sae_lens.saes import StandardSAE, StandardSAEConfig
    from metasae_utils.meta import live_decoder
    sae = StandardSAE(StandardSAEConfig(d_in=4, d_sae=3, dtype="float64"))
    sae.load_state_dict({"W_enc": torch.eye(4, 3, dtype=torch.float64), "b_enc": torch.tensor([0.0, -1e6, 0.0]),
                         "W_dec": torch.eye(3, 4, dtype=torch.float64), "b_dec": torch.zeros(4, dtype=torch.float64)})
    x = torch.rand(50, 4, dtype=torch.float64) + 0.1
    rows, ids = live_decoder(sae, x)
    assert ids.tolist() == [0, 2] and torch.equal(rows, sae.W_dec.detach()[[0, 2]])
    assert live_decoder(sae, x, dead_rate=1.0)[1].numel() == 0  # nothing fires on more than every row
    from metasae_utils.evaluate import dead_latents
    assert dead_latents(sae, x).tolist() == [1] and dead_latents(sae, x, dead_rate=1.0).tolist() == [0, 1, 2]


class _Tok:
    """A tokenizer over a fixed vocabulary of words: a word is one token if listed, else one token per letter."""
    vocab = [" the", " The", " Lincoln", " We", " we", " said", " Paris", "x"]

    def __call__(self, text, add_special_tokens=False):
        if text in self.vocab:
            return {"input_ids": [self.vocab.index(text)]}
        return {"input_ids": list(range(len(text)))}

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)


def test_named_latent_rule():
    from metasae_utils.meta import name_concentration, pick_named_latent
    from metasae_utils.meta.naming import is_proper_name
    tok = _Tok()
    assert is_proper_name(tok, " Lincoln") and not is_proper_name(tok, " The") and not is_proper_name(tok, " said")
    top = torch.tensor([[1, 1, 1, 3], [2, 2, 2, 6], [2, 6, 6, 5]])
    vals = torch.tensor([[5.0, 4, 3, 2], [3.0, 2, 1, 0], [9.0, 8, 7, 6]])
    stats = name_concentration(tok, top, vals)
    assert stats[0]["name"] is None  # 'The' and 'We' are common words
    assert stats[1] == {"name": "Lincoln", "count": 3, "share": 0.75, "mean_act": 2.0}
    assert stats[2]["name"] == "Paris" and stats[2]["count"] == 2
    assert pick_named_latent(torch.tensor([10, 11, 12]), stats)["latent"] == 11
    assert pick_named_latent(torch.tensor([10]), stats[:1]) is None


# ---------------------------------------------------------------------------------------------------
# meta-SAE seeds: per-seed numbers, their mean, std and standard error
# ---------------------------------------------------------------------------------------------------

def test_spread_and_difference_by_hand():
    from metasae_utils.meta import difference, meta_seeds, spread
    s = spread([1.0, 2.0, 3.0])
    assert (s["n"], s["mean"], s["std"]) == (3, 2.0, 1.0) and s["se"] == pytest.approx(3 ** -0.5)
    one = spread([0.7])
    assert one["mean"] == 0.7 and math.isnan(one["std"]) and math.isnan(one["se"])
    d = difference(spread([0.40, 0.42, 0.44]), spread([0.55, 0.56, 0.60]))
    assert d["diff"] == pytest.approx(0.42 - 0.57)
    assert d["se_welch"] == pytest.approx(math.sqrt(0.02 ** 2 / 3 + 0.0264575 ** 2 / 3), rel=1e-4)
    assert d["se_paired"] == pytest.approx(spread([-0.15, -0.14, -0.16])["se"])
    assert meta_seeds(0) == [0, 1, 2] and meta_seeds(5, 2) == [5, 6]
    with pytest.raises(ValueError):
        meta_seeds(-1)


def test_over_seeds_differs_across_seeds_and_repeats_per_seed(toy):
    from metasae_utils.meta import meta_seeds, over_seeds, train_meta_sae
    dec = toy[2][:300]
    make = lambda s: train_meta_sae(dec, 16, 2, steps=15, batch_size=64, lr=1e-3, seed=s, progress=False)
    got = over_seeds(make, dec, meta_seeds(0))
    cos = got["mean_cosine"]
    assert got["seeds"] == [0, 1, 2] and cos["n"] == 3 and len(got["per_seed"]) == 3
    assert len(set(cos["values"])) == 3  # each seed trains another meta-SAE
    assert cos["std"] > 0 and cos["se"] == pytest.approx(cos["std"] / math.sqrt(3))
    assert cos["mean"] == pytest.approx(sum(cos["values"]) / 3)
    again = over_seeds(make, dec, [1])
    assert again["mean_cosine"]["values"] == [cos["values"][1]]  # the same seed, the same meta-SAE
    assert again["variance_explained"]["values"] == [got["variance_explained"]["values"][1]]
    with pytest.raises(ValueError):
        over_seeds(make, dec, [])
