"""The inputs of ``compare``: SAEs from folders or SAELens releases, and activations, each checked before any compute.

Every check raises :class:`!metasae_utils.presets.ConfigError` with a message naming the argument (``SMALL``,
``LARGE``, ``--twin``, ``--activations``, ``--preset``) and what is wrong.  The order is: the SAE arguments are
resolved (a folder that exists, else a ``release/sae_id`` pair of SAELens' registry, checked against the local
Hugging Face cache when ``HF_HUB_OFFLINE`` is set); a folder's ``cfg.json`` is read for its architecture before its
weights; the loaded SAEs are checked against each other (stitchable architecture, one class, ``d_in``, hook,
input normalisation); then the activations are read and checked against ``d_in``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..presets import ConfigError

#: architectures (``cfg.json`` "architecture") whose latents are independent, so that stitching applies
SUPPORTED = ("standard", "jumprelu", "gated")
FOLDER_HINT = "a SAELens folder (cfg.json + sae_weights.safetensors, as written by sae.save_model(folder))"


@dataclass
class Source:
    """Where one SAE comes from: a ``folder`` or a SAELens ``release`` and ``sae_id``."""
    role: str
    spec: str
    folder: Path | None = None
    release: str | None = None
    sae_id: str | None = None


@dataclass
class Loaded:
    """One loaded SAE with what the report says about it: ``label``, ``d_in``, ``width`` (d_sae),
    ``architecture`` and ``hook`` (None when its config does not name one)."""
    role: str
    label: str
    sae: object
    d_in: int
    width: int
    architecture: str
    hook: str | None


def resolve_source(role: str, spec: str) -> Source:
    """``spec`` as a :class:`Source`: an existing path must be a SAELens folder; otherwise ``release/sae_id``."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{role} = {spec!r} is a file; expected {FOLDER_HINT}")
        if not (path / "cfg.json").is_file():
            raise ConfigError(f"{role} = {spec!r} holds no cfg.json; expected {FOLDER_HINT}")
        return Source(role, spec, folder=path)
    release, _, sae_id = spec.partition("/")
    if not sae_id:
        raise ConfigError(f"{role} = {spec!r}: no such folder, and not a SAELens 'release/sae_id' pair; expected "
                          f"{FOLDER_HINT} or e.g. gpt2-small-res-jb-feature-splitting/blocks.8.hook_resid_pre_768")
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    directory = get_pretrained_saes_directory()
    if release not in directory:
        import difflib
        close = difflib.get_close_matches(release, list(directory), n=3)
        raise ConfigError(f"{role} = {spec!r}: no such folder, and {release!r} is not a SAELens release"
                          + (f" (did you mean {', '.join(close)}?)" if close else ""))
    ids = list(directory[release].saes_map)
    if sae_id not in ids:
        import difflib
        close = difflib.get_close_matches(sae_id, ids, n=3) or ids[:3]
        raise ConfigError(f"{role} = {spec!r}: release {release!r} has no SAE {sae_id!r}; e.g. {', '.join(close)}")
    return Source(role, spec, release=release, sae_id=sae_id)


def check_reachable(sources: list[Source]) -> None:
    """Pretrained sources need the hub: offline (``HF_HUB_OFFLINE``), the local cache must hold each SAE's file;
    online, the hub must answer.  A ConfigError names the first SAE that cannot be loaded."""
    pretrained = [s for s in sources if s.release]
    if not pretrained:
        return
    from .. import hub
    if hub.offline():
        for s in pretrained:
            gap = hub.missing_sae(s.release, s.sae_id)
            if gap:
                raise ConfigError(f"{s.role} = {s.spec!r}: HF_HUB_OFFLINE is set and the local Hugging Face cache "
                                  f"lacks {gap}")
        return
    from ..sources import HubUnreachableError, check_hub
    try:
        check_hub(f"{pretrained[0].role} = {pretrained[0].spec!r}")
    except HubUnreachableError as e:
        raise ConfigError(str(e)) from None


