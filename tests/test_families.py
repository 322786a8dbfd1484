"""Families: local SAELens-format SAEs on the GPT-2 stand-in, registry checks, training round trip, CE sanity."""

import time

import pytest
import torch
from sae_lens import SAE, StandardSAE, StandardSAEConfig

from metasae_utils import artifacts, evaluate, families, sources
from metasae_utils.presets import ConfigError, resolve


def _sae(d_in, d_sae, seed=0):
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.05)
        sae.W_dec.normal_(0, 0.05)
    return sae.eval()


def _identity_sae(d_in):
    """ReLU(x) - ReLU(-x) = x: an SAE that reconstructs exactly."""
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=2 * d_in, apply_b_dec_to_input=False))
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def test_local_family_loads_saelens_folders_sorted_by_width(tmp_path, gpt2_standin):
    for name, width in [("big", 1536), ("small", 768)]:
        _sae(768, width).save_model(str(tmp_path / name))
    cfg = resolve("gpt2-paper", family="local", sae_dir=str(tmp_path))
    members = families.load_family(cfg, gpt2_standin.cfg.d_model)
    assert [m.width for m in members] == [768, 1536] and [m.name for m in members] == ["small", "big"]
    x = torch.randn(5, 768)
    assert torch.allclose(members[0].sae(x), SAE.load_from_disk(str(tmp_path / "small"))(x))


def test_sae_of_the_wrong_width_is_refused(tmp_path, gpt2_standin):
    _sae(64, 128).save_model(str(tmp_path / "tiny"))
    cfg = resolve("gpt2-paper", family="local", sae_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"d_in = 64 but blocks.8.hook_resid_pre has width 768"):
        families.load_family(cfg, gpt2_standin.cfg.d_model)


def test_empty_sae_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="'sae_dir'.*holds no SAELens SAE"):
        families.load_local_family(tmp_path)


def test_registry_checks_before_any_download(monkeypatch):
    families.check_pretrained(resolve("gpt2-paper"))  # the real ids are in SAELens' registry
    families.check_pretrained(resolve("gemma-scope"))
    with pytest.raises(ConfigError, match=r"'sae_release' = 'gpt2-small-res-jb-feature-spliting'.*did you mean"):
        families.check_pretrained(resolve("gpt2-paper", sae_release="gpt2-small-res-jb-feature-spliting"))
    bad_ids = ["blocks.8.hook_resid_pre_768", "blocks.8.hook_resid_pre_777"] + list(resolve("gpt2-paper").sae_ids[2:])
    with pytest.raises(ConfigError, match=r"'sae_ids' holds 'blocks.8.hook_resid_pre_777'.*allowed: blocks.8"):
        families.check_pretrained(resolve("gpt2-paper", sae_ids=bad_ids))
    published = families.published_metrics(resolve("gpt2-paper"))
    assert published["blocks.8.hook_resid_pre_768"]["l0"] == 36.0


def test_pretrained_family_without_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "HUB_URL", "https://10.255.255.1/api")
    t0 = time.time()
    with pytest.raises(sources.HubUnreachableError, match="offline"):
        families.load_family(resolve("gpt2-paper"), 768)
    assert time.time() - t0 < 30


def test_trained_family_round_trips_and_is_reused(tmp_cache):
    torch.manual_seed(0)
    acts = torch.randn(2048, 16) @ torch.randn(16, 16)
    cfg = resolve("ci", widths=[8, 16], l0_targets=[], l0_extra=[], train_batch_size=256, train_epochs=1.0, n_train_tokens=2048,
                  compare_architectures=["batchtopk"], k=4)
    members = families.train_family(cfg, acts, "acts-key", progress=False)
    assert [m.sae.cfg.d_sae for m in members] == [8, 16]
    for m in members:
        again = SAE.load_from_disk(str(m.path))
        assert torch.equal(again(acts[:32]), m.sae(acts[:32]))
    computed = sum(r["event"] == "computed" for r in artifacts.read_log(tmp_cache))
    families.train_family(cfg, acts, "acts-key", progress=False)
    assert sum(r["event"] == "computed" for r in artifacts.read_log(tmp_cache)) == computed
    topk = families.train_family(cfg, acts, "acts-key", architecture="batchtopk", progress=False)
    # inference uses SAELens' fixed JumpReLU threshold (a running estimate), so L0 is only of the order of k
    # after a short run (8.04 at width 16, k = 4, here); 3k bounds it well away from a dense code
    assert all(0 < evaluate.reconstruction_metrics(m.sae, acts)["l0"] <= 3 * cfg.k for m in topk)


