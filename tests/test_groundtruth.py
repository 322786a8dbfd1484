"""Ground-truth scoring: every answer here is known by construction (SAEs built from the true directions)."""

import math

import pytest
import torch

from metasae_utils import groundtruth as G
from metasae_utils import synthetic as S
from metasae_utils.synthetic.family import _tied_jumprelu

pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = S.SyntheticSpec(n_train=1024, n_eval=512)  # 16 roots x 4 children + 64 free = 144 features in d = 64


@pytest.fixture(scope="module")
def data():
    return S.generate(SPEC, cache=False, progress=False)


def ids(data):
    roots = data.is_root.nonzero().squeeze(1)
    children = data.is_child.nonzero().squeeze(1)
    free = data.is_free.nonzero().squeeze(1)
    return roots, children, free


def sae_from(rows: torch.Tensor, data):
    """A real SAELens JumpReLU SAE whose decoder rows are ``rows`` (n, d) (tied encoder)."""
    return _tied_jumprelu(rows / rows.norm(dim=1, keepdim=True), data, threshold=0.5)


def test_labels_single_features_composites_and_noise(data):
    roots, children, free = ids(data)
    comp = S.composite_directions(data)
    noise = torch.randn(1, SPEC.d, generator=torch.Generator().manual_seed(5))
    rows = torch.cat([data.features[roots[3]][None], -data.features[free[7]][None], comp[5][None], noise])
    lab = G.label_latents(rows, data)
    assert lab.kind == ["feature", "feature", "composite", "none"]
    assert lab.unit.tolist() == [roots[3].item(), free[7].item(), data.n_features + children[5].item(), -1]
    assert lab.tree.tolist() == [roots[3].item(), free[7].item(), data.parents[children[5]].item(), -1]
    assert lab.counts() == {"feature": 2, "composite": 1, "none": 1}


def test_labels_reject_wrong_shapes(data):
    with pytest.raises(ValueError, match=r"\(d_sae, 64\)"):
        G.label_latents(torch.randn(4, 32), data)
    with pytest.raises(ValueError, match="truth_threshold"):
        G.label_latents(torch.randn(4, 64), data, truth_threshold=1.5)


def test_relations_same_related_new(data):
    roots, children, free = ids(data)
    comp = S.composite_directions(data)
    small = G.label_latents(torch.cat([data.features[roots], data.features[free[:32]]]), data)
    large = G.label_latents(torch.cat([data.features[children], comp, data.features[free],
                                       data.features[roots[:2]]]), data)
    rel = G.relation_to(large, small)
    n_c = len(children)
    assert rel[:n_c] == ["related"] * n_c                 # a child of a root the small SAE has
    assert rel[n_c:2 * n_c] == ["related"] * n_c          # parent + child, the root being in the small SAE
    assert rel[2 * n_c:2 * n_c + 32] == ["same"] * 32     # the same free feature
    assert rel[2 * n_c + 32:2 * n_c + 64] == ["new"] * 32  # free features the small SAE lacks
    assert rel[-2:] == ["same", "same"]


def test_stitching_confusion_known_by_construction(data):
    roots, children, free = ids(data)
    small = sae_from(torch.cat([data.features[roots], data.features[free[:32]]]), data)
    large = sae_from(torch.cat([data.features[children], data.features[free]]), data)
    res = G.stitching_truth(small, large, data)
    # children are near-orthogonal to every small latent (random directions in d = 64): novel, and related to the
    # small SAE's root; free features the small SAE lacks: novel and new; shared free features: reconstruction, same
    assert res["table"]["novel"] == {"same": 0, "related": len(children), "new": 32, "unlabelled": 0}
    assert res["table"]["reconstruction"] == {"same": 32, "related": 0, "new": 0, "unlabelled": 0}
    assert res["novel_is_new_or_related"] == 1.0 and res["reconstruction_is_same_or_related"] == 1.0
    assert res["novel_is_new"] == pytest.approx(32 / (32 + len(children)))


def test_stitching_confusion_flags_a_wrong_reading(data):
    """A large SAE that only repeats the small SAE's features in noisy form: nothing is labelled."""
    roots, _, _ = ids(data)
    g = torch.Generator().manual_seed(1)
    small = sae_from(data.features[roots], data)
    large = sae_from(data.features[roots] + 0.8 * torch.randn(len(roots), SPEC.d, generator=g) / SPEC.d ** 0.5,
                     data)
    res = G.stitching_truth(small, large, data)
    assert sum(res["table"]["novel"].values()) + sum(res["table"]["reconstruction"].values()) == len(roots)
    assert res["table"]["novel"]["unlabelled"] + res["table"]["reconstruction"]["unlabelled"] == len(roots)
    assert math.isnan(res["novel_is_new_or_related"]) or res["table"]["novel"]["new"] == 0


def test_meta_truth_parent_meta_latents_known_by_construction(data):
    roots, children, _ = ids(data)
    comp = S.composite_directions(data)
    base = sae_from(comp, data)                        # every latent = parent + child
    meta_sae = sae_from(data.features[roots], data)    # every meta-latent = a parent
    res = G.meta_truth(meta_sae, base, data)
    assert res["frac_meta_on_root"] == 1.0 and res["random_frac_on_root"] == 0.0
    assert res["frac_roots_found"] == 1.0
    assert res["n_tested"] == len(children)
    assert res["parent_in_code"] == 1.0                # cos(parent + child, parent) ~ 0.71 > threshold 0.5
    assert res["chance"] < 0.2                         # each parent meta-latent serves 4 of 64 latents (+ noise)


def test_meta_truth_random_meta_sae_finds_no_parents(data):
    _, _, _ = ids(data)
    base = sae_from(S.composite_directions(data), data)
    meta_sae = sae_from(torch.randn(16, SPEC.d, generator=torch.Generator().manual_seed(3)), data)
    res = G.meta_truth(meta_sae, base, data)
    assert res["frac_roots_found"] == 0.0 and res["n_tested"] == 0 and math.isnan(res["parent_in_code"])


def test_truth_shares_of_a_pooled_table():
    table = {"novel": {"same": 1, "related": 2, "new": 5, "unlabelled": 9},
             "reconstruction": {"same": 0, "related": 0, "new": 0, "unlabelled": 4}}
    s = G.truth_shares(table)
    assert s["novel_is_new_or_related"] == pytest.approx(7 / 8) and s["novel_is_new"] == pytest.approx(5 / 8)
    assert math.isnan(s["reconstruction_is_same_or_related"])
