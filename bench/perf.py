"""Performance measurement shared by ``bench/run.py``, ``tests/test_memory.py`` and the Performance page.

* :func:`side_by_side` times several callables interleaved (round robin), so load from other processes hits
  them alike; each one's time is its best round.
* :func:`measure` runs one *case* (a named setup in :data:`CASES` that allocates its inputs and returns the call
  to measure) and reports its wall time and **peak extra memory**: the memory the call needs on top of its inputs.

  - CPU: torch's CPU allocations are invisible to ``tracemalloc``, so the case runs in a fresh Python
    subprocess (no allocator cache from earlier work), the kernel's peak-RSS counter is reset right before the
    call (``/proc/self/clear_refs`` ← ``5``) and read after it (``VmHWM``): extra = VmHWM - VmRSS before.
    Where the counter cannot be reset, VmHWM before the call is the baseline (``method`` says which).
  - CUDA: in-process, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the memory
    allocated before the call.
* :func:`trainer_steps` records the wall time of every SAELens ``SAETrainer`` step of a training run and can
  drive a ``torch.profiler`` schedule from it; :func:`bare_fwd_bwd` is the matmul-only reference of one step.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable
from unittest import mock

import torch

MB = 2**20
RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync(device: str | torch.device | None = None) -> None:
    """Wait for queued CUDA work (no-op on CPU), so that wall-clock timings cover the kernels."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()


def side_by_side(fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: bool = True) -> dict[str, float]:
    """Best wall time (s) of each callable over ``repeats`` rounds; in each round every callable runs once, in
    turn.  ``warmup`` runs each once first (untimed)."""
    if warmup:
        for fn in fns.values():
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


# -- cases: set up inputs (not counted), return the call to measure -------------------------------------------

def _random_rows(n: int, d: int, seed: int, device: str) -> torch.Tensor:
    """(n, d) float32 standard-normal rows, generated on CPU (same values on every device)."""
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(device)


def case_max_cosine(device: str, n_a: int, n_b: int, d: int, chunk_size: int | None = None, budget: int | None = None):
    """``stitching.max_cosine`` of random (n_a, d) and (n_b, d) rows.  ``budget`` (bytes) picks the chunk with the
    package's own rule (``_auto_chunk``) for that budget instead of the default one."""
    from metasae_utils import stitching
    from metasae_utils.stitching.similarity import _auto_chunk
    A, B = _random_rows(n_a, d, 0, device), _random_rows(n_b, d, 1, device)
    if budget is not None:
        chunk_size = _auto_chunk(n_b, torch.float32, budget)
    stitching.max_cosine(A[:8], B[:8])  # warm-up: BLAS / allocator initialisation is not the call's memory
    return lambda: stitching.max_cosine(A, B, chunk_size=chunk_size)


def case_matmul(device: str, n_a: int, n_b: int, d: int):
    """The bare ``A @ B.T`` of the same shapes: the full (n_a, n_b) product (the memory reference)."""
    A, B = _random_rows(n_a, d, 0, device), _random_rows(n_b, d, 1, device)
    _ = A[:8] @ B[:8].T
    return lambda: A @ B.T


def case_interpolate(device: str, small: str, large: str, acts: str):
    """``stitching.interpolate`` (greedy) between two saved SAEs (``training.save_sae`` folders) on activations
    saved with ``torch.save`` ((n, d_in) tensor)."""
    from metasae_utils import stitching, training
    s, lg = training.load_sae(small, device), training.load_sae(large, device)
    x = torch.load(acts, map_location=device)
    stitching.interpolate(s, lg, x[:32], progress=False)  # warm-up: imports (scipy) and first-call set-up
    return lambda: stitching.interpolate(s, lg, x, progress=False)


CASES = {"max_cosine": case_max_cosine, "matmul": case_matmul, "interpolate": case_interpolate}


# -- peak memory -------------------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), flags=re.M)
    return int(m.group(1))


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _best_of(fn, repeats: int, device: str) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _measure_here(case: str, device: str, kwargs: dict, repeats: int = 1) -> dict:
    """Set up ``case`` here and measure ``repeats`` calls (in a fresh subprocess on CPU, see :func:`measure`)."""
    fn = CASES[case](device, **kwargs)
    gc.collect()
    sync(device)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        seconds = _best_of(fn, repeats, device)
        return {"seconds": seconds, "peak_extra_bytes": torch.cuda.max_memory_allocated() - base,
                "method": "torch.cuda.max_memory_allocated"}
    reset = _reset_peak_rss()
    base_kb = _status_kb("VmRSS") if reset else _status_kb("VmHWM")
    seconds = _best_of(fn, repeats, device)
    return {"seconds": seconds, "peak_extra_bytes": (_status_kb("VmHWM") - base_kb) * 1024,
            "method": "peak RSS (VmHWM reset before the call)" if reset else "peak RSS (VmHWM, not resettable)"}


