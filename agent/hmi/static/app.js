// In-dash HMI: renders /api/* and follows /api/events (server-sent events).
// All data goes through textContent (notes come from outside the car: never innerHTML).
"use strict";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
async function api(path, opts) {
  const r = await fetch(path, Object.assign({ headers: { "Accept": "application/json" } }, opts || {}));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
  return body;
}
const fmt = (x, d) => (x === null || x === undefined || isNaN(x)) ? "–" : Number(x).toFixed(d === undefined ? 1 : d);

// ---------------------------------------------------------------- alerts
let alerts = [];
// A snapshot from /api/* can be older than an event the stream delivered while the request
// was in flight (refresh runs on every stream (re)connect). Each live change is stamped with
// a counter so a stale snapshot never overwrites it (an alert raised meanwhile would vanish).
let liveSeq = 0;
const liveAt = new Map();                       // "alert:ID" | "battery" | "components" -> seq
const stamp = (key) => liveAt.set(key, ++liveSeq);
const newerThan = (key, seq) => (liveAt.get(key) || 0) > seq;
function renderAlerts() {
  const box = $("alerts");
  box.replaceChildren();
  const active = alerts.filter((a) => a.state !== "cleared");
  active.sort((a, b) => (a.state === "acknowledged") - (b.state === "acknowledged")
    || (b.severity === "critical") - (a.severity === "critical") || (b.updated > a.updated ? 1 : -1));
  for (const a of active) box.appendChild(alertCard(a));
  const open = active.filter((a) => a.state !== "acknowledged").length;
  $("alert-count").textContent = open;
  $("alert-count").classList.toggle("zero", open === 0);
  $("no-alerts").classList.toggle("hidden", active.length > 0);
}
function alertCard(a) {
  const card = el("article", "alert " + a.severity + " " + a.state);
  card.dataset.id = a.id;
  card.dataset.state = a.state;
  const head = el("div", "head");
  head.appendChild(el("div", "icon", a.kind === "battery" ? "⚡" : a.kind === "compliance_incomplete" ? "?" : "!"));
  const txt = el("div", "txt");
  const title = el("div", "title", a.title);
  const badge = el("span", "badge " + a.state, a.state === "acknowledged" ? "acknowledged" : "active");
  badge.dataset.role = "state";
  title.appendChild(badge);
  txt.appendChild(title);
  txt.appendChild(el("div", "msg", a.message));
  head.appendChild(txt);
  const btn = el("button", "ack", a.state === "acknowledged" ? "Acknowledged" : "Acknowledge");
  btn.disabled = a.state === "acknowledged";
  btn.addEventListener("click", () => ack(a.id, btn));
  head.appendChild(btn);
  card.appendChild(head);
  card.appendChild(explain(a));
  const when = a.raised_vehicle_date ? "Vehicle date " + (a.vehicle_date || a.raised_vehicle_date) + " · " : "";
  card.appendChild(el("div", "meta", when + "updated " + (a.updated || "").replace("T", " ").replace("Z", " UTC")));
  return card;
}
function explain(a) {
  const x = a.explanation || {};
  const why = el("div", "why");
  if (a.kind === "battery") {
    const line1 = el("div");
    line1.appendChild(el("b", null, fmt(x.projected_lifetime_cycles_30d) + " / " + fmt(x.rated_cycles, 0)));
    line1.appendChild(document.createTextNode(" cycles projected in 30 days (now " + fmt(x.lifetime_cycles) + ")."));
    why.appendChild(line1);
    if (x.recent_mean_daily_cycles !== undefined && x.recent_mean_daily_cycles !== null) {
      const ratio = x.usage_vs_fleet;
      const cmp = ratio ? (ratio > 1.1 ? (ratio.toFixed(1) + "× the fleet norm") : ratio < 0.9 ? "below the fleet norm" : "about the fleet norm") : "";
      const pct = (x.fleet_percentile !== undefined && x.fleet_percentile !== null) ? ", heavier than " + Math.round(x.fleet_percentile) + "% of the fleet" : "";
      why.appendChild(el("div", null, "Recent use " + fmt(x.recent_mean_daily_cycles, 2) + " cycles/day vs fleet "
        + fmt(x.fleet_median_daily_cycles, 2) + (cmp ? " — " + cmp : "") + pct + "."));
    }
  } else {
    why.appendChild(el("div", null, x.note ? "Note: “" + x.note + "”" : "Component note"));
    const words = el("div", "words");
    for (const w of (x.why || [])) words.appendChild(el("span", "word", w));
    if (a.kind === "compliance_incomplete") {
      why.appendChild(el("div", "missing", "Not stated: " + (x.missing || []).join(", ")));
    } else if ((x.why || []).length) { const l = el("div", null, "Non-compliant because of:"); why.appendChild(l); why.appendChild(words); }
  }
  return why;
}
// Acknowledging needs this run's token (a page from another origin cannot read it); after
// an agent restart the old one is refused (403) and fetched again once.
let ackToken = null;
async function postAck(id) {
  if (!ackToken) ackToken = (await api("/api/session")).token;
  const r = await fetch("/api/alerts/" + id + "/ack", { method: "POST", body: '{"by":"driver"}',
    headers: { "Content-Type": "application/json", "Accept": "application/json", "X-Trey-Token": ackToken } });
  const body = await r.json().catch(() => ({}));
  return { r, body };
}
async function ack(id, btn) {
  btn.disabled = true;
  try {
    let { r, body } = await postAck(id);
    if (r.status === 403) { ackToken = null; ({ r, body } = await postAck(id)); }
    if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
    const a = body;
    upsertAlert(a);
  } catch (e) {
    btn.disabled = false;
    btn.textContent = "Retry";
  }
}
function upsertAlert(a) {
  stamp("alert:" + a.id);
  const i = alerts.findIndex((x) => x.id === a.id);
  if (i >= 0) alerts[i] = a; else alerts.push(a);
  renderAlerts();
}

