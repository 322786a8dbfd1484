"""Build locks: a running build announces itself in the artifact cache, so that ``cache prune`` can refuse.

``<cache>/locks/build-<pid>.json`` holds the builder's pid, its process start time (so a reused pid is not
mistaken for the builder) and its command line.  A lock whose process is gone (a build killed with SIGKILL never
removes its lock) is stale: :func:`active_builds` ignores it and deletes it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .artifacts import cache_root


def _lock_dir(root: Path | None = None) -> Path:
    return Path(root or cache_root()) / "locks"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (field 22 of ``/proc/<pid>/stat``); None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, started: str | None) -> bool:
    """Is the process that wrote a lock still running (same pid, same start time, not a zombie)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):
            return False
    except OSError:
        pass
    now = _start_time(pid)
    return started is None or now is None or now == started


@contextmanager
def build_lock(what: str, root: Path | None = None):
    """Hold a build lock on the artifact cache ``root`` (default: the current one) while the block runs."""
    folder = _lock_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"build-{os.getpid()}.json"
    path.write_text(json.dumps({"pid": os.getpid(), "started": _start_time(os.getpid()), "what": what,
                                "since": time.time(), "argv": sys.argv}))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def active_builds(root: Path | None = None) -> list[dict]:
    """The locks of builds still running on the cache ``root``; stale locks (dead builders) are deleted."""
    out = []
    for path in sorted(_lock_dir(root).glob("build-*.json")):
        try:
            info = json.loads(path.read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if _alive(pid, info.get("started")):
            out.append({**info, "lock": str(path)})
        else:
            path.unlink(missing_ok=True)
    return out


def refuse_while_building(action: str, root: Path | None = None) -> str | None:
    """A one-line refusal naming the running builds when one holds the cache, else None."""
    builds = active_builds(root)
    if not builds:
        return None
    names = "; ".join(f"pid {b['pid']} ({b.get('what', 'build')}, lock {b['lock']})" for b in builds)
    return (f"{action} refused: a build is using the cache {Path(root or cache_root())} ({names}). Wait for it to "
            "finish or stop it; a lock left by a build that no longer runs is ignored")
