"""The targeted-edit experiment: which cities the model knows, and how precisely SAE-latent and meta-latent edits move
one attribute of a held-out city to a donor city's value while keeping its other attributes.

Protocol (every method is evaluated on exactly the same edits):

1. Keep the cities whose three attributes the model answers correctly (restricted choice, :mod:`.probe`).
2. Split them in half (seeded): units are *selected* on the training half, edits are *evaluated* on the held-out
   half.  Each held-out city c gets one donor c' (seeded, from all known cities) that differs from c in every
   attribute.
3. For a target attribute A and a unit kind, the k units most selective for A on the training half
   (:func:`.units.selectivity`) are moved from c's activations to c''s (:func:`.units.steering`), at the city's last
   token.  Success: the answer to A's prompt becomes c''s value; keep: the other two answers stay c's values.
4. Controls: k units drawn at random (per edit) among those active on some training city, of each kind; the
   full swap (every SAE latent moved: c''s whole SAE code in place of c's), the ceiling of success for units; and
   the residual swap (c''s whole residual at that position in place of c's, SAE error included): whether this one
   position at this hook carries the attributes at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import probe, units
from .cities import ATTRIBUTES, CitySet

SELECTED = {"SAE latents": "SAE latents", "meta-latents": "meta-latents"}
RANDOM = {"random SAE latents": "SAE latents", "random meta-latents": "meta-latents"}
FULL = "full swap (whole SAE code)"
RESIDUAL = "residual swap (whole residual)"


@dataclass
class Probe:
    """The model's answers on a city set: ``cities`` (answerable ones), ``choices``, ``prompts`` (3 per city),
    ``resid`` (n_prompts, T, d) at the hook, ``known`` (n_cities, 3) bool, ``cache`` of the shared prefix."""
    cities: CitySet
    choices: dict
    prompts: probe.Prompts
    resid: torch.Tensor
    known: torch.Tensor
    cache: object = None

    def counts(self) -> dict:
        """Cities answered correctly per attribute and on all three, out of ``n``."""
        out = {a: int(self.known[:, j].sum()) for j, a in enumerate(ATTRIBUTES)}
        return {"n": len(self.cities), **out, "all three": int(self.known.all(1).sum())}

    def known_cities(self) -> torch.Tensor:
        """(n_known,) long indices of the cities known on all three attributes."""
        return torch.nonzero(self.known.all(1)).squeeze(1)

    def city_residuals(self, idx: torch.Tensor) -> torch.Tensor:
        """(len(idx), d) residual at the last token of cities ``idx`` (the same in all three prompts)."""
        rows = idx * len(ATTRIBUTES)
        return self.resid[rows, self.prompts.city_pos[rows]]


def probe_cities(model, cityset: CitySet, hook: str, batch_size: int = 64, progress: bool = True) -> Probe:
    """Ask the model every attribute of every answerable city of ``cityset``."""
    choices = probe.value_choices(model.tokenizer, cityset)
    cities = probe.answerable(cityset, choices)
    prompts = probe.build_prompts(model, cities.cities)
    cache = probe.prefix_cache(model, prompts.prefix)
    resid = probe.residuals(model, prompts, hook, cache, batch_size)
    pred = probe.answers(model, prompts, resid, choices, hook, cache, batch_size=batch_size, progress=progress)
    return Probe(cities, choices, prompts, resid, probe.known(cities, prompts, pred, choices), cache)


def unit_activations(x: torch.Tensor, sae, meta_sae, decomposition) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Kind -> (activations (n, U), directions (U, d)) for residuals ``x`` (n, d): SAE latents and meta-latents
    (see :mod:`.units`).  ``decomposition``: ``meta.decompose(meta_sae, sae.W_dec)``."""
    f = units.sae_codes(sae, x)
    w_dec = sae.W_dec.detach().float().cpu()
    m_dec = meta_sae.W_dec.detach().float().cpu()
    c = units.meta_matrix(decomposition.to_dense(), w_dec.norm(dim=1), m_dec.norm(dim=1))
    return {"SAE latents": (f, w_dec), "meta-latents": (units.meta_codes(f, c), units.unit_rows(m_dec))}


