"""Evaluation of SAEs on held-out activations: MSE, fraction of variance unexplained, L0, dead latents,
and (for language models) cross-entropy with the SAE spliced in.

Conventions used everywhere in this book:

* ``mse``  = mean over tokens *and* dimensions of ``(x - x_hat)**2`` (SAELens' convention).
* ``fvu``  = ``sum((x - x_hat)**2) / sum((x - mean(x))**2)`` over the whole evaluation set;
  variance explained = ``1 - fvu``.
* ``l0``   = mean number of non-zero latents per token.
* ``dead`` = fraction of latents that never fire on the evaluation set.  Where a latent's class matters (stitching,
  meta-SAE training sets) a latent is *dead* when it fires on at most :data:`DEAD_RATE` of the held-out rows
  (:func:`alive_latents`, :func:`firing_rates`).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

#: a latent firing on at most this share of held-out rows is dead (stitching classes, meta-SAE training rows)
DEAD_RATE = 1e-5


@torch.no_grad()
def reconstruction_metrics(sae, acts: torch.Tensor, batch_size: int = 4096, progress: bool = False) -> dict:
    """Reconstruction metrics of a SAELens ``sae`` on ``acts`` (n_tokens, d_in), in batches.

    Returns a dict with ``mse``, ``fvu``, ``variance_explained``, ``l0``, ``dead_fraction``, ``n_tokens``
    and ``fire_counts`` (d_sae,) — how many tokens each latent fired on.
    """
    device = sae.W_dec.device
    dtype = sae.W_dec.dtype
    n, d = acts.shape
    if d != sae.cfg.d_in:
        raise ValueError(f"activations have d={d} but the SAE expects d_in={sae.cfg.d_in}")
    sq_err = torch.zeros((), dtype=torch.float64)
    l0_sum = torch.zeros((), dtype=torch.float64)
    fire = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    s1 = torch.zeros(d, dtype=torch.float64)
    s2 = torch.zeros((), dtype=torch.float64)
    for start in tqdm(range(0, n, batch_size), desc="evaluate", disable=not progress, leave=False):
        x = acts[start:start + batch_size].to(device=device, dtype=dtype)
        f = sae.encode(x)
        x_hat = sae.decode(f)
        sq_err += ((x - x_hat).double() ** 2).sum().cpu()
        active = f != 0
        l0_sum += active.sum().double().cpu()
        fire += active.sum(0).cpu()
        xd = x.double().cpu()
        s1 += xd.sum(0)
        s2 += (xd ** 2).sum()
    total_var = s2 - (s1 ** 2).sum() / n
    fvu = (sq_err / total_var).item()
    return {
        "mse": (sq_err / (n * d)).item(),
        "fvu": fvu,
        "variance_explained": 1.0 - fvu,
        "l0": (l0_sum / n).item(),
        "dead_fraction": (fire == 0).double().mean().item(),
        "n_tokens": n,
        "fire_counts": fire,
    }


@torch.no_grad()
def firing_rates(sae, acts: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """(d_sae,) float64: the share of the rows of ``acts`` (n, d_in) on which each latent of ``sae`` fires."""
    n, d = acts.shape
    if d != sae.cfg.d_in:
        raise ValueError(f"activations have d={d} but the SAE expects d_in={sae.cfg.d_in}")
    if n == 0:
        raise ValueError("firing rates need at least one activation row")
    fire = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    for start in range(0, n, batch_size):
        x = acts[start:start + batch_size].to(device=sae.W_dec.device, dtype=sae.W_dec.dtype)
        fire += (sae.encode(x) != 0).sum(0).double().cpu()
    return fire / n


def alive_latents(fire_counts: torch.Tensor, n_tokens: int, min_rate: float = DEAD_RATE) -> torch.Tensor:
    """(d_sae,) bool: latents that fire on more than ``min_rate`` of ``n_tokens`` tokens (``fire_counts`` (d_sae,)
    from :func:`!reconstruction_metrics` on held-out activations; pass ``firing_rates(...)`` with ``n_tokens=1``).
    The authors' scripts drop dead latents before training a meta-SAE on several SAEs: their decoder rows are
    whatever initialisation and training left, not directions the SAE uses."""
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be positive, got {n_tokens}")
    return torch.as_tensor(fire_counts).double() / n_tokens > min_rate


def dead_latents(sae, acts: torch.Tensor, dead_rate: float = DEAD_RATE) -> torch.Tensor:
    """LongTensor of the ids of ``sae``'s latents firing on at most ``dead_rate`` of the rows of ``acts`` (n, d_in)."""
    return torch.nonzero(~alive_latents(firing_rates(sae, acts), 1, dead_rate)).flatten()


