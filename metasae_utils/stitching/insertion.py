"""Inserting a large SAE's latents into a small SAE: one at a time (exact ΔMSE per latent) or cumulatively."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..evaluate import DEAD_RATE
from .build import _as_ids, insert_latents
from .compat import _check_acts, _check_pair, _ItemAccess
from .tokenstats import _VarianceAccumulator, _batches, _output_scale, _sparse_dot_sum


@dataclass
class InsertionDeltas(_ItemAccess):
    """Effect of inserting each large latent ALONE into the small SAE (all (m,) float64 except latent_ids).

    ``base`` holds the small SAE's own ``mse``, ``fvu`` and ``l0`` on the same activations.
    """

    latent_ids: torch.Tensor
    delta_mse: torch.Tensor
    delta_l0: torch.Tensor
    delta_fvu: torch.Tensor
    base: dict = field(default_factory=dict)


@torch.no_grad()
def insertion_deltas(
    small,
    large,
    activations: torch.Tensor,
    latent_ids=None,
    batch_size: int = 4096,
    latent_chunk: int | None = None,
    progress: bool = False,
) -> InsertionDeltas:
    """ΔMSE, ΔFVU and ΔL0 of inserting each latent of ``latent_ids`` (default: all large latents) alone.

    One pass over ``activations`` (n, d): with the small SAE's error ``e = x - x_hat_small`` (B, d), the
    candidates' activations ``A`` (B, m) in the large SAE (equal to their activations after insertion,
    thanks to the encoder-bias shift of :func:`insert_latents`) and their decoder rows ``D`` (m, d),
    inserting latent j alone leaves the error ``e - A[:, j] D[j]``, so::

        ΔMSE_j = sum_n ( -2 A_nj (e_n . D_j) + A_nj^2 |D_j|^2 ) / (n d),     ΔL0_j = mean_n (A_nj != 0).

    (With run-time input normalisation A is multiplied by the per-token output scale.)  Batches of
    ``batch_size`` tokens; the cross term touches only the non-zeros of A, as ``(A^T e)_j . D_j`` (a sparse
    product; on CUDA the dense (B, m) product ``e @ D^T`` in ~256 MB blocks, ``latent_chunk`` is ignored).  Memory
    also holds one (B, d_sae_large) encoding.  Sums are float64.
    Equals :func:`insert_latents` followed by ``reconstruction_metrics`` for each latent.
    """
    _check_pair(small, large)
    return _deltas(small, [(large, latent_ids)], activations, batch_size, progress)[0]


@torch.no_grad()
def insertion_deltas_many(small, larges: list, activations: torch.Tensor, batch_size: int = 4096,
                          progress: bool = False) -> list[InsertionDeltas]:
    """:func:`insertion_deltas` of all the latents of each SAE of ``larges`` into ``small``, in one pass over
    ``activations`` (n, d): the small SAE's encoding and error are computed once per batch and serve every SAE (an
    entry of ``larges`` that is ``small`` itself, the self-duplicate insertion, reuses the encoding too).  The same
    numbers as one :func:`insertion_deltas` call per SAE.  Returns one :class:`InsertionDeltas` per SAE, in order."""
    for large in larges:
        _check_pair(small, large)
    return _deltas(small, [(large, None) for large in larges], activations, batch_size, progress)


class _Candidates:
    """Running sums of one SAE's candidate latents ``ids`` (m,) over the batches (float64, on ``dev``)."""

    def __init__(self, small, large, latent_ids, dev):
        self.large, self.everyone = large, latent_ids is None  # all latents, in order: no column selection
        self.ids = _as_ids(latent_ids, large.cfg.d_sae, large.W_dec.device)
        self.D = large.W_dec.detach()[self.ids].to(device=dev, dtype=torch.float64)  # (m, d)
        self.reuse = self.everyone and large is small  # the self-duplicate case: the small SAE's encoding is A
        m = self.ids.numel()
        self.cross, self.sq, self.fires = (torch.zeros(m, dtype=torch.float64, device=dev) for _ in range(3))

    def add(self, x: torch.Tensor, f_small: torch.Tensor, err: torch.Tensor, scale: torch.Tensor | None) -> None:
        """Add one batch: x (B, d), the small SAE's encoding f_small (B, d_small), its error err (B, d) float64 and
        the output scale (B,) or None."""
        large, dev = self.large, err.device
        f = f_small if self.reuse else large.encode(x.to(large.W_dec.device))
        f = (f if self.everyone else f[:, self.ids]).to(dev)  # (B, m)
        r, k = torch.nonzero(f, as_tuple=True)
        a = f[r, k].double()  # (nnz,) the candidates' activations, zeros left out
        if scale is not None:
            a = a * scale.double()[r]
        self.add_sums(k, a, _sparse_dot_sum(err, r, k, a, self.D),
                      torch.bincount(k, minlength=self.ids.numel()).to(self.fires.dtype))

    def add_sums(self, k: torch.Tensor, a: torch.Tensor, cross: torch.Tensor, fires: torch.Tensor) -> None:
        """Add one batch's pieces, computed by :meth:`add` or by a pass that already has them: the non-zeros'
        latent indices k (nnz,) and scaled activations a (nnz,) float64, the cross term (m,) float64 (the
        ``_sparse_dot_sum`` of the batch's error with these latents' decoder rows) and the firing counts (m,)."""
        self.fires += fires
        self.cross += cross
        self.sq.index_add_(0, k, a**2)

    def result(self, n: int, d: int, total_var: float, base: dict) -> InsertionDeltas:
        delta_sq = (-2.0 * self.cross + self.sq * (self.D**2).sum(1)).cpu()
        return InsertionDeltas(latent_ids=self.ids.cpu(), delta_mse=delta_sq / (n * d),
                               delta_l0=(self.fires / n).cpu(), delta_fvu=delta_sq / total_var, base=dict(base))


