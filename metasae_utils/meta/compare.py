"""Meta-SAEs against other SAEs: similarity to smaller SAEs, usage by width, splits, and the decoders of a family."""

from __future__ import annotations

import torch

from ..evaluate import DEAD_RATE, alive_latents, firing_rates
from .decompose import Decomposition


def similarity_to_saes(meta_sae, saes: dict, seed: int = 0, threshold: float = 0.7) -> list[dict]:
    """For each SAE (name → SAE), the max cosine of every meta-decoder row to its decoder rows, and the same for
    as many random unit directions (the baseline).  Rows: ``sae``, ``d_sae``, ``max_cos`` (d_meta,),
    ``random_max_cos`` (d_meta,), ``frac_close`` and ``random_frac_close`` (share above ``threshold``)."""
    from ..stitching import max_cosine
    W = meta_sae.W_dec.detach()
    # offset seed: a plain manual_seed(seed) randn would reproduce any other seed-`seed` randn matrix exactly
    rand = torch.randn(W.shape, generator=torch.Generator().manual_seed(seed + 1_000_003), dtype=W.dtype)
    rand /= rand.norm(dim=1, keepdim=True)
    out = []
    for name, sae in saes.items():
        D = sae.W_dec.detach().to(W.dtype)
        mc, _ = max_cosine(W, D)
        rc, _ = max_cosine(rand, D)
        out.append({"sae": name, "d_sae": sae.cfg.d_sae, "max_cos": mc, "random_max_cos": rc,
                    "frac_close": (mc > threshold).double().mean().item(),
                    "random_frac_close": (rc > threshold).double().mean().item()})
    return out


def usage_by_group(decomposition: Decomposition, groups: torch.Tensor, keep: torch.Tensor | None = None
                   ) -> dict[int, float]:
    """Mean number of active meta-latents per latent, for each value of ``groups`` (n,) (e.g. the width of the
    SAE each decoder row came from), over the rows where ``keep`` (n,) bool is set (default: all)."""
    n_active = decomposition.n_active.double()
    keep = torch.ones_like(groups, dtype=torch.bool) if keep is None else keep
    return {int(g): n_active[(groups == g) & keep].mean().item() for g in torch.unique(groups)}


def split_usage(decomposition: Decomposition, offsets: dict, small: int, large: int, match_small_to_large,
                keep: torch.Tensor | None = None) -> dict:
    """Do latents gain meta-latents when they split?  ``offsets`` maps width → first row of that SAE in the
    decomposition; ``match_small_to_large`` is a (n_pairs, 2) LongTensor of (small latent, large latent) pairs
    with decoder cosine above the threshold.  For each small latent matched by >= 2 large latents (a split),
    compare its number of meta-latents with the mean over its children (its *gain*); the control is the same
    comparison for small latents matched by exactly one large latent.  Returns the mean gain with its standard error
    (``mean_gain``, ``se_gain``; ``mean_gain_one_to_one``, ``se_gain_one_to_one``), the counts and the shares of
    gains > 0 (``frac_children_use_more``, ``frac_one_to_one_use_more``: shown only — a split's children's *mean*
    count is rarely a whole number, so it is rarely tied with its parent's, while a one-to-one match often is).  ``keep`` (n_rows,) bool drops
    pairs involving a row that is not kept (dead latents)."""
    n = decomposition.n_active.double()
    pairs = match_small_to_large
    if keep is not None:  # drop pairs with a dead latent on either side
        pairs = pairs[keep[offsets[small] + pairs[:, 0]] & keep[offsets[large] + pairs[:, 1]]]
    counts = torch.bincount(pairs[:, 0], minlength=small)
    diffs = []
    for s in torch.nonzero(counts >= 2).squeeze(1).tolist():
        kids = pairs[pairs[:, 0] == s, 1]
        diffs.append(n[offsets[large] + kids].mean().item() - n[offsets[small] + s].item())
    d = torch.tensor(diffs, dtype=torch.float64)
    single = torch.nonzero(counts == 1).squeeze(1).tolist()  # the control: latents matched one-to-one
    one = torch.tensor([n[offsets[large] + pairs[pairs[:, 0] == s, 1]].item() - n[offsets[small] + s].item()
                        for s in single], dtype=torch.float64)
    return {"n_splits": len(diffs), "mean_gain": _mean(d), "se_gain": _se(d),
            "frac_children_use_more": (d > 0).double().mean().item() if len(d) else float("nan"),
            "n_one_to_one": len(single), "mean_gain_one_to_one": _mean(one), "se_gain_one_to_one": _se(one),
            "frac_one_to_one_use_more": (one > 0).double().mean().item() if len(one) else float("nan")}


def _mean(x: torch.Tensor) -> float:
    """Mean of a (k,) float64 tensor (NaN when empty)."""
    return x.mean().item() if len(x) else float("nan")


def _se(x: torch.Tensor) -> float:
    """Standard error of the mean of a (k,) float64 tensor (NaN with fewer than 2 values)."""
    return (x.std(unbiased=True) / len(x) ** 0.5).item() if len(x) >= 2 else float("nan")


