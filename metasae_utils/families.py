"""SAE families: SAEs of several widths on the same activations — trained here, or loaded.

* ``train``: one SAELens SAE per width, trained by :func:`metasae_utils.training.train_sae` on the cached
  activations, saved with SAELens ``save_model`` into the artifact cache and loaded back with
  ``SAE.load_from_disk`` (so every SAE in the book is the round-tripped one).
* ``pretrained``: ``SAE.from_pretrained(release, sae_id)`` (needs the hub); release and ids are checked against
  SAELens' registry first, so a typo fails at once with the allowed values.
* ``local``: every sub-folder of ``sae_dir`` holding a SAELens SAE, sorted by width.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .presets import Config, ConfigError

FAMILY_VERSION = 1


@dataclass
class Member:
    """One SAE of a family, with where it came from."""
    name: str
    sae: object
    width: int
    architecture: str
    path: Path | None = None
    info: dict = field(default_factory=dict)


def registry_entry(release: str):
    """SAELens' registry entry of ``release`` (see :func:`metasae_utils.hub.registry_entry`)."""
    from .hub import registry_entry as entry
    return entry(release)


def check_pretrained(cfg: Config) -> None:
    """Release and ids exist in the registry (before any download)."""
    lookup = registry_entry(cfg.sae_release)
    if lookup.model and lookup.model != cfg.model:
        raise ConfigError(f"parameter 'model' = {cfg.model!r}, but the SAEs of release {cfg.sae_release!r} read "
                          f"{lookup.model!r}; allowed: model: {lookup.model}")
    for sae_id in cfg.sae_ids:
        if sae_id not in lookup.saes_map:
            ids = list(lookup.saes_map)
            raise ConfigError(f"parameter 'sae_ids' holds {sae_id!r}, which is not in release {cfg.sae_release!r}; "
                              f"allowed: {', '.join(ids[:12])}{' ...' if len(ids) > 12 else ''}")


def published_metrics(cfg: Config) -> dict[str, dict]:
    """The registry's published L0 and variance explained for each of the preset's SAE ids."""
    lookup = registry_entry(cfg.sae_release)
    return {i: {"l0": lookup.expected_l0.get(i), "variance_explained": lookup.expected_var_explained.get(i),
                "neuronpedia": lookup.neuronpedia_id.get(i)} for i in cfg.sae_ids}


def sae_seed(seed: int, width: int) -> int:
    """Each width gets its own seed.  With one seed for all, the first rows of a wider SAE's random
    initialisation equal the narrower SAE's (same random stream), and short runs keep that shared start:
    latents then look 'matched' across sizes for no reason but the initialisation."""
    return (seed * 1_000_003 + width) % (2**31 - 1)


def n_steps(cfg: Config, n_rows: int) -> int:
    return max(1, math.ceil(cfg.train_epochs * n_rows / cfg.train_batch_size))


def monitored(cfg: Config) -> bool:
    """Does the preset ask for the long-run recipe (L1 controller, lr decay, learning curves, checkpoints)?"""
    return bool(cfg.target_l0 or cfg.lr_decay_fraction or cfg.curve_points or cfg.checkpoint_fractions
                or cfg.budget_multiples)


