"""A build holds a lock on the cache (``cache prune`` refuses meanwhile); a build killed with SIGKILL leaves no
kernel behind and its stale lock is ignored."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from metasae_utils import locks
from metasae_utils.__main__ import main
from metasae_utils.artifacts import REPO


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait(cond, timeout: float, step: float = 0.2):
    end = time.time() + timeout
    while time.time() < end:
        got = cond()
        if got:
            return got
        time.sleep(step)
    return None


def test_lock_is_held_during_the_block_and_a_dead_builders_lock_is_stale(tmp_cache, capsys):
    with locks.build_lock("build --preset ci") as path:
        assert [b["pid"] for b in locks.active_builds()] == [os.getpid()]
        assert main(["cache", "prune", "--keep", "ci"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: cache prune refused: a build is using the cache") and f"pid {os.getpid()}" in err
        assert main(["cache", "prune", "--keep", "ci", "--dry-run"]) == 0  # a dry run deletes nothing: allowed
        assert "a real prune would be refused" in capsys.readouterr().out
    assert not path.exists() and locks.active_builds() == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_cache / "locks" / f"build-{int(dead.stdout)}.json"
    stale.write_text(json.dumps({"pid": int(dead.stdout), "started": "1", "what": "build --preset ci"}))
    mine = tmp_cache / "locks" / "build-reused.json"  # a live pid with another start time: a reused pid
    mine.write_text(json.dumps({"pid": os.getpid(), "started": "1", "what": "build"}))
    assert locks.active_builds() == [] and not stale.exists() and not mine.exists()
    assert main(["cache", "prune", "--keep", "ci"]) == 0


def test_sigkilled_build_leaves_no_kernel_and_no_live_lock(tmp_path, chapter_src):
    """A build runs a chapter that sleeps; it is killed with SIGKILL while its kernel runs; the kernel is gone
    within a few seconds (ipykernel's parent poller: JPY_PARENT_PID), and `cache prune` runs again."""
    src = chapter_src(tmp_path / "src", {"sleepy": "import time\ntime.sleep(300)"})
    env = {**os.environ, "METASAE_CACHE": str(tmp_path / "cache"), "METASAE_RESULTS": str(tmp_path / "results"),
           "PYTHONPATH": str(REPO)}
    code = (f"from pathlib import Path; from metasae_utils import runner; "
            f"runner.build('ci', Path({str(tmp_path / 'out')!r}), src=Path({str(src)!r}))")
    build = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kernels = _wait(lambda: [p for p in _children(build.pid)
                                 if "ipykernel" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")],
                        timeout=120)
        assert kernels, "no kernel started"
        running = tmp_path / "out" / "_build" / "running" / "sleepy.ipynb"
        assert _wait(lambda: running.exists(), timeout=120)
        lock = locks.active_builds(tmp_path / "cache")
        assert [b["pid"] for b in lock] == [build.pid]
        os.kill(build.pid, signal.SIGKILL)
        build.wait(10)
        gone = _wait(lambda: not any(_running(k) for k in kernels), timeout=15)
        assert gone, f"kernel(s) {kernels} still running 15 s after the build was killed"
        assert locks.active_builds(tmp_path / "cache") == []  # the stale lock is ignored (and removed)
    finally:
        if build.poll() is None:
            build.kill()
        for k in _children(build.pid):
            os.kill(k, signal.SIGKILL)
