"""The sparse SAE step equals SAELens' own loss and gradients; the lean loop equals SAETrainer; branches."""

import pytest
import torch

from metasae_utils import training
from metasae_utils.training import branches, lean, schedule, sparse

B, D, S = 256, 48, 384


def _sae(bias: float, seed: int = 0):
    torch.manual_seed(seed)
    cfg = training.build_training_config("standard", D, S, n_steps=10, l1_coefficient=2.0)
    sae = training.saelens._sae_lens()("standard")[0](cfg)
    with torch.no_grad():
        sae.b_enc.fill_(bias)
        sae.b_dec.normal_()
    return sae


def _params(sae):
    return (sae.W_enc.detach().T.contiguous(), sae.b_enc.detach().clone(), sae.W_dec.detach().clone(),
            sae.b_dec.detach().clone())


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _case(name):
    """(sae, x): a typical sparse batch, dead latents, always-on latents, no active latent at all."""
    sae = _sae(-2.2)
    x = torch.randn(B, D) * 1.5
    with torch.no_grad():
        if name == "dead":
            sae.b_enc[: S // 3] = -1e3
        if name == "always_on":
            sae.b_enc[:5] = 1e3
        if name == "l0_zero":
            sae.b_enc.fill_(-1e3)
        if name == "zero_row":
            sae.W_dec[7] = 0.0
    return sae, x


CASES = ["typical", "dead", "always_on", "l0_zero", "zero_row"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_step_equals_saelens_loss_and_gradients(case, path):
    sae, x = _case(case)
    mse, l1_loss, ref = sparse.saelens_reference(sae, x, 2.0)
    if path == "sparse":
        assert sparse.kernel() is not None, sparse.kernel_error()
        r = sparse.fwd_bwd(x, *_params(sae), 2.0, dense_above=1.0)
        assert r.sparse
    else:
        r = sparse.dense_fwd_bwd(x, *_params(sae), 2.0)
    assert r.mse == pytest.approx(mse, rel=1e-5, abs=1e-6)
    assert r.l1_loss == pytest.approx(l1_loss, rel=1e-5, abs=1e-6)
    for name, got in zip(["W_encT", "b_enc", "W_dec", "b_dec"], r.grads):
        want = ref[name]
        if want.norm() == 0:
            assert got.norm() == 0, name
        else:
            assert _rel(got, want) < 1e-5, (name, _rel(got, want))
    total = sum(float(g.double().pow(2).sum()) for g in ref.values())
    assert r.grad_sumsq == pytest.approx(total, rel=1e-5)
    active = (x - sae.b_dec) @ sae.W_enc + sae.b_enc > 0
    assert torch.equal(r.counts, active.sum(0))
    if case == "l0_zero":
        assert r.l0 == 0 and r.l1_loss == 0


def test_dense_fallback_above_the_density_limit():
    sae, x = _case("always_on")
    r = sparse.fwd_bwd(x, *_params(sae), 2.0, dense_above=0.0)
    assert not r.sparse


def test_no_compiler_falls_back_to_dense(monkeypatch, tmp_path):
    monkeypatch.setattr(sparse, "_LIB", None)
    monkeypatch.setattr(sparse, "_LIB_ERROR", None)
    monkeypatch.setenv("CC", "/bin/false")
    monkeypatch.setenv("METASAE_KERNEL_DIR", str(tmp_path))
    assert sparse.kernel() is None and "failed" in sparse.kernel_error()
    sae, x = _case("typical")
    assert not sparse.fwd_bwd(x, *_params(sae), 2.0).sparse


def test_unsupported_saes_are_named():
    sae = _sae(0.0)
    sae.cfg.lp_norm = 2.0
    assert "lp_norm" in sparse.supported(sae)
    with pytest.raises(ValueError, match="lp_norm"):
        lean.FastTrainer(None, sae, None)


@pytest.mark.parametrize("total,warm,decay", [(100, 0, 20), (100, 10, 20), (50, 5, 0), (30, 1, 29), (40, 3, 1)])
def test_lr_schedule_equals_saelens(total, warm, decay):
    from sae_lens.training.optim import get_lr_scheduler
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-3)
    sched = get_lr_scheduler("constant", optimizer=opt, training_steps=total, lr=1e-3, warm_up_steps=warm,
                             decay_steps=decay, lr_end=1e-3, num_cycles=1)
    for t in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * schedule.lr_factor(t, warm, total - decay, total),
                                                          abs=1e-15)
        opt.step()
        sched.step()


def _data(n=6000, d=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)


KW = dict(n_steps=60, batch_size=128, lr=1e-3, seed=3, l1_coefficient=4.0, progress=False, autocast=False)


def test_lean_loop_trains_the_sae_saetrainer_trains():
    x = _data()
    a = training.train_sae(x, "standard", S, fast_step=False, lr_decay_steps=12, **KW)
    b = training.train_sae(x, "standard", S, fast_step=True, lr_decay_steps=12, **KW)
    assert a.cfg.metadata.train["step"] == "saetrainer" and b.cfg.metadata.train["step"] == training.FAST_STEP
    for name in ["W_enc", "b_enc", "W_dec", "b_dec"]:
        assert _rel(getattr(b, name).detach(), getattr(a, name).detach()) < 1e-4, name
    assert b.cfg.metadata.l0 == pytest.approx(a.cfg.metadata.l0, rel=1e-4)
    assert b.cfg.metadata.num_dead_features == a.cfg.metadata.num_dead_features


