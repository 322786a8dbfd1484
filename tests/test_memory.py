"""Memory: the decoder max-cosine search stays within a fixed budget on shapes whose full similarity matrix does
not fit in it (issue 8).  Peak extra memory is measured by :func:`bench.perf.measure` (peak RSS of a
fresh subprocess on CPU, ``torch.cuda.max_memory_allocated`` on CUDA)."""

import pytest
import torch

from bench import perf
from metasae_utils.stitching import similarity

MB = 2**20
BUDGET = 16 * MB  # the similarity block budget handed to the package's chunk rule
N, D = 12288, 64  # full similarity matrix: 12288^2 float32 = 576 MB = 36 budgets


def test_auto_chunk_block_fits_the_budget():
    for n_b in (1, 100, 4096, 49152, 10**6):
        for dtype in (torch.float32, torch.float64):
            rows = similarity._auto_chunk(n_b, dtype, BUDGET)
            assert rows >= 1
            assert rows == 1 or rows * n_b * dtype.itemsize <= BUDGET
    assert similarity._auto_chunk(49152, torch.float32) * 49152 * 4 <= similarity.SIM_BUDGET_BYTES


def test_measurement_sees_torch_allocations():
    """The method itself: the bare product of the same shapes must show up as its full (N, N) float32 size."""
    full = N * N * 4
    got = perf.measure("matmul", n_a=N, n_b=N, d=D)["peak_extra_bytes"]
    assert 0.9 * full <= got <= 1.2 * full, f"bare matmul peak {got / MB:.0f} MB, expected ~{full / MB:.0f} MB"


def test_max_cosine_stays_within_a_fixed_budget():
    full = N * N * 4
    inputs = 2 * N * D * 4 + N * 12  # normalised copies of both inputs, values + indices
    from metasae_utils.precision import resolve
    if resolve("auto", "cpu")[0] == "bfloat16":  # AMX: the search runs in bf16, with bf16 copies of both inputs and
        inputs += 2 * N * D * 2 + BUDGET // 2    # a bf16 block beside the fp32 one (fails at 43 MB vs 38 without)
    limit = BUDGET + inputs + 16 * MB  # + allocator / BLAS slack
    assert full > 8 * limit, "shapes must be scaled so that the full matrix is far over the budget"
    got = perf.measure("max_cosine", n_a=N, n_b=N, d=D, budget=BUDGET)["peak_extra_bytes"]
    assert got <= limit, (f"max_cosine needed {got / MB:.0f} MB on top of its inputs; the budget is "
                          f"{limit / MB:.0f} MB (the full similarity matrix would be {full / MB:.0f} MB)")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_max_cosine_budget_on_cuda():
    got = perf.measure("max_cosine", "cuda", n_a=N, n_b=N, d=D, budget=BUDGET)["peak_extra_bytes"]
    assert got <= BUDGET + 2 * N * D * 4 + N * 12 + 4 * MB
