"""Bench rows of the sparse training step and the annealed budget branches (issue 21).

Each SAE is a SAELens ``standard`` training SAE on the preset's real activations whose encoder biases are set so
that a batch has the wanted L0 (a per-latent threshold at the matching quantile of its pre-activation), so the
step is timed at the sparsity a trained SAE runs at.  SAELens' ``SAETrainer.step`` and the project's
``FastTrainer.step`` then take turns on the same batches (best of several rounds each), both in the precision
``train_dtype: auto`` chose (bf16 under autocast where the CPU has AMX, else fp32), and the encoder product alone
is timed beside them.
"""

from __future__ import annotations

import copy
import time

import torch
from tqdm.auto import tqdm

from bench import perf
from bench.table import row

ROUNDS, STEPS = 3, 6


def _calibrated(acts: torch.Tensor, width: int, l0: float, batch: int, autocast: bool):
    """A FastTrainer (and the SAETrainer of an identical copy of its SAE) whose batches have about ``l0`` active
    latents per row."""
    from sae_lens.training.sae_trainer import SAETrainer

    from metasae_utils import training
    # a tiny learning rate keeps the calibrated L0 through the timed steps (the cost of a step does not depend on it)
    fast = training.make_trainer(acts, width, n_steps=1000, batch_size=batch, lr=1e-7, seed=0, l1_coefficient=2.5,
                                 autocast=autocast)
    sae = fast.sae
    with torch.no_grad():
        x = fast.activation_scaler(next(fast.data_provider)).float()
        pre = (x - sae.b_dec) @ sae.W_enc
        sae.b_enc.copy_(-torch.quantile(pre, 1 - l0 / width, dim=0))
        fast.params[1].copy_(sae.b_enc)
    slow = SAETrainer(cfg=fast.cfg, sae=copy.deepcopy(sae), data_provider=fast.data_provider)
    slow.activation_scaler.scaling_factor = fast.activation_scaler.scaling_factor
    return fast, slow


def _best(fn, steps=STEPS) -> float:
    fn()
    perf.sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    perf.sync()
    return (time.perf_counter() - t0) / steps


def _case(acts, width, l0, batch, autocast) -> dict:
    """Seconds per step of SAETrainer and of the fast step, of one encoder product, and the L0 measured."""
    fast, slow = _calibrated(acts, width, l0, batch, autocast)
    batches = [next(fast.data_provider) for _ in range(STEPS + 1)]
    it = {"i": 0}

    def nxt():
        it["i"] = (it["i"] + 1) % len(batches)
        return batches[it["i"]]
    seen = []
    x = fast.activation_scaler(batches[0]).float()
    xc, W_encT = x - fast.params[3], fast.params[0]
    from metasae_utils.training import sparse
    enc = lambda: sparse.encoder_product(xc, W_encT, autocast)  # noqa: E731
    # the step's parts: loss and gradients (encoder product + the sparse kernel), and Adam alone on those gradients
    kern = lambda: sparse.fwd_bwd(x, *fast.params, 2.5, bf16=autocast)  # noqa: E731
    grads = kern().grads
    adam_params = [p for p, on in zip(fast.params, fast.trainable) if on]

    def adam():
        for p, g in zip(fast.params, grads):
            p.grad = g
        fast.optimizer.step()
        for p in adam_params:
            p.grad = None
    t = {k: float("inf") for k in ("saelens", "fast", "encoder", "fwd_bwd", "adam")}
    for _ in range(ROUNDS):
        t["saelens"] = min(t["saelens"], _best(lambda: slow.step(nxt())))
        t["fast"] = min(t["fast"], _best(lambda: seen.append(fast.step(nxt()).l0)))
        t["encoder"] = min(t["encoder"], _best(enc))
        t["fwd_bwd"] = min(t["fwd_bwd"], _best(kern))
        t["adam"] = min(t["adam"], _best(adam))
    return {**t, "l0": sum(seen) / len(seen)}


