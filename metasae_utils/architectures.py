"""The paper's measurements repeated across SAELens architectures at matched L0.

The paper used ReLU + L1 (``standard``) SAEs for stitching and a BatchTopK SAE for its meta-SAE figures.  This
module trains, for each architecture, a *pair* of widths at (approximately) the same L0 and measures the same
things on each pair, so architectures can be compared on equal sparsity:

* how each architecture reaches the target L0 (:func:`sparsity_args`): ``batchtopk`` and
  ``matryoshka_batchtopk`` take it as ``k``; ``jumprelu`` as SAELens' ``target_l0`` (quadratic sparsity loss);
  ``matching_pursuit`` as its number of pursuit steps; ``standard`` has no L0 knob, so its L1 coefficient is
  calibrated (:func:`calibrate_l0`: a few trainings, secant steps in log-log, the closest SAE kept);
* what is measured on a pair (:func:`compare_pair`): L0 and FVU of both SAEs, the novel fraction (decoder max
  cosine at 0.7), the signs of single-latent insertions where the architecture can be stitched (its latents
  independent), and the variance of the larger SAE's decoder that a k = 4 meta-SAE explains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from .stitching import stitchable

ORDER = ("standard", "batchtopk", "jumprelu", "matryoshka_batchtopk", "matching_pursuit")


def sparsity_args(architecture: str, target_l0: float, l1_coefficient: float | None = None) -> dict:
    """Training arguments that set an architecture's L0 to ``target_l0`` (``standard``: the L1 coefficient)."""
    if architecture == "standard":
        return {"l1_coefficient": l1_coefficient}
    if architecture == "matching_pursuit":
        return {"k": int(round(target_l0))}
    if architecture in ORDER:
        return {"k": target_l0}  # as given: an int k keeps the cache keys of families trained elsewhere
    raise ValueError(f"architecture {architecture!r} is not one of {', '.join(ORDER)}")


#: JumpReLU's thresholds move by about ``lr`` per Adam step, so a short run at the family's learning rate leaves
#: them near their initial value and the L0 far above its target (SmolLM2 layer 9, width 576, 293 steps, target
#: L0 32: lr 4e-4 gives L0 509 on held-out text, 2e-3 gives 195, 4e-3 gives 29.5 with FVU 0.158 and no dead
#: latents).  The architecture comparison therefore trains JumpReLU at this multiple of the family's lr.
JUMPRELU_LR_FACTOR = 10.0


#: the family's long-run recipe (L1 controller, lr decay, curves, checkpoints, twins) is switched off for the
#: matched-L0 pairs: their sparsity is set per architecture here, and they train for ``arch_train_epochs``.
_PLAIN_RECIPE = {"target_l0": None, "lr_decay_fraction": 0.0, "curve_points": 0, "checkpoint_fractions": None,
                 "budget_multiples": None, "budget_reach": None,
                 "twins": 0}


def config_overrides(architecture: str, args: dict, lr: float, epochs: float | None = None) -> dict:
    """Preset (``Config``) fields for training ``architecture`` with :func:`sparsity_args` ``args`` in a
    ``families.train_family`` call: ``k`` or ``l1_coefficient``, for JumpReLU ``lr`` scaled by
    ``JUMPRELU_LR_FACTOR``, the plain recipe, and ``train_epochs`` = ``epochs`` when given."""
    out = {"l1_coefficient": args["l1_coefficient"]} if architecture == "standard" else {"k": int(args["k"])}
    out.update(_PLAIN_RECIPE)
    if epochs is not None:
        out["train_epochs"] = float(epochs)
    if architecture == "jumprelu":
        out["lr"] = lr * JUMPRELU_LR_FACTOR
    return out


@dataclass
class Calibration:
    """Result of :func:`calibrate_l0`: the kept ``sae``, its ``coefficient`` and ``l0``, and every try
    ``(coefficient, l0)`` in order."""

    sae: object
    coefficient: float
    l0: float
    tries: list = field(default_factory=list)


