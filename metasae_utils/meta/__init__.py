"""Meta-SAEs: a BatchTopK SAE trained on the decoder rows of another SAE (Leask et al., ICLR 2025, §4).

Each latent of the base SAE has a decoder row (a direction in the model's residual stream).  The meta-SAE
explains every such row as a sparse, non-negative combination of a few *meta-latents*; latents that
share a meta-latent share a component of meaning, which is the paper's evidence that SAE latents are
not atomic.  The paper's setting (``PAPER_META_SAE``): a BatchTopK meta-SAE with 2304 meta-latents and
k = 4, trained for 2000 batches of 16384 rows with Adam at lr 1e-3 on the (unit-norm) decoder rows of
the 49152-latent GPT-2 SAE, with unit-norm meta-decoder rows and the top-k auxiliary loss for dead
meta-latents; at inference a fixed threshold replaces the batch top-k.  In SAELens terms the trained
meta-SAE is the ``JumpReLUSAE`` that a BatchTopK training SAE becomes, whose threshold is the batch
top-k threshold learned during training.

Shapes: ``decoder`` is (n_latents, d) — one row per base latent; the meta-SAE has ``d_in = d`` and
``d_sae = d_meta``.
"""

from .compare import (alive_latents, balanced_rows, cosine_by_group, family_decoders, live_decoder, random_rows,
                      resemblance, similarity_to_saes, split_usage, usage_by_group)
from .graph import degree_preserving_random, edge_overlap, meta_edges, nearest_smaller, neighbour_edges
from .naming import name_concentration, pick_named_latent, tokens_at
from .decompose import Decomposition, Members, decompose, members, meta_metrics
from .seeds import N_META_SEEDS, difference, meta_seeds, over_seeds, spread
from .train import PAPER_META_SAE, PAPER_RATIO, cached_meta_sae, prepare_rows, train_meta_sae

__all__ = ["PAPER_META_SAE", "prepare_rows", "train_meta_sae", "cached_meta_sae", "Decomposition", "Members",
           "decompose", "members", "meta_metrics", "similarity_to_saes", "usage_by_group", "split_usage",
           "resemblance", "family_decoders", "cosine_by_group", "random_rows", "balanced_rows",
           "alive_latents", "live_decoder", "meta_edges", "neighbour_edges", "edge_overlap", "degree_preserving_random",
           "nearest_smaller", "name_concentration", "pick_named_latent", "tokens_at", "PAPER_RATIO",
           "N_META_SEEDS", "meta_seeds", "spread", "difference", "over_seeds"]
