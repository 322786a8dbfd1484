"""Scoring the paper's two techniques against known ground truth (synthetic data, ``metasae_utils.synthetic``).

On real activations nobody knows what a "novel" latent or a meta-latent *is*.  On synthetic data with a planted
hierarchy (roots with mutually exclusive children, plus free features) every SAE latent can be labelled by the
true direction its decoder row points along, and the paper's readings can be checked:

* **stitching** (:func:`stitching_truth`): a large-SAE latent the stitching test calls *novel* should be a true
  feature the small SAE lacks (or a child of a feature the small SAE merged); one it calls *reconstruction*
  should be the same true feature as a small-SAE latent, or a split of it;
* **meta-SAEs** (:func:`meta_truth`): meta-latents should align with the shared *parent* directions, and a
  latent that encodes parent + child should use its parent's meta-latent.

Labels (:func:`label_latents`): a latent's decoder row (unit norm) is compared with every true feature
direction and every parent + child direction (``synthetic.composite_directions``); the best |cosine| above
``truth_threshold`` gives its label:

* ``feature``: a single true feature (root, child or free);
* ``composite``: the parent + child direction of one child (the parent absorbed into the child's latent);
* ``none``: no true direction is that close.

Every labelled latent also belongs to a **tree**: a root and its children share the root's index; a free
feature is its own tree.  Two latents are *the same* when their labels are equal, *related* when they differ
but share a tree (parent vs child, child vs parent + child, two children of one root).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .synthetic import SyntheticData, composite_directions

#: cosine above which a decoder row counts as pointing along a true direction.
TRUTH_THRESHOLD = 0.9
KINDS = ("feature", "composite", "none")
#: truth relation of a large-SAE latent to the small SAE, in table order.
RELATIONS = ("same", "related", "new", "unlabelled")


@dataclass
class LatentTruth:
    """Per-latent ground-truth labels of one SAE (``d_sae`` latents).

    Attributes:
        kind: list of ``d_sae`` strings from ``KINDS``.
        unit: (d_sae,) long — the labelled direction: feature index for ``feature``, ``n_features + child``
            for ``composite`` (the parent + child direction of ``child``), -1 for ``none``.
        tree: (d_sae,) long — the tree of that direction (root index, or the free feature itself), -1 for ``none``.
        cos: (d_sae,) float — the best |cosine| to any true direction (feature or composite).
    """

    kind: list
    unit: torch.Tensor
    tree: torch.Tensor
    cos: torch.Tensor

    def counts(self) -> dict[str, int]:
        """How many latents of each kind."""
        return {k: sum(1 for x in self.kind if x == k) for k in KINDS}


def _unit_rows(w: torch.Tensor) -> torch.Tensor:
    w = w.detach().float().cpu()
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def trees(data: SyntheticData) -> torch.Tensor:
    """(n_features,) long: the tree of each true feature (its root's index; roots and free features: itself)."""
    return torch.where(data.parents >= 0, data.parents, torch.arange(data.n_features))


@torch.no_grad()
def label_latents(decoder: torch.Tensor, data: SyntheticData, truth_threshold: float = TRUTH_THRESHOLD) -> LatentTruth:
    """Label every row of ``decoder`` (d_sae, d) by the true direction it points along (see the module doc)."""
    if decoder.ndim != 2 or decoder.shape[1] != data.spec.d:
        raise ValueError(f"decoder must be (d_sae, {data.spec.d}) for this data set, got {tuple(decoder.shape)}")
    if not 0 < truth_threshold < 1:
        raise ValueError(f"truth_threshold must be in (0, 1), got {truth_threshold}")
    w = _unit_rows(decoder)
    comp = composite_directions(data)
    f_cos, f_best = (w @ _unit_rows(data.features).T).abs().max(1)
    if len(comp):
        c_cos, c_best = (w @ comp.T).abs().max(1)
    else:
        c_cos, c_best = torch.zeros(len(w)), torch.zeros(len(w), dtype=torch.long)
    child_ids = data.is_child.nonzero().squeeze(1)
    is_comp = c_cos > f_cos
    best = torch.maximum(f_cos, c_cos)
    labelled = best > truth_threshold
    n = data.n_features
    child = child_ids[c_best] if len(comp) else c_best
    unit = torch.where(is_comp, n + child, f_best)
    tree_of = trees(data)
    tree = torch.where(is_comp, data.parents[child] if len(comp) else f_best, tree_of[f_best])
    unit = torch.where(labelled, unit, -1)
    tree = torch.where(labelled, tree, -1)
    kind = ["none" if not ok else ("composite" if c else "feature") for ok, c in zip(labelled.tolist(), is_comp.tolist())]
    return LatentTruth(kind=kind, unit=unit, tree=tree, cos=best)


def relation_to(large: LatentTruth, small: LatentTruth) -> list[str]:
    """For each latent of ``large``, its truth relation (``RELATIONS``) to the latents of ``small``:
    ``same`` (a small latent has the same label), ``related`` (one shares its tree), ``new`` (none does),
    ``unlabelled`` (the large latent points along no true direction)."""
    same = set(small.unit[small.unit >= 0].tolist())
    related = set(small.tree[small.tree >= 0].tolist())
    out = []
    for u, t in zip(large.unit.tolist(), large.tree.tolist()):
        out.append("unlabelled" if u < 0 else "same" if u in same else "related" if t in related else "new")
    return out


def truth_shares(table: dict) -> dict:
    """The paper's readings as shares of a confusion ``table`` (``{"novel"|"reconstruction": {relation: count}}``,
    one pair's or several pairs' summed), over labelled latents: ``novel_is_new_or_related``, ``novel_is_new``,
    ``reconstruction_is_same_or_related`` (NaN where a class has no labelled latent), and their controls, the same
    shares over all labelled latents whatever their class: ``all_new_or_related``, ``all_same_or_related``."""
    def share(classes, good):
        labelled = sum(v for c in classes for r, v in table[c].items() if r != "unlabelled")
        return sum(table[c][r] for c in classes for r in good) / labelled if labelled else float("nan")

    both = ("novel", "reconstruction")
    return {"novel_is_new_or_related": share(("novel",), ("new", "related")), "novel_is_new": share(("novel",), ("new",)),
            "reconstruction_is_same_or_related": share(("reconstruction",), ("same", "related")),
            "all_new_or_related": share(both, ("new", "related")), "all_same_or_related": share(both, ("same", "related"))}


def stitching_truth(small, large, data: SyntheticData, threshold: float = 0.7,
                    truth_threshold: float = TRUTH_THRESHOLD) -> dict:
    """Confusion table of the stitching classes of ``large``'s latents against their true relation to ``small``.

    The stitching class is the paper's: *reconstruction* when the latent's best decoder cosine with ``small``
    exceeds ``threshold`` (``stitching.classify_latents``), *novel* otherwise.

    Returns a dict: ``table`` (``{"novel"|"reconstruction": {relation: count}}``, relations in ``RELATIONS``),
    the shares of :func:`truth_shares` (``novel_is_new_or_related`` is the paper's reading of "novel"),
    ``n_large``, ``n_small``.
    """
    from .stitching import classify_latents

    cls = classify_latents(small, large, threshold=threshold)
    rel = relation_to(label_latents(large.W_dec, data, truth_threshold), label_latents(small.W_dec, data,
                                                                                          truth_threshold))
    table = {c: {r: 0 for r in RELATIONS} for c in ("novel", "reconstruction")}
    for c, ids in (("novel", cls.novel), ("reconstruction", cls.reconstruction)):
        for i in ids.tolist():
            table[c][rel[i]] += 1
    return {"table": table, **truth_shares(table),
            "n_large": int(large.W_dec.shape[0]), "n_small": int(small.W_dec.shape[0])}


@torch.no_grad()
def meta_truth(meta_sae, sae, data: SyntheticData, *, decomposition=None, align_threshold: float = 0.7,
               truth_threshold: float = TRUTH_THRESHOLD, seed: int = 0) -> dict:
    """Score a meta-SAE trained on ``sae``'s decoder against the true hierarchy.

    * ``meta_root_cos`` (d_meta,): each meta-decoder row's best |cos| with a true *root* (parent) direction, and
      ``random_root_cos`` the same for as many random unit directions (seeded); ``frac_meta_on_root`` /
      ``random_frac_on_root``: shares above ``align_threshold``; ``frac_roots_found``: roots with a meta-latent
      above ``align_threshold``.
    * For every latent of ``sae`` labelled as a child or a parent + child composite whose root has an aligned
      meta-latent (the meta-latent with the best cosine to that root, if above ``align_threshold``):
      ``parent_in_code``, the share whose meta-SAE code uses that meta-latent, against ``chance``, the mean
      share of *all* latents whose code uses it (how often it would be there by chance); ``n_tested``.
    NaN where there is nothing to score (no roots, or no such latent).
    """
    from .meta import decompose

    roots = data.is_root.nonzero().squeeze(1)
    W = _unit_rows(meta_sae.W_dec)
    gen = torch.Generator().manual_seed(seed + 7_000_003)  # offset: never the dictionary's own stream
    rand = _unit_rows(torch.randn(W.shape, generator=gen))
    nan = float("nan")
    if len(roots) == 0:
        return {"frac_meta_on_root": nan, "random_frac_on_root": nan, "frac_roots_found": nan,
                "parent_in_code": nan, "chance": nan, "n_tested": 0}
    R = _unit_rows(data.features[roots])
    cos = (W @ R.T).abs()
    meta_root_cos = cos.max(1).values
    random_root_cos = (rand @ R.T).abs().max(1).values
    root_best_cos, root_meta = cos.max(0)  # per root: its best meta-latent
    meta_of_root = {int(r): int(m) for r, m, c in zip(roots, root_meta, root_best_cos) if c > align_threshold}

    if decomposition is None:
        decomposition = decompose(meta_sae, sae.W_dec.detach())
    lab = label_latents(sae.W_dec, data, truth_threshold)
    n = data.n_features
    uses = decomposition.indices  # (d_sae, m), -1 padded
    hits, chances = [], []
    for i, (kind, u, t) in enumerate(zip(lab.kind, lab.unit.tolist(), lab.tree.tolist())):
        is_child_latent = kind == "composite" or (kind == "feature" and u < n and bool(data.is_child[u]))
        if not is_child_latent or t not in meta_of_root:
            continue
        m = meta_of_root[t]
        hits.append(bool((uses[i] == m).any()))
        chances.append((uses == m).any(1).double().mean().item())
    return {"meta_root_cos": meta_root_cos, "random_root_cos": random_root_cos,
            "frac_meta_on_root": (meta_root_cos > align_threshold).double().mean().item(),
            "random_frac_on_root": (random_root_cos > align_threshold).double().mean().item(),
            "frac_roots_found": len(meta_of_root) / len(roots),
            "parent_in_code": sum(hits) / len(hits) if hits else nan,
            "chance": sum(chances) / len(chances) if chances else nan, "n_tested": len(hits)}
