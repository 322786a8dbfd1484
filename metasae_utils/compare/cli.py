"""The ``compare`` sub-command's arguments and its error handling (a ConfigError is one line on stderr and exit
status 1, as for ``build`` and ``cache``)."""

from __future__ import annotations

import sys

DESCRIPTION = ("The stitching experiment of Leask et al. (ICLR 2025) on your own pair of SAEs: novel fraction over the "
               "live latents of LARGE, single-insertion effects, matched share, Hungarian-matched cosine, the seed "
               "twin's noise floor and the interpolation path, written to DIR/report.json and DIR/report.html.")
EPILOG = """examples:
  python -m metasae_utils compare saes/w1024 saes/w4096 --twin saes/w4096-seed1 --activations acts.pt --out cmp
  HF_HUB_OFFLINE=1 python -m metasae_utils compare \\
      gpt2-small-res-jb-feature-splitting/blocks.8.hook_resid_pre_768 \\
      gpt2-small-res-jb-feature-splitting/blocks.8.hook_resid_pre_1536 --activations gpt2-l8.pt --out cmp"""


def add_parser(sub) -> None:
    """Add ``compare`` to the sub-parsers ``sub`` of ``python -m metasae_utils``."""
    import argparse
    c = sub.add_parser("compare", help="stitch two SAEs of your own (folders or SAELens releases) and report",
                       description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("small", metavar="SMALL", help="the smaller SAE: a SAELens folder or release/sae_id")
    c.add_argument("large", metavar="LARGE", help="the larger SAE: a SAELens folder or release/sae_id")
    c.add_argument("--twin", metavar="TWIN", help="a seed twin of LARGE (same width and recipe, another seed)")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--activations", metavar="ACTS", help="a .pt file of activations (n, d_in) at the SAEs' hook")
    src.add_argument("--preset", metavar="NAME", help="collect a preset's held-out activations (a bundled preset or "
                                                      "your own *.yaml) instead")
    c.add_argument("--out", required=True, metavar="DIR", help="folder that receives report.json and report.html")
    c.add_argument("--threshold", type=float, default=0.7, help="max decoder cosine above which a latent is a "
                                                                 "reconstruction latent (default 0.7)")
    c.add_argument("--random-order", action="store_true", help="also the seeded random-order interpolation path "
                                                                 "(the control of the greedy path; doubles its cost)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random-order interpolation path")


def run(args) -> int:
    """Run ``compare`` from parsed ``args``; print where the report went and its headline."""
    from ..presets import ConfigError
    from .run import compare
    try:
        r = compare(args.small, args.large, args.out, activations=args.activations, preset=args.preset,
                    twin=args.twin, threshold=args.threshold, seed=args.seed,
                    random_order=args.random_order, progress=args.preset is not None)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    pct = lambda v: "n/a" if v != v else f"{100 * v:.1f} %"  # noqa: E731 (NaN when no latent is live)
    print(f"{r['live']:,} live latents of {r['n_large']:,} ({r['dead']:,} dead); novel {pct(r['novel_fraction'])}; "
          f"matched share {pct(r['matched_share'])}; Hungarian cosine "
          + ("skipped (too many latents)" if r["hungarian_cosine"] is None else f"{r['hungarian_cosine']:.3f}"))
    print(f"wrote {args.out}/report.json and {args.out}/report.html")
    return 0