def next_coefficient(tries: list[tuple[float, float]], target: float, slope: float = -1.0) -> float:
    """The next L1 coefficient to try: a secant step in (log coefficient, log L0) through the last two tries,
    or along ``slope`` (L0 ~ coefficient^slope) after one try.  The step is clipped to a factor of 8."""
    (c1, l1) = tries[-1]
    if len(tries) >= 2:
        (c0, l0) = tries[-2]
        if c0 != c1 and l0 > 0 and l1 > 0 and l0 != l1:
            s = (math.log(l1) - math.log(l0)) / (math.log(c1) - math.log(c0))
            if s < 0:  # L0 must fall as the L1 coefficient grows; otherwise keep the prior slope
                slope = s
    step = (math.log(target) - math.log(max(l1, 1e-3))) / slope
    return c1 * math.exp(max(-math.log(8), min(math.log(8), step)))


def calibrate_l0(train: Callable[[float], object], l0_of: Callable[[object], float], target: float, start: float,
                 max_tries: int = 3, tol: float = 0.1) -> Calibration:
    """Find an L1 coefficient whose SAE has L0 within ``tol`` (relative) of ``target``.

    ``train(coefficient)`` returns a trained SAE (cache it: a rerun then costs nothing); ``l0_of(sae)`` measures
    its L0.  Tries ``start``, then secant steps (:func:`next_coefficient`), at most ``max_tries`` trainings;
    returns the SAE whose L0 is closest to ``target`` in log ratio.
    """
    if not (target > 0 and start > 0):
        raise ValueError(f"target L0 and start coefficient must be > 0, got {target}, {start}")
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")
    tries, best = [], None
    coef = start
    for _ in range(max_tries):
        sae = train(coef)
        l0 = float(l0_of(sae))
        tries.append((coef, l0))
        err = abs(math.log(max(l0, 1e-3) / target))
        if best is None or err < best[0]:
            best = (err, sae, coef, l0)
        if err <= math.log1p(tol):
            break
        coef = next_coefficient(tries, target)
    return Calibration(sae=best[1], coefficient=best[2], l0=best[3], tries=tries)


def matched_pair(train: Callable[[str, int, dict], object], l0_of: Callable[[object], float], architecture: str,
                 widths: tuple[int, int], target_l0: float, l1_start: float, max_tries: int = 3) -> list[Calibration]:
    """Two SAEs of ``architecture`` (widths ``widths``) at L0 ≈ ``target_l0``.  ``train(arch, width, args)`` trains
    (and caches) one SAE with the arguments of :func:`sparsity_args`; standard SAEs are calibrated per width."""
    if len(widths) != 2 or widths[0] >= widths[1]:
        raise ValueError(f"widths must be two increasing widths, got {widths}")
    out = []
    for width in widths:
        if architecture == "standard":
            out.append(calibrate_l0(lambda c, w=width: train(architecture, w, sparsity_args(architecture, target_l0, c)),
                                    l0_of, target_l0, l1_start, max_tries=max_tries))
        else:
            sae = train(architecture, width, sparsity_args(architecture, target_l0))
            out.append(Calibration(sae=sae, coefficient=float("nan"), l0=float(l0_of(sae))))
    return out


