"""``compare``: every input checked, then the numbers, then ``report.json`` and ``report.html``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..presets import ConfigError
from .inputs import (Loaded, check_reachable, check_saes, folder_cfg, load, load_activations, preset_activations,
                     resolve_source)


def describe(s: Loaded, spec: str) -> dict:
    """The report's description of one loaded SAE."""
    return {"role": s.role.lstrip("-").upper(), "label": s.label, "spec": spec, "width": s.width,
            "architecture": s.architecture, "hook": s.hook, "d_in": s.d_in}


def load_all(small: str, large: str, twin: str | None = None) -> list[Loaded]:
    """Resolve, reach and load SMALL, LARGE and the twin, and check them against each other (ConfigError)."""
    roles = [("SMALL", small), ("LARGE", large)] + ([("--twin", twin)] if twin else [])
    sources = [resolve_source(role, spec) for role, spec in roles]
    for s in sources:
        if s.folder is not None:
            folder_cfg(s)  # architecture and files of every folder before any weights are read
    check_reachable(sources)
    saes = [load(s) for s in sources]
    check_saes(saes)
    if saes[1].width <= saes[0].width:
        raise ConfigError(f"LARGE ({saes[1].label}, {saes[1].width:,} latents) must be wider than SMALL "
                          f"({saes[0].label}, {saes[0].width:,} latents)")
    return saes


def compare(small: str, large: str, out: str | Path, activations: str | None = None, preset: str | None = None,
            twin: str | None = None, threshold: float = 0.7, seed: int = 0, random_order: bool = False,
            progress: bool = False) -> dict:
    """Stitch SAE ``large`` onto SAE ``small`` (and the seed ``twin`` of ``large`` when given) on activations, and
    write ``out/report.json`` and ``out/report.html``.

    ``small`` / ``large`` / ``twin``: a SAELens folder (``sae.save_model(folder)``) or a ``release/sae_id`` pair of
    SAELens' registry.  Exactly one of ``activations`` (a ``.pt`` file of a (n, d_in) tensor) and ``preset`` (a
    preset name or YAML file: its held-out activations, collected through :mod:`!metasae_utils.sources`).  Every input
    is checked before any compute (:class:`!metasae_utils.presets.ConfigError` naming the problem).  ``random_order``
    adds the seeded random-order interpolation path (the control of the greedy path's monotonicity; it doubles the
    cost of the interpolation, about half of the run).  Returns the report (the dict written to ``report.json``)."""
    if (activations is None) == (preset is None):
        raise ConfigError("give exactly one of --activations ACTS (a .pt tensor) and --preset NAME")
    if not 0 < threshold < 1:
        raise ConfigError(f"--threshold = {threshold!r} must lie strictly between 0 and 1")
    t0 = time.perf_counter()
    if preset is not None:
        from ..presets import resolve
        resolve(preset)  # an unknown or invalid preset fails before any SAE is loaded
    saes = load_all(small, large, twin)
    if activations is not None:
        acts = load_activations(activations, saes[0].d_in, saes[0].sae.W_dec.dtype)
        what = f"from {activations}"
    else:
        acts, what = preset_activations(preset, saes, progress=progress)
    from .html import page
    from .numbers import jsonable, numbers
    t1 = time.perf_counter()
    result = numbers(saes[0].sae, saes[1].sae, acts, twin=saes[2].sae if twin else None, threshold=threshold,
                     seed=seed, random_order=random_order)
    specs = [small, large, twin]
    described = [describe(s, spec) for s, spec in zip(saes, specs)]
    report = {"tool": "python -m metasae_utils compare", "saes": described, "activations": what,
              "rows": int(acts.shape[0]), **result["report"],
              "seconds": {"load": round(t1 - t0, 2), "compute": round(time.perf_counter() - t1, 2)}}
    result["report"] = report
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(jsonable(report), indent=1, allow_nan=False))
    (out / "report.html").write_text(page(result, described, what))
    return report
