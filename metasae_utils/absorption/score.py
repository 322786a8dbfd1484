"""Feature absorption of one SAE on the first-letter task, as SAEBench 0.6.0 computes it.

Steps (SAEBench's own functions where they take in-memory objects):

1. **k-sparse probes** (``k_sparse_probing.train_k_sparse_probes``, k = 1..10, L1 decay 0.01, 50 epochs): for each
   letter, the SAE latents of an L1-regularised probe on the SAE's codes, then a logistic regression on the top k;
   scored on the held-out words with ``eval_probe_and_sae_k_sparse_raw_scores`` and ``sae_k_sparse_metadata``; the
   F1 scores that the next step reads come from :func:`f1_metrics` (the columns of SAEBench's ``build_metrics_df``
   that ``add_feature_splits_to_metrics_df`` uses, tested equal to it; ``build_metrics_df`` also computes AUCs,
   precisions and recalls through sklearn's input validation, 80 % of the per-SAE time); a letter's *main latents*
   are the top k up to the last k whose F1 rose by ≥ 0.03 (``add_feature_splits_to_metrics_df``).
2. **absorption per word** (:func:`word_absorption`: the arithmetic of ``FeatureAbsorptionCalculator.
   calculate_absorption``, run on the task's held-out activations instead of a second model pass; checked equal to
   SAEBench's calculator in ``tests/test_absorption.py``): for every held-out word of a letter that the linear probe
   gets right, the absorption fraction (how much of the probe projection that the main latents miss is carried by
   ≤ 3 other latents aligned with the probe, cosine ≥ 0.1) and full absorption (no main latent fires and one latent
   aligned with the probe, cosine ≥ 0.025, carries ≥ 40 % of the probe projection).
3. **aggregate** (SAEBench's ``main._aggregate_results_df`` and ``run_eval``): per letter the mean absorption fraction
   and full-absorption rate over the probe's true positives; the SAE's scores are their means over the letters whose
   probe F1 > 0.6.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch

from .task import LETTERS, Task

#: SAEBench 0.6.0's thresholds (``feature_absorption.py`` / ``AbsorptionEvalConfig``)
FULL_COS, FRACTION_COS, PROJ_SHARE, MAX_ABSORBERS, TOPK_FEATS, EPS = 0.025, 0.1, 0.4, 3, 10, 1e-8
MAX_K, F1_JUMP, K_L1_DECAY, K_EPOCHS, K_BATCH, MIN_PROBE_F1, MIN_LETTERS = 10, 0.03, 0.01, 50, 4096, 0.6, 20


def _check(sae, task: Task) -> None:
    d_in = int(sae.cfg.d_in)
    if task.train_acts.shape[1] != d_in:
        raise ValueError(f"the SAE reads d_in = {d_in} but the task's activations have width "
                         f"{task.train_acts.shape[1]}: the SAE and the task come from different hooks or models")


@torch.no_grad()
def word_absorption(sae_acts: torch.Tensor, acts: torch.Tensor, probe_direction: torch.Tensor,
                    W_dec: torch.Tensor, main_ids: list[int]) -> list[dict]:
    """SAEBench's per-word absorption for one letter.

    ``sae_acts`` (n, d_sae): the SAE's codes of ``acts`` (n, d_model); ``probe_direction`` (d_model,): the letter's
    probe row (normalised here); ``W_dec`` (d_sae, d_model); ``main_ids``: the letter's main latents.  Returns per
    word ``{"absorption_fraction", "is_full_absorption", "top_feature", "absorbers"}`` (``absorbers``: the ≤ 3 latents
    counted in the fraction, in order of probe projection).  A word whose probe projection is 0 (SAEBench would
    divide by zero; the probe's true positives never have one) counts as no absorption."""
    if probe_direction.ndim != 1:
        raise ValueError("probe_direction must be 1-D (d_model,)")
    if sae_acts.shape[0] != acts.shape[0] or sae_acts.shape[1] != W_dec.shape[0]:
        raise ValueError(f"sae_acts {tuple(sae_acts.shape)} must be (n, d_sae) with n = {acts.shape[0]} rows of acts "
                         f"and d_sae = {W_dec.shape[0]} decoder rows")
    p = probe_direction.float() / probe_direction.float().norm()
    cos = torch.nn.functional.cosine_similarity(p, W_dec.float(), dim=-1).float()
    proj = sae_acts.float() * cos
    act_proj = (acts.float() @ p).tolist()
    main = torch.tensor(main_ids, dtype=torch.long)
    not_main = torch.ones(W_dec.shape[0], dtype=torch.bool)
    not_main[main] = False
    out = []
    for i in range(sae_acts.shape[0]):
        a = act_proj[i]
        main_proj = proj[i, main].sum().item()
        mask = not_main & (cos >= FRACTION_COS) & (proj[i] > 0)
        cand = torch.nonzero(mask).flatten()
        top = proj[i, cand].topk(min(MAX_ABSORBERS, cand.numel()))
        absorbers = cand[top.indices].tolist()
        top_total = top.values.sum().item()
        if main_proj >= a or a <= 0 or top_total / a < PROJ_SHARE:  # a < 0: SAEBench's share is < 0, so 0 too
            frac = 0.0
        elif main_proj <= 0.0:
            frac = 1.0
        else:
            absorbed = min(top_total, a - main_proj)
            frac = float(np.clip(absorbed / (absorbed + main_proj), 0.0, 1.0))
        top_feat = int(proj[i].topk(min(TOPK_FEATS, proj.shape[1])).indices[0])
        full = (all(sae_acts[i, j].item() < EPS for j in main_ids) and cos[top_feat].item() >= FULL_COS and a > 0
                and proj[i, top_feat].item() / a >= PROJ_SHARE)  # a == 0: SAEBench divides by zero; here not full
        out.append({"absorption_fraction": frac, "is_full_absorption": bool(full), "top_feature": top_feat,
                    "absorbers": absorbers if frac > 0 else []})
    return out


def k_sparse(sae, task: Task, seed: int = 0):
    """Step 1 with SAEBench's functions: ``(raw_df, metadata_df, metrics_df)`` (one row per held-out word / per
    (letter, k) / per letter;
    ``metrics_df["split_feats"]``: each letter's main latents, ``["f1_probe"]``: the linear probe's F1)."""
    from sae_bench.evals.absorption.k_sparse_probing import (add_feature_splits_to_metrics_df,
                                                             eval_probe_and_sae_k_sparse_raw_scores,
                                                             sae_k_sparse_metadata, train_k_sparse_probes)
    _check(sae, task)
    torch.manual_seed(seed)
    train = [(w, int(y)) for w, y in zip(task.train_words, task.train_labels)]
    test = [(w, int(y)) for w, y in zip(task.test_words, task.test_labels)]
    with torch.enable_grad():
        probes = train_k_sparse_probes(sae, train, task.train_acts, ks=list(range(1, MAX_K + 1)), l1_decay=K_L1_DECAY,
                                       batch_size=K_BATCH, num_epochs=K_EPOCHS, precalc_sae_acts=True)
    probe = task.probe()
    with torch.no_grad():
        raw = eval_probe_and_sae_k_sparse_raw_scores(sae, probe, probes, eval_labels=test,
                                                     eval_activations=task.test_acts, eval_batch_size=256)
        meta = sae_k_sparse_metadata(sae, probe, probes, sae_name="sae", layer=0)
    metrics = f1_metrics(raw, meta, MAX_K)
    add_feature_splits_to_metrics_df(metrics, max_k_value=MAX_K, f1_jump_threshold=F1_JUMP)
    return raw, meta, metrics


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Binary F1 as sklearn's ``f1_score(y, pred)`` gives it (0.0 when there is no positive at all)."""
    tp = int(np.sum(y & pred))
    den = 2 * tp + int(np.sum(~y & pred)) + int(np.sum(y & ~pred))
    return 2 * tp / den if den else 0.0


def f1_metrics(raw, meta, max_k: int):
    """The columns of SAEBench's ``build_metrics_df(raw, meta, max_k)`` that the absorption step reads, one row per
    letter: ``letter``, ``f1_probe`` and, for k = 1..max_k, ``f1_sparse_sae_{k}`` and ``sparse_sae_k_{k}_feats``."""
    import pandas as pd
    rows = []
    for letter in LETTERS:
        y = (raw["answer_letter"] == letter).to_numpy()
        row = {"letter": letter, "f1_probe": _f1(y, raw[f"score_probe_{letter}"].to_numpy() > 0.0)}
        for k in range(1, max_k + 1):
            row[f"f1_sparse_sae_{k}"] = _f1(y, raw[f"score_sparse_sae_{letter}_k_{k}"].to_numpy() > 0.0)
            m = meta[(meta["letter"] == letter) & (meta["k"] == k)]
            row[f"sparse_sae_k_{k}_feats"] = m["feats"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


@torch.no_grad()
def absorption(sae, task: Task, seed: int = 0) -> dict:
    """Steps 1-3 for one SAE: ``{"mean_absorption_fraction", "full_absorption_rate", "mean_num_split_feats",
    "n_letters" (letters with probe F1 > 0.6), "enough_letters" (SAEBench evaluates only with ≥ 20), "letters":
    [{letter, f1_probe, n_true_positives, split_feats, mean_absorption_fraction, full_absorption_rate}],
    "absorbing": {latent id: number of words it absorbs}}`` (absorbing latents as the ``absorption_novel`` rule
    defines them: the top probe-projecting latent of a full-absorption word, or a counted absorber of a word with
    absorption fraction > 0)."""
    raw, _, metrics = k_sparse(sae, task, seed)
    W_dec = sae.W_dec.detach().float()
    words = list(task.test_words)
    letters, absorbing = [], {}
    for i, letter in enumerate(LETTERS):
        m = metrics[metrics["letter"] == letter].iloc[0]
        main = [int(j) for j in m["split_feats"]]
        tp = raw[(raw["answer_letter"] == letter) & (raw[f"score_probe_{letter}"] > 0)]["token"].tolist()
        rows = [words.index(w) for w in tp]
        res = []
        if rows:
            acts = task.test_acts[rows]
            res = word_absorption(sae.encode(acts.to(sae.W_dec.dtype)).float(), acts, task.probe_weight[i], W_dec, main)
        f1 = float(m["f1_probe"])
        entry = {"letter": letter, "f1_probe": f1, "n_true_positives": len(rows), "split_feats": main,
                 "mean_absorption_fraction": statistics.mean(r["absorption_fraction"] for r in res) if res else None,
                 "full_absorption_rate": statistics.mean(float(r["is_full_absorption"]) for r in res) if res else None}
        letters.append(entry)
        if f1 > MIN_PROBE_F1:
            for r in res:
                ids = set(r["absorbers"]) | ({r["top_feature"]} if r["is_full_absorption"] else set())
                for j in ids:
                    absorbing[int(j)] = absorbing.get(int(j), 0) + 1
    kept = [e for e in letters if e["f1_probe"] > MIN_PROBE_F1 and e["n_true_positives"]]
    mean = (lambda k: statistics.mean(e[k] for e in kept) if kept else None)
    return {"mean_absorption_fraction": mean("mean_absorption_fraction"),
            "full_absorption_rate": mean("full_absorption_rate"),
            "mean_num_split_feats": statistics.mean(len(e["split_feats"]) for e in kept) if kept else None,
            "n_letters": len(kept), "enough_letters": len(kept) >= MIN_LETTERS, "letters": letters,
            "absorbing": {str(k): v for k, v in sorted(absorbing.items())}}


def cached(sae, sae_key: str, task: Task, task_key: dict, seed: int = 0) -> dict:
    """:func:`absorption` through the artifact cache, keyed by the SAE's cache identity ``sae_key``, the task's
    key and ``seed``."""
    from importlib.metadata import version

    from .. import artifacts
    _check(sae, task)
    spec = {"sae": sae_key, "task": task_key, "seed": seed, "sae_bench": version("sae-bench")}
    return artifacts.entry("absorption", spec, 1).json("absorption.json", lambda: absorption(sae, task, seed))
