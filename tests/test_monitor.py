"""The training monitor: learning curves and checkpoints leave the run untouched; the L1 controller steers L0."""

import pytest
import torch

from metasae_utils import training
from metasae_utils.training.monitor import Monitor, drift

D, N = 32, 4096


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(96, D, generator=g), dim=1)
    codes = torch.rand(N, 96, generator=g) * (torch.rand(N, 96, generator=g) < 0.06)
    return 3.0 * codes @ feats + 0.02 * torch.randn(N, D, generator=g)


def _train(data, monitor=None, steps=60, arch="standard", **kw):
    return training.train_sae(data[:3072], arch, 64, n_steps=steps, batch_size=256, lr=3e-3, seed=1,
                              l1_coefficient=1.0, progress=False, monitor=monitor, **kw)


def test_curves_and_checkpoints_leave_the_final_sae_unchanged(data, tmp_path, one_thread):
    plain = _train(data)
    mon = Monitor(n_steps=60, eval_acts=data[3072:], curve_every=20, checkpoint_steps=(15, 30, 60),
                  checkpoint_dir=tmp_path)
    watched = _train(data, mon)
    for name, p in plain.state_dict().items():
        assert torch.equal(p, watched.state_dict()[name]), name
    assert [p["step"] for p in mon.curve] == [1, 20, 40, 60]
    assert sorted(mon.checkpoints) == [15, 30, 60]
    final = training.load_sae(mon.checkpoints[60])
    for name, p in plain.state_dict().items():  # the last checkpoint is the returned SAE
        assert torch.allclose(p, final.state_dict()[name], atol=1e-6), name
    early = training.load_sae(mon.checkpoints[15])
    assert not torch.allclose(early.W_dec, final.W_dec)
    from metasae_utils.evaluate import reconstruction_metrics
    assert mon.curve[-1]["fvu"] == pytest.approx(reconstruction_metrics(plain, data[3072:])["fvu"], rel=1e-5)


def test_l1_controller_reaches_the_target_l0(data, one_thread):
    free = Monitor(n_steps=300, eval_acts=data[3072:], curve_every=300)
    _train(data, free, steps=300)
    steered = Monitor(n_steps=300, eval_acts=data[3072:], curve_every=300, target_l0=4.0, control_every=10)
    _train(data, steered, steps=300)
    assert steered.l1_history and all(s <= 0.7 * 300 for s, _, _ in steered.l1_history)
    l0_free, l0_steered = free.curve[-1]["l0"], steered.curve[-1]["l0"]
    assert abs(l0_steered - 4.0) < abs(l0_free - 4.0)
    assert l0_steered == pytest.approx(4.0, rel=0.3)
    with pytest.raises(ValueError, match="only standard SAEs"):
        _train(data, Monitor(n_steps=20, target_l0=4.0, control_every=5), steps=20, arch="batchtopk", k=4)


def test_drift_reads_the_last_tenth():
    curve = [{"step": s, "l0": v} for s, v in ((0, 50.0), (50, 30.0), (90, 21.0), (100, 20.0))]
    assert drift(curve, "l0") == pytest.approx(0.05)
    assert drift(curve[:1], "l0") != drift(curve[:1], "l0")  # NaN
    with pytest.raises(ValueError, match="eval_acts"):
        Monitor(n_steps=10, curve_every=5)
