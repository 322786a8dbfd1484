"""Notebook glue: validate a notebook's parameters, set up plotting and seeds, and close with provenance.

Every chapter notebook follows the same shape::

    # setup cell (installs requirements on Colab), then
    from metasae_utils import book
    _before = set(globals())
    # parameters cell (tagged 'parameters'): preset = "offline", overrides = None ...
    # (papermill injects its cell here)
    cfg = book.configure("<chapter>", book.new_names(globals(), _before))
    ...
    book.provenance(cfg)
"""

from __future__ import annotations

import json
import platform
import random
import subprocess
import time
from importlib import metadata

from .artifacts import REPO
from .presets import Config, ConfigError, preset_label, resolve

_STATE: dict = {}
PACKAGES = ("torch", "sae-lens", "transformer-lens", "transformers", "plotly", "papermill", "jupyter-book")


def new_names(namespace: dict, before: set) -> dict:
    """The parameters a notebook defined (or papermill injected) since ``before`` was taken.

    Names starting with ``_`` (IPython's own history variables) are ignored.
    """
    return {k: v for k, v in namespace.items() if k not in before and not k.startswith("_")}


def configure(chapter: str, params: dict) -> Config:
    """Validate ``params`` (``preset`` plus overrides) before any compute; seed and set up plotting.

    Raises ConfigError naming the parameter and what is allowed.
    """
    params = dict(params)
    preset = params.pop("preset", "offline")
    cfg = resolve(preset, **params)
    from . import artifacts
    artifacts.set_preset(preset_label(preset))  # cache events of this kernel name the preset (for `cache prune --keep`)
    import numpy as np
    import torch
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    from . import hub, plots, precision
    from .sources import pick_device
    hub.quiet_model_kwargs_warning()
    precision.configure(cfg.train_dtype, pick_device(cfg))
    plots.setup()
    _STATE.update(chapter=chapter, preset=preset_label(preset), overrides=params, start=time.time(), cfg=cfg,
                  page=page_of(chapter))
    from . import report
    report.begin(preset_label(preset), chapter, _STATE["page"])
    return cfg


def page_of(chapter: str) -> str:
    """The book page (notebook stem in ``_toc.yml``, e.g. ``03_stitching``) of a chapter name (``stitching``)."""
    from .runner import chapters
    stems = [s for s in chapters() if s.endswith("_" + chapter) or s == chapter]
    return stems[0] if stems else chapter


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "metasae_utils",
                                "notebooks", "presets"], cwd=REPO, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return (sha or "unknown") + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def provenance_record(cfg: Config | None = None) -> dict:
    cfg = cfg or _STATE.get("cfg")
    if cfg is None:
        raise ConfigError("book.configure(...) must run before book.provenance()")
    return {"chapter": _STATE.get("chapter"), "preset": _STATE.get("preset"), "overrides": _STATE.get("overrides"),
            "parameters": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.as_dict().items()},
            "versions": versions(), "git_commit": git_commit(),
            "precision": _precision(cfg), "threads": _threads(),
            "wall_time_s": round(time.time() - _STATE.get("start", time.time()), 1),
            "platform": f"{platform.system()} {platform.machine()}, {_device_name()}"}


def _precision(cfg: Config) -> str:
    """The model and training precisions in words, with why "auto" chose them."""
    from .precision import resolve, summary
    from .sources import pick_device
    model, why = resolve(cfg.dtype, pick_device(cfg))
    train = summary()
    return f"model {model} ({why}); SAE training {train['dtype']} ({train['why']})"


def _threads() -> str:
    """The torch CPU threads and how standard SAEs train: results depend on both (reductions split by thread)."""
    import torch

    from .training import sparse
    lib = sparse.kernel()
    step = "the sparse step (C kernel)" if lib is not None else f"dense products ({sparse.kernel_error()})"
    return f"{torch.get_num_threads()} torch threads; standard SAEs trained with {step}"


def _device_name() -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    import os
    return f"CPU ({os.cpu_count()} cores)"


def provenance(cfg: Config | None = None) -> None:
    """Display the provenance box that ends every chapter, collapsed to one line (preset, commit, wall time)
    that opens onto precision, versions and every parameter.  Returns None, so the record is shown once."""
    from html import escape

    from IPython.display import HTML, display
    rec = provenance_record(cfg)
    from . import report
    report.finalize(rec["preset"], rec["chapter"], rec)
    rows = "".join(f"<tr><td><code>{escape(k)}</code></td><td><code>{escape(json.dumps(v))}</code></td></tr>"
                   for k, v in rec["parameters"].items())
    vers = ", ".join(f"{escape(k)} {escape(v)}" for k, v in rec["versions"].items())
    overrides = ", ".join(f"<code>{escape(k)}={escape(repr(v))}</code>" for k, v in rec["overrides"].items())
    display(HTML(
        '<details class="provenance"><summary><b>Provenance</b>: preset '
        f"<code>{escape(str(rec['preset']))}</code> (overrides: {overrides or 'none'}) · commit "
        f"<code>{escape(rec['git_commit'])}</code> · {rec['wall_time_s']} s on {escape(rec['platform'])}</summary>"
        f"<p><b>Precision</b> {escape(rec['precision'])}</p><p><b>Threads</b> {escape(rec['threads'])}</p>"
        f"<p><b>Versions</b> {vers}</p>"
        '<div class="metasae-table" style="overflow-x:auto"><table><tr><th>parameter</th><th>value</th></tr>'
        f"{rows}</table></div></details>"))