def measure(case: str, device: str | None = None, repeats: int = 1, **kwargs) -> dict:
    """Wall time (best of ``repeats`` calls) and peak extra memory (over all of them) of the call that
    ``CASES[case](device, **kwargs)`` sets up.

    Returns ``{"seconds", "peak_extra_bytes", "method"}``.  On CPU the case runs in a fresh subprocess with the
    same interpreter and this package first on ``sys.path`` (kwargs must be JSON-able); on CUDA in-process.
    """
    device = device or default_device()
    if case not in CASES:
        raise ValueError(f"case {case!r} is not one of {sorted(CASES)}")
    if torch.device(device).type == "cuda":
        return _measure_here(case, device, kwargs, repeats)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    code = "import json, sys; from bench import perf; print(json.dumps(perf._measure_here(*json.loads(sys.argv[1]))))"
    out = subprocess.run([sys.executable, "-c", code, json.dumps([case, device, kwargs, repeats])], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"measuring {case} {kwargs} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- training steps ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def trainer_steps(profiler=None):
    """Inside the block, every ``SAETrainer.step`` (SAELens) or ``FastTrainer.step`` (the sparse step) appends ``(start, end)`` perf-counter times to the
    yielded list, labelled ``SAETrainer.step`` in profiles; ``profiler.step()`` is called after each step (so a
    ``torch.profiler.schedule`` counts training steps)."""
    from sae_lens.training.sae_trainer import SAETrainer

    from metasae_utils.training.lean import FastTrainer
    marks = []

    def timed(original):
        def step(self, batch):
            sync()
            t0 = time.perf_counter()
            with torch.profiler.record_function("SAETrainer.step"):
                out = original(self, batch)
            sync()
            marks.append((t0, time.perf_counter()))
            if profiler is not None:
                profiler.step()
            return out
        return step

    with mock.patch.object(SAETrainer, "step", timed(SAETrainer.step)), \
            mock.patch.object(FastTrainer, "step", timed(FastTrainer.step)):
        yield marks


def step_seconds(marks: list[tuple[float, float]]) -> tuple[float, float]:
    """From :func:`trainer_steps` marks (>= 3 steps; the first is a warm-up): ``(loop, inside)`` = seconds per
    iteration of the training loop (start to start: data, step, bookkeeping) and median seconds inside ``step``."""
    starts = [s for s, _ in marks[1:]]
    inside = sorted(e - s for s, e in marks[1:])
    return (starts[-1] - starts[0]) / (len(starts) - 1), inside[len(inside) // 2]


def bare_fwd_bwd(batch: int, d_in: int, d_sae: int, device: str | None = None, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> Callable[[], None]:
    """The five matmuls of one SAE training step, nothing else: forward ``h = x W_enc`` (batch, d_sae) and
    ``y = h W_dec`` (batch, d_in); backward ``dW_dec = h^T dy``, ``dh = dy W_dec^T``, ``dW_enc = x^T dh``.
    Outputs go to preallocated buffers of ``dtype`` (bf16: the products autocast would run).  Returns the call."""
    device = device or default_device()
    x, dy = _random_rows(batch, d_in, seed, device).to(dtype), _random_rows(batch, d_in, seed + 1, device).to(dtype)
    W_enc = _random_rows(d_in, d_sae, seed + 2, device).to(dtype)
    W_dec = _random_rows(d_sae, d_in, seed + 3, device).to(dtype)
    h, dh = (torch.empty(batch, d_sae, device=device, dtype=dtype) for _ in range(2))
    y, g_enc, g_dec = torch.empty_like(x), torch.empty_like(W_enc), torch.empty_like(W_dec)

    def run():
        torch.mm(x, W_enc, out=h)
        torch.mm(h, W_dec, out=y)
        torch.mm(h.T, dy, out=g_dec)
        torch.mm(dy, W_dec.T, out=dh)
        torch.mm(x.T, dh, out=g_enc)
    return run


def flops_fwd_bwd(batch: int, d_in: int, d_sae: int) -> int:
    """Floating-point operations of :func:`bare_fwd_bwd`: five (batch x d_in x d_sae) matmuls."""
    return 5 * 2 * batch * d_in * d_sae
