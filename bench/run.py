"""Benchmarks: every row is a ratio measured side by side in one run, on whatever device is present.

    python bench/run.py [--preset offline] [--only collect family]

Prints one table and writes bench/results/<device>-<preset>.json.  Goals (from the issues) are printed beside
each ratio; a miss is reported, never hidden.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from metasae_utils import book, families, presets, sources

RESULTS = Path(__file__).resolve().parent / "results"


def bench_collect(cfg, prep) -> dict:
    """Activation collection vs the model's bare forward to the hook layer (goal >= 0.85)."""
    r = sources.measure_throughput(prep.model, cfg, prep.train.tokens, repeats=5)
    return {"name": "activation collection / bare forward to hook", "ratio": r["ratio"], "goal": 0.85,
            "detail": f"{r['collect_tok_s']:,.0f} vs {r['forward_tok_s']:,.0f} tok/s, {r['n_tokens']} tokens"}


def bench_family(cfg, prep) -> dict:
    """Wall time to train the preset's whole family (fresh, not from the cache), vs the 20-minute book budget."""
    import os
    import tempfile
    old = os.environ.get("METASAE_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METASAE_CACHE"] = tmp
        t0 = time.perf_counter()
        members = families.train_family(cfg, prep.train.acts, prep.train.key, progress=False)
        seconds = time.perf_counter() - t0
        if old is None:
            del os.environ["METASAE_CACHE"]
        else:
            os.environ["METASAE_CACHE"] = old
    n = len(prep.train.acts)
    return {"name": f"train {cfg.architecture} family {list(cfg.widths)} / 20-min book budget",
            "ratio": seconds / 1200, "goal": "<= 1 (with the other chapters)",
            "detail": f"{seconds:.0f} s for {len(members)} SAEs on {n:,} activations"}


def _timed(fn, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_max_cosine(cfg, prep) -> dict:
    """Chunked max-cosine search vs a bare torch.matmul of the same shapes (goal >= 0.7)."""
    from metasae_utils import stitching
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n_a, n_b, d = (98304, 49152, 768) if device == "cuda" else (16384, 8192, 576)
    g = torch.Generator(device="cpu").manual_seed(0)
    A = torch.randn(n_a, d, generator=g).to(device)
    B = torch.randn(n_b, d, generator=g).to(device)
    if device == "cpu":
        t_mm, _ = _timed(lambda: A @ B.T)
    else:  # the full matrix does not fit: time the matmul block by block, same total work
        blk = 8192
        t_mm, _ = _timed(lambda: [A[i:i + blk] @ B.T for i in range(0, n_a, blk)] and None)
    t_mc, _ = _timed(lambda: stitching.max_cosine(A, B))
    return {"name": f"max_cosine / bare matmul ({n_a}x{n_b}x{d}, {device})", "ratio": t_mm / t_mc, "goal": 0.7,
            "detail": f"{t_mc:.3f} s vs {t_mm:.3f} s"}


def bench_insertion(cfg, prep) -> dict:
    """insertion_deltas (one vectorised pass) vs the naive loop insert_latents + evaluate (goal >= 50x)."""
    from metasae_utils import evaluate, stitching
    members = families.load_family(cfg, prep.model.cfg.d_model, prep.train.acts, prep.train.key, progress=False)
    small, large = members[-2].sae, members[-1].sae
    acts = prep.eval.acts
    t_vec, res = _timed(lambda: stitching.insertion_deltas(small, large, acts), repeats=1)
    sample = torch.arange(0, large.cfg.d_sae, max(1, large.cfg.d_sae // 24))
    base = evaluate.reconstruction_metrics(small, acts)["mse"]
    t0 = time.perf_counter()
    naive = torch.tensor([evaluate.reconstruction_metrics(stitching.insert_latents(small, large, [int(i)]), acts)["mse"]
                          - base for i in sample])
    t_naive = (time.perf_counter() - t0) / len(sample) * large.cfg.d_sae
    diff = (naive - torch.as_tensor(res.delta_mse)[sample].double()).abs().max().item()
    return {"name": f"insertion_deltas / naive loop ({large.cfg.d_sae} latents, {len(acts):,} tokens)",
            "ratio": t_naive / t_vec, "goal": 50,
            "detail": f"{t_vec:.1f} s vs {t_naive:.0f} s (naive extrapolated from {len(sample)} latents); "
                      f"max |ΔMSE difference| {diff:.2e}"}


BENCHES = {"collect": bench_collect, "max_cosine": bench_max_cosine, "insertion": bench_insertion,
           "family": bench_family}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--only", nargs="+", choices=list(BENCHES))
    args = ap.parse_args(argv)
    cfg = presets.resolve(args.preset)
    prep = sources.prepare(cfg)
    rows = []
    for name in args.only or BENCHES:
        rows.append({"bench": name, **BENCHES[name](cfg, prep)})
        r = rows[-1]
        print(f"{r['name']:<60} {r['ratio']:>8.3f}   goal {r['goal']}   ({r['detail']})", flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu{torch.get_num_threads()}"
    out = RESULTS / f"{device.replace(' ', '_')}-{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "device": device, "platform": platform.platform(),
                               "versions": book.versions(), "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