def resemblance(sims: list[dict], base_width: int, threshold: float = 0.7) -> dict:
    """Both halves of "meta-latents resemble latents of smaller SAEs", for meta-latents and for random directions.

    ``sims``: :func:`similarity_to_saes` over a family that includes the base SAE (width ``base_width``).  Returns
    shares of meta-latents with a cosine > ``threshold`` match ``in_smaller`` (some narrower SAE), ``in_base`` (the
    base SAE itself) and ``smaller_not_base`` (a match in a narrower SAE and none in the base), and the same three
    for the random directions (``random_*``).  Zero where no SAE is narrower.
    """
    base = [s for s in sims if s["d_sae"] == base_width]
    smaller = [s for s in sims if s["d_sae"] < base_width]
    out = {}
    for prefix, key in (("", "max_cos"), ("random_", "random_max_cos")):
        in_base = base[0][key] > threshold if base else None
        if smaller:
            in_smaller = torch.stack([s[key] for s in smaller]).max(0).values > threshold
        else:
            in_smaller = torch.zeros_like(sims[0][key], dtype=torch.bool)
        only = in_smaller & ~in_base if in_base is not None else in_smaller
        out.update({f"{prefix}in_smaller": in_smaller.double().mean().item(),
                    f"{prefix}in_base": in_base.double().mean().item() if in_base is not None else float("nan"),
                    f"{prefix}smaller_not_base": only.double().mean().item()})
    return out


def cosine_by_group(decomposition: Decomposition, groups: torch.Tensor, keep: torch.Tensor | None = None
                    ) -> dict[int, float]:
    """Mean cosine between each decoder row and its reconstruction, for each value of ``groups`` (n,) over the rows
    where ``keep`` (n,) is set: how well the meta-SAE explains each width (fewer meta-latents may only mean a worse
    fit)."""
    cos = torch.nn.functional.cosine_similarity(decomposition.rows.double(), decomposition.reconstruction.double(),
                                                dim=-1, eps=1e-12)
    keep = torch.ones_like(groups, dtype=torch.bool) if keep is None else keep
    return {int(g): cos[(groups == g) & keep].mean().item() for g in torch.unique(groups)}


def random_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) random unit rows: the decoder of an SAE with no shared structure (the meta-SAE controls' input)."""
    g = torch.Generator().manual_seed(seed + 7_000_003)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)


def balanced_rows(rows: torch.Tensor, groups: torch.Tensor, seed: int = 0, keep: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Indices (m,) in which every group has the same weight: each group's rows repeated (in a seeded order) up to
    the largest group's size, so one meta-SAE over all sizes sees every width equally often and every row at least
    once.  (Subsampling the larger widths instead leaves most of their rows unseen, and a meta-SAE trained for
    hundreds of epochs on the rest fires many more meta-latents on the unseen rows.)  With ``keep`` (n,) bool only
    those rows are used (e.g. :func:`alive_latents`); indices still point into ``rows``."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.ones_like(groups, dtype=torch.bool) if keep is None else keep.bool()
    values, counts = torch.unique(groups[keep], return_counts=True)
    per = int(counts.max())
    picks = []
    for v, c in zip(values, counts):
        own = torch.nonzero((groups == v) & keep).squeeze(1)
        reps = -(-per // int(c))
        picks.append(torch.cat([own[torch.randperm(int(c), generator=g)] for _ in range(reps)])[:per])
    return torch.cat(picks)


def family_decoders(saes: list) -> tuple[torch.Tensor, torch.Tensor, dict[int, int]]:
    """The decoders of a family of SAEs stacked for one meta-SAE over all sizes.

    Returns ``(rows, widths, offsets)``: (sum d_sae, d_in) decoder rows in family order, (sum d_sae,) the width
    of the SAE each row came from, and width -> index of that SAE's first row.
    """
    widths = [int(s.cfg.d_sae) for s in saes]
    rows = torch.cat([s.W_dec.detach() for s in saes])
    width_of = torch.cat([torch.full((w,), w) for w in widths])
    starts = torch.cumsum(torch.tensor([0] + widths[:-1]), 0).tolist()
    return rows, width_of, dict(zip(widths, starts))


def live_decoder(sae, activations: torch.Tensor, dead_rate: float = DEAD_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder rows of ``sae``'s live latents, the training set of a meta-SAE on one SAE: ``(rows, ids)``, rows
    (n_live, d_in) and their latent ids (n_live,) LongTensor.  A latent firing on <= ``dead_rate`` of ``activations``
    (n, d_in, held-out) is dead: its decoder row is whatever initialisation and training left (:func:`!metasae_utils.evaluate.alive_latents`)."""
    live = alive_latents(firing_rates(sae, activations), 1, dead_rate)
    ids = torch.nonzero(live).flatten()
    return sae.W_dec.detach()[ids.to(sae.W_dec.device)], ids