def test_branch_at_the_last_budget_is_the_decayed_run():
    """A stable run annealed over the last 20 % is the ordinary run with a 20 % linear decay."""
    x = _data()
    plain = training.train_sae(x, "standard", S, lr_decay_steps=12, **KW)
    trainer = training.make_trainer(x, S, n_steps=60, batch_size=128, lr=1e-3, seed=3, l1_coefficient=4.0,
                                    autocast=False)
    got = {}
    branches.run_branches(trainer, [15, 30, 60], 0.2, lambda row, sae, state: got.__setitem__(row["budget"], sae))
    assert sorted(got) == [15, 30, 60]
    assert _rel(got[60].W_dec.detach(), plain.W_dec.detach()) < 1e-5
    assert _rel(got[60].W_enc.detach(), plain.W_enc.detach()) < 1e-5
    assert _rel(got[15].W_dec.detach(), plain.W_dec.detach()) > 1e-3  # a shorter budget is another SAE


def test_state_restore_continues_identically():
    x = _data()
    t = training.make_trainer(x, S, n_steps=40, batch_size=128, lr=1e-3, seed=1, l1_coefficient=4.0, autocast=False)
    t.run(10)
    state = t.state()
    t.run(25)
    first = t.params[2].clone()
    t.restore(state)
    t.run(25)
    assert torch.equal(t.params[2], first)


def test_cached_branches_resume_from_the_last_completed_branch(tmp_path, monkeypatch):
    monkeypatch.setenv("METASAE_CACHE", str(tmp_path))
    x = _data()
    made = []

    def make():
        made.append(1)
        return training.make_trainer(x, S, n_steps=40, batch_size=128, lr=1e-3, seed=2, l1_coefficient=4.0,
                                     autocast=False)
    spec = {"test": "branches"}
    first = dict(branches.cached_branches("saes-branch", spec, [10, 20, 40], 0.2, make))
    assert len(made) == 1 and sorted(first) == [10, 20, 40]
    again = dict(branches.cached_branches("saes-branch", spec, [10, 20, 40], 0.2, make))
    assert len(made) == 1 and again == first
    w40 = training.load_sae(first[40]).W_dec.detach().clone()
    import shutil
    shutil.rmtree(first[40].parent)  # lose the last branch: it is rebuilt from the 20-step branch's state
    calls = []
    orig = lean.FastTrainer.step
    monkeypatch.setattr(lean.FastTrainer, "step", lambda self, b: calls.append(1) or orig(self, b))
    redo = dict(branches.cached_branches("saes-branch", spec, [10, 20, 40], 0.2, make))
    assert len(calls) == 40 - 16  # from the 20-step branch point (16) to 40, not from 0
    assert torch.equal(training.load_sae(redo[40]).W_dec.detach(), w40)
    assert schedule.branch_overhead([250, 500, 1000, 2000], 0.2) == pytest.approx((1600 + 50 + 100 + 200 + 400) / 2000)


def test_branches_are_bit_identical_across_fresh_caches(tmp_path, monkeypatch):
    """The branched path is deterministic: two runs in two empty caches give the same bytes for every branch."""
    x = _data()
    got = []
    for name in ("a", "b"):
        monkeypatch.setenv("METASAE_CACHE", str(tmp_path / name))
        paths = branches.cached_branches("saes-branch", {"test": "determinism"}, [10, 20], 0.2, lambda: training.make_trainer(
            x, S, n_steps=20, batch_size=128, lr=1e-3, seed=5, l1_coefficient=4.0, autocast=False))
        got.append({b: (p / "sae_weights.safetensors").read_bytes() for b, p in paths})
    assert got[0] == got[1]


@pytest.mark.parametrize("case", ["typical", "dead", "always_on"])
def test_bf16_step_is_no_further_from_fp32_than_saelens_autocast(case):
    """The bf16 step (encoder product in bf16, the sparse parts in fp32) against SAELens' exact fp32 gradients: its
    error is at most that of SAELens' own step under bf16 autocast (measured at width 4608, L0 277: W_enc 1.8e-2
    vs 2.1e-2), so a larger bf16-vs-fp32 gap after a whole run is the trajectory's, not a biased step."""
    sae, x = _case(case)
    _, _, exact = sparse.saelens_reference(sae, x, 2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, _, auto = sparse.saelens_reference(sae, x, 2.0)
    ours = sparse.fwd_bwd(x, *_params(sae), 2.0, bf16=True, dense_above=1.0)
    for name, got in zip(["W_encT", "b_enc", "W_dec", "b_dec"], ours.grads):
        err, err_auto = _rel(got, exact[name]), _rel(auto[name].float(), exact[name])
        assert 0 < err <= 1.1 * err_auto, (name, err, err_auto)
