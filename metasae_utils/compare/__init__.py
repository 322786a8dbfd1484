"""``python -m metasae_utils compare SMALL LARGE [--twin TWIN] --activations ACTS --out DIR``: the stitching
experiment of Leask et al. (ICLR 2025) on anyone's pair of SAEs.

SMALL and LARGE (and the seed twin TWIN of LARGE: same width and recipe, another seed) are SAELens folders written
by ``sae.save_model(folder)`` or ``release/sae_id`` pairs of SAELens' registry (loaded with ``SAE.from_pretrained``:
through the hub, or offline from a filled Hugging Face cache with ``HF_HUB_OFFLINE=1``).  ACTS is a ``.pt`` file of
activations (n, d_in) at the SAEs' hook; ``--preset NAME`` collects a preset's held-out activations instead.

``DIR/report.json`` holds, over the live latents of LARGE (a latent firing on at most 1e-5 of the rows is dead,
counted in ``dead`` and left out): ``novel_fraction`` (max decoder cosine <= 0.7 to SMALL), ``novel_lowers`` and
``recon_raises`` (single insertions into SMALL), the twin's numbers, the self-duplicate control, ``matched_share``
(:func:`metasae_utils.canonicality.matched_share`) and ``hungarian_cosine``
(:func:`metasae_utils.canonicality.hungarian_cosine`), the quadrant shares and the interpolation path.
``DIR/report.html`` shows them as tables and two figures and needs no network.

Modules: :mod:`~metasae_utils.compare.inputs` (resolving, loading and checking the inputs),
:mod:`~metasae_utils.compare.numbers` (the numbers, from :mod:`metasae_utils.stitching` and
:mod:`metasae_utils.canonicality`), :mod:`~metasae_utils.compare.html` (the page), :mod:`~metasae_utils.compare.run`
(the whole command) and :mod:`~metasae_utils.compare.cli` (its arguments).
"""

from .run import compare

__all__ = ["compare"]
