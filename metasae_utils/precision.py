"""Compute precision: where bf16 is the fast path, and how "auto" chooses.

bf16 matrix products are fast on CUDA GPUs and on CPUs with Intel AMX (tile units: ~5× fp32 on SAE shapes).
A CPU without AMX runs bf16 products on its vector units (AVX-512 BF16 at best), where they are no faster and
often slower than fp32, so "auto" means bf16 on CUDA and on AMX CPUs, fp32 elsewhere.  The choice covers
*compute* only: the model forward for activation collection (``Config.dtype``) and SAE / meta-SAE training under
``torch.autocast`` (``Config.train_dtype``: fp32 master weights and Adam, bf16 products).  Measurements —
evaluation metrics, insertion deltas, the interpolation walk, the decoder-cosine search's values — are always
accumulated in fp32 / fp64.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

DTYPES = ("auto", "float32", "bfloat16")

#: Largest error of a cosine of two unit vectors computed in bf16 (8 significant bits, unit roundoff u = 2^-8):
#: inputs rounded, |Σ a_i b_i (δ_i + ε_i + δ_i ε_i)| ≤ 2u + u² by Cauchy-Schwarz; fp32 accumulation (d · 2^-24,
#: < 1e-4 for d ≤ 1600); the result rounded to bf16 (≤ u for |cos| ≤ 1).
BF16_COSINE_ERROR = 3 * 2**-8 + 2**-16 + 1e-4


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=None)
def has_amx() -> bool:
    """Can this process use Intel AMX for bf16?  The CPU must report ``amx_bf16`` and ``amx_tile`` and, where
    torch can ask, the kernel must grant the tile state (a VM may hide AMX from a CPU that has it)."""
    if not {"amx_bf16", "amx_tile"} <= cpu_flags():
        return False
    init = getattr(getattr(torch._C, "_cpu", None), "_init_amx", None)
    return bool(init()) if init is not None else True


def resolve(setting: str, device: str | torch.device) -> tuple[str, str]:
    """The dtype name ("float32" or "bfloat16") that ``setting`` ("auto" or a dtype name) means on ``device``,
    with the reason in words."""
    if setting not in DTYPES:
        raise ValueError(f"precision {setting!r} is not one of {DTYPES}")
    if setting != "auto":
        return setting, "set explicitly"
    if torch.device(device).type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16", "CUDA GPU with bf16 support"
        return "float32", "this GPU has no bf16 support"
    if has_amx():
        return "bfloat16", "this CPU has Intel AMX (bf16 tile units)"
    return "float32", "this CPU has no Intel AMX: bf16 products would be no faster than fp32"


_ANNOUNCED: set = set()


def announce(what: str, setting: str, device: str | torch.device) -> str:
    """:func:`resolve`, printing the choice once per process (``what``: e.g. "SAE training")."""
    dtype, why = resolve(setting, device)
    key = (what, setting, str(device))
    if setting == "auto" and key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print(f"{what}: {dtype} ({why})")
    return dtype


#: the training precision of this process: set once per chapter by ``book.configure`` (:func:`configure`),
#: read by ``training.train_sae`` (autocast) and ``training.cached_sae`` (part of every cache key).
_TRAINING = {"dtype": "float32", "why": "default"}


def configure(train_dtype: str, device: str | torch.device) -> str:
    """Resolve ``train_dtype`` ("auto" / a dtype name) on ``device`` and make it this process's training
    precision; returns the dtype name."""
    dtype, why = resolve(train_dtype, device)
    _TRAINING.update(dtype=dtype, why=why)
    return dtype


def training_dtype() -> str:
    """This process's SAE / meta-SAE training precision ("float32" or "bfloat16")."""
    return _TRAINING["dtype"]


def summary() -> dict:
    """What the provenance box shows: the training precision and why it was chosen."""
    return dict(_TRAINING)
