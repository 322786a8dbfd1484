"""Benchmarks: every row is a ratio measured side by side in one run, on whatever device is present.

    python bench/run.py [--preset offline] [--only collect memory ...]

Prints one table and writes bench/results/<device>-<preset>.json.  Goals (from the issues) are printed beside
each ratio; a miss is reported with its reason, never hidden.  Rows with a ``table`` (memory, scaling, book)
carry their measurements in the JSON, which the book's Performance page reads.  Memory is the peak *extra*
memory of a call (``bench/perf.py``: ``measure``: peak RSS of a fresh subprocess on CPU,
``torch.cuda.max_memory_allocated`` on CUDA).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repository's root
from bench import fast_step, perf, precision_rows  # noqa: E402
from bench.table import row  # noqa: E402
from metasae_utils import artifacts, book, families, presets, runner, sources  # noqa: E402

RESULTS = perf.RESULTS
MB = 2**20
BOOK_BUDGET_S = 20 * 60
FAMILY_SHORT_STEPS = 30  # steps per width actually trained by the family row (the rest is extrapolated)
SCALING_TOKENS = 10_000  # held-out tokens for the interpolate scaling (its cost is ~linear in them)


def _family(cfg, prep):
    return families.load_family(cfg, prep.model.cfg.d_model, prep.train.acts, prep.train.key, progress=False,
                                eval_acts=prep.eval.acts)


# -- rows ----------------------------------------------------------------------------------------------------

def _block_rows(n_a, n_b, chunk) -> int:
    """Rows of max_cosine's similarity block: ``chunk`` or the package's rule for its budget."""
    from metasae_utils.stitching.similarity import _auto_chunk
    return min(n_a, chunk or _auto_chunk(n_b, torch.float32))


def _predicted_bytes(n_a, n_b, d, chunk) -> int:
    """max_cosine's own allocations: one (rows, n_b) block, normalised copies of both inputs, values+indices."""
    return 4 * (_block_rows(n_a, n_b, chunk) * n_b + (n_a + n_b) * d) + 12 * n_a


def bench_memory(cfg, prep) -> list[dict]:
    """Peak extra memory of max_cosine vs its chunk size, and as n_a x n_b grows (default chunk rule)."""
    from metasae_utils import stitching
    d, sweep = 64, []
    configs = [(16384, 16384, c) for c in (512, 1024, 2048, None)] + [(8192, 8192, None), (16384, 32768, None)]
    for n_a, n_b, chunk in tqdm(configs, desc="max_cosine memory", leave=False):
        r = perf.measure("max_cosine", n_a=n_a, n_b=n_b, d=d, chunk_size=chunk)
        sweep.append({"n_a": n_a, "n_b": n_b, "d": d, "chunk_size": chunk or "auto",
                      "chunk_rows": _block_rows(n_a, n_b, chunk), "seconds": r["seconds"],
                      "peak_mb": r["peak_extra_bytes"] / MB, "predicted_mb": _predicted_bytes(n_a, n_b, d, chunk) / MB,
                      "full_matrix_mb": 4 * n_a * n_b / MB, "method": r["method"]})
    ref = perf.measure("matmul", n_a=16384, n_b=16384, d=d)
    over = max(s["peak_mb"] / s["predicted_mb"] for s in sweep)
    auto = sorted((s for s in sweep if s["chunk_size"] == "auto"), key=lambda s: s["n_a"] * s["n_b"])
    growth = auto[-1]["peak_mb"] / auto[0]["peak_mb"]
    grow_x = auto[-1]["n_a"] * auto[-1]["n_b"] / (auto[0]["n_a"] * auto[0]["n_b"])
    by_chunk = ", ".join(f"{s['chunk_size']}: {s['peak_mb']:.0f}" for s in sweep[:4])
    check = (f"method check: bare 16384x16384 matmul measured {ref['peak_extra_bytes'] / MB:.0f} MB for its "
             f"{4 * 16384 ** 2 / MB:.0f} MB product ({ref['method']})")
    return [
        row("memory", "max_cosine peak extra memory / (block + copies), worst chunk", over, (None, 1.25),
            f"peak MB by chunk rows (16384x16384x{d}, full matrix {4 * 16384 ** 2 / MB:.0f} MB) {by_chunk}; {check}",
            why="an allocation beyond the similarity block and the normalised copies", table=sweep),
        row("memory", f"max_cosine peak memory growth when n_a*n_b grows x{grow_x:g} (auto chunk)", growth,
            (None, 1.25), " -> ".join(f"{s['n_a']}x{s['n_b']}: {s['peak_mb']:.0f} MB" for s in auto)
            + f" (similarity block budget {stitching.SIM_BUDGET_BYTES / MB:.0f} MB)",
            why="memory grows with the similarity matrix: the chunking is not bounding it"),
    ]


