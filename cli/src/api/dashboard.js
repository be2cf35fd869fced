// The T-Developer dashboard. Served as /dashboard.js under a Content-Security-Policy
// that allows no inline script. Text that came from a module (names, findings, the
// text form) is only ever set with textContent, never parsed as HTML.
"use strict";
const $ = (s) => document.querySelector(s);
const NS = "http://www.w3.org/2000/svg";
const tokenBox = $("#token");

// A token in the address (#token=…) is taken once, kept for this tab only and removed
// from the address bar.
{
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("tdev-token", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  tokenBox.value = sessionStorage.getItem("tdev-token") || "";
}
tokenBox.addEventListener("change", () => { sessionStorage.setItem("tdev-token", tokenBox.value); refresh(); });

function status(text) { $("#status").textContent = text; }

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { Authorization: "Bearer " + tokenBox.value } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || String(r.status));
  return body;
}

function el(tag, text) { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); return e; }
function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function fmt(v) { return typeof v === "number" ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(+v.toFixed(4))) : String(v); }

// Best and mean error per generation, log scale. Errors at or above 1e29 stand for
// "failed" and are left out of the lines.
function chart(gens) {
  const box = $("#chart"); box.replaceChildren();
  const usable = (v) => typeof v === "number" && isFinite(v) && v < 1e29;
  // The median (the mean in logs written before it was kept) is not swayed by the
  // huge errors of a few failed individuals.
  gens = gens.map((g) => ({ ...g, median_error: usable(g.median_error) ? g.median_error : g.mean_error }));
  const vals = gens.flatMap((g) => [g.best_error, g.median_error]).filter(usable);
  $("#chart-caption").textContent = gens.length ? `${gens.length} generations` : "no generations yet";
  if (!vals.length) return;
  // Decades of a log axis, as the evolve plot draws them; a zero sits on the bottom line.
  const pos = vals.filter((v) => v > 0), zeros = vals.some((v) => v === 0);
  let lo = pos.length ? Math.floor(Math.log10(Math.min(...pos))) : -1;
  let hi = pos.length ? Math.ceil(Math.log10(Math.max(...pos))) : 1;
  if (zeros) lo -= 1;
  if (hi <= lo) hi = lo + 1;
  const lg = (v) => (v > 0 ? Math.log10(v) : lo);
  const last = Math.max(...gens.map((g) => g.generation), 1);
  const x = (g) => 60 + 520 * g / last, y = (v) => 240 - 220 * (lg(v) - lo) / (hi - lo);
  const label = (k) => (zeros && k === lo ? "0" : k >= -3 && k <= 4 ? String(10 ** k) : `1e${k}`);
  const every = Math.max(1, Math.ceil((hi - lo) / 6));
  for (let k = lo; k <= hi; k += every) {
    box.appendChild(svg("line", { x1: 60, x2: 580, y1: y(10 ** k), y2: y(10 ** k), stroke: "#ddd" }));
    box.appendChild(svg("text", { x: 56, y: y(10 ** k) + 4, "text-anchor": "end", "font-size": 11, class: "ytick" }, label(k)));
  }
  const raw = last / 8, mag = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  for (let g = 0; g <= last; g += Math.max(1, step)) {
    box.appendChild(svg("text", { x: x(g), y: 256, "text-anchor": "middle", "font-size": 11, class: "xtick" }, String(g)));
  }
  box.appendChild(svg("path", { d: "M60 20 V240 H580", stroke: "#333", fill: "none" }));
  box.appendChild(svg("text", { x: 320, y: 274, "text-anchor": "middle", "font-size": 11 }, "generation"));
  box.appendChild(svg("text", { x: 580, y: 14, "text-anchor": "end", "font-size": 11 }, "best (blue) · median (red), log scale"));
  for (const [key, color] of [["median_error", "#d33"], ["best_error", "#23d"]]) {
    const points = gens.filter((g) => usable(g[key])).map((g) => `${x(g.generation).toFixed(1)},${y(g[key]).toFixed(1)}`);
    box.appendChild(svg("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2, class: "series " + key, "data-points": points.length }));
  }
}

function select(table, tr) {
  document.querySelectorAll(table + " tr.sel").forEach((r) => r.classList.remove("sel"));
  tr.classList.add("sel");
}

let shownEvolution = null;
let shownAgent = null;

async function showEvolution(id, tr) {
  shownEvolution = id;
  select("#evolutions", tr);
  // A queued, failed or island evolution has no generations of its own to chart.
  const e = await api("/v1/evolutions/" + encodeURIComponent(id)).catch(() => ({}));
  chart(e.generations || []);
}

async function decide(id, action) {
  // Who decides is the token's name; why goes into the audit trail with it.
  const reason = prompt(`${action} ${id}? Reason (kept in the audit trail):`, "");
  if (reason === null) return;
  const opts = { body: JSON.stringify({ reason }) };
  try {
    if (action === "release") await api(`/v1/quarantine/${encodeURIComponent(id)}/release`, { ...opts, method: "POST" });
    else await api(`/v1/quarantine/${encodeURIComponent(id)}`, { ...opts, method: "DELETE" });
    status(`${action}d ${id.slice(0, 19)}…`);
  } catch (err) { status(`${action} failed: ${err.message}`); }
  refresh();
}

function originText(o) {
  if (!o) return "-";
  if (o.source === "file") return `file ${o.file || o.name}`;
  if (o.source === "api") return `api ${o.caller || "?"}`;
  if (o.source === "evolution") return `evolution ${o.evolution_id} g${o.generation}`;
  return o.source;
}

function inputText(i) {
  if (!i) return "";
  if (i.args) return ` · args ${i.args.join(",")}`;
  return ` · input ${i.len} bytes, first ${(i.hex || "").length / 2} kept (hex ${(i.hex || "").slice(0, 64)})`;
}

async function showQuarantine(id, tr) {
  shownAgent = id;
  select("#quarantine", tr);
  const q = await api("/v1/quarantine/" + encodeURIComponent(id));
  const d = $("#detail"); d.replaceChildren();
  d.appendChild(el("h3", q.agent_id));
  d.appendChild(el("p", `name ${(q.origin && q.origin.name) || q.agent_id.slice(7, 19)} · from ${originText(q.origin)}`));
  d.appendChild(el("p", `status ${q.status} · safety score ${fmt(q.safety_score)} (minimum ${fmt(q.min_safety_score)}) · reason ${q.reason}`));
  if (q.status === "quarantined") {
    const rel = el("button", "Release"); rel.id = "release"; rel.type = "button";
    rel.addEventListener("click", () => decide(q.agent_id, "release"));
    const pur = el("button", "Purge"); pur.id = "purge"; pur.type = "button";
    pur.addEventListener("click", () => decide(q.agent_id, "purge"));
    d.append(rel, " ", pur);
  }
  d.appendChild(el("h4", "Findings"));
  const fl = d.appendChild(el("ul")); fl.className = "findings";
  for (const f of q.findings || []) fl.appendChild(el("li", `${f.kind} (weight ${f.weight}): ${f.detail}${f.remedy ? " — remedy: " + f.remedy : ""}`));
  if (!fl.children.length) fl.appendChild(el("li", "none"));
  d.appendChild(el("h4", "Trap history"));
  const tl = d.appendChild(el("ul"));
  for (const t of q.trap_history || []) {
    const li = tl.appendChild(el("li", `${t.at}: ${t.outcome}, ${t.message} (fuel ${t.fuel_used}, ${t.wall_us} µs) · from ${originText(t.origin)}${inputText(t.input)}${t.remedy ? " — remedy: " + t.remedy : ""}`));
    if ((t.logs || []).length) li.appendChild(el("pre", t.logs.join("\n") + (t.logs_dropped ? `\n(${t.logs_dropped} more lines)` : "")));
  }
  if (!tl.children.length) tl.appendChild(el("li", "none"));
  d.appendChild(el("h4", "Lineage"));
  d.appendChild(el("p", (q.lineage || []).length ? q.lineage.join(", ") : "no parents recorded"));
  d.appendChild(el("h4", "Audit"));
  const al = d.appendChild(el("ul"));
  for (const a of q.audit || []) al.appendChild(el("li", `${a.at}: ${a.action}${a.detail ? " (" + a.detail + ")" : ""}`));
  d.appendChild(el("h4", "Text form"));
  const pre = d.appendChild(el("pre", q.wat || "(no text form: the module does not parse)"));
  pre.className = "wat";
}

// Updates a table body in place. Rows are keyed by data-id, so a row stays the same
// element across refreshes and a click never lands on a row that was just replaced.
function renderRows(tbody, items, key, cellsOf, onClick, empty) {
  const old = new Map([...tbody.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
  tbody.querySelectorAll("tr:not([data-id])").forEach((tr) => tr.remove());
  for (const item of items) {
    const id = key(item);
    let tr = old.get(id);
    old.delete(id);
    if (!tr) {
      tr = el("tr"); tr.dataset.id = id;
      tr.addEventListener("click", () => onClick(id, tr).catch((err) => status("error: " + err.message)));
    }
    const texts = cellsOf(item).map(String);
    while (tr.children.length > texts.length) tr.lastChild.remove();
    texts.forEach((t, i) => { const td = tr.children[i] || tr.appendChild(el("td")); if (td.textContent !== t) td.textContent = t; });
    tbody.appendChild(tr);
  }
  old.forEach((tr) => tr.remove());
  if (!items.length) tbody.appendChild(el("tr")).appendChild(el("td", empty)).colSpan = 5;
}

async function refresh() {
  if (!tokenBox.value) { status("enter the API token"); return; }
  try {
    const ev = await api("/v1/evolutions");
    const tb = $("#evolutions tbody");
    renderRows(tb, ev.evolutions, (e) => e.evolution_id,
      (e) => [e.evolution_id, e.task, e.head_generation, fmt(e.best_error),
        e.status + (e.islands ? ` (${e.islands} islands)` : "") + (e.error ? `: ${e.error}` : "")],
      showEvolution, "no evolutions in this store");
    if (!ev.evolutions.some((e) => e.evolution_id === shownEvolution)) shownEvolution = null;
    if (ev.evolutions.length) {
      const id = shownEvolution || ev.evolutions[0].evolution_id;
      await showEvolution(id, tb.querySelector(`tr[data-id="${CSS.escape(id)}"]`));
    } else chart([]);

    const q = await api("/v1/quarantine");
    renderRows($("#quarantine tbody"), q.quarantine, (r) => r.agent_id,
      (r) => [r.name, r.agent_id.slice(0, 19) + "…", originText(r.origin), r.status, fmt(r.safety_score), r.reason, (r.findings || []).join(" ")],
      showQuarantine, "nothing in quarantine");
    $("#held").textContent = `${q.quarantine.filter((r) => r.status === "quarantined").length} held`;
    status("updated " + new Date().toLocaleTimeString());
  } catch (err) { status("error: " + err.message); }
}

$("#stop").addEventListener("click", async () => {
  if (!confirm("Emergency stop: interrupt every running agent and halt every evolution on this store?")) return;
  try {
    await api("/v1/emergency-stop", { method: "POST" });
    status("emergency stop sent " + new Date().toLocaleTimeString());
    document.body.dataset.stopped = "1";
  } catch (err) { status("stop failed: " + err.message); }
});
refresh();
setInterval(refresh, 5000);
