"""Tests for metasae_utils.training: every SAELens architecture trains, is deterministic, round-trips
through save/load, and a standard SAE actually learns planted sparse structure."""

from __future__ import annotations

import pytest
import torch

from metasae_utils.evaluate import reconstruction_metrics
from metasae_utils.training import ARCHITECTURES, load_sae, save_sae, shuffled_batches, train_sae

INFERENCE_CLASS = {"standard": "StandardSAE", "batchtopk": "JumpReLUSAE", "jumprelu": "JumpReLUSAE",
                   "matryoshka_batchtopk": "JumpReLUSAE", "matching_pursuit": "MatchingPursuitSAE"}
TINY = dict(n_steps=6, batch_size=64, lr=1e-3, seed=0, k=4, progress=False)


def planted(n: int, d: int = 32, n_dirs: int = 64, active: float = 3.0, seed: int = 0):
    """Rows = sparse non-negative combinations of ``n_dirs`` known unit directions, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_dirs, d, generator=g)
    dirs /= dirs.norm(dim=1, keepdim=True)
    mask = torch.rand(n, n_dirs, generator=g) < active / n_dirs
    coef = torch.rand(n, n_dirs, generator=g) * 2 + 0.5
    return (mask * coef) @ dirs + 0.5, dirs


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_data():
    return torch.randn(512, 16, generator=torch.Generator().manual_seed(1)) * 3 + 1


@pytest.fixture(scope="module")
def tiny_saes(small_data):
    return {arch: train_sae(small_data, arch, 32, **TINY) for arch in ARCHITECTURES}


def test_architecture_names_are_sae_lens_training_architectures():
    import sae_lens  # noqa: F401
    from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY

    assert set(ARCHITECTURES) <= set(SAE_TRAINING_CLASS_REGISTRY)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_trains_into_an_inference_sae(arch, tiny_saes, small_data):
    from sae_lens.saes.sae import TrainingSAE

    sae = tiny_saes[arch]
    assert type(sae).__name__ == INFERENCE_CLASS[arch]
    assert not isinstance(sae, TrainingSAE) and not sae.training
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (16, 32)
    assert sae.W_dec.shape == (32, 16) and sae.cfg.normalize_activations == "none"
    with torch.no_grad():
        f = sae.encode(small_data[:10])
        assert f.shape == (10, 32) and sae.decode(f).shape == (10, 16)
    assert torch.isfinite(f).all()
    assert sae.cfg.metadata.train["architecture"] == arch
    if arch != "matching_pursuit":  # decoder norms folded into the encoder
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))


@pytest.mark.parametrize("arch", ["standard", "batchtopk"])
def test_same_seed_gives_identical_weights(arch, small_data):
    state = torch.random.get_rng_state()
    a = train_sae(small_data, arch, 32, **TINY).state_dict()
    b = train_sae(small_data, arch, 32, **TINY).state_dict()
    c = train_sae(small_data, arch, 32, **{**TINY, "seed": 1}).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.equal(a["W_dec"], c["W_dec"])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_save_load_round_trip(arch, tiny_saes, small_data, tmp_path):
    sae = tiny_saes[arch]
    path = save_sae(sae, tmp_path / arch)
    loaded = load_sae(path)
    assert type(loaded) is type(sae) and not loaded.training
    assert loaded.state_dict().keys() == sae.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in sae.state_dict().items())
    with torch.no_grad():
        x = small_data[:50]
        assert torch.equal(loaded.encode(x), sae.encode(x))
        assert torch.equal(loaded(x), sae(x))
    assert loaded.cfg.metadata.train == sae.cfg.metadata.train


def test_standard_sae_learns_planted_directions():
    data, dirs = planted(8192)
    train, held_out = data[:6000], data[6000:]
    untrained = train_sae(train, "standard", 128, n_steps=1, batch_size=256, lr=3e-3, seed=0, progress=False)
    sae = train_sae(train, "standard", 128, n_steps=400, batch_size=256, lr=3e-3, seed=0, progress=False)
    before, after = reconstruction_metrics(untrained, held_out), reconstruction_metrics(sae, held_out)
    assert before["fvu"] > 0.5
    assert after["fvu"] < 0.2, after["fvu"]
    assert after["l0"] < 16  # sparse: the data has ~3 active directions per row
    cos = (dirs @ sae.W_dec.detach().T).max(dim=1).values  # unit-norm rows after folding
    assert (cos > 0.9).float().mean() > 0.8


def test_batchtopk_inference_threshold_keeps_l0_near_k():
    data, _ = planted(6000)
    sae = train_sae(data, "batchtopk", 128, n_steps=300, batch_size=256, lr=3e-3, seed=0, k=3, progress=False)
    m = reconstruction_metrics(sae, data)
    assert 2.0 < m["l0"] < 4.5, m["l0"]
    assert m["fvu"] < 0.3, m["fvu"]


def test_freeze_b_dec_keeps_the_bias(small_data):
    zero = train_sae(small_data, "standard", 32, **TINY, b_dec_init="zeros", freeze_b_dec=True)
    assert torch.equal(zero.b_dec.detach(), torch.zeros(16))
    mean = train_sae(small_data, "standard", 32, **TINY, freeze_b_dec=True)
    torch.testing.assert_close(mean.b_dec.detach(), small_data.mean(0))
    free = train_sae(small_data, "standard", 32, **TINY)
    assert not torch.allclose(free.b_dec.detach(), small_data.mean(0))


def test_progress_false_silences_the_trainer_bar(small_data, capsys):
    train_sae(small_data, "standard", 8, **TINY)
    assert "Training SAE" not in capsys.readouterr().err
    train_sae(small_data, "standard", 8, **{**TINY, "progress": True})
    assert "Training SAE" in capsys.readouterr().err


def test_shuffled_batches_cover_each_epoch_once():
    data = torch.arange(10.0).unsqueeze(1)
    it = shuffled_batches(data, 4, torch.Generator().manual_seed(0))
    batches = [next(it) for _ in range(5)]  # 20 rows = 2 epochs; the first epoch's tail opens batch 3
    assert all(b.shape == (4, 1) for b in batches)
    seen = torch.cat(batches).flatten()
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))


@pytest.mark.parametrize("kwargs, name", [
    ({"data": [[1.0, 2.0]]}, "data"),
    ({"data": torch.ones(5)}, "data"),
    ({"data": torch.ones(5, 3, dtype=torch.long)}, "data"),
    ({"data": torch.tensor([[1.0, float("nan")]])}, "data"),
    ({"architecture": "topk"}, "architecture"),
    ({"d_sae": 0}, "d_sae"),
    ({"n_steps": 0}, "n_steps"),
    ({"batch_size": -1}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"seed": -1}, "seed"),
    ({"architecture": "batchtopk", "k": None}, "k"),
    ({"architecture": "batchtopk", "k": 100}, "k"),
    ({"architecture": "matching_pursuit", "k": 2.5}, "k"),
    ({"l1_coefficient": -1.0}, "l1_coefficient"),
    ({"b_dec_init": "median"}, "b_dec_init"),
    ({"device": "gpu0"}, "device"),
    ({"lp_nrom": 2.0}, "lp_nrom"),
    ({"architecture": "matching_pursuit", "normalize_decoder_rows": True}, "normalize_decoder_rows"),
])
def test_bad_input_raises_value_error_naming_the_argument(kwargs, name):
    args = dict(data=torch.randn(20, 4), architecture="standard", d_sae=8, n_steps=2, batch_size=4, lr=1e-3,
                seed=0, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        train_sae(args.pop("data"), args.pop("architecture"), args.pop("d_sae"), **args)


def test_save_and_load_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="sae"):
        save_sae(torch.nn.Linear(2, 2), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="path"):
        load_sae(tmp_path / "missing")


def test_standard_sae_does_not_collapse_onto_duplicate_latents():
    """Regression: with SAELens' decoder init norm 0.1, Adam's ~lr-sized steps overwrite the rows with the sign of
    the shared early gradient (here from rare huge-norm tokens) and most latents become near-duplicates."""
    from metasae_utils.evaluate import redundancy
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(128, 64, generator=g)
    feats /= feats.norm(dim=1, keepdim=True)
    codes = torch.rand(8192, 128, generator=g) * (torch.rand(8192, 128, generator=g) < 0.05)
    x = codes @ feats * 3 + 2.0
    x[torch.rand(8192, generator=g) < 0.02] += 40 * torch.randn(64, generator=g)
    kw = dict(n_steps=150, batch_size=256, lr=4e-4, seed=0, l1_coefficient=2.5, progress=False)
    assert redundancy(train_sae(x, "standard", 256, **kw)) < 0.1
    assert redundancy(train_sae(x, "standard", 256, decoder_init_norm=0.1, **kw)) > 0.5  # the failure mode