def bench_fast_step(cfg, prep) -> list[dict]:
    """The fast step against SAETrainer's at the family's widths and at L0 16 / 32 / 64 (batch of the preset)."""
    from metasae_utils import precision
    autocast = precision.configure(cfg.train_dtype, "cpu") == "bfloat16"
    acts, batch = prep.train.acts, cfg.train_batch_size
    how = f"{'bf16 autocast' if autocast else 'fp32'} ({precision.training_dtype()} from train_dtype auto), " \
          f"{torch.get_num_threads()} threads, batch {batch}"
    width = max(cfg.widths)
    cases = [(w, 32) for w in sorted(set(cfg.widths))] + [(width, 16), (width, 64)]
    rows = []
    for w, l0 in tqdm(cases, desc="fast step", leave=False):
        r = _case(acts, w, l0, batch, autocast)
        detail = (f"width {w}, L0 {r['l0']:.1f}: SAETrainer {1e3 * r['saelens']:.1f} ms, fast step "
                  f"{1e3 * r['fast']:.1f} ms, encoder product {1e3 * r['encoder']:.1f} ms; {how}")
        main = (w, l0) == (width, 32)
        rid = "train_step_speedup_vs_saelens" + ("" if main else f"_w{w}_l0{l0}")
        rows.append(dict(row("fast_step", f"SAETrainer step / fast step (width {w}, L0 {l0})",
                             r["saelens"] / r["fast"], (2.0, None) if main else None, detail,
                             why="the fast step is not twice as fast as SAETrainer's"),
                         id=rid, width=w, l0_target=l0, l0=r["l0"], ms=1e3 * r["fast"],
                         saelens_ms=1e3 * r["saelens"], encoder_ms=1e3 * r["encoder"]))
        if main:
            parts = (f"; the step's parts: loss and gradients {1e3 * r['fwd_bwd']:.1f} ms (of which the encoder "
                     f"product {1e3 * r['encoder']:.1f} ms), Adam {1e3 * r['adam']:.1f} ms")
            rows.append(dict(row("fast_step", f"fast step / one dense encoder product (width {w}, L0 {l0})",
                                 r["fast"] / r["encoder"], (None, 2.5), detail + parts,
                                 why=f"the sparse kernel (loss and gradients without the encoder product) costs "
                                     f"{(r['fwd_bwd'] - r['encoder']) / r['encoder']:.1f} encoder products and Adam "
                                     f"{r['adam'] / r['encoder']:.1f}: the kernel's fixed-order double sums (results "
                                     "independent of the thread count) and its scans of the dense pre-activations "
                                     "are the cost"),
                             id="train_step_vs_encoder_product", width=w, l0_target=l0,
                             fwd_bwd_ms=1e3 * r["fwd_bwd"], adam_ms=1e3 * r["adam"], encoder_ms=1e3 * r["encoder"]))
            rows.append(dict(row("fast_step", f"Adam alone / one dense encoder product (width {w}, L0 {l0})",
                                 r["adam"] / r["encoder"], None, detail + parts +
                                 ". Adam updates every weight each step, as SAELens' does (a lazy update of the "
                                 "latents that fired would not equal SAELens' training); where this ratio is near "
                                 "or above 2.5, the step cannot reach 2.5 encoder products"),
                             id="train_step_adam_vs_encoder_product", width=w, l0_target=l0))
    if autocast:
        rows.append(_fp32_row(acts, width, batch))
    return rows


def _fp32_row(acts, width, batch) -> dict:
    """The step / encoder-product ratio on the fp32 path, which ``train_dtype: auto`` takes on CPUs without AMX
    (where bf16 runs slower than fp32): the same case as the main row, both the step and the product in fp32."""
    r = _case(acts, width, 32, batch, autocast=False)
    return dict(row("fast_step", f"fp32 path (CPUs without AMX): fast step / one dense encoder product "
                                 f"(width {width}, L0 32)", r["fast"] / r["encoder"], None,
                    f"width {width}, L0 {r['l0']:.1f}, fp32, {torch.get_num_threads()} threads, batch {batch}: fast "
                    f"step {1e3 * r['fast']:.1f} ms (loss and gradients {1e3 * r['fwd_bwd']:.1f} ms, Adam "
                    f"{1e3 * r['adam']:.1f} ms), encoder product {1e3 * r['encoder']:.1f} ms, SAETrainer "
                    f"{1e3 * r['saelens']:.1f} ms. This machine trains in bf16 (the row above, against its bf16 "
                    "product); this row is the ratio where auto chooses fp32"),
                id="train_step_vs_encoder_product_fp32", width=width, l0_target=32, step_ms=1e3 * r["fast"],
                encoder_ms=1e3 * r["encoder"], saelens_ms=1e3 * r["saelens"])


