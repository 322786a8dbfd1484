"""The Colab presets through the real hub loaders, offline: no loader is patched.

A hub-shaped cache (``tests/hub_standin.py``: stand-in files laid out as a Hugging Face download leaves them)
is written once under ``.cache/hub-standin``; every test runs the package in a subprocess with ``HF_HOME``
pointing at it and ``HF_HUB_OFFLINE=1`` (the hub libraries read their cache locations when imported, so a
subprocess is the only clean way to point them elsewhere).  ``pytest -m hub_standin`` runs these alone.
"""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metasae_utils.artifacts import REPO

pytestmark = pytest.mark.hub_standin

CACHE = REPO / ".cache" / "hub-standin"
FS = "blocks.8.hook_resid_pre_{}"
#: gpt2-paper with its sizes cut: two of the eight SAEs, a few thousand tokens, short meta-SAE runs
SMALL = {"device": "cpu", "widths": "[768, 1536]", "sae_ids": f"[{FS.format(768)}, {FS.format(1536)}]",
         "context_size": "64", "n_train_tokens": "4096", "n_eval_tokens": "1024", "model_batch_size": "4",
         "train_batch_size": "512",
         "meta_steps": "60", "meta_batch_size": "512", "meta_fraction": "0.25", "synthetic_size": "small",
         "meta_base_width": "1536", "named_latent": "7",
         "arch_compare": "[standard]", "arch_train_epochs": "0.5", "arch_meta_steps": "40",
         "arch_synthetic_steps": "100", "n_ce_seqs": "2", "cell_timeout": "900", "absorption_words": "8"}


