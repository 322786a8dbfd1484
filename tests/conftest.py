import os

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Small training steps run faster on one thread when the other core is busy (restored afterwards)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private artifact cache for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("METASAE_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def gpt2_standin():
    """A GPT-2-small-shaped HookedTransformer with random weights: the hub path's stand-in (no download)."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
                                  n_ctx=1024, act_fn="gelu_new", normalization_type="LN", seed=0,
                                  default_prepend_bos=True, original_architecture="GPT2LMHeadModel")
    return HookedTransformer(cfg).eval()