def _token_ce(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``logits`` (b, ctx, vocab) on ``tokens`` (b, ctx)."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return -logp.gather(-1, tokens[:, 1:, None]).mean()


@torch.no_grad()
def ce_metrics(model, hook: str, tokens: torch.Tensor, saes: dict, batch_size: int = 16,
               progress: bool = True) -> dict:
    """Cross-entropy loss of ``model`` on ``tokens`` (n_seq, ctx): clean, with the hook zero-ablated, and with
    each SAE of ``saes`` (name → SAE) spliced in at ``hook``.  BOS positions are never replaced.

    For ``resid_pre`` the model runs once to the hook, then from the hook on for each variant
    (``start_at_layer``); other hooks use a full forward with a replacement hook.
    Returns ``{"clean": ce, "zero": ce, "saes": {name: {"ce": ce, "ce_recovered": r}}}`` where
    ``r = (ce_zero - ce_sae) / (ce_zero - ce_clean)``.
    """
    from .sources import _stop_layer, forward_to_hook
    device = model.cfg.device
    sums = {"clean": 0.0, "zero": 0.0, **{name: 0.0 for name in saes}}
    n_batches = 0
    for i in tqdm(range(0, len(tokens), batch_size), desc="CE with SAEs spliced in", disable=not progress,
                  leave=False):
        batch = tokens[i:i + batch_size].to(device)
        variants = {"clean": lambda a: a, "zero": lambda a: torch.zeros_like(a)}
        variants.update({name: (lambda a, s=sae: s(a.to(s.W_dec.dtype)).to(a.dtype)) for name, sae in saes.items()})
        if hook.endswith("hook_resid_pre"):
            resid = forward_to_hook(model, batch, hook)
            for name, fn in variants.items():
                patched = resid.clone()
                patched[:, 1:] = fn(resid[:, 1:])
                logits = model(patched, start_at_layer=_stop_layer(hook), tokens=batch)
                sums[name] += _token_ce(logits, batch).item()
        else:
            for name, fn in variants.items():
                def replace(act, hook=None, fn=fn):
                    act = act.clone()
                    act[:, 1:] = fn(act[:, 1:])
                    return act
                logits = model.run_with_hooks(batch, fwd_hooks=[(hook, replace)])
                sums[name] += _token_ce(logits, batch).item()
        n_batches += 1
    ce = {k: v / n_batches for k, v in sums.items()}
    out = {"clean": ce["clean"], "zero": ce["zero"], "saes": {}}
    for name in saes:
        out["saes"][name] = {"ce": ce[name],
                             "ce_recovered": (ce["zero"] - ce[name]) / (ce["zero"] - ce["clean"])}
    return out


@torch.no_grad()
def top_activations(sae, acts: torch.Tensor, latents: torch.Tensor, k: int = 5,
                    batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest activations of each of ``latents`` (m,) over ``acts`` (n, d_in).

    Returns ``(values, rows)``, each (m, k); rows index ``acts``.
    """
    m = len(latents)
    best_v = torch.full((m, k), -float("inf"))
    best_r = torch.zeros((m, k), dtype=torch.long)
    for start in range(0, len(acts), batch_size):
        x = acts[start:start + batch_size].to(sae.W_dec.device, sae.W_dec.dtype)
        f = sae.encode(x)[:, latents].float().cpu().T  # (m, b)
        rows = torch.arange(start, start + f.shape[1]).expand(m, -1)
        v, idx = torch.cat([best_v, f], 1).topk(k, dim=1)
        best_r = torch.cat([best_r, rows], 1).gather(1, idx)
        best_v = v
    return best_v, best_r


def evaluate_family(members, model, hook: str, eval_acts: torch.Tensor, ce_tokens: torch.Tensor | None,
                    progress: bool = True) -> list[dict]:
    """One row of metrics per family member (``families.Member``): reconstruction on ``eval_acts`` (n, d) and,
    with ``ce_tokens`` (n_seq, ctx), cross-entropy with the SAE spliced in.  ``fire_counts`` is kept per row."""
    rows = []
    for m in tqdm(members, desc="evaluate family", disable=not progress, leave=False):
        r = reconstruction_metrics(m.sae, eval_acts)
        rows.append({"name": m.name, "architecture": m.architecture, "width": m.width, **r,
                     "duplicates": redundancy(m.sae)})
    if ce_tokens is not None:
        ce = ce_metrics(model, hook, ce_tokens, {m.name: m.sae for m in members}, progress=progress)
        for row in rows:
            row.update(ce_clean=ce["clean"], ce_zero=ce["zero"], **ce["saes"][row["name"]])
    return rows


def is_monotone_decreasing(values) -> bool:
    return all(b < a for a, b in zip(values, values[1:]))


@torch.no_grad()
def redundancy(sae, threshold: float = 0.9, chunk: int = 4096) -> float:
    """Fraction of latents whose decoder row has cosine > ``threshold`` with *another* latent of the same SAE
    (near-duplicates).  Decoder (d_sae, d_in); computed in row chunks of ``chunk``."""
    W = sae.W_dec.detach().float()
    W = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n = len(W)
    dup = torch.zeros(n, dtype=torch.bool)
    for start in range(0, n, chunk):
        sims = W[start:start + chunk] @ W.T
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = -1.0  # not itself
        dup[start:start + chunk] = (sims.max(1).values > threshold).cpu()
    return dup.double().mean().item()
