"""``python -m metasae_utils compare`` on hand-built SAELens SAEs with a known answer, and on bad input.

The hand-built case (``d_in`` 16, an orthonormal basis ``q`` of random directions, activations with non-negative
coefficients on ``q[0..6]`` only):

* SMALL (4 latents): ``q0..q3``, encoder = decoder, so it reconstructs ``q0..q3`` and leaves ``q4..q6`` as error;
* LARGE (8): ``q0, q1, q2`` (copies: reconstruction), ``0.8 q3 + 0.6 q8`` (a split, cos 0.8: reconstruction),
  ``q4, q5, q6`` (novel) and ``q7`` (never fires: dead);
* TWIN (8): ``q0..q5``, ``0.6 q6 + 0.8 q9`` (cos 0.6 to LARGE's ``q6``: novel against LARGE) and ``q12`` (dead).

So over LARGE's 7 live latents: novel 3/7, matched share 4/7, every novel latent lowers SMALL's MSE and every
reconstruction latent raises it, Hungarian cosine (1 + 1 + 1 + 0.8) / 4; the twin: novel vs LARGE 1/7, novel vs
SMALL 3/7, Hungarian cosine to LARGE (5 + 0.8 + 0.6) / 7.  Counting the dead latent would give novel 4/8.
"""

import json
import math

import pytest
import torch

from metasae_utils.__main__ import main
from metasae_utils.presets import ConfigError

D_IN, N = 16, 600
B_ENC = -1e-3  # a hair of threshold: float rounding along an unused direction must not count as firing


