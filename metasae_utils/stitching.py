"""SAE stitching (Leask et al., ICLR 2025, "Sparse Autoencoders Do Not Find Canonical Units of Analysis").

A small and a large SAE are trained on the same activations.  A large-SAE latent whose decoder row has
maximum cosine similarity ``> threshold`` with some small-SAE decoder row is a *reconstruction* latent,
the others are *novel*.  Inserting novel latents into the small SAE lowers its MSE; inserting
reconstruction latents raises it.  Swapping matched groups (connected components of the bipartite graph
of (small, large) decoder pairs with cosine ``> threshold``) one at a time interpolates from the small SAE
to the large one, tracing an (L0, MSE) path.

Conventions
-----------
* Decoder matrices are SAELens' ``W_dec`` of shape ``(d_sae, d_in)``; encoders ``W_enc`` are
  ``(d_in, d_sae)``.  Activations are ``(n_tokens, d_in)``.
* MSE, FVU and L0 follow :mod:`metasae_utils.evaluate` (mean over tokens *and* dimensions, etc.).
* Only SAEs whose latents are *independent* are supported: a latent's activation depends on the input
  alone, never on the other latents (StandardSAE / JumpReLUSAE / GatedSAE and their training classes;
  BatchTopK-trained SAEs are saved as JumpReLU for inference and so qualify).  TopK, AbsTopK, BatchTopK
  and Matryoshka (at training time), MatchingPursuit, Temporal SAEs and transcoders are refused.

Decoder bias and centring
-------------------------
SAELens encodes ``(x' - b_dec * apply_b_dec_to_input) @ W_enc + b_enc`` (``x'`` = the normalised input)
and decodes ``f @ W_dec + b_dec``.  A latent moved from SAE ``L`` into an SAE whose input offset is
``o_new`` gets its encoder bias shifted by ``(o_new - o_L) @ W_enc_L[:, i]`` (``o = b_dec`` when the SAE
applies ``b_dec`` to its input, else ``0``), so its pre-activation, and hence its activation, equals its
activation in ``L`` exactly (Gated SAEs: ``b_gate`` gets the shift, ``b_mag`` the shift times
``exp(r_mag)``; JumpReLU thresholds are copied unchanged).  In :func:`interpolate` the change of decoder
bias ``b_dec_small -> b_dec_large`` is one extra step (a "b_dec" pseudo-group with ΔL0 = 0), so the path
starts at exactly the small SAE and ends at exactly the large SAE.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = [
    "max_cosine",
    "pairs_above",
    "LatentClassification",
    "classify_latents",
    "novel_fraction",
    "stitch",
    "insert_latents",
    "InsertionDeltas",
    "insertion_deltas",
    "Group",
    "swap_groups",
    "interpolate",
]

SIM_BUDGET_BYTES = 256 * 2**20  # size of one similarity / product block
BDEC_GROUP = -1  # ``group`` index of the decoder-bias step in an interpolation path


class _ItemAccess:
    """Lets result dataclasses be read like dicts (``res["novel"]``) as well as attributes."""

    def __getitem__(self, key: str):
        return getattr(self, key)

    def keys(self):
        return [f.name for f in dataclasses.fields(self)]


# ----------------------------------------------------------------------------------------------------
# Decoder-direction similarity
# ----------------------------------------------------------------------------------------------------


def _sim_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = torch.promote_types(tensors[0].dtype, tensors[1].dtype)
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _auto_chunk(n_cols: int, dtype: torch.dtype, budget: int = SIM_BUDGET_BYTES) -> int:
    """Rows per block so that a (rows, n_cols) block of ``dtype`` takes about ``budget`` bytes."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(1, budget // max(1, n_cols * itemsize))


