"""The artifact cache: activations, SAEs and results keyed by a hash of everything that determines them.

Layout: ``<root>/<step>/<key>/`` holds one entry's files.  Every file is written to a temporary name and
renamed into place, then its sha256 is written beside it (``<file>.sha256``) the same way.  A file without
its checksum is unfinished and is never read; a file whose bytes no longer match is reported with a warning
naming it, deleted, and rebuilt.  Each entry records what happened to it in ``<root>/log.jsonl`` (computed,
reused, corrupt, pruned), which the tests read to check that nothing finished is ever recomputed.  Every event
carries the preset whose build used the entry (set by ``book.configure``, or ``$METASAE_PRESET``), so that
:func:`prune` can delete exactly the entries that no kept preset uses.

The root is ``$METASAE_CACHE`` or ``.cache/metasae`` in the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
PRESET_ENV = "METASAE_PRESET"
_TMP_RE = re.compile(r"^\..+\.tmp(\d+)$")  # ``.<name>.tmp<pid>``: a write in progress (or killed)
_preset_label: str | None = None


class CorruptArtifactWarning(UserWarning):
    """A cached file failed its checksum; it is deleted and rebuilt."""


def set_preset(name: str | None) -> None:
    """Label every later cache event of this process with preset ``name`` (``book.configure`` calls this)."""
    global _preset_label
    _preset_label = name


def current_preset() -> str | None:
    """The preset this process builds for: set by :func:`set_preset`, else ``$METASAE_PRESET``, else None."""
    return _preset_label or os.environ.get(PRESET_ENV) or None


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


def _dir_manifest(path: Path) -> dict[str, str]:
    """Relative name → sha256 of every file in a folder."""
    return {str(p.relative_to(path)): file_sha256(p) for p in sorted(q for q in path.rglob("*") if q.is_file())}


def _dir_digest(path: Path, manifest: dict[str, str] | None = None) -> str:
    """sha256 over the relative names and sha256 of every file in a folder."""
    h = hashlib.sha256()
    for rel, digest in sorted((manifest if manifest is not None else _dir_manifest(path)).items()):
        h.update(rel.encode())
        h.update(digest.encode())
    return h.hexdigest()


def _changed_files(path: Path, manifest_file: Path) -> str:
    """Which files of folder ``path`` differ from its recorded manifest ('' when none was recorded)."""
    try:
        want = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        return ""
    have = _dir_manifest(path)
    bad = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    return ", ".join(f"{path / k}" + ("" if k in have else " (missing)") for k in bad)


def _digest(path: Path) -> str:
    return _dir_digest(path) if path.is_dir() else file_sha256(path)


def _log_event(root: Path, step: str, key: str, name: str, event: str, **info):
    """Append one event (one JSON line, labelled with the current preset) to ``<root>/log.jsonl``."""
    rec = {"t": time.time(), "step": step, "key": key, "name": name, "event": event, **info}
    if current_preset():
        rec["preset"] = current_preset()
    with open(root / "log.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")


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
        _log_event(self.root, self.step, self.key, name, event, **info)

    def _sum(self, name: str) -> Path:
        return self.path / f"{name}.sha256"

    def _manifest(self, name: str) -> Path:
        """For a folder artifact: its files' sha256, to name the damaged file in the warning."""
        return self.path / f"{name}.files.json"

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
            changed = _changed_files(target, self._manifest(name)) if target.is_dir() else ""
            warnings.warn(f"cached artifact {target} failed its checksum (truncated or modified"
                          f"{': ' + changed if changed else ''}); deleting it and rebuilding",
                          CorruptArtifactWarning, stacklevel=2)
            self.log("corrupt", name)
            self.remove(name)
            return False
        return True

    def remove(self, name: str):
        target = self.path / name
        self._sum(name).unlink(missing_ok=True)
        self._manifest(name).unlink(missing_ok=True)
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
        if tmp.is_dir():
            manifest = _dir_manifest(tmp)
            _atomic_write_text(self._manifest(name), json.dumps(manifest, indent=1))
            digest = _dir_digest(tmp, manifest)
        else:
            digest = file_sha256(tmp)
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
    """Every event recorded by the cache, oldest first.  A line cut short (a process killed while appending
    to the log) is skipped."""
    p = (Path(root) if root else cache_root()) / "log.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "step" in rec and "key" in rec:
            out.append(rec)
    return out


