"""SAE families trained on synthetic data (the book's sizes), and reference SAEs built from the truth."""

from __future__ import annotations

from dataclasses import asdict

import torch
from tqdm.auto import tqdm

from .. import training
from ..families import sae_seed
from .data import SyntheticData, generate
from .model import VERSION, SyntheticSpec

#: added to random_sae's seed so that its stream never coincides with the feature dictionary's.
_RANDOM_SEED_OFFSET = 0x5EED_0000


# The synthetic families the book trains: widths around the number of true features, k near the true L0.
#: training arguments of every synthetic SAE in the book.
TRAIN = {"n_steps": 1000, "batch_size": 1024, "lr": 3e-3}
FAMILIES = {"small": {"spec": {}, "widths": [32, 64, 144, 256], "k": 2},
            "paper_like": {"spec": {"paper_like": True}, "widths": [64, 128, 256, 512], "k": 6}}


def book_family(size: str, seed: int = 0, progress: bool = True):
    """The data and the BatchTopK family of the book's synthetic section (``size``: a key of FAMILIES).

    Returns ``(data, widths, saes)``.  1000 steps of 1024 rows per SAE, lr 3e-3.
    """
    if size not in FAMILIES:
        raise ValueError(f"synthetic size {size!r}; allowed: {', '.join(FAMILIES)}")
    fam = FAMILIES[size]
    spec = SyntheticSpec.paper_like(seed=seed) if fam["spec"].get("paper_like") else SyntheticSpec(seed=seed)
    data = generate(spec, progress=progress)
    saes = train_synthetic_family(data, fam["widths"], "batchtopk", k=fam["k"], seed=seed, progress=progress, **TRAIN)
    return data, fam["widths"], saes


def train_synthetic_family(data: SyntheticData, widths, architecture: str = "batchtopk", *, k=None,
                           n_steps: int, batch_size: int, lr: float, seed: int = 0, progress: bool = True,
                           cache: bool = True, **train_kwargs) -> list:
    """One SAE per width in ``widths``, each trained with ``training.train_sae`` on ``data.train``
    (n_train, d) for ``n_steps`` batches of ``batch_size`` (epochs over the fixed training set).

    ``k`` is the (batch-)top-k target (required by ``batchtopk`` / ``matryoshka_batchtopk``);
    ``train_kwargs`` go to ``train_sae`` (e.g. ``l1_coefficient``, ``lr_decay_steps``).  With ``cache``,
    each SAE is stored in ``artifacts.entry("synthetic_sae", {data spec, width, arguments}, VERSION)`` and
    reloaded on the next call.  Returns the inference SAEs (``W_dec`` (width, d), unit-norm rows), in the
    order of ``widths``.
    """
    widths = list(widths)
    if not widths:
        raise ValueError("widths is empty")
    saes = []
    for width in tqdm(widths, desc="synthetic family", disable=not progress or len(widths) < 2):
        args = dict(architecture=architecture, d_sae=width, k=k, n_steps=n_steps, batch_size=batch_size, lr=lr,
                    seed=sae_seed(seed, width), **train_kwargs)

        def train(args=args):
            return training.train_sae(data.train, progress=progress, **args)

        if not cache:
            saes.append(train())
            continue
        saes.append(training.cached_sae("synthetic_sae", {"data": asdict(data.spec), **args}, train, VERSION,
                                        width=width)[0])
    return saes


@torch.no_grad()
def oracle_sae(data: SyntheticData, threshold: float = 0.7):
    """A JumpReLU SAE built from the ground truth: ``W_dec = features`` (n_features, d), ``W_enc = features.T``,
    ``b_dec`` = the data's bias, every threshold ``threshold``.  Its decoder is perfect (``mcc`` = 1) but its
    linear encoder is not: with more features than dimensions each pre-activation is the feature's magnitude
    (about 1) plus interference from the other active features (std about ``sqrt(true L0 / d)``), which the
    threshold trades between false positives and misses — a reference point, not an upper bound on every
    score (a trained SAE can beat its FVU)."""
    return _tied_jumprelu(data.features, data, threshold)


@torch.no_grad()
def random_sae(data: SyntheticData, d_sae: int, seed: int = 0, threshold: float = 0.7):
    """A baseline JumpReLU SAE with random unit decoder rows (d_sae, d) and ``W_enc = W_dec.T``."""
    # offset: SAELens' FeatureDictionary(seed=s) *is* normalised torch.randn(n, d) under manual_seed(s), so
    # the same seed would reproduce the ground truth
    w = torch.randn(d_sae, data.spec.d, generator=torch.Generator().manual_seed(seed + _RANDOM_SEED_OFFSET))
    w /= w.norm(dim=1, keepdim=True)
    return _tied_jumprelu(w, data, threshold)


@torch.no_grad()
def _tied_jumprelu(W_dec: torch.Tensor, data: SyntheticData, threshold: float):
    """A JumpReLU SAE with decoder ``W_dec`` (d_sae, d), tied encoder ``W_dec.T``, zero encoder bias, the
    data's bias as decoder bias, and one threshold for every latent."""
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=W_dec.shape[1], d_sae=W_dec.shape[0]))
    sae.W_dec.copy_(W_dec)
    sae.W_enc.copy_(W_dec.T)
    sae.b_enc.zero_()
    sae.b_dec.copy_(data.feature_dict.bias.detach())
    sae.threshold.fill_(threshold)
    return sae.eval()
