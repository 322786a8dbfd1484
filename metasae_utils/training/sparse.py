"""The loss and gradients of a ReLU + L1 SAE (SAELens ``standard``) with one dense product.

SAELens' standard training loss, for a batch ``x`` (B, D) already scaled by the activation scaler::

    f    = relu((x - b_dec) @ W_enc + b_enc)                        (B, S)
    loss = mean_b |f_b @ W_dec + b_dec - x_b|^2 + l1 * mean_b sum_j f_bj |W_dec_j|

At an L0 of ~32 of 4,608 latents only the encoder product is dense; the decoder product, the decoder gradient,
the encoder-weight gradient and dL/df (needed only where f > 0) touch the non-zeros alone.  :func:`fwd_bwd` runs
the encoder product in torch (fp32, or bf16 where that is the machine's fast path) and the rest in a small C
kernel (``kernel.c``, compiled once per machine with the system C compiler and OpenMP, loaded with ctypes).
:func:`dense_fwd_bwd` computes the same numbers with dense torch products: the fallback where no compiler is
found or the activations are not sparse, and the reference of the tests (both equal SAELens' own
``training_forward_pass`` + autograd to float rounding).

The encoder weight is held transposed, ``W_encT`` (S, D), so that every latent's encoder row is contiguous.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

KERNEL_SOURCE = Path(__file__).with_name("kernel.c")

#: above this share of non-zero activations the dense step is used (set from bench ``train_step_density``).
DENSE_ABOVE = 0.08


@dataclass
class StepResult:
    """Loss parts and gradients of one step.  ``grads``: (dW_encT (S, D), db_enc (S,), dW_dec (S, D), db_dec (D,));
    ``counts`` (S,) int64: rows where each latent fired; ``l0``: mean active latents per row; ``grad_sumsq``: the
    squared norm of all gradients together (for the norm clip)."""
    mse: float
    l1_loss: float
    grads: tuple
    counts: torch.Tensor
    l0: float
    grad_sumsq: float
    sparse: bool


def _kernel_dir() -> Path:
    from ..artifacts import REPO
    return Path(os.environ.get("METASAE_KERNEL_DIR", REPO / ".cache" / "kernels"))


def _cpu_tag() -> str:
    """The CPU's feature flags (the kernel is built with -march=native: another CPU needs its own build)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


_LIB = None
_LIB_ERROR: str | None = None


