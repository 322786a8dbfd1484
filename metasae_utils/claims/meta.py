"""Verdicts on the paper's meta-SAE claims (rules in :data:`.registry.CLAIMS`)."""

from __future__ import annotations

from .registry import row, share_verdict


def _split_row(split: dict) -> dict:
    if split["n_splits"] == 0:
        return row("split_gains", "no latent splits into >= 2 latents of the next size", "untestable here")
    share = split["frac_children_use_more"]
    return row("split_gains", f"{split['n_splits']} splits: children use {split['mean_gain']:+.2f} meta-latents on "
                              f"average, {100 * share:.0f} % use more", share_verdict(share, 0.5, 0.3), share)


def meta_verdicts(mm: dict, frac_close: float, random_close: float, usage: dict, split: dict | None = None,
                  k: int = 4) -> list[dict]:
    """The paper's meta-SAE claims against our numbers.

    ``mm``: :func:`metasae_utils.meta.meta_metrics` of the meta-SAE on the largest SAE; ``frac_close`` /
    ``random_close``: share of meta-latents (and of random directions) with a cosine > 0.7 match in a smaller SAE;
    ``usage``: width → mean meta-latents per latent (one meta-SAE over all sizes); ``split``:
    :func:`metasae_utils.meta.split_usage`.
    """
    var = mm["variance_explained"]
    per = mm["mean_meta_latents_per_latent"]
    top = mm["max_shared_fraction"]
    none = mm["no_meta_latent_fraction"]
    widths = sorted(usage)
    increasing = all(usage[b] > usage[a] for a, b in zip(widths, widths[1:]))
    out = [
        row("meta_sparse", f"{per:.2f} meta-latents per latent (k = {k}); {100 * none:.1f} % of latents use none",
            "reproduced" if 0.5 * k <= per <= 1.5 * k and none < 0.1 else "not reproduced", per),
        row("meta_interpretable", "see the decompositions with their contexts in the chapter", "qualitative"),
        row("meta_variance", f"{100 * var:.1f} %", "reproduced" if 0.4 <= var <= 0.7 else "not reproduced", var),
        row("meta_most_shared", f"the most shared meta-latent is used by {100 * top:.1f} % of latents",
            "reproduced" if top <= 0.04 else "partly" if top <= 0.1 else "not reproduced", top),
        row("meta_resemble_smaller", f"{100 * frac_close:.1f} % have a match > 0.7 in some smaller SAE (random "
                                     f"directions: {100 * random_close:.1f} %)",
            "reproduced" if frac_close >= max(2 * random_close, random_close + 0.05) else "not reproduced",
            frac_close),
        row("smaller_use_fewer", ", ".join(f"{w}: {usage[w]:.2f}" for w in widths),
            "reproduced" if increasing else "not reproduced",
            usage[widths[-1]] - usage[widths[0]] if widths else None),
    ]
    if split is not None:
        out.append(_split_row(split))
    return out