def basis():
    q, _ = torch.linalg.qr(torch.randn(D_IN, D_IN, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    return q.T  # rows: orthonormal directions


def make_sae(rows: torch.Tensor, hook: str | None = "blocks.3.hook_resid_pre", cls=None):
    from sae_lens import StandardSAE, StandardSAEConfig
    cls = cls or StandardSAE
    cfg = StandardSAEConfig(d_in=rows.shape[1], d_sae=rows.shape[0])
    if hook:
        cfg.metadata.hook_name = hook
    sae = cls(cfg)
    with torch.no_grad():
        sae.W_dec.copy_(rows.float())
        sae.W_enc.copy_(rows.T.float())
        sae.b_enc.fill_(B_ENC)
        sae.b_dec.zero_()
    return sae


def known_case():
    q = basis()
    small = q[:4]
    large = torch.stack([q[0], q[1], q[2], 0.8 * q[3] + 0.6 * q[8], q[4], q[5], q[6], q[7]])
    twin = torch.stack([q[0], q[1], q[2], q[3], q[4], q[5], 0.6 * q[6] + 0.8 * q[9], q[12]])
    coef = 0.5 + torch.rand(N, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    acts = (coef @ q[:7]).float()
    return small, large, twin, acts


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    small, large, twin, acts = known_case()
    for name, rows in (("small", small), ("large", large), ("twin", twin)):
        make_sae(rows).save_model(str(root / name))
    torch.save(acts, root / "acts.pt")
    return root


@pytest.fixture(scope="module")
def report(folders):
    out = folders / "out"
    rc = main(["compare", str(folders / "small"), str(folders / "large"), "--twin", str(folders / "twin"),
               "--activations", str(folders / "acts.pt"), "--out", str(out), "--random-order"])
    assert rc == 0
    return json.loads((out / "report.json").read_text()), (out / "report.html").read_text()


def test_known_answer(report):
    r, _ = report
    assert (r["n_large"], r["live"], r["dead"], r["rows"]) == (8, 7, 1, N)
    assert (r["novel"], r["reconstruction"]) == (3, 4)
    assert r["novel_fraction"] == pytest.approx(3 / 7)
    assert r["matched_share"] == pytest.approx(4 / 7)
    assert r["hungarian_cosine"] == pytest.approx((3 + 0.8) / 4, abs=1e-6)
    assert r["novel_lowers"] == 1.0 and r["recon_raises"] == 1.0 and r["novel_raises"] == 0.0
    assert r["self_duplicate"] == 0.0  # a copy of a SMALL latent doubles an exact reconstruction: never lowers
    assert r["twin_novel_fraction"] == pytest.approx(1 / 7)
    t = r["twin"]
    assert (t["width"], t["dead"]) == (8, 1)
    assert t["matched_share_vs_large"] == pytest.approx(6 / 7)
    assert t["hungarian_vs_large"] == pytest.approx((5 + 0.8 + 0.6) / 7, abs=1e-6)
    vs = t["vs_small"]
    assert vs["novel_fraction"] == pytest.approx(3 / 7) and vs["hungarian_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert vs["novel_lowers"] == 1.0 and vs["recon_raises"] == 1.0


def test_path_and_quadrants(report):
    r, _ = report
    path = r["path"]
    assert path[0]["mse"] == pytest.approx(r["base"]["mse"], rel=1e-5)
    assert path[-1]["mse"] == pytest.approx(r["large"]["mse"], rel=1e-5)
    assert r["large"]["mse"] < r["base"]["mse"]  # LARGE holds the novel directions SMALL misses
    q = r["quadrants"]
    assert q["n"] == 7 and q["agreement"] == 1.0
    assert r["interpolation"]["monotonicity_random"] is not None  # --random-order


def test_random_order_path_is_opt_in(folders, tmp_path):
    from metasae_utils.compare import compare
    r = compare(str(folders / "small"), str(folders / "large"), tmp_path, activations=str(folders / "acts.pt"))
    assert r["interpolation"]["monotonicity_random"] is None and r["twin"] is None and r["twin_novel_fraction"] is None
    assert r["novel_fraction"] == pytest.approx(3 / 7)
    html = (tmp_path / "report.html").read_text()
    assert "random order" in html and html.count("Plotly.newPlot") == 2


def test_html_is_self_contained(report):
    r, html = report
    assert html.count("Plotly.newPlot") == 2 and "compare-plane" in html and "compare-path" in html
    assert "<script src" not in html and "<link" not in html  # plotly.js inlined, nothing fetched
    assert "42.9 %" in html and "57.1 %" in html  # novel fraction and matched share in the tables
    assert len(html) > 1_000_000  # the plotly.js bundle is inside


def test_hungarian_is_skipped_beyond_its_memory_limit(folders, tmp_path, monkeypatch, capsys):
    from metasae_utils.compare import numbers
    monkeypatch.setattr(numbers, "HUNGARIAN_MAX_CELLS", 7 * 4 - 1)  # LARGE's 7 live latents x SMALL's 4
    assert main(["compare", str(folders / "small"), str(folders / "large"), "--activations",
                 str(folders / "acts.pt"), "--out", str(tmp_path)]) == 0
    assert "Hungarian cosine skipped" in capsys.readouterr().out
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["hungarian_cosine"] is None and r["novel_fraction"] == pytest.approx(3 / 7)


def test_dead_latents_would_change_the_answer():
    """The control of test_known_answer: counting LARGE's dead latent moves the novel fraction from 3/7 to 4/8."""
    from metasae_utils.stitching import classify_latents
    small, large, _, _ = known_case()
    assert classify_latents(make_sae(small), make_sae(large)).novel_fraction == pytest.approx(4 / 8)


# -- bad input: each stops before any compute, naming the problem -----------------------------------------------

@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if the numbers are ever computed."""
    from metasae_utils.compare import numbers

    def boom(*a, **k):
        raise AssertionError("compare computed numbers on bad input")
    monkeypatch.setattr(numbers, "numbers", boom)


def run_bad(args, capsys):
    rc = main(["compare", *map(str, args)])
    err = capsys.readouterr().err.strip()
    assert rc == 1, err
    assert err.startswith("error: ") and "\n" not in err  # one line, as build and cache report errors
    return err


def test_missing_folder(folders, tmp_path, capsys, no_compute):
    err = run_bad([tmp_path / "nope", folders / "large", "--activations", folders / "acts.pt", "--out", tmp_path],
                  capsys)
    assert "SMALL" in err and "no such folder" in err
    (tmp_path / "empty").mkdir()
    err = run_bad([folders / "small", tmp_path / "empty", "--activations", folders / "acts.pt", "--out", tmp_path],
                  capsys)
    assert "LARGE" in err and "no cfg.json" in err


def test_mismatched_d_in(folders, tmp_path, capsys, no_compute):
    make_sae(torch.eye(12)[:8]).save_model(str(tmp_path / "narrow"))
    err = run_bad([folders / "small", tmp_path / "narrow", "--activations", folders / "acts.pt", "--out", tmp_path],
                  capsys)
    assert "d_in differs" in err and "16" in err and "12" in err


def test_mismatched_hook(folders, tmp_path, capsys, no_compute):
    _, large, _, _ = known_case()
    make_sae(large, hook="blocks.5.hook_resid_pre").save_model(str(tmp_path / "other_hook"))
    err = run_bad([folders / "small", tmp_path / "other_hook", "--activations", folders / "acts.pt", "--out", tmp_path],
                  capsys)
    assert "hook differs" in err and "blocks.5.hook_resid_pre" in err and "blocks.3.hook_resid_pre" in err


def test_unsupported_architecture(folders, tmp_path, capsys, no_compute):
    from sae_lens import TopKSAE, TopKSAEConfig
    TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=8, k=2)).save_model(str(tmp_path / "topk"))
    err = run_bad([folders / "small", tmp_path / "topk", "--activations", folders / "acts.pt", "--out", tmp_path],
                  capsys)
    assert "LARGE" in err and "'topk'" in err and "does not support" in err


def test_activations_of_the_wrong_width(folders, tmp_path, capsys, no_compute):
    torch.save(torch.randn(50, D_IN + 1), tmp_path / "wide.pt")
    err = run_bad([folders / "small", folders / "large", "--activations", tmp_path / "wide.pt", "--out", tmp_path],
                  capsys)
    assert "--activations" in err and "width 17" in err and "d_in = 16" in err
    err = run_bad([folders / "small", folders / "large", "--activations", tmp_path / "none.pt", "--out", tmp_path],
                  capsys)
    assert "no such file" in err
    torch.save(torch.randn(D_IN), tmp_path / "flat.pt")
    err = run_bad([folders / "small", folders / "large", "--activations", tmp_path / "flat.pt", "--out", tmp_path],
                  capsys)
    assert "expected a tensor of shape (n, 16)" in err
    torch.save(torch.full((4, D_IN), float("nan")), tmp_path / "nan.pt")
    err = run_bad([folders / "small", folders / "large", "--activations", tmp_path / "nan.pt", "--out", tmp_path],
                  capsys)
    assert "NaN" in err


def test_large_must_be_wider(folders, tmp_path, capsys, no_compute):
    err = run_bad([folders / "large", folders / "small", "--activations", folders / "acts.pt", "--out", tmp_path],
                  capsys)
    assert "must be wider" in err


def test_unknown_release_and_id(folders, tmp_path, capsys, no_compute):
    err = run_bad(["gpt2-small-res-jb-feature-splittin/blocks.8.hook_resid_pre_768", folders / "large",
                   "--activations", folders / "acts.pt", "--out", tmp_path], capsys)
    assert "not a SAELens release" in err and "gpt2-small-res-jb-feature-splitting" in err
    err = run_bad(["gpt2-small-res-jb-feature-splitting/blocks.8.hook_resid_pre_700", folders / "large",
                   "--activations", folders / "acts.pt", "--out", tmp_path], capsys)
    assert "has no SAE 'blocks.8.hook_resid_pre_700'" in err


def test_offline_cache_without_the_sae(folders, tmp_path, capsys, monkeypatch, no_compute):
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    err = run_bad(["gpt2-small-res-jb-feature-splitting/blocks.8.hook_resid_pre_768", folders / "large",
                   "--activations", folders / "acts.pt", "--out", tmp_path], capsys)
    assert "HF_HUB_OFFLINE" in err and "blocks.8.hook_resid_pre_768/cfg.json" in err


def test_preset_of_another_hook(folders, tmp_path, monkeypatch, no_compute):
    from metasae_utils import sources

    def no_model(cfg):
        raise AssertionError("the model was loaded although the hooks differ")
    monkeypatch.setattr(sources, "load_model", no_model)
    _, large, _, _ = known_case()
    for name, rows in (("s9", known_case()[0]), ("l9", large)):
        make_sae(rows, hook="blocks.9.hook_resid_pre").save_model(str(tmp_path / name))
    from metasae_utils.compare import compare
    with pytest.raises(ConfigError, match="reads 'blocks.9.hook_resid_pre' but preset 'ci' collects"):
        compare(str(tmp_path / "s9"), str(tmp_path / "l9"), tmp_path / "out", preset="ci")


def test_unknown_preset_fails_before_the_saes_load(tmp_path, capsys):
    err = run_bad(["no/such-sae", "b", "--preset", "ofline", "--out", tmp_path], capsys)
    assert "'ofline'" in err and "offline" in err  # the preset's error, not the SAE's: it was checked first


def test_exactly_one_activation_source(folders, tmp_path):
    from metasae_utils.compare import compare
    with pytest.raises(ConfigError, match="exactly one of --activations"):
        compare(str(folders / "small"), str(folders / "large"), tmp_path)
    with pytest.raises(SystemExit):  # argparse: --activations and --preset are mutually exclusive
        main(["compare", "a", "b", "--activations", "x.pt", "--preset", "ci", "--out", str(tmp_path)])


def test_release_pairs_from_an_offline_hub_cache(tmp_path):
    """SMALL and LARGE as ``release/sae_id`` pairs, loaded by ``SAE.from_pretrained`` from a hub-shaped offline cache
    (tests/hub_standin.py's feature-splitting files at widths 768 and 1536), in a fresh process with
    ``HF_HUB_OFFLINE=1`` and ``HF_HOME`` set before the hub libraries load."""
    import os
    import subprocess
    import sys

    from hub_standin import FS_REPO, _put, sae_files, split_decoder
    g = torch.Generator().manual_seed(0)
    parent = split_decoder(None, 768, 768, g)
    child = split_decoder(parent, 768, 1536, g)
    for w, dec in ((768, parent), (1536, child)):
        _put(tmp_path / "hf", FS_REPO, {f"blocks.8.hook_resid_pre_{w}/{k}": v for k, v in sae_files(dec, w).items()})
    torch.save(torch.randn(300, 768, generator=g), tmp_path / "acts.pt")
    release = "gpt2-small-res-jb-feature-splitting/blocks.8.hook_resid_pre_"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "metasae_utils", "compare", release + "768", release + "1536",
                          "--activations", "acts.pt", "--out", "out"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["width"] for s in r["saes"]] == [768, 1536]
    assert all(s["hook"] == "blocks.8.hook_resid_pre" for s in r["saes"])
    assert r["live"] + r["dead"] == 1536 and r["rows"] == 300
    # hub_standin builds 65 % of the larger decoder as noisy copies of the smaller one (cosine about 0.85); on random
    # activations every latent fires, so the report's matched share is the decoders' own
    from metasae_utils.canonicality import matched_share
    assert r["dead"] == 0
    assert r["matched_share"] == pytest.approx(matched_share(child, parent), abs=1e-6)
    assert r["matched_share"] == pytest.approx(0.65, abs=0.01)


def _fake_sources(monkeypatch, d_model, acts):
    """sources' model, corpus, tokens and activations replaced by stand-ins (the preset path without a model)."""
    from types import SimpleNamespace

    from metasae_utils import sources
    monkeypatch.setattr(sources, "load_model", lambda cfg: SimpleNamespace(cfg=SimpleNamespace(d_model=d_model)))
    monkeypatch.setattr(sources, "load_corpus", lambda cfg: None)
    monkeypatch.setattr(sources, "tokens_for", lambda model, cfg, corpus, split, n: None)
    collected = []

    def collect(model, cfg, tokens, split, progress=True):
        collected.append((cfg.hook, split))
        return SimpleNamespace(acts=acts)
    monkeypatch.setattr(sources, "collect_activations", collect)
    return collected


def test_preset_collects_held_out_activations(folders, tmp_path, monkeypatch):
    """``--preset ci`` (hook blocks.3.hook_resid_pre, as the hand-built SAEs say): the held-out split at that hook."""
    from metasae_utils.compare import compare
    collected = _fake_sources(monkeypatch, D_IN, known_case()[3])
    r = compare(str(folders / "small"), str(folders / "large"), tmp_path, preset="ci")
    assert collected == [("blocks.3.hook_resid_pre", "eval")]
    assert r["novel_fraction"] == pytest.approx(3 / 7) and r["dead"] == 1 and "preset 'ci'" in r["activations"]


def test_preset_model_of_another_width(folders, tmp_path, monkeypatch):
    from metasae_utils.compare import compare
    collected = _fake_sources(monkeypatch, 576, None)
    with pytest.raises(ConfigError, match="has width 576 at blocks.3.hook_resid_pre, but the SAEs read vectors of "
                                          "width d_in = 16"):
        compare(str(folders / "small"), str(folders / "large"), tmp_path, preset="ci")
    assert collected == []  # stopped before any forward pass


def _jumprelu(rows: torch.Tensor, folder) -> None:
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=rows.shape[1], d_sae=rows.shape[0]))
    with torch.no_grad():
        sae.W_dec.copy_(rows.float())
        sae.W_enc.copy_(rows.T.float())
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.threshold.fill_(-B_ENC)
    sae.save_model(str(folder))


def test_jumprelu_pair_gives_the_same_known_answer(folders, tmp_path):
    """The known case as JumpReLU SAEs (threshold instead of the negative encoder bias): the same answer."""
    from metasae_utils.compare import compare
    small, large, _, acts = known_case()
    _jumprelu(small, tmp_path / "small")
    _jumprelu(large, tmp_path / "large")
    r = compare(str(tmp_path / "small"), str(tmp_path / "large"), tmp_path / "out",
                activations=str(folders / "acts.pt"))
    assert r["saes"][1]["architecture"] == "jumprelu" and (r["live"], r["dead"]) == (7, 1)
    assert r["novel_fraction"] == pytest.approx(3 / 7) and r["hungarian_cosine"] == pytest.approx(0.95, abs=1e-6)
    with pytest.raises(ConfigError, match="architectures differ: small is StandardSAE, large is JumpReLUSAE"):
        compare(str(folders / "small"), str(tmp_path / "large"), tmp_path / "out2",
                activations=str(folders / "acts.pt"))
