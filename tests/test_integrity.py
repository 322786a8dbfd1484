"""Integrity of real artifacts: a cached activation chunk and a SAE saved by ``training.cached_sae``, truncated or
with one byte flipped, are detected when loaded, named in a warning, rebuilt, and never used."""

import pytest
import torch

from metasae_utils import artifacts, sources, training
from metasae_utils.presets import resolve


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # one bit of the last tensor's data: the file still loads, with a wrong number
        pos = len(data) - 3
        path.write_bytes(data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1:])


def _events(root, event, name):
    return sum(r["event"] == event and r["name"] == name for r in artifacts.read_log(root))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_activation_chunk_is_named_rebuilt_never_used(gpt2_standin, tmp_cache, how):
    cfg = resolve("gpt2-paper", context_size=16, model_batch_size=4, device="cpu")
    tokens = torch.randint(0, 50257, (10, 16), generator=torch.Generator().manual_seed(3))
    first = sources.collect_activations(gpt2_standin, cfg, tokens, "train", chunk_seqs=4, progress=False)
    chunk = next(tmp_cache.rglob("chunk_00001.safetensors"))
    _damage(chunk, how)
    with pytest.warns(artifacts.CorruptArtifactWarning, match=r"chunk_00001\.safetensors failed its checksum"):
        again = sources.collect_activations(gpt2_standin, cfg, tokens, "train", chunk_seqs=4, progress=False)
    assert again.n_chunks_computed == 1 and torch.equal(again.acts, first.acts)
    assert _events(tmp_cache, "corrupt", "chunk_00001.safetensors") == 1
    assert _events(tmp_cache, "computed", "chunk_00001.safetensors") == 2


@pytest.fixture(scope="module")
def tiny_data():
    return torch.randn(512, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_saved_sae_is_named_retrained_never_used(tiny_data, tmp_cache, one_thread, how):
    calls = []

    def train():
        calls.append(1)
        return training.train_sae(tiny_data, "standard", 32, n_steps=20, batch_size=64, lr=1e-3, seed=1,
                                  progress=False)

    spec = {"test": "integrity"}
    sae, path = training.cached_sae("saes", spec, train)
    # SAE.load_from_disk memory-maps the file: keep a copy and let go of the mapping before damaging it in place
    state = {k: v.clone() for k, v in sae.state_dict().items()}
    del sae
    _damage(path / "sae_weights.safetensors", how)
    with pytest.warns(artifacts.CorruptArtifactWarning, match=r"sae_weights\.safetensors"):
        sae2, path2 = training.cached_sae("saes", spec, train)
    assert len(calls) == 2 and path2 == path
    for name, p in state.items():
        assert torch.equal(sae2.state_dict()[name], p), name
    # and now it is intact again: reused, not retrained
    training.cached_sae("saes", spec, train)
    assert len(calls) == 2 and _events(tmp_cache, "corrupt", "sae") == 1
