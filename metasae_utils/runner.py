"""The book runner: execute every chapter notebook of ``_toc.yml`` with papermill on one preset.

* Notebooks run in table-of-contents order from ``notebooks/`` into ``<out>/book/``.
* Parameters are validated for every notebook before the first one runs; a preset that needs the Hugging Face
  hub fails at once (naming the 'offline' preset) when the hub cannot be reached.
* A notebook whose inputs did not change (its source, the preset's resolved values, the package's code) is
  reused, not re-run; everything it computes is also cached (``metasae_utils.artifacts``).
* Each notebook is executed into a temporary file; only a successful run replaces the output, so a failure
  never overwrites the last good notebook.  The book gets it cleaned (``pages.clean``: no progress bars, light
  figures); ``<out>/_build/executed/`` keeps it as executed, for nbval.  The first failure stops the build with the notebook's name and the
  failing cell's error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from .artifacts import REPO
from .presets import ConfigError, is_preset_file, preset_label, resolve

RUN_KEY = "metasae_run_key"


class NotebookFailed(RuntimeError):
    """A chapter notebook raised; the message names the notebook, the cell and the error."""


def chapters(src: Path = REPO) -> list[str]:
    """Notebook stems in ``src/_toc.yml`` order (entries that have a source in ``src/notebooks/``)."""
    data = yaml.safe_load((Path(src) / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(data.get("parts", data.get("chapters", [])))
    out = []
    for f in files:
        stem = Path(f).name.removesuffix(".ipynb")
        if (Path(src) / "notebooks" / f"{stem}.ipynb").exists():
            out.append(stem)
    return out


def _code_files() -> list[Path]:
    """The package's modules and the presets; in a git checkout only the tracked ones (a scratch file being
    written beside them is not part of any notebook's inputs)."""
    files = sorted((REPO / "metasae_utils").rglob("*.py")) + sorted((REPO / "presets").glob("*.yaml"))
    try:
        tracked = subprocess.run(["git", "ls-files", "metasae_utils", "presets"], cwd=REPO, capture_output=True,
                                 text=True, timeout=10, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return files
    return [p for p in files if str(p.relative_to(REPO)) in set(tracked)] if tracked else files


def code_hash() -> str:
    """Hash of the package source and presets: a change anywhere re-runs the notebooks."""
    h = hashlib.sha256()
    for p in _code_files():
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def inputs_hash(notebook: Path, root: Path = REPO) -> str:
    """Hash of the files a notebook reads besides the package: the glob patterns (relative to ``root``) listed in
    its metadata ``metasae.inputs`` (e.g. the closing chapter's ``results/*/*.json``); "" when it lists none."""
    import nbformat
    patterns = nbformat.read(str(notebook), as_version=4).metadata.get("metasae", {}).get("inputs", [])
    h = hashlib.sha256()
    for pattern in patterns:
        for p in sorted(Path(root).glob(pattern)):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16] if patterns else ""


