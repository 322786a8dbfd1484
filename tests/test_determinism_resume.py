"""Determinism and resume on the real pipeline (SmolLM2, ci preset shrunk by ``faults/pipeline_run.OVERRIDES``).

* Two runs in two fresh caches give bit-identical metrics and bit-identical artifacts (==, not allclose).
* A real ``runner.build`` killed with SIGKILL during activation collection, between notebooks and during SAE
  training finishes on rerun, computes no artifact twice, never uses a half-written file, and gives the
  uninterrupted run's numbers.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import torch

from conftest import FAULTS
from metasae_utils import artifacts

sys.path.insert(0, FAULTS)
import pipeline_run  # noqa: E402


def _run_in_fresh_cache(root, seed, monkeypatch):
    monkeypatch.setenv("METASAE_CACHE", str(seed(root)))
    threads = torch.get_num_threads()
    try:
        return pipeline_run.family_metrics(pipeline_run.config())
    finally:
        torch.set_num_threads(threads)


def _checksums(root: Path) -> dict:
    """Every finished artifact of a cache: (step, key, name) → its recorded sha256."""
    return {(p.parent.parent.name, p.parent.name, p.name.removesuffix(".sha256")): p.read_text()
            for p in root.glob("*/*/*.sha256") if p.parent.parent.name != "models"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, smollm2_entry):
    """One uninterrupted run: (metrics, cache root)."""
    mp = pytest.MonkeyPatch()
    try:
        root = tmp_path_factory.mktemp("reference") / "cache"
        return _run_in_fresh_cache(root, smollm2_entry, mp), root
    finally:
        mp.undo()


def test_ci_pipeline_twice_is_bit_identical(reference, tmp_path, smollm2_entry, monkeypatch):
    metrics, ref_root = reference
    again = _run_in_fresh_cache(tmp_path / "cache", smollm2_entry, monkeypatch)
    assert [r["width"] for r in metrics] == pipeline_run.OVERRIDES["widths"]
    assert again == metrics  # exact: floats compared with ==
    ref, new = _checksums(ref_root), _checksums(tmp_path / "cache")
    assert any(step == "saes" for step, _, _ in ref) and any(step == "activations" for step, _, _ in ref)
    assert new == ref  # same keys, and every token file, activation chunk and SAE has the same bytes


# -- resume --------------------------------------------------------------------------------------------------

@pytest.fixture
def book_src(tmp_path, chapter_src):
    """Two chapters over the real package: a_collect (chapter 1's activations), b_family (chapter 2's SAEs)."""
    return chapter_src(tmp_path / "src", {
        "a_collect": "import pipeline_run\npipeline_run.collect(cfg)",
        "b_family": "import json, pipeline_run\nprint('METRICS', json.dumps(pipeline_run.family_metrics(cfg)))"})


class Build:
    """``runner.build`` in a subprocess (its own session), with its notebook kernels."""

    def __init__(self, src, out, cache, freeze_after=None):
        env = {**os.environ, "METASAE_CACHE": str(cache),
               "PYTHONPATH": os.pathsep.join([FAULTS, str(artifacts.REPO), os.environ.get("PYTHONPATH", "")])}
        env.pop("METASAE_FREEZE_AFTER", None)
        if freeze_after:
            env["METASAE_FREEZE_AFTER"] = freeze_after
        code = (f"from metasae_utils import runner; import json; "
                f"print(json.dumps([r.__dict__ for r in runner.build('ci', {str(out)!r}, "
                f"{pipeline_run.OVERRIDES!r}, src={str(src)!r})]))")
        self.cache = cache
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)

    def _kernels(self) -> list[int]:
        """Kernels started by this build (jupyter_client puts them in their own session, with JPY_PARENT_PID)."""
        pids = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and f"JPY_PARENT_PID={self.proc.pid}\0".encode() in (d / "environ").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
        return pids

    def wait_for(self, ready, what, timeout=180):
        t0 = time.time()
        while not ready():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"build ended (rc {self.proc.returncode}) before {what}:\n{out}\n{err[-3000:]}")
            if time.time() - t0 > timeout:
                self.kill()
                pytest.fail(f"no {what} within {timeout} s")
            time.sleep(0.05)

    def wait_for_event(self, step, event, name):
        self.wait_for(lambda: any((r["step"], r["event"], r["name"]) == (step, event, name)
                                  for r in artifacts.read_log(self.cache)), f"{step}/{event}/{name}")

    def kill(self):
        """SIGKILL the kernels and the build: as if the machine had killed everything at this instant."""
        for pid in self._kernels():
            os.kill(pid, signal.SIGKILL)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()

    def finish(self):
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err[-3000:]
        return {r["notebook"]: r["status"] for r in json.loads(out.strip().splitlines()[-1])}


def _computed(cache, step=None):
    return [(r["step"], r["key"], r["name"]) for r in artifacts.read_log(cache)
            if r["event"] == "computed" and step in (None, r["step"])]


def _printed_metrics(notebook: Path):
    text = "".join(o.get("text", "") for c in nbformat.read(notebook, 4).cells for o in c.get("outputs", []))
    return json.loads(text.split("METRICS ", 1)[1])


def test_build_killed_three_times_resumes_without_recomputing(reference, book_src, tmp_path, smollm2_entry):
    cache, out = smollm2_entry(tmp_path / "cache"), tmp_path / "out"

    # 1. killed during activation collection: after the 2nd of 3 training chunks
    run = Build(book_src, out, cache, freeze_after="activations/computed/chunk_00001.safetensors")
    run.wait_for_event("activations", "computed", "chunk_00001.safetensors")
    run.kill()
    chunks = [n for _, _, n in _computed(cache, "activations")]
    assert chunks == ["chunk_00000.safetensors", "chunk_00001.safetensors"]
    # what a kill inside a write leaves behind: a temp file, and a file renamed into place without its checksum
    acts_dir = cache / "activations" / _computed(cache, "activations")[0][1]
    (acts_dir / ".chunk_00002.safetensors.tmp999999").write_bytes(b"half a safetensors file")
    (acts_dir / "chunk_00002.safetensors").write_bytes(b"not the real chunk")

    # 2. killed between the notebooks: a_collect finished, b_family not yet computing
    run = Build(book_src, out, cache)
    run.wait_for(lambda: (out / "book" / "a_collect.ipynb").exists(), "a_collect.ipynb")
    run.kill()
    assert not _computed(cache, "saes") and not (out / "book" / "b_family.ipynb").exists()

    # 3. killed during SAE training: after the first of the two SAEs
    run = Build(book_src, out, cache, freeze_after="saes/computed/sae")
    run.wait_for_event("saes", "computed", "sae")
    run.kill()
    assert len(_computed(cache, "saes")) == 1

    # 4. an uninterrupted rerun finishes
    statuses = Build(book_src, out, cache).finish()
    assert statuses == {"a_collect": "reused", "b_family": "ran"}
    counts = Counter(_computed(cache))
    assert counts and max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    assert [n for _, _, n in _computed(cache, "activations")].count("chunk_00002.safetensors") == 1
    assert len(_computed(cache, "saes")) == 2
    assert _printed_metrics(out / "book" / "b_family.ipynb") == reference[0]
    assert _checksums(cache) == _checksums(reference[1])
    # the half-written temp file was never read; `cache prune` removes it
    assert acts_dir / ".chunk_00002.safetensors.tmp999999" in artifacts.stale_temp_files(cache)