def _training_row(bench, name, train, batch, d_in, d_sae, rounds=3) -> dict:
    """Seconds per training-loop iteration of ``train()`` (a short SAELens run) vs :func:`perf.bare_fwd_bwd` of
    the same shapes, in alternating rounds (best of each), then one profiled run: where the step's time goes."""
    bare = perf.bare_fwd_bwd(batch, d_in, d_sae)
    t_bare = t_loop = t_inside = float("inf")
    for _ in tqdm(range(rounds), desc=name, leave=False):
        t_bare = min(t_bare, perf.side_by_side({"bare": bare}, repeats=3)["bare"])
        with perf.trainer_steps() as marks:
            train()
        loop, inside = perf.step_seconds(marks)
        t_loop, t_inside = min(t_loop, loop), min(t_inside, inside)
    prof = _profile_steps(train)
    gflops = perf.flops_fwd_bwd(batch, d_in, d_sae) / 1e9
    detail = (f"{1e3 * t_loop:.0f} ms per loop iteration ({1e3 * t_inside:.0f} ms inside SAETrainer.step) vs "
              f"{1e3 * t_bare:.0f} ms for the 5 bare matmuls ({gflops:.1f} GFLOP, batch {batch}, {d_in}x{d_sae}); "
              f"{batch / t_loop:,.0f} samples/s. Profile per step: {prof['summary']}")
    return row(bench, name, t_bare / t_loop, None, detail, samples_per_s=batch / t_loop, profile=prof)


def _profile_steps(train, active=4) -> dict:
    """torch.profiler over ``active`` training steps (after one skipped and one warm-up step).  Per step, from the
    ops inside ``SAETrainer.step``: time in matmuls (and their count), in the Adam step (with its children) and in
    everything else, and the top ops by self time.  Times under the profiler run slower than unprofiled."""
    from torch.profiler import ProfilerActivity, profile, schedule
    cuda = torch.cuda.is_available()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts, schedule=schedule(wait=1, warmup=1, active=active, repeat=1)) as prof:
        with perf.trainer_steps(prof):
            train()
    self_t = "self_device_time_total" if cuda else "self_cpu_time_total"
    total_t = "device_time_total" if cuda else "cpu_time_total"
    events = prof.events()
    steps = [e.time_range for e in events if e.name == "SAETrainer.step"]
    inside = [e for e in events if e.name != "SAETrainer.step"
              and any(r.start <= e.time_range.start <= r.end for r in steps)]
    ms = lambda us: us / 1e3 / len(steps)  # noqa: E731  (profiler times are µs summed over the steps)
    by_op: dict[str, list] = {}
    for e in inside:
        by_op.setdefault(e.name, [0.0, 0])
        by_op[e.name][0] += getattr(e, self_t)
        by_op[e.name][1] += 1
    total = ms(sum(t for t, _ in by_op.values()))
    mm = [by_op.get(k, [0.0, 0]) for k in ("aten::mm", "aten::addmm", "aten::bmm")]
    mm_ms, n_mm = ms(sum(t for t, _ in mm)), sum(n for _, n in mm) / len(steps)
    adam = ms(sum(getattr(e, total_t) for e in inside if e.name.startswith("Optimizer.step")))
    top = sorted(by_op.items(), key=lambda kv: -kv[1][0])[:8]
    out = {"profiled_steps": len(steps), "step_ms": total, "matmul_ms": mm_ms, "matmuls_per_step": n_mm,
           "adam_ms": adam, "other_ms": total - mm_ms - adam,
           "top_ops": [{"op": k, "ms": ms(t), "calls": n / len(steps)} for k, (t, n) in top]}
    out["summary"] = (f"matmuls {mm_ms:.0f} ms ({n_mm:g} calls), Adam {adam:.0f} ms, everything else "
                      f"{out['other_ms']:.0f} ms of {total:.0f} ms (profiled); top ops "
                      + ", ".join(f"{t['op']} {t['ms']:.0f}" for t in out["top_ops"][:6]))
    return out