def bench_branches(cfg, prep) -> list[dict]:
    """(stable run + every annealed branch) / one run to the largest budget, timed on the smallest width with the
    budgets of issue 22's schedule scaled down (1/8 ... 8 of a base of 32 steps), and the same ratio in steps for
    the real schedule (1/8 ... 8 of 1,993 steps)."""
    from metasae_utils import precision, training
    from metasae_utils.training import branches, schedule
    autocast = precision.configure(cfg.train_dtype, "cpu") == "bfloat16"
    base, frac, width = 32, 0.2, min(cfg.widths)
    budgets = [base // 8, base // 4, base // 2, base, 2 * base, 4 * base, 8 * base]
    kw = dict(n_steps=budgets[-1], batch_size=cfg.train_batch_size, lr=cfg.lr, seed=0,
              l1_coefficient=cfg.l1_coefficient, autocast=autocast)
    single = both = float("inf")
    for _ in range(2):  # alternate, best of two each
        t0 = time.perf_counter()
        training.train_sae(prep.train.acts, "standard", width, progress=False,
                           lr_decay_steps=round(frac * budgets[-1]), **kw)
        single = min(single, time.perf_counter() - t0)
        t0 = time.perf_counter()
        branches.run_branches(training.make_trainer(prep.train.acts, width, **kw), budgets, frac,
                              lambda row_, sae, state: None)
        both = min(both, time.perf_counter() - t0)
    real = [round(1993 * f) for f in (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8)]
    steps_ratio = schedule.branch_overhead(real, frac)
    detail = (f"width {width}, budgets {budgets} steps, anneal {frac:.0%}: stable run + 7 branches {both:.1f} s vs "
              f"one annealed run of {budgets[-1]} steps {single:.1f} s; in steps for budgets {real}: "
              f"{steps_ratio:.3f}")
    return [dict(row("branches", "annealed budget curve (stable run + branches) / one run to the largest budget",
                     both / single, (None, 1.3), detail, why="copying and annealing the branches costs too much"),
                 id="budget_branch_overhead", steps_ratio=steps_ratio)]


FAMILY_STEPS = None  # steps per width of the end-to-end family comparison (None: the preset's own run)


def bench_family_speedup(cfg, prep) -> list[dict]:
    """Chapter 02's family with today's recipe (L1 controller, learning curves, LR decay; no branches), every width
    trained end to end — set-up, monitor, saving and loading included — by SAETrainer and by the fast step, each in
    a fresh cache, the preset's own number of steps per width (``FAMILY_STEPS``, if set, scales the recipe to that
    length).  Per-width seconds of both; the ratio is their sums.  (A short run misleads: its first ~100 steps, the
    L1 warm-up and the controller settling, are dense, and set-up and learning-curve evaluations weigh more.)"""
    import dataclasses
    from unittest import mock

    from bench.run import _fresh_cache
    from metasae_utils import families, precision
    precision.configure(cfg.train_dtype, "cpu")
    n = len(prep.train.acts)
    epochs = cfg.train_epochs if FAMILY_STEPS is None else FAMILY_STEPS * cfg.train_batch_size / n
    short = dataclasses.replace(cfg, budget_multiples=None, budget_reach=None, train_epochs=epochs)
    times = {}
    for kind in ("saetrainer", "fast"):
        patch = (mock.patch("metasae_utils.training.saelens.supported", lambda sae: "bench: SAETrainer")
                 if kind == "saetrainer" else mock.patch.dict({}))
        with _fresh_cache(), patch:
            for w in short.widths:
                t0 = time.perf_counter()
                families.train_family(short, prep.train.acts, prep.train.key, widths=[w], progress=False,
                                      eval_acts=prep.eval.acts)
                times.setdefault(kind, {})[w] = time.perf_counter() - t0
    per = ", ".join(f"{w}: {times['saetrainer'][w]:.1f} s → {times['fast'][w]:.1f} s" for w in short.widths)
    ratio = sum(times["saetrainer"].values()) / sum(times["fast"].values())
    return [dict(row("family_speedup", f"family {list(cfg.widths)}, today's recipe: SAETrainer time / fast-step time",
                     ratio, (2.0, None), f"{families.n_steps(short, n)} steps per width, per width {per}; "
                     f"{precision.training_dtype()}, {torch.get_num_threads()} threads",
                     why="end to end, the family does not train twice as fast"),
                 id="family_speedup_vs_saelens", seconds=times)]


def bench_density(cfg, prep) -> list[dict]:
    """Where the sparse kernel stops paying: loss and gradients by the sparse path and by dense products at rising
    L0 (width of the family's largest SAE, batch of the preset), side by side; the crossover density is compared
    with the threshold the step uses (``sparse.DENSE_ABOVE``)."""
    from metasae_utils import precision
    from metasae_utils.training import sparse
    bf16 = precision.configure(cfg.train_dtype, "cpu") == "bfloat16"
    width, batch = max(cfg.widths), cfg.train_batch_size
    points = []
    for l0 in tqdm([32, 128, 256, 512, 1024], desc="density", leave=False):
        fast, _ = _calibrated(prep.train.acts, width, l0, batch, bf16)
        x = fast.activation_scaler(next(fast.data_provider)).float()
        t_sparse = min(_best(lambda: sparse.fwd_bwd(x, *fast.params, 2.5, bf16=bf16, dense_above=1.0), 3)
                       for _ in range(2))
        t_dense = min(_best(lambda: sparse.dense_fwd_bwd(x, *fast.params, 2.5, bf16=bf16), 3) for _ in range(2))
        density = sparse.fwd_bwd(x, *fast.params, 2.5, bf16=bf16, dense_above=1.0).l0 / width
        points.append({"l0_target": l0, "density": density, "sparse_ms": 1e3 * t_sparse, "dense_ms": 1e3 * t_dense})
    wins = [p["density"] for p in points if p["sparse_ms"] < p["dense_ms"]]
    cross = max(wins) if wins else 0.0
    detail = "; ".join(f"density {100 * p['density']:.1f} %: sparse {p['sparse_ms']:.0f} ms, dense {p['dense_ms']:.0f} ms"
                       for p in points)
    return [dict(row("density", f"densest batch where the sparse path wins / the step's threshold "
                     f"({100 * sparse.DENSE_ABOVE:.0f} %)", cross / sparse.DENSE_ABOVE, (1.0, None),
                     f"width {width}, batch {batch}, {'bf16' if bf16 else 'fp32'} encoder product: {detail}",
                     why="the sparse path is used at densities where dense products are faster"),
                 id="train_step_density", points=points)]
