"""The planted dictionary: the spec of a hierarchy and the ``sae_lens.synthetic`` model that samples from it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

#: bump when the way data are generated changes (it is part of every cache key of this sub-package).
VERSION = 1

#: rows sampled per call to the SAELens generator.
_CHUNK = 8192


@dataclass
class SyntheticSpec:
    """Everything that determines a synthetic data set (its ``asdict`` is the cache key).

    The default is small and fast (CI): 16 roots x 4 children + 64 free = 144 features in d = 64,
    true L0 about 2; ``paper_like()`` is the bigger one (1024 features in d = 128).
    """

    d: int = 64                       #: hidden (activation) dimension
    n_roots: int = 16                 #: parent features (0 = no hierarchy)
    n_children: int = 4               #: mutually exclusive children per root (>= 2)
    n_free: int = 64                  #: features with neither parent nor children
    firing_max: float = 0.25          #: firing probability of the most frequent root / free feature
    firing_min: float = 0.004         #: ... and of the least frequent one
    zipf_exponent: float = 1.0        #: Zipf exponent of the root / free firing probabilities
    child_given_parent: float = 0.8   #: P(some child fires | its root fires)
    magnitude_std: float = 0.0        #: std of the firing magnitude (mean 1)
    bias: float = 0.0                 #: norm of a constant offset added to every activation (0 = none)
    orthogonalize: bool = False       #: orthogonalise the feature directions (SAELens, 200 Adam steps)
    n_train: int = 32_768             #: rows of the pre-generated training set
    n_eval: int = 4096                #: rows of the held-out set (with its true feature activations)
    seed: int = 0

    def __post_init__(self):
        for name in ("d", "n_train", "n_eval"):
            _check_int(name, getattr(self, name), 1)
        for name in ("n_roots", "n_free", "seed"):
            _check_int(name, getattr(self, name), 0)
        _check_int("n_children", self.n_children, 2)
        if self.n_roots + self.n_free < 1:
            raise ValueError("need at least one root or free feature")
        if not 0 < self.firing_min < self.firing_max <= 1:
            raise ValueError(f"need 0 < firing_min < firing_max <= 1, got {self.firing_min}, {self.firing_max}")
        if not 0 < self.child_given_parent <= 1:
            raise ValueError(f"child_given_parent must be in (0, 1], got {self.child_given_parent}")
        if not self.zipf_exponent > 0:
            raise ValueError(f"zipf_exponent must be > 0, got {self.zipf_exponent}")
        if self.magnitude_std < 0 or self.bias < 0:
            raise ValueError("magnitude_std and bias must be >= 0")

    @classmethod
    def paper_like(cls, **overrides) -> "SyntheticSpec":
        """64 roots x 8 children + 448 free = 1024 features in d = 128, Zipf 0.25 -> 0.004 with exponent 0.55
        (true L0 about 9), 65 536 training rows."""
        return cls(**{**dict(d=128, n_roots=64, n_children=8, n_free=448, zipf_exponent=0.55,
                             n_train=65_536, n_eval=16_384), **overrides})

    @property
    def n_features(self) -> int:
        return self.n_roots * (1 + self.n_children) + self.n_free


def _check_int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")


# -- the SAELens model ---------------------------------------------------------------------------------------

def firing_probabilities(spec: SyntheticSpec) -> torch.Tensor:
    """The per-feature probabilities handed to SAELens' ``ActivationGenerator``, shape (n_features,).

    Roots and free features: SAELens' Zipfian law over ``n_roots + n_free`` ranks (roots first).
    Children: ``q = 1 - (1 - child_given_parent) ** (1 / n_children)`` each, so that after SAELens drops
    children of inactive roots and keeps one random winner among active siblings, some child fires with
    probability ``child_given_parent`` whenever its root fires.
    """
    from sae_lens.synthetic import zipfian_firing_probabilities

    n_top = spec.n_roots + spec.n_free
    top = (zipfian_firing_probabilities(n_top, exponent=spec.zipf_exponent, max_prob=spec.firing_max,
                                        min_prob=spec.firing_min)
           if n_top > 1 else torch.tensor([spec.firing_max]))
    q = 1.0 - (1.0 - spec.child_given_parent) ** (1.0 / spec.n_children)
    children = torch.full((spec.n_roots * spec.n_children,), q)
    return torch.cat([top[:spec.n_roots], children, top[spec.n_roots:]]).float()


def make_model(spec: SyntheticSpec):
    """The SAELens ``SyntheticModel`` of ``spec`` (deterministic in ``spec.seed``).

    ``model.feature_dict`` (``FeatureDictionary``; ``feature_vectors`` (n_features, d)),
    ``model.activation_generator`` (``ActivationGenerator`` with the hierarchy as its modifier;
    ``sample(n)`` -> (n, n_features)), ``model.hierarchy`` (``Hierarchy``; ``roots`` are ``HierarchyNode``s),
    ``model.sample_with_features(n)`` -> ((n, d), (n, n_features)).  Sampling uses torch's global RNG.
    """
    from sae_lens.synthetic import (HierarchyConfig, OrthogonalizationConfig, SyntheticModel,
                                    SyntheticModelConfig, ZipfianFiringProbabilityConfig)

    cfg = SyntheticModelConfig(
        num_features=spec.n_features,
        hidden_dim=spec.d,
        # only documents the law: the real per-feature probabilities are set below (and saved with the model)
        firing_probability=ZipfianFiringProbabilityConfig(exponent=spec.zipf_exponent, max_prob=spec.firing_max,
                                                          min_prob=spec.firing_min),
        hierarchy=(HierarchyConfig(total_root_nodes=spec.n_roots, branching_factor=spec.n_children, max_depth=1,
                                   mutually_exclusive_portion=1.0) if spec.n_roots else None),
        orthogonalization=OrthogonalizationConfig() if spec.orthogonalize else None,
        std_firing_magnitudes=float(spec.magnitude_std),
        mean_firing_magnitudes=1.0,
        bias=float(spec.bias) if spec.bias > 0 else False,
        seed=spec.seed,
    )
    model = SyntheticModel(cfg)
    model.activation_generator.firing_probabilities = firing_probabilities(spec)
    return model


def tree(model, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(parents, is_root)`` of a SAELens model's hierarchy: parents (n_features,) long, the parent's
    feature index or -1; is_root (n_features,) bool, true for features that have children."""
    parents = torch.full((n_features,), -1, dtype=torch.long)
    is_root = torch.zeros(n_features, dtype=torch.bool)

    def visit(node, parent):
        if node.feature_index is not None:
            parents[node.feature_index] = parent
            if node.children:
                is_root[node.feature_index] = True
        for child in node.children:
            visit(child, node.feature_index if node.feature_index is not None else parent)

    for root in (model.hierarchy.roots if model.hierarchy is not None else []):
        visit(root, -1)
    return parents, is_root


@torch.no_grad()
def sample(model, n: int, seed: int, with_latents: bool = False, progress: bool = False, desc: str = "sample"):
    """``n`` rows from ``model`` in chunks under a private RNG seeded with ``seed``.

    Returns ``x`` (n, d) float32, or ``(x, latents)`` with ``latents`` (n, n_features) the true feature
    activations when ``with_latents``.
    """
    xs, fs = [], []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for start in tqdm(range(0, n, _CHUNK), desc=desc, disable=not progress, leave=False):
            x, f = model.sample_with_features(min(_CHUNK, n - start))
            xs.append(x.float())
            if with_latents:
                fs.append(f.float())
    x = torch.cat(xs)
    return (x, torch.cat(fs)) if with_latents else x