def bench_train_step(cfg, prep) -> list[dict]:
    """One SAE training step (SAETrainer, the family's largest width) vs its bare fwd+bwd matmuls."""
    from metasae_utils import training
    width, d_in = cfg.widths[-1], prep.model.cfg.d_model
    window = min(1000, max(1, families.n_steps(cfg, len(prep.train.acts)) // 10))  # the real run's (train_sae)
    train = lambda: training.train_sae(  # noqa: E731
        prep.train.acts, cfg.architecture, width, n_steps=8, batch_size=cfg.train_batch_size, lr=cfg.lr, seed=0,
        k=cfg.k, l1_coefficient=cfg.l1_coefficient, device=perf.default_device(), progress=False,
        dead_feature_window=window, fast_step=False)
    return [_training_row("train_step", f"{cfg.architecture} SAETrainer step / bare fwd+bwd matmuls ({width})", train,
                          cfg.train_batch_size, d_in, width)]


def bench_meta(cfg, prep) -> list[dict]:
    """meta-SAE training throughput (meta.train_meta_sae on the largest SAE's decoder rows) vs bare matmuls."""
    from metasae_utils import meta
    base = _family(cfg, prep)[-1]
    decoder = base.sae.W_dec.detach()
    d_meta = max(1, round(cfg.meta_fraction * base.width))
    train = lambda: meta.train_meta_sae(  # noqa: E731  (dead-latent window of the real run, as in train_sae)
        decoder, d_meta, cfg.meta_k, steps=8, batch_size=cfg.meta_batch_size, lr=cfg.meta_lr, seed=0,
        device=perf.default_device(), progress=False, dead_feature_window=min(1000, max(1, cfg.meta_steps // 10)))
    r = _training_row("meta", f"meta-SAE train step / bare fwd+bwd matmuls ({decoder.shape[0]} rows -> {d_meta})",
                      train, cfg.meta_batch_size, decoder.shape[1], d_meta)
    r["detail"] = f"{r['samples_per_s']:,.0f} decoder rows/s; " + r["detail"]
    return [r]


def bench_insertion(cfg, prep) -> list[dict]:
    """insertion_deltas (one vectorised pass) vs the naive loop insert_latents + evaluate (goal >= 50x),
    alternating; the naive loop runs on a sample of latents and is extrapolated to all of them."""
    from metasae_utils import evaluate, stitching
    members = _family(cfg, prep)
    small, large = members[-2].sae, members[-1].sae
    acts = prep.eval.acts
    sample = torch.arange(0, large.cfg.d_sae, max(1, large.cfg.d_sae // 12))
    base = evaluate.reconstruction_metrics(small, acts)["mse"]
    out = {}

    def vectorised():
        out["res"] = stitching.insertion_deltas(small, large, acts)

    def naive():
        out["naive"] = torch.tensor([evaluate.reconstruction_metrics(
            stitching.insert_latents(small, large, [int(i)]), acts)["mse"] - base for i in sample])
    t = perf.side_by_side({"vectorised": vectorised, "naive": naive}, repeats=2, warmup=False)
    t_naive = t["naive"] / len(sample) * large.cfg.d_sae
    diff = (out["naive"] - torch.as_tensor(out["res"].delta_mse)[sample].double()).abs().max().item()
    return [row("insertion", f"insertion_deltas / naive loop ({large.cfg.d_sae} latents, {len(acts):,} tokens)",
                t_naive / t["vectorised"], (50, None),
                f"{t['vectorised']:.1f} s vs {t_naive:.0f} s (naive extrapolated from {len(sample)} latents); "
                f"max |ΔMSE difference| {diff:.2e}", why="the vectorised pass is not amortising the encoding")]


@contextlib.contextmanager
def _fresh_cache():
    """A temporary, empty artifact cache (METASAE_CACHE) for the block: nothing is reused from the real one."""
    old = os.environ.get("METASAE_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METASAE_CACHE"] = tmp
        try:
            yield
        finally:
            os.environ.pop("METASAE_CACHE") if old is None else os.environ.__setitem__("METASAE_CACHE", old)


def bench_family(cfg, prep) -> list[dict]:
    """Time to train the preset's whole family from scratch (a fresh cache), vs the 20-minute book budget.  Runs
    longer than FAMILY_SHORT_STEPS steps per width are estimated: the wall time of a run of FAMILY_SHORT_STEPS
    steps per width (set-up, saving and loading included) plus the remaining steps at each width's measured
    steady step time."""
    n = len(prep.train.acts)
    n_full = families.n_steps(cfg, n)
    short = cfg if n_full <= FAMILY_SHORT_STEPS else dataclasses.replace(
        cfg, train_epochs=cfg.train_epochs * FAMILY_SHORT_STEPS / n_full)
    n_short = families.n_steps(short, n)
    with _fresh_cache(), perf.trainer_steps() as marks:
        t0 = time.perf_counter()
        families.train_family(short, prep.train.acts, prep.train.key, device=perf.default_device(), progress=False)
        wall = time.perf_counter() - t0
    step_s = [perf.step_seconds(marks[i * n_short:(i + 1) * n_short])[0] if n_short >= 3 else 0.0
              for i in range(len(cfg.widths))]
    seconds = wall + (n_full - n_short) * sum(step_s)
    how = ("measured" if short is cfg else f"estimated: {wall:.0f} s for {n_short} steps per width + "
           f"{n_full - n_short} more steps at " + ", ".join(f"{1e3 * s:.0f}" for s in step_s) + " ms/step")
    return [row("family", f"train {cfg.architecture} family {list(cfg.widths)} / 20-min book budget",
                seconds / BOOK_BUDGET_S, (None, 1.0),
                f"{seconds:.0f} s for {len(cfg.widths)} SAEs x {n_full} steps on {n:,} activations, fresh cache "
                f"({how})", why="training alone exceeds the book's budget")]


def _slope(points, x, y) -> float:
    """Least-squares slope of log(y) against log(x)."""
    lx = [math.log(p[x]) for p in points]
    ly = [math.log(p[y]) for p in points]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def bench_scaling(cfg, prep) -> list[dict]:
    """Time and peak extra memory of max_cosine and interpolate for each adjacent pair (w/2 -> w) as the family's
    largest width w doubles; max_cosine (whose cost does not depend on the values) continues on random rows of
    the same d past the family."""
    from metasae_utils import training
    members = _family(cfg, prep)
    d = prep.model.cfg.d_model
    w = members[-1].width
    widths = [m.width for m in members[1:]] + [w * 2, w * 4]
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        acts = prep.eval.acts[:SCALING_TOKENS]
        torch.save(acts.clone(), Path(tmp) / "acts.pt")
        for m in members:
            training.save_sae(m.sae, Path(tmp) / str(m.width))
        for width in tqdm(widths, desc="scaling", leave=False):
            n_a, n_b = width, width // 2
            mc = perf.measure("max_cosine", repeats=1 if width > w else 3, n_a=n_a, n_b=n_b, d=d)
            pt = {"width": width, "pair": f"{n_b}->{n_a}", "n_a_x_n_b": n_a * n_b, "in_family": width <= w,
                  "max_cosine_s": mc["seconds"], "max_cosine_mb": mc["peak_extra_bytes"] / MB,
                  "full_matrix_mb": 4 * n_a * n_b / MB, "interpolate_s": None, "interpolate_mb": None, "n_steps": None}
            if width <= w:
                it = perf.measure("interpolate", small=str(Path(tmp) / str(n_b)), large=str(Path(tmp) / str(n_a)),
                                  acts=str(Path(tmp) / "acts.pt"))
                pt.update(interpolate_s=it["seconds"], interpolate_mb=it["peak_extra_bytes"] / MB)
            table.append(pt)
    big = table[-3:]
    slope_mc = _slope(big, "n_a_x_n_b", "max_cosine_s")
    fam = [p for p in table if p["in_family"]]
    slope_it = _slope(fam, "n_a_x_n_b", "interpolate_s")
    fmt = lambda key, unit: ", ".join(f"{p['pair']}: {p[key]:.2f}{unit}" for p in table if p[key] is not None)  # noqa
    return [
        row("scaling", "max_cosine time vs n_a*n_b (log-log slope, 3 largest)", slope_mc, (0.8, 1.2),
            f"{fmt('max_cosine_s', ' s')}; peak MB {fmt('max_cosine_mb', '')} (d = {d}, eval on CPU subprocess)",
            why="fixed overheads dominate at these sizes, or the chunk loop is not linear", table=table),
        row("scaling", f"interpolate time vs n_a*n_b (log-log slope, family pairs, {len(acts):,} tokens)",
            slope_it, None, f"{fmt('interpolate_s', ' s')}; peak MB {fmt('interpolate_mb', '')}"),
    ]


def bench_book(cfg, prep) -> list[dict]:
    """Per-chapter wall times recorded by the last `make book` (book/*.ipynb metadata ``metasae_wall_time_s``,
    written by the runner), with which run they come from; the bench does not re-run the book."""
    table, events = [], {}
    for stem in runner.chapters():
        path = artifacts.REPO / "book" / f"{stem}.ipynb"
        if not path.exists():
            table.append({"notebook": stem, "seconds": None, "note": "not executed yet"})
            continue
        nb = json.loads(path.read_text())
        pm = nb["metadata"].get("papermill", {})
        text = json.dumps([c.get("outputs", []) for c in nb["cells"][-1:]])
        commit = re.search(r"<b>commit</b> <code>([^<]*)</code>", text)
        ran_preset = pm.get("parameters", {}).get("preset")
        table.append({"notebook": stem, "seconds": nb["metadata"].get("metasae_wall_time_s"), "preset": ran_preset,
                      "start": pm.get("start_time"), "end": pm.get("end_time"),
                      "commit": commit.group(1) if commit else None})
    done = [t for t in table if t["seconds"] is not None]
    if done:  # what the artifact cache did during that run (reused = warm cache)
        from datetime import datetime
        lo, hi = (datetime.fromisoformat(min(t["start"] for t in done)).timestamp(),
                  datetime.fromisoformat(max(t["end"] for t in done)).timestamp())
        log = artifacts.cache_root() / "log.jsonl"
        for line in (log.read_text().splitlines() if log.exists() else []):
            e = json.loads(line)
            if lo <= e.get("t", 0) <= hi:
                events[e["event"]] = events.get(e["event"], 0) + 1
    total = sum(t["seconds"] for t in done)
    presets_run = sorted({t["preset"] for t in done})
    timings = [artifacts.REPO / "_build" / f"timings-{p}.json" for p in presets_run]
    src = (f"book/*.ipynb metadata, run {done[0]['start'][:19]} to {done[-1]['end'][:19]} UTC on preset "
           f"{presets_run}, commit {sorted({t['commit'] for t in done})}, artifact cache "
           f"during the run: {events or 'no log'}" if done else "no executed notebooks")
    missing = [t["notebook"] for t in table if t["seconds"] is None]
    detail = (", ".join(f"{t['notebook'][:2]}: {t['seconds']:.0f} s" for t in done) + f"; {src}"
              + (f"; not executed yet: {missing}" if missing else "")
              + "".join(f"; {t.relative_to(artifacts.REPO)} agrees: {_timings_agree(t, done)}"
                        for t in timings if t.exists()))
    return [row("book", f"make book chapters ({', '.join(presets_run)}, recorded run) / 20-min budget", total / BOOK_BUDGET_S,
                (None, 1.0), detail, why="the chapters take longer than the budget", table=table)]


def _timings_agree(path: Path, done: list[dict]) -> bool:
    """Whether the runner's timings file lists the same per-notebook seconds (to 0.1 s) as the notebooks."""
    ran = {t["notebook"]: t["seconds"] for t in json.loads(path.read_text()) if t["status"] == "ran"}
    return all(abs(ran.get(t["notebook"], -1) - t["seconds"]) < 0.1 for t in done)


BENCHES = {"collect": precision_rows.bench_collect, "max_cosine": precision_rows.bench_max_cosine_fastest,
           "memory": bench_memory, "precision": precision_rows.bench_precision,
           "threads": precision_rows.bench_threads, "train_step": bench_train_step,
           "fast_step": fast_step.bench_fast_step, "branches": fast_step.bench_branches,
           "family_speedup": fast_step.bench_family_speedup, "density": fast_step.bench_density,
           "meta": bench_meta, "insertion": bench_insertion, "family": bench_family, "scaling": bench_scaling,
           "book": bench_book}


def format_row(r: dict) -> str:
    verdict = {True: "met", False: "MISSED", None: ""}[r["met"]]
    line = f"{r['name']:<78} {r['ratio']:>9.3f}  goal {r['goal']:<10} {verdict:<6}  ({r['detail']})"
    return line + (f"\n{'':<78} MISSED because: {r['why']} (load average {r['load_avg_1min']} on "
                   f"{os.cpu_count()} cores)" if r["met"] is False else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--only", nargs="+", choices=list(BENCHES))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cfg = presets.resolve(args.preset)
    prep = sources.prepare(cfg, progress=False)
    rows = []
    for name in tqdm(args.only or list(BENCHES), desc="bench", unit="bench"):
        for r in BENCHES[name](cfg, prep):
            rows.append(r)
            tqdm.write(format_row(r))
    wall = time.perf_counter() - t0
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu{torch.get_num_threads()}"
    print(f"\n{'row':<78} {'ratio':>9}  goal\n" + "\n".join(format_row(r) for r in rows))
    print(f"\n{sum(r['met'] is True for r in rows)} goals met, {sum(r['met'] is False for r in rows)} missed, "
          f"{sum(r['met'] is None for r in rows)} reported; bench wall time {wall:.0f} s on {device}")
    out = RESULTS / f"{device.replace(' ', '_')}-{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and out.exists():  # a partial run replaces only its own rows
        ran = set(args.only)
        rows = [r for r in json.loads(out.read_text())["rows"] if r["bench"] not in ran] + rows
        rows.sort(key=lambda r: list(BENCHES).index(r["bench"]))
    out.write_text(json.dumps({"preset": args.preset, "device": device, "platform": platform.platform(),
                               "versions": book.versions(), "git_commit": book.git_commit(),
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "wall_time_s": round(wall, 1), "only": args.only, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
