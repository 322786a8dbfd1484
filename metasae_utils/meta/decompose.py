"""Decomposing decoder rows into meta-latents, and how well and how sparsely a meta-SAE explains them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from ..checks import _check_int, check_data
from .train import prepare_rows


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

    * ``fvu`` / ``variance_explained``: ``sum ||row - rec||^2 / sum ||row - mean row||^2`` over all rows
      (the convention of ``evaluate.reconstruction_metrics``) and ``1 - fvu``;
    * ``mse``: mean over rows and dimensions of the squared error;
    * ``mean_cosine``: mean cosine between a row and its reconstruction;
    * ``mean_meta_latents_per_latent``: mean active meta-latents per row (L0);
    * ``no_meta_latent_fraction``: fraction of rows with an empty code;
    * ``dead_fraction``: fraction of meta-latents used by no row;
    * ``shared_by``: (d_meta,) long — how many latents use each meta-latent (sums to the total number of
      non-zeros of the codes);
    * ``most_shared_meta_latent`` / ``max_shared_fraction``: the meta-latent used by most latents and
      the fraction of latents it is used by;
    * ``n_latents``, ``d_meta``.
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
