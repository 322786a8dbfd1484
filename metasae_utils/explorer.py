"""The explorer's data: every latent of one SAE and every meta-latent of its meta-SAE, as compact JSON.

:func:`build` computes, for each latent of ``sae``: how often it fires on held-out text, its class against the next
smaller SAE (max decoder cosine, novel below 0.7) and its three best matches there, its top held-out contexts
(``[activation, index of the firing token, token-table indices packed by :func:`pack`, ``tw`` base-36 digits each]``,
each token shaded by the latent's activation there: ``x`` / ``xs``), one sample
from each activation band (:data:`BANDS`: ``q`` / ``qs``), a histogram of its non-zero activations, its logit effects (top promoted /
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
#: activation bands (fractions of a latent's max) from which one held-out sample each is shown (quantile samples).
BANDS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75))
#: the explorer data file's budget (bytes); :func:`fit` trims context windows, then contexts, to stay within it.
MAX_BYTES = 4_000_000


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


@torch.no_grad()
def band_samples(sae, acts: torch.Tensor, amax: torch.Tensor, bands=BANDS, batch_size: int = 4096) -> torch.Tensor:
    """Per latent and band ``(lo, hi]`` (fractions of the latent's max activation): the first row of ``acts`` whose
    activation falls in the band, -1 where none does; (d_sae, len(bands)) long.  The explorer's quantile samples:
    what a latent does at a middling activation, not only at its top."""
    d = sae.cfg.d_sae
    found = torch.full((d, len(bands)), -1, dtype=torch.long)
    for s in range(0, len(acts), batch_size):
        f = sae.encode(acts[s:s + batch_size].to(sae.W_dec.device, sae.W_dec.dtype)).float().cpu()
        for k, (lo, hi) in enumerate(bands):
            hit = (f > lo * amax) & (f <= hi * amax) & (f > 0)
            first = hit.float().argmax(0)
            new = hit.any(0) & (found[:, k] < 0)
            found[new, k] = first[new] + s
    return found


@torch.no_grad()
def window_activations(sae, acts: torch.Tensor, latents: torch.Tensor, windows: torch.Tensor,
                       batch_size: int = 4096) -> torch.Tensor:
    """Activation of ``latents[j]`` on each row of ``windows[j]`` (rows of ``acts``, -1: none → 0); same shape.
    Each distinct row is encoded once (windows overlap, and all lie in ``acts``), in chunks of ``batch_size``."""
    flat_rows, flat_lat = windows.reshape(-1), latents[:, None].expand_as(windows).reshape(-1)
    out = torch.zeros(len(flat_rows))
    ok = (flat_rows >= 0).nonzero().squeeze(1)
    rows, where = torch.unique(flat_rows[ok], return_inverse=True)  # rows sorted; where: index into rows
    order = where.argsort()
    bounds = torch.searchsorted(where[order], torch.arange(0, len(rows) + batch_size, batch_size))
    for c, s in enumerate(range(0, len(rows), batch_size)):
        f = sae.encode(acts[rows[s:s + batch_size]].to(sae.W_dec.device, sae.W_dec.dtype)).float().cpu()
        pick = order[bounds[c]:bounds[c + 1]]  # the (row, latent) pairs whose row is in this chunk
        out[ok[pick]] = f[where[pick] - s, flat_lat[ok[pick]]]
    return out.reshape(windows.shape)


def _windows(acts_set, rows: torch.Tensor, before: int, after: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For activation ``rows`` (any shape): the rows of the ``before`` .. ``after`` window around each (-1 outside
    its sequence) and the token ids there (-1 outside); shapes (*rows.shape, before + 1 + after)."""
    body = acts_set.tokens.shape[1] - 1
    seq, pos = acts_set.position(rows.clamp(min=0))
    offs = torch.arange(-before, after + 1)
    p = pos[..., None] + offs
    inside = (p >= 1) & (p <= body) & (rows[..., None] >= 0)
    win_rows = torch.where(inside, seq[..., None] * body + p - 1, torch.full_like(p, -1))
    toks = torch.where(inside, acts_set.tokens[seq[..., None].expand_as(p), p.clamp(0, body)], torch.full_like(p, -1))
    return win_rows, toks


def _context(act: float, at: int, toks: list[int], shade: list[float], top: float, tok) -> tuple[list, str]:
    """One stored context: ``[activation, index of the firing token, token ids...]`` and its shading string
    (one digit 0-9 per token: the latent's activation there as a fraction of ``top``)."""
    keep = [j for j, t in enumerate(toks) if t >= 0]
    digits = "".join(str(min(9, int(10 * max(0.0, shade[j]) / top))) if top > 0 else "0" for j in keep)
    return [_r(act), keep.index(at)] + [tok(toks[j]) for j in keep], digits


def build(model, acts_set, sae, name: str, smaller=None, smaller_name: str | None = None, meta_sae=None,
          decomposition=None, k_contexts: int = 10, before: int = 8, after: int = 3, neuronpedia: str | None = None,
          preset: str | None = None, max_bytes: int = MAX_BYTES) -> dict:
    """The explorer data of ``sae`` (see the module docstring), trimmed by :func:`fit` to ``max_bytes``.
    ``acts_set``: held-out ``Activations`` (acts and tokens); ``decomposition``: ``meta.decompose(meta_sae,
    sae.W_dec)``."""
    from .evaluate import top_activations
    from .stitching import top_matches
    d = sae.cfg.d_sae
    stats = activation_stats(sae, acts_set.acts)
    vals, rows = top_activations(sae, acts_set.acts, torch.arange(d), k=k_contexts)
    rows = torch.where(vals > 0, rows, torch.full_like(rows, -1))
    band_rows = band_samples(sae, acts_set.acts, stats["max"])
    all_rows = torch.cat([rows, band_rows], 1)  # (d, k + bands)
    win_rows, win_toks = _windows(acts_set, all_rows, before, after)
    shade = window_activations(sae, acts_set.acts, torch.arange(d), win_rows.reshape(d, -1)).reshape(win_rows.shape)
    uv, ui, dv, di = logit_effects(sae.W_dec.detach(), model.W_U.detach())
    vocab: dict[int, int] = {}

    def tok(t: int) -> int:
        return vocab.setdefault(int(t), len(vocab))
    if smaller is not None:
        m_cos, m_idx = top_matches(sae.W_dec.detach(), smaller.W_dec.detach(), torch.arange(d), k=3)
    latents = []
    for i in range(d):
        top = float(stats["max"][i])
        ctx = [_context(float(shade[i, j, before]), before, win_toks[i, j].tolist(), shade[i, j].tolist(), top, tok)
               for j in range(all_rows.shape[1]) if all_rows[i, j] >= 0]
        n_top = int((rows[i] >= 0).sum())
        entry = {"f": int(stats["fire"][i]), "h": [_r(stats["max"][i])] + stats["hist"][i].tolist(),
                 "x": [c for c, _ in ctx[:n_top]], "xs": [s for _, s in ctx[:n_top]],
                 "q": [c for c, _ in ctx[n_top:]], "qs": [s for _, s in ctx[n_top:]],
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
    data = {"name": name, "d_sae": d, "smaller": smaller_name, "threshold": THRESHOLD, "preset": preset,
            "n_tokens": len(acts_set.acts), "d_meta": int(meta_sae.cfg.d_sae) if meta_sae is not None else None,
            "neuronpedia": neuronpedia, "dashboard": PAPER_POST, "bands": [list(b) for b in BANDS],
            "tokens": strings, "latents": latents}
    width = max(1, len(pack([max(len(strings) - 1, 0)], 8).lstrip("0"))) if strings else 1
    data["tw"] = width
    for l in latents:
        for key in ("x", "q"):
            l[key] = [[c[0], c[1], pack(c[2:], width)] for c in l[key]]
    return fit(data, max_bytes)


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def pack(ids: list[int], width: int) -> str:
    """Token-table indices as one string, ``width`` base-36 digits each (half the bytes of a JSON list)."""
    out = []
    for i in ids:
        digits = ""
        for _ in range(width):
            i, r = divmod(i, 36)
            digits = _DIGITS[r] + digits
        out.append(digits)
    return "".join(out)


def tokens_of(data: dict, c: list) -> list[int]:
    """The token-table indices of a stored context, packed (``[act, at, "…"]``) or not (``[act, at, id, …]``)."""
    if len(c) == 3 and isinstance(c[2], str):
        w = data.get("tw", 3)
        return [int(c[2][j:j + w], 36) for j in range(0, len(c[2]), w)]
    return list(c[2:])


def _n(c: list, width: int) -> int:
    return len(c[2]) // width if len(c) == 3 and isinstance(c[2], str) else len(c) - 2


def size(data: dict) -> int:
    """Bytes of ``data`` as :func:`publish` writes it."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _trim(data: dict, before: int, after: int) -> None:
    """Keep at most ``before`` tokens before and ``after`` after the firing token of every stored context (its
    shading trimmed alike)."""
    w = data.get("tw", 3)
    for l in data["latents"]:
        for xs, ss in (("x", "xs"), ("q", "qs")):
            for j, c in enumerate(l.get(xs, [])):
                lo, hi = max(0, c[1] - before), min(_n(c, w), c[1] + after + 1)
                packed = len(c) == 3 and isinstance(c[2], str)
                l[xs][j] = [c[0], c[1] - lo] + ([c[2][w * lo:w * hi]] if packed else c[2 + lo:2 + hi])
                if ss in l:
                    l[ss][j] = l[ss][j][lo:hi]


def _span(data: dict) -> tuple[int, int]:
    """The longest (before, after) window of the stored contexts."""
    ctx = [c for l in data["latents"] for c in l.get("x", [])]
    w = data.get("tw", 3)
    return max((c[1] for c in ctx), default=0), max((_n(c, w) - 1 - c[1] for c in ctx), default=0)


def fit(data: dict, max_bytes: int = MAX_BYTES, min_contexts: int = 10) -> dict:
    """``data`` within ``max_bytes``, giving up detail in this order: windows down to 5 tokens before and 2 after
    the firing token, top contexts down to ``min_contexts``, windows down to 3 before and 1 after, then the band
    samples.  Returns ``data`` (trimmed in place)."""
    def shrink(lo_before: int, lo_after: int) -> None:
        before, after = _span(data)
        while size(data) > max_bytes and (before > lo_before or after > lo_after):
            before, after = (before - 1, after) if before > lo_before and (before > 2 * after or after <= lo_after) \
                else (before, after - 1)
            _trim(data, before, after)
    shrink(5, 2)
    k = max((len(l.get("x", [])) for l in data["latents"]), default=0)
    while size(data) > max_bytes and k > min_contexts:
        k -= 1
        for l in data["latents"]:
            l["x"], l["xs"] = l["x"][:k], l.get("xs", [])[:k]
    shrink(3, 1)
    if size(data) > max_bytes:
        for l in data["latents"]:
            l.pop("q", None), l.pop("qs", None)
    return data


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
    """The HTML shell that ``explorer.js`` fills (a labelled search box, a slider over latents, the view); the
    view opens from the page's address too (``#latent-12``, ``#meta-3``: :func:`link`)."""
    from .views import HTMLView
    example = max(range(len(data["latents"])), key=lambda i: data["latents"][i]["f"])
    fired = [data["tokens"][tokens_of(data, c)[c[1]]].strip() for c in data["latents"][example]["x"]]
    word = next((t for t in fired if len(t) > 3 and t.isalpha()), "")
    uid = f"mx-{abs(hash(file)) % 10**8}"
    html = (f'<div class="metasae-explorer" data-src="../_static/explorer/{escape(file)}" data-last="{data["d_sae"] - 1}"'
            f' data-word="{escape(word)}" data-first="{example}">'
            f'<p><b>Explorer: {escape(data["name"])}</b> — all {data["d_sae"]:,} latents'
            + (f' and {data["d_meta"]:,} meta-latents' if data.get("d_meta") else "")
            + f' ({size / 1e6:.2f} MB of data, loaded when you search). '
            f'<span class="mx-static">It runs in the book (no kernel needed); in Jupyter, open the book page.</span></p>'
            f'<label class="mx-label" for="{uid}">Find a latent</label>'
            f'<input id="{uid}" class="mx-search" type="search" size="34" '
            'placeholder="latent id, m12 for a meta-latent, or a word" aria-describedby="' + uid + '-help">'
            f'<input class="mx-slider" type="range" min="0" max="{data["d_sae"] - 1}" value="{example}"'
            ' aria-label="latent id">'
            f'<p id="{uid}-help"><small>Enter opens the first match; a word finds the latents that fire on it, '
            'strongest first. Each view has its own address (<code>#latent-12</code>, <code>#meta-3</code>) for '
            'bookmarks and Back.</small></p>'
            '<div class="mx-results" aria-live="polite"></div><div class="mx-view"></div></div>')
    return HTMLView(html, f"explorer of {data['name']}: {data['d_sae']} latents")


#: the explorer chapter's page (relative to the other chapters' pages).
PAGE = "08_explorer.html"


def link(latent: int, text: str | None = None, kind: str = "latent", page: str = PAGE) -> str:
    """An HTML link to the explorer's view of ``latent`` (``kind`` "latent" or "meta"): ``08_explorer.html#latent-12``;
    the chapters print latent ids through it."""
    anchor = f"{kind}-{int(latent)}"
    label = text if text is not None else (f"latent {int(latent)}" if kind == "latent" else f"meta-latent {int(latent)}")
    return f'<a class="mx-link" href="{escape(page)}#{anchor}" title="open in the explorer">{escape(label)}</a>'


def show(view) -> None:
    """Display a published explorer view with its metadata (the file that ``runner.stage`` copies)."""
    from IPython.display import HTML, display
    display(HTML(view.html), metadata=getattr(view, "metadata", {}))