def run_key(notebook: Path, preset: str, params: dict) -> str:
    """What determines a chapter's output: its source, the resolved configuration, the package code and the
    files it declares as inputs (:func:`inputs_hash`)."""
    config = resolve(preset, **params)
    blob = json.dumps({"src": hashlib.sha256(Path(notebook).read_bytes()).hexdigest(), "cfg": config.as_dict(),
                       "precision": resolved_precision(config), "code": code_hash(), "inputs": inputs_hash(notebook)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolved_precision(cfg) -> dict[str, list[str]]:
    """What "auto" precisions mean on this machine: ``{"model": [dtype, why], "training": [dtype, why]}``."""
    from .precision import resolve
    from .sources import pick_device
    device = pick_device(cfg)
    return {"model": list(resolve(cfg.dtype, device)), "training": list(resolve(cfg.train_dtype, device))}


def _existing_key(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["metadata"].get(RUN_KEY)
    except (ValueError, KeyError):
        return None


@dataclass
class Result:
    notebook: str
    status: str  # "ran", "reused"
    seconds: float


def build(preset: str = "offline", out: Path = REPO, params: dict | None = None, only: list[str] | None = None,
          force: bool = False, kernel: str = "python3", src: Path = REPO) -> list[Result]:
    """Execute the chapters into ``out/book`` and write ``out/_build/timings-<preset>.json``.  ``preset``: a
    bundled preset's name or the path of a user's preset file (*.yaml)."""
    from tqdm.auto import tqdm

    params = dict(params or {})
    if is_preset_file(preset):  # a user's own preset file: the notebooks run in notebooks/, so pass it absolute
        preset = str(Path(preset).expanduser().resolve())
    resolve(preset, **params)  # every notebook shares the schema: validate before any compute
    stems = chapters(src)
    if only:
        unknown = [s for s in only if s not in stems]
        if unknown:
            raise ConfigError(f"--only {unknown[0]!r} is not a chapter; allowed: {', '.join(stems)}")
        stems = [s for s in stems if s in only]
    cfg = resolve(preset, **params)
    if cfg.is_hub:  # fail in seconds, before any notebook starts, when the hub cannot be reached
        from .sources import check_hub
        check_hub(f"preset '{preset}'", cfg=cfg)
    out = stage(out) if Path(src) == REPO else Path(out)
    (out / "book").mkdir(parents=True, exist_ok=True)
    tqdm.write("precision: " + "; ".join(f"{what} {d} ({why})" for what, (d, why) in resolved_precision(cfg).items()))
    from .locks import build_lock
    with build_lock(f"build --preset {preset_label(preset)}"), kernels_import_this_package():
        results = _run_chapters(stems, preset, params, cfg, out, src, force, kernel)
    timings = out / "_build" / f"timings-{preset_label(preset)}.json"
    timings.parent.mkdir(parents=True, exist_ok=True)
    timings.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return results


@contextmanager
def kernels_import_this_package():
    """Put this package's checkout first on the kernels' ``PYTHONPATH`` while the block runs.  The kernels run in
    ``notebooks/``, so ``import metasae_utils`` there would otherwise find whichever copy is installed (another
    checkout's editable install), while :func:`run_key` hashes this one's code."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([old] if old else []))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _run_chapters(stems, preset, params, cfg, out: Path, src: Path, force: bool, kernel: str) -> list[Result]:
    """Execute (or reuse) each chapter of ``stems`` in order into ``out/book``; the first failure raises
    :class:`NotebookFailed`.  Each kernel is started by papermill with ``JPY_PARENT_PID`` set to this process, so
    ipykernel's parent poller ends it within a second when this process dies, even by SIGKILL."""
    import papermill as pm
    from tqdm.auto import tqdm
    results = []
    for stem in tqdm(stems, desc=f"book [{preset_label(preset)}]", unit="notebook"):
        target = out / "book" / f"{stem}.ipynb"
        source = Path(src) / "notebooks" / f"{stem}.ipynb"
        key = run_key(source, preset, params)
        if not force and _existing_key(target) == key:
            results.append(Result(stem, "reused", 0.0))
            tqdm.write(f"  {stem}: unchanged, reused")
            continue
        tmp = out / "_build" / "running" / f"{stem}.ipynb"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        try:
            nb = pm.execute_notebook(str(source), str(tmp),
                                     parameters={"preset": preset, **params}, kernel_name=kernel,
                                     progress_bar=True, execution_timeout=cfg.cell_timeout,
                                     cwd=str(source.parent), report_mode=False)
        except pm.PapermillExecutionError as e:
            failed = out / "_build" / "failed" / f"{stem}.ipynb"
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmp), failed)
            raise NotebookFailed(f"notebook {stem} failed in cell {e.exec_count}: {e.ename}: {e.evalue} "
                                 f"(executed copy kept at {failed}; the last good book/{stem}.ipynb is untouched)"
                                 ) from None
        seconds = time.time() - t0
        nb.metadata[RUN_KEY] = key
        nb.metadata["metasae_wall_time_s"] = round(seconds, 1)
        import nbformat

        from . import pages
        raw = out / "_build" / "executed" / f"{stem}.ipynb"  # as executed: what nbval re-runs and compares
        raw.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(raw))
        pages.clean(nb)  # no progress bars, widget state or CDN scripts in the book; light figures
        pages.copy_explorer_data(nb, out / STATIC, keep=out / "book" / "explorer")  # the explorer's JSON
        nbformat.write(nb, str(tmp))
        tmp.replace(target)
        results.append(Result(stem, "ran", seconds))
        tqdm.write(f"  {stem}: ran in {seconds:.0f} s")
    return results


BOOK_FILES = ("_config.yml", "_toc.yml")


# Local JavaScript for the static book, from npm (sha256-checked): plotly.js's cartesian bundle (1.5 MB instead of
# the full 4.8 MB: scatter, bar, histogram, box, heatmap are all the book draws; the same plotly.js version as the
# installed plotly package), require.js and the ipywidgets HTML manager (loaded only on a page with a widget).  The folder is not named _static: Jupyter Book would add every
# script in a _static folder to every page, in the wrong order.
STATIC = Path("book") / "assets"
NPM_JS = {"plotly.js-cartesian-dist-min@4.1.1": ("plotly.js-cartesian-dist-min-4.1.1.tgz",
                                                "c5f9a84666b97e571a04de689e09319869e60900e265c89eac2f71d0b5a0de88"),
          "requirejs@2.3.8": ("requirejs-2.3.8.tgz",
                              "777158e89275e16bd51aec3ef714fbcb5dc45789e7078659933bc814916d7dec"),
          "@jupyter-widgets/html-manager@1.0.15": ("jupyter-widgets-html-manager-1.0.15.tgz",
                                                   "2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638")}


