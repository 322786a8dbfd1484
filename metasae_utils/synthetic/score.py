"""Scoring SAEs against the planted truth (MCC, recovery, absorption) and the truth's composite directions."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..evaluate import reconstruction_metrics
from .data import SyntheticData
from .model import _CHUNK, _check_int


@torch.no_grad()
def max_cos_to_truth(sae, features: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cosine similarities between an SAE's decoder rows (d_sae, d) and the true ``features`` (n_features, d).

    Returns ``latent_max_cos`` (d_sae,) and ``latent_best`` (d_sae,): each latent's best |cos| to a true
    feature and that feature's index; ``feature_max_cos`` (n_features,) and ``feature_best`` (n_features,):
    each true feature's best |cos| to a latent and that latent.
    """
    w = sae.W_dec.detach().float().cpu()
    f = features.detach().float().cpu()
    cos = (w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ (f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)).T
    cos = cos.abs()
    lat_max, lat_best = cos.max(1)
    feat_max, feat_best = cos.max(0)
    return {"latent_max_cos": lat_max, "latent_best": lat_best, "feature_max_cos": feat_max, "feature_best": feat_best}


def score(sae, data: SyntheticData, n_samples: int = 16_384, seed: int = 0, cos_threshold: float = 0.9) -> dict:
    """Score ``sae`` against the ground truth; a flat, JSON-able dict.

    From SAELens ``eval_sae_on_synthetic_data`` on ``n_samples`` fresh rows (drawn with ``seed``; its names):

    * ``mcc``: mean |cos| over a Hungarian one-to-one matching of decoder rows to true features
      (``min(d_sae, n_features)`` pairs; 1 = every latent is a true direction);
    * ``uniqueness``: distinct best-matching true features / d_sae (1 = no two latents track the same one);
    * ``precision``, ``recall``, ``f1_score``, ``accuracy`` (SAELens' ``classification``): each latent, read
      as a detector of its best-matching (by decoder cosine) true feature; averaged over latents
      (dead latents count 0 for precision and recall);
    * ``true_l0``, ``sae_l0``, ``dead_latents`` (a count), ``shrinkage`` (mean |x_hat| / |x|),
      ``explained_variance``.

    From ``evaluate.reconstruction_metrics`` on ``data.eval``: ``fvu``, ``mse``, ``l0``, ``dead_fraction``.

    From decoder cosines (``max_cos_to_truth``): ``latent_max_cos_mean`` / ``_median``,
    ``frac_latents_matched`` (latents with max |cos| > ``cos_threshold``), ``frac_true_recovered`` (true
    features with a latent at |cos| > ``cos_threshold``) and the same per kind: ``frac_roots_recovered``,
    ``frac_children_recovered``, ``frac_free_recovered`` (NaN when there are none of that kind), and
    ``frac_children_absorbed``: children with a latent at |cos| > ``cos_threshold`` to the parent + child
    direction (``composite_directions``; feature absorption / splitting).  Plus ``d_sae``.
    """
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    _check_int("n_samples", n_samples, 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        res = eval_sae_on_synthetic_data(sae, data.feature_dict, data.generator, num_samples=n_samples,
                                         batch_size=min(n_samples, _CHUNK)).to_dict()
    out: dict[str, Any] = {"d_sae": int(sae.cfg.d_sae)}
    cls = res.pop("classification")
    out.update(res)
    out.update(cls)
    rec = reconstruction_metrics(sae, data.eval)
    out.update({name: rec[name] for name in ("fvu", "mse", "l0", "dead_fraction")})
    cos = max_cos_to_truth(sae, data.features)
    found = cos["feature_max_cos"] > cos_threshold
    out.update(
        latent_max_cos_mean=cos["latent_max_cos"].mean().item(),
        latent_max_cos_median=cos["latent_max_cos"].median().item(),
        frac_latents_matched=(cos["latent_max_cos"] > cos_threshold).float().mean().item(),
        frac_true_recovered=found.float().mean().item(),
    )
    for kind, mask in (("roots", data.is_root), ("children", data.is_child), ("free", data.is_free)):
        out[f"frac_{kind}_recovered"] = found[mask].float().mean().item() if mask.any() else math.nan
    comp = composite_directions(data)
    out["frac_children_absorbed"] = ((max_cos_to_truth(sae, comp)["feature_max_cos"] > cos_threshold).float()
                                     .mean().item() if len(comp) else math.nan)
    return out


def composite_directions(data: SyntheticData) -> torch.Tensor:
    """(n_children, d): unit vectors along ``feature[parent] + feature[child]`` for every child, in child order —
    the direction an SAE learns when it absorbs the parent into a child latent (magnitudes are about 1, and a
    child never fires without its parent)."""
    child = data.is_child.nonzero().squeeze(1)
    comp = data.features[child] + data.features[data.parents[child]]
    return comp / comp.norm(dim=1, keepdim=True).clamp_min(1e-12)
