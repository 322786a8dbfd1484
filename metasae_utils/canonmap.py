"""The canonicality map: every SAE the build trained, side by side, under the two measures of :mod:`.canonicality`.

* :class:`MapSAE` — one SAE of the map with the axes it varies along (width, seed offset, target L0, training
  steps, architecture) and its ``kind`` (family, twin, budget, l0, l0-twin, architecture).
* :func:`from_member`, :func:`branch_saes`, :func:`architecture_saes` — the inventory, from the family's members, its
  annealed budget branches and chapter 5's matched-L0 architecture pairs; :func:`order` sorts it by width / seed /
  L0 / budget / architecture.
* :func:`live_masks` — each SAE's live latents on held-out activations (dead ones would count as unmatched).
* :func:`twin_cells` — the seed-twin cells: the noise floor of the map.
* :func:`cached_map` — both matrices through the artifact cache; :func:`map_json` — the results file's content.

Seeds are *offsets* from the preset's seed: the family 0, its seed twins 1, the L0 variants 2, their twins 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

#: the architectures in the order the map lists them (others after, alphabetically)
ARCH_ORDER = ("standard", "batchtopk", "jumprelu", "matryoshka_batchtopk", "matching_pursuit")
#: kinds of SAE in the map
KINDS = ("family", "twin", "budget", "l0", "l0-twin", "architecture")


@dataclass
class MapSAE:
    """One SAE of the map.  ``key``: what identifies it in the cache (its folder, else a description);
    ``l0_target`` None when trained without one (an L1 coefficient); ``steps`` its training steps."""

    name: str
    sae: object
    width: int
    seed: int
    l0_target: float | None
    steps: int | None
    architecture: str
    kind: str
    key: str = ""
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The JSON description: ``{name, width, seed, l0_target, steps, architecture, kind}``."""
        return {"name": self.name, "width": int(self.width), "seed": int(self.seed),
                "l0_target": None if self.l0_target is None else float(self.l0_target),
                "steps": None if self.steps is None else int(self.steps), "architecture": self.architecture,
                "kind": self.kind}


def from_member(member, kind: str, seed: int, l0_target: float | None) -> MapSAE:
    """A family :class:`!metasae_utils.families.Member` as a map entry (``info["target_l0"]``,
    ``info["seed_offset"]`` and ``info["n_steps"]`` win over ``seed`` / ``l0_target`` when present)."""
    info = member.info or {}
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    return MapSAE(member.name, member.sae, int(member.width), int(info.get("seed_offset", seed)),
                  info.get("target_l0", l0_target), info.get("n_steps"), member.architecture, kind,
                  str(member.path or member.name))


def branch_saes(member, seed: int, l0_target: float | None, load=None) -> list[MapSAE]:
    """Every annealed budget branch of ``member`` (``info["branches"]``: {steps: SAELens folder}) except the
    member itself (the branch at the family's budget), loaded with ``load`` (default
    :func:`!metasae_utils.training.load_sae`), named ``<member>@<steps>``; [] without branches."""
    if load is None:
        from .training import load_sae as load
    own = str(member.path) if member.path is not None else None
    out = []
    for steps, path in sorted((member.info or {}).get("branches", {}).items()):
        if str(path) == own or int(steps) == member.info.get("n_steps"):
            continue
        out.append(MapSAE(f"{member.name}@{int(steps)}", load(path), int(member.width), seed, l0_target, int(steps),
                          member.architecture, "budget", str(path)))
    return out


def architecture_saes(pairs: dict, l0_target: float, steps: int | None, key: str) -> list[MapSAE]:
    """Chapter 5's matched-L0 pairs (``{architecture: [Calibration, Calibration]}`` from
    :func:`!metasae_utils.architectures.compare` / ``matched_pair``) as entries ``<arch>-<width> (ch. 5, L0 <target>)``;
    ``key`` names the activations they were trained on (with the calibrated coefficient, the cache identity)."""
    out = []
    for arch, pair in pairs.items():
        for cal in pair:
            w = int(cal.sae.cfg.d_sae)
            out.append(MapSAE(f"{arch}-{w} (ch. 5, L0 {l0_target:g})", cal.sae, w, 0, float(l0_target), steps, arch,
                              "architecture", f"arch:{arch}:{w}:{cal.coefficient}:{key}"))
    return out


def load_architecture_pairs(cfg, train_acts: torch.Tensor, train_key: str) -> list[MapSAE]:
    """Chapter 5's matched-L0 pairs on the model's activations, rebuilt exactly as that chapter builds them (so
    every SAE comes from the cache when chapter 5 has run): :func:`!metasae_utils.architectures.matched_pair` for each
    architecture of ``cfg.arch_compare`` at ``cfg.arch_widths`` and L0 ``cfg.arch_l0`` (default ``cfg.k``)."""
    from dataclasses import replace

    from . import architectures, evaluate, families
    widths = tuple(cfg.arch_widths or cfg.widths[:2])
    target = cfg.arch_l0 or cfg.k

    def train(arch, width, args):
        c = replace(cfg, widths=(width,), **architectures.config_overrides(arch, args, cfg.lr, cfg.arch_train_epochs))
        return families.train_family(c, train_acts, train_key, architecture=arch, progress=False)[0].sae
    l0_of = lambda s: evaluate.reconstruction_metrics(s, train_acts[-16384:])["l0"]
    pairs = {a: architectures.matched_pair(train, l0_of, a, widths, target, cfg.l1_coefficient)
             for a in architectures.ORDER if a in cfg.arch_compare}
    steps = families.n_steps(replace(cfg, train_epochs=cfg.arch_train_epochs or cfg.train_epochs), len(train_acts))
    return architecture_saes(pairs, target, steps, train_key)