@pytest.fixture(scope="session")
def hf_home():
    """The stand-in cache, built once (~20 s, ~800 MB) and reused while ``tests/hub_standin.py`` is unchanged."""
    sys.path.insert(0, str(Path(__file__).parent))
    import hub_standin
    stamp = CACHE / "standin.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == hub_standin.VERSION:
        return CACHE
    import shutil
    tmp = CACHE.with_name(f"hub-standin.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    hub_standin.make_cache(tmp)
    shutil.rmtree(CACHE, ignore_errors=True)
    tmp.rename(CACHE)
    return CACHE


def _env(hf_home: Path, tmp_path: Path) -> dict:
    """The environment of an offline run on the stand-in cache, with a private artifact cache and results folder;
    the kernels import this checkout's package (``PYTHONPATH``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               METASAE_CACHE=str(tmp_path / "cache"), METASAE_RESULTS=str(tmp_path / "results"),
               PYTHONPATH=str(REPO), OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), TQDM_DISABLE="1")
    return env


def _seed_synthetic(cache: Path) -> None:
    """Hard-link the synthetic ground-truth entries (data and SAEs: model-independent, keyed by their spec) of the
    current artifact cache into the private ``cache``: ``make test`` has built them for 'ci' (same size and seed),
    so the test does not train them again.  Hub-model entries are never shared: the stand-in's activations are
    keyed by model name and must not meet a real ``gpt2-small``'s."""
    import shutil

    from metasae_utils import artifacts
    for step in ("synthetic", "synthetic_sae"):
        src = artifacts.cache_root() / step
        if src.is_dir() and not (cache / step).exists():
            try:
                shutil.copytree(src, cache / step, copy_function=os.link)
            except OSError:
                shutil.rmtree(cache / step, ignore_errors=True)


def _python(code: str, env: dict, timeout: int = 300) -> str:
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_loaders_resolve_from_the_hub_shaped_cache(hf_home, tmp_path):
    """SAELens's registry + legacy cfg.json handling, Gemma Scope's params.npz, TransformerLens's gpt2 and the
    datasets call, all unpatched, through the package's own loaders."""
    out = _python("""
import json, torch
from metasae_utils import families, sources
from metasae_utils.presets import resolve
cfg = resolve("gpt2-paper", device="cpu", widths=[768, 1536], meta_base_width=1536, named_latent=7,
              sae_ids=["blocks.8.hook_resid_pre_768", "blocks.8.hook_resid_pre_1536"])
fam = families.load_family(cfg, 768)
model = sources.load_model(cfg)
corpus = sources.load_corpus(cfg)
gcfg = resolve("gemma-scope", device="cpu", widths=[16384], sae_ids=["layer_12/width_16k/canonical"])
gem = families.load_pretrained_family(gcfg, "cpu")
s = fam[0].sae
print(json.dumps({"widths": [m.width for m in fam], "cls": type(s).__name__, "hook": s.cfg.metadata.hook_name,
    "b_dec_in": s.cfg.apply_b_dec_to_input, "norm": s.cfg.normalize_activations,
    "kwargs": s.cfg.metadata.model_from_pretrained_kwargs, "layers": model.cfg.n_layers,
    "d_model": model.cfg.d_model, "vocab": model.cfg.d_vocab, "bos": model.tokenizer.bos_token_id,
    "docs": len(corpus.train) + len(corpus.eval), "gemma": [type(gem[0].sae).__name__, gem[0].sae.cfg.d_in,
    gem[0].width, gem[0].sae.cfg.metadata.hook_name]}))
""", _env(hf_home, tmp_path))
    got = json.loads(out.strip().splitlines()[-1])
    assert got["widths"] == [768, 1536] and got["cls"] == "StandardSAE"
    assert got["hook"] == "blocks.8.hook_resid_pre" and got["b_dec_in"] is True and got["norm"] == "none"
    assert got["kwargs"] == {"center_writing_weights": True}
    assert (got["layers"], got["d_model"], got["vocab"], got["bos"]) == (12, 768, 50257, 50256)
    assert got["docs"] > 100
    assert got["gemma"] == ["JumpReLUSAE", 2304, 16384, "blocks.12.hook_resid_post"]


def _numbers(obj):
    """Every number in a JSON value."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return []
    if isinstance(obj, (int, float)):
        return [obj]
    items = obj.values() if isinstance(obj, dict) else obj
    return [x for v in items for x in _numbers(v)]


def test_gpt2_paper_builds_every_chapter_offline(hf_home, tmp_path):
    """``build --preset gpt2-paper`` (sizes cut) runs every chapter on the stand-in cache end to end; every
    chapter's verdict file is written and its numbers are finite."""
    from metasae_utils import runner
    args = [sys.executable, "-m", "metasae_utils", "build", "--preset", "gpt2-paper", "--out", str(tmp_path / "out")]
    for k, v in SMALL.items():
        args += ["-p", k, v]
    _seed_synthetic(tmp_path / "cache")
    t0 = time.time()
    r = subprocess.run(args, cwd=REPO, env=_env(hf_home, tmp_path), capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    print(f"gpt2-paper on the stand-in cache: {time.time() - t0:.0f} s")
    stems = runner.chapters()
    assert all((tmp_path / "out" / "book" / f"{s}.ipynb").exists() for s in stems)
    results = tmp_path / "results" / "gpt2-paper"
    verdicts = sorted(p.name for p in results.glob("*.json"))
    assert {"sae_families.json", "stitching.json", "meta_saes.json"} <= set(verdicts), verdicts
    for p in results.glob("*.json"):
        data = json.loads(p.read_text())
        bad = [x for x in _numbers(data) if isinstance(x, float) and not math.isfinite(x)]
        assert not bad, (p.name, bad[:5])
    assert not list(results.glob("*.partial.json"))


def test_a_missing_file_in_the_offline_cache_fails_in_seconds_naming_it(tmp_path):
    """HF_HUB_OFFLINE with an empty cache: the build stops before any notebook, naming the missing file."""
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "metasae_utils", "build", "--preset", "gpt2-paper", "--out",
                        str(tmp_path / "out")], cwd=REPO, env=_env(tmp_path / "empty-hf", tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and time.time() - t0 < 60
    assert "HF_HUB_OFFLINE is set and the local Hugging Face cache lacks model 'gpt2-small'" in r.stderr
    assert "config.json" in r.stderr and not (tmp_path / "out" / "book").exists()
