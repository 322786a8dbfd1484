"""Chapter 09's feature-absorption section: every family and architecture SAE of the map scored on one shared
first-letter task, the ``absorption`` rows, and the adjacent family pairs for :mod:`.relate`."""

from __future__ import annotations

from tqdm.auto import tqdm

from . import relate, score, task

#: the map's kinds that can get an absorption score (the preset's ``absorption_kinds`` picks among them): the
#: family, and chapter 5's matched-L0 architecture SAEs
KINDS = ("family", "architecture")


def model_key(cfg) -> str:
    """What identifies the model the task's activations come from (name and precision)."""
    from ..sources import model_dtype
    return f"{cfg.model}:{model_dtype(cfg)}"


def sae_key(key: str) -> str:
    """The cache identity of a map SAE for the absorption cache: its map ``key``, with a folder inside the artifact
    cache written relative to the cache (``cache:saes-branch/<hash>/sae``), so that a checkout at another path (a git
    worktree sharing the cache) reuses the results."""
    from pathlib import Path

    from ..artifacts import cache_root
    try:
        return "cache:" + Path(key).resolve().relative_to(cache_root().resolve()).as_posix()
    except (ValueError, OSError):
        return key


def evaluate(cfg, model, saes: list) -> tuple[list[int], list[dict]]:
    """Score every SAE of ``saes`` (:class:`~metasae_utils.canonmap.MapSAE`) whose kind is in the preset's
    ``absorption_kinds`` (a subset of :data:`KINDS`):
    ``(indices into saes, score.absorption results)``; the task is built once (cached) and each SAE's result is
    cached by its map key.  A clear error before any compute when the preset's words per letter are too few."""
    if cfg.absorption_words < 2:
        raise ValueError(f"absorption_words = {cfg.absorption_words}: at least 2 words per letter are needed")
    unknown = set(cfg.absorption_kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"absorption_kinds: unknown kind(s) {sorted(unknown)}; allowed: {list(KINDS)}")
    idx = [i for i, s in enumerate(saes) if s.kind in cfg.absorption_kinds]
    for i in idx:
        if int(saes[i].sae.cfg.d_in) != int(model.cfg.d_model):
            raise ValueError(f"SAE {saes[i].name} reads d_in = {saes[i].sae.cfg.d_in}, the model's width is "
                             f"{model.cfg.d_model}")
    tkey = {"model": model_key(cfg), "hook": cfg.hook, "per_letter": cfg.absorption_words, "seed": cfg.seed}
    t = task.cached(model, cfg.hook, tkey["model"], cfg.absorption_words, cfg.seed, batch_size=cfg.model_batch_size)
    results = [score.cached(saes[i].sae, sae_key(saes[i].key or saes[i].name), t, tkey, cfg.seed)
               for i in tqdm(idx, desc="absorption (SAEs)")]
    return idx, results


def table_rows(saes: list, idx: list[int], results: list[dict]) -> list[dict]:
    """One row per scored SAE, ``id: "absorption"``, in the map's order."""
    rows = []
    for i, r in zip(idx, results):
        s = saes[i]
        rows.append({"id": "absorption", "sae": s.name, "kind": s.kind, "width": int(s.width),
                     "architecture": s.architecture, "l0_target": s.l0_target,
                     "mean_absorption_fraction": r["mean_absorption_fraction"],
                     "full_absorption_rate": r["full_absorption_rate"],
                     "mean_num_split_feats": r["mean_num_split_feats"], "n_letters": r["n_letters"],
                     "enough_letters": r["enough_letters"], "n_absorbing_latents": len(r["absorbing"])})
    return rows


def family_pairs(saes: list, live: list, idx: list[int], results: list[dict]) -> tuple[list[str], list[dict]]:
    """Adjacent family widths (the map's family entries, sorted by width): ``(labels, relate.pair_counts outputs)``
    for the larger SAE of each pair, ``live``: the map's live masks (one per SAE of ``saes``)."""
    fam = sorted(((saes[i].width, i, r) for i, r in zip(idx, results) if saes[i].kind == "family"),
                 key=lambda x: x[0])
    labels, pairs = [], []
    for (ws, i_s, _), (wl, i_l, r_l) in zip(fam, fam[1:]):
        novel = relate.novel_mask(saes[i_s].sae.W_dec, saes[i_l].sae.W_dec)
        pairs.append({"small": saes[i_s].name, "large": saes[i_l].name,
                      **relate.pair_counts(r_l["absorbing"], live[i_l].cpu(), novel.cpu())})
        labels.append(f"{ws} → {wl}")
    return labels, pairs


def summary(cfg, rows: list[dict]) -> str:
    """Markdown from the numbers: the scale of the task and how absorption moves with width (family rows) and
    across architectures."""
    from ..claims.registry import pct
    if not rows:
        return "No SAE of this build could be scored for absorption."
    fam = sorted((r for r in rows if r["kind"] == "family"), key=lambda r: r["width"])
    n_letters = sorted({r["n_letters"] for r in rows})
    letters = (f"{n_letters[0]}" if len(n_letters) == 1 else f"{n_letters[0]}–{n_letters[-1]}")
    few = [r for r in rows if not r["enough_letters"]]
    text = (f"The task used {cfg.absorption_words} single-token words per first letter ({26 * cfg.absorption_words} "
            f"at most; SAEBench uses every alphabetic token of the vocabulary) at `{cfg.hook}`. The linear probe "
            f"reaches F1 > {score.MIN_PROBE_F1:g} on {letters} of 26 letters; only those letters are scored.")
    if few:
        text += (f" SAEBench reports no score below {score.MIN_LETTERS} such letters: {len(few)} of {len(rows)} "
                 f"SAEs here fall short, so their scores rest on fewer letters than SAEBench would accept.")
    if fam:
        seq = ", ".join(f"{pct(r['mean_absorption_fraction'])} at {r['width']}" for r in fam)
        first, last = fam[0]["mean_absorption_fraction"], fam[-1]["mean_absorption_fraction"]
        trend = ("rises" if last > first else "falls" if last < first else "stays") if None not in (first, last) \
            else "cannot be compared"
        text += (f"\n\nAcross the family the mean absorption fraction {trend} with width: {seq}. The full-absorption "
                 "rate: " + ", ".join(f"{pct(r['full_absorption_rate'])} at {r['width']}" for r in fam) + ".")
    arch = [r for r in rows if r["kind"] == "architecture"]
    if arch:
        best = min((r for r in arch if r["mean_absorption_fraction"] is not None),
                   key=lambda r: r["mean_absorption_fraction"], default=None)
        if best is not None:
            text += (f"\n\nAmong chapter 5's matched-L0 architecture SAEs the lowest mean absorption fraction is "
                     f"{best['sae']}'s ({pct(best['mean_absorption_fraction'])}).")
    return text
