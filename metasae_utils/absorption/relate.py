"""Absorption against stitching: are a wider SAE's absorbing latents its novel latents?

For each adjacent pair of family widths, the larger SAE's live latents are split as the stitching chapter splits
them (novel: max decoder cosine ≤ 0.7 to the smaller SAE, else reconstruction) and the *absorbing* latents (see
:func:`metasae_utils.absorption.score.absorption`) are counted in each class.  The control is the novel share of all
the larger SAE's live latents.  :func:`verdict` applies the rule ``absorption_novel`` of
:mod:`!metasae_utils.claims.registry` (declared before any absorption number existed): pooled over the pairs,
underpowered below :data:`MIN_ABSORBING` absorbing latents, reproduced when the novel share of absorbing latents
exceeds the control by ≥ :data:`MARGIN` and a one-sided binomial test gives p < :data:`ALPHA`, partly when one of
the two holds.
"""

from __future__ import annotations

import torch

from ..claims.registry import CLAIMS, pct, row

#: fewest absorbing latents pooled over the pairs for a verdict (below it the verdict is underpowered)
MIN_ABSORBING = 20
#: the margin over the control, as a fraction (10 points)
MARGIN = 0.10
#: the one-sided binomial test's level
ALPHA = 0.05
#: the stitching threshold (a latent is novel when its max decoder cosine to the smaller SAE is at most this)
THRESHOLD = 0.7
#: the rule ``absorption_novel`` as declared in the claims registry
RULE = CLAIMS["absorption_novel"].rule


def novel_mask(small_W_dec: torch.Tensor, large_W_dec: torch.Tensor) -> torch.Tensor:
    """(d_large,) bool: the larger SAE's latents with no decoder cosine > 0.7 among the smaller SAE's rows
    (``small_W_dec`` (d_small, d), ``large_W_dec`` (d_large, d))."""
    from ..stitching.similarity import max_cosine
    if small_W_dec.shape[1] != large_W_dec.shape[1]:
        raise ValueError(f"decoders of different d_in: {small_W_dec.shape[1]} and {large_W_dec.shape[1]}")
    max_cos, _ = max_cosine(large_W_dec.detach().float(), small_W_dec.detach().float())
    return max_cos <= THRESHOLD


def pair_counts(absorbing: dict, live: torch.Tensor, novel: torch.Tensor) -> dict:
    """Counts for one pair: ``absorbing`` ({latent id (str or int): words absorbed}) of the larger SAE, its ``live``
    and ``novel`` (d_large,) bool masks.  Dead absorbing latents are dropped (and counted in
    ``n_absorbing_dead``)."""
    if live.shape != novel.shape:
        raise ValueError(f"live {tuple(live.shape)} and novel {tuple(novel.shape)} masks differ in shape")
    ids = sorted(int(k) for k in absorbing)
    if ids and (ids[0] < 0 or ids[-1] >= live.numel()):
        raise ValueError(f"absorbing latent ids must lie in 0..{live.numel() - 1}")
    kept = [i for i in ids if bool(live[i])]
    n_live = int(live.sum())
    return {"n_absorbing": len(kept), "n_absorbing_dead": len(ids) - len(kept),
            "n_absorbing_novel": sum(bool(novel[i]) for i in kept), "n_live": n_live,
            "n_live_novel": int((live & novel).sum())}


def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def pooled(pairs: list[dict]) -> dict:
    """The rule's numbers over ``pairs`` (:func:`pair_counts` outputs): ``value`` (novel share of absorbing
    latents), ``control`` (novel share of live latents), ``n``, ``k``, one-sided binomial ``p``."""
    from scipy.stats import binomtest
    n = sum(p["n_absorbing"] for p in pairs)
    k = sum(p["n_absorbing_novel"] for p in pairs)
    control = _share(sum(p["n_live_novel"] for p in pairs), sum(p["n_live"] for p in pairs))
    value = _share(k, n)
    p = (binomtest(k, n, control, alternative="greater").pvalue
         if n and control is not None and 0 < control < 1 else None)
    return {"value": value, "control": control, "n": n, "k": k, "p": p}


def verdict(got: dict) -> str:
    """The verdict of :data:`RULE` on :func:`pooled`'s output."""
    if got["n"] < MIN_ABSORBING or got["value"] is None or got["control"] is None:
        return "underpowered"
    big = got["value"] - got["control"] >= MARGIN
    significant = got["p"] is not None and got["p"] < ALPHA
    return "reproduced" if big and significant else "partly" if big or significant else "not reproduced"


def claim_row(pairs: list[dict]) -> dict:
    """The ``absorption_novel`` verdict row for the closing table."""
    got = pooled(pairs)
    v = verdict(got)
    p = "n/a" if got["p"] is None else f"{got['p']:.2g}"
    ours = (f"{pct(got['value'])} of {got['n']} absorbing latents are novel vs {pct(got['control'])} of live latents "
            f"(one-sided binomial p = {p}; {len(pairs)} adjacent pairs)")
    return row("absorption_novel", ours, v, got["value"], ("novel share of all live latents", got["control"]))


def reading(pairs: list[dict], labels: list[str]) -> str:
    """Markdown: what the pairs say, generated from the numbers (``labels``: one per pair, e.g. '576 → 1152')."""
    got = pooled(pairs)
    v = verdict(got)
    lines = []
    for lab, p in zip(labels, pairs):
        lines.append(f"* {lab}: {p['n_absorbing_novel']} of {p['n_absorbing']} absorbing latents novel "
                     f"({pct(_share(p['n_absorbing_novel'], p['n_absorbing']))}) against "
                     f"{pct(_share(p['n_live_novel'], p['n_live']))} of {p['n_live']} live latents")
    if got["value"] is None:
        head = "No absorbing latent was found in any larger SAE of a pair: the relation cannot be read."
    else:
        diff = 100 * (got["value"] - got["control"])
        word = "more" if diff > 0 else "less"
        p = "n/a" if got["p"] is None else f"{got['p']:.2g}"
        head = (f"Pooled over {len(pairs)} pairs, **{pct(got['value'])}** of {got['n']} absorbing latents are novel, "
                f"{abs(diff):.1f} points {word} often than the wider SAEs' live latents at large "
                f"({pct(got['control'])}; one-sided binomial p = {p}). Verdict by the declared rule: **{v}**.")
    return head + "\n\n" + "\n".join(lines)