def _normalised_pair(W_a: torch.Tensor, W_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm rows of W_a (n_a, d) and W_b (n_b, d), on W_a's device; zero rows stay zero."""
    if W_a.ndim != 2 or W_b.ndim != 2 or W_a.shape[1] != W_b.shape[1]:
        raise ValueError(f"need W_a (n_a, d) and W_b (n_b, d) with equal d; got {tuple(W_a.shape)}, {tuple(W_b.shape)}")
    if W_b.shape[0] == 0:
        raise ValueError("W_b has no rows")
    dtype = _sim_dtype(W_a, W_b)
    a = F.normalize(W_a.detach().to(dtype), dim=1)
    b = F.normalize(W_b.detach().to(device=W_a.device, dtype=dtype), dim=1)
    return a, b


@torch.no_grad()
def max_cosine(W_a: torch.Tensor, W_b: torch.Tensor, chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For every row of ``W_a`` (n_a, d): the largest cosine similarity with a row of ``W_b`` (n_b, d).

    Rows are normalised once; then blocks of ``chunk_size`` rows of W_a are multiplied by W_b^T into a
    reused (chunk_size, n_b) buffer and reduced with ``max``, so the full n_a x n_b matrix is never held.
    ``chunk_size=None`` picks a block of about 256 MB.  Runs on W_a's device, in float32 or float64
    (half precision inputs are upcast to float32).

    Returns ``(values, indices)``: (n_a,) max cosine and (n_a,) LongTensor argmax row of W_b.
    """
    a, b = _normalised_pair(W_a, W_b)
    n_a, n_b = a.shape[0], b.shape[0]
    chunk = int(chunk_size) if chunk_size else _auto_chunk(n_b, a.dtype)
    if chunk < 1:
        raise ValueError("chunk_size must be positive")
    values = torch.empty(n_a, dtype=a.dtype, device=a.device)
    indices = torch.empty(n_a, dtype=torch.long, device=a.device)
    buf = torch.empty(min(chunk, n_a), n_b, dtype=a.dtype, device=a.device)
    bt = b.T
    for start in range(0, n_a, chunk):
        stop = min(start + chunk, n_a)
        block = torch.mm(a[start:stop], bt, out=buf[: stop - start])
        torch.max(block, dim=1, out=(values[start:stop], indices[start:stop]))
    return values, indices


@torch.no_grad()
def pairs_above(
    W_a: torch.Tensor, W_b: torch.Tensor, threshold: float, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs (i, j) with cos(W_a[i], W_b[j]) > threshold, computed in row blocks like :func:`max_cosine`.

    Returns ``(i, j, cos)``: (p,) LongTensor rows of W_a, (p,) LongTensor rows of W_b, (p,) cosines,
    sorted by i then j.
    """
    a, b = _normalised_pair(W_a, W_b)
    n_a, n_b = a.shape[0], b.shape[0]
    chunk = int(chunk_size) if chunk_size else _auto_chunk(n_b, a.dtype)
    if chunk < 1:
        raise ValueError("chunk_size must be positive")
    buf = torch.empty(min(chunk, n_a), n_b, dtype=a.dtype, device=a.device)
    bt = b.T
    ii, jj, cc = [], [], []
    for start in range(0, n_a, chunk):
        stop = min(start + chunk, n_a)
        block = torch.mm(a[start:stop], bt, out=buf[: stop - start])
        i, j = torch.nonzero(block > threshold, as_tuple=True)
        ii.append(i + start)
        jj.append(j)
        cc.append(block[i, j])
    if not ii:
        empty = torch.empty(0, dtype=torch.long, device=a.device)
        return empty, empty.clone(), torch.empty(0, dtype=a.dtype, device=a.device)
    return torch.cat(ii), torch.cat(jj), torch.cat(cc)


# ----------------------------------------------------------------------------------------------------
# Which SAEs can be stitched
# ----------------------------------------------------------------------------------------------------

# per-latent parameters and the axis along which they index latents
_LATENT_AXES = {
    "standard": {"W_enc": 1, "b_enc": 0, "W_dec": 0},
    "jumprelu": {"W_enc": 1, "b_enc": 0, "W_dec": 0, "threshold": 0},
    "gated": {"W_enc": 1, "W_dec": 0, "b_gate": 0, "b_mag": 0, "r_mag": 0},
}


def _supported_classes() -> dict[type, str]:
    """SAELens classes whose latents are independent, mapped to their parameter layout."""
    from sae_lens.saes import (
        GatedSAE,
        GatedTrainingSAE,
        JumpReLUSAE,
        JumpReLUTrainingSAE,
        StandardSAE,
        StandardTrainingSAE,
    )

    return {
        StandardSAE: "standard",
        StandardTrainingSAE: "standard",
        JumpReLUSAE: "jumprelu",
        JumpReLUTrainingSAE: "jumprelu",
        GatedSAE: "gated",
        GatedTrainingSAE: "gated",
    }


def _layout(sae) -> str:
    """Parameter layout name of a supported SAE; ValueError (with the reason) otherwise."""
    supported = _supported_classes()
    layout = supported.get(type(sae))
    if layout is None:
        names = ", ".join(sorted(c.__name__ for c in supported))
        raise ValueError(
            f"{type(sae).__name__} is not supported for stitching: its latents must be independent "
            f"(each latent's activation a function of the input alone), and it must be one of: {names}. "
            "TopK / BatchTopK / Matryoshka (at training time), MatchingPursuit, Temporal SAEs and transcoders "
            "are refused."
        )
    return layout


def _check_pair(small, large) -> str:
    """Validate that ``small`` and ``large`` can be stitched; return their parameter layout."""
    layout = _layout(small)
    _layout(large)
    if type(small) is not type(large):
        raise ValueError(
            f"architectures differ: small is {type(small).__name__}, large is {type(large).__name__}"
        )
    if small.cfg.d_in != large.cfg.d_in:
        raise ValueError(f"d_in differs: small has d_in={small.cfg.d_in}, large has d_in={large.cfg.d_in}")
    for name in ("normalize_activations", "reshape_activations"):
        a, b = getattr(small.cfg, name), getattr(large.cfg, name)
        if a != b:
            raise ValueError(f"cfg.{name} differs: small has {a!r}, large has {b!r}")
    return layout


def _check_decoders(small, large) -> None:
    if small.W_dec.shape[1] != large.W_dec.shape[1]:
        raise ValueError(
            f"d_in differs: small W_dec is {tuple(small.W_dec.shape)}, large W_dec is {tuple(large.W_dec.shape)}"
        )


# ----------------------------------------------------------------------------------------------------
# Classification of the large SAE's latents
# ----------------------------------------------------------------------------------------------------


@dataclass
class LatentClassification(_ItemAccess):
    """Large-SAE latents split by their best decoder cosine with the small SAE.

    ``novel`` (LongTensor): large ids with max cos <= threshold; ``reconstruction`` (LongTensor): > threshold;
    ``max_cos`` (n_large,) best cosine; ``match`` (n_large,) index of the best small latent.
    """

    threshold: float
    novel: torch.Tensor
    reconstruction: torch.Tensor
    max_cos: torch.Tensor
    match: torch.Tensor

    @property
    def novel_fraction(self) -> float:
        return self.novel.numel() / max(1, self.max_cos.numel())


def classify_latents(small, large, threshold: float = 0.7, chunk_size: int | None = None) -> LatentClassification:
    """Classify each of the large SAE's latents as novel (max decoder cos <= threshold) or reconstruction."""
    _check_decoders(small, large)
    max_cos, match = max_cosine(large.W_dec, small.W_dec, chunk_size=chunk_size)
    above = max_cos > threshold
    return LatentClassification(
        threshold=float(threshold),
        novel=torch.nonzero(~above).flatten(),
        reconstruction=torch.nonzero(above).flatten(),
        max_cos=max_cos,
        match=match,
    )


def novel_fraction(small, large, thresholds: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Fraction of the large SAE's latents that are novel at each threshold: (len(thresholds),) float64.

    The max cosines are computed once, so a whole threshold sweep costs one :func:`max_cosine`.
    """
    _check_decoders(small, large)
    max_cos, _ = max_cosine(large.W_dec, small.W_dec)
    t = torch.as_tensor(thresholds, dtype=torch.float64).flatten()
    return (max_cos.double().cpu()[None, :] <= t[:, None]).double().mean(dim=1)


# ----------------------------------------------------------------------------------------------------
# Building stitched SAEs
# ----------------------------------------------------------------------------------------------------


def _input_offset(sae) -> torch.Tensor:
    """What the SAE subtracts from its (normalised) input before encoding: (d_in,) float64."""
    b = sae.b_dec.detach().double()
    return b if sae.cfg.apply_b_dec_to_input else torch.zeros_like(b)


def _as_ids(ids, n: int, device) -> torch.Tensor:
    """Latent ids (any int sequence / tensor / None = all) as a (m,) LongTensor, range-checked."""
    if ids is None:
        return torch.arange(n, device=device)
    t = torch.as_tensor(ids, dtype=torch.long).flatten().to(device)
    if t.numel() and (t.min() < 0 or t.max() >= n):
        raise ValueError(f"latent ids must lie in [0, {n}); got min {int(t.min())}, max {int(t.max())}")
    return t


def _latent_params(sae, layout: str, ids: torch.Tensor, target_offset: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float64 per-latent parameters of ``sae`` for latents ``ids`` (m,), re-biased for a new input offset.

    ``target_offset`` (d_in,) is what the destination SAE subtracts from its input.  The encoder biases
    are shifted by ``(target_offset - own_offset) @ W_enc[:, ids]`` so the latents' pre-activations, and
    therefore their activations, are unchanged.  Returns name -> tensor with the latent axis of length m.
    """
    dev = target_offset.device
    ids = ids.to(sae.W_dec.device)
    params = {
        name: getattr(sae, name).detach().index_select(axis, ids).to(device=dev, dtype=torch.float64)
        for name, axis in _LATENT_AXES[layout].items()
    }
    shift = (target_offset - _input_offset(sae).to(dev)) @ params["W_enc"]  # (m,)
    if "b_enc" in params:
        params["b_enc"] = params["b_enc"] + shift
    if "b_gate" in params:
        params["b_gate"] = params["b_gate"] + shift
        params["b_mag"] = params["b_mag"] + shift * params["r_mag"].exp()
    return params


@torch.no_grad()
def stitch(
    small,
    large,
    small_ids=None,
    large_ids=None,
    b_dec: Literal["small", "large"] = "small",
):
    """A new SAE of the small SAE's class and config holding small latents ``small_ids`` then large ``large_ids``.

    ``small_ids`` (default: all small latents) and ``large_ids`` (default: none) are int sequences or
    LongTensors.  The new SAE's latents are ``small_ids`` followed by ``large_ids``, so
    ``d_sae = len(small_ids) + len(large_ids)``.  Its decoder bias is the small or the large SAE's
    (``b_dec="small" | "large"``); every latent's encoder bias is shifted so that its activation equals its
    activation in the SAE it came from (see the module docstring).  Built from ``dataclasses.replace`` of a
    copy of ``small.cfg`` and a loaded state dict, on the small SAE's device and dtype.
    """
    layout = _check_pair(small, large)
    if b_dec not in ("small", "large"):
        raise ValueError(f"b_dec must be 'small' or 'large', got {b_dec!r}")
    dev = small.W_dec.device
    s_ids = _as_ids(small_ids, small.cfg.d_sae, dev)
    l_ids = _as_ids(large_ids, large.cfg.d_sae, dev)
    bias_src = small if b_dec == "small" else large
    new_b_dec = bias_src.b_dec.detach().to(device=dev, dtype=torch.float64)
    target = new_b_dec if small.cfg.apply_b_dec_to_input else torch.zeros_like(new_b_dec)
    p_small = _latent_params(small, layout, s_ids, target)
    p_large = _latent_params(large, layout, l_ids, target)
    state = {name: torch.cat([p_small[name], p_large[name]], dim=axis) for name, axis in _LATENT_AXES[layout].items()}
    state["b_dec"] = new_b_dec
    cfg = dataclasses.replace(copy.deepcopy(small.cfg), d_sae=int(s_ids.numel() + l_ids.numel()))
    new = type(small)(cfg)
    new.load_state_dict({k: v.to(dtype=getattr(new, k).dtype) for k, v in state.items()})
    return new.to(dev)


def insert_latents(small, large, latent_ids):
    """The small SAE plus the large SAE's latents ``latent_ids`` (m,): a NEW SAE with d_sae = d_small + m.

    Copies, for each inserted latent i: the encoder column ``W_enc[:, i]``, encoder bias ``b_enc[i]``,
    decoder row ``W_dec[i]`` and (JumpReLU) ``threshold[i]`` (Gated: ``b_gate``, ``b_mag``, ``r_mag``).
    The decoder bias stays the small SAE's ``b_dec``.  SAELens subtracts ``b_dec`` from the input before
    encoding when ``cfg.apply_b_dec_to_input`` (StandardSAE, JumpReLUSAE, GatedSAE all do so via
    ``process_sae_in``), so the inserted latent's encoder bias is shifted by
    ``(b_dec_small - b_dec_large) @ W_enc_large[:, i]`` (each ``b_dec`` counted only if its SAE applies it
    to the input): its activation in the new SAE then equals exactly its activation in the large SAE.
    The new SAE's latents are the small SAE's (same order) followed by ``latent_ids``.

    Raises ValueError for unsupported architectures (latents not independent), differing architectures,
    ``d_in`` or input normalisation.
    """
    return stitch(small, large, small_ids=None, large_ids=latent_ids, b_dec="small")


# ----------------------------------------------------------------------------------------------------
# Per-token statistics shared by insertion_deltas and interpolate
# ----------------------------------------------------------------------------------------------------


def _output_scale(sae, x: torch.Tensor) -> torch.Tensor | None:
    """Per-token factor s (B,) with ``sae.decode(f) = s * (f @ W_dec + b_dec) + offset(x)``; None if s = 1.

    Mirrors SAELens' run-time normalisations: ``constant_norm_rescale`` divides the output by
    ``sqrt(d_in) / |x|``; ``layer_norm`` multiplies it by the (unbiased) std of the centred input.  Other
    modes ("none", "expected_average_only_in", "covariance_whitening") do nothing at inference.
    """
    mode = sae.cfg.normalize_activations
    x = x.to(sae.dtype)
    if mode == "constant_norm_rescale":
        return 1.0 / ((sae.cfg.d_in**0.5) / x.norm(dim=-1))
    if mode == "layer_norm":
        return (x - x.mean(dim=-1, keepdim=True)).std(dim=-1)
    return None


def _masked_dot_sum(err: torch.Tensor, acts: torch.Tensor, W: torch.Tensor, chunk: int) -> torch.Tensor:
    """``sum_n acts[n, j] * (err[n] . W[j])`` for every j: (m,) float64.

    err (B, d) float64, acts (B, m), W (m, d); done in blocks of ``chunk`` latents.
    """
    m = W.shape[0]
    out = torch.empty(m, dtype=torch.float64, device=err.device)
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        proj = err @ W[s:e].to(device=err.device, dtype=torch.float64).T  # (B, e-s)
        out[s:e] = (proj * acts[:, s:e].to(torch.float64)).sum(0)
    return out


class _VarianceAccumulator:
    """Accumulates sum x and sum |x|^2 in float64 for the FVU denominator (as in evaluate.py)."""

    def __init__(self, d: int):
        self.s1 = torch.zeros(d, dtype=torch.float64)
        self.s2 = torch.zeros((), dtype=torch.float64)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        xd = x.double().cpu()
        self.s1 += xd.sum(0)
        self.s2 += (xd**2).sum()
        self.n += xd.shape[0]

    @property
    def total(self) -> float:
        return float(self.s2 - (self.s1**2).sum() / self.n)


def _batches(acts: torch.Tensor, batch_size: int, desc: str, progress: bool):
    n = acts.shape[0]
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        yield start, acts[start : start + batch_size]


def _check_acts(sae, acts: torch.Tensor) -> None:
    if acts.ndim != 2 or acts.shape[1] != sae.cfg.d_in:
        raise ValueError(f"activations must be (n_tokens, d_in={sae.cfg.d_in}); got {tuple(acts.shape)}")
    if acts.shape[0] == 0:
        raise ValueError("activations are empty")


# ----------------------------------------------------------------------------------------------------
# Inserting latents one at a time
# ----------------------------------------------------------------------------------------------------


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
    inserting latent j alone leaves the error ``e - A[:, j] D[j]``, so

        ΔMSE_j = sum_n ( -2 A_nj (e_n . D_j) + A_nj^2 |D_j|^2 ) / (n d),     ΔL0_j = mean_n (A_nj != 0).

    (With run-time input normalisation A is multiplied by the per-token output scale.)  Batches of
    ``batch_size`` tokens; the (B, m) product ``e @ D^T`` is formed ``latent_chunk`` latents at a time
    (default: ~256 MB blocks).  Memory also holds one (B, d_sae_large) encoding.  Sums are float64.
    Equals :func:`insert_latents` followed by ``reconstruction_metrics`` for each latent.
    """
    _check_pair(small, large)
    _check_acts(small, activations)
    dev = small.W_dec.device
    ids = _as_ids(latent_ids, large.cfg.d_sae, large.W_dec.device)
    D = large.W_dec.detach()[ids].to(device=dev, dtype=torch.float64)  # (m, d)
    D_sq = (D**2).sum(1)  # (m,)
    m, n, d = ids.numel(), activations.shape[0], small.cfg.d_in
    sum_cross = torch.zeros(m, dtype=torch.float64, device=dev)
    sum_sq = torch.zeros(m, dtype=torch.float64, device=dev)
    fires = torch.zeros(m, dtype=torch.float64, device=dev)
    base_sq, base_l0 = 0.0, 0.0
    var = _VarianceAccumulator(d)
    for _, x in _batches(activations, batch_size, "insertion deltas", progress):
        x = x.to(dev)
        f_small = small.encode(x)
        err = x.double() - small.decode(f_small).double()  # (B, d)
        A = large.encode(x.to(large.W_dec.device))[:, ids].to(device=dev, dtype=torch.float64)  # (B, m)
        fires += (A != 0).sum(0)
        scale = _output_scale(small, x)
        if scale is not None:
            A = A * scale.double()[:, None]
        chunk = latent_chunk or _auto_chunk(x.shape[0], torch.float64)
        sum_cross += _masked_dot_sum(err, A, D, chunk)
        sum_sq += (A**2).sum(0)
        base_sq += float((err**2).sum())
        base_l0 += float((f_small != 0).sum())
        var.add(x)
    delta_sq = (-2.0 * sum_cross + sum_sq * D_sq).cpu()
    return InsertionDeltas(
        latent_ids=ids.cpu(),
        delta_mse=delta_sq / (n * d),
        delta_l0=(fires / n).cpu(),
        delta_fvu=delta_sq / var.total,
        base={"mse": base_sq / (n * d), "fvu": base_sq / var.total, "l0": base_l0 / n},
    )


# ----------------------------------------------------------------------------------------------------
# Matched groups
# ----------------------------------------------------------------------------------------------------


@dataclass
class Group:
    """One connected component of the (small, large) decoder-similarity graph.

    ``small_ids`` / ``large_ids``: LongTensors of small / large latent ids.  Swapping the group removes its
    small latents and adds its large ones.  ``kind``: "matched" (both sides), "removed" (small latent
    with no match) or "novel" (large latent with no match).
    """

    small_ids: torch.Tensor
    large_ids: torch.Tensor

    @property
    def kind(self) -> str:
        if self.small_ids.numel() and self.large_ids.numel():
            return "matched"
        return "removed" if self.small_ids.numel() else "novel"


def _components(n_small: int, n_large: int, i_large: np.ndarray, j_small: np.ndarray) -> np.ndarray:
    """Component label (n_small + n_large,) of the bipartite graph; nodes 0..n_small-1 are small latents."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = n_small + n_large
    rows = j_small.astype(np.int64)
    cols = n_small + i_large.astype(np.int64)
    graph = sp.coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels


def swap_groups(small, large, threshold: float = 0.7, chunk_size: int | None = None) -> list[Group]:
    """Connected components of the bipartite graph linking small latent j and large latent i when
    cos(W_dec_small[j], W_dec_large[i]) > threshold, orphans included.

    Every small and every large latent is in exactly one group.  Groups are ordered by their smallest
    node (small latents numbered first, then large ones), ids inside a group ascending.
    """
    _check_decoders(small, large)
    n_s, n_l = small.cfg.d_sae, large.cfg.d_sae
    i, j, _ = pairs_above(large.W_dec, small.W_dec, threshold, chunk_size=chunk_size)
    labels = _components(n_s, n_l, i.cpu().numpy(), j.cpu().numpy())
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels))[:-1]
    groups = []
    for members in np.split(order, bounds):
        members = torch.from_numpy(members)
        is_small = members < n_s
        groups.append(Group(small_ids=members[is_small], large_ids=members[~is_small] - n_s))
    return groups


# ----------------------------------------------------------------------------------------------------
# Interpolating from the small SAE to the large one
# ----------------------------------------------------------------------------------------------------


@dataclass
class _UnitStats:
    """Everything interpolate needs, gathered in one pass over the activations.

    Units are the small latents (0..n_s-1), the large latents (n_s..n_s+n_l-1) and the decoder-bias
    change (last unit: activation = output scale, decoder row = b_dec_large - b_dec_small).
    ``A`` / ``At``: (n, N) / (N, n) scipy CSR of the units' (scaled) activations; ``D``: (N, d) decoder
    rows; ``c``: (N,) sum_n A_nu (e_n . D_u) with e the small SAE's error; ``fires``: (N,) firing counts.
    """

    A: object
    At: object
    D: np.ndarray
    c: np.ndarray
    fires: np.ndarray
    sq_small: float
    sq_large: float
    total_var: float
    n: int
    d: int


def _collect_unit_stats(small, large, acts: torch.Tensor, batch_size: int, progress: bool) -> _UnitStats:
    """One batched pass: encodings of both SAEs as a sparse matrix plus the first-order statistics."""
    import scipy.sparse as sp

    dev = small.W_dec.device
    n_s, n_l = small.cfg.d_sae, large.cfg.d_sae
    N, (n, d) = n_s + n_l + 1, acts.shape
    db = large.b_dec.detach().to(dev).double() - small.b_dec.detach().double()  # (d,)
    W_s, W_l = small.W_dec.detach(), large.W_dec.detach().to(dev)
    c = torch.zeros(N, dtype=torch.float64, device=dev)
    fires = torch.zeros(N, dtype=torch.float64, device=dev)
    rows, cols, vals = [], [], []
    sq_small = sq_large = 0.0
    var = _VarianceAccumulator(d)
    for start, x in _batches(acts, batch_size, "stitching stats", progress):
        x = x.to(dev)
        f_s = small.encode(x)
        f_l = large.encode(x.to(large.W_dec.device)).to(dev)
        err = x.double() - small.decode(f_s).double()
        sq_small += float((err**2).sum())
        sq_large += float(((x.double() - large.decode(f_l.to(large.W_dec.device)).double().to(dev)) ** 2).sum())
        var.add(x)
        scale = _output_scale(small, x)
        scale = torch.ones(x.shape[0], dtype=torch.float64, device=dev) if scale is None else scale.double()
        for f, W, offset in ((f_s, W_s, 0), (f_l, W_l, n_s)):
            fires[offset : offset + f.shape[1]] += (f != 0).sum(0)
            A = f.double() * scale[:, None]
            c[offset : offset + f.shape[1]] += _masked_dot_sum(err, A, W, _auto_chunk(x.shape[0], torch.float64))
            r, k = torch.nonzero(f, as_tuple=True)
            rows.append((r + start).cpu())
            cols.append((k + offset).cpu())
            vals.append(A[r, k].cpu())
        c[N - 1] += (scale * (err @ db)).sum()
        rows.append(torch.arange(start, start + x.shape[0]))
        cols.append(torch.full((x.shape[0],), N - 1, dtype=torch.long))
        vals.append(scale.cpu())
    fires[N - 1] = n
    A = sp.csr_matrix(
        (torch.cat(vals).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())), shape=(n, N)
    )
    d_dtype = torch.float64 if small.W_dec.dtype == torch.float64 else torch.float32
    D = torch.cat([W_s.to(d_dtype), W_l.to(d_dtype), db[None, :].to(d_dtype)]).cpu().numpy()
    return _UnitStats(
        A=A, At=A.T.tocsr(), D=D, c=c.cpu().numpy(), fires=fires.cpu().numpy(),
        sq_small=sq_small, sq_large=sq_large, total_var=var.total, n=n, d=d,
    )