def compare_pair(small, large, acts: torch.Tensor, meta_sae=None, threshold: float = 0.7) -> dict:
    """The paper's measurements on one pair of SAEs (same architecture), on held-out ``acts`` (n, d_in).

    Returns a flat dict: ``l0_small``, ``l0_large``, ``fvu_small``, ``fvu_large``, ``dead_small``, ``dead_large``
    (latents firing on <= 1e-5 of ``acts``), ``novel_fraction`` (of the live latents, at ``threshold``), ``novel_lowers`` / ``recon_raises`` (shares of novel / reconstruction latents whose single
    insertion lowers / raises the MSE; NaN when the architecture cannot be stitched or the class is empty),
    ``self_duplicate`` (:func:`~metasae_utils.stitching.self_duplicate_control` of the smaller SAE, their control),
    ``meta_variance_explained`` and ``meta_l0`` (of ``meta_sae`` on the larger decoder; NaN without one).
    """
    from . import meta, stitching
    from .evaluate import alive_latents, reconstruction_metrics

    rs, rl = reconstruction_metrics(small, acts), reconstruction_metrics(large, acts)
    cls = stitching.classify_latents(small, large, threshold=threshold,  # live latents only
                                     fire_rate=rl["fire_counts"].double() / rl["n_tokens"])
    out = {"l0_small": rs["l0"], "l0_large": rl["l0"], "fvu_small": rs["fvu"], "fvu_large": rl["fvu"],
           "dead_small": int((~alive_latents(rs["fire_counts"], rs["n_tokens"])).sum()),
           "dead_large": int(cls.dead.numel()),
           "novel_fraction": cls.novel_fraction, "novel_lowers": float("nan"), "recon_raises": float("nan"),
           "meta_variance_explained": float("nan"), "meta_l0": float("nan")}
    out["self_duplicate"] = float("nan")
    if stitchable(small) and stitchable(large):
        shares = stitching.insertion_shares(cls, stitching.insertion_deltas(small, large, acts))
        out["novel_lowers"], out["recon_raises"] = shares["novel_lowers"], shares["recon_raises"]
        out["self_duplicate"] = stitching.self_duplicate_control(small, acts)
    if meta_sae is not None:
        mm = meta.meta_metrics(meta_sae, large.W_dec.detach())
        out["meta_variance_explained"] = mm["variance_explained"]
        out["meta_l0"] = mm["mean_meta_latents_per_latent"]
    return out


def l0_report(rows, target: float, tol: float = 0.25, columns=("l0_small", "l0_large"), what: str = "L0") -> str:
    """One line saying which architectures missed ``target`` by more than ``tol`` (relative) in ``columns``
    (default: the pair's held-out L0; ``columns=("meta_l0",)``, ``what="meta-SAE L0"`` checks the meta-SAEs'
    k).  ``rows``: a table with ``architecture`` and those columns (a DataFrame or a list of dicts)."""
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    off = [f"{r['architecture']} ({', '.join(f'{r[c]:.1f}' for c in columns)})" for r in rows
           if any(abs(r[c] / target - 1) > tol for c in columns)]
    if not off:
        return f"{what} matched: every value within {100 * tol:.0f} % of {target}"
    return f"{what} NOT matched within {100 * tol:.0f} % of {target} for: " + ", ".join(off)


def compare(train: Callable[[str, int, dict], object], l0_of: Callable[[object], float], archs, widths: tuple[int, int],
            target_l0: float, l1_start: float, acts: torch.Tensor, meta_sae_for: Callable[[str, list], object],
            extra: Callable[[object, object], dict] | None = None) -> tuple[list[dict], dict]:
    """For each architecture in ``archs``: its :func:`matched_pair`, a meta-SAE on the larger decoder
    (``meta_sae_for(arch, pair)``, e.g. a cached ``meta.cached_meta_sae``) and :func:`compare_pair` on ``acts``.

    Returns ``(rows, pairs)``: one flat dict per architecture (``architecture``, the measurements, ``l1
    (standard)``: the calibrated coefficient of the larger SAE, NaN for the others, then ``extra(small, large)``)
    and ``{arch: [Calibration, Calibration]}``.
    """
    rows, pairs = [], {}
    for arch in archs:
        pair = matched_pair(train, l0_of, arch, widths, target_l0, l1_start)
        small, large = pair[0].sae, pair[1].sae
        row = {"architecture": arch, **compare_pair(small, large, acts, meta_sae_for(arch, pair)),
               "l1 (standard)": pair[1].coefficient}
        if extra:
            row.update(extra(small, large))
        rows.append(row)
        pairs[arch] = pair
    return rows, pairs
