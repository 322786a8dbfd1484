"""Units of an edit: SAE latents and meta-latents at a city's last token, how selective each is for one attribute,
and the steering vector that moves chosen units from one city's values to another's.

* SAE latent i: activation f[i] (``sae.encode``), direction d_i (decoder row, not normalised), so that the SAE's
  output is ``sum_i f[i] d_i + b_dec`` and moving f[i] by Δ moves the reconstruction by Δ d_i.
* Meta-latent j: the meta-SAE writes each unit-norm decoder row as d_i / |d_i| ≈ sum_j μ_ij m_j (``meta.decompose``;
  zero decoder bias, so nothing else).  Then ``sum_i f[i] d_i ≈ sum_j g[j] m̂_j`` with
  ``g[j] = sum_i f[i] |d_i| μ_ij |m_j|`` and m̂_j = m_j / |m_j|: g is the meta-latent's activation at the token and m̂_j
  its direction.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def sae_codes(sae, x: torch.Tensor) -> torch.Tensor:
    """(n, d_sae) float32 SAE activations of residuals ``x`` (n, d)."""
    dev = sae.W_dec.device
    return sae.encode(x.to(dev, sae.W_dec.dtype)).float().cpu()


def meta_matrix(mu: torch.Tensor, decoder_norms: torch.Tensor, meta_norms: torch.Tensor) -> torch.Tensor:
    """(d_sae, d_meta) C with ``C[i, j] = |d_i| μ_ij |m_j|``, so that ``g = f @ C``.

    ``mu``: (d_sae, d_meta) dense meta-codes (``Decomposition.to_dense()``); ``decoder_norms`` (d_sae,);
    ``meta_norms`` (d_meta,)."""
    if mu.shape != (len(decoder_norms), len(meta_norms)):
        raise ValueError(f"mu has shape {tuple(mu.shape)}, expected ({len(decoder_norms)}, {len(meta_norms)})")
    return decoder_norms.float().unsqueeze(1) * mu.float() * meta_norms.float().unsqueeze(0)


def meta_codes(f: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(n, d_meta) meta-latent activations ``g = f @ C`` of SAE codes ``f`` (n, d_sae); ``c``: :func:`meta_matrix`."""
    return f.float() @ c


def unit_rows(w: torch.Tensor) -> torch.Tensor:
    """(m, d) rows of ``w`` divided by their norms (zero rows stay zero)."""
    w = w.detach().float().cpu()
    return w / w.norm(dim=1, keepdim=True).clamp(min=1e-12)


def adjusted_r2(acts: torch.Tensor, labels: list[str]) -> torch.Tensor:
    """(U,) adjusted η² (one-way ANOVA, ``1 - MS_within / MS_total``) of each column of ``acts`` (n, U) explained by
    ``labels`` (n,).  Only labels held by at least two rows count (a singleton group explains its row perfectly).
    NaN for every unit when fewer than two such groups remain; 0 for a unit constant on them."""
    groups: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    u = acts.shape[1]
    if len(groups) < 2:
        return torch.full((u,), float("nan"))
    rows = torch.tensor([i for v in groups.values() for i in v])
    x = acts[rows].double()
    n, g = len(rows), len(groups)
    ss_total = ((x - x.mean(0)) ** 2).sum(0)
    ss_within = sum(((acts[torch.tensor(v)].double() - acts[torch.tensor(v)].double().mean(0)) ** 2).sum(0)
                    for v in groups.values())
    r2 = 1 - (ss_within / (n - g)) / (ss_total / (n - 1)).clamp(min=1e-30)
    return torch.where(ss_total > 1e-12, r2, torch.zeros_like(r2)).float()


def selectivity(acts: torch.Tensor, labels: dict[str, list[str]], target: str) -> torch.Tensor:
    """(U,) how much more of each unit's variation the ``target`` attribute explains than any other attribute:
    ``adjusted_r2(target) - max over others of adjusted_r2`` (other attributes with NaN scores are ignored).
    ``acts`` (n, U); ``labels``: attribute -> (n,) values."""
    own = adjusted_r2(acts, labels[target])
    others = [adjusted_r2(acts, v) for a, v in labels.items() if a != target]
    others = [o for o in others if not torch.isnan(o).all()]
    return own - torch.stack(others).max(0).values if others else own


def top_units(score: torch.Tensor, k: int) -> torch.Tensor:
    """(k,) long: the ``k`` units of highest finite ``score`` (ties: lower index first); fewer if fewer are finite."""
    finite = torch.isfinite(score)
    idx = torch.nonzero(finite).squeeze(1)
    order = torch.sort(score[idx], descending=True, stable=True).indices
    return idx[order[:k]]


def random_units(alive: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(k,) long: ``k`` distinct units drawn at random among the ``alive`` ones (``alive`` (U,) bool)."""
    idx = torch.nonzero(alive).squeeze(1)
    return idx[torch.randperm(len(idx), generator=generator)[:k]]


def steering(src: torch.Tensor, dst: torch.Tensor, dirs: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """(E, d) steering vectors ``sum_{u in units[e]} (dst[e, u] - src[e, u]) dirs[u]``: move the chosen units of each
    edit from the edited city's activations ``src`` (E, U) to the donor's ``dst`` (E, U).  ``dirs`` (U, d);
    ``units`` (E, k) long, or (k,) for the same units in every edit; padding -1 is ignored."""
    units = units.expand(len(src), -1) if units.dim() == 1 else units
    valid = units >= 0
    u = units.clamp(min=0)
    delta = (dst.gather(1, u) - src.gather(1, u)) * valid  # (E, k)
    return torch.einsum("ek,ekd->ed", delta, dirs[u])