def _npm_tarball(spec: str) -> Path:
    """The pinned npm tarball of ``spec``, fetched with ``npm pack`` into ``$METASAE_NPM_CACHE`` (default: the
    assets folder's ``npm/``) and checked against its sha256."""
    import os

    from .assets import assets_dir
    name, want = NPM_JS[spec]
    cache = Path(os.environ.get("METASAE_NPM_CACHE") or assets_dir() / "npm")
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / name
    if not tgz.exists():
        subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(cache)], check=True,
                       stdout=subprocess.DEVNULL)
    got = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if got != want:
        tgz.unlink()
        raise RuntimeError(f"{name} has sha256 {got}, expected {want}; deleted it")
    return tgz


def stage(out: Path = REPO) -> Path:
    """Make ``out`` a buildable book: config, toc, hand-written pages, the Sphinx extension, the local JavaScript
    and CSS; the executed notebooks there are cleaned for the page (:func:`clean_book`)."""
    import tarfile
    import tempfile

    out = Path(out)
    static = out / STATIC
    if out.resolve() != REPO.resolve():
        (out / "book").mkdir(parents=True, exist_ok=True)
        for name in BOOK_FILES:
            shutil.copy2(REPO / name, out / name)
        for page in (REPO / "book").glob("*.md"):
            shutil.copy2(page, out / "book" / page.name)
    if out.resolve() != REPO.resolve():
        shutil.copytree(REPO / "book" / "_ext", out / "book" / "_ext", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    clean_book(out)
    from . import timings, verdicts  # the intro's at-a-glance grid, from the results files
    (out / "book" / "verdicts.html").write_text(verdicts.page())
    # the Performance page's chapter times: those of the build being staged, every chapter
    (out / "book" / "chapter_times.html").write_text(timings.page(timings.chapter_times(out / "book", chapters())))
    (static / "html-manager").mkdir(parents=True, exist_ok=True)
    for f in (Path(__file__).parent / "web").iterdir():
        shutil.copy2(f, static / f.name)
    shutil.copy2(Path(__file__).with_name("widgets-require-config.js"), static / "widgets-require-config.js")
    wanted = {"plotly.js-cartesian-dist-min@4.1.1": {"plotly-cartesian.min.js": "plotly.min.js"},
              "requirejs@2.3.8": {"require.js": "require.js"}, "@jupyter-widgets/html-manager@1.0.15": None}
    for spec, files in wanted.items():  # the npm files are pinned: unpack each once (a stamp names the tarball)
        stamp = static / f".npm-{spec.replace('/', '_')}"
        if stamp.exists() and (files is None and (static / "html-manager" / "embed-amd.js").exists() or
                               files and all((static / t).exists() for t in files.values())):
            continue
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(_npm_tarball(spec)) as tf:
            tf.extractall(tmp, filter="data")
            pkg = Path(tmp) / "package"
            if files is None:
                for f in (pkg / "dist").iterdir():
                    if f.name not in ("embed.js", "libembed-amd.js") and f.suffix != ".map":
                        shutil.copy2(f, static / "html-manager" / f.name)
            for src_name, target in (files or {}).items():
                shutil.copyfile(pkg / src_name, static / target)  # a fresh mtime: Sphinx recopies it
        stamp.write_text(NPM_JS[spec][1])
    return out


def clean_book(out: Path = REPO) -> list[str]:
    """Apply :func:`metasae_utils.pages.clean` to every executed notebook in ``out/book`` (idempotent); the names of
    the notebooks it changed."""
    import nbformat

    from . import pages
    changed = []
    for path in sorted((Path(out) / "book").glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        before = nbformat.writes(nb)
        pages.clean(nb)
        pages.copy_explorer_data(nb, Path(out) / STATIC, keep=Path(out) / "book" / "explorer")
        if nbformat.writes(nb) != before:
            tmp = path.with_suffix(".tmp")
            nbformat.write(nb, str(tmp))
            tmp.replace(path)
            changed.append(path.stem)
    return changed


def main_build(args) -> int:
    from .sources import HubUnreachableError
    params = {}
    for name, value in args.param or []:
        params[name] = yaml.safe_load(value)
    try:
        results = build(args.preset, Path(args.out), params, args.only, args.force)
    except (ConfigError, NotebookFailed, HubUnreachableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    total = sum(r.seconds for r in results)
    print(f"built {len(results)} notebooks on preset '{args.preset}' in {total:.0f} s "
          f"({sum(r.status == 'reused' for r in results)} reused)")
    return 0
