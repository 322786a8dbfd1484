"""Bench rows for compute precision (issue 13): bf16 vs fp32 side by side, and the pipeline's ratios re-based on
the machine's fastest dtype (bf16 where it is faster, fp32 where it is not, e.g. a CPU without AMX).

Every row times both sides in alternating rounds within one run and keeps each side's best, so that load from
other processes hits both alike.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from tqdm.auto import tqdm

from bench import perf
from bench.table import row
from metasae_utils import precision, sources

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _machine() -> str:
    """Why bf16 is or is not the fast path here, in words (for details and miss reasons)."""
    dtype, why = precision.resolve("auto", perf.default_device())
    return f"auto precision here: {dtype} ({why})"


def _step_seconds(train, rounds: int) -> dict[str, float]:
    """Best seconds per training-loop iteration of ``train(autocast)`` for fp32 and bf16, alternating rounds."""
    best = {"float32": float("inf"), "bfloat16": float("inf")}
    for _ in tqdm(range(rounds), desc="bf16 vs fp32 steps", leave=False):
        for name in best:
            with perf.trainer_steps() as marks:
                train(name == "bfloat16")
            best[name] = min(best[name], perf.step_seconds(marks)[0])
    return best


def _bare_seconds(batch: int, d_in: int, d_sae: int) -> dict[str, float]:
    """Best seconds of the five bare fwd+bwd matmuls in each dtype."""
    calls = {n: perf.bare_fwd_bwd(batch, d_in, d_sae, dtype=dt) for n, dt in DTYPES.items()}
    return perf.side_by_side(calls, repeats=3)


def bench_precision(cfg, prep, rounds: int = 3) -> list[dict]:
    """bf16 / fp32 for the SAE and meta-SAE train steps (goal >= 3x, met only where bf16 is the fast path), then the
    SAE train step at the auto precision against the fastest bare matmuls (goal >= 0.6)."""
    from metasae_utils import families, meta, training
    width, d_in = cfg.widths[-1], prep.model.cfg.d_model
    window = min(1000, max(1, len(prep.train.acts) // cfg.train_batch_size // 10))
    sae_train = lambda ac: training.train_sae(  # noqa: E731
        prep.train.acts, cfg.architecture, width, n_steps=8, batch_size=cfg.train_batch_size, lr=cfg.lr, seed=0,
        k=cfg.k, l1_coefficient=cfg.l1_coefficient, device=perf.default_device(), progress=False,
        dead_feature_window=window, autocast=ac)
    sae = _step_seconds(sae_train, rounds)
    base = families.load_family(cfg, d_in, prep.train.acts, prep.train.key, progress=False,
                                eval_acts=prep.eval.acts)[-1]
    decoder, d_meta = base.sae.W_dec.detach(), max(1, round(cfg.meta_fraction * base.width))
    meta_train = lambda ac: meta.train_meta_sae(  # noqa: E731
        decoder, d_meta, cfg.meta_k, steps=8, batch_size=cfg.meta_batch_size, lr=cfg.meta_lr, seed=0,
        device=perf.default_device(), progress=False, autocast=ac,
        dead_feature_window=min(1000, max(1, cfg.meta_steps // 10)))
    mt = _step_seconds(meta_train, rounds)
    bare = _bare_seconds(cfg.train_batch_size, d_in, width)
    auto = precision.resolve("auto", perf.default_device())[0]
    why = f"bf16 is not the fast path on this machine: {_machine()}"
    rows = [
        row("precision", f"bf16 / fp32 SAE train step ({cfg.architecture} {width}, autocast)",
             sae["float32"] / sae["bfloat16"], (3.0, None),
             f"{1e3 * sae['float32']:.0f} ms fp32 vs {1e3 * sae['bfloat16']:.0f} ms bf16 per step; bare matmuls "
             f"{1e3 * bare['float32']:.0f} ms fp32 vs {1e3 * bare['bfloat16']:.0f} ms bf16; {_machine()}", why=why),
        row("precision", f"bf16 / fp32 meta-SAE train step ({decoder.shape[0]} rows -> {d_meta}, autocast)",
             mt["float32"] / mt["bfloat16"], (3.0, None),
             f"{1e3 * mt['float32']:.0f} ms fp32 vs {1e3 * mt['bfloat16']:.0f} ms bf16 per step", why=why),
        row("precision", f"SAE train step at the auto precision ({auto}) / fastest bare fwd+bwd "
                          f"({min(bare, key=bare.get)})", min(bare.values()) / sae[auto], (0.6, None),
             f"{1e3 * sae[auto]:.0f} ms per step vs {1e3 * min(bare.values()):.0f} ms for the bare matmuls",
             why="SAELens runs a sixth matmul (the b_dec gradient), elementwise work and Adam beside the products"),
    ]
    return rows


def bench_collect(cfg, prep, rounds: int = 3) -> list[dict]:
    """Collection in each model dtype (reported), and collection at the auto dtype vs the fastest bare forward to
    the hook layer (goal >= 0.85)."""
    models = {"float32": prep.model if sources.model_dtype(cfg) == "float32" else None,
              "bfloat16": prep.model if sources.model_dtype(cfg) == "bfloat16" else None}
    for name in models:
        if models[name] is None:
            models[name] = sources.load_model(dataclasses.replace(cfg, dtype=name))
    best = {n: {"forward_tok_s": 0.0, "collect_tok_s": 0.0} for n in models}
    for _ in range(rounds):
        for n, m in models.items():
            r = sources.measure_throughput(m, cfg, prep.train.tokens, repeats=1)
            for k in best[n]:
                best[n][k] = max(best[n][k], r[k])
    auto = sources.model_dtype(cfg)
    fastest = max(best, key=lambda n: best[n]["forward_tok_s"])
    return [
        row("collect", "bf16 / fp32 activation collection (tokens/s)",
             best["bfloat16"]["collect_tok_s"] / best["float32"]["collect_tok_s"], None,
             f"{best['bfloat16']['collect_tok_s']:,.0f} vs {best['float32']['collect_tok_s']:,.0f} tok/s; "
             f"{_machine()}"),
        row("collect", f"activation collection at the auto dtype ({auto}) / fastest bare forward ({fastest})",
             best[auto]["collect_tok_s"] / best[fastest]["forward_tok_s"], (0.85, None),
             f"{best[auto]['collect_tok_s']:,.0f} vs {best[fastest]['forward_tok_s']:,.0f} tok/s",
             why="the auto dtype is not the fastest here, or collection adds work beyond the forward"),
    ]


def bench_max_cosine_fastest(cfg, prep, n_a: int = 16384, n_b: int = 8192) -> list[dict]:
    """max_cosine at the auto precision vs the fastest bare matmul of the same shapes (goal >= 0.7)."""
    from metasae_utils import stitching
    d = prep.model.cfg.d_model
    device = perf.default_device()
    A, B = perf._random_rows(n_a, d, 0, device), perf._random_rows(n_b, d, 1, device)
    blk = 2048
    mats = {n: (A.to(dt), B.to(dt)) for n, dt in DTYPES.items()}
    calls = {f"matmul {n}": (lambda a=a, b=b: [a[i:i + blk] @ b.T for i in range(0, n_a, blk)])
             for n, (a, b) in mats.items()}
    calls.update({f"max_cosine {p}": (lambda p=p: stitching.max_cosine(A, B, precision=p)) for p in DTYPES})
    t = perf.side_by_side(calls, repeats=3)
    auto = precision.resolve("auto", device)[0]
    fastest = min(DTYPES, key=lambda n: t[f"matmul {n}"])
    detail = ", ".join(f"{k} {v:.3f} s" for k, v in t.items()) + f"; {_machine()}"
    return [row("max_cosine", f"max_cosine at the auto precision ({auto}) / fastest bare matmul ({fastest}, "
                               f"{n_a}x{n_b}x{d})", t[f"matmul {fastest}"] / t[f"max_cosine {auto}"], (0.7, None),
                 detail, why="normalisation, the row-max reduction (and in bf16 the exact re-check) cost more "
                             "than the product at these shapes")]


def _busy(seconds: float):
    """Another torch job on the machine for ``seconds``: matrix products on every core (what a second build or
    test run does here)."""
    import subprocess
    import sys
    code = ("import time, torch\na = torch.randn(1024, 1024)\nt = time.time()\n"
            f"while time.time() - t < {seconds}: a @ a")
    return subprocess.Popen([sys.executable, "-c", code])


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bench_threads(cfg, prep) -> list[dict]:
    """1 thread vs every thread (torch's default) for a small and a large training step's products, on a quiet
    machine and beside another torch job: would choosing the thread count make the book robust to other jobs?"""
    shapes = {"small (1024x128 @ 128x256)": (1024, 128, 256),
              f"large (1024x{prep.model.cfg.d_model} @ {prep.model.cfg.d_model}x{cfg.widths[-1]})":
                  (1024, prep.model.cfg.d_model, cfg.widths[-1])}
    n_all = torch.get_num_threads()
    rows = []
    for load in ("quiet", "another torch job running"):
        busy = _busy(600) if load != "quiet" else None
        try:
            for label, (b, d, w) in shapes.items():
                call = perf.bare_fwd_bwd(b, d, w)
                t = {}
                for n in (1, n_all, 1, n_all):
                    with _threads(n):
                        t[n] = min(t.get(n, float("inf")), perf.side_by_side({"x": call}, repeats=5)["x"])
                rows.append(row("threads", f"{label}, {load}: step on 1 thread / on {n_all} (default)",
                                t[1] / t[n_all], None, f"{1e3 * t[1]:.1f} ms on 1 thread vs {1e3 * t[n_all]:.1f} ms "
                                                       f"on {n_all}"))
        finally:
            if busy is not None:
                busy.kill()
    return rows
