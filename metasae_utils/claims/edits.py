"""The verdict on the targeted-edit claim of the meta-SAE post (rule in :data:`.registry.CLAIMS`)."""

from __future__ import annotations

from .registry import row

#: the full SAE-code swap (what any choice of units could at most achieve) must change the target attribute in at
#: least this share of edits; below it the comparison is "underpowered" (declared in the registry's rule)
MIN_CEILING = 0.5


def _rate(summary: list[dict], method: str, k, key: str) -> float | None:
    hit = [r[key] for r in summary if r["method"] == method and r["k"] == k]
    return hit[0] if hit else None


def targeted_edit_row(summary: list[dict], k: int, n_test: int, min_cities: int, n_known: int) -> dict:
    """``summary``: :func:`metasae_utils.edits.experiment.summary` rows (method, k, success, keep, both); ``k``: the
    declared number of units; ``n_test``: held-out known cities with a donor; ``min_cities``: the fewest that make
    the comparison meaningful; ``n_known``: cities the model knows on all three attributes."""
    from ..edits.experiment import FULL
    meta, sae = _rate(summary, "meta-latents", k, "both"), _rate(summary, "SAE latents", k, "both")
    r_meta, r_sae = _rate(summary, "random meta-latents", k, "both"), _rate(summary, "random SAE latents", k, "both")
    control_value = None if r_meta is None or r_sae is None else r_meta - r_sae
    control = (f"k = {k} random units of each kind: meta minus SAE", control_value)
    ceiling = _rate(summary, FULL, None, "success")
    rates = ("" if meta is None or sae is None else
             f": meta-latents change the target and keep the others in {100 * meta:.0f} % of edits, SAE latents in "
             f"{100 * sae:.0f} % (random units: meta {100 * (r_meta or 0):.0f} %, SAE {100 * (r_sae or 0):.0f} %; "
             f"full swap changes the target in {100 * (ceiling or 0):.0f} %)")
    if n_test < min_cities or meta is None or sae is None:
        return row("targeted_edit", f"the model knows {n_known} cities on all three attributes; {n_test} held-out "
                                    f"cities (fewer than {min_cities}): too few to compare{rates}", "untestable here",
                   None, control)
    diff = meta - sae
    text = f"k = {k}, {n_test} held-out cities{rates}"
    if ceiling is None or ceiling < MIN_CEILING:
        return row("targeted_edit", text + f": the full SAE-code swap moves the target in fewer than "
                                           f"{100 * MIN_CEILING:.0f} % of edits, so no choice of units can show a "
                                           "difference here", "underpowered", diff, control)
    c = 0.0 if control_value is None else control_value
    verdict = ("reproduced" if diff >= 0.1 and diff >= c + 0.1 else "partly" if diff >= 0.05 and diff > c
               else "not reproduced")
    return row("targeted_edit", text, verdict, diff, control)
