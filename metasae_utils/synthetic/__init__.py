"""A synthetic activation source with known ground truth, built on ``sae_lens.synthetic``.

Real activations never tell us what the "true" units are; synthetic ones do.  This sub-package plants a known
dictionary of unit feature directions in ``d`` dimensions and samples sparse, hierarchical combinations of
them, so that SAEs of several widths can be scored against the truth (is a wide SAE's latent a true
feature, a parent with a child absorbed into it, or something in between?).

The structure (``SyntheticSpec``), features numbered in this order:

* ``n_roots`` **roots**, indices ``0 .. n_roots-1``;
* ``n_roots * n_children`` **children**: root ``r``'s children are ``n_roots + r*n_children + j``.  A child
  fires only when its root fires, and the children of a root are mutually exclusive (at most one fires);
  given that its root fires, *some* child fires with probability ``child_given_parent``, each child equally
  likely;
* ``n_free`` **free** features (no parent, no children), the last indices.

Firing probabilities: the roots and free features together get a Zipfian law from ``firing_max`` down to
``firing_min`` (SAELens ``zipfian_firing_probabilities`` with ``zipf_exponent``), the roots taking the most
frequent ranks; the children get their conditional probability as above.  Magnitudes are
``relu(1 + magnitude_std * N(0, 1))``.  Feature directions are random unit vectors (optionally
orthogonalised with SAELens' ``orthogonal_initializer``), plus an optional constant ``bias`` direction.

Everything SAELens provides is used as is: ``SyntheticModel`` (``FeatureDictionary`` +
``ActivationGenerator`` + ``Hierarchy``, with its ``save`` / ``load_from_disk``), ``generate_hierarchy`` /
``hierarchy_modifier`` for the tree and its mutual exclusion, ``zipfian_firing_probabilities`` and
``eval_sae_on_synthetic_data`` (MCC, uniqueness, classification metrics).  Caveats found in SAELens 6.54:

* sampling draws from torch's *global* RNG (and ``eval_sae_on_synthetic_data`` draws fresh samples on every
  call), so every sampling call here runs under ``torch.random.fork_rng`` with an explicit seed;
* the per-feature probabilities set here replace the ones SAELens derives from the model config; SAELens
  saves them with the model and restores them on ``load_from_disk``, but ``SyntheticModel.to(device)``
  rebuilds the generator from the config and loses them — keep the model on the CPU (it is only a sampler);
* ``FeatureDictionary.feature_vectors`` is an ``nn.Parameter``: ``SyntheticData.features`` is a detached copy;
* ``eval_sae_on_synthetic_data``'s ``mcc`` is the mean |cos| of a Hungarian matching between decoder rows and
  true features, i.e. an average over ``min(d_sae, n_features)`` pairs: it measures how truthful the SAE's
  latents are, not how many true features are covered (see ``frac_true_recovered`` for that).

Data are generated once per spec and cached (``artifacts.entry("synthetic", asdict(spec), VERSION)``); SAEs
trained on them are cached per (spec, width, training arguments).

Modules: ``model`` (the spec and the SAELens sampler), ``data`` (the cached data set with its truth), ``family``
(SAE families trained on it, oracle and random SAEs), ``score`` (scores against the truth).
"""

from .data import SyntheticData, generate
from .family import FAMILIES, TRAIN, book_family, oracle_sae, random_sae, train_synthetic_family
from .model import VERSION, SyntheticSpec, firing_probabilities, make_model, sample, tree
from .score import composite_directions, max_cos_to_truth, score

__all__ = ["SyntheticSpec", "SyntheticData", "generate", "firing_probabilities", "make_model", "sample", "tree",
           "TRAIN", "FAMILIES", "book_family", "train_synthetic_family", "oracle_sae", "random_sae",
           "max_cos_to_truth", "score", "composite_directions", "VERSION"]
