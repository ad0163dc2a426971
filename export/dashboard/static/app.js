// trey fleet dashboard: one page, one view per query string (?view=...&filters), so a URL is
// shareable. Every number comes from /api/... (the same JSON the CSV links export).
"use strict";

const $ = (s, el = document) => el.querySelector(s);
const VIEWS = {};
const charts = {};
window.__charts = charts;          // tests read chart data through this

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function fmt(v, col) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v === "number") {
    if (col && /year|_id$|revision/.test(col)) return String(v);     // identifiers, not quantities
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    const digits = Math.abs(v) >= 100 ? 1 : Math.abs(v) >= 1 ? 2 : 4;
    return v.toLocaleString("en-US", {maximumFractionDigits: digits, minimumFractionDigits: Math.min(digits, 2)});
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v)) return v.slice(0, 16).replace("T", " ") + " UTC";
  return String(v);
}
const CHIP_COLS = new Set(["verdict", "severity", "change", "state", "basis"]);
function cell(v, col) {
  if (col === "vehicle_id" && v) return `<a class="vid" href="?view=vehicle&id=${encodeURIComponent(v)}">${esc(v)}</a>`;
  if (CHIP_COLS.has(col) && v) return `<span class="chip ${esc(v)}">${esc(String(v).replace("_", " "))}</span>`;
  if (col === "why" && v) return String(v).split(", ").map(w => `<span class="why">${esc(w)}</span>`).join(" ");
  return esc(fmt(v, col));
}

function params() { return Object.fromEntries(new URLSearchParams(location.search)); }
function go(p, replace = false) {
  const q = new URLSearchParams(Object.entries(p).filter(([, v]) => v !== "" && v != null));
  const url = "?" + q.toString();
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  render();
}
function setParam(k, v) { const p = params(); p[k] = v; go(p); }

async function api(path, p = {}) {
  const q = new URLSearchParams(Object.entries(p).filter(([, v]) => v !== "" && v != null));
  const r = await fetch(`/api/${path}?${q}`, {headers: {Accept: "application/json"}});
  let body;
  try { body = await r.json(); } catch (e) { body = {error: `HTTP ${r.status}`}; }
  if (!r.ok) { const err = new Error(body.error || `HTTP ${r.status}`); err.status = r.status; throw err; }
  return body;
}
function csvLink(path, p, table, label = "CSV") {
  const q = new URLSearchParams(Object.entries(p).filter(([, v]) => v !== "" && v != null));
  q.set("format", "csv"); q.set("table", table);
  return `<a class="btn ghost csv" data-csv="${esc(table)}" href="/api/${path}?${q}" download>${esc(label)}</a>`;
}

