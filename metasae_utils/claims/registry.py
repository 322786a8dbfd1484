"""Every claim of the paper, declared once: its id, section, wording, the paper's value and the rule we judge by.

A chapter measures numbers with the maths modules, then hands them to a verdict function of this sub-package
(:mod:`.stitching`, :mod:`.meta`, :mod:`.groundtruth`), which returns rows built by :func:`row`.  The row carries
the claim's wording and the paper's value from :data:`!CLAIMS`, so they are written nowhere else; the chapters and
the paper-vs-reproduction page read them from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("reproduced", "partly", "not reproduced", "undecided at this budget", "underpowered", "untestable here",
            "qualitative")
#: verdicts that judge nothing yet: the measurement could not decide ("undecided at this budget": more training
#: might; "underpowered": even the control shows no method could succeed here)
UNDECIDED = ("undecided at this budget", "underpowered", "untestable here", "qualitative")


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
          "live latents only (a latent firing on ≤ 1e-5 of held-out tokens is dead; dead counts are shown beside); "
          "control: the seed twin — the share of the larger SAE's live latents that are novel against a second SAE of "
          "its width and recipe with another seed; reproduced when the headline pair's novel fraction lies in "
          "[20 %, 50 %] and exceeds its seed-twin control by ≥ 5 points"),
    Claim("size_vs_seed", "Stitching", "a larger SAE holds latents that a smaller one lacks, beyond what another seed "
                                       "of the larger width lacks (size, not seed, makes latents novel)",
          "≈ 35 % novel latents that lower the smaller SAE's MSE (the paper has no seed control)",
          "pre-declared, decisive; annealed budget points of one pair, live latents only; control: the seed twin (the "
          "same measurement between the larger SAE and a second SAE of its width and recipe with another seed); "
          "margins: the cross-size novel fraction minus the twin's, and the share of novel latents that lower the MSE "
          "minus the share of the twin's novel latents that do; reproduced when, at the largest annealed budget of a "
          "pair, the cross-size novel fraction exceeds the twin's by ≥ 10 points and novel latents lower the MSE "
          "≥ 10 points more often than the twin's novel latents do; not reproduced when both margins are < 5 points "
          "and the fitted margin grows < 2 points per doubling (least squares of each margin on log2(steps); both "
          "slopes < 2 points, which needs ≥ 3 budgets); else undecided at this budget, with the budget at which the "
          "fit would meet the rule (both margins at 10 points) and its range from ± one standard error of the slopes"),
    Claim("novel_lowers", "Stitching", "inserting a novel latent into the smaller SAE lowers the MSE",
          "yes, for most novel latents",
          "live latents only (a latent firing on ≤ 1e-5 of held-out tokens is dead); control: the seed twin — the "
          "larger SAE's latents that are novel against its seed twin, inserted into the twin; untestable when the "
          "smaller SAE's self-duplicate share (a copy of its own latent lowers its MSE) is > 50 %; reproduced when "
          "> 50 % of novel latents lower the MSE and ≥ 10 points more than the twin's novel latents do (without a twin: "
          "≥ 10 points more than the self-duplicates, at most 'partly')"),
    Claim("recon_raises", "Stitching", "inserting a reconstruction latent into the smaller SAE raises the MSE",
          "yes, for most reconstruction latents",
          "control: the share of novel latents that raise the MSE; untestable when the self-duplicate control is "
          "> 50 %; reproduced when > 50 % of reconstruction latents raise the MSE and ≥ 10 points more than novel "
          "latents do"),
    Claim("smooth_swaps", "Stitching", "swapping matched groups interpolates smoothly between the two SAEs",
          "monotonically decreasing MSE along the path",
          "the walk the paper describes: greedily swap matched groups and insert novel latents, then remove the "
          "smaller SAE's unmatched latents as a segment of its own (reported apart, not judged); value: the share of "
          "the swap segment's steps that lower the MSE, for the least smooth adjacent pair; control: the same walk "
          "between the larger SAE's seed twin and the larger SAE; reproduced when ≥ 90 % of swap steps lower the MSE "
          "and the share is ≥ 10 points above the twins' walk; partly when only one of the two holds (without a twin: "
          "at most partly)"),
    Claim("frankenstein", "Stitching", "a 'Frankenstein' SAE stitched from several sizes beats trained SAEs of equal "
                                       "width on MSE", "lower MSE than equal-width SAEs (at higher L0)",
          "control: the narrowest trained SAE at least as wide (ratio 1); reproduced when the MSE ratio is < 1"),
    Claim("delta_vs_cosine", "Stitching", "the max decoder cosine to the smaller SAE separates latents that lower the "
                                          "MSE when inserted (cosine ≤ 0.7) from those that raise it (> 0.7)",
          "the stitching post's scatter: novel latents below 0.7 lower the MSE, reconstruction latents raise it",
          "headline pair; control: the agreement expected if cosine and ΔMSE were independent (product of the "
          "marginals, the shuffled pairing); reproduced when ≥ 75 % of firing latents lie in the two agreeing "
          "quadrants and ≥ 10 points above that control, partly when only the margin holds"),
    Claim("frankenstein_frontier", "Stitching", "a Frankenstein SAE (latents inserted greedily by their joint effect) "
                                                "has lower MSE than equal-width SAEs at higher L0, and lies below the "
                                                "trained family's (L0, MSE) frontier",
          "lower MSE than equal-width SAEs, at higher L0",
          "control: the family's frontier at the Frankenstein SAE's L0 (lower envelope of the trained SAEs, linear in "
          "log L0; beyond the family's largest L0 only an upper bound); value: MSE / frontier MSE; reproduced when its "
          "MSE is below the narrowest trained SAE at least as wide, its L0 above that SAE's, and the ratio < 1 at an "
          "interpolated (not extrapolated) frontier; partly when the equal-width comparison holds on both axes only"),
    Claim("meta_sparse", "Meta-SAEs", "a k = 4 meta-SAE reconstructs each latent's direction from a few meta-latents",
          "≈ 4 meta-latents per latent (k = 4) explain a latent",
          "seeds: 3 meta-SAE seeds (the preset's seed, +1, +2) on the one fixed base SAE, so the spread is the "
          "meta-SAE's training noise only, not the base SAE's (which is trained once); value: the mean over seeds of "
          "the mean cosine between a live latent's decoder row and its reconstruction, with its standard error "
          "(SE = std over seeds / √3; the std is shown too); control: a meta-SAE of the same recipe and the same seeds "
          "on one fixed draw of random unit rows, its mean over seeds; reproduced when mean − 2 SE ≥ 0.7 and the mean "
          "is ≥ 0.1 above the control's mean; not reproduced when the mean is < 0.1 above the control's mean, or when "
          "mean + 2 SE < 0.7; else (0.7 within mean ± 2 SE) undecided at this budget (more meta-SAE seeds or steps "
          "could decide); untestable here with fewer than 2 seeds (no spread)"),
    Claim("meta_interpretable", "Meta-SAEs", "decompositions are interpretable ('Einstein' → science, prominent "
                                             "figures, German, …)", "qualitative examples",
          "qualitative: read the decompositions in the chapter"),
    Claim("meta_variance", "Meta-SAEs", "a k = 4 meta-SAE at ¼ width explains a large share of decoder variance",
          "≈ 55 % (BatchTopK base SAE; Matryoshka paper App. D.1)",
          "control: a meta-SAE of the same recipe on random unit rows; reproduced when the variance explained lies "
          "in [40 %, 70 %] and is ≥ 10 points above the control's"),
    Claim("meta_most_shared", "Meta-SAEs", "meta-latents are specific: the most shared one is used by few latents",
          "the most frequent meta-latent fires on 2 % of latents",
          "control: the random-row meta-SAE's most shared meta-latent; reproduced when ≤ 4 % of latents use the "
          "most shared meta-latent, partly when ≤ 10 %"),
    Claim("meta_resemble_smaller", "Meta-SAEs", "meta-latents resemble latents of smaller SAEs (and not of the base "
                                                "SAE itself)", "many have a cosine > 0.7 match in a smaller SAE",
          "control: random unit directions; reproduced when the share of meta-latents with a match > 0.7 in some "
          "smaller SAE and none in the base SAE is ≥ 2× and ≥ 5 points above the random directions' share"),
    Claim("smaller_use_fewer", "Meta-SAEs", "latents of smaller SAEs use fewer meta-latents (one meta-SAE over all "
                                            "sizes)", "yes",
          "rows balanced across widths; control: the spread of the meta-SAE's reconstruction cosine across widths; "
          "untestable when that spread is > 0.1 (counts then follow fit quality); reproduced when the mean count "
          "rises strictly with width"),
    Claim("split_gains", "Meta-SAEs", "a latent that splits in the next size gains meta-latents", "yes",
          "value: the mean gain (a split's children's mean number of meta-latents minus their parent's, averaged over "
          "splits); control: the mean gain of latents matched one-to-one in the next size; reproduced when the splits' "
          "mean gain is > 0 and exceeds the control's by more than two standard errors of the difference (Welch); "
          "not reproduced otherwise; untestable when either group has fewer than 2 latents (no standard error); shares "
          "of children using more are shown, not judged: averaging children's counts breaks ties"),
    Claim("meta_ratio_paper", "Meta-SAEs", "at the paper's dictionary ratio (2304 meta-latents for 49152 latents, "
                                           "≈ 1/21) a k = 4 meta-SAE finds shared structure in the decoder",
          "2304 meta-latents, k = 4, on SAE-49152 (used throughout §4; its variance explained is not reported)",
          "control: the same recipe and ratio on random unit rows; reproduced when the variance explained is ≥ 10 "
          "points above the control's and the mean cosine of row and reconstruction ≥ 0.7, partly when only the "
          "margin holds"),
    Claim("edge_overlap", "Meta-SAEs", "latents that share a meta-latent also share their nearest latent in a smaller "
                                       "SAE (graph of shared meta-latents vs graph of shared neighbours)",
          "28.92 % of edges shared (SAE-49152, neighbours in SAE-3072)",
          "the paper: '28.92 % of edges are shared' does not say which graph's edges it counts, so both directions "
          "are computed: the share of meta-latent edges that are shared-neighbour edges and the share of "
          "shared-neighbour edges that are meta-latent edges; smaller SAE: the family member nearest to 1/16 of the "
          "base width; control: the same shares for a degree-preserving random graph in place of the meta graph; "
          "reproduced when both directions are ≥ 2× and ≥ 5 points above their controls; partly when one direction "
          "is; value: the direction nearer the paper's 28.92 % (shown with the other)"),
    Claim("truth_novel", "Ground truth", "novel latents are new true features or children of features the smaller "
                                         "SAE merged", "the paper's reading (not testable on real data)",
          "control: the same share among all labelled latents of the larger SAE, whatever their class; reproduced "
          "when ≥ 80 % of labelled novel latents are new or related and ≥ 10 points above the control"),
    Claim("truth_reconstruction", "Ground truth", "reconstruction latents are the same true feature or a split of it",
          "the paper's reading (not testable on real data)",
          "control: the same share among all labelled latents of the larger SAE; reproduced when ≥ 80 % of labelled "
          "reconstruction latents are the same or related and ≥ 10 points above the control"),
    Claim("truth_meta_parents", "Ground truth", "meta-latents capture shared parent directions, used by their "
                                                "children's latents", "the paper's reading (not testable on real data)",
          "control: chance (a meta-latent's base usage rate); reproduced when ≥ 50 % of parents have a meta-latent "
          "(cos > 0.7) and ≥ max(50 %, 2× chance) of child latents use it; partly when one of the two holds"),
    Claim("matryoshka_meta", "Architectures", "a Matryoshka SAE's decoder is less compositional: a meta-SAE explains "
                                              "less of it than of a BatchTopK SAE's",
          "≈ 42 % vs ≈ 55 % (Matryoshka paper App. D.1)",
          "seeds: 3 meta-SAE seeds (the preset's seed, +1, +2) on each architecture's one fixed larger SAE, so the "
          "spread is the meta-SAE's training noise only, not the base SAEs' (each trained once); value: the "
          "difference of the mean variance explained over seeds, Matryoshka − BatchTopK, with its Welch standard "
          "error SE = √(SE_M² + SE_B²) (each SE = std over seeds / √3; the seeds are the same on both sides but the "
          "decoders differ, so no pairing is assumed; the paired SE is shown beside); control: no difference (0); "
          "reproduced when the difference is < −3 points and < −2 SE; partly when it is < −2 SE but ≥ −3 points; "
          "not reproduced when it is > +2 SE (the other direction), or when it lies within ± 2 SE of 0 and 2 SE ≤ "
          "3 points (a 3-point drop would have been seen); underpowered when it lies within ± 2 SE of 0 and 2 SE > "
          "3 points (the seed spread hides a 3-point drop); untestable here when either architecture is missing or "
          "has fewer than 2 seeds"),
    Claim("l0_sensitivity", "Sparsity (L0)", "the paper's stitching and meta-SAE conclusions hold at every target L0 "
                                             "(a check beyond the paper: 'Sparse but wrong' shows L0 changes features)",
          "(the paper: one L0 per SAE size)",
          "one pair of widths (l0_widths) at every target L0 (l0_targets and the family's), each with the larger SAE's "
          "seed twin at that L0; at each target: (1) novel fraction − seed-twin novel fraction ≥ 5 points, (2) ≥ 50 % "
          "of novel latents lower the smaller SAE's MSE when inserted alone, (3) meta-SAE variance explained − random "
          "rows' ≥ 5 points; a target is reproduced when all three hold, partly when one or two, not reproduced when "
          "none, untestable without a seed twin at that L0; over the targets: reproduced when every testable target "
          "is, not reproduced when none is, partly otherwise; value: the smallest margin of (1); control: the seed "
          "twins (declared in metasae_utils.l0sens before its numbers existed, moved here unchanged)"),
    Claim("absorption_novel", "Feature absorption", "a wider SAE's absorbing latents (latents that absorb a "
                                                    "first-letter feature) are novel more often than its live latents at "
                                                    "large (a check beyond the paper: is a novel latent often an absorbing "
                                                    "child?)",
          "(the paper: no absorption measurement; Chanin et al.: absorption persists at every width and sparsity)",
          "first-letter task as SAEBench 0.6.0 defines it (its linear probe, k-sparse probes k ≤ 10 with F1 jump 0.03, "
          "letters whose probe F1 > 0.6, absorption thresholds: probe cosine 0.025 (full) / 0.1 (fraction), probe "
          "projection share 0.4, ≤ 3 absorbing latents), on the preset's vocabulary sample (absorption_words); for "
          "each adjacent pair of family widths, the larger SAE's absorbing latents: its live latents that are the top "
          "probe-projecting latent of a full-absorption word, or one of the ≤ 3 counted absorbers of a word with "
          "absorption fraction > 0; value: the share of the absorbing latents that are novel (max decoder cosine ≤ 0.7 "
          "to the smaller SAE), pooled over the pairs (a latent counted once per pair); control: the novel share of all "
          "live latents of the same larger SAEs, pooled the same way; underpowered when fewer than 20 absorbing "
          "latents are pooled; reproduced when the value exceeds the control by ≥ 10 points and a one-sided binomial "
          "test of the absorbing latents' novel count against the control's share gives p < 0.05; partly when only "
          "one of the two holds (≥ 10 points, or p < 0.05); not reproduced otherwise (declared before any absorption "
          "number existed)"),
    Claim("novel_across_arch", "Architectures", "inserting novel latents lowers the MSE for every stitchable "
                                                "architecture at matched L0", "(the paper: standard SAEs only)",
          "control: the largest self-duplicate share among the architectures; untestable when it is > 50 %; "
          "reproduced when > 50 % of novel latents lower the MSE for every stitchable architecture, partly for some"),
    Claim("targeted_edit", "Meta-SAEs", "meta-latents allow more precise causal edits than SAE latents: moving one "
                                        "attribute of a city changes it while keeping the city's other attributes",
          "more precise edits with meta-latents on a RAVEL-style knowledge-editing task (meta-SAE post, TL;DR; the "
          "post's numbers were not verified here)",
          "value: share of held-out edits that both change the target attribute and keep the other two, meta-latents "
          "minus SAE latents, at the declared edit_k; control: the same difference for k random units of each kind; "
          "untestable when fewer than edit_min_cities held-out known cities have a donor; underpowered when the full "
          "SAE-code swap (the control showing what any unit choice could achieve) changes the target in < 50 % of "
          "edits; reproduced when the difference is >= 10 points and >= 10 points above its "
          "control, partly when it is >= 5 points and above its control (a smaller difference is a few edits: noise)"),
)

#: id -> Claim, in the closing chapter's table order.
CLAIMS: dict[str, Claim] = {c.id: c for c in _DECLARED}


def _number(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def row(claim_id: str, ours: str, verdict: str, value: float | None = None,
        control: tuple[str, float | None] | None = None) -> dict:
    """One verdict row for ``claim_id`` (a key of :data:`!CLAIMS`): the claim and the paper's number from the
    registry, ``ours`` (text), ``verdict`` (one of :data:`!VERDICTS`), the number behind it (``value``) and its
    control ``(name, value)``: what the number would be by chance, noise or a trivial mechanism.

    A number that equals its control (to 1e-9) is never 'reproduced': such a verdict becomes 'not reproduced'."""
    if claim_id not in CLAIMS:
        raise ValueError(f"claim id {claim_id!r} is not registered; known: {', '.join(CLAIMS)}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
    c = CLAIMS[claim_id]
    value = _number(value)
    name, c_value = control if control is not None else ("none", None)
    c_value = _number(c_value)
    if verdict == "reproduced" and value is not None and c_value is not None and abs(value - c_value) <= 1e-9:
        verdict, ours = "not reproduced", ours + " (equal to its control)"
    return {"id": claim_id, "section": c.section, "claim": c.wording, "paper": c.paper, "ours": ours,
            "verdict": verdict, "value": value, "control": {"name": name, "value": c_value}, "rule": c.rule}


def pct(x) -> str:
    """A share as a percentage with one decimal ('n/a' for None or NaN)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def share_verdict(x: float | None, good: float = 0.8, partly: float = 0.5) -> str:
    """'reproduced' when a share is >= ``good``, 'partly' when >= ``partly``, else 'not reproduced';
    'untestable here' for NaN or None (nothing to measure)."""
    if x is None or math.isnan(x):
        return "untestable here"
    return "reproduced" if x >= good else "partly" if x >= partly else "not reproduced"


def both_verdict(first: bool, second: bool) -> str:
    """'reproduced' when both halves of a claim hold, 'partly' when one does, else 'not reproduced'."""
    return "reproduced" if first and second else "partly" if first or second else "not reproduced"
