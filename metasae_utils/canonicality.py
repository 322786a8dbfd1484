"""How canonical are an SAE's units?  Two decoder-matrix measures of how well one SAE's latents reappear in another.

* :func:`matched_share` — the paper's criterion: the share of A's (live) latents whose decoder row has a cosine
  ``> threshold`` (0.7) with some decoder row of B.  Asymmetric: a wider B matches more of A.
* :func:`hungarian_cosine` — the field's consistency measure (seed-to-seed comparisons): the mean decoder cosine
  of the best one-to-one matching between A's and B's latents (``scipy.optimize.linear_sum_assignment``),
  over ``min(n_a, n_b)`` pairs.  Symmetric.
* :func:`canonicality_matrix` — both measures for every ordered pair of a list of SAEs.

Decoder matrices are SAELens' ``W_dec``: ``(d_sae, d_in)``, one row per latent.  Cosines are signed (a latent's
decoder direction has a sign: its activation is non-negative), rows are normalised here (zero rows stay zero).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .stitching.similarity import _normalised_pair, max_cosine


def _decoder(x) -> torch.Tensor:
    """``x``'s decoder matrix (d_sae, d_in): ``x`` itself when it is a 2-D tensor, else ``x.W_dec``."""
    w = x if isinstance(x, torch.Tensor) else getattr(x, "W_dec", None)
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        raise ValueError(f"need a decoder matrix (d_sae, d_in) or an SAE with W_dec; got {type(x).__name__}")
    return w.detach()


def _live_rows(W: torch.Tensor, live) -> torch.Tensor:
    """The rows of ``W`` (n, d) that ``live`` keeps: None keeps all; else a (n,) bool mask or a list of row ids."""
    if live is None:
        return W
    live = torch.as_tensor(live, device=W.device)
    if live.dtype == torch.bool:
        if live.shape != (W.shape[0],):
            raise ValueError(f"live mask must have shape ({W.shape[0]},) (one flag per row of A); "
                             f"got {tuple(live.shape)}")
        return W[live]
    return W[live.long().flatten()]


def matched_share(A, B, threshold: float = 0.7, live=None) -> float:
    """The share of A's latents whose decoder row has cosine ``> threshold`` with some decoder row of B.

    ``A`` (n_a, d) and ``B`` (n_b, d): decoder matrices (or SAEs: their ``W_dec``).  ``live``: which of A's latents
    count (a (n_a,) bool mask or row ids; None: all) — pass the live latents so that dead ones, whose decoder rows
    are untrained, do not count as unmatched.  Equals ``1 - novel_fraction`` of stitching when A is the larger SAE
    and B the smaller.  NaN when no latent of A counts.  Returns a float in [0, 1].
    """
    a = _live_rows(_decoder(A), live)
    b = _decoder(B)
    if a.shape[0] == 0:
        if b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"need A (n_a, d) and B (n_b, d) with equal d; got {tuple(a.shape)}, {tuple(b.shape)}")
        return float("nan")
    best, _ = max_cosine(a, b)
    return float((best > threshold).double().mean())


def cosine_matrix(A, B) -> torch.Tensor:
    """All decoder cosines between A's rows (n_a, d) and B's rows (n_b, d): (n_a, n_b) float32 / float64."""
    a, b = _normalised_pair(_decoder(A), _decoder(B))
    return a @ b.T


def hungarian_cosine(A, B, live=None) -> float:
    """Mean decoder cosine of the best one-to-one matching of A's latents to B's latents.

    ``A`` (n_a, d) and ``B`` (n_b, d): decoder matrices (or SAEs).  The matching maximises the sum of cosines
    (``scipy.optimize.linear_sum_assignment`` on the (n_a, n_b) cosine matrix); each latent is used at most once, so
    ``min(n_a, n_b)`` pairs are formed and their mean cosine returned (1.0 for identical decoders up to a
    permutation; about 0 for unrelated random directions in high dimension).  ``live``: which of A's latents take
    part (as in :func:`matched_share`).  NaN when either side has no latent.  Memory: one (n_a, n_b) float64 matrix.
    """
    from scipy.optimize import linear_sum_assignment
    a = _live_rows(_decoder(A), live)
    b = _decoder(B)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return float("nan")
    cos = cosine_matrix(a, b).double().cpu().numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())


def canonicality_matrix(saes, threshold: float = 0.7, live: Sequence | None = None,
                        max_cells: int | None = None) -> dict:
    """Both measures for every ordered pair of ``saes``.

    ``saes``: a list of SAEs or decoder matrices (d_sae_i, d_in), or a dict name -> SAE / matrix; all must share
    ``d_in``.  ``live``: None, or one entry per SAE (a bool mask / row ids of its live latents, or None).
    Returns ``names`` (list of str: the dict's keys, else "0", "1", ...), ``matched`` (n, n) float64 with
    ``matched[i, j] = matched_share(saes[i], saes[j], threshold, live[i])`` (the share of i's latents found in j;
    not symmetric) and ``hungarian`` (n, n) float64 with ``hungarian[i, j] = hungarian_cosine(saes[i], saes[j])``
    over i's and j's live latents (symmetric; computed once per unordered pair).  The diagonal compares an SAE with
    itself (1.0 for both measures when its rows are non-zero).  ``max_cells``: the Hungarian matching only for pairs
    whose cosine matrix (live latents of i x live latents of j) has at most that many cells (NaN for larger pairs;
    None: every pair).
    """
    names, items = (list(map(str, saes)), list(saes.values())) if isinstance(saes, dict) else \
        ([str(i) for i in range(len(saes))], list(saes))
    decs = [_decoder(x) for x in items]
    if len({d.shape[1] for d in decs}) > 1:
        widths = ", ".join(f"{n}: {d.shape[1]}" for n, d in zip(names, decs))
        raise ValueError(f"all SAEs must share d_in; got {widths}")
    live = [None] * len(decs) if live is None else list(live)
    if len(live) != len(decs):
        raise ValueError(f"live must have one entry per SAE ({len(decs)}); got {len(live)}")
    rows = [_live_rows(d, m) for d, m in zip(decs, live)]
    n = len(decs)
    matched = torch.full((n, n), float("nan"), dtype=torch.float64)
    hungarian = torch.full((n, n), float("nan"), dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            matched[i, j] = matched_share(decs[i], decs[j], threshold, live[i])
            if j >= i and (max_cells is None or len(rows[i]) * len(rows[j]) <= max_cells):
                hungarian[i, j] = hungarian[j, i] = hungarian_cosine(rows[i], rows[j])
    return {"names": names, "threshold": float(threshold), "matched": matched, "hungarian": hungarian}