// ---------------------------------------------------------------- tables
function table(t, {name, sort = null, serverSort = null, numeric = null, wrap = [], link = true} = {}) {
  if (!t || !t.rows.length) return `<div class="empty" data-table="${esc(name)}" data-rows="0">No rows.</div>`;
  const cols = t.columns;
  const isNum = cols.map((c, i) => t.rows.some(r => typeof r[i] === "number"));
  const vi = cols.indexOf("vehicle_id");
  const head = cols.map((c, i) => {
    const cls = [(sort && sort.col === c) ? "sorted" + (sort.desc ? " desc" : "") : ""].join(" ");
    return `<th data-col="${esc(c)}" class="${cls}${isNum[i] ? " num" : ""}">${esc(c.replaceAll("_", " "))}</th>`;
  }).join("");
  const body = t.rows.map(r => `<tr${vi >= 0 && link ? ` class="link" data-vehicle="${esc(r[vi])}"` : ""}>` +
    r.map((v, i) => `<td class="${isNum[i] ? "num" : ""}${wrap.includes(cols[i]) ? " wrap" : ""}">${cell(v, cols[i])}</td>`).join("") +
    "</tr>").join("");
  return `<div class="tablewrap"><table data-table="${esc(name)}" data-rows="${t.rows.length}"` +
    `${serverSort ? ' data-server-sort="1"' : ""}><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
}
function wireTables(root, tables) {
  root.querySelectorAll("table[data-table]").forEach(el => {
    const name = el.dataset.table, t = tables[name];
    el.querySelectorAll("th").forEach(th => th.addEventListener("click", () => {
      const col = th.dataset.col;
      if (el.dataset.serverSort) {        // the whole filtered set is sorted by the server (shareable)
        const p = params(); const desc = p.sort === col && p.order !== "desc";
        p.sort = col; p.order = desc ? "desc" : "asc"; go(p); return;
      }
      const i = t.columns.indexOf(col);
      const desc = th.classList.contains("sorted") && !th.classList.contains("desc");
      t.rows.sort((a, b) => { const x = a[i], y = b[i];
        if (x === y) return 0; if (x === null) return 1; if (y === null) return -1;
        return (x < y ? -1 : 1) * (desc ? -1 : 1); });
      const wrapEl = el.closest(".tablewrap");
      const fresh = document.createElement("div");
      fresh.innerHTML = table(t, {name, sort: {col, desc}, wrap: ["why", "message", "explanation", "models", "value"]});
      wrapEl.replaceWith(fresh.firstElementChild);
      wireTables(root, {[name]: t});
    }));
    el.querySelectorAll("tr.link").forEach(tr => tr.addEventListener("click", ev => {
      if (ev.target.closest("a")) return;
      go({view: "vehicle", id: tr.dataset.vehicle});
    }));
  });
}

// ---------------------------------------------------------------- charts
function chart(id, option) {
  const el = document.getElementById(id);
  if (!el) return;
  if (charts[id]) charts[id].dispose();
  const c = echarts.init(el, null, {renderer: "canvas"});
  c.setOption(Object.assign({
    textStyle: {fontSize: 13}, animation: false,
    tooltip: {trigger: "axis"}, grid: {left: 64, right: 24, top: 44, bottom: 56, containLabel: false},
  }, option));
  charts[id] = c;
}
window.addEventListener("resize", () => Object.values(charts).forEach(c => c.resize()));
const axisName = (name) => ({name, nameLocation: "middle", nameGap: 44, nameTextStyle: {fontSize: 13, color: "#5d6b7e"}});

function kpis(items) {
  return `<div class="kpis">${items.map(([k, v, label, cls = ""]) =>
    `<div class="kpi ${cls}${typeof v === "number" ? "" : " txt"}" data-kpi="${esc(k)}"><div class="v">${esc(fmt(v))}</div><div class="l">${esc(label)}</div></div>`).join("")}</div>`;
}
function seg(name, values, current, labels = {}) {
  return `<span class="seg" data-seg="${esc(name)}">${values.map(v =>
    `<button type="button" data-v="${esc(v)}" class="${String(current) === String(v) ? "on" : ""}">${esc(labels[v] ?? v)}</button>`).join("")}</span>`;
}
function wireFilters(root) {
  root.querySelectorAll(".seg").forEach(s => s.querySelectorAll("button").forEach(b =>
    b.addEventListener("click", () => setParam(s.dataset.seg, b.dataset.v))));
  root.querySelectorAll("[data-param]").forEach(el => el.addEventListener("change", () => setParam(el.dataset.param, el.value)));
}
function notes(d) { return d.notes && d.notes.length ? `<div class="notes">${d.notes.map(esc).join("<br>")}</div>` : ""; }
function options(values, current, all = "all") {
  return `<option value="">${esc(all)}</option>` + values.map(v => `<option ${v === current ? "selected" : ""}>${esc(v)}</option>`).join("");
}

// status JSON columns as words: {"battery": {"version": "1.1.0", "outcome": "installed"}} -> "battery 1.1.0 (installed)"
function statusValue(k, v) {
  if (typeof v !== "string" || !v.startsWith("{")) return typeof v === "number" ? v.toLocaleString("en-US") : v;
  try {
    const o = JSON.parse(v);
    const parts = Object.entries(o).map(([a, b]) => typeof b === "object" && b
      ? `${a} ${b.version ?? ""}${b.outcome ? ` (${b.outcome})` : ""}` : `${a}: ${b}`);
    return parts.length ? parts.join(", ") : "none";
  } catch (e) { return v; }
}

// ---------------------------------------------------------------- views
VIEWS.overview = async (root, p) => {
  const q = {days: p.days || 90, kind: p.kind || ""};
  const d = await api("overview", q);
  const s = d.summary;
  root.innerHTML = `<h1>Fleet overview</h1>
    <div class="filters"><label>period ${seg("days", [30, 90, 365, 730], q.days, {30: "30 d", 90: "90 d", 365: "1 y", 730: "2 y"})}</label>
      <label>alert kind ${seg("kind", ["", "battery", "compliance"], q.kind, {"": "all"})}</label></div>
    ${kpis([["vehicles", s.vehicles, "vehicles known"], ["seen_24h", s.seen_24h, "seen in the last 24 h"],
            ["seen_7d", s.seen_7d, "seen in the last 7 days"], ["open_alerts", s.open_alerts, "open alerts now", s.open_alerts ? "bad" : "good"],
            ["offline", s.offline, "offline (last will)", s.offline ? "warn" : ""],
            ["dropped_telemetry", s.dropped_telemetry, "telemetry rows dropped", s.dropped_telemetry ? "warn" : ""]])}
    <div class="grid">
      <div class="card wide"><div class="head"><h2>Alert changes per day, by kind</h2><div class="tools">${csvLink("overview", q, "alerts_per_day")}</div></div>
        <div class="sub">UTC day of the change; "updated" = the car's daily refresh of an active alert (off by default — click the legend)</div>
        <div id="ch-alerts" class="chart tall"></div></div>
      <div class="card"><div class="head"><h2>Open alerts now</h2><div class="tools">${csvLink("overview", q, "open_alerts")}</div></div>${table(d.tables.open_alerts, {name: "open_alerts"})}</div>
      <div class="card"><div class="head"><h2>Sync health (latest status per vehicle)</h2><div class="tools">${csvLink("overview", q, "sync")}</div></div>${table(d.tables.sync, {name: "sync"})}</div>
      <div class="card"><div class="head"><h2>Models per version across the fleet</h2><div class="tools">${csvLink("overview", q, "models")}</div></div>
        <div id="ch-models" class="chart"></div>${table(d.tables.models, {name: "models"})}</div>
      <div class="card"><div class="head"><h2>Refused downlink messages</h2><div class="tools">${csvLink("overview", q, "downlink_rejected")}</div></div>
        ${table(d.tables.downlink_rejected, {name: "downlink_rejected"})}
        <h2 style="margin-top:14px">Vehicles seen</h2>${table(d.tables.seen, {name: "seen"})}</div>
    </div>${notes(d)}`;
  const t = d.tables.alerts_per_day;
  const days = [...new Set(t.rows.map(r => r[0]))];
  const keys = [...new Set(t.rows.map(r => `${r[1]} ${r[2]}`))].sort();
  const colors = {"battery raised": "#c62828", "battery updated": "#ef9a9a", "battery acknowledged": "#8d6e63", "battery cleared": "#2e7d32",
                  "compliance raised": "#ef6c00", "compliance updated": "#ffcc80", "compliance acknowledged": "#6d4c41", "compliance cleared": "#66bb6a"};
  const series = keys.map(k => { const m = new Map(t.rows.filter(r => `${r[1]} ${r[2]}` === k).map(r => [r[0], r[3]]));
    return {name: k, type: "bar", stack: k.split(" ")[0], data: days.map(x => m.get(x) || 0), itemStyle: {color: colors[k]}}; });
  chart("ch-alerts", {legend: {top: 4, selected: Object.fromEntries(keys.filter(k => k.endsWith("updated")).map(k => [k, false]))},
    xAxis: {type: "category", data: days}, yAxis: {type: "value", ...axisName("alert changes")}, series,
    dataZoom: [{type: "inside"}]});
  const m = d.tables.models;
  const versions = [...new Set(m.rows.map(r => r[1]))].sort();
  const slots = [...new Set(m.rows.map(r => r[0]))];
  chart("ch-models", {legend: {top: 4}, xAxis: {type: "category", data: slots}, yAxis: {type: "value", ...axisName("vehicles")},
    series: versions.map(v => ({name: v, type: "bar", label: {show: true, position: "top"},
      data: slots.map(s => (m.rows.find(r => r[0] === s && r[1] === v) || [0, 0, 0])[2])}))});
  wireFilters(root); wireTables(root, d.tables);
};

VIEWS.battery = async (root, p) => {
  const q = {within: p.within || 90, model: p.model || "", q: p.q || "", sort: p.sort || "eol_date", order: p.order || "asc"};
  const d = await api("battery/risk", q);
  const s = d.summary;
  root.innerHTML = `<h1>Battery risk</h1>
    <div class="filters"><label>end of life within ${seg("within", [30, 60, 90, 180, 365], q.within, {30: "30 d", 60: "60 d", 90: "90 d", 180: "180 d", 365: "1 y"})}</label>
      <label>model <select data-param="model">${options(s.models, q.model, "latest run")}</select></label>
      <label>vehicle / battery <input data-param="q" value="${esc(q.q)}" placeholder="id contains…"></label></div>
    ${kpis([["eol_30d", s.eol_30d, "batteries at end of life within 30 days", "bad"], ["eol_60d", s.eol_60d, "within 60 days", "warn"],
            ["eol_90d", s.eol_90d, "within 90 days", "warn"], ["batteries", s.batteries, "batteries with a current forecast"],
            ["forecast_as_of", s.forecast_as_of, "latest scoring run"]])}
    <div class="grid">
      <div class="card wide"><div class="head"><h2>Days to rated cycles across the fleet (current forecast of every battery)</h2><div class="tools">${csvLink("battery/risk", q, "distribution")}</div></div>
        <div id="ch-dist" class="chart"></div></div>
      <div class="card wide"><div class="head"><h2>Batteries expected at end of life within ${esc(q.within)} days</h2>
        <span class="sub" data-matching="${s.matching}">${fmt(s.matching)} batteries${s.matching > d.tables.risk.rows.length ? `, first ${d.tables.risk.rows.length} shown` : ""}; click a row for the vehicle</span>
        <div class="tools">${csvLink("battery/risk", q, "risk")}</div></div>
        ${table(d.tables.risk, {name: "risk", serverSort: true, sort: {col: q.sort, desc: q.order === "desc"}})}</div>
    </div>${notes(d)}`;
  const t = d.tables.distribution;
  chart("ch-dist", {xAxis: {type: "category", data: t.rows.map(r => r[0]), ...axisName("days to end of life")},
    yAxis: {type: "value", ...axisName("batteries")},
    series: [{type: "bar", name: "batteries", data: t.rows.map((r, i) => ({value: r[1], itemStyle: {color: i === 0 ? "#c62828" : i < 3 ? "#ef6c00" : "#1f6feb"}})),
              label: {show: true, position: "top"}}]});
  wireFilters(root); wireTables(root, d.tables);
};

VIEWS.accuracy = async (root, p) => {
  const q = {model: p.model || "", since: p.since || "", until: p.until || ""};
  const [d, risk] = await Promise.all([api("battery/accuracy", q), api("battery/risk", {within: 0, limit: 1})]);
  root.innerHTML = `<h1>Forecast vs realised, by model version</h1>
    <div class="filters"><label>model <select data-param="model">${options(risk.summary.models, q.model)}</select></label>
      <label>forecasts from <input type="date" data-param="since" value="${esc(q.since)}"></label>
      <label>until <input type="date" data-param="until" value="${esc(q.until)}"></label></div>
    <div class="grid">
      <div class="card wide"><div class="head"><h2>How good is each model in the field (30-day cycles)</h2><div class="tools">${csvLink("battery/accuracy", q, "by_model")}</div></div>
        ${table(d.tables.by_model, {name: "by_model"})}
        <div class="sub" style="margin-top:8px">${fmt(d.summary.not_yet_realised)} forecasts are younger than 30 days (not yet realised)</div></div>
      <div class="card"><div class="head"><h2>Mean absolute error per month</h2><div class="tools">${csvLink("battery/accuracy", q, "by_month")}</div></div><div id="ch-mae" class="chart"></div></div>
      <div class="card"><div class="head"><h2>Bias per month (forecast − realised)</h2></div><div id="ch-bias" class="chart"></div></div>
      <div class="card"><div class="head"><h2>Mean 30-day cycles: forecast vs realised</h2></div><div id="ch-fvr" class="chart"></div></div>
    </div>${notes(d)}`;
  const t = d.tables.by_month;
  const months = [...new Set(t.rows.map(r => r[0]))];
  const models = [...new Set(t.rows.map(r => r[1]))];
  const line = (col, name) => models.map(m => { const mm = new Map(t.rows.filter(r => r[1] === m).map(r => [r[0], r[col]]));
    return {name: m, type: "line", symbolSize: 7, data: months.map(x => mm.has(x) ? mm.get(x) : null), connectNulls: false}; });
  chart("ch-mae", {legend: {top: 4}, xAxis: {type: "category", data: months}, yAxis: {type: "value", ...axisName("MAE (cycles / 30 d)")}, series: line(3)});
  chart("ch-bias", {legend: {top: 4}, xAxis: {type: "category", data: months}, yAxis: {type: "value", ...axisName("bias (cycles / 30 d)")}, series: line(4)});
  const bm = d.tables.by_model;
  chart("ch-fvr", {legend: {top: 4}, xAxis: {type: "category", data: bm.rows.map(r => r[0])}, yAxis: {type: "value", ...axisName("cycles in 30 days")},
    series: [{name: "forecast", type: "bar", data: bm.rows.map(r => r[2]), label: {show: true, position: "top"}},
             {name: "realised", type: "bar", data: bm.rows.map(r => r[3]), label: {show: true, position: "top"}}]});
  wireFilters(root); wireTables(root, d.tables);
};

VIEWS.compliance = async (root, p) => {
  const q = {part: p.part || "", cause: p.cause || "", verdict: p.verdict || ""};
  const d = await api("compliance", q);
  const s = d.summary;
  root.innerHTML = `<h1>Component compliance</h1>
    <div class="filters"><label>part type <select data-param="part">${options(s.parts, q.part)}</select></label>
      <label>cause ${seg("cause", ["", "year", "material", "condition", "not_stated"], q.cause, {"": "all", not_stated: "not stated"})}</label>
      <label>verdict ${seg("verdict", ["", "non_compliant", "undetermined", "compliant"], q.verdict, {"": "not compliant", non_compliant: "non-compliant"})}</label></div>
    ${kpis([["non_compliant", s.non_compliant, "non-compliant components", "bad"], ["undetermined", s.undetermined, "undetermined", "warn"],
            ["vehicles_affected", s.vehicles_affected, "vehicles affected (this selection)"], ["matching", s.matching, "components in this selection"],
            ["components", s.components, "components scored"]])}
    <div class="grid">
      <div class="card"><div class="head"><h2>By cause</h2><div class="tools">${csvLink("compliance", q, "by_cause")}</div></div><div id="ch-cause" class="chart"></div>${table(d.tables.by_cause, {name: "by_cause"})}</div>
      <div class="card"><div class="head"><h2>By part type (top 15)</h2><div class="tools">${csvLink("compliance", q, "by_part")}</div></div><div id="ch-part" class="chart tall"></div></div>
      <div class="card wide"><div class="head"><h2>Components</h2><span class="sub">first ${d.tables.components.rows.length} of ${fmt(s.matching)}; click a row for the vehicle</span>
        <div class="tools">${csvLink("compliance", q, "components")}</div></div>${table(d.tables.components, {name: "components", wrap: ["why"]})}</div>
      <div class="card wide"><div class="head"><h2>All part types</h2></div>${table(d.tables.by_part, {name: "by_part"})}</div>
    </div>${notes(d)}`;
  const c = d.tables.by_cause;
  chart("ch-cause", {xAxis: {type: "category", data: c.rows.map(r => r[0].replace("_", " "))}, yAxis: {type: "value", ...axisName("components")},
    series: [{type: "bar", name: "components", data: c.rows.map(r => r[1]), label: {show: true, position: "top"}, itemStyle: {color: "#c62828"}},
             {type: "bar", name: "vehicles", data: c.rows.map(r => r[2]), label: {show: true, position: "top"}, itemStyle: {color: "#607d8b"}}],
    legend: {top: 4}});
  const bp = d.tables.by_part.rows.slice(0, 15).reverse();
  chart("ch-part", {grid: {left: 150, right: 30, top: 36, bottom: 40}, tooltip: {trigger: "axis", axisPointer: {type: "shadow"}}, legend: {top: 4},
    yAxis: {type: "category", data: bp.map(r => r[0])}, xAxis: {type: "value", name: "components", nameLocation: "middle", nameGap: 26},
    series: [{name: "non-compliant", type: "bar", stack: "x", data: bp.map(r => r[1]), itemStyle: {color: "#c62828"}},
             {name: "undetermined", type: "bar", stack: "x", data: bp.map(r => r[2]), itemStyle: {color: "#ef6c00"}}]});
  wireFilters(root); wireTables(root, d.tables);
};

VIEWS.vehicle = async (root, p) => {
  if (!p.id) {
    root.innerHTML = `<h1>Vehicle</h1><div class="card"><div class="empty">Type a vehicle id in the search box (top right), or click a vehicle in any table.</div></div>`;
    return;
  }
  const q = {id: p.id, days: p.days || 365};
  const d = await api("vehicle", q);
  const s = d.summary, f = s.forecast || {};
  const st = Object.fromEntries(d.tables.status.rows);
  d.tables.status.rows = d.tables.status.rows.map(([k, v]) => [k, statusValue(k, v)]);
  const h = d.tables.battery_history;
  const last = h.rows[h.rows.length - 1];
  root.innerHTML = `<h1>Vehicle <span data-vehicle-id="${esc(s.vehicle_id)}">${esc(s.vehicle_id)}</span></h1>
    <div class="filters"><label>history ${seg("days", [90, 365, 730], q.days, {90: "90 d", 365: "1 y", 730: "2 y"})}</label></div>
    ${kpis([["battery_id", s.battery_id || f.battery_id, "battery"],
            ["lifetime", last ? `${fmt(last[3])} / ${fmt(last[4])}` : "", "lifetime / rated cycles"],
            ["days_to_eol", f.days_to_eol ?? "", f.basis === "extrapolated" ? "days to end of life (extrapolated)" : "days to end of life (forecast)",
             f.days_to_eol != null && f.days_to_eol <= 30 ? "bad" : ""],
            ["model", f.model || "", `forecast of ${fmt(f.as_of)}`],
            ["status", st.state || "unknown", `last status ${fmt(st.at)}`, st.state === "offline" ? "warn" : "good"]])}
    <div class="grid">
      <div class="card wide"><div class="head"><h2>Battery lifetime cycles and the 30-day forecast</h2><div class="tools">${csvLink("vehicle", q, "battery_history", "CSV history")} ${csvLink("vehicle", q, "forecast", "CSV forecast")}</div></div>
        <div id="ch-life" class="chart tall"></div></div>
      <div class="card wide"><div class="head"><h2>Daily cycles and cranking voltage</h2></div><div id="ch-daily" class="chart"></div></div>
      <div class="card wide"><div class="head"><h2>Alert timeline</h2><div class="tools">${csvLink("vehicle", q, "alerts")}</div></div>
        <div id="ch-timeline" class="chart" style="height:170px"></div>${table(d.tables.alerts, {name: "alerts", link: false, wrap: ["message", "explanation"]})}</div>
      <div class="card wide"><div class="head"><h2>Components, verdicts and the words that drove them</h2><div class="tools">${csvLink("vehicle", q, "components")}</div></div>
        ${table(d.tables.components, {name: "components", link: false, wrap: ["why"]})}</div>
      <div class="card"><div class="head"><h2>Last status</h2><div class="tools">${csvLink("vehicle", q, "status")}</div></div>
        <div class="kv">${table(d.tables.status, {name: "status", link: false, wrap: ["value"]})}</div></div>
    </div>${notes(d)}`;
  const fc = d.tables.forecast.rows;
  const rated = last ? last[4] : f.rated_cycles;
  chart("ch-life", {legend: {top: 4}, grid: {left: 64, right: 80, top: 44, bottom: 40}, xAxis: {type: "time"},
    yAxis: {type: "value", ...axisName("lifetime cycles"), scale: true,      // keep the rated line in view
            max: v => rated ? Math.ceil(Math.max(v.max, rated) * 1.08 / 10) * 10 : v.max},
    tooltip: {trigger: "axis", valueFormatter: v => v == null ? "" : Number(v).toFixed(2)},
    series: [{name: "lifetime cycles (daily rows)", type: "line", showSymbol: false, data: h.rows.map(r => [r[0], r[3]]), lineStyle: {width: 2}},
             {name: `30-day forecast (${f.model || "none"})`, type: "line", showSymbol: false, lineStyle: {type: "dashed", width: 2},
              data: (f.as_of ? [[f.as_of, f.lifetime_cycles]] : []).concat(fc.map(r => [r[1], r[3]]))},
             {name: "rated cycles", type: "line", showSymbol: false, data: [], itemStyle: {color: "#c62828"},
              markLine: rated ? {symbol: "none", data: [{yAxis: rated}], label: {formatter: `rated ${rated}`}, lineStyle: {color: "#c62828"}} : undefined}],
    dataZoom: [{type: "inside"}]});
  chart("ch-daily", {legend: {top: 4}, xAxis: {type: "time"},
    yAxis: [{type: "value", ...axisName("cycles per day")}, {type: "value", name: "V", scale: true, position: "right"}],
    series: [{name: "daily cycles", type: "bar", data: h.rows.map(r => [r[0], r[2]]), itemStyle: {color: "#90a4ae"}},
             {name: "forecast daily cycles", type: "bar", data: fc.map(r => [r[1], r[2]]), itemStyle: {color: "#1f6feb"}},
             {name: "min cranking voltage", type: "line", yAxisIndex: 1, showSymbol: false, data: h.rows.map(r => [r[0], r[7]]), itemStyle: {color: "#ef6c00"}}],
    dataZoom: [{type: "inside"}]});
  const al = d.tables.alerts.rows;
  const kinds = ["battery", "compliance"];
  chart("ch-timeline", {grid: {left: 100, right: 24, top: 30, bottom: 30}, tooltip: {trigger: "item",
      formatter: x => esc(`${x.data[3]} — ${x.data[2]} (${fmt(x.data[0])})`)},
    xAxis: {type: "time"}, yAxis: {type: "category", data: kinds}, legend: {top: 0},
    series: ["raised", "updated", "acknowledged", "cleared"].map(c => ({name: c, type: "scatter", symbolSize: c === "updated" ? 6 : 12,
      data: al.filter(r => r[1] === c).map(r => [r[0], r[3], c, r[6]]),
      itemStyle: {color: {raised: "#c62828", updated: "#ffb74d", acknowledged: "#8d6e63", cleared: "#2e7d32"}[c]}}))});
  wireFilters(root); wireTables(root, d.tables);
};

// ---------------------------------------------------------------- shell
async function render() {
  const p = params();
  const view = VIEWS[p.view] ? p.view : "overview";
  document.querySelectorAll("#tabs a").forEach(a => a.classList.toggle("active", a.dataset.view === view));
  const root = $("#view"), banner = $("#banner");
  banner.hidden = true;
  root.dataset.loading = "1";
  try {
    await VIEWS[view](root, p);
    root.dataset.view = view;
  } catch (e) {
    banner.hidden = false;
    banner.className = e.status === 404 ? "info" : "";
    banner.textContent = e.message;
    root.innerHTML = "";
    root.dataset.view = view;
    root.dataset.error = String(e.status || "");
  } finally {
    delete root.dataset.loading;
  }
}
async function stamp() {
  try {
    const m = await api("meta");
    const el = $("#asof");
    if (!m.as_of) { el.textContent = "lake is empty"; return; }
    const age = (Date.now() - Date.parse(m.as_of)) / 3600e3;
    el.textContent = `data as of ${fmt(m.as_of)}`;
    el.classList.toggle("stale", age > 24);
    el.title = `newest message in the lake; snapshot built ${fmt(m.snapshot && m.snapshot.built_at)}` + (age > 24 ? ` — ${Math.round(age)} h old` : "");
  } catch (e) { $("#asof").textContent = ""; }
}
document.addEventListener("click", ev => {          // in-page navigation keeps the URL shareable
  const a = ev.target.closest("a[href^='?']");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  ev.preventDefault();
  history.pushState(null, "", a.getAttribute("href"));
  render();
});
$("#search").addEventListener("submit", ev => { ev.preventDefault(); const v = $("#search-q").value.trim(); if (v) go({view: "vehicle", id: v}); });
let searchTimer;
$("#search-q").addEventListener("input", ev => {
  clearTimeout(searchTimer);
  const v = ev.target.value.trim();
  if (!/^[A-Za-z0-9_.:-]{2,64}$/.test(v)) return;
  searchTimer = setTimeout(async () => {
    try { const r = await api("vehicles", {q: v, limit: 15});
      $("#search-list").innerHTML = r.tables.vehicles.rows.map(x => `<option value="${esc(x[0])}">`).join(""); } catch (e) { /* typing */ }
  }, 200);
});
window.addEventListener("popstate", render);
stamp();
render();