def _recipe(cfg: Config, architecture: str, steps: int, curves: bool) -> dict:
    """The parts of the training recipe beyond the basic hyper-parameters (also part of the cache key); learning
    curves only when ``curves`` (held-out activations were given)."""
    return {"target_l0": cfg.target_l0 if architecture == "standard" else None,
            "l1_control_until": cfg.l1_control_until, "lr_decay_steps": int(cfg.lr_decay_fraction * steps),
            "curve_every": max(1, steps // cfg.curve_points) if cfg.curve_points and curves else 0,
            "curve_tokens": cfg.curve_tokens,
            "checkpoint_steps": sorted({max(1, round(f * steps)) for f in (cfg.checkpoint_fractions or ())})}


def _train_monitored(cfg, train_acts, eval_acts, architecture, width, steps, hyper, device, progress, folder):
    """Train one SAE with a :class:`~metasae_utils.training.monitor.Monitor` into ``folder``: the SAE, ``curve.json``
    (learning curve, L1 history, final coefficient) and ``checkpoints/step_<n>``."""
    import json

    from . import training
    from .training.monitor import Monitor
    r = hyper["recipe"]
    mon = Monitor(n_steps=steps, eval_acts=eval_acts[: r["curve_tokens"]] if r["curve_every"] else None,
                  curve_every=r["curve_every"], checkpoint_steps=tuple(r["checkpoint_steps"]),
                  checkpoint_dir=Path(folder) / "checkpoints", target_l0=r["target_l0"],
                  control_until=r["l1_control_until"])
    sae = training.train_sae(train_acts, architecture, width, n_steps=steps, batch_size=cfg.train_batch_size,
                             lr=cfg.lr, seed=hyper["seed"], k=cfg.k, l1_coefficient=cfg.l1_coefficient, device=device,
                             progress=progress, lr_decay_steps=r["lr_decay_steps"], monitor=mon)
    training.save_sae(sae, folder)
    final_l1 = mon.l1_history[-1][1] if mon.l1_history else (cfg.l1_coefficient if architecture == "standard" else None)
    (Path(folder) / "curve.json").write_text(json.dumps({
        "curve": mon.curve, "l1_history": mon.l1_history, "final_l1_coefficient": final_l1,
        "checkpoints": {str(k): f"checkpoints/step_{k}" for k in sorted(mon.checkpoints)}}, indent=1))


def train_family(cfg: Config, train_acts: torch.Tensor, acts_key: str, architecture: str | None = None,
                 device: str = "cpu", progress: bool = True, eval_acts: torch.Tensor | None = None,
                 widths=None, seed_offset: int = 0, twin: bool = False) -> list[Member]:
    """Train (or reuse from the cache) one SAE per width of ``widths`` (default ``cfg.widths``) on ``train_acts``
    (n, d_in).  ``seed_offset`` shifts every seed (seed twins); with :func:`monitored` presets each SAE also records
    its learning curve on ``eval_acts`` (held-out activations; no curves without them) and checkpoints
    (``Member.info``)."""
    import json

    from . import training
    architecture = architecture or cfg.architecture
    steps = n_steps(cfg, len(train_acts))
    watch = monitored(cfg)
    members = []
    for width in widths or cfg.widths:
        hyper = {"architecture": architecture, "width": width, "k": cfg.k, "l1_coefficient": cfg.l1_coefficient,
                 "lr": cfg.lr, "batch_size": cfg.train_batch_size, "n_steps": steps,
                 "seed": sae_seed(cfg.seed + seed_offset, width)}
        spec = {"activations": acts_key, **hyper}
        if watch and cfg.budget_multiples and architecture == "standard":
            sae, path, hyper = _branched_member(cfg, train_acts, eval_acts, width, steps, hyper, spec, device,
                                                progress)
        elif watch:
            hyper["recipe"] = _recipe(cfg, architecture, steps, eval_acts is not None)
            spec = {**spec, "recipe": hyper["recipe"]}
            sae, path = training.cached_sae("saes", spec, version=FAMILY_VERSION, device=device, make=(
                lambda tmp, width=width, hyper=hyper: _train_monitored(
                    cfg, train_acts, eval_acts, architecture, width, steps, hyper, device, progress, tmp)))
            record = json.loads((path / "curve.json").read_text())
            hyper = {**hyper, **record, "checkpoints": {int(k): path / v for k, v in record["checkpoints"].items()}}
        else:
            sae, path = training.cached_sae(
                "saes", spec,
                lambda width=width, seed=hyper["seed"]: training.train_sae(
                    train_acts, architecture, width, n_steps=steps, batch_size=cfg.train_batch_size, lr=cfg.lr,
                    seed=seed, k=cfg.k, l1_coefficient=cfg.l1_coefficient, device=device, progress=progress),
                FAMILY_VERSION, device)
        name = f"{architecture}-{width}" + ("-twin" if twin else "")
        members.append(Member(name, sae, width, architecture, path, hyper))
    return members


def _branched_member(cfg, train_acts, eval_acts, width, steps, hyper, spec, device, progress):
    """One member trained with annealed budget branches (:mod:`metasae_utils.branched`): the SAE is the branch at
    the family's ``steps``; ``info["checkpoints"]`` the shorter branches (the budget curve reads them as it read
    checkpoints), ``info["branches"]`` every branch."""
    import json

    from . import branched, training
    hyper["recipe"] = {**_recipe(cfg, "standard", steps, eval_acts is not None), "checkpoint_steps": [],
                       "lr_decay_steps": 0}
    spec = {**spec, "recipe": hyper["recipe"]}
    paths = branched.train_branched(cfg, train_acts, eval_acts, width, steps, hyper, spec, progress)
    path = paths[steps]
    record = json.loads((path / "curve.json").read_text())
    hyper = {**hyper, **record, "checkpoints": {b: p for b, p in paths.items() if b < steps}, "branches": paths}
    return training.load_sae(path, device), path, hyper


def load_twins(cfg: Config, train_acts: torch.Tensor, acts_key: str, eval_acts: torch.Tensor | None = None,
               device: str = "cpu", progress: bool = True) -> list[Member]:
    """Seed twins of the trained family's ``cfg.twins`` largest widths: the same recipe with every seed shifted by
    one (empty when ``cfg.twins`` is 0 or the family is not trained here)."""
    if cfg.family != "train" or not cfg.twins:
        return []
    return train_family(cfg, train_acts, acts_key, device=device, progress=progress, eval_acts=eval_acts,
                        widths=cfg.widths[-cfg.twins:], seed_offset=1, twin=True)


def l0_plan(cfg: Config) -> list[tuple[int, float, int]]:
    """The L0 variants a preset asks for, as ``(width, target L0, seed offset)``: ``l0_widths`` at every
    ``l0_targets`` (seed offset 2) with a twin of the larger width (offset 3), then ``l0_extra`` (offset 2).  Offsets
    2 and 3 keep every variant's initialisation apart from the family's (0) and its twins' (1), so an L0 variant
    differs from the family member of its width in seed *and* L0 (compare with the seed twins: the seed-only floor)."""
    plan = []
    for t in cfg.l0_targets:
        plan += [(w, float(t), 2) for w in cfg.l0_widths] + [(max(cfg.l0_widths), float(t), 3)]
    for item in cfg.l0_extra:
        w, _, t = str(item).partition("@")
        if (int(w), float(t), 2) not in plan:
            plan.append((int(w), float(t), 2))
    return plan


def load_l0_variants(cfg: Config, train_acts: torch.Tensor, acts_key: str, eval_acts: torch.Tensor | None = None,
                     device: str = "cpu", progress: bool = True) -> list[Member]:
    """The family's recipe at other target L0s (:func:`l0_plan`; empty when the preset asks for none or the family is
    not trained here), each SAE trained to the family's budget (its budget branches up to 1x).  Names:
    ``standard-<width>-l0<L0>`` and ``…-twin`` for the seed twin; ``info["target_l0"]`` and ``info["seed_offset"]``."""
    import dataclasses
    if cfg.family != "train" or cfg.architecture != "standard":
        return []
    out = []
    for width, t, offset in l0_plan(cfg):
        c = dataclasses.replace(cfg, target_l0=t, budget_reach=None)
        m = train_family(c, train_acts, acts_key, device=device, progress=progress, eval_acts=eval_acts,
                         widths=[width], seed_offset=offset)[0]
        m.name = f"standard-{width}-l0{t:g}" + ("-twin" if offset == 3 else "")
        m.info.update(target_l0=t, seed_offset=offset)
        out.append(m)
    return out


def at_checkpoint(member: Member, step: int, device: str = "cpu") -> Member:
    """``member`` as it was after ``step`` training steps (a checkpoint saved by a monitored run)."""
    from . import training
    path = member.info["checkpoints"][step]
    return Member(f"{member.name}@{step}", training.load_sae(path, device), member.width, member.architecture, path,
                  {**member.info, "step": step})


def load_pretrained_family(cfg: Config, device: str) -> list[Member]:
    """``SAE.from_pretrained`` for every id of the preset (needs the hub)."""
    from .sources import check_hub
    check_pretrained(cfg)
    check_hub(f"SAE release '{cfg.sae_release}'", cfg=cfg, parts=("saes",))
    from sae_lens import SAE

    from .hub import quiet_model_kwargs_warning
    members = []
    for sae_id in cfg.sae_ids:
        with warnings.catch_warnings():  # "load the model with model_from_pretrained_kwargs": sources.load_model
            quiet_model_kwargs_warning()
            sae = SAE.from_pretrained(cfg.sae_release, sae_id, device=device)
        sae = sae[0] if isinstance(sae, tuple) else sae
        members.append(Member(sae_id, sae.eval(), sae.cfg.d_sae, cfg.architecture, None, {"sae_id": sae_id}))
    return sorted(members, key=lambda m: m.width)


def load_local_family(sae_dir: str | Path, device: str = "cpu") -> list[Member]:
    """Every SAELens-format SAE in the sub-folders of ``sae_dir`` (``cfg.json`` + weights), by width."""
    from sae_lens import SAE
    root = Path(sae_dir)
    folders = sorted(p.parent for p in root.glob("*/cfg.json")) if root.is_dir() else []
    if not folders:
        raise ConfigError(f"parameter 'sae_dir' = {str(sae_dir)!r} holds no SAELens SAE (expected sub-folders "
                          "with cfg.json, as written by sae.save_model(folder))")
    members = []
    for folder in folders:
        sae = SAE.load_from_disk(str(folder), device=device).eval()
        members.append(Member(folder.name, sae, sae.cfg.d_sae, sae.cfg.architecture(), folder))
    return sorted(members, key=lambda m: m.width)


def check_d_in(members: list[Member], d_model: int, hook: str) -> None:
    """Every SAE reads vectors of the model's width at the hook."""
    for m in members:
        if m.sae.cfg.d_in != d_model:
            raise ConfigError(f"SAE {m.name!r} has d_in = {m.sae.cfg.d_in} but {hook} has width {d_model}; "
                              "parameter 'sae_dir'/'sae_ids' must name SAEs trained on this hook")


def load_family(cfg: Config, d_model: int, train_acts: torch.Tensor | None = None, acts_key: str | None = None,
                architecture: str | None = None, device: str = "cpu", progress: bool = True,
                eval_acts: torch.Tensor | None = None) -> list[Member]:
    """The preset's family, whatever its source (``cfg.family``); widths checked against the model."""
    if cfg.family == "pretrained":
        members = load_pretrained_family(cfg, device)
    elif cfg.family == "local":
        members = load_local_family(cfg.sae_dir, device)
    else:
        if train_acts is None or acts_key is None:
            raise ValueError("family = 'train' needs the training activations and their cache key")
        members = train_family(cfg, train_acts, acts_key, architecture, device, progress, eval_acts)
    check_d_in(members, d_model, cfg.hook)
    return members


def family_rows(members: list[Member], metrics: list[dict], n_tokens: int) -> list[dict]:
    """One row per trained SAE for ``results/<preset>/sae_families.json``: ``width``, ``architecture``, ``steps``,
    ``tokens`` (training samples seen), ``l1_coefficient`` (the final one), held-out ``l0``, ``fvu``,
    ``dead_fraction`` (``metrics``: :func:`metasae_utils.evaluate.reconstruction_metrics` per member), and
    ``l0_drift`` / ``fvu_drift`` (relative change over the last 10 % of the steps of the learning curve, which for a
    member trained with budget branches ends where its decay begins; None
    without one).  ``n_tokens``: the size of the training set."""
    from .training.monitor import drift
    rows = []
    for m, r in zip(members, metrics):
        info, curve = m.info, m.info.get("curve") or []
        l1 = info.get("final_l1_coefficient", info.get("l1_coefficient") if m.architecture == "standard" else None)
        rows.append({"name": m.name, "width": m.width, "architecture": m.architecture,
                     "steps": info.get("n_steps"), "tokens": (info.get("n_steps") or 0) * (info.get("batch_size") or 0),
                     "training_set_tokens": n_tokens, "l1_coefficient": l1, "l0": r["l0"], "fvu": r["fvu"],
                     "dead_fraction": r["dead_fraction"],
                     "l0_drift": drift(curve, "l0") if len(curve) > 1 else None,
                     "fvu_drift": drift(curve, "fvu") if len(curve) > 1 else None})
    return rows


def convergence(rows: list[dict], drift_limit: float = 0.02, l0_band: float = 0.15) -> dict:
    """Has the family converged, and is its L0 flat?  ``rows``: :func:`family_rows`.  Returns the largest
    ``l0_drift`` and ``fvu_drift`` (None without learning curves), ``converged`` (both < ``drift_limit`` for every
    SAE), ``l0_median`` and ``l0_spread`` (largest |L0 / median - 1|), ``flat`` (spread <= ``l0_band``)."""
    import statistics
    drifts = [(r["l0_drift"], r["fvu_drift"]) for r in rows if r["l0_drift"] is not None]
    l0s = [r["l0"] for r in rows]
    median = statistics.median(l0s) if l0s else float("nan")
    spread = max(abs(v / median - 1) for v in l0s) if l0s else float("nan")
    return {"max_l0_drift": max(d[0] for d in drifts) if drifts else None,
            "max_fvu_drift": max(d[1] for d in drifts) if drifts else None,
            "converged": bool(drifts) and len(drifts) == len(rows) and all(max(d) < drift_limit for d in drifts),
            "l0_median": median, "l0_spread": spread, "flat": spread <= l0_band}


def cached_frankenstein(members: list[Member], activations: torch.Tensor, method: str = "joint",
                        threshold: float = 0.7):
    """:func:`metasae_utils.stitching.frankenstein` of a family through the artifact cache.

    Returns ``(sae, stages)``; ``stages`` (the per-size record of inserted latents, single-effect sum vs joint
    effect) is kept beside the SAE for the joint method, None for the single-effect one (its first cache
    version stored the SAE alone)."""
    from . import artifacts, stitching, training
    spec = {"family": [str(m.path or m.name) for m in members], "threshold": threshold}
    entry = (artifacts.entry("frankenstein", {**spec, "method": method}, 2) if method == "joint"
             else artifacts.entry("frankenstein", spec, 1))
    built: dict = {}

    def _build(tmp):
        sae, _, built["stages"] = stitching.frankenstein([m.sae for m in members], activations, threshold=threshold,
                                                         method=method)
        training.save_sae(sae, tmp)
    sae = training.load_sae(entry.get_or_make("sae", _build))
    if method != "joint":
        return sae, None
    if "stages" not in built and not entry.has("stages.json"):
        _, _, built["stages"] = stitching.frankenstein([m.sae for m in members], activations, threshold=threshold,
                                                       method=method)
    return sae, entry.json("stages.json", lambda: built["stages"])
