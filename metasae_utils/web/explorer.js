/* The companion's latent explorer (kernel-free).  Each .metasae-explorer element names its data file (data-src);
   the file is fetched on demand (first search, slider move or link), then every latent and meta-latent of the
   file can be shown: search by latent id, "m<id>" for a meta-latent, or a word found in the top contexts. */
(function () {
  "use strict";
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const tokText = (d, t) => esc(d.tokens[t]).replace(/\n/g, "⏎");

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

  function context(d, c) {
    const [act, at, ...toks] = c;
    return `<div class="mx-ctx">…${toks.map((t, i) => i === at ? `<b>${tokText(d, t)}</b>` : tokText(d, t)).join("")}… ` +
           `<small>(${act})</small></div>`;
  }

  function histogram(h) {
    const [max, ...counts] = h;
    const top = Math.max(1, ...counts);
    return `<table class="mx-hist"><tbody>${counts.map((c, i) =>
      `<tr><td><small>${(max * i / counts.length).toPrecision(2)}–${(max * (i + 1) / counts.length).toPrecision(2)}</small></td>` +
      `<td><span class="mx-bar" style="width:${Math.round(120 * c / top)}px"></span> <small>${c}</small></td></tr>`).join("")}</tbody></table>`;
  }

  const link = (kind, id, text) => `<a href="#" data-kind="${kind}" data-id="${id}">${text}</a>`;

  function showLatent(el, i) {
    const d = el._d, l = d.latents[i];
    if (!l) { el.querySelector(".mx-view").innerHTML = `<p>no latent ${esc(i)} (0–${d.d_sae - 1})</p>`; return; }
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
      `<div class="mx-cols"><div><b>Top held-out contexts</b>${l.x.map((c) => context(d, c)).join("") || "<p>(silent on held-out text)</p>"}</div>` +
      `<div><b>Activations when firing</b>${histogram(l.h)}<b>Logit effects</b> (W_dec · W_U)<p>promotes: ${logits(l.up)}</p>` +
      `<p>suppresses: ${logits(l.dn)}</p></div></div>`;
    el.querySelector(".mx-slider").value = i;
  }

  function showMeta(el, m) {
    const d = el._d, list = users(el).get(m) || [];
    el.querySelector(".mx-view").innerHTML =
      `<h4>meta-latent m${m}</h4><p>used by ${list.length} of ${d.d_sae} latents of ${esc(d.name)}` +
      (d.d_meta ? ` (${d.d_meta} meta-latents in all)` : "") + `; the ${Math.min(12, list.length)} that use it most:</p>` +
      list.slice(0, 12).map(([i, v]) => `<div>${link("latent", i, `latent ${i}`)} (${v}) ` +
        (d.latents[i].x[0] ? context(d, d.latents[i].x[0]) : "<small>(silent)</small>") + "</div>").join("");
  }

  function search(el, q) {
    const d = el._d, res = el.querySelector(".mx-results");
    q = q.trim();
    let hits = [];
    if (/^\d+$/.test(q)) hits = [["latent", +q, `latent ${q}`]];
    else if (/^m\d+$/i.test(q)) hits = [["meta", +q.slice(1), `meta-latent ${q}`]];
    else if (q.length >= 2) {
      const w = q.toLowerCase();
      d.latents.forEach((l, i) => {
        if (l.x.some((c) => c.slice(2).map((t) => d.tokens[t]).join("").toLowerCase().includes(w))) hits.push(["latent", i, `latent ${i}`, l.f]);
      });
      hits.sort((a, b) => b[3] - a[3]);
    }
    res.innerHTML = hits.length ? `<small>${hits.length} match${hits.length > 1 ? "es" : ""}:</small> ` +
      hits.slice(0, 40).map(([k, i, t]) => link(k, i, t)).join("") : (q ? "<small>no match</small>" : "");
  }

  function init(el) {
    if (el._init) return;
    el._init = true;
    const st = el.querySelector(".mx-static");
    if (st) st.style.display = "none";
    el.querySelector(".mx-search").addEventListener("input", (e) => load(el).then(() => search(el, e.target.value)));
    el.querySelector(".mx-slider").addEventListener("input", (e) => load(el).then(() => showLatent(el, +e.target.value)));
    el.addEventListener("click", (e) => {
      const a = e.target.closest("a[data-kind]");
      if (!a) return;
      e.preventDefault();
      load(el).then(() => (a.dataset.kind === "meta" ? showMeta : showLatent)(el, +a.dataset.id));
    });
    el.querySelector(".mx-view").innerHTML = `<p><small>Search, or move the slider, to load the data.</small></p>`;
  }

  window.metasaeExplorer = {
    ready: (el) => { init(el); return load(el).then(() => true); },
    show: (el, i) => load(el).then(() => showLatent(el, i)),
  };
  const start = () => document.querySelectorAll(".metasae-explorer").forEach(init);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
