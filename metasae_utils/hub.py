"""What a hub preset needs from the Hugging Face hub, and whether a local Hugging Face cache already holds it.

With ``HF_HUB_OFFLINE=1`` the hub libraries read only their local caches (``$HF_HOME/hub`` for models and SAEs,
``$HF_HOME/datasets`` for the Arrow cache that ``datasets.load_dataset`` leaves).  A hub preset then runs exactly
as on a connected machine when those caches hold its files (a machine without network that was given a
pre-filled cache, or the test suite's hub-shaped stand-in cache); :func:`missing` names the first file that is
not there, so the build fails in seconds instead of deep inside a loader.

Also here: the SAELens registry lookups that the model loader needs (the release's ``model_from_pretrained_kwargs``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .presets import OFFLINE_MODELS, Config, ConfigError

PARTS = ("model", "text", "saes")


def offline() -> bool:
    """Is ``HF_HUB_OFFLINE`` set (the hub libraries then read only their local caches)?"""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def registry_entry(release: str):
    """SAELens' registry entry of ``release`` (offline: the registry ships with SAELens); a ConfigError naming
    the closest releases when there is none."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    directory = get_pretrained_saes_directory()
    if release not in directory:
        import difflib
        close = difflib.get_close_matches(release, list(directory), n=3)
        raise ConfigError(f"parameter 'sae_release' = {release!r} is not a SAELens release"
                          + (f"; did you mean {', '.join(close)}?" if close else ""))
    return directory[release]


def model_kwargs(cfg: Config) -> dict:
    """Keyword arguments for ``HookedTransformer.from_pretrained`` that the preset's SAE release asks for
    (registry ``config_overrides.model_from_pretrained_kwargs``, e.g. ``center_writing_weights: true`` for the
    GPT-2 feature-splitting SAEs); {} when the family is not a pretrained release."""
    if cfg.family != "pretrained" or not cfg.sae_release:
        return {}
    overrides = registry_entry(cfg.sae_release).config_overrides or {}
    return dict(overrides.get("model_from_pretrained_kwargs") or {})


def quiet_model_kwargs_warning() -> None:
    """Silence SAELens's "This SAE has non-empty model_from_pretrained_kwargs ... load the model like so" warning
    (raised by every SAE built from such a config): :func:`metasae_utils.sources.load_model` already loads the
    model with those kwargs (:func:`model_kwargs`)."""
    import warnings
    warnings.filterwarnings("ignore", message=r"\s*This SAE has non-empty model_from_pretrained_kwargs")


def _hub_cache() -> str:
    from huggingface_hub import constants
    return constants.HF_HUB_CACHE


def _in_hub_cache(repo_id: str, filename: str, repo_type: str = "model") -> bool:
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str)


def _model_files(cfg: Config) -> list[tuple[str, str]]:
    """(repo, file) pairs that ``HookedTransformer.from_pretrained(cfg.model)`` reads from the hub."""
    from transformer_lens.loading_from_pretrained import get_official_model_name
    try:
        repo = get_official_model_name(cfg.model)
    except ValueError as e:
        raise ConfigError(f"parameter 'model' = {cfg.model!r} is not a TransformerLens model: {e}") from None
    return [(repo, "config.json"), (repo, "tokenizer_config.json")]


def sae_file(release: str, sae_id: str) -> tuple[str, str]:
    """The (repo, file) that ``SAE.from_pretrained(release, sae_id)`` reads first: ``<folder>/cfg.json`` for
    SAELens-format releases, ``<folder>/params.npz`` for Gemma Scope."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name
    entry = registry_entry(release)
    name = "params.npz" if (entry.conversion_func or "") == "gemma_2" else "cfg.json"
    repo, folder = get_repo_id_and_folder_name(release, sae_id)
    return repo, f"{folder}/{name}"


def missing_sae(release: str, sae_id: str) -> str | None:
    """The SAE ``release/sae_id`` described for an error message when the local Hugging Face cache lacks its file
    (:func:`sae_file`); None when it is there."""
    repo, f = sae_file(release, sae_id)
    if _in_hub_cache(repo, f):
        return None
    return f"SAE '{release}/{sae_id}' (hub repo {repo!r}, file {f!r} under {_hub_cache()})"


def _sae_files(cfg: Config) -> list[tuple[str, str]]:
    """(repo, file) pairs that ``SAE.from_pretrained`` reads for each of the preset's SAE ids (:func:`sae_file`)."""
    return [sae_file(cfg.sae_release, sae_id) for sae_id in cfg.sae_ids]


def datasets_cache() -> Path:
    """Where ``datasets`` keeps its Arrow cache: ``$HF_DATASETS_CACHE``, else ``$HF_HOME/datasets`` (its own rule,
    restated so that checking costs no ``import datasets``)."""
    home = os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
    return Path(os.path.expanduser(os.getenv("HF_DATASETS_CACHE", os.path.join(os.path.expanduser(home), "datasets"))))


def _text_cached(name: str) -> bool:
    """Does the ``datasets`` Arrow cache hold dataset ``name`` (what an offline ``load_dataset(name)`` reads:
    ``<cache>/<owner>___<snake_case name>/<config>/<version>/<hash>/``)?"""
    parts = name.split("/")
    parts[-1] = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", parts[-1])).lower()
    root = datasets_cache() / "___".join(parts)
    return any(p.is_dir() for p in root.glob("*/*/*"))


def missing(cfg: Config, parts=PARTS) -> str | None:
    """The first of the preset's hub inputs (``parts``: "model", "text", "saes") absent from the local Hugging
    Face caches, described for an error message; None when all are there."""
    if "model" in parts and cfg.model not in OFFLINE_MODELS:
        for repo, f in _model_files(cfg):
            if not _in_hub_cache(repo, f):
                return f"model '{cfg.model}' (hub repo {repo!r}, file {f!r} under {_hub_cache()})"
    if "text" in parts and cfg.text != "sotu" and not _text_cached(cfg.text):
        return f"dataset '{cfg.text}' (no prepared Arrow cache under {datasets_cache()})"
    if "saes" in parts and cfg.family == "pretrained":
        for repo, f in _sae_files(cfg):
            if not _in_hub_cache(repo, f):
                return f"SAE release '{cfg.sae_release}' (hub repo {repo!r}, file {f!r} under {_hub_cache()})"
    return None


#: the hub's automatic parquet export of a dataset (branch refs/convert/parquet: <config>/<split or partial-split>/)
PARQUET_EXPORT = "hf://datasets/{name}@refs%2Fconvert%2Fparquet/*/*train/*.parquet"


def stream_text(name: str):
    """``load_dataset(name, split="train", streaming=True)`` (offline: from the ``datasets`` Arrow cache).

    ``datasets`` >= 4 refuses repositories that still hold a loading script ("Dataset scripts are no longer
    supported", e.g. ``Skylion007/openwebtext``); their rows are then streamed from the hub's parquet export
    (:data:`PARQUET_EXPORT`), and a ConfigError names the dataset when that fails too."""
    from datasets import load_dataset
    try:
        return load_dataset(name, split="train", streaming=True)
    except RuntimeError as e:
        if "Dataset scripts are no longer supported" not in str(e):
            raise
        files = PARQUET_EXPORT.format(name=name)
        try:
            return load_dataset("parquet", data_files={"train": files}, split="train", streaming=True)
        except Exception as e2:  # noqa: BLE001 (named in the message)
            raise ConfigError(f"parameter 'text' = {name!r} holds a loading script, which this datasets version no "
                              f"longer runs ({e}), and its parquet export {files} could not be read "
                              f"({type(e2).__name__}: {e2}); choose a dataset stored as data files") from None