def test_ce_of_a_perfect_sae_recovers_everything(gpt2_standin):
    tokens = torch.randint(0, 50257, (2, 12), generator=torch.Generator().manual_seed(3))
    for hook in ["blocks.4.hook_resid_pre", "blocks.4.hook_resid_post"]:
        ce = evaluate.ce_metrics(gpt2_standin, hook, tokens, {"perfect": _identity_sae(768), "noise": _sae(768, 64)},
                                 progress=False)
        full = evaluate._token_ce(gpt2_standin(tokens), tokens).item()
        assert ce["clean"] == pytest.approx(full, abs=1e-4)
        assert ce["saes"]["perfect"]["ce_recovered"] == pytest.approx(1.0, abs=1e-3)
        assert ce["saes"]["noise"]["ce_recovered"] < 0.9


def test_reconstruction_metrics_against_direct_computation():
    sae = _sae(16, 32)
    x = torch.randn(300, 16)
    r = evaluate.reconstruction_metrics(sae, x, batch_size=64)
    with torch.no_grad():
        f = sae.encode(x)
        err = x - sae.decode(f)
    assert r["mse"] == pytest.approx(err.pow(2).mean().item(), rel=1e-5)
    assert r["fvu"] == pytest.approx((err.pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item(), rel=1e-5)
    assert r["l0"] == pytest.approx((f != 0).sum(1).float().mean().item(), rel=1e-6)
    assert r["dead_fraction"] == pytest.approx(((f != 0).sum(0) == 0).float().mean().item())


def test_widths_start_from_independent_initialisations(tmp_cache):
    """Regression: one seed for every width made a wider SAE's first rows start equal to the narrower SAE's."""
    from metasae_utils import stitching
    acts = torch.randn(512, 16)
    cfg = resolve("ci", widths=[16, 32], l0_targets=[], l0_extra=[], train_batch_size=256, n_train_tokens=1000, train_epochs=0.5, lr=1e-7)
    a, b = families.train_family(cfg, acts, "acts-key", progress=False)
    cos, _ = stitching.max_cosine(b.sae.W_dec[:16].detach(), a.sae.W_dec.detach())
    assert cos.max() < 0.99


def test_redundancy_counts_near_duplicate_latents():
    W = torch.eye(8)[:6].clone()
    W[1] = torch.tensor([0.99, 0.14, 0, 0, 0, 0, 0, 0])  # near-duplicate of latent 0 (cos 0.99)
    sae = _sae(8, 6)
    with torch.no_grad():
        sae.W_dec.copy_(W)
    assert evaluate.redundancy(sae, 0.9) == pytest.approx(2 / 6)
    assert evaluate.redundancy(sae, 0.995) == 0.0
    assert evaluate.redundancy(sae, 0.9, chunk=4) == pytest.approx(2 / 6)  # chunks that split the pair


def test_branched_member_is_the_plain_recipe_and_longer_budgets_exist(tmp_cache):
    """With budget_multiples the family's SAE is the branch at 1: the plain run with the same decay, step for step
    (L1 warm-up, controller and decay of the family's run, whatever the longest budget); longer budgets exist."""
    torch.manual_seed(0)
    acts = torch.randn(4096, 16) @ torch.randn(16, 16)
    common = dict(widths=[16, 32], l0_targets=[], l0_extra=[], train_batch_size=256, train_epochs=2.0, n_train_tokens=4096, curve_points=4,
                  target_l0=4, lr_decay_fraction=0.2, twins=0, train_dtype="float32")
    import dataclasses
    plain = dataclasses.replace(resolve("ci", **common), budget_multiples=None, budget_reach=None)  # None in resolve keeps the preset's
    branched = resolve("ci", budget_multiples=[0.5, 1.0, 2.0], budget_reach=[2.0, 1.0], budget_anneal_fraction=0.2,
                       **common)
    assert plain.budget_multiples is None and branched.budget_multiples == (0.5, 1.0, 2.0)
    a = families.train_family(plain, acts, "acts-key", progress=False, eval_acts=acts[:512])
    assert "branches" not in a[0].info
    b = families.train_family(branched, acts, "acts-key", progress=False, eval_acts=acts[:512])
    for x, y in zip(a, b):
        assert torch.allclose(x.sae.W_dec, y.sae.W_dec, rtol=1e-4, atol=1e-6), x.name
        assert x.info["final_l1_coefficient"] == pytest.approx(y.info["final_l1_coefficient"], rel=1e-6)
    steps = a[0].info["n_steps"]
    assert sorted(b[0].info["branches"]) == [steps // 2, steps, 2 * steps]  # width 16 reaches 2x
    assert sorted(b[1].info["branches"]) == [steps // 2, steps]  # width 32 reaches 1x
    assert sorted(b[0].info["checkpoints"]) == [steps // 2]
