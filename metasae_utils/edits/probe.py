"""Prompts about cities and the model's restricted-choice answers, batched, with an optional edit at one position.

Every prompt starts with the city (``"{city} is a city ..."``), so the residual stream at the city's last token is
the same in the three prompts of a city (causal attention): one activation per city, one steering vector per edit.
An edit is added to the residual at ``hook`` (``blocks.L.hook_resid_pre`` or ``hook_resid_post``) at that position;
the layers before the hook are run once per prompt and cached, and only the layers after it are re-run per edit.
The solved example that opens every prompt is run once: its keys and values are kept in a frozen TransformerLens
key-value cache shared by every prompt, so a prompt costs only its own tokens.

The model "answers" an attribute by restricted choice: among the first tokens of all values of that attribute in the
set, the one with the highest logit at the prompt's last position.  Values whose first token is shared with another
value of the same attribute cannot be told apart this way and are dropped (with the cities that have them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .cities import ATTRIBUTES, CitySet, CitySetError

#: one solved example before every prompt (the same for all three attributes, so the city's residual is still shared);
#: its city is left out of the set
PREAMBLE = "Paris is a city in the country of France, on the continent of Europe, where people speak French.\n"
EXAMPLE_CITIES = ("Paris",)
PROMPTS = {"country": "{city} is a city in the country of",
           "continent": "{city} is a city on the continent of",
           "language": "{city} is a city where people speak"}


@dataclass
class Choices:
    """The answer set of one attribute: ``values`` (m,) names, ``token_ids`` (m,) long first tokens (of ``" " +
    value``), ``dropped`` values whose first token collides with another value's."""
    values: list[str]
    token_ids: torch.Tensor
    dropped: list[str]

    def index(self, value: str) -> int:
        return self.values.index(value)


def value_choices(tokenizer, cityset: CitySet, attributes=ATTRIBUTES) -> dict[str, Choices]:
    """Attribute -> :class:`Choices` over the distinct values of ``cityset``; colliding first tokens dropped."""
    out = {}
    for a in attributes:
        values = sorted(set(cityset.values[a]))
        first = {v: tokenizer(" " + v, add_special_tokens=False)["input_ids"][0] for v in values}
        counts: dict[int, int] = {}
        for t in first.values():
            counts[t] = counts.get(t, 0) + 1
        keep = [v for v in values if counts[first[v]] == 1]
        out[a] = Choices(keep, torch.tensor([first[v] for v in keep], dtype=torch.long),
                         [v for v in values if counts[first[v]] > 1])
    return out


def answerable(cityset: CitySet, choices: dict[str, Choices]) -> CitySet:
    """The cities whose value of every attribute in ``choices`` is one of its choices (the example city excluded)."""
    ok = [i for i in range(len(cityset)) if cityset.cities[i] not in EXAMPLE_CITIES and all(cityset.values[a][i] in c.values for a, c in choices.items())]
    return cityset.subset(ok)


@dataclass
class Prompts:
    """Prompts split into a shared ``prefix`` (P,) long (BOS + :data:`PREAMBLE`) and right-padded ``tokens`` (n, T)
    long (the rest: city and question); ``last`` (n,) index in ``tokens`` of each prompt's last token, ``city_pos``
    (n,) of the city's last token; prompt ``r`` is city ``r // n_attr`` asking ``attributes[r % n_attr]``."""
    prefix: torch.Tensor
    tokens: torch.Tensor
    last: torch.Tensor
    city_pos: torch.Tensor
    attributes: tuple


def build_prompts(model, cities: list[str], attributes=ATTRIBUTES) -> Prompts:
    """Tokenise every (city, attribute) prompt after BOS + the preamble; checks that the preamble's and the city's
    tokens are prefixes of the prompt's (a city that tokenises differently in context is an error)."""
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    prefix = model.to_tokens(PREAMBLE, prepend_bos=True)[0]
    n_pre = len(prefix)
    rows, last, pos = [], [], []
    for city in cities:
        city_toks = model.to_tokens(PREAMBLE + city, prepend_bos=True)[0]
        for a in attributes:
            toks = model.to_tokens(PREAMBLE + PROMPTS[a].format(city=city), prepend_bos=True)[0]
            if not (torch.equal(toks[:n_pre], prefix) and torch.equal(toks[: len(city_toks)], city_toks)):
                raise CitySetError(f"{city!r} tokenises differently inside the prompt; drop it")
            rows.append(toks[n_pre:])
            last.append(len(toks) - 1 - n_pre)
            pos.append(len(city_toks) - 1 - n_pre)
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    return Prompts(prefix, tokens, torch.tensor(last), torch.tensor(pos), tuple(attributes))


