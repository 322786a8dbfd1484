"""How many CPU threads a training run gets.

torch uses every core by default.  For small matrix products (a synthetic SAE, a CI-sized SAE) the threads spend
more time meeting at barriers than multiplying, and when another process holds a core the barrier waits for a
descheduled thread: measured on 2 cores with a second busy process, a (1024 × 128) @ (128 × 256) training step took
74 ms on 2 threads against 5.9 ms on 1 (12×), while a (1024 × 576) @ (576 × 4608) step took 0.50 s on 2 against
0.57 s on 1.  So runs whose products are small use one thread; large ones keep every core.
"""

from __future__ import annotations

import contextlib

import torch

#: multiply-adds of one (batch × d_in) @ (d_in × d_sae) product below which a training run uses one thread
SMALL_PRODUCT = 2**26


def threads_for(batch: int, d_in: int, d_sae: int) -> int:
    """Threads for training steps whose products are (batch × d_in) @ (d_in × d_sae)."""
    return 1 if batch * d_in * d_sae < SMALL_PRODUCT else torch.get_num_threads()


@contextlib.contextmanager
def limited(n: int):
    """Run the block with ``n`` intra-op threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