def _group_units(groups: list[Group], n_s: int, n_units: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Unit ids of each group (the decoder-bias pseudo-group appended last) and the unit -> group map."""
    units = [np.concatenate([g.small_ids.numpy(), n_s + g.large_ids.numpy()]).astype(np.int64) for g in groups]
    units.append(np.array([n_units - 1], dtype=np.int64))
    gid = np.full(n_units, -1, dtype=np.int64)
    for k, u in enumerate(units):
        gid[u] = k
    if (gid < 0).any() or sum(u.size for u in units) != n_units:
        raise ValueError("groups must cover every small and large latent exactly once (use swap_groups)")
    return units, gid


def _self_terms(stats: _UnitStats, units: list[np.ndarray], sign: np.ndarray) -> np.ndarray:
    """Q_g = sum_n |sum_{u in g} sign_u A_nu D_u|^2 for every group: (G,) float64."""
    At, D = stats.At, stats.D
    diag = np.asarray(At.multiply(At).sum(axis=1)).ravel() * (D.astype(np.float64) ** 2).sum(1)
    Q = np.empty(len(units))
    for k, u in enumerate(units):
        if u.size == 1:
            Q[k] = diag[u[0]]
            continue
        co = (At[u] @ At[u].T).toarray()  # (|g|, |g|) co-activation sums
        gram = D[u].astype(np.float64) @ D[u].astype(np.float64).T
        s = sign[u]
        Q[k] = s @ (co * gram) @ s
    return Q


def _apply_group(stats: _UnitStats, u: np.ndarray, sign: np.ndarray, c: np.ndarray, score: np.ndarray | None, gid) -> None:
    """Update c (N,) in place after toggling the units ``u``: c_v -= sum_w sign_w G_vw, with
    G_vw = (A^T A)_vw (D_v . D_w).  If ``score`` (G,) is given, propagate -2 sign_v Δc_v to it."""
    K = stats.At[u] @ stats.A  # (|g|, N) co-activation sums with every unit
    for r, w in enumerate(u):
        lo, hi = K.indptr[r], K.indptr[r + 1]
        cols = K.indices[lo:hi]
        dc = -sign[w] * K.data[lo:hi] * (stats.D[cols] @ stats.D[w]).astype(np.float64)
        c[cols] += dc
        if score is not None:
            np.add.at(score, gid[cols], -2.0 * sign[cols] * dc)


def _initial_order(order: str, scores: np.ndarray, seed: int) -> np.ndarray | None:
    if order == "isolated":
        return np.argsort(scores, kind="stable")
    if order == "random":
        return np.random.default_rng(seed).permutation(scores.size)
    if order == "greedy":
        return None
    raise ValueError(f"order must be 'greedy', 'isolated' or 'random'; got {order!r}")


def _next_group(step: int, n_groups: int, sequence, greedy_score, b_dec_step: str) -> int:
    """Index of the group applied at ``step`` (1-based); the bias pseudo-group is ``n_groups - 1``."""
    if sequence is not None:
        return int(sequence[step - 1])
    if (b_dec_step == "first" and step == 1) or (b_dec_step == "last" and step == n_groups):
        return n_groups - 1
    return int(np.argmin(greedy_score))


def _place_bias(sequence: np.ndarray, b_dec_step: str) -> np.ndarray:
    bias = sequence.max()  # the decoder-bias pseudo-group is the last group index
    rest = sequence[sequence != bias]
    if b_dec_step == "first":
        return np.concatenate([[bias], rest])
    if b_dec_step == "last":
        return np.concatenate([rest, [bias]])
    return sequence


@torch.no_grad()
def interpolate(
    small,
    large,
    activations: torch.Tensor,
    threshold: float = 0.7,
    order: Literal["greedy", "isolated", "random"] = "greedy",
    seed: int = 0,
    groups: list[Group] | None = None,
    b_dec_step: Literal["auto", "first", "last"] = "auto",
    batch_size: int = 4096,
    progress: bool = True,
) -> list[dict]:
    """The (L0, MSE) path from the small SAE to the large one, swapping one group at a time.

    Start from the small SAE; each step applies one group of :func:`swap_groups` (remove its small
    latents, add its large latents, each keeping exactly its own activation thanks to the encoder-bias
    shift) or the decoder-bias step ``b_dec_small -> b_dec_large`` (a pseudo-group with ``group = -1``,
    ΔL0 = 0).  Because that bias step is part of the path, the final state IS the large SAE: the first
    point equals ``reconstruction_metrics(small)`` and the last ``reconstruction_metrics(large)``.

    Orders: "greedy" applies at each step the group that lowers MSE most given the current state;
    "isolated" sorts groups by their ΔMSE when applied alone to the small SAE; "random" is a seeded
    permutation.  ``b_dec_step`` = "auto" orders the bias step like any group, "first"/"last" pin it.

    Method: latents of ReLU / JumpReLU / Gated SAEs act independently, so with unit activations A (n, N)
    (small latents, large latents, bias) and decoder rows D (N, d) the squared error of a state is a
    quadratic form.  Toggling group g (signs s = -1 remove, +1 add) changes it by
    ``-2 sum_{u in g} s_u c_u + Q_g`` where ``c_u = sum_n A_nu (R_n . D_u)`` for the current residual R
    and ``Q_g = sum_n |sum_{u in g} s_u A_nu D_u|^2``; afterwards ``c_v -= sum_{w in g} s_w G_vw`` with the
    sparse Gram entries ``G_vw = (A^T A)_vw (D_v . D_w)``.  The activations are gathered once (one
    batched encoding pass, stored sparse: memory ~ n * (L0_small + L0_large + 1) entries plus an (N, d)
    copy of the decoders), and each step only touches units that co-fire with the applied group.

    Returns a list of dicts, one per point: ``step`` (0 = the small SAE), ``group`` (index into
    ``groups``, -1 for the decoder-bias step, None at step 0), ``kind``, ``n_small``, ``n_large``,
    ``delta_mse``, ``l0``, ``mse``, ``fvu``.  ``groups`` defaults to ``swap_groups(small, large, threshold)``.
    """
    _check_pair(small, large)
    _check_acts(small, activations)
    if b_dec_step not in ("auto", "first", "last"):
        raise ValueError(f"b_dec_step must be 'auto', 'first' or 'last'; got {b_dec_step!r}")
    groups = swap_groups(small, large, threshold) if groups is None else groups
    n_s = small.cfg.d_sae
    stats = _collect_unit_stats(small, large, activations, batch_size, progress)
    units, gid = _group_units(groups, n_s, stats.D.shape[0])
    sign = np.ones(stats.D.shape[0])
    sign[:n_s] = -1.0  # small latents are removed, large latents and the bias change added
    Q = _self_terms(stats, units, sign)
    score = -2.0 * np.bincount(gid, weights=sign * stats.c, minlength=len(units)) + Q
    sequence = _initial_order(order, score, seed)
    if sequence is not None:
        sequence = _place_bias(sequence, b_dec_step)
    elif b_dec_step != "auto":
        score[len(units) - 1] = np.inf  # greedy never picks the bias step; it is placed by hand
    walk = _walk(stats, units, gid, sign, Q, sequence, score if sequence is None else None, b_dec_step, n_s,
                 desc=f"interpolate ({order})", progress=progress)
    path, sq = [], stats.sq_small
    nd = stats.n * stats.d
    for step, k, delta, l0 in walk:
        sq += delta
        if k is None:
            group, kind, n_small, n_large = None, "start", 0, 0
        elif k == len(units) - 1:
            group, kind, n_small, n_large = BDEC_GROUP, "b_dec", 0, 0
        else:
            group, kind = k, groups[k].kind
            n_small, n_large = groups[k].small_ids.numel(), groups[k].large_ids.numel()
        path.append(_point(step, group, kind, n_small, n_large, delta / nd, l0, sq, nd, stats.total_var))
    _check_endpoint(sq, stats.sq_large, small.W_dec.dtype)
    return path


def _walk(stats, units, gid, sign, Q, sequence, greedy_score, b_dec_step, n_s, desc, progress):
    """Yield ``(step, group index, Δ squared error, l0)`` from the start (group None, Δ = 0) to the end.

    ``greedy_score`` (G,) is the current Δ squared error of every group (greedy order, kept up to date
    as groups are applied); otherwise ``sequence`` (G,) fixes the order.
    """
    c = stats.c.copy()
    fires = stats.fires.copy()
    fires[-1] = 0.0  # the decoder-bias change is not a latent
    fired = float(fires[:n_s].sum())
    yield 0, None, 0.0, fired / stats.n
    for step in tqdm(range(1, len(units) + 1), desc=desc, disable=not progress, leave=False):
        k = _next_group(step, len(units), sequence, greedy_score, b_dec_step)
        u = units[k]
        delta = float(-2.0 * (sign[u] * c[u]).sum() + Q[k])
        fired += float((sign[u] * fires[u]).sum())
        _apply_group(stats, u, sign, c, greedy_score, gid)
        if greedy_score is not None:
            greedy_score[k] = np.inf
        yield step, k, delta, fired / stats.n


def _point(step, group, kind, n_small, n_large, delta_mse, l0, sq, nd, total_var) -> dict:
    return {
        "step": step, "group": group, "kind": kind, "n_small": n_small, "n_large": n_large,
        "delta_mse": delta_mse, "l0": l0, "mse": sq / nd, "fvu": sq / total_var,
    }


def _check_endpoint(sq_path: float, sq_large: float, dtype: torch.dtype) -> None:
    """Warn if the incrementally updated error drifted from the large SAE's directly computed error."""
    tol = 1e-8 if dtype == torch.float64 else 1e-3
    if abs(sq_path - sq_large) > tol * max(abs(sq_large), 1e-30):
        warnings.warn(
            f"interpolate: path end point ({sq_path:.6g}) differs from the large SAE's squared error "
            f"({sq_large:.6g}) by more than {tol:g} relative; numerical drift",
            RuntimeWarning,
            stacklevel=3,
        )


# -- chapter-level analyses ----------------------------------------------------------------------------------

def cumulative_insertion(small, large, activations: torch.Tensor, latent_ids: torch.Tensor, n_points: int = 12,
                         batch_size: int = 4096) -> list[dict]:
    """Exact (not additive) metrics after inserting the first m of ``latent_ids`` (in the given order) into the
    small SAE, for ``n_points`` values of m from 0 to all.  Returns dicts with ``n``, ``mse``, ``l0``, ``fvu``."""
    from .evaluate import reconstruction_metrics
    ids = torch.as_tensor(latent_ids, dtype=torch.long)
    counts = sorted({round(i * len(ids) / (n_points - 1)) for i in range(n_points)}) if len(ids) else [0]
    out = []
    for m in counts:
        sae = insert_latents(small, large, ids[:m]) if m else small
        r = reconstruction_metrics(sae, activations, batch_size=batch_size)
        out.append({"n": m, "mse": r["mse"], "l0": r["l0"], "fvu": r["fvu"]})
    return out


def frankenstein(saes: list, activations: torch.Tensor, threshold: float = 0.7, batch_size: int = 4096):
    """An SAE assembled from a family: start from the smallest, then from each larger SAE insert the latents
    that are novel with respect to what has been assembled so far *and* lower the MSE when inserted alone
    (measured on ``activations`` (n, d_in)).  Returns ``(sae, sources)`` where ``sources`` lists, per latent of
    the result, ``(index of the family member, latent id in it)``."""
    current = saes[0]
    sources = [(0, i) for i in range(saes[0].cfg.d_sae)]
    for j, large in enumerate(saes[1:], start=1):
        cls = classify_latents(current, large, threshold)
        if len(cls.novel) == 0:
            continue
        deltas = insertion_deltas(current, large, activations, cls.novel, batch_size=batch_size)
        keep = cls.novel[torch.as_tensor(deltas.delta_mse) < 0]
        if len(keep):
            current = insert_latents(current, large, keep)
            sources += [(j, int(i)) for i in keep]
    return current, sources


def monotonicity(path: list[dict]) -> dict:
    """How monotone an interpolation path is: the fraction of steps that lower MSE, and the Spearman rank
    correlation between step and MSE (-1 = perfectly monotone decreasing)."""
    import numpy as np
    mse = np.array([p["mse"] for p in path])
    steps = np.arange(len(mse))
    down = float(np.mean(np.diff(mse) <= 1e-12 * max(abs(mse).max(), 1))) if len(mse) > 1 else 1.0
    rank = np.argsort(np.argsort(mse))
    rho = float(np.corrcoef(steps, rank)[0, 1]) if len(mse) > 2 else -1.0
    return {"fraction_of_steps_lowering_mse": down, "spearman_step_vs_mse": rho}


def verdicts(novel_lowers: float, recon_raises: float, mono: dict, novel_frac: float,
             franken: dict | None = None) -> list[dict]:
    """The paper's stitching claims against our numbers (rows of ``report.row``).  A share-type claim is
    'reproduced' when the measured share is a clear majority (> 0.5), 'not reproduced' otherwise; smoothness
    needs >= 90 % of steps lowering the MSE; the novel fraction must lie in [20 %, 50 %].  ``franken``: the
    Frankenstein SAE's ``{"d_sae", "mse"}`` and ``"equal_width_mse"``, the MSE of the narrowest trained SAE at
    least as wide (None when no trained SAE is that wide)."""
    import math

    from .report import row

    def share(cid, x, what, verb):  # nan: the pair has no latent of that class, so the claim cannot be tested
        if math.isnan(x):
            return row(cid, f"no {what} latents in this pair", "untestable here")
        return row(cid, f"{100 * x:.1f} % of {what} latents {verb} it",
                   "reproduced" if x > 0.5 else "not reproduced", x)
    out = [
        row("novel_fraction", f"{100 * novel_frac:.1f} %",
            "reproduced" if 0.2 <= novel_frac <= 0.5 else "not reproduced", novel_frac),
        share("novel_lowers", novel_lowers, "novel", "lower"),
        share("recon_raises", recon_raises, "reconstruction", "raise"),
        row("smooth_swaps", f"{100 * mono['fraction_of_steps_lowering_mse']:.1f} % of steps lower the MSE, "
                            f"Spearman {mono['spearman_step_vs_mse']:.3f}",
            "reproduced" if mono["fraction_of_steps_lowering_mse"] >= 0.9 else "not reproduced",
            mono["fraction_of_steps_lowering_mse"]),
    ]
    if franken is not None:
        eq = franken.get("equal_width_mse")
        if eq is None:
            out.append(row("frankenstein", f"{franken['d_sae']} latents: no trained SAE that wide to compare",
                           "untestable here"))
        else:
            ratio = franken["mse"] / eq
            out.append(row("frankenstein", f"{franken['d_sae']} latents, MSE {franken['mse']:.4g} vs "
                                           f"{eq:.4g} for the narrowest trained SAE at least as wide "
                                           f"(ratio {ratio:.3f})",
                           "reproduced" if ratio < 1 else "not reproduced", ratio))
    return out