// ---------------------------------------------------------------- battery
function renderBattery(b) {
  $("battery-id").textContent = b.battery_id ? "· ID " + b.battery_id : "";
  const life = b.lifetime_cycles, rated = b.rated_cycles;
  const pct = (life !== null && rated) ? Math.min(100, 100 * life / rated) : null;
  $("life-pct").textContent = pct === null ? "–" : Math.round(pct) + "%";
  const color = pct === null ? "#55606c" : pct >= 90 ? "var(--crit)" : pct >= 75 ? "var(--warn)" : "var(--ok)";
  document.querySelector(".gauge").style.background =
    "conic-gradient(" + color + " " + (3.6 * (pct || 0)) + "deg, var(--panel2) 0deg)";
  $("life-cycles").textContent = fmt(life);
  $("rated-cycles").textContent = fmt(rated, 0);
  const f = b.forecast || null;
  const eol = $("eol");
  eol.className = "";
  if (f && f.days_to_rated !== null && f.days_to_rated !== undefined) {
    eol.textContent = "≈ " + f.days_to_rated + " days";
    eol.className = f.days_to_rated <= 30 ? "crit" : "warn";
  } else if (f) {
    eol.textContent = "> 30 days";
  } else {
    eol.textContent = b.battery_id ? "collecting data" : "–";
  }
  drawChart(b);
  const hasData = (b.history || []).length > 0;
  $("chart-empty").classList.toggle("hidden", hasData);
  $("fc-meta").textContent = f ? ("as of " + (f.as_of || b.as_of || "") + (f.fallback ? " · short history" : "")) : "";
}
function drawChart(b) {
  const svg = $("chart");
  svg.replaceChildren();
  const W = 400, H = 130, pad = 6;
  const hist = (b.history || []).map((r) => r.lifetime_cycles).filter((v) => v !== null && v !== undefined);
  const f = b.forecast;
  const fc = [];
  if (f && f.forecast_daily_cycles && hist.length) {
    let acc = hist[hist.length - 1];
    for (const d of f.forecast_daily_cycles) { acc += Math.max(0, d); fc.push(acc); }
  }
  const all = hist.concat(fc);
  if (!all.length) return;
  const rated = b.rated_cycles || Math.max(...all);
  const lo = Math.min(...all) * 0.98, hi = Math.max(rated, ...all) * 1.02;
  const n = hist.length + fc.length;
  const x = (i) => pad + (W - 2 * pad) * (n <= 1 ? 0 : i / (n - 1));
  const y = (v) => H - pad - (H - 2 * pad) * (v - lo) / (hi - lo || 1);
  for (let k = 1; k < 4; k++) line(svg, 0, H * k / 4, W, H * k / 4, "grid-line");
  line(svg, 0, y(rated), W, y(rated), "rated");
  path(svg, hist.map((v, i) => [x(i), y(v)]), "hist");
  if (fc.length) path(svg, [[x(hist.length - 1), y(hist[hist.length - 1])]].concat(fc.map((v, i) => [x(hist.length + i), y(v)])), "fc");
}
function line(svg, x1, y1, x2, y2, cls) {
  const l = document.createElementNS(SVG, "line");
  Object.entries({ x1, y1, x2, y2, class: cls }).forEach(([k, v]) => l.setAttribute(k, v));
  svg.appendChild(l);
}
function path(svg, pts, cls) {
  if (!pts.length) return;
  const p = document.createElementNS(SVG, "path");
  p.setAttribute("d", pts.map((q, i) => (i ? "L" : "M") + q[0].toFixed(1) + " " + q[1].toFixed(1)).join(""));
  p.setAttribute("class", cls);
  svg.appendChild(p);
}