def kernel():
    """The compiled kernel (ctypes library), built on first use; None when it cannot be built (no C compiler,
    a compile error): :func:`fwd_bwd` then uses the dense path and :func:`kernel_error` says why."""
    global _LIB, _LIB_ERROR
    if _LIB is not None or _LIB_ERROR is not None:
        return _LIB
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        _LIB_ERROR = "no C compiler (cc / gcc) on PATH"
        return None
    src = KERNEL_SOURCE.read_bytes()
    tag = hashlib.sha256(src + _cpu_tag().encode() + cc.encode()).hexdigest()[:16]
    out = _kernel_dir() / f"sae_step_{tag}.so"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        cmd = [cc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", str(KERNEL_SOURCE), "-o", str(tmp), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            _LIB_ERROR = f"{' '.join(cmd)} failed: {r.stderr.strip()[:500]}"
            return None
        os.replace(tmp, out)
    lib = ctypes.CDLL(str(out))
    p, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    lib.sae_count.argtypes = [p, ctypes.c_int, p, i64, i64, p]
    lib.sae_step.argtypes = [p, ctypes.c_int, p, p, p, p, p, p, p, f32, i64, i64, i64,
                             p, p, p, p, p, p, p, p, p, p]
    _LIB = lib
    return lib


def kernel_error() -> str | None:
    """Why :func:`kernel` is None (None when it loaded or was not tried)."""
    return _LIB_ERROR


def _ptr(t: torch.Tensor) -> int:
    assert t.is_contiguous() and t.device.type == "cpu"
    return t.data_ptr()


def encoder_product(xc: torch.Tensor, W_encT: torch.Tensor, bf16: bool) -> torch.Tensor:
    """``xc @ W_encT.T`` (B, S): the step's one dense product, in bf16 (bf16 result) when ``bf16``."""
    if bf16:
        return xc.to(torch.bfloat16) @ W_encT.to(torch.bfloat16).T
    return xc @ W_encT.T


@torch.no_grad()
def fwd_bwd(x: torch.Tensor, W_encT, b_enc, W_dec, b_dec, l1: float, bf16: bool = False,
            dense_above: float = DENSE_ABOVE) -> StepResult:
    """SAELens' standard loss and its gradients for the batch ``x`` (B, D) (see the module docstring).

    ``W_encT`` (S, D), ``b_enc`` (S,), ``W_dec`` (S, D), ``b_dec`` (D,): fp32 CPU tensors.  ``bf16``: the encoder
    product in bf16 (as under SAELens' ``autocast``); the sparse parts always run in fp32.  Uses the dense path
    when the kernel is unavailable, when tensors are not on the CPU, or when more than ``dense_above`` of the
    activations are non-zero."""
    lib = kernel() if x.device.type == "cpu" else None
    if lib is None:
        return dense_fwd_bwd(x, W_encT, b_enc, W_dec, b_dec, l1, bf16)
    B, D = x.shape
    S = W_encT.shape[0]
    x = x.contiguous().float()
    xc = (x - b_dec).contiguous()
    pre = encoder_product(xc, W_encT, bf16).contiguous()
    is_bf16 = int(pre.dtype == torch.bfloat16)
    row_nnz = torch.empty(B, dtype=torch.int64)
    lib.sae_count(_ptr(pre), is_bf16, _ptr(b_enc), B, S, _ptr(row_nnz))
    crow = torch.zeros(B + 1, dtype=torch.int64)
    torch.cumsum(row_nnz, 0, out=crow[1:])
    nnz = int(crow[-1])
    if nnz > dense_above * B * S:
        return dense_fwd_bwd(x, W_encT, b_enc, W_dec, b_dec, l1, bf16, pre=pre)
    col = torch.empty(max(nnz, 1), dtype=torch.int32)
    val, dpre = torch.empty(max(nnz, 1)), torch.empty(max(nnz, 1))
    g = torch.empty(B, D)
    dWencT, dWdec = torch.empty(S, D), torch.empty(S, D)
    db_enc, db_dec = torch.empty(S), torch.empty(D)
    counts = torch.empty(S, dtype=torch.int64)
    out = torch.zeros(3, dtype=torch.float64)
    lib.sae_step(_ptr(pre), is_bf16, _ptr(b_enc), _ptr(W_dec), _ptr(b_dec), _ptr(x), _ptr(xc), _ptr(W_encT),
                 _ptr(crow), float(l1), B, S, D, _ptr(col), _ptr(val), _ptr(dpre), _ptr(g), _ptr(dWencT),
                 _ptr(db_enc), _ptr(dWdec), _ptr(db_dec), _ptr(counts), _ptr(out))
    mse, l1_loss, sumsq = out.tolist()
    return StepResult(mse, l1_loss, (dWencT, db_enc, dWdec, db_dec), counts, nnz / B, sumsq, True)


@torch.no_grad()
def dense_fwd_bwd(x, W_encT, b_enc, W_dec, b_dec, l1: float, bf16: bool = False, pre=None) -> StepResult:
    """:func:`fwd_bwd` with dense torch products (any device): the same loss and gradients, written out by hand
    (no autograd graph).  ``pre``: the encoder product if already computed."""
    B = x.shape[0]
    x = x.float()
    xc = x - b_dec
    if pre is None:
        pre = encoder_product(xc, W_encT, bf16)
    h = pre.float() + b_enc
    active = h > 0
    f = torch.where(active, h, torch.zeros((), dtype=h.dtype, device=h.device))
    nrm = W_dec.norm(dim=1)
    e = torch.addmm(b_dec, f, W_dec) - x
    g = e * (2.0 / B)
    dpre = torch.where(active, torch.addmm(nrm * (l1 / B), g, W_dec.T), torch.zeros((), device=h.device))
    fsum = f.sum(0)
    scale = torch.where(nrm > 0, fsum * l1 / (B * nrm.clamp_min(1e-30)), torch.zeros_like(nrm))
    dWdec = f.T @ g + scale[:, None] * W_dec
    dWencT = dpre.T @ xc
    db_enc = dpre.sum(0)
    db_dec = g.sum(0) - db_enc @ W_encT
    grads = (dWencT, db_enc, dWdec, db_dec)
    counts = active.sum(0)
    sumsq = float(sum(t.double().pow(2).sum() for t in grads))
    mse = float(e.double().pow(2).sum() / B)
    l1_loss = float(l1 * (f.double() @ nrm.double()).sum() / B)
    return StepResult(mse, l1_loss, grads, counts, float(counts.sum()) / B, sumsq, False)


def saelens_reference(sae, x: torch.Tensor, l1: float):
    """SAELens' own loss and gradients for a ``StandardTrainingSAE`` (its ``training_forward_pass`` + autograd):
    returns ``(mse, l1_loss, {name: grad})`` with ``W_enc``'s gradient transposed to (S, D).  For tests and the
    bench; leaves the SAE's ``.grad`` fields as they were (None)."""
    from sae_lens.saes.sae import TrainStepInput

    sae.zero_grad(set_to_none=True)
    out = sae.training_forward_pass(TrainStepInput(
        sae_in=x, coefficients={"l1": l1}, dead_neuron_mask=None, n_training_steps=0, is_logging_step=False))
    out.loss.backward()
    grads = {"W_encT": sae.W_enc.grad.T.contiguous(), "b_enc": sae.b_enc.grad.clone(),
             "W_dec": sae.W_dec.grad.clone(), "b_dec": sae.b_dec.grad.clone()}
    sae.zero_grad(set_to_none=True)
    return float(out.losses["mse_loss"].detach()), float(out.losses["l1_loss"].detach()), grads


def supported(sae) -> str | None:
    """Why the fast step cannot train ``sae`` (None when it can): it handles SAELens' ``standard`` training SAE
    with the default ReLU, L1 (``lp_norm`` 1), ``apply_b_dec_to_input`` and no hook-z reshaping."""
    cfg = sae.cfg
    arch = cfg.architecture() if callable(getattr(cfg, "architecture", None)) else None
    if arch != "standard":
        return f"architecture {arch!r} (the fast step trains 'standard' SAEs)"
    if getattr(cfg, "lp_norm", 1.0) != 1.0:
        return f"lp_norm = {cfg.lp_norm} (the fast step implements the L1 penalty)"
    if not getattr(cfg, "apply_b_dec_to_input", True):
        return "apply_b_dec_to_input = False"
    if getattr(cfg, "reshape_activations", "none") not in ("none", None):
        return f"reshape_activations = {cfg.reshape_activations!r}"
    if not isinstance(sae.activation_fn, torch.nn.ReLU):
        return f"activation function {type(sae.activation_fn).__name__} (the fast step implements ReLU)"
    norm = getattr(cfg, "normalize_activations", "none")
    if norm not in ("none", "expected_average_only_in"):
        return f"normalize_activations = {norm!r}"
    return None


def quiet_compile_warning(message: str) -> None:
    """Tell once that the kernel could not be built (the dense path is used)."""
    warnings.warn(f"fast SAE step: the sparse kernel is unavailable ({message}); using dense products",
                  stacklevel=2)
