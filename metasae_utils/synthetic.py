"""A synthetic activation source with known ground truth, built on ``sae_lens.synthetic``.

Real activations never tell us what the "true" units are; synthetic ones do.  This module plants a known
dictionary of unit feature directions in ``d`` dimensions and samples sparse, hierarchical combinations of
them, so that SAEs of several widths can be scored against the truth (is a wide SAE's latent a true
feature, a parent with a child absorbed into it, or something in between?).

The structure (``SyntheticSpec``), features numbered in this order:

* ``n_roots`` **roots**, indices ``0 .. n_roots-1``;
* ``n_roots * n_children`` **children**: root ``r``'s children are ``n_roots + r*n_children + j``.  A child
  fires only when its root fires, and the children of a root are mutually exclusive (at most one fires);
  given that its root fires, *some* child fires with probability ``child_given_parent``, each child equally
  likely;
* ``n_free`` **free** features (no parent, no children), the last indices.

Firing probabilities: the roots and free features together get a Zipfian law from ``firing_max`` down to
``firing_min`` (SAELens ``zipfian_firing_probabilities`` with ``zipf_exponent``), the roots taking the most
frequent ranks; the children get their conditional probability as above.  Magnitudes are
``relu(1 + magnitude_std * N(0, 1))``.  Feature directions are random unit vectors (optionally
orthogonalised with SAELens' ``orthogonal_initializer``), plus an optional constant ``bias`` direction.

Everything SAELens provides is used as is: ``SyntheticModel`` (``FeatureDictionary`` +
``ActivationGenerator`` + ``Hierarchy``, with its ``save`` / ``load_from_disk``), ``generate_hierarchy`` /
``hierarchy_modifier`` for the tree and its mutual exclusion, ``zipfian_firing_probabilities`` and
``eval_sae_on_synthetic_data`` (MCC, uniqueness, classification metrics).  Caveats found in SAELens 6.54:

* sampling draws from torch's *global* RNG (and ``eval_sae_on_synthetic_data`` draws fresh samples on every
  call), so every sampling call here runs under ``torch.random.fork_rng`` with an explicit seed;
* the per-feature probabilities set here replace the ones SAELens derives from the model config; SAELens
  saves them with the model and restores them on ``load_from_disk``, but ``SyntheticModel.to(device)``
  rebuilds the generator from the config and loses them — keep the model on the CPU (it is only a sampler);
* ``FeatureDictionary.feature_vectors`` is an ``nn.Parameter``: ``SyntheticData.features`` is a detached copy;
* ``eval_sae_on_synthetic_data``'s ``mcc`` is the mean |cos| of a Hungarian matching between decoder rows and
  true features, i.e. an average over ``min(d_sae, n_features)`` pairs: it measures how truthful the SAE's
  latents are, not how many true features are covered (see ``frac_true_recovered`` for that).

Data are generated once per spec and cached (``artifacts.entry("synthetic", asdict(spec), VERSION)``); SAEs
trained on them are cached per (spec, width, training arguments).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .families import sae_seed
from . import artifacts, training
from .evaluate import reconstruction_metrics

#: bump when the way data are generated changes (it is part of every cache key of this module).
VERSION = 1

#: added to random_sae's seed so that its stream never coincides with the feature dictionary's.
_RANDOM_SEED_OFFSET = 0x5EED_0000

#: rows sampled per call to the SAELens generator.
_CHUNK = 8192


# -- spec -------------------------------------------------------------------------------------------------

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


# -- the data set ----------------------------------------------------------------------------------------

@dataclass
class SyntheticData:
    """A generated data set and its ground truth.

    Attributes:
        spec: what generated it.
        train: (n_train, d) float32 training rows (reuse them over epochs: sampling is the slow part).
        eval: (n_eval, d) float32 held-out rows.
        eval_latents: (n_eval, n_features) float32 true feature activations of ``eval``
            (``eval == eval_latents @ features + bias``).
        features: (n_features, d) unit ground-truth directions (detached copy).
        parents: (n_features,) long, the parent feature index or -1.
        is_root: (n_features,) bool, features that have children.
        model: the SAELens ``SyntheticModel`` (``feature_dict``, ``generator`` below) for fresh samples and
            ``eval_sae_on_synthetic_data``.
    """

    spec: SyntheticSpec
    train: torch.Tensor
    eval: torch.Tensor
    eval_latents: torch.Tensor
    features: torch.Tensor
    parents: torch.Tensor
    is_root: torch.Tensor
    model: Any = field(repr=False)

    @property
    def feature_dict(self):
        """SAELens ``FeatureDictionary``."""
        return self.model.feature_dict

    @property
    def generator(self):
        """SAELens ``ActivationGenerator`` (hierarchy included)."""
        return self.model.activation_generator

    @property
    def n_features(self) -> int:
        return self.features.shape[0]

    @property
    def is_child(self) -> torch.Tensor:
        """(n_features,) bool."""
        return self.parents >= 0

    @property
    def is_free(self) -> torch.Tensor:
        """(n_features,) bool."""
        return ~self.is_child & ~self.is_root

    @property
    def true_l0(self) -> float:
        """Mean number of active true features per row of ``eval``."""
        return (self.eval_latents > 0).sum(1).double().mean().item()


def _build(spec: SyntheticSpec, model, progress: bool) -> dict[str, torch.Tensor]:
    """The tensors of a data set (train / eval rows drawn with seeds derived from ``spec.seed``)."""
    train = sample(model, spec.n_train, seed=1_000_003 * spec.seed + 1, progress=progress, desc="synthetic train")
    ev, lat = sample(model, spec.n_eval, seed=1_000_003 * spec.seed + 2, with_latents=True, progress=progress,
                     desc="synthetic eval")
    return {"train": train, "eval": ev, "eval_latents": lat}


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path):
    from safetensors.torch import save_file

    lat = tensors["eval_latents"]
    idx = lat.nonzero()
    save_file({"train": tensors["train"].contiguous(), "eval": tensors["eval"].contiguous(),
               "eval_latents_idx": idx.to(torch.int32).contiguous(), "eval_latents_val": lat[idx[:, 0], idx[:, 1]],
               "eval_latents_shape": torch.tensor(lat.shape)}, str(path))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    t = load_file(str(path))
    lat = torch.zeros(*t["eval_latents_shape"].tolist())
    idx = t["eval_latents_idx"].long()
    lat[idx[:, 0], idx[:, 1]] = t["eval_latents_val"]
    return {"train": t["train"], "eval": t["eval"], "eval_latents": lat}


def generate(spec: SyntheticSpec | None = None, cache: bool = True, progress: bool = True) -> SyntheticData:
    """Generate (or load from the artifact cache) the data set of ``spec`` (default ``SyntheticSpec()``).

    With ``cache``, the SAELens model (``SyntheticModel.save``) and the tensors (one safetensors file; the
    true eval latents stored sparse) live in ``artifacts.entry("synthetic", asdict(spec), VERSION)`` under the
    names ``model`` and ``data.safetensors``; a second call only reads them.  The result is the same either
    way: the data are a deterministic function of ``spec``.
    """
    spec = spec if spec is not None else SyntheticSpec()
    if not isinstance(spec, SyntheticSpec):
        raise ValueError(f"spec must be a SyntheticSpec, got {type(spec).__name__}")
    if not cache:
        model = make_model(spec)
        return _assemble(spec, model, _build(spec, model, progress))

    from sae_lens.synthetic import SyntheticModel

    e = artifacts.entry("synthetic", asdict(spec), VERSION)
    made: dict[str, Any] = {}

    def make_model_files(tmp):
        made["model"] = make_model(spec)
        made["model"].save(tmp)

    model_path = e.get_or_make("model", make_model_files)
    model = made["model"] if "model" in made else SyntheticModel.load_from_disk(model_path)
    data_path = e.get_or_make("data.safetensors",
                              lambda tmp: _save_tensors(made.setdefault("t", _build(spec, model, progress)), tmp),
                              n_train=spec.n_train, n_eval=spec.n_eval)
    return _assemble(spec, model, made["t"] if "t" in made else _load_tensors(data_path))


def _assemble(spec, model, t) -> SyntheticData:
    parents, is_root = tree(model, spec.n_features)
    return SyntheticData(spec=spec, train=t["train"], eval=t["eval"], eval_latents=t["eval_latents"],
                         features=model.feature_dict.feature_vectors.detach().clone(), parents=parents,
                         is_root=is_root, model=model)


# -- SAEs --------------------------------------------------------------------------------------------------

# The synthetic families the book trains: widths around the number of true features, k near the true L0.
#: training arguments of every synthetic SAE in the book.
TRAIN = {"n_steps": 1000, "batch_size": 1024, "lr": 3e-3}
FAMILIES = {"small": {"spec": {}, "widths": [32, 64, 144, 256], "k": 2},
            "paper_like": {"spec": {"paper_like": True}, "widths": [64, 128, 256, 512], "k": 6}}


def book_family(size: str, seed: int = 0, progress: bool = True):
    """The data and the BatchTopK family of the book's synthetic section (``size``: a key of FAMILIES).

    Returns ``(data, widths, saes)``.  1000 steps of 1024 rows per SAE, lr 3e-3.
    """
    if size not in FAMILIES:
        raise ValueError(f"synthetic size {size!r}; allowed: {', '.join(FAMILIES)}")
    fam = FAMILIES[size]
    spec = SyntheticSpec.paper_like(seed=seed) if fam["spec"].get("paper_like") else SyntheticSpec(seed=seed)
    data = generate(spec, progress=progress)
    saes = train_synthetic_family(data, fam["widths"], "batchtopk", k=fam["k"], seed=seed, progress=progress, **TRAIN)
    return data, fam["widths"], saes


def train_synthetic_family(data: SyntheticData, widths, architecture: str = "batchtopk", *, k=None,
                           n_steps: int, batch_size: int, lr: float, seed: int = 0, progress: bool = True,
                           cache: bool = True, **train_kwargs) -> list:
    """One SAE per width in ``widths``, each trained with ``training.train_sae`` on ``data.train``
    (n_train, d) for ``n_steps`` batches of ``batch_size`` (epochs over the fixed training set).

    ``k`` is the (batch-)top-k target (required by ``batchtopk`` / ``matryoshka_batchtopk``);
    ``train_kwargs`` go to ``train_sae`` (e.g. ``l1_coefficient``, ``lr_decay_steps``).  With ``cache``,
    each SAE is stored in ``artifacts.entry("synthetic_sae", {data spec, width, arguments}, VERSION)`` and
    reloaded on the next call.  Returns the inference SAEs (``W_dec`` (width, d), unit-norm rows), in the
    order of ``widths``.
    """
    widths = list(widths)
    if not widths:
        raise ValueError("widths is empty")
    saes = []
    for width in tqdm(widths, desc="synthetic family", disable=not progress or len(widths) < 2):
        args = dict(architecture=architecture, d_sae=width, k=k, n_steps=n_steps, batch_size=batch_size, lr=lr,
                    seed=sae_seed(seed, width), **train_kwargs)

        def train(args=args):
            return training.train_sae(data.train, progress=progress, **args)

        if not cache:
            saes.append(train())
            continue
        saes.append(training.cached_sae("synthetic_sae", {"data": asdict(data.spec), **args}, train, VERSION,
                                        width=width)[0])
    return saes


@torch.no_grad()
def oracle_sae(data: SyntheticData, threshold: float = 0.7):
    """A JumpReLU SAE built from the ground truth: ``W_dec = features`` (n_features, d), ``W_enc = features.T``,
    ``b_dec`` = the data's bias, every threshold ``threshold``.  Its decoder is perfect (``mcc`` = 1) but its
    linear encoder is not: with more features than dimensions each pre-activation is the feature's magnitude
    (about 1) plus interference from the other active features (std about ``sqrt(true L0 / d)``), which the
    threshold trades between false positives and misses — a reference point, not an upper bound on every
    score (a trained SAE can beat its FVU)."""
    return _tied_jumprelu(data.features, data, threshold)


@torch.no_grad()
def random_sae(data: SyntheticData, d_sae: int, seed: int = 0, threshold: float = 0.7):
    """A baseline JumpReLU SAE with random unit decoder rows (d_sae, d) and ``W_enc = W_dec.T``."""
    # offset: SAELens' FeatureDictionary(seed=s) *is* normalised torch.randn(n, d) under manual_seed(s), so
    # the same seed would reproduce the ground truth
    w = torch.randn(d_sae, data.spec.d, generator=torch.Generator().manual_seed(seed + _RANDOM_SEED_OFFSET))
    w /= w.norm(dim=1, keepdim=True)
    return _tied_jumprelu(w, data, threshold)


@torch.no_grad()
def _tied_jumprelu(W_dec: torch.Tensor, data: SyntheticData, threshold: float):
    """A JumpReLU SAE with decoder ``W_dec`` (d_sae, d), tied encoder ``W_dec.T``, zero encoder bias, the
    data's bias as decoder bias, and one threshold for every latent."""
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=W_dec.shape[1], d_sae=W_dec.shape[0]))
    sae.W_dec.copy_(W_dec)
    sae.W_enc.copy_(W_dec.T)
    sae.b_enc.zero_()
    sae.b_dec.copy_(data.feature_dict.bias.detach())
    sae.threshold.fill_(threshold)
    return sae.eval()