@torch.no_grad()
def fvu_at(sae, x: torch.Tensor) -> float:
    """The SAE's fraction of variance unexplained on residuals ``x`` (n, d): how much of the cities' residual the
    units can move at all (the rest, the SAE's error, moves only with the residual swap)."""
    f = units.sae_codes(sae, x)
    rec = sae.decode(f.to(sae.W_dec.device, sae.W_dec.dtype)).float().cpu()
    return float(((x - rec) ** 2).sum() / ((x - x.mean(0)) ** 2).sum().clamp(min=1e-30))


def split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded halves of ``range(n)``: (train, test) long indices (test gets the extra one when n is odd)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2].sort().values, perm[n // 2:].sort().values


def donors(values: dict[str, list[str]], test: torch.Tensor, seed: int) -> torch.Tensor:
    """(len(test),) long: for each city of ``test`` a donor among all cities (``values``: attribute -> (n,)) that
    differs from it in every attribute, drawn at random (seeded); -1 when there is none."""
    g = torch.Generator().manual_seed(seed + 1)
    n = len(next(iter(values.values())))
    out = []
    for c in test.tolist():
        pool = [d for d in range(n) if all(v[d] != v[c] for v in values.values())]
        out.append(pool[int(torch.randint(len(pool), (1,), generator=g))] if pool else -1)
    return torch.tensor(out, dtype=torch.long)


def _plan(kinds, labels, train, test, donor, ks, seed):
    """Every edit as (method, k, attribute index, city, donor, units (k,) or None for the full swap)."""
    g = torch.Generator().manual_seed(seed + 2)
    alive = {k: (acts[train] != 0).any(0) for k, (acts, _) in kinds.items()}
    chosen = {(kind, a): units.top_units(units.selectivity(kinds[kind][0][train], labels, a), max(ks))
              for kind in SELECTED for a in ATTRIBUTES}
    plan = []
    for c, d in zip(test.tolist(), donor.tolist()):
        if d < 0:
            continue
        for j, a in enumerate(ATTRIBUTES):
            plan.append((FULL, None, j, c, d, None))
            plan.append((RESIDUAL, None, j, c, d, None))
            for k in ks:
                for method, kind in SELECTED.items():
                    plan.append((method, k, j, c, d, chosen[(kind, a)][:k]))
                for method, kind in RANDOM.items():
                    plan.append((method, k, j, c, d, units.random_units(alive[kind], k, g)))
    return plan, chosen


def run(model, pr: Probe, sae, meta_sae, decomposition, hook: str, ks, seed: int, batch_size: int = 64,
        progress: bool = True) -> dict:
    """The whole experiment on the known cities of ``pr``.  Returns ``edits`` (one dict per edit: method, k,
    attribute, city, donor, success, keep), ``n_train``, ``n_test``, ``chosen`` ((kind, attribute) -> selected
    unit ids, most selective first) and ``sae_fvu`` (:func:`fvu_at` on the known cities' residuals)."""
    known = pr.known_cities()
    cs = pr.cities.subset(known.tolist())
    kinds = unit_activations(pr.city_residuals(known), sae, meta_sae, decomposition)
    train, test = split(len(known), seed)
    labels = {a: [cs.values[a][i] for i in train.tolist()] for a in ATTRIBUTES}
    donor = donors(cs.values, test, seed)
    plan, chosen = _plan(kinds, labels, train, test, donor, ks, seed)
    fvu = fvu_at(sae, pr.city_residuals(known)) if len(known) > 1 else float("nan")
    if not plan:
        return {"edits": [], "n_train": len(train), "n_test": len(test), "chosen": chosen, "sae_fvu": fvu}
    x = pr.city_residuals(known)
    vecs = []
    for method, k, j, c, d, sel in plan:
        if method == RESIDUAL:
            vecs.append(x[d] - x[c])
            continue
        acts, dirs = kinds[RANDOM.get(method, SELECTED.get(method, "SAE latents"))]
        sel = torch.arange(acts.shape[1]) if sel is None else sel
        vecs.append(units.steering(acts[c:c + 1], acts[d:d + 1], dirs, sel)[0])
    n_attr = len(ATTRIBUTES)
    idx = {a: pr.choices[a].index for a in ATTRIBUTES}
    cities = torch.tensor([p[3] for p in plan])
    vecs = torch.stack(vecs)
    # an edit that moves nothing (the chosen units are silent on both cities) leaves the known answers unchanged
    pred = torch.tensor([[idx[a](cs.values[a][c]) for a in ATTRIBUTES] for c in cities.tolist()])
    moving = torch.nonzero(vecs.abs().amax(1) > 0).squeeze(1)
    if len(moving):
        rows = (known[cities[moving]].unsqueeze(1) * n_attr + torch.arange(n_attr)).reshape(-1)  # prompt rows
        pred[moving] = probe.answers(model, pr.prompts, pr.resid, pr.choices, hook, pr.cache, rows=rows,
                                     edits=vecs[moving].repeat_interleave(n_attr, 0), batch_size=batch_size,
                                     progress=progress).view(-1, n_attr)
    out = []
    for (method, k, j, c, d, _), p in zip(plan, pred.tolist()):
        truth = [idx[a](cs.values[a][c]) for a in ATTRIBUTES]
        target = idx[ATTRIBUTES[j]](cs.values[ATTRIBUTES[j]][d])
        out.append({"method": method, "k": k, "attribute": ATTRIBUTES[j], "city": cs.cities[c],
                    "donor": cs.cities[d], "success": p[j] == target,
                    "keep": all(p[b] == truth[b] for b in range(n_attr) if b != j)})
    return {"edits": out, "n_train": len(train), "n_test": int((donor >= 0).sum()), "chosen": chosen, "sae_fvu": fvu}


def summary(edits: list[dict]) -> list[dict]:
    """One row per (method, k): ``n`` edits, ``success``, ``keep`` and ``both`` (success and keep) rates."""
    groups: dict[tuple, list[dict]] = {}
    for e in edits:
        groups.setdefault((e["method"], e["k"]), []).append(e)
    out = []
    for (method, k), es in groups.items():
        n = len(es)
        out.append({"method": method, "k": k, "n": n, "success": sum(e["success"] for e in es) / n,
                    "keep": sum(e["keep"] for e in es) / n,
                    "both": sum(e["success"] and e["keep"] for e in es) / n})
    return out


def readable(rows: list[dict]) -> list[dict]:
    """:func:`summary` rows for a table: the number of units edited ("all" for the whole-code and residual swaps,
    whose ``k`` is None or NaN, else an integer) and the rates as percentages of the edits."""
    def units(k):
        return "all" if k is None or k != k else int(k)
    return [{"method": r["method"], "units edited": units(r["k"]), "edits": int(r["n"]),
             "target changed %": 100 * r["success"], "rest kept %": 100 * r["keep"], "both %": 100 * r["both"]}
            for r in rows]


def chosen_links(chosen: dict, k: int) -> str:
    """HTML list of the first ``k`` units chosen per (kind, attribute), each a link to its explorer view."""
    from ..explorer import link
    items = []
    for (kind, attribute), ids in chosen.items():
        what = "meta" if "meta" in str(kind) else "latent"
        items.append(f"<li>{kind} for {attribute}: " + ", ".join(link(int(i), kind=what) for i in list(ids)[:k])
                     + "</li>")
    return "<ul>" + "".join(items) + "</ul>"
