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
    """SAELens' registry entry of ``release`` (offline: the registry ships with SAELens)."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    directory = get_pretrained_saes_directory()
    if release not in directory:
        import difflib
        close = difflib.get_close_matches(release, list(directory), n=3)
        raise ConfigError(f"parameter 'sae_release' = {release!r} is not a SAELens release"
                          + (f"; did you mean {', '.join(close)}?" if close else ""))
    return directory[release]


def check_pretrained(cfg: Config) -> None:
    """Release and ids exist in the registry (before any download)."""
    lookup = registry_entry(cfg.sae_release)
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


def train_family(cfg: Config, train_acts: torch.Tensor, acts_key: str, architecture: str | None = None,
                 device: str = "cpu", progress: bool = True) -> list[Member]:
    """Train (or reuse from the cache) one SAE per width of ``cfg.widths`` on ``train_acts`` (n, d_in)."""
    from . import training
    architecture = architecture or cfg.architecture
    steps = n_steps(cfg, len(train_acts))
    members = []
    for width in cfg.widths:
        hyper = {"architecture": architecture, "width": width, "k": cfg.k, "l1_coefficient": cfg.l1_coefficient,
                 "lr": cfg.lr, "batch_size": cfg.train_batch_size, "n_steps": steps, "seed": sae_seed(cfg.seed, width)}
        sae, path = training.cached_sae(
            "saes", {"activations": acts_key, **hyper},
            lambda width=width, seed=hyper["seed"]: training.train_sae(
                train_acts, architecture, width, n_steps=steps, batch_size=cfg.train_batch_size, lr=cfg.lr,
                seed=seed, k=cfg.k, l1_coefficient=cfg.l1_coefficient, device=device, progress=progress),
            FAMILY_VERSION, device)
        members.append(Member(f"{architecture}-{width}", sae, width, architecture, path, hyper))
    return members


def load_pretrained_family(cfg: Config, device: str) -> list[Member]:
    """``SAE.from_pretrained`` for every id of the preset (needs the hub)."""
    from .sources import check_hub
    check_pretrained(cfg)
    check_hub(f"SAE release '{cfg.sae_release}'")
    from sae_lens import SAE
    members = []
    for sae_id in cfg.sae_ids:
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
                architecture: str | None = None, device: str = "cpu", progress: bool = True) -> list[Member]:
    """The preset's family, whatever its source (``cfg.family``); widths checked against the model."""
    if cfg.family == "pretrained":
        members = load_pretrained_family(cfg, device)
    elif cfg.family == "local":
        members = load_local_family(cfg.sae_dir, device)
    else:
        if train_acts is None or acts_key is None:
            raise ValueError("family = 'train' needs the training activations and their cache key")
        members = train_family(cfg, train_acts, acts_key, architecture, device, progress)
    check_d_in(members, d_model, cfg.hook)
    return members