def _deltas(small, larges: list[tuple], activations: torch.Tensor, batch_size: int, progress: bool
            ) -> list[InsertionDeltas]:
    """The pass behind :func:`insertion_deltas`: ``larges`` holds (SAE, latent_ids or None) pairs."""
    _check_acts(small, activations)
    dev = small.W_dec.device
    cands = [_Candidates(small, large, ids, dev) for large, ids in larges]
    n, d = activations.shape[0], small.cfg.d_in
    base_sq, base_l0 = 0.0, 0.0
    var = _VarianceAccumulator(d)
    for _, x in _batches(activations, batch_size, "insertion deltas", progress):
        x = x.to(dev)
        f_small = small.encode(x)
        err = x.double() - small.decode(f_small).double()  # (B, d)
        scale = _output_scale(small, x)
        for c in cands:
            c.add(x, f_small, err, scale)
        base_sq += float((err**2).sum())
        base_l0 += float((f_small != 0).sum())
        var.add(x)
    base = {"mse": base_sq / (n * d), "fvu": base_sq / var.total, "l0": base_l0 / n}
    return [c.result(n, d, var.total, base) for c in cands]


def cumulative_insertion(small, large, activations: torch.Tensor, latent_ids: torch.Tensor, n_points: int = 12,
                         batch_size: int = 4096) -> list[dict]:
    """Exact (not additive) metrics after inserting the first m of ``latent_ids`` (in the given order) into the
    small SAE, for ``n_points`` values of m from 0 to all.  Returns dicts with ``n``, ``mse``, ``l0``, ``fvu``."""
    from ..evaluate import reconstruction_metrics
    ids = torch.as_tensor(latent_ids, dtype=torch.long)
    counts = sorted({round(i * len(ids) / (n_points - 1)) for i in range(n_points)}) if len(ids) else [0]
    out = []
    for m in counts:
        sae = insert_latents(small, large, ids[:m]) if m else small
        r = reconstruction_metrics(sae, activations, batch_size=batch_size)
        out.append({"n": m, "mse": r["mse"], "l0": r["l0"], "fvu": r["fvu"]})
    return out


