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


BENCHES = {"collect": bench_collect, "family": bench_family}


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
