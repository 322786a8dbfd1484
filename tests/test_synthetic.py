"""Tests for metasae_utils.synthetic: the hierarchical synthetic source is deterministic and cached, obeys its
hierarchy, and its ground-truth scores separate a perfect dictionary, a random one and a trained SAE."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from metasae_utils import artifacts
from metasae_utils import synthetic as S

SMALL = S.SyntheticSpec(n_train=8192, n_eval=2048)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return S.generate(SMALL, cache=False, progress=False)


def events(name: str) -> list[str]:
    return [r["event"] for r in artifacts.read_log() if r["step"] in ("synthetic", "synthetic_sae")
            and r["name"] == name]


@pytest.mark.parametrize("bad", [dict(n_children=1), dict(firing_min=0.3), dict(child_given_parent=0.0),
                                 dict(d=0), dict(n_roots=0, n_free=0), dict(n_train=1.5)])
def test_spec_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        S.SyntheticSpec(**bad)


def test_paper_like_shape():
    spec = S.SyntheticSpec.paper_like()
    assert (spec.d, spec.n_features, spec.n_train) == (128, 1024, 65_536)
    p = S.firing_probabilities(spec)
    expected_l0 = p[:64].sum() * (1 + spec.child_given_parent) + p[64 + 512:].sum()
    assert 8 < expected_l0 < 10
    assert p.max() == pytest.approx(0.25) and p[576:].min() == pytest.approx(0.004)


def test_generation_is_deterministic_and_cached(tmp_cache, data):
    a = S.generate(SMALL, progress=False)
    assert events("model") == ["computed"] and events("data.safetensors") == ["computed"]
    b = S.generate(SMALL, progress=False)
    assert events("model") == ["computed", "reused"]
    assert events("data.safetensors") == ["computed", "reused"]
    for x in (b, data):  # cache reload, and the uncached module fixture
        for name in ("train", "eval", "eval_latents", "features", "parents", "is_root"):
            assert torch.equal(getattr(a, name), getattr(x, name)), name
        assert torch.equal(a.generator.firing_probabilities, x.generator.firing_probabilities)
    assert not torch.equal(a.train[:64], a.eval[:64])  # train and eval are drawn independently
    assert a.train.shape == (8192, 64) and a.train.dtype == torch.float32
    assert a.eval.shape == (2048, 64) and a.eval_latents.shape == (2048, 144)
    assert a.features.shape == (144, 64) and not a.features.requires_grad
    assert torch.allclose(a.features.norm(dim=1), torch.ones(144))
    other = S.generate(replace(SMALL, seed=1), cache=False, progress=False)
    assert not torch.equal(other.train, a.train) and not torch.equal(other.features, a.features)


def test_eval_rows_are_the_true_latents_through_the_dictionary(data):
    bias = data.feature_dict.bias.detach()
    assert torch.allclose(data.eval, data.eval_latents @ data.features + bias, atol=1e-5)
    assert 1.5 < data.true_l0 < 2.5  # expected about 2.0 for the default spec


def test_children_fire_only_with_their_parent_and_exclusively(data):
    lat = data.eval_latents > 0
    children = data.is_child.nonzero().squeeze(1)
    parents = data.parents[children]
    assert data.is_root.sum() == 16 and len(children) == 64 and data.is_free.sum() == 64
    assert torch.equal(data.parents[:16], torch.full((16,), -1))
    assert set(parents.tolist()) == set(range(16)) and data.is_root[parents].all()
    assert lat[:, children].any(0).float().mean() > 0.8  # the children do fire ...
    assert not (lat[:, children] & ~lat[:, parents]).any()  # ... but never without their parent
    per_root = torch.zeros(len(lat), 16, dtype=torch.long).index_add_(1, parents, lat[:, children].long())
    assert per_root.max() == 1  # mutually exclusive siblings
    # some child fires with probability child_given_parent when the root fires
    root_on = lat[:, :16]
    frac = (per_root[root_on] > 0).float().mean().item()
    assert abs(frac - SMALL.child_given_parent) < 0.05


def test_truth_scores_high_and_random_scores_low(data):
    oracle = S.score(S.oracle_sae(data), data, n_samples=4096)
    rnd = S.score(S.random_sae(data, data.n_features), data, n_samples=4096)
    assert oracle["mcc"] > 0.999 and oracle["uniqueness"] == 1.0
    assert oracle["frac_true_recovered"] == 1.0 and oracle["frac_children_absorbed"] == 0.0
    assert oracle["recall"] > 0.85 and oracle["precision"] > 0.8
    assert abs(oracle["true_l0"] - data.true_l0) < 0.2
    assert rnd["mcc"] < 0.5 and rnd["frac_true_recovered"] < 0.05 and rnd["f1_score"] < 0.2
    assert oracle["fvu"] < 0.5 < rnd["fvu"]
    cos = S.max_cos_to_truth(S.oracle_sae(data), data.features)
    assert torch.equal(cos["latent_best"], torch.arange(data.n_features))


def test_short_training_beats_random_and_is_cached(tmp_cache, data):
    kw = dict(k=2, n_steps=300, batch_size=512, lr=3e-3, seed=0, progress=False)
    (sae,) = S.train_synthetic_family(data, [64], **kw)
    assert events("sae") == ["computed"]
    (again,) = S.train_synthetic_family(data, [64], **kw)
    assert events("sae") == ["computed", "reused"]
    assert torch.equal(sae.W_dec, again.W_dec)

    trained = S.score(sae, data, n_samples=4096)
    rnd = S.score(S.random_sae(data, 64), data, n_samples=4096)
    assert trained["d_sae"] == 64 and abs(trained["l0"] - 2) < 0.5
    assert trained["mcc"] > rnd["mcc"] + 0.3
    assert trained["frac_true_recovered"] > 0.1 > rnd["frac_true_recovered"]
    assert trained["fvu"] < 0.5