def folder_cfg(src: Source) -> dict:
    """A folder's ``cfg.json``, checked: readable JSON with ``d_in`` and ``d_sae``, a supported architecture, and
    its weights file present."""
    try:
        cfg = json.loads((src.folder / "cfg.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{src.role} = {src.spec!r}: cfg.json is not readable JSON ({e})") from None
    missing = [k for k in ("d_in", "d_sae") if k not in cfg]
    if missing:
        raise ConfigError(f"{src.role} = {src.spec!r}: cfg.json lacks {', '.join(missing)}; expected {FOLDER_HINT}")
    arch = cfg.get("architecture", "standard")
    if arch not in SUPPORTED:
        raise ConfigError(f"{src.role} = {src.spec!r} is a {arch!r} SAE, which compare does not support: stitching "
                          f"needs latents that fire independently of each other ({', '.join(SUPPORTED)}; "
                          "BatchTopK SAEs saved for inference as JumpReLU qualify)")
    if not any((src.folder / n).is_file() for n in ("sae_weights.safetensors", "sae_weights.pt")):
        raise ConfigError(f"{src.role} = {src.spec!r} holds no sae_weights.safetensors; expected {FOLDER_HINT}")
    return cfg


def _hook(sae) -> str | None:
    meta = getattr(sae.cfg, "metadata", None)
    return getattr(meta, "hook_name", None) if meta is not None else None


def load(src: Source, device: str = "cpu") -> Loaded:
    """Load one SAE (``SAE.load_from_disk`` for a folder, ``SAE.from_pretrained`` for a release) in eval mode."""
    from sae_lens import SAE
    if src.folder is not None:
        folder_cfg(src)
        sae = SAE.load_from_disk(str(src.folder), device=device)
        label = src.folder.resolve().name
    else:
        from ..hub import quiet_model_kwargs_warning
        with warnings.catch_warnings():
            quiet_model_kwargs_warning()
            sae = SAE.from_pretrained(src.release, src.sae_id, device=device)
        sae = sae[0] if isinstance(sae, tuple) else sae
        label = src.sae_id
    sae = sae.eval()
    return Loaded(src.role, label, sae, sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.architecture(), _hook(sae))


def check_saes(saes: list[Loaded]) -> None:
    """The loaded SAEs can be compared: each stitchable, one class, one ``d_in``, one hook (where named), one input
    normalisation.  ``saes``: SMALL, LARGE and optionally the twin, in that order."""
    from ..stitching.compat import _check_pair, stitchable
    for s in saes:
        if not stitchable(s.sae):
            raise ConfigError(f"{s.role} ({s.label}) is a {type(s.sae).__name__} ({s.architecture!r}), which compare "
                              f"does not support: stitching needs independent latents ({', '.join(SUPPORTED)})")
    first = saes[0]
    for s in saes[1:]:
        if s.d_in != first.d_in:
            raise ConfigError(f"d_in differs: {first.role} ({first.label}) reads vectors of width {first.d_in}, "
                              f"{s.role} ({s.label}) of width {s.d_in}; compare needs SAEs of one hook of one model")
        if first.hook and s.hook and s.hook != first.hook:
            raise ConfigError(f"hook differs: {first.role} ({first.label}) reads {first.hook!r}, {s.role} "
                              f"({s.label}) reads {s.hook!r}; compare needs SAEs of one hook")
        try:
            _check_pair(first.sae, s.sae)
        except ValueError as e:
            raise ConfigError(f"{first.role} ({first.label}) and {s.role} ({s.label}) cannot be stitched: "
                              f"{e}") from None


def load_activations(path: str, d_in: int, dtype: torch.dtype) -> torch.Tensor:
    """``--activations``: a ``.pt`` file holding a tensor (..., d_in) (or a dict holding exactly one tensor), read
    with ``weights_only=True``; leading dimensions are flattened to rows.  Returns (n, d_in) in ``dtype``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"--activations = {path!r}: no such file (expected a .pt tensor of shape (n, {d_in}))")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (named in the message)
        raise ConfigError(f"--activations = {path!r} is not a torch tensor file ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict):
        tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise ConfigError(f"--activations = {path!r} holds a dict with {len(tensors)} tensors; expected one")
        obj = tensors[0]
    if not isinstance(obj, torch.Tensor) or obj.ndim < 2:
        shape = tuple(obj.shape) if isinstance(obj, torch.Tensor) else type(obj).__name__
        raise ConfigError(f"--activations = {path!r} holds {shape}; expected a tensor of shape (n, {d_in})")
    return check_acts(obj.reshape(-1, obj.shape[-1]), d_in, dtype, f"--activations = {path!r}")


def check_acts(acts: torch.Tensor, d_in: int, dtype: torch.dtype, what: str) -> torch.Tensor:
    """``acts`` (n, d) must have width ``d_in`` (the SAEs'), at least one row, finite float values."""
    from ..checks import check_data
    if acts.shape[-1] != d_in:
        raise ConfigError(f"{what} has width {acts.shape[-1]} (shape {tuple(acts.shape)}), but the SAEs read vectors "
                          f"of width d_in = {d_in}: activations of another hook or model?")
    try:
        check_data(what, acts)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return acts.to(dtype)


def preset_activations(preset: str, saes: list[Loaded], progress: bool = True) -> tuple[torch.Tensor, str]:
    """``--preset``: the preset's held-out activations (``n_eval_tokens`` at its ``hook``) through
    :mod:`!metasae_utils.sources` (cached).  The SAEs' hook is checked against the preset's before the model loads,
    ``d_in`` against the model's width before any forward pass.  Returns (acts (n, d_in), description)."""
    from .. import presets, sources
    cfg = presets.resolve(preset)  # already checked by compare (cheap); here for direct callers
    named = [s for s in saes if s.hook]
    for s in named:
        if s.hook != cfg.hook:
            raise ConfigError(f"{s.role} ({s.label}) reads {s.hook!r} but preset {preset!r} collects {cfg.hook!r}; "
                              f"choose a preset of that hook or pass --activations")
    model = sources.load_model(cfg)
    if model.cfg.d_model != saes[0].d_in:
        raise ConfigError(f"preset {preset!r}: {cfg.model} has width {model.cfg.d_model} at {cfg.hook}, but the SAEs "
                          f"read vectors of width d_in = {saes[0].d_in}")
    corpus = sources.load_corpus(cfg)
    tokens = sources.tokens_for(model, cfg, corpus, "eval", cfg.n_eval_tokens)
    acts = sources.collect_activations(model, cfg, tokens, "eval", progress=progress).acts
    what = f"preset {preset!r}: {cfg.n_eval_tokens:,} held-out tokens of {cfg.text} through {cfg.model} at {cfg.hook}"
    return check_acts(acts, saes[0].d_in, saes[0].sae.W_dec.dtype, what), what
