"""Does the max decoder cosine separate the latents that lower the MSE from those that raise it?

The stitching paper's central picture places every latent of the larger SAE at (its max decoder cosine to the
smaller SAE, its ΔMSE when inserted alone).  If the 0.7 line is meaningful, novel latents (left of it) lower the
MSE and reconstruction latents (right of it) raise it: most latents sit in two of the four quadrants.
"""

from __future__ import annotations

import torch

QUADRANTS = ("novel, lowers", "novel, raises", "reconstruction, lowers", "reconstruction, raises")


def quadrant_shares(max_cos: torch.Tensor, delta_mse: torch.Tensor, threshold: float = 0.7) -> dict:
    """Shares of latents in each quadrant of the (max cosine, ΔMSE) plane and how well the threshold separates.

    ``max_cos`` (m,): each large latent's best decoder cosine with the smaller SAE; ``delta_mse`` (m,): its ΔMSE
    inserted alone (:func:`~.insertion_deltas`).  Latents that never fire (ΔMSE exactly 0) are left out
    (``n_silent``).  Returns the four :data:`!QUADRANTS` shares (of the firing latents), ``agreement`` (novel-and-lowers
    plus reconstruction-and-raises), its ``chance`` (the same share if cosine and ΔMSE were independent, the product
    of the marginals: the shuffled control), ``auc`` (probability that a random MSE-raising latent has a higher max
    cosine than a random MSE-lowering one; 0.5 = no separation), and ``best_threshold`` / ``best_agreement``: the
    cosine cut that would separate best (descriptive only; verdicts use ``threshold``).
    """
    mc = torch.as_tensor(max_cos).double().flatten().cpu()
    dm = torch.as_tensor(delta_mse).double().flatten().cpu()
    if mc.shape != dm.shape:
        raise ValueError(f"max_cos {tuple(mc.shape)} and delta_mse {tuple(dm.shape)} must have the same shape")
    firing = dm != 0
    mc, dm = mc[firing], dm[firing]
    n = mc.numel()
    out = {"n": n, "n_silent": int((~firing).sum()), "threshold": float(threshold)}
    if n == 0:
        return {**out, **{q: float("nan") for q in QUADRANTS}, "agreement": float("nan"), "chance": float("nan"),
                "auc": float("nan"), "best_threshold": float("nan"), "best_agreement": float("nan")}
    novel, lowers = mc <= threshold, dm < 0
    shares = {QUADRANTS[0]: (novel & lowers), QUADRANTS[1]: (novel & ~lowers),
              QUADRANTS[2]: (~novel & lowers), QUADRANTS[3]: (~novel & ~lowers)}
    shares = {k: v.double().mean().item() for k, v in shares.items()}
    p_novel, p_lower = novel.double().mean().item(), lowers.double().mean().item()
    out.update(shares)
    out["agreement"] = shares[QUADRANTS[0]] + shares[QUADRANTS[3]]
    out["chance"] = p_novel * p_lower + (1 - p_novel) * (1 - p_lower)
    out["auc"] = _auc(mc[~lowers], mc[lowers])
    out["best_threshold"], out["best_agreement"] = _best_cut(mc, lowers)
    return out


def _auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(pos > neg) + P(pos = neg) / 2 by ranks (Mann–Whitney); NaN when a side is empty."""
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    allv = torch.cat([pos, neg])
    order = torch.argsort(allv, stable=True)
    ranks = torch.empty_like(allv)
    ranks[order] = torch.arange(1, allv.numel() + 1, dtype=torch.float64)
    # average ranks of ties
    uniq, inv = torch.unique(allv, return_inverse=True)
    mean_rank = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inv, ranks)
    mean_rank /= torch.bincount(inv, minlength=uniq.numel()).double()
    r_pos = mean_rank[inv[: pos.numel()]].sum().item()
    n_p, n_n = pos.numel(), neg.numel()
    return (r_pos - n_p * (n_p + 1) / 2) / (n_p * n_n)


def _best_cut(mc: torch.Tensor, lowers: torch.Tensor) -> tuple[float, float]:
    """The cosine cut t (from 0.05 to 0.95 in steps of 0.01) maximising the share of latents with
    (cos <= t and lowers) or (cos > t and raises)."""
    cuts = torch.arange(0.05, 0.955, 0.01, dtype=torch.float64)
    left = mc[None, :] <= cuts[:, None]
    agree = (left & lowers[None, :]) | (~left & ~lowers[None, :])
    score = agree.double().mean(1)
    i = int(torch.argmax(score))
    return round(cuts[i].item(), 2), score[i].item()


def cosine_panel(small, large, activations: torch.Tensor, twin=None, threshold: float = 0.7, label: str = "") -> dict:
    """Everything the ΔMSE–cosine figure shows for one pair: ``pair`` (label), ``max_cos`` (m,), ``delta_mse`` (m,),
    ``base_mse`` (the smaller SAE's MSE on ``activations`` (n, d_in)), ``quadrants`` (:func:`quadrant_shares`) and
    ``twin_band``: the 10th and 90th percentile of the max cosines between ``large`` and its seed ``twin`` (same
    width, another seed; None without one): where latents of two SAEs of one width sit relative to each other."""
    from .classify import classify_latents
    from .insertion import insertion_deltas
    cls = classify_latents(small, large, threshold)
    d = insertion_deltas(small, large, activations)
    band = None
    if twin is not None:
        tc = classify_latents(large, twin, threshold).max_cos.double().cpu()
        band = tuple(torch.quantile(tc, torch.tensor([0.1, 0.9], dtype=torch.float64)).tolist())
    return {"pair": label, "max_cos": cls.max_cos.cpu(), "delta_mse": torch.as_tensor(d.delta_mse),
            "base_mse": d.base["mse"], "quadrants": quadrant_shares(cls.max_cos, d.delta_mse, threshold),
            "twin_band": band}