# -- scores ------------------------------------------------------------------------------------------------

@torch.no_grad()
def max_cos_to_truth(sae, features: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cosine similarities between an SAE's decoder rows (d_sae, d) and the true ``features`` (n_features, d).

    Returns ``latent_max_cos`` (d_sae,) and ``latent_best`` (d_sae,): each latent's best |cos| to a true
    feature and that feature's index; ``feature_max_cos`` (n_features,) and ``feature_best`` (n_features,):
    each true feature's best |cos| to a latent and that latent.
    """
    w = sae.W_dec.detach().float().cpu()
    f = features.detach().float().cpu()
    cos = (w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ (f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)).T
    cos = cos.abs()
    lat_max, lat_best = cos.max(1)
    feat_max, feat_best = cos.max(0)
    return {"latent_max_cos": lat_max, "latent_best": lat_best, "feature_max_cos": feat_max, "feature_best": feat_best}


def score(sae, data: SyntheticData, n_samples: int = 16_384, seed: int = 0, cos_threshold: float = 0.9) -> dict:
    """Score ``sae`` against the ground truth; a flat, JSON-able dict.

    From SAELens ``eval_sae_on_synthetic_data`` on ``n_samples`` fresh rows (drawn with ``seed``; its names):

    * ``mcc``: mean |cos| over a Hungarian one-to-one matching of decoder rows to true features
      (``min(d_sae, n_features)`` pairs; 1 = every latent is a true direction);
    * ``uniqueness``: distinct best-matching true features / d_sae (1 = no two latents track the same one);
    * ``precision``, ``recall``, ``f1_score``, ``accuracy`` (SAELens' ``classification``): each latent, read
      as a detector of its best-matching (by decoder cosine) true feature; averaged over latents
      (dead latents count 0 for precision and recall);
    * ``true_l0``, ``sae_l0``, ``dead_latents`` (a count), ``shrinkage`` (mean |x_hat| / |x|),
      ``explained_variance``.

    From ``evaluate.reconstruction_metrics`` on ``data.eval``: ``fvu``, ``mse``, ``l0``, ``dead_fraction``.

    From decoder cosines (``max_cos_to_truth``): ``latent_max_cos_mean`` / ``_median``,
    ``frac_latents_matched`` (latents with max |cos| > ``cos_threshold``), ``frac_true_recovered`` (true
    features with a latent at |cos| > ``cos_threshold``) and the same per kind: ``frac_roots_recovered``,
    ``frac_children_recovered``, ``frac_free_recovered`` (NaN when there are none of that kind), and
    ``frac_children_absorbed``: children with a latent at |cos| > ``cos_threshold`` to the parent + child
    direction (``composite_directions``; feature absorption / splitting).  Plus ``d_sae``.
    """
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    _check_int("n_samples", n_samples, 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        res = eval_sae_on_synthetic_data(sae, data.feature_dict, data.generator, num_samples=n_samples,
                                         batch_size=min(n_samples, _CHUNK)).to_dict()
    out: dict[str, Any] = {"d_sae": int(sae.cfg.d_sae)}
    cls = res.pop("classification")
    out.update(res)
    out.update(cls)
    rec = reconstruction_metrics(sae, data.eval)
    out.update({name: rec[name] for name in ("fvu", "mse", "l0", "dead_fraction")})
    cos = max_cos_to_truth(sae, data.features)
    found = cos["feature_max_cos"] > cos_threshold
    out.update(
        latent_max_cos_mean=cos["latent_max_cos"].mean().item(),
        latent_max_cos_median=cos["latent_max_cos"].median().item(),
        frac_latents_matched=(cos["latent_max_cos"] > cos_threshold).float().mean().item(),
        frac_true_recovered=found.float().mean().item(),
    )
    for kind, mask in (("roots", data.is_root), ("children", data.is_child), ("free", data.is_free)):
        out[f"frac_{kind}_recovered"] = found[mask].float().mean().item() if mask.any() else math.nan
    comp = composite_directions(data)
    out["frac_children_absorbed"] = ((max_cos_to_truth(sae, comp)["feature_max_cos"] > cos_threshold).float()
                                     .mean().item() if len(comp) else math.nan)
    return out


def composite_directions(data: SyntheticData) -> torch.Tensor:
    """(n_children, d): unit vectors along ``feature[parent] + feature[child]`` for every child, in child order —
    the direction an SAE learns when it absorbs the parent into a child latent (magnitudes are about 1, and a
    child never fires without its parent)."""
    child = data.is_child.nonzero().squeeze(1)
    comp = data.features[child] + data.features[data.parents[child]]
    return comp / comp.norm(dim=1, keepdim=True).clamp_min(1e-12)
