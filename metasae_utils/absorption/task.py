"""The first-letter task of SAEBench's absorption eval, built once per model and hook and shared by every SAE.

SAEBench 0.6.0 (``sae_bench.evals.absorption``) asks the model ``"<10 ICL examples>\\n{word} has the first
letter:"`` for single-token alphabetic words (``sae_bench.evals.absorption.vocab.get_alpha_tokens``), reads the residual stream
at the word (position -6), and trains a 26-way one-vs-rest linear probe on 80 % of the words.  This module calls
SAEBench's own functions for each of those steps (vocabulary, ``create_icl_prompt``, ``train_multi_probe``
with the arguments of SAEBench's ``train_and_save_probes``) and differs in two declared ways, both forced by a CPU
budget:

* a **sample** of the vocabulary, ``per_letter`` words per first letter (SAEBench: all ~47k alphabetic tokens of
  SmolLM2's vocabulary), split 80 / 20 **within each letter** so that every letter has test words (SAEBench's
  split is over the whole vocabulary, where every letter is frequent enough);
* the model runs once on the held-out prompts and the absorption step reuses those activations (SAEBench's
  calculator draws fresh ICL examples for the same words and runs the model again per SAE).

Activations are read at the preset's hook (SAEBench reads ``blocks.L.hook_resid_post``, which is
``blocks.L+1.hook_resid_pre``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

#: SAEBench's defaults (``AbsorptionEvalConfig`` / ``train_and_save_probes``)
TEMPLATE = "{word} has the first letter:"
TOKEN_POS = -6
MAX_ICL_EXAMPLES = 10
PROBE_BATCH, PROBE_EPOCHS, PROBE_LR, PROBE_WEIGHT_DECAY = 64, 50, 1e-2, 1e-4
TEST_FRACTION = 0.2
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class Task:
    """Words, labels (letter index 0..25), activations and the probe.

    ``train_acts`` (n_train, d_model) and ``test_acts`` (n_test, d_model) float32; ``train_words`` / ``test_words``
    the words (SAEBench's token strings, leading space kept); ``train_labels`` / ``test_labels`` (n,) long;
    ``probe_weight`` (26, d_model), ``probe_bias`` (26,): SAEBench's ``LinearProbe`` parameters."""

    train_words: list[str]
    train_labels: torch.Tensor
    train_acts: torch.Tensor
    test_words: list[str]
    test_labels: torch.Tensor
    test_acts: torch.Tensor
    probe_weight: torch.Tensor
    probe_bias: torch.Tensor

    def probe(self):
        """SAEBench's ``LinearProbe`` holding this task's weights."""
        from sae_bench.evals.absorption.probing import LinearProbe
        p = LinearProbe(self.probe_weight.shape[1], num_outputs=self.probe_weight.shape[0])
        with torch.no_grad():
            p.fc.weight.copy_(self.probe_weight)
            p.fc.bias.copy_(self.probe_bias)
        return p.eval()

    def state(self) -> dict:
        return dict(self.__dict__)


def letter_of(word: str) -> int:
    """Index 0..25 of ``word``'s first letter, as SAEBench's ``first_letter`` reads it (leading space dropped)."""
    return LETTERS.index(word.strip()[0].lower())


def sample_words(vocab: list[str], per_letter: int, seed: int) -> tuple[list[str], list[str]]:
    """``per_letter`` words of each first letter (all of them where fewer exist), split into train / test within
    each letter (test: ``round(TEST_FRACTION * n)``, at least 1; train at least 1).  Raises ValueError when a letter
    has fewer than 2 words or ``per_letter`` < 2."""
    if per_letter < 2:
        raise ValueError(f"absorption_words must be >= 2 words per letter (one train, one test); got {per_letter}")
    rng = random.Random(seed)
    by_letter: dict[int, list[str]] = {}
    for w in sorted(set(vocab)):
        by_letter.setdefault(letter_of(w), []).append(w)
    train, test = [], []
    for i, letter in enumerate(LETTERS):
        words = by_letter.get(i, [])
        if len(words) < 2:
            raise ValueError(f"the vocabulary has {len(words)} single-token words starting with {letter!r}; "
                             "the first-letter task needs at least 2 per letter")
        chosen = rng.sample(words, min(per_letter, len(words)))
        n_test = min(max(1, round(TEST_FRACTION * len(chosen))), len(chosen) - 1)
        test += chosen[:n_test]
        train += chosen[n_test:]
    return train, test


def prompts(words: list[str], examples: list[str], seed: int) -> list[str]:
    """SAEBench's ICL prompts (``create_icl_prompt``: ``MAX_ICL_EXAMPLES`` examples drawn from ``examples``, never the
    word itself, separator prepended as SAEBench's probe data does) for each word, with Python's ``random`` seeded."""
    from sae_bench.evals.absorption.prompting import create_icl_prompt, first_letter_formatter
    state = random.getstate()
    random.seed(seed)
    try:
        return [create_icl_prompt(w, examples=examples, base_template=TEMPLATE, answer_formatter=first_letter_formatter(),
                                  max_icl_examples=MAX_ICL_EXAMPLES, prepend_separator_to_first_example=True).base
                for w in words]
    finally:
        random.setstate(state)


@torch.no_grad()
def word_activations(model, hook: str, texts: list[str], batch_size: int, position: int = TOKEN_POS,
                     desc: str = "prompts") -> torch.Tensor:
    """Activations (n, d_model) float32 at ``hook`` and token ``position`` (from the end) of each prompt.  Prompts
    are tokenised as SAEBench's ``model.run_with_cache(strings)`` does (BOS prepended) and run in groups of equal
    length, so that the position counts from each prompt's own end."""
    from ..sources import forward_to_hook
    toks = [model.to_tokens(t)[0] for t in texts]
    out = torch.empty(len(texts), model.cfg.d_model)
    by_len: dict[int, list[int]] = {}
    for i, t in enumerate(toks):
        by_len.setdefault(len(t), []).append(i)
    with tqdm(total=len(texts), desc=desc) as bar:
        for idx in by_len.values():
            for s in range(0, len(idx), batch_size):
                rows = idx[s:s + batch_size]
                acts = forward_to_hook(model, torch.stack([toks[i] for i in rows]), hook)
                out[rows] = acts[:, position, :].float().cpu()
                bar.update(len(rows))
    return out


def train_probe(acts: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SAEBench's 26-way probe (``train_multi_probe`` with ``train_and_save_probes``' batch 64, 50 epochs, lr 1e-2,
    weight decay 1e-4) on ``acts`` (n, d) float32, ``labels`` (n,) long: ``(weight (26, d), bias (26,))``."""
    from sae_bench.evals.absorption.probing import train_multi_probe
    torch.manual_seed(seed)
    y = torch.nn.functional.one_hot(labels, num_classes=len(LETTERS))
    probe = train_multi_probe(acts.clone(), y, num_probes=len(LETTERS), batch_size=PROBE_BATCH,
                              num_epochs=PROBE_EPOCHS, lr=PROBE_LR, weight_decay=PROBE_WEIGHT_DECAY,
                              show_progress=True, device=torch.device("cpu"))
    return probe.fc.weight.detach().clone().float(), probe.fc.bias.detach().clone().float()


def build(model, hook: str, per_letter: int, seed: int, batch_size: int = 32) -> Task:
    """The whole task: vocabulary sample, SAEBench prompts, activations, probe (see the module docstring)."""
    from sae_bench.evals.absorption.vocab import get_alpha_tokens
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer: the first-letter task needs one")
    vocab = [w for w in get_alpha_tokens(model.tokenizer) if w.strip()]
    train, test = sample_words(vocab, per_letter, seed)
    train_acts = word_activations(model, hook, prompts(train, train, seed), batch_size, desc="train prompts")
    test_acts = word_activations(model, hook, prompts(test, test, seed + 1), batch_size, desc="test prompts")
    train_y = torch.tensor([letter_of(w) for w in train])
    test_y = torch.tensor([letter_of(w) for w in test])
    weight, bias = train_probe(train_acts, train_y, seed)
    return Task(train, train_y, train_acts, test, test_y, test_acts, weight, bias)


def cached(model, hook: str, model_key: str, per_letter: int, seed: int, batch_size: int = 32) -> Task:
    """:func:`build` through the artifact cache, keyed by ``model_key`` (what identifies the model and its
    dtype), ``hook``, ``per_letter``, ``seed`` and the SAEBench version."""
    from importlib.metadata import version

    from .. import artifacts
    spec = {"model": model_key, "hook": hook, "per_letter": per_letter, "seed": seed,
            "sae_bench": version("sae-bench"), "template": TEMPLATE, "pos": TOKEN_POS}
    path = artifacts.entry("absorption_task", spec, 1).get_or_make(
        "task.pt", lambda p: torch.save(build(model, hook, per_letter, seed, batch_size).state(), p))
    return Task(**torch.load(path, weights_only=False))
