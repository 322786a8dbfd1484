"""Verdicts on the claims tested against planted ground truth and across architectures, each beside its control
(rules in :data:`.registry.CLAIMS`)."""

from __future__ import annotations

import math

from .registry import both_verdict, row, share_verdict
from .stitching import SELF_DUPLICATE_LIMIT


def _share_vs(x: float, control: float) -> str:
    """:func:`share_verdict`, but never better than 'not reproduced' when ``x`` is not 10 points above ``control``."""
    v = share_verdict(x)
    if v in ("reproduced", "partly") and not math.isnan(control) and x < control + 0.1:
        return "not reproduced"
    return v


def stitching_truth_verdicts(shares: dict, n_pairs: int) -> list[dict]:
    """``shares``: :func:`!metasae_utils.groundtruth.truth_shares` pooled over ``n_pairs`` synthetic pairs."""
    novel_ok, recon_ok = shares["novel_is_new_or_related"], shares["reconstruction_is_same_or_related"]
    c_new, c_same = shares["all_new_or_related"], shares["all_same_or_related"]
    return [
        row("truth_novel", f"{100 * novel_ok:.1f} % of labelled novel latents are new or related "
                           f"(new alone: {100 * shares['novel_is_new']:.1f} %; all latents: {100 * c_new:.1f} %), "
                           f"pooled over {n_pairs} synthetic pairs",
            _share_vs(novel_ok, c_new), novel_ok, ("all labelled latents that are new or related", c_new)),
        row("truth_reconstruction", f"{100 * recon_ok:.1f} % of labelled reconstruction latents are the same "
                                    f"feature or related (all latents: {100 * c_same:.1f} %)",
            _share_vs(recon_ok, c_same), recon_ok, ("all labelled latents that are the same or related", c_same)),
    ]


def meta_truth_verdicts(mt: dict) -> list[dict]:
    """``mt``: :func:`!metasae_utils.groundtruth.meta_truth` of a meta-SAE on a synthetic family's largest SAE."""
    found, used, chance = mt["frac_roots_found"], mt["parent_in_code"], mt["chance"]
    ok_used = not math.isnan(used) and used >= max(0.5, 2 * chance)
    return [row("truth_meta_parents", f"{100 * found:.0f} % of parents have a meta-latent (cos > 0.7); "
                                      f"{100 * used:.0f} % of child latents use it (chance {100 * chance:.0f} %)",
                both_verdict(found >= 0.5, ok_used), used, ("chance: the meta-latent's base usage rate", chance))]


def _spread_text(s: dict) -> str:
    """'42.1 % ± 0.83 (std, 3 seeds)' for a :func:`metasae_utils.meta.spread` of shares."""
    std = "n/a" if math.isnan(s["std"]) else f"{100 * s['std']:.2f}"
    return f"{100 * s['mean']:.1f} % ± {std} (std, {s['n']} seeds)"


def matryoshka_meta_row(vm: dict, vb: dict) -> dict:
    """The ``matryoshka_meta`` row.  ``vm`` / ``vb``: :func:`metasae_utils.meta.spread` of the variance explained by
    the meta-SAE recipe over its seeds, on the Matryoshka / BatchTopK larger SAE (one fixed SAE each)."""
    control = ("no difference", 0.0)
    diff = vm["mean"] - vb["mean"]
    se = math.sqrt(vm["se"] ** 2 + vb["se"] ** 2)
    paired = [a - b for a, b in zip(vm["values"], vb["values"])] if vm["n"] == vb["n"] else []
    se_p = (math.sqrt(sum((x - sum(paired) / len(paired)) ** 2 for x in paired) / (len(paired) - 1) / len(paired))
            if len(paired) >= 2 else math.nan)
    text = (f"Matryoshka {_spread_text(vm)} vs BatchTopK {_spread_text(vb)} of decoder variance explained; "
            f"difference {100 * diff:+.1f} points, SE {100 * se:.2f} (Welch; paired {100 * se_p:.2f}), over the "
            f"meta-SAE's seeds (each base SAE trained once)")
    if min(vm["n"], vb["n"]) < 2 or math.isnan(se):
        return row("matryoshka_meta", text + ": fewer than 2 seeds, no spread", "untestable here", diff, control)
    if diff < -2 * se:
        verdict = "reproduced" if diff < -0.03 else "partly"
    elif diff > 2 * se:
        verdict = "not reproduced"
    elif 2 * se > 0.03:
        verdict, text = "underpowered", text + ": within ± 2 SE of 0, and 2 SE > 3 points"
    else:
        verdict, text = "not reproduced", text + ": within ± 2 SE of 0 (2 SE ≤ 3 points: a 3-point drop would show)"
    return row("matryoshka_meta", text, verdict, diff, control)


def architecture_verdicts(by_arch: dict[str, dict], seeds: dict[str, dict] | None = None) -> list[dict]:
    """``by_arch``: architecture -> its :func:`!metasae_utils.architectures.compare_pair` row (on real activations),
    with ``self_duplicate`` (:func:`metasae_utils.stitching.self_duplicate_control` of the smaller SAE) where the
    architecture can be stitched; ``seeds``: architecture -> :func:`metasae_utils.meta.over_seeds` of the meta-SAE
    recipe on that architecture's larger SAE (``matryoshka_meta`` is judged over those seeds; without them, on the
    one meta-SAE of ``by_arch``, it is untestable: one seed has no spread)."""
    pair = ("matryoshka_batchtopk", "batchtopk")
    if all(a in by_arch for a in pair):
        if seeds is not None and all(a in seeds for a in pair):
            vm, vb = (seeds[a]["variance_explained"] for a in pair)
        else:
            vm, vb = ({"values": [by_arch[a]["meta_variance_explained"]], "n": 1,
                       "mean": by_arch[a]["meta_variance_explained"], "std": math.nan, "se": math.nan} for a in pair)
        out = [matryoshka_meta_row(vm, vb)]
    else:
        out = [row("matryoshka_meta", "Matryoshka or BatchTopK not in arch_compare", "untestable here", None,
                   ("no difference", 0.0))]
    lowers = {a: r["novel_lowers"] for a, r in by_arch.items()
              if r.get("novel_lowers") is not None and not math.isnan(r["novel_lowers"])}
    dup = [r["self_duplicate"] for a, r in by_arch.items() if a in lowers and r.get("self_duplicate") is not None
           and not math.isnan(r["self_duplicate"])]
    control = ("largest self-duplicate share among the architectures", max(dup) if dup else None)
    text = ", ".join(f"{a}: {100 * v:.0f} %" for a, v in lowers.items())
    ok = [v > 0.5 for v in lowers.values()]
    if dup and max(dup) > SELF_DUPLICATE_LIMIT:
        verdict, text = "untestable here", f"{text} (self-duplicates lower the MSE for up to {100 * max(dup):.0f} %)"
    else:
        verdict = "untestable here" if not ok else "reproduced" if all(ok) else "partly" if any(ok) else "not reproduced"
    out.append(row("novel_across_arch", text, verdict, min(lowers.values()) if lowers else None, control))
    return out
