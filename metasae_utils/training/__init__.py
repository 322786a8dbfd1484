"""Training SAEs: SAELens' ``SAETrainer`` for every architecture, and a faster step for ReLU + L1 SAEs.

* :mod:`.saelens` — :func:`train_sae` (any SAELens architecture on a tensor of rows).
* :mod:`.store` — save / load SAEs with SAELens, and the artifact cache of trained SAEs.
* :mod:`.sparse` — the loss and gradients of a ``standard`` SAE with one dense product and a sparse C kernel.
* :mod:`.lean` — :class:`FastTrainer`, SAETrainer's loop around that step (same Adam, schedules, statistics).
* :mod:`.schedule` — SAELens' LR schedule and the annealed budget branches' plan.
* :mod:`.branches` — one warm-up / stable run with an annealed branch at each budget.
* :mod:`.monitor` — learning curves, checkpoints and the L1 controller, for either trainer.
"""

from .saelens import (ARCHITECTURES, FAST_STEP, build_training_config, make_trainer, shuffled_batches, step_kind,
                      train_sae, training_config_class)
from .store import cached_sae, load_sae, save_sae

__all__ = ["ARCHITECTURES", "FAST_STEP", "build_training_config", "cached_sae", "load_sae", "make_trainer", "save_sae",
           "shuffled_batches", "step_kind", "train_sae", "training_config_class"]