def cache_size(root: Path | None = None) -> int:
    root = Path(root) if root else cache_root()
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


# -- size and pruning --------------------------------------------------------------------------------------

UNRECORDED = "(unrecorded)"


@dataclass
class CacheEntryInfo:
    """One entry folder on disk, its size and the presets whose builds used it (from the log)."""
    step: str
    key: str
    path: Path
    size: int
    presets: set = field(default_factory=set)
    unrecorded: bool = False  # used by something that named no preset, or never logged: keep when unsure

    @property
    def label(self) -> str:
        names = sorted(self.presets) + ([UNRECORDED] if self.unrecorded else [])
        return ", ".join(names)


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) \
        if path.is_dir() else path.stat().st_size


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temp_files(root: Path | None = None) -> list[Path]:
    """Temporary files and folders (``.<name>.tmp<pid>``) whose writing process is gone: left by a killed run,
    never read by anything (a file only counts once renamed into place with its checksum), safe to delete."""
    root = Path(root) if root else cache_root()
    if not root.exists():
        return []
    found = []
    for step in (p for p in root.iterdir() if p.is_dir()):
        for folder in (p for p in step.iterdir() if p.is_dir()):
            for p in folder.iterdir():
                m = _TMP_RE.match(p.name)
                if m and not _pid_alive(int(m.group(1))):
                    found.append(p)
            if folder.name.startswith(".deleting-"):
                found.append(folder)
    return found


def entries(root: Path | None = None) -> list[CacheEntryInfo]:
    """Every entry folder ``<root>/<step>/<key>`` with its size and the presets that used it."""
    root = Path(root) if root else cache_root()
    used: dict[tuple, set] = {}
    for rec in read_log(root):  # a pruned entry that was made again starts a new record
        if rec.get("event") == "pruned":
            used.pop((rec["step"], rec["key"]), None)
        else:
            used.setdefault((rec["step"], rec["key"]), set()).add(rec.get("preset"))
    out = []
    if not root.exists():
        return out
    for step in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder in sorted(p for p in step.iterdir() if p.is_dir() and not p.name.startswith(".")):
            labels = used.get((step.name, folder.name), {None})
            out.append(CacheEntryInfo(step.name, folder.name, folder, _tree_size(folder),
                                      {x for x in labels if x}, None in labels))
    return out


@dataclass
class PrunePlan:
    """What :func:`prune` deletes (or would delete) and what it keeps."""
    delete: list
    keep: list
    stale: list
    freed: int
    dry_run: bool


def prune(keep: list[str], root: Path | None = None, dry_run: bool = False,
          include_unrecorded: bool = False) -> PrunePlan:
    """Delete the entries that no preset of ``keep`` used, and temporary files left by killed runs.

    An entry is deleted only when the log shows which presets used it and none of them is kept.  Entries used
    by something that named no preset (tests, scripts, runs before presets were recorded), or never logged,
    are kept unless ``include_unrecorded``.  Each entry folder is first renamed away, then removed, so an
    interrupted prune never leaves half an entry that looks complete.  Do not prune while a build runs.
    """
    from .presets import ConfigError, _suggest, available_presets
    root = Path(root) if root else cache_root()
    if not keep:
        raise ConfigError("cache prune needs at least one --keep PRESET (e.g. --keep offline); "
                          f"allowed: {', '.join(available_presets())}")
    infos = entries(root)
    known = set(available_presets()) | {p for e in infos for p in e.presets}
    for name in keep:
        if name not in known:
            raise ConfigError(f"--keep {name!r} is not a preset; allowed: {', '.join(sorted(known))}."
                              f"{_suggest(name, known)}")
    doomed = [e for e in infos if not (e.presets & set(keep)) and (include_unrecorded or not e.unrecorded)]
    stale = stale_temp_files(root)
    freed = sum(e.size for e in doomed) + sum(_tree_size(p) for p in stale)
    plan = PrunePlan(doomed, [e for e in infos if e not in doomed], stale, freed, dry_run)
    if dry_run:
        return plan
    for p in stale:
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    for e in doomed:
        trash = e.path.with_name(f".deleting-{e.key}")
        os.replace(e.path, trash)
        shutil.rmtree(trash)
        _log_event(root, e.step, e.key, "*", "pruned", bytes=e.size, presets=sorted(e.presets))
    return plan
