"""Meta-SAEs: a BatchTopK SAE trained on the decoder rows of another SAE (Leask et al., ICLR 2025, §4).

Each latent of the base SAE has a decoder row (a direction in the model's residual stream).  The meta-SAE
explains every such row as a sparse, non-negative combination of a few *meta-latents*; latents that
share a meta-latent share a component of meaning, which is the paper's evidence that SAE latents are
not atomic.  The paper's setting (``PAPER_META_SAE``): a BatchTopK meta-SAE with 2304 meta-latents and
k = 4, trained for 2000 batches of 16384 rows with Adam at lr 1e-3 on the (unit-norm) decoder rows of
the 49152-latent GPT-2 SAE, with unit-norm meta-decoder rows and the top-k auxiliary loss for dead
meta-latents; at inference a fixed threshold replaces the batch top-k.  In SAELens terms the trained
meta-SAE is the ``JumpReLUSAE`` that a BatchTopK training SAE becomes, whose threshold is the batch
top-k threshold learned during training.

Shapes: ``decoder`` is (n_latents, d) — one row per base latent; the meta-SAE has ``d_in = d`` and
``d_sae = d_meta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from metasae_utils.training import _check_int, _check_number, check_data, train_sae

#: The paper's meta-SAE hyper-parameters (for the 49152-latent SAE).
PAPER_META_SAE = {"d_meta": 2304, "k": 4, "steps": 2000, "batch_size": 16384, "lr": 1e-3}


def prepare_rows(decoder: torch.Tensor, normalize_rows: bool = True) -> torch.Tensor:
    """(n_latents, d) float32 copy of ``decoder``, each row divided by its norm if ``normalize_rows``."""
    check_data("decoder", decoder)
    rows = decoder.detach().to(torch.float32)
    if normalize_rows:
        norms = rows.norm(dim=-1, keepdim=True)
        zero = (norms.squeeze(-1) == 0).nonzero().flatten()
        if zero.numel():
            raise ValueError(f"decoder row {zero[0].item()} is all zeros and cannot be unit-normalised "
                             f"({zero.numel()} zero rows); drop those latents first")
        rows = rows / norms
    return rows


def train_meta_sae(decoder: torch.Tensor, d_meta: int, k: float, *, steps: int, batch_size: int, lr: float,
                   seed: int, device: str = "cpu", normalize_rows: bool = True, zero_b_dec: bool = True,
                   progress: bool = True, **train_kwargs):
    """Train a BatchTopK meta-SAE on the rows of ``decoder`` with :func:`~metasae_utils.training.train_sae`.

    Args:
        decoder: (n_latents, d) decoder matrix of the base SAE (``sae.W_dec.detach()``).
        d_meta: number of meta-latents.
        k: mean active meta-latents per row (BatchTopK ``k``); the paper uses 4.
        steps, batch_size, lr, seed: as in ``train_sae`` (paper: 2000, 16384, 1e-3).  Batches are drawn
            from seeded shuffled epochs over the rows, so ``steps * batch_size`` may exceed n_latents.
        device: training device and the device of the returned SAE.
        normalize_rows: train on unit-norm rows (default, as in the paper, whose decoder rows are unit
            norm).  The meta-SAE should explain a latent's *direction*, not its decoder norm: norms vary
            with an SAE's parameterisation (and are arbitrary in SAEs that fold them into the encoder).
            :func:`decompose` and :func:`meta_metrics` normalise the same way (read from the SAE's
            metadata).
        zero_b_dec: keep the meta-SAE's decoder bias at zero and frozen (default).  A learned ``b_dec``
            absorbs whatever direction the decoder rows share, so that component is explained by no
            meta-latent.  With ``b_dec`` at zero the shared direction becomes an explicit meta-latent used by
            every latent (visible as ``max_shared_fraction`` = 1 in :func:`meta_metrics`).  In a toy of 96
            planted atoms plus one direction common to all 3000 rows, the mean atom-to-meta-decoder cosine
            was 0.94 frozen vs 0.92 learned, and the learned ``b_dec`` took the common direction
            (norm 0.98).  An earlier toy gave 0.69 -> 0.90.  SAELens has no option for this, so ``train_sae``
            sets ``b_dec`` to zeros and ``requires_grad=False`` before training (``b_dec_init="zeros",
            freeze_b_dec=True``); Adam then never moves it.
        progress: show the trainer's progress bar.
        **train_kwargs: passed to ``train_sae`` (e.g. ``aux_loss_coefficient``, ``dead_feature_window``).

    Returns:
        The inference meta-SAE, a SAELens ``JumpReLUSAE`` (fixed threshold instead of the batch top-k)
        in eval mode, with ``W_enc`` (d, d_meta), unit-norm ``W_dec`` rows (d_meta, d), ``b_dec`` (d,).
        ``sae.cfg.metadata.meta`` records ``normalize_rows`` and the number of rows it was trained on.
    """
    rows = prepare_rows(decoder, normalize_rows)
    _check_int("d_meta", d_meta)
    _check_number("k", k, positive=True)
    _check_int("steps", steps)
    _check_int("batch_size", batch_size)
    _check_number("lr", lr, positive=True)
    for name in ("architecture", "b_dec_init", "freeze_b_dec", "n_steps", "d_sae"):
        if name in train_kwargs:
            raise ValueError(f"train_kwargs: {name!r} is fixed by train_meta_sae and cannot be passed")
    meta_sae = train_sae(rows, "batchtopk", d_meta, n_steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         k=k, device=device, progress=progress,
                         b_dec_init="zeros" if zero_b_dec else "mean", freeze_b_dec=zero_b_dec,
                         **train_kwargs)
    meta_sae.cfg.metadata.meta = {"normalize_rows": bool(normalize_rows), "n_latents": int(rows.shape[0]),
                                  "zero_b_dec": bool(zero_b_dec)}
    return meta_sae


def _normalize_flag(meta_sae, normalize_rows):
    if normalize_rows is not None:
        return bool(normalize_rows)
    info = meta_sae.cfg.metadata.get("meta", None)
    return True if not info else bool(info.get("normalize_rows", True))


def _check_meta_sae(meta_sae, decoder):
    from sae_lens import SAE

    if not isinstance(meta_sae, SAE):
        raise ValueError(f"meta_sae must be a sae_lens.SAE, got {type(meta_sae).__name__}")
    check_data("decoder", decoder)
    if decoder.shape[1] != meta_sae.cfg.d_in:
        raise ValueError(f"decoder rows have d = {decoder.shape[1]} but meta_sae has d_in = {meta_sae.cfg.d_in}")


@dataclass
class Decomposition:
    """Every base latent's sparse code in the meta-SAE, padded to the largest code.

    Attributes:
        indices: (n_latents, m) long — active meta-latents of each row, by decreasing activation,
            padded with -1; ``m`` is the largest number of active meta-latents of any row.
        values: (n_latents, m) float — their activations (> 0), padded with 0.
        n_active: (n_latents,) long — active meta-latents per row.
        reconstruction: (n_latents, d) — the meta-SAE's reconstruction of each row (``decode(encode(row))``).
        rows: (n_latents, d) — the rows that were decomposed (unit-normalised if the meta-SAE was trained so).
        d_meta: number of meta-latents.
    """

    indices: torch.Tensor
    values: torch.Tensor
    n_active: torch.Tensor
    reconstruction: torch.Tensor
    rows: torch.Tensor
    d_meta: int

    def __len__(self) -> int:
        return self.indices.shape[0]

    def to_sparse(self) -> torch.Tensor:
        """The codes as a sparse COO tensor (n_latents, d_meta)."""
        mask = self.indices >= 0
        row = torch.arange(len(self)).unsqueeze(1).expand_as(self.indices)[mask]
        return torch.sparse_coo_tensor(torch.stack([row, self.indices[mask]]), self.values[mask],
                                       (len(self), self.d_meta), check_invariants=True).coalesce()

    def to_dense(self) -> torch.Tensor:
        """The codes as a dense (n_latents, d_meta) tensor (n_latents * d_meta floats: mind the memory)."""
        return self.to_sparse().to_dense()

    def code(self, latent: int) -> list[tuple[int, float]]:
        """``[(meta_id, activation), ...]`` of one latent, by decreasing activation."""
        n = int(self.n_active[latent])
        return list(zip(self.indices[latent, :n].tolist(), self.values[latent, :n].tolist()))


@torch.no_grad()
def decompose(meta_sae, decoder: torch.Tensor, *, normalize_rows: bool | None = None, batch_size: int = 4096,
              progress: bool = False) -> Decomposition:
    """Encode every row of ``decoder`` (n_latents, d) with the meta-SAE's inference encoder (JumpReLU:
    fixed threshold) and decode it again.  Rows are unit-normalised as during training (``normalize_rows``
    default: what ``train_meta_sae`` recorded, else True).  Results are on the CPU."""
    _check_meta_sae(meta_sae, decoder)
    _check_int("batch_size", batch_size)
    rows = prepare_rows(decoder, _normalize_flag(meta_sae, normalize_rows))
    dev, dtype = meta_sae.W_dec.device, meta_sae.W_dec.dtype
    idx_parts, val_parts, recs = [], [], []
    for start in tqdm(range(0, rows.shape[0], batch_size), desc="decompose", disable=not progress, leave=False):
        x = rows[start:start + batch_size].to(device=dev, dtype=dtype)
        f = meta_sae.encode(x)
        recs.append(meta_sae.decode(f).float().cpu())
        m = int((f > 0).sum(-1).max())
        vals, idx = f.topk(max(m, 1), dim=-1)  # sorted by decreasing activation
        active = vals > 0
        idx_parts.append(torch.where(active, idx, -1).cpu())
        val_parts.append(torch.where(active, vals, 0).float().cpu())
    m = max(p.shape[1] for p in idx_parts)
    indices = torch.cat([torch.nn.functional.pad(p, (0, m - p.shape[1]), value=-1) for p in idx_parts])
    values = torch.cat([torch.nn.functional.pad(p, (0, m - p.shape[1]), value=0.0) for p in val_parts])
    return Decomposition(indices=indices, values=values, n_active=(indices >= 0).sum(-1),
                         reconstruction=torch.cat(recs), rows=rows, d_meta=meta_sae.cfg.d_sae)


class Members(NamedTuple):
    """Latents using one meta-latent: ``latents`` (m,) long ids, ``values`` (m,) activations, descending."""

    latents: torch.Tensor
    values: torch.Tensor


def members(decomposition: Decomposition, meta_id: int) -> Members:
    """The base latents whose code uses meta-latent ``meta_id``, sorted by decreasing activation."""
    if not isinstance(decomposition, Decomposition):
        raise ValueError(f"decomposition must be a Decomposition, got {type(decomposition).__name__}")
    if isinstance(meta_id, bool) or not isinstance(meta_id, int) or not 0 <= meta_id < decomposition.d_meta:
        raise ValueError(f"meta_id must be an int in [0, {decomposition.d_meta}), got {meta_id!r}")
    row, col = (decomposition.indices == meta_id).nonzero(as_tuple=True)
    vals = decomposition.values[row, col]
    order = torch.sort(vals, descending=True, stable=True).indices
    return Members(latents=row[order], values=vals[order])


@torch.no_grad()
def meta_metrics(meta_sae, decoder: torch.Tensor, *, decomposition: Decomposition | None = None,
                 normalize_rows: bool | None = None, batch_size: int = 4096, progress: bool = False) -> dict:
    """How well and how sparsely the meta-SAE explains the (normalised) decoder rows.

    Returns a dict:
        ``fvu`` / ``variance_explained``: ``sum ||row - rec||^2 / sum ||row - mean row||^2`` over all rows
            (the convention of ``evaluate.reconstruction_metrics``) and ``1 - fvu``;
        ``mse``: mean over rows and dimensions of the squared error;
        ``mean_cosine``: mean cosine between a row and its reconstruction;
        ``mean_meta_latents_per_latent``: mean active meta-latents per row (L0);
        ``no_meta_latent_fraction``: fraction of rows with an empty code;
        ``dead_fraction``: fraction of meta-latents used by no row;
        ``shared_by``: (d_meta,) long — how many latents use each meta-latent (sums to the total number of
            non-zeros of the codes);
        ``most_shared_meta_latent`` / ``max_shared_fraction``: the meta-latent used by most latents and
            the fraction of latents it is used by;
        ``n_latents``, ``d_meta``.
    """
    if decomposition is None:
        decomposition = decompose(meta_sae, decoder, normalize_rows=normalize_rows, batch_size=batch_size,
                                  progress=progress)
    else:
        _check_meta_sae(meta_sae, decoder)
        if not isinstance(decomposition, Decomposition) or len(decomposition) != decoder.shape[0] \
                or decomposition.d_meta != meta_sae.cfg.d_sae:
            raise ValueError("decomposition does not belong to this meta_sae and decoder "
                             "(expected decompose(meta_sae, decoder))")
    rows, rec = decomposition.rows.double(), decomposition.reconstruction.double()
    n, d = rows.shape
    sq_err = ((rows - rec) ** 2).sum()
    total = ((rows - rows.mean(0)) ** 2).sum()
    fvu = (sq_err / total).item()
    cos = torch.nn.functional.cosine_similarity(rows, rec, dim=-1, eps=1e-12)
    used = decomposition.indices[decomposition.indices >= 0]
    shared_by = torch.bincount(used, minlength=decomposition.d_meta)
    top = int(shared_by.argmax())
    return {
        "fvu": fvu,
        "variance_explained": 1.0 - fvu,
        "mse": (sq_err / (n * d)).item(),
        "mean_cosine": cos.mean().item(),
        "mean_meta_latents_per_latent": decomposition.n_active.double().mean().item(),
        "no_meta_latent_fraction": (decomposition.n_active == 0).double().mean().item(),
        "dead_fraction": (shared_by == 0).double().mean().item(),
        "shared_by": shared_by,
        "most_shared_meta_latent": top,
        "max_shared_fraction": shared_by[top].item() / n,
        "n_latents": n,
        "d_meta": decomposition.d_meta,
    }


# -- chapter-level helpers -------------------------------------------------------------------------------------

def cached_meta_sae(spec: dict, decoder: torch.Tensor, d_meta: int, k: int, *, steps: int, batch_size: int,
                    lr: float, seed: int, progress: bool = True):
    """:func:`train_meta_sae` through the artifact cache: ``spec`` names what ``decoder`` (n, d) is (e.g. the
    base SAE's cache path); the meta-SAE is saved with SAELens and loaded back with ``SAE.load_from_disk``."""
    from . import training
    spec = {**spec, "d_meta": d_meta, "k": k, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    return training.cached_sae("meta_saes", spec, lambda: train_meta_sae(
        decoder, d_meta, k, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress))[0]


def similarity_to_saes(meta_sae, saes: dict, seed: int = 0, threshold: float = 0.7) -> list[dict]:
    """For each SAE (name → SAE), the max cosine of every meta-decoder row to its decoder rows, and the same for
    as many random unit directions (the baseline).  Rows: ``sae``, ``d_sae``, ``max_cos`` (d_meta,),
    ``random_max_cos`` (d_meta,), ``frac_close`` and ``random_frac_close`` (share above ``threshold``)."""
    from .stitching import max_cosine
    W = meta_sae.W_dec.detach()
    # offset seed: a plain manual_seed(seed) randn would reproduce any other seed-`seed` randn matrix exactly
    rand = torch.randn(W.shape, generator=torch.Generator().manual_seed(seed + 1_000_003), dtype=W.dtype)
    rand /= rand.norm(dim=1, keepdim=True)
    out = []
    for name, sae in saes.items():
        D = sae.W_dec.detach().to(W.dtype)
        mc, _ = max_cosine(W, D)
        rc, _ = max_cosine(rand, D)
        out.append({"sae": name, "d_sae": sae.cfg.d_sae, "max_cos": mc, "random_max_cos": rc,
                    "frac_close": (mc > threshold).double().mean().item(),
                    "random_frac_close": (rc > threshold).double().mean().item()})
    return out


def usage_by_group(decomposition: Decomposition, groups: torch.Tensor) -> dict[int, float]:
    """Mean number of active meta-latents per latent, for each value of ``groups`` (n,) (e.g. the width of the
    SAE each decoder row came from)."""
    n_active = decomposition.n_active.double()
    return {int(g): n_active[groups == g].mean().item() for g in torch.unique(groups)}


def split_usage(decomposition: Decomposition, offsets: dict, small: int, large: int, match_small_to_large) -> dict:
    """Do latents gain meta-latents when they split?  ``offsets`` maps width → first row of that SAE in the
    decomposition; ``match_small_to_large`` is a (n_pairs, 2) LongTensor of (small latent, large latent) pairs
    with decoder cosine above the threshold.  For each small latent matched by >= 2 large latents (a split),
    compare its number of meta-latents with the mean over its children."""
    n = decomposition.n_active.double()
    pairs = match_small_to_large
    counts = torch.bincount(pairs[:, 0], minlength=small)
    diffs = []
    for s in torch.nonzero(counts >= 2).squeeze(1).tolist():
        kids = pairs[pairs[:, 0] == s, 1]
        diffs.append(n[offsets[large] + kids].mean().item() - n[offsets[small] + s].item())
    d = torch.tensor(diffs, dtype=torch.float64)
    return {"n_splits": len(diffs), "mean_gain": d.mean().item() if len(d) else float("nan"),
            "frac_children_use_more": (d > 0).double().mean().item() if len(d) else float("nan")}


def closest_in_smaller(sims: list[dict], base_width: int, threshold: float = 0.7) -> tuple[float, float]:
    """Share of meta-latents whose best match over every SAE narrower than ``base_width`` has cosine >
    ``threshold``, and the same share for the random directions.  ``sims``: :func:`similarity_to_saes`.
    Returns ``(frac_close, random_close)``; ``(0.0, 0.0)`` when no SAE is narrower."""
    smaller = [s for s in sims if s["d_sae"] < base_width]
    if not smaller:
        return 0.0, 0.0
    best = torch.stack([s["max_cos"] for s in smaller]).max(0).values  # (d_meta,)
    rbest = torch.stack([s["random_max_cos"] for s in smaller]).max(0).values
    return (best > threshold).double().mean().item(), (rbest > threshold).double().mean().item()


def family_decoders(saes: list) -> tuple[torch.Tensor, torch.Tensor, dict[int, int]]:
    """The decoders of a family of SAEs stacked for one meta-SAE over all sizes.

    Returns ``(rows, widths, offsets)``: (sum d_sae, d_in) decoder rows in family order, (sum d_sae,) the width
    of the SAE each row came from, and width -> index of that SAE's first row.
    """
    widths = [int(s.cfg.d_sae) for s in saes]
    rows = torch.cat([s.W_dec.detach() for s in saes])
    width_of = torch.cat([torch.full((w,), w) for w in widths])
    starts = torch.cumsum(torch.tensor([0] + widths[:-1]), 0).tolist()
    return rows, width_of, dict(zip(widths, starts))
