"""SAE stitching (Leask et al., ICLR 2025, "Sparse Autoencoders Do Not Find Canonical Units of Analysis").

A small and a large SAE are trained on the same activations.  A large-SAE latent whose decoder row has
maximum cosine similarity ``> threshold`` with some small-SAE decoder row is a *reconstruction* latent,
the others are *novel*; with held-out activations, latents firing on at most 1e-5 of them are *dead* and in
neither class.  Inserting novel latents into the small SAE lowers its MSE; inserting
reconstruction latents raises it.  Swapping matched groups (connected components of the bipartite graph
of (small, large) decoder pairs with cosine ``> threshold``) one at a time interpolates from the small SAE
to the large one, tracing an (L0, MSE) path.

Conventions
-----------
* Decoder matrices are SAELens' ``W_dec`` of shape ``(d_sae, d_in)``; encoders ``W_enc`` are
  ``(d_in, d_sae)``.  Activations are ``(n_tokens, d_in)``.
* MSE, FVU and L0 follow :mod:`!metasae_utils.evaluate` (mean over tokens *and* dimensions, etc.).
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

from .build import insert_latents, stitch
from .classify import LatentClassification, classify_latents, novel_fraction
from .compat import stitchable
from .frankenstein import frankenstein, frontier_at, frontier_curve, greedy_insertion
from .groups import Group, swap_groups
from .insertion import (InsertionDeltas, best_first, cumulative_insertion, insertion_deltas, insertion_deltas_many,
                        insertion_shares, self_duplicate_control, self_duplicates, self_duplicates_of)
from .interpolation import BDEC_GROUP, interpolate, interpolate_many, monotonicity, overshoot
from .measure import TWIN_KEYS, pair_numbers, side_numbers
from .separation import QUADRANTS, cosine_panel, quadrant_shares
from .similarity import SIM_BUDGET_BYTES, max_cosine, pairs_above, top_matches
from .walk import swap_walk, walk_segments

__all__ = [
    "max_cosine",
    "pairs_above",
    "top_matches",
    "LatentClassification",
    "classify_latents",
    "novel_fraction",
    "stitchable",
    "stitch",
    "insert_latents",
    "InsertionDeltas",
    "insertion_deltas",
    "insertion_deltas_many",
    "insertion_shares",
    "best_first",
    "self_duplicate_control",
    "self_duplicates",
    "self_duplicates_of",
    "cumulative_insertion",
    "Group",
    "swap_groups",
    "interpolate",
    "interpolate_many",
    "monotonicity",
    "overshoot",
    "pair_numbers",
    "side_numbers",
    "TWIN_KEYS",
    "swap_walk",
    "walk_segments",
    "frankenstein",
    "greedy_insertion",
    "frontier_at",
    "frontier_curve",
    "quadrant_shares",
    "cosine_panel",
    "QUADRANTS",
    "BDEC_GROUP",
    "SIM_BUDGET_BYTES",
]
