"""The synthetic data set: generated once per spec, cached, and held with its ground truth."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import artifacts
from .model import VERSION, SyntheticSpec, make_model, sample, tree


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
