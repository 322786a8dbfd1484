"""Prose that follows the numbers: the "reading" paragraphs of the chapters, generated from the verdict rows, so
that a sentence such as "higher than the paper's" can never disagree with the number printed beside it."""

from __future__ import annotations

from .registry import pct


def _by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in rows}


def stitching_reading(rows: list[dict]) -> str:
    """Markdown: what the stitching rows (from :func:`~.stitching_verdicts`) mean, claim by claim, in the
    direction the numbers point."""
    r = _by_id(rows)
    out = []
    nf = r.get("novel_fraction")
    if nf and nf["value"] is not None:
        v, c = nf["value"], nf["control"]["value"]
        side = "higher than" if v > 0.35 else "lower than" if v < 0.35 else "equal to"
        text = f"**Novel fraction.** {pct(v)} of the larger SAE's latents are novel, {side} the paper's ≈ 35 %."
        if c is not None:
            diff = v - c
            text += (f" Two SAEs of the *same* width with different seeds already call {pct(c)} of each other's "
                     f"latents novel, so {'only ' if diff < 0.1 else ''}{100 * diff:.0f} points of the novel fraction "
                     f"can be put down to the change of size" + (": the rest is seed noise." if c > 0.1 else "."))
        out.append(text)
    for cid, what in (("novel_lowers", "novel"), ("recon_raises", "reconstruction")):
        row = r.get(cid)
        if row is None:
            continue
        if row["verdict"] == "untestable here" and "copy of the smaller SAE" in row["ours"]:
            if cid == "novel_lowers":
                out.append("**Single insertions.** " + row["ours"][0].upper() + row["ours"][1:] + ". The smaller SAE "
                           "under-reconstructs along its own directions (L1 shrinkage, a budget too short to "
                           "converge), so adding *any* latent along a direction it already has lowers its error: "
                           "neither insertion claim can be told apart from that here.")
            continue
        if row["value"] is None:
            continue
        verb = "lower" if cid == "novel_lowers" else "raise"
        out.append(f"**Inserting {what} latents.** {pct(row['value'])} {verb} the MSE inserted alone "
                   f"({row['control']['name']}: {pct(row['control']['value'])}): {row['verdict']}.")
    sm = r.get("smooth_swaps")
    if sm and sm["value"] is not None:
        v, c = sm["value"], sm["control"]["value"]
        text = (f"**Interpolation.** {pct(v)} of the swap walk's swap steps (matched groups and novel latents, removals "
                f"kept for the end) lower the MSE: {'smooth' if v >= 0.9 else 'not smooth'} by the ≥ 90 % rule")
        if c is not None:
            text += (f"; between seed twins the same walk gives {pct(c)}" +
                     (", so swapping is no smoother across sizes than across seeds." if v < c + 0.1 else "."))
        out.append(text + ("" if c is not None else "."))
    out += _plane_and_frankenstein(r)
    return "\n\n".join(out)


def _plane_and_frankenstein(r: dict) -> list[str]:
    """Sentences for the ΔMSE–cosine and Frankenstein-frontier rows, in the direction of their numbers."""
    out = []
    dc = r.get("delta_vs_cosine")
    if dc and dc["value"] is not None and dc["verdict"] != "untestable here":
        v, c = dc["value"], dc["control"]["value"]
        how = {"reproduced": "separates the two effects well", "partly": "separates them only in part"}.get(
            dc["verdict"], "hardly separates them")
        out.append(f"**The 0.7 line.** {pct(v)} of the larger SAE's firing latents sit in the two quadrants the paper "
                   f"predicts (novel and lowering, or reconstruction and raising), against {pct(c)} if cosine and "
                   f"effect were unrelated: the cosine {how}.")
    ff = r.get("frankenstein_frontier")
    if ff and ff["value"] is not None and ff["verdict"] != "untestable here":
        v = ff["value"]
        where = "below" if v < 1 else "above"
        out.append(f"**Frankenstein SAE.** Built from joint effects, it lies {where} the trained family's frontier at its "
                   f"own L0 (MSE ratio {v:.3f}; {ff['control']['name']}): {ff['verdict']}.")
    return out
