"""Every claim of the paper, declared once: its id, section, wording, the paper's value and the rule we judge by.

A chapter measures numbers with the maths modules, then hands them to a verdict function of this sub-package
(:mod:`.stitching`, :mod:`.meta`, :mod:`.groundtruth`), which returns rows built by :func:`row`.  The row carries
the claim's wording and the paper's value from :data:`CLAIMS`, so they are written nowhere else; the chapters and
the paper-vs-reproduction page read them from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("reproduced", "partly", "not reproduced", "untestable here", "qualitative")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper.

    ``id``: stable key (results files, anchors ``claim-<id>``); ``section``: the book's grouping; ``wording``: the
    claim in one sentence; ``paper``: the paper's number or statement; ``rule``: how our number is turned into a
    verdict, with its thresholds (the code of the verdict function applies exactly this).
    """

    id: str
    section: str
    wording: str
    paper: str
    rule: str


_DECLARED = (
    Claim("novel_fraction", "Stitching", "about 35 % of a larger SAE's latents are novel (max decoder cosine ≤ 0.7)",
          "≈ 35 % novel, ≈ 65 % reconstruction",
          "reproduced when the mean novel fraction over adjacent pairs lies in [20 %, 50 %]"),
    Claim("novel_lowers", "Stitching", "inserting a novel latent into the smaller SAE lowers the MSE",
          "yes, for most novel latents", "reproduced when > 50 % of novel latents lower the MSE inserted alone"),
    Claim("recon_raises", "Stitching", "inserting a reconstruction latent into the smaller SAE raises the MSE",
          "yes, for most reconstruction latents",
          "reproduced when > 50 % of reconstruction latents raise the MSE inserted alone"),
    Claim("smooth_swaps", "Stitching", "swapping matched groups interpolates smoothly between the two SAEs",
          "monotonically decreasing MSE along the path",
          "reproduced when ≥ 90 % of the steps of the least smooth adjacent pair lower the MSE"),
    Claim("frankenstein", "Stitching", "a 'Frankenstein' SAE stitched from several sizes beats trained SAEs of equal "
                                       "width on MSE", "lower MSE than equal-width SAEs (at higher L0)",
          "reproduced when its MSE is below that of the narrowest trained SAE at least as wide"),
    Claim("meta_sparse", "Meta-SAEs", "a k = 4 meta-SAE decomposes each latent into a few meta-latents",
          "≈ 4 meta-latents per latent (k = 4)",
          "reproduced when the mean count lies in [k/2, 3k/2] and < 10 % of latents use none"),
    Claim("meta_interpretable", "Meta-SAEs", "decompositions are interpretable ('Einstein' → science, prominent "
                                             "figures, German, …)", "qualitative examples",
          "qualitative: read the decompositions in the chapter"),
    Claim("meta_variance", "Meta-SAEs", "a k = 4 meta-SAE at ¼ width explains a large share of decoder variance",
          "≈ 55 % (BatchTopK base SAE; Matryoshka paper App. D.1)",
          "reproduced when the variance explained lies in [40 %, 70 %]"),
    Claim("meta_most_shared", "Meta-SAEs", "meta-latents are specific: the most shared one is used by few latents",
          "the most frequent meta-latent fires on 2 % of latents",
          "reproduced when the most shared meta-latent is used by ≤ 4 % of latents, partly when ≤ 10 %"),
    Claim("meta_resemble_smaller", "Meta-SAEs", "meta-latents resemble latents of smaller SAEs",
          "many have a cosine > 0.7 match in a smaller SAE",
          "reproduced when the share with a match > 0.7 in some smaller SAE is ≥ 2× and ≥ 5 points above random "
          "directions'"),
    Claim("smaller_use_fewer", "Meta-SAEs", "latents of smaller SAEs use fewer meta-latents (one meta-SAE over all "
                                            "sizes)", "yes",
          "reproduced when the mean count rises strictly with width"),
    Claim("split_gains", "Meta-SAEs", "a latent that splits in the next size gains meta-latents", "yes",
          "reproduced when ≥ 50 % of children use more meta-latents than their parent, partly when ≥ 30 %"),
    Claim("truth_novel", "Ground truth", "novel latents are new true features or children of features the smaller "
                                         "SAE merged", "the paper's reading (not testable on real data)",
          "reproduced when ≥ 80 % of labelled novel latents are new or related, partly when ≥ 50 %"),
    Claim("truth_reconstruction", "Ground truth", "reconstruction latents are the same true feature or a split of it",
          "the paper's reading (not testable on real data)",
          "reproduced when ≥ 80 % of labelled reconstruction latents are the same or related, partly when ≥ 50 %"),
    Claim("truth_meta_parents", "Ground truth", "meta-latents capture shared parent directions, used by their "
                                                "children's latents", "the paper's reading (not testable on real data)",
          "reproduced when ≥ 50 % of parents have a meta-latent (cos > 0.7) and ≥ max(50 %, 2× chance) of child "
          "latents use it; partly when one of the two holds"),
    Claim("matryoshka_meta", "Architectures", "a Matryoshka SAE's decoder is less compositional: a meta-SAE explains "
                                              "less of it than of a BatchTopK SAE's",
          "≈ 42 % vs ≈ 55 % (Matryoshka paper App. D.1)",
          "reproduced when Matryoshka's variance explained is > 3 points below BatchTopK's, partly when below"),
    Claim("novel_across_arch", "Architectures", "inserting novel latents lowers the MSE for every stitchable "
                                                "architecture at matched L0", "(the paper: standard SAEs only)",
          "reproduced when > 50 % of novel latents lower the MSE for every stitchable architecture, partly for some"),
)

#: id -> Claim, in the closing chapter's table order.
CLAIMS: dict[str, Claim] = {c.id: c for c in _DECLARED}


def row(claim_id: str, ours: str, verdict: str, value: float | None = None) -> dict:
    """One verdict row for ``claim_id`` (a key of :data:`CLAIMS`): the claim and the paper's number from the
    registry, ``ours`` (text), ``verdict`` (one of :data:`VERDICTS`) and the number behind it (``value``)."""
    if claim_id not in CLAIMS:
        raise ValueError(f"claim id {claim_id!r} is not registered; known: {', '.join(CLAIMS)}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
    c = CLAIMS[claim_id]
    if value is not None:
        value = float(value)
        value = None if math.isnan(value) else value
    return {"id": claim_id, "section": c.section, "claim": c.wording, "paper": c.paper, "ours": ours,
            "verdict": verdict, "value": value}


def share_verdict(x: float | None, good: float = 0.8, partly: float = 0.5) -> str:
    """'reproduced' when a share is >= ``good``, 'partly' when >= ``partly``, else 'not reproduced';
    'untestable here' for NaN or None (nothing to measure)."""
    if x is None or math.isnan(x):
        return "untestable here"
    return "reproduced" if x >= good else "partly" if x >= partly else "not reproduced"


def both_verdict(first: bool, second: bool) -> str:
    """'reproduced' when both halves of a claim hold, 'partly' when one does, else 'not reproduced'."""
    return "reproduced" if first and second else "partly" if first or second else "not reproduced"
