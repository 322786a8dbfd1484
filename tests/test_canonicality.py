"""Canonicality measures on decoder matrices with known answers (metasae_utils.canonicality)."""

import math

import pytest
import torch

from metasae_utils.canonicality import canonicality_matrix, cosine_matrix, hungarian_cosine, matched_share

F64 = torch.float64


def basis(d=8):
    return torch.eye(d, dtype=F64)


def test_matched_share_counts_rows_above_the_threshold():
    e = basis()
    B = e[:3]                                   # three directions
    c = math.cos(math.radians(40))              # 0.766 > 0.7
    s = math.cos(math.radians(50))              # 0.643 < 0.7
    A = torch.stack([e[0], c * e[1] + math.sin(math.radians(40)) * e[5],
                     s * e[2] + math.sin(math.radians(50)) * e[6], e[7]])
    assert matched_share(A, B) == pytest.approx(2 / 4)
    assert matched_share(A, B, threshold=0.6) == pytest.approx(3 / 4)
    assert matched_share(A, B, threshold=0.99) == pytest.approx(1 / 4)
    # a (live) mask or row ids restrict A's rows; dead latents do not count as unmatched
    assert matched_share(A, B, live=torch.tensor([True, True, False, False])) == pytest.approx(1.0)
    assert matched_share(A, B, live=[3]) == pytest.approx(0.0)
    assert math.isnan(matched_share(A, B, live=torch.zeros(4, dtype=torch.bool)))
    # scale and the other side's order do not matter; negative cosines are not matches
    assert matched_share(3 * A, B[[2, 0, 1]] * 0.1) == pytest.approx(0.5)
    assert matched_share(-A, B) == pytest.approx(0.0)


def test_matched_share_is_asymmetric_for_a_wider_dictionary():
    e = basis()
    small, large = e[:2], e[:6]
    assert matched_share(small, large) == 1.0
    assert matched_share(large, small) == pytest.approx(2 / 6)


def test_hungarian_cosine_known_answers():
    e = basis()
    perm = torch.tensor([3, 0, 2, 1])
    assert hungarian_cosine(e[:4], 2.0 * e[:4][perm]) == pytest.approx(1.0)
    # one-to-one: two copies of e0 in A can use e0 of B only once; the other copy meets a 0.6 row
    B = torch.stack([e[0], 0.6 * e[0] + 0.8 * e[1]])
    A = torch.stack([e[0], e[0]])
    assert hungarian_cosine(A, B) == pytest.approx((1.0 + 0.6) / 2)
    # the best matching, not the greedy one: cos = [[0.7, 0.6], [0.6, 0.0]]; greedy takes 0.7 + 0.0 (mean 0.35),
    # the optimal matching 0.6 + 0.6 (mean 0.6)
    A2 = e[:2]
    B2 = torch.stack([0.7 * e[0] + 0.6 * e[1] + math.sqrt(1 - 0.85) * e[2], 0.6 * e[0] + 0.8 * e[3]])
    torch.testing.assert_close(cosine_matrix(A2, B2), torch.tensor([[0.7, 0.6], [0.6, 0.0]], dtype=F64))
    assert hungarian_cosine(A2, B2) == pytest.approx(0.6)
    # rectangular: min(n_a, n_b) pairs
    assert hungarian_cosine(e[:2], e[:6]) == pytest.approx(1.0)
    assert hungarian_cosine(e[:6], e[:2]) == pytest.approx(1.0)
    assert hungarian_cosine(e[:4], e[:4], live=[0, 1]) == pytest.approx(1.0)
    assert math.isnan(hungarian_cosine(e[:4], e[:4], live=torch.zeros(4, dtype=torch.bool)))


def test_hungarian_cosine_random_directions_near_zero():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(64, 512, generator=g, dtype=F64), torch.randn(64, 512, generator=g, dtype=F64)
    h = hungarian_cosine(A, B)
    assert 0.0 < h < 0.2  # the best matching of random directions: a little above 0, far below a real match


def test_canonicality_matrix():
    e = basis(12)
    saes = {"a": e[:3], "b": e[:6], "c": torch.cat([e[:3], e[8:11]])}
    m = canonicality_matrix(saes)
    assert m["names"] == ["a", "b", "c"]
    expected = torch.tensor([[1, 1, 1], [0.5, 1, 0.5], [0.5, 0.5, 1]], dtype=F64)
    torch.testing.assert_close(m["matched"], expected)
    # hungarian: a~b 3 of 3 matched at 1; b~c 3 of 6 at 1 and 3 at 0 -> 0.5; symmetric
    expected_h = torch.tensor([[1, 1, 1], [1, 1, 0.5], [1, 0.5, 1]], dtype=F64)
    torch.testing.assert_close(m["hungarian"], expected_h)
    # live masks: c's last three latents dead -> c is fully matched in a
    live = [None, None, torch.tensor([True] * 3 + [False] * 3)]
    m2 = canonicality_matrix(list(saes.values()), live=live)
    assert m2["names"] == ["0", "1", "2"] and m2["matched"][2, 0] == 1.0 and m2["hungarian"][1, 2] == 1.0


def test_canonicality_matrix_refuses_bad_input():
    with pytest.raises(ValueError, match="d_in"):
        canonicality_matrix([torch.eye(3), torch.eye(4)])
    with pytest.raises(ValueError, match="one entry per SAE"):
        canonicality_matrix([torch.eye(3), torch.eye(3)], live=[None])
    with pytest.raises(ValueError, match="live mask"):
        matched_share(torch.eye(3), torch.eye(3), live=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="decoder matrix"):
        matched_share("nope", torch.eye(3))


def test_sae_objects_are_read_through_w_dec():
    from sae_lens import StandardSAE, StandardSAEConfig
    sae = StandardSAE(StandardSAEConfig(d_in=6, d_sae=4, dtype="float64"))
    with torch.no_grad():
        sae.W_dec.copy_(torch.eye(6, dtype=F64)[:4])
    assert matched_share(sae, torch.eye(6, dtype=F64)[:2]) == pytest.approx(0.5)
    assert hungarian_cosine(sae, sae) == pytest.approx(1.0)
