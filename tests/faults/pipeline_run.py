"""The package pipeline of chapters 1-2 at test size, shared by the determinism test (in-process) and the
resume test (inside notebook kernels of a real ``runner.build``), so both produce the same numbers.

Torch runs on one thread in both: CPU kernels may reduce in a thread-count-dependent order, so bit-identity is
only claimed for runs with the same thread count (README, "When things go wrong").
"""

import torch

from metasae_utils import evaluate, families, sources
from metasae_utils.presets import resolve

#: the ci preset, shrunk: 3 chunks of training activations (256 sequences each), two small SAEs.
OVERRIDES = {"n_train_tokens": 40_000, "n_eval_tokens": 1_000, "widths": [64, 128], "l0_targets": [],
             "l0_extra": [], "train_epochs": 0.25,
             "n_ce_seqs": 2}


def config():
    return resolve("ci", **OVERRIDES)


def collect(cfg):
    """Chapter 1: model, corpus, train and held-out activations (cached)."""
    torch.set_num_threads(1)
    return sources.prepare(cfg, progress=False)


def family_metrics(cfg) -> list[dict]:
    """Chapter 2: the trained family and its metrics, one JSON-able dict per SAE (fire counts as lists).  The plain
    recipe (no budget branches: one "saes" cache entry per SAE, which the resume test counts); a ``None`` override
    keeps a preset's value, so the branches are switched off here."""
    import dataclasses
    cfg = dataclasses.replace(cfg, budget_multiples=None, budget_reach=None)
    from metasae_utils import precision
    precision.configure(cfg.train_dtype, "cpu")  # as book.configure does in a chapter: the same dtype in and out of a build
    data = collect(cfg)
    members = families.load_family(cfg, data.model.cfg.d_model, data.train.acts, data.train.key, progress=False)
    rows = evaluate.evaluate_family(members, data.model, cfg.hook, data.eval.acts,
                                    data.eval.tokens[: cfg.n_ce_seqs], progress=False)
    return [{**r, "fire_counts": r["fire_counts"].tolist()} for r in rows]
