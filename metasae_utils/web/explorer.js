/* The companion's latent explorer (kernel-free).  Each .metasae-explorer element names its data file (data-src);
   the file is fetched on demand (first search, slider move, link or address), then every latent and meta-latent of
   the file can be shown: search by latent id (an exact id opens it), "m<id>" for a meta-latent, or a word: the
   latents whose top contexts fire on that token, strongest activation first, each with its snippet.  Enter opens
   the first match.  Every view has an address (#latent-12, #meta-3): links set it, so Back and bookmarks work.
   Reads both data formats: contexts [act, at, ...tokens] or [act, at, "packed tokens"] (d.tw base-36 digits each),
   with per-token shading (xs) and band samples (q, qs) when the file has them. */
(function () {
  "use strict";
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const tokText = (d, t) => esc(d.tokens[t]).replace(/\n/g, "⏎");
  // a context's token-table indices: packed ([act, at, "base-36 digits, d.tw each"]) or listed ([act, at, id, ...])
  const ids = (d, c) => {
    if (typeof c[2] !== "string") return c.slice(2);
    const w = d.tw || 3, out = [];
    for (let j = 0; j < c[2].length; j += w) out.push(parseInt(c[2].slice(j, j + w), 36));
    return out;
  };

  function load(el) {
    if (!el._data) {
      el._data = fetch(el.dataset.src).then((r) => {
        if (!r.ok) throw new Error(`${el.dataset.src}: ${r.status}`);
        return r.json();
      }).then((d) => { el._d = d; el._users = null; return d; });
    }
    return el._data;
  }

  function users(el) {  // meta-latent id -> [[latent, activation], ...] by decreasing activation
    if (!el._users) {
      const u = new Map();
      el._d.latents.forEach((l, i) => (l.mc || []).forEach(([m, v]) => {
        if (!u.has(m)) u.set(m, []);
        u.get(m).push([i, v]);
      }));
      u.forEach((list) => list.sort((a, b) => b[1] - a[1]));
      el._users = u;
    }
    return el._users;
  }

  function context(d, c, shade) {
    const [act, at] = c, toks = ids(d, c);
    const tok = (t, i) => {
      const level = shade ? +shade[i] || 0 : 0;
      if (i === at) return `<mark title="activation ${act}">${tokText(d, t)}</mark>`;
      return level ? `<span class="mx-t" style="background:rgba(246,170,40,${(0.08 * level).toFixed(2)})">${tokText(d, t)}</span>`
                   : tokText(d, t);
    };
    return `<div class="mx-ctx">…${toks.map(tok).join("")}… <small>(${act})</small></div>`;
  }

  function contexts(d, list, shades) {
    return (list || []).map((c, j) => context(d, c, shades && shades[j])).join("");
  }

  function histogram(h) {
    const [max, ...counts] = h;
    const top = Math.max(1, ...counts);
    return `<table class="mx-hist"><tbody>${counts.map((c, i) =>
      `<tr><td><small>${(max * i / counts.length).toPrecision(2)}–${(max * (i + 1) / counts.length).toPrecision(2)}</small></td>` +
      `<td><span class="mx-bar" style="width:${Math.round(120 * c / top)}px"></span> <small>${c}</small></td></tr>`).join("")}</tbody></table>`;
  }

  const link = (kind, id, text) => `<a href="#${kind}-${id}" data-kind="${kind}" data-id="${id}">${text}</a>`;
  const message = (el, html) => { el.querySelector(".mx-view").innerHTML = `<p class="mx-msg">${html}</p>`; };

  function showLatent(el, i) {
    const d = el._d, l = d.latents[i];
    if (!l) { message(el, `There is no latent ${esc(i)}: ids run from 0 to ${d.d_sae - 1}.`); return; }
    const pct = (100 * l.f / d.n_tokens).toFixed(3);
    let cls = "";
    if (l.m) {
      const best = l.m[0][1];
      cls = `<p><b>Class</b>: ${best > d.threshold ? "reconstruction" : "novel"} (max decoder cosine ${best} with ${esc(d.smaller)}; ` +
            `threshold ${d.threshold}) · <b>best matches in ${esc(d.smaller)}</b>: ${l.m.map(([j, c]) => `${j} (cos ${c})`).join(", ")}</p>`;
    }
    const np = d.neuronpedia ? ` · <a href="https://www.neuronpedia.org/${esc(d.neuronpedia)}/${i}">Neuronpedia</a>` : "";
    const meta = l.mc ? `<p><b>Meta-latents</b>: ${l.mc.length ? l.mc.map(([m, v]) => link("meta", m, `m${m}`) + ` (${v})`).join(", ") : "none"}</p>` : "";
    const logits = (list) => list.map(([t, v]) => `<code>${tokText(d, t)}</code> <small>${v}</small>`).join(" · ");
    el.querySelector(".mx-view").innerHTML =
      `<h4>${esc(d.name)} latent ${i}</h4><p>fires on ${l.f.toLocaleString()} of ${d.n_tokens.toLocaleString()} held-out tokens (${pct} %)${np} · ` +
      `<a href="${esc(d.dashboard)}">the authors' meta-SAE dashboard</a></p>${cls}${meta}` +
      `<div class="mx-cols"><div><b>Top ${l.x.length} held-out contexts</b> <small>(firing token marked, others shaded ` +
      `by the latent's activation)</small>${contexts(d, l.x, l.xs) || "<p>(silent on held-out text)</p>"}` +
      (l.q && l.q.length ? `<b>Samples at lower activations</b> <small>(one per band of its maximum)</small>${contexts(d, l.q, l.qs)}` : "") +
      `</div>` +
      `<div><b>Activations when firing</b>${histogram(l.h)}<b>Logit effects</b> (W_dec · W_U)<p>promotes: ${logits(l.up)}</p>` +
      `<p>suppresses: ${logits(l.dn)}</p></div></div>`;
    el.querySelector(".mx-slider").value = i;
  }

  function showMeta(el, m) {
    const d = el._d, list = users(el).get(m) || [];
    if (d.d_meta && (m < 0 || m >= d.d_meta)) { message(el, `There is no meta-latent m${esc(m)}: ids run from m0 to m${d.d_meta - 1}.`); return; }
    el.querySelector(".mx-view").innerHTML =
      `<h4>meta-latent m${m}</h4><p>used by ${list.length} of ${d.d_sae} latents of ${esc(d.name)}` +
      (d.d_meta ? ` (${d.d_meta} meta-latents in all)` : "") + `; the ${Math.min(12, list.length)} that use it most:</p>` +
      list.slice(0, 12).map(([i, v]) => `<div>${link("latent", i, `latent ${i}`)} (${v}) ` +
        (d.latents[i].x[0] ? context(d, d.latents[i].x[0]) : "<small>(silent)</small>") + "</div>").join("");
  }

  // latents whose top contexts fire on w (then on a word starting with w, then with w nearby), by activation there
  function wordHits(d, w) {
    const hits = [];
    d.latents.forEach((l, i) => {
      let best = null;
      l.x.forEach((c, j) => {
        const toks = ids(d, c), t = d.tokens[toks[c[1]]].trim().toLowerCase();
        const score = t === w ? 3 : t.startsWith(w) ? 2 : toks.some((x) => d.tokens[x].toLowerCase().includes(w)) ? 1 : 0;
        if (score && (!best || score > best.score || (score === best.score && c[0] > best.act)))
          best = {score, act: c[0], c, s: l.xs && l.xs[j]};
      });
      if (best) hits.push({i, ...best});
    });
    return hits.sort((a, b) => b.score - a.score || b.act - a.act);
  }

  const firing = (hits) => hits.filter((h) => h.score >= 2).length;

  function search(el, q, open) {
    const d = el._d, res = el.querySelector(".mx-results");
    q = q.trim();
    if (/^\d+$/.test(q) || /^m\d+$/i.test(q)) {
      const meta = /^m/i.test(q), id = +q.replace(/^m/i, "");
      res.innerHTML = "";
      return go(el, meta ? "meta" : "latent", id);
    }
    if (!q) { res.innerHTML = ""; return; }
    if (q.length < 2) { res.innerHTML = `<p class="mx-msg">Type at least 2 characters to search for a word.</p>`; return; }
    const hits = wordHits(d, q.toLowerCase());
    res.innerHTML = hits.length
      ? `<p><small>${firing(hits)} latent${firing(hits) === 1 ? " fires" : "s fire"} on “${esc(q)}”` +
        (hits.length > firing(hits) ? `, ${hits.length - firing(hits)} more have it nearby in their top contexts` : "") +
        `; strongest activation first${hits.length > 25 ? " (first 25 shown)" : ""}:</small></p>` +
        hits.slice(0, 25).map((h) => `<div class="mx-hit">${link("latent", h.i, `latent ${h.i}`)} ${context(d, h.c, h.s)}</div>`).join("")
      : `<p class="mx-msg">No latent fires on “${esc(q)}” in its top contexts. Try another word, or a latent id.</p>`;
    if (open && hits.length) go(el, "latent", hits[0].i);
  }

  function go(el, kind, id) {  // show a view and give it an address (Back returns to the previous one)
    const hash = `#${kind}-${id}`;
    if (location.hash !== hash) history.pushState(null, "", hash);
    (kind === "meta" ? showMeta : showLatent)(el, id);
  }

  function fromAddress() {  // #latent-12 / #meta-3 opens that view in the page's first explorer
    const m = /^#(latent|meta)-(\d+)$/.exec(location.hash);
    const el = document.querySelector(".metasae-explorer");
    if (!m || !el) return;
    init(el);
    load(el).then(() => { (m[1] === "meta" ? showMeta : showLatent)(el, +m[2]); el.scrollIntoView(); });
  }

  function init(el) {
    if (el._init) return;
    el._init = true;
    const st = el.querySelector(".mx-static");
    if (st) st.style.display = "none";
    const box = el.querySelector(".mx-search");
    if (!box.id) box.id = `mx-search-${Math.random().toString(36).slice(2, 8)}`;
    if (!el.querySelector(`label[for="${box.id}"]`) && !box.getAttribute("aria-label")) box.setAttribute("aria-label", "Find a latent: id, m12 for a meta-latent, or a word");
    box.addEventListener("input", (e) => load(el).then(() => {
      const q = e.target.value.trim();
      if (/^\d+$/.test(q)) showLatent(el, +q); else if (/^m\d+$/i.test(q)) showMeta(el, +q.slice(1)); else search(el, q, false);
    }));
    box.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); load(el).then(() => search(el, box.value, true)); } });
    el.querySelector(".mx-slider").addEventListener("input", (e) => load(el).then(() => showLatent(el, +e.target.value)));
    el.querySelector(".mx-slider").addEventListener("change", (e) => load(el).then(() => go(el, "latent", +e.target.value)));
    el.addEventListener("click", (e) => {
      const a = e.target.closest("a[data-kind]");
      if (!a) return;
      e.preventDefault();
      load(el).then(() => go(el, a.dataset.kind, +a.dataset.id));
    });
    el.querySelector(".mx-view").innerHTML = `<p><small>Search, or move the slider, to load the data.</small></p>`;
  }

  window.metasaeExplorer = {
    ready: (el) => { init(el); return load(el).then(() => true); },
    show: (el, i) => load(el).then(() => showLatent(el, i)),
    search: (el, q, open) => load(el).then(() => search(el, q, open)),
  };
  window.addEventListener("hashchange", fromAddress);
  window.addEventListener("popstate", fromAddress);
  const start = () => { document.querySelectorAll(".metasae-explorer").forEach(init); fromAddress(); };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
