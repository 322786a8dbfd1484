"""The explorer's data: every latent of one SAE and every meta-latent of its meta-SAE, as compact JSON.

:func:`build` computes, for each latent of ``sae``: how often it fires on held-out text, its class against the next
smaller SAE (max decoder cosine, novel below 0.7) and its three best matches there, its top held-out contexts
(token ids, the firing token marked), a histogram of its non-zero activations, its logit effects (top promoted /
suppressed tokens of ``W_dec @ W_U``, the direct path as on Neuronpedia) and its meta-latent code.  Meta-latent
pages (the latents that use a meta-latent most) are derived in the browser from the codes.

:func:`publish` writes the JSON into the artifact cache and returns the HTML view (``metasae_utils/web/explorer.js``
fetches the file on demand in the book); ``runner.stage`` copies each published file next to the page
(``_static/explorer/``, :func:`metasae_utils.pages.copy_explorer_data`).  Numbers are rounded to 3 significant figures; tokens are stored once in a table.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import torch

PAPER_POST = "https://www.lesswrong.com/posts/TMAmHh4DdMr4nCSr5/showing-sae-latents-are-not-atomic-using-meta-saes"
THRESHOLD = 0.7


def _r(x: float) -> float:
    return float(f"{float(x):.3g}")


@torch.no_grad()
def activation_stats(sae, acts: torch.Tensor, bins: int = 12, batch_size: int = 4096) -> dict:
    """Per latent: firing count, max activation and a ``bins``-bin histogram of its non-zero activations on
    ``acts`` (n, d_in), bins from 0 to its own max (two passes, chunked)."""
    d = sae.cfg.d_sae
    fire, amax = torch.zeros(d, dtype=torch.long), torch.zeros(d)
    for s in range(0, len(acts), batch_size):
        f = sae.encode(acts[s:s + batch_size].to(sae.W_dec.device, sae.W_dec.dtype)).float().cpu()
        fire += (f > 0).sum(0)
        amax = torch.maximum(amax, f.max(0).values)
    hist = torch.zeros(d, bins, dtype=torch.long)
    scale = torch.where(amax > 0, bins / amax, torch.zeros_like(amax))
    for s in range(0, len(acts), batch_size):
        f = sae.encode(acts[s:s + batch_size].to(sae.W_dec.device, sae.W_dec.dtype)).float().cpu()
        idx = (f * scale).long().clamp_(max=bins - 1)
        hist.scatter_add_(1, idx.T.contiguous(), (f > 0).long().T.contiguous())
    return {"fire": fire, "max": amax, "hist": hist}


@torch.no_grad()
def logit_effects(w_dec: torch.Tensor, w_u: torch.Tensor, k: int = 6, chunk: int = 512):
    """Top ``k`` promoted and suppressed token ids (and values) of each row of ``w_dec @ w_u``, in row chunks."""
    ups, downs = [], []
    w_u = w_u.float()
    for s in range(0, len(w_dec), chunk):
        logits = w_dec[s:s + chunk].float() @ w_u
        ups.append(logits.topk(k, dim=1))
        downs.append((-logits).topk(k, dim=1))
    cat = lambda parts: (torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts]))
    (uv, ui), (dv, di) = cat(ups), cat(downs)
    return uv, ui, -dv, di


def build(model, acts_set, sae, name: str, smaller=None, smaller_name: str | None = None, meta_sae=None,
          decomposition=None, k_contexts: int = 5, before: int = 10, after: int = 3, neuronpedia: str | None = None,
          preset: str | None = None) -> dict:
    """The explorer data of ``sae`` (see the module docstring).  ``acts_set``: held-out ``Activations`` (acts and
    tokens); ``decomposition``: ``meta.decompose(meta_sae, sae.W_dec)``."""
    from .evaluate import top_activations
    from .stitching import top_matches
    d = sae.cfg.d_sae
    stats = activation_stats(sae, acts_set.acts)
    vals, rows = top_activations(sae, acts_set.acts, torch.arange(d), k=k_contexts)
    seqs, poss = acts_set.position(rows)
    uv, ui, dv, di = logit_effects(sae.W_dec.detach(), model.W_U.detach())
    vocab: dict[int, int] = {}

    def tok(t: int) -> int:
        return vocab.setdefault(int(t), len(vocab))
    if smaller is not None:
        m_cos, m_idx = top_matches(sae.W_dec.detach(), smaller.W_dec.detach(), torch.arange(d), k=3)
    tokens = acts_set.tokens
    latents = []
    for i in range(d):
        ctx = []
        for j in range(k_contexts):
            if vals[i, j] <= 0:
                continue
            row = tokens[int(seqs[i, j])].tolist()
            p = int(poss[i, j])
            lo, hi = max(1, p - before), min(len(row), p + after + 1)
            ctx.append([_r(vals[i, j]), p - lo] + [tok(t) for t in row[lo:hi]])
        entry = {"f": int(stats["fire"][i]), "h": [_r(stats["max"][i])] + stats["hist"][i].tolist(), "x": ctx,
                 "up": [[tok(t), _r(v)] for t, v in zip(ui[i].tolist(), uv[i].tolist())],
                 "dn": [[tok(t), _r(v)] for t, v in zip(di[i].tolist(), dv[i].tolist())]}
        if smaller is not None:
            entry["m"] = [[int(a), _r(c)] for a, c in zip(m_idx[i].tolist(), m_cos[i].tolist())]
        if decomposition is not None:
            entry["mc"] = [[int(a), _r(v)] for a, v in decomposition.code(i)]
        latents.append(entry)
    strings = [None] * len(vocab)
    for t, j in vocab.items():
        strings[j] = model.tokenizer.decode([t])
    return {"name": name, "d_sae": d, "smaller": smaller_name, "threshold": THRESHOLD, "preset": preset,
            "n_tokens": len(acts_set.acts), "d_meta": int(meta_sae.cfg.d_sae) if meta_sae is not None else None,
            "neuronpedia": neuronpedia, "dashboard": PAPER_POST, "tokens": strings, "latents": latents}


def publish(data: dict, file_name: str):
    """Write ``data`` as ``<cache>/explorer/<file_name>.json`` and return the explorer view; the view's display
    metadata names the file, so ``runner.stage`` can copy it next to the page."""
    from .artifacts import cache_root
    from .views import HTMLView
    path = cache_root() / "explorer" / f"{file_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(blob)
    tmp.replace(path)
    view = explorer_view(data, f"{file_name}.json", len(blob.encode()))
    view.metadata = {"metasae_explorer": {"file": str(path.relative_to(cache_root())), "name": f"{file_name}.json"}}
    return view


def explorer_view(data: dict, file: str, size: int):
    """The HTML shell that ``explorer.js`` fills (search box, slider over latents, the latent / meta-latent view)."""
    from .views import HTMLView
    example = max(range(len(data["latents"])), key=lambda i: data["latents"][i]["f"])
    word = next((data["tokens"][t].strip() for c in data["latents"][example]["x"] for t in c[2:]
                 if len(data["tokens"][t].strip()) > 3 and data["tokens"][t].strip().isalpha()), "")
    html = (f'<div class="metasae-explorer" data-src="../_static/explorer/{escape(file)}" data-last="{data["d_sae"] - 1}"'
            f' data-word="{escape(word)}" data-first="{example}">'
            f'<p><b>Explorer: {escape(data["name"])}</b> — all {data["d_sae"]:,} latents'
            + (f' and {data["d_meta"]:,} meta-latents' if data.get("d_meta") else "")
            + f' ({size / 1e6:.2f} MB of data, loaded when you search). '
            f'<span class="mx-static">It runs in the book (no kernel needed); in Jupyter, open the book page.</span></p>'
            '<input class="mx-search" type="search" placeholder="latent id, m12 for a meta-latent, or a word" size="34">'
            f'<input class="mx-slider" type="range" min="0" max="{data["d_sae"] - 1}" value="{example}"'
            ' aria-label="latent id">'
            '<div class="mx-results"></div><div class="mx-view"></div></div>')
    return HTMLView(html, f"<explorer {data['name']}: {data['d_sae']} latents, {size} bytes>")


def show(view) -> None:
    """Display a published explorer view with its metadata (the file that ``runner.stage`` copies)."""
    from IPython.display import HTML, display
    display(HTML(view.html), metadata=getattr(view, "metadata", {}))