// ---------------------------------------------------------------- components
function renderComponents(list) {
  const ul = $("components");
  ul.replaceChildren();
  const rank = (c) => c.compliant === false ? 0 : c.compliant === null ? 1 : 2;   // null = undetermined
  list.sort((a, b) => (rank(a) - rank(b)) || a.component.localeCompare(b.component));
  for (const c of list) {
    const li = el("li");
    li.dataset.component = c.component;
    li.appendChild(el("span", "comp-name", c.component));
    li.appendChild(el("span", "comp-note", c.note));
    const v = c.compliant === null ? ["incomplete", "Note incomplete"] : c.compliant ? ["ok", "Compliant"] : ["bad", "Non-compliant"];
    li.appendChild(el("span", "verdict " + v[0], v[1]));
    ul.appendChild(li);
  }
  $("no-components").classList.toggle("hidden", list.length > 0);
}

// ---------------------------------------------------------------- health + live
function chip(id, on, title) {
  const c = $(id);
  c.classList.toggle("on", !!on);
  c.classList.toggle("off", !on);
  if (title) c.title = title;
}
function renderHealth(h) {
  $("vehicle").textContent = h.vehicle_id ? "Vehicle " + h.vehicle_id + (h.vehicle_date ? " · " + h.vehicle_date : "") : "—";
  chip("chip-bus", h.bus && h.bus.receiving, h.bus ? ("CAN " + (h.bus.interface || "") + " · " + (h.bus.frames || 0) + " frames") : "CAN");
  const m = h.mqtt || {};
  chip("chip-cloud", m.connected, "Cloud: " + (m.state || "offline"));
  // A damaged state database was moved aside at start and recovered (agent.store_integrity).
  const db = h.state_db || {}, st = $("chip-store");
  st.hidden = db.status !== "recovered";
  if (!st.hidden) chip("chip-store", false, "Storage recovered: " + (db.reason || "") + " (kept " + (db.kept_aside || "") + ")");
  renderModels(h.models || {});
}
// One line per model slot: live version, shadow (if any), last refused release and why.
function renderModels(models) {
  const box = $("models");
  box.textContent = "";
  for (const [slot, s] of Object.entries(models)) {
    const line = document.createElement("div");
    line.className = "model-slot";
    line.dataset.slot = slot;
    let text = slot + " model " + (s.version || "none");
    if (s.shadow) text += " · shadow " + s.shadow.version;
    if (s.event) text += " · " + s.event.event.replace("_", " ") + " (" + s.event.reason + ")";
    if (s.last_refused) text += " · last refused" + (s.last_refused.release ? " #" + s.last_refused.release : "") +
      ": " + s.last_refused.reason;
    line.textContent = text;
    box.appendChild(line);
  }
}
async function refresh() {
  const asked = liveSeq;
  const [h, al, b, c] = await Promise.all([api("/api/health"), api("/api/alerts"), api("/api/battery"), api("/api/components")]);
  renderHealth(h);
  const merged = new Map(al.map((a) => [a.id, a]));
  for (const a of alerts) if (newerThan("alert:" + a.id, asked)) merged.set(a.id, a);
  alerts = Array.from(merged.values()); renderAlerts();
  if (!newerThan("battery", asked)) renderBattery(b);
  if (!newerThan("components", asked)) renderComponents(c);
}
function live() {
  const es = new EventSource("/api/events");
  es.onopen = () => { chip("chip-live", true); refresh().catch(() => {}); };
  es.onerror = () => chip("chip-live", false);
  es.addEventListener("alert", (e) => upsertAlert(JSON.parse(e.data)));
  es.addEventListener("battery", (e) => { stamp("battery"); renderBattery(JSON.parse(e.data)); });
  es.addEventListener("components", (e) => { stamp("components"); renderComponents(JSON.parse(e.data)); });
  es.addEventListener("health", (e) => renderHealth(JSON.parse(e.data)));
}
function tick() {
  const d = new Date();
  $("clock").textContent = String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}
tick(); setInterval(tick, 10000);
refresh().catch(() => {});
live();