@torch.no_grad()
def prefix_cache(model, prefix: torch.Tensor):
    """A frozen TransformerLens key-value cache (batch 1) of ``prefix`` (P,) long, every layer."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
    model(prefix.unsqueeze(0).to(model.cfg.device), past_kv_cache=cache)
    cache.freeze()
    return cache


def _batch_cache(cache, b: int):
    """``cache`` (batch 1, frozen) expanded to batch ``b`` without copying."""
    import dataclasses
    entries = [dataclasses.replace(e, past_keys=e.past_keys.expand(b, -1, -1, -1),
                                   past_values=e.past_values.expand(b, -1, -1, -1), frozen=True) for e in cache.entries]
    return dataclasses.replace(cache, entries=entries,
                               previous_attention_mask=cache.previous_attention_mask.expand(b, -1), frozen=True)


def start_layer(hook: str) -> int:
    """The block after which the model is re-run for an edit at ``hook`` (resid_pre of L: L; resid_post of L: L+1)."""
    parts = hook.split(".")
    if len(parts) != 3 or parts[2] not in ("hook_resid_pre", "hook_resid_post"):
        raise CitySetError(f"targeted edits need a residual-stream hook (blocks.L.hook_resid_pre/_post), got {hook!r}")
    return int(parts[1]) + (parts[2] == "hook_resid_post")


@torch.no_grad()
def residuals(model, prompts: Prompts, hook: str, cache, batch_size: int = 64) -> torch.Tensor:
    """(n, T, d_model) float32 residual stream at ``hook`` of every prompt's tokens after the prefix (CPU);
    ``cache``: :func:`prefix_cache` of ``prompts.prefix``."""
    layer = start_layer(hook)
    outs = []
    for i in tqdm(range(0, len(prompts.tokens), batch_size), desc="prompts", leave=False):
        toks = prompts.tokens[i:i + batch_size].to(model.cfg.device)
        outs.append(model(toks, stop_at_layer=layer, past_kv_cache=_batch_cache(cache, len(toks))).float().cpu())
    return torch.cat(outs)


@torch.no_grad()
def choose(model, resid: torch.Tensor, last: torch.Tensor, token_ids: torch.Tensor, hook: str, cache) -> torch.Tensor:
    """Restricted-choice answers from residuals at ``hook``: ``resid`` (b, T, d), ``last`` (b,) long,
    ``token_ids`` (b, m) long, each row its attribute's choices padded with -1.  Only the choices' logits at ``last``
    are computed (final norm + the unembedding columns of the choices); ``cache``: :func:`prefix_cache`.  Returns (b,) long: the index of the
    highest-logit choice of each row."""
    dev = model.cfg.device
    dtype = next(model.parameters()).dtype
    out = model(resid.to(dev, dtype), start_at_layer=start_layer(hook), stop_at_layer=model.cfg.n_layers,
                past_kv_cache=_batch_cache(cache, len(resid)))
    final = model.ln_final(out[torch.arange(len(last)), last.to(dev)].unsqueeze(1)).squeeze(1)  # (b, d)
    ids = token_ids.clamp(min=0).to(dev)
    w = model.W_U[:, ids].permute(1, 0, 2)  # (b, d, m)
    scores = (torch.bmm(final.unsqueeze(1), w).squeeze(1) + model.b_U[ids]).float().cpu()
    return scores.masked_fill(token_ids < 0, float("-inf")).argmax(1)


def choice_table(choices: dict[str, Choices], attributes) -> torch.Tensor:
    """(n_attr, m_max) long: each attribute's choice token ids, padded with -1."""
    m = max(len(choices[a].values) for a in attributes)
    table = torch.full((len(attributes), m), -1, dtype=torch.long)
    for j, a in enumerate(attributes):
        table[j, : len(choices[a].values)] = choices[a].token_ids
    return table


@torch.no_grad()
def answers(model, prompts: Prompts, resid: torch.Tensor, choices: dict[str, Choices], hook: str, cache,
            rows: torch.Tensor | None = None, edits: torch.Tensor | None = None, batch_size: int = 64,
            progress: bool = True) -> torch.Tensor:
    """(R,) long restricted-choice answers (index into that attribute's choices) of the prompts ``rows`` (R,)
    (default: all).  ``edits``: None or (R, d) vectors added to the residual at each prompt's ``city_pos`` before
    the rest of the model runs; ``cache``: :func:`prefix_cache`."""
    table = choice_table(choices, prompts.attributes)
    n_attr = len(prompts.attributes)
    rows = torch.arange(len(resid)) if rows is None else rows
    out = []
    for i in tqdm(range(0, len(rows), batch_size), desc="answers", leave=False, disable=not progress):
        sel = rows[i:i + batch_size]
        r = resid[sel, : int(prompts.last[sel].max()) + 1].clone()  # no padding past this batch's longest prompt
        if edits is not None:
            r[torch.arange(len(sel)), prompts.city_pos[sel]] += edits[i:i + batch_size]
        out.append(choose(model, r, prompts.last[sel], table[sel % n_attr], hook, cache))
    return torch.cat(out)


def known(cityset: CitySet, prompts: Prompts, predicted: torch.Tensor, choices: dict[str, Choices]) -> torch.Tensor:
    """(n_cities, n_attr) bool: does the model's answer equal the true value, per city and attribute?"""
    n_attr = len(prompts.attributes)
    pred = predicted.view(-1, n_attr)
    truth = torch.tensor([[choices[a].index(cityset.values[a][i]) for a in prompts.attributes]
                          for i in range(len(cityset))])
    return pred == truth
