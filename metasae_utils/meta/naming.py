"""Picking a latent to show by a rule written down beforehand, not by browsing: the latent whose top held-out
contexts are most concentrated on one proper name."""

from __future__ import annotations

from collections import Counter

import torch


def is_proper_name(tokenizer, piece: str) -> bool:
    """A decoded token ``piece`` that looks like a name: capitalised, alphabetic, at least 3 letters, and its
    lower-case form is not itself one token of the vocabulary (so sentence-initial 'The', 'This', 'We' are not
    names, while 'Lincoln' is when ' lincoln' splits into pieces)."""
    word = piece.strip()
    if len(word) < 3 or not word.isalpha() or not word[0].isupper() or not word[1:].islower():
        return False
    lower = piece[: len(piece) - len(piece.lstrip())] + word.lower()
    return len(tokenizer(lower, add_special_tokens=False)["input_ids"]) > 1


def name_concentration(tokenizer, top_tokens: torch.Tensor, top_values: torch.Tensor) -> list[dict]:
    """For each latent, the proper name most frequent among the tokens where it fires most.

    ``top_tokens`` (m, k): token ids at each latent's k top-activating held-out positions; ``top_values`` (m, k)
    their activations (positions with activation <= 0 are ignored).  Returns one dict per latent: ``name``
    (None if no proper name), ``count``, ``share`` (count / k) and ``mean_act`` (mean of the positive top values).
    """
    out = []
    k = top_tokens.shape[1]
    cache: dict[int, bool] = {}
    for toks, vals in zip(top_tokens.tolist(), top_values.tolist()):
        names = Counter()
        for t, v in zip(toks, vals):
            if v <= 0:
                continue
            if t not in cache:
                cache[t] = is_proper_name(tokenizer, tokenizer.decode([t]))
            if cache[t]:
                names[tokenizer.decode([t]).strip()] += 1
        pos = [v for v in vals if v > 0]
        name, count = names.most_common(1)[0] if names else (None, 0)
        out.append({"name": name, "count": count, "share": count / k, "mean_act": sum(pos) / len(pos) if pos else 0.0})
    return out


def pick_named_latent(latents: torch.Tensor, stats: list[dict]) -> dict | None:
    """The latent (of ``latents`` (m,), with :func:`name_concentration` ``stats``) with the largest name share, ties
    broken by the larger mean top activation; None when no latent fires on a proper name."""
    best = max(range(len(stats)), key=lambda i: (stats[i]["share"], stats[i]["mean_act"]), default=None)
    if best is None or stats[best]["name"] is None:
        return None
    return {"latent": int(latents[best]), **stats[best]}


def tokens_at(acts_set, rows: torch.Tensor) -> torch.Tensor:
    """The token ids at activation rows ``rows`` (any shape) of an activation set with ``position`` and
    ``tokens`` (:mod:`!metasae_utils.sources`): same shape as ``rows``."""
    seqs, poss = acts_set.position(rows.flatten())
    return acts_set.tokens[torch.as_tensor(seqs), torch.as_tensor(poss)].reshape(rows.shape)