def _arch_rank(arch: str) -> tuple:
    return (ARCH_ORDER.index(arch), "") if arch in ARCH_ORDER else (len(ARCH_ORDER), arch)


def order(saes: list[MapSAE]) -> list[MapSAE]:
    """``saes`` sorted by width, then seed offset, target L0, training steps and architecture (None last);
    duplicates (the same ``key``) dropped, the first kept."""
    seen, unique = set(), []
    for s in saes:
        if s.key and s.key in seen:
            continue
        seen.add(s.key)
        unique.append(s)
    none_last = lambda v: (v is None, v if v is not None else 0)
    return sorted(unique, key=lambda s: (s.width, s.seed, none_last(s.l0_target), none_last(s.steps),
                                         _arch_rank(s.architecture), s.name))


def twin_cells(saes: list[MapSAE]) -> list[tuple[int, int]]:
    """The (i, j) cells, i != j, of two seed twins: the same width, architecture, target L0 and steps, another seed
    offset — the noise floor of the map (both orders listed)."""
    cells = []
    for i, a in enumerate(saes):
        for j, b in enumerate(saes):
            if i != j and a.seed != b.seed and (a.width, a.architecture, a.l0_target, a.steps) == \
                    (b.width, b.architecture, b.l0_target, b.steps):
                cells.append((i, j))
    return cells


def live_masks(saes: list[MapSAE], activations: torch.Tensor) -> list[torch.Tensor]:
    """Per SAE a (d_sae,) bool mask of its live latents: firing on more than 1e-5 of ``activations`` (n, d_in,
    held-out), as :func:`!metasae_utils.evaluate.alive_latents` defines it."""
    from .evaluate import alive_latents, firing_rates
    return [alive_latents(firing_rates(s.sae, activations), 1) for s in saes]


def _jsonable(m) -> list[list]:
    """A (n, n) tensor as nested lists, NaN as None."""
    return [[None if math.isnan(float(v)) else float(v) for v in r] for r in torch.as_tensor(m).tolist()]


#: the largest cosine matrix (n_a x n_b live latents) the exact Hungarian matching is run on, 25M cells (a 4608 x
#: 4608 matching takes ~1.5 s and 170 MB); larger pairs (the pretrained families' widest SAEs) get None
HUNGARIAN_MAX_CELLS = 25_000_000


def compute_map(saes: list[MapSAE], live: list[torch.Tensor], threshold: float = 0.7,
                max_cells: int = HUNGARIAN_MAX_CELLS) -> dict:
    """Both measures of :mod:`metasae_utils.canonicality` for every ordered pair of ``saes`` with their ``live``
    masks ((d_sae,) bool each): ``matched`` (n, n) — ``matched[i][j]``: the share of i's live latents with a decoder
    cosine > ``threshold`` in j (all of j's latents) — and ``hungarian`` (n, n, symmetric) — the mean cosine of the
    best one-to-one matching of i's and j's live latents, None where n_live_i x n_live_j > ``max_cells``; nested
    lists (NaN as None), with ``n_live`` (per SAE)."""
    from .canonicality import canonicality_matrix
    got = canonicality_matrix({s.name: s.sae for s in saes}, threshold, live, max_cells=max_cells)
    return {"matched": _jsonable(got["matched"]), "hungarian": _jsonable(got["hungarian"]),
            "n_live": [int(m.sum()) for m in live], "threshold": float(threshold)}


def cached_map(saes: list[MapSAE], live: list[torch.Tensor], activations_key: str, threshold: float = 0.7) -> dict:
    """:func:`compute_map` through the artifact cache (keyed by every SAE's ``key``, the held-out activations'
    key and ``threshold``), so a rebuild reuses the matrices."""
    from . import artifacts
    spec = {"saes": [s.key for s in saes], "activations": activations_key, "threshold": threshold}
    return artifacts.entry("canonicality_map", spec, 2).json("map.json", lambda: compute_map(saes, live, threshold))


def map_json(saes: list[MapSAE], got: dict) -> dict:
    """The results file ``canonicality_map.json``: ``saes`` (their :meth:`MapSAE.row`), ``matched``,
    ``hungarian`` (n, n nested lists: row i compares SAE i with SAE j), ``twin_cells`` ([i, j] pairs),
    ``n_live`` and ``threshold``."""
    n = len(saes)
    for k in ("matched", "hungarian"):
        if len(got[k]) != n or any(len(r) != n for r in got[k]):
            raise ValueError(f"{k} must be {n} x {n} (one row and column per SAE)")
    return {"saes": [s.row() for s in saes], "matched": got["matched"], "hungarian": got["hungarian"],
            "twin_cells": [list(c) for c in twin_cells(saes)], "n_live": got.get("n_live"),
            "threshold": got.get("threshold", 0.7)}


def table_rows(saes: list[MapSAE], got: dict) -> list[dict]:
    """One row per SAE for the inventory table: its axes, live latents, and the mean matched share with its
    seed twin(s) (None when it has none)."""
    twins: dict[int, list[int]] = {}
    for i, j in twin_cells(saes):
        twins.setdefault(i, []).append(j)
    rows = []
    for i, s in enumerate(saes):
        shares = [got["matched"][i][j] for j in twins.get(i, []) if got["matched"][i][j] is not None]
        rows.append({"SAE": s.name, "width": s.width, "seed offset": s.seed,
                     "target L0": s.l0_target, "steps": s.steps, "live latents": got["n_live"][i],
                     "matched in seed twin %": 100 * sum(shares) / len(shares) if shares else None})
    return rows