def insertion_shares(cls, deltas: InsertionDeltas) -> dict:
    """How often single insertions move the MSE the way the paper says, per class.

    ``cls``: a :class:`~.classify.LatentClassification` of the large SAE's latents; ``deltas``: their
    :func:`insertion_deltas` for *all* large latents.  Returns ``novel_lowers`` / ``recon_raises`` (share of
    novel latents with ΔMSE < 0 / reconstruction latents with ΔMSE > 0; NaN when the class is empty), ``novel_raises``
    (novel latents with ΔMSE > 0: the control of ``recon_raises``) and the
    per-class ΔMSE tensors ``d_novel`` (n_novel,) and ``d_recon`` (n_recon,).
    """
    dm = torch.as_tensor(deltas.delta_mse)
    d_novel, d_recon = dm[cls.novel], dm[cls.reconstruction]
    return {"novel_lowers": float((d_novel < 0).double().mean()) if len(d_novel) else float("nan"),
            "recon_raises": float((d_recon > 0).double().mean()) if len(d_recon) else float("nan"),
            "novel_raises": float((d_novel > 0).double().mean()) if len(d_novel) else float("nan"),
            "d_novel": d_novel, "d_recon": d_recon}


def best_first(latent_ids: torch.Tensor, delta_mse: torch.Tensor) -> torch.Tensor:
    """``latent_ids`` (m,) sorted by their ΔMSE (m,), the most MSE-lowering first."""
    return torch.as_tensor(latent_ids)[torch.argsort(torch.as_tensor(delta_mse))]


def self_duplicate_control(sae, activations: torch.Tensor, batch_size: int = 4096,
                           dead_rate: float | None = DEAD_RATE) -> float:
    """The share of ``sae``'s own live latents whose copy, inserted alone, lowers its MSE on ``activations`` (n, d_in).

    A copy doubles the latent's contribution along its decoder direction, so it lowers the MSE exactly when the
    SAE under-reconstructs along that direction (L1 shrinkage, short training).  On a well-trained SAE the share is
    near 0; above 0.5 "inserting a latent lowers the MSE" says more about the small SAE than about the latent, and
    the single-insertion claims cannot be tested on that family.  Latents firing on <= ``dead_rate`` of the rows are
    dead and left out, like the dead latents of the classes it controls (``dead_rate=None``: every latent counts,
    a dead one as not lowering).  Returns a float in [0, 1] (NaN when no latent is live).
    """
    return self_duplicates(sae, activations, batch_size, dead_rate)["share"]


def self_duplicates(sae, activations: torch.Tensor, batch_size: int = 4096, dead_rate: float | None = DEAD_RATE
                    ) -> dict:
    """:func:`self_duplicate_control` with what it learns on the way: ``share`` (float), ``fire_rate`` (d_sae,)
    float64 (each latent's firing rate on ``activations``) and ``dead`` (LongTensor of the dead latents' ids)."""
    return self_duplicates_of(insertion_deltas(sae, sae, activations, batch_size=batch_size), dead_rate)


def self_duplicates_of(deltas: InsertionDeltas, dead_rate: float | None = DEAD_RATE) -> dict:
    """:func:`self_duplicates` from an SAE's :func:`insertion_deltas` into itself (e.g. one of
    :func:`insertion_deltas_many`'s results)."""
    rate = torch.as_tensor(deltas.delta_l0, dtype=torch.float64)
    live = torch.ones_like(rate, dtype=torch.bool) if dead_rate is None else rate > dead_rate
    lowers = torch.as_tensor(deltas.delta_mse)[live] < 0
    return {"share": float(lowers.double().mean()) if live.any() else float("nan"), "fire_rate": rate,
            "dead": torch.nonzero(~live).flatten()}
