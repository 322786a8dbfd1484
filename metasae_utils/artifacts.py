"""The artifact cache: activations, SAEs and results keyed by a hash of everything that determines them.

Layout: ``<root>/<step>/<key>/`` holds one entry's files.  Every file is written to a temporary name and
renamed into place, then its sha256 is written beside it (``<file>.sha256``) the same way.  A file without
its checksum is unfinished and is never read; a file whose bytes no longer match is reported with a warning
naming it, deleted, and rebuilt.  Each entry records what happened to it in ``<root>/log.jsonl`` (computed,
reused, rebuilt), which the tests read to check that nothing finished is ever recomputed.

The root is ``$METASAE_CACHE`` or ``.cache/metasae`` in the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent


class CorruptArtifactWarning(UserWarning):
    """A cached file failed its checksum; it is deleted and rebuilt."""


def cache_root() -> Path:
    return Path(os.environ.get("METASAE_CACHE", REPO / ".cache" / "metasae"))


def spec_hash(spec: Any) -> str:
    """A stable 16-hex-digit hash of a JSON-able spec (dict keys sorted)."""
    blob = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _dir_digest(path: Path) -> str:
    """sha256 over the relative names and sha256 of every file in a folder."""
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def _digest(path: Path) -> str:
    return _dir_digest(path) if path.is_dir() else file_sha256(path)


class Entry:
    """One cache entry: a folder of checksummed files for one (step, spec)."""

    def __init__(self, root: Path, step: str, spec: dict, version: int):
        self.step, self.spec, self.version = step, spec, version
        self.key = spec_hash({"step": step, "version": version, "spec": spec})
        self.root = root
        self.path = root / step / self.key
        self.path.mkdir(parents=True, exist_ok=True)
        spec_file = self.path / "spec.json"
        if not spec_file.exists():
            _atomic_write_text(spec_file, json.dumps({"step": step, "version": version, "spec": spec},
                                                     indent=1, sort_keys=True, default=str))

    # -- bookkeeping ---------------------------------------------------------------------------------
    def log(self, event: str, name: str, **info):
        rec = {"t": time.time(), "step": self.step, "key": self.key, "name": name, "event": event, **info}
        with open(self.root / "log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def _sum(self, name: str) -> Path:
        return self.path / f"{name}.sha256"

    # -- checked access ------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Is ``name`` complete and intact?  A corrupt file is warned about, deleted, and reported missing."""
        target, summ = self.path / name, self._sum(name)
        if not summ.exists():
            return False
        if not target.exists():
            summ.unlink()
            return False
        if _digest(target) != summ.read_text().strip():
            warnings.warn(f"cached artifact {target} failed its checksum (truncated or modified); "
                          "deleting it and rebuilding", CorruptArtifactWarning, stacklevel=2)
            self.log("corrupt", name)
            self.remove(name)
            return False
        return True

    def remove(self, name: str):
        target = self.path / name
        self._sum(name).unlink(missing_ok=True)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def put(self, name: str, write: Callable[[Path], None], **info) -> Path:
        """Create ``name`` by calling ``write(tmp_path)`` (a file or a folder), then rename and checksum it."""
        target = self.path / name
        tmp = self.path / f".{name}.tmp{os.getpid()}"
        if tmp.is_dir():
            shutil.rmtree(tmp)
        write(tmp)
        if tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        digest = _digest(tmp)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
        _atomic_write_text(self._sum(name), digest)
        self.log("computed", name, **info)
        return target

    def get_or_make(self, name: str, make: Callable[[Path], None], **info) -> Path:
        """The path of ``name``: reused when intact, else made with ``make(tmp_path)``."""
        if self.has(name):
            self.log("reused", name)
            return self.path / name
        return self.put(name, make, **info)

    # -- JSON and tensors ----------------------------------------------------------------------------
    def json(self, name: str, make: Callable[[], Any]) -> Any:
        """A JSON result, computed by ``make()`` once."""
        def write(p):
            p.write_text(json.dumps(make(), indent=1, default=float))
        return json.loads(self.get_or_make(name, write).read_text())


def entry(step: str, spec: dict, version: int = 1, root: Path | None = None) -> Entry:
    """The cache entry of ``step`` for ``spec`` (its code ``version`` is part of the key)."""
    root = Path(root) if root is not None else cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return Entry(root, step, spec, version)


def read_log(root: Path | None = None) -> list[dict]:
    """Every event recorded by the cache, oldest first."""
    p = (Path(root) if root else cache_root()) / "log.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def cache_size(root: Path | None = None) -> int:
    root = Path(root) if root else cache_root()
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
