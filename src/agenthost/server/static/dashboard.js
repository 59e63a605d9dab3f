// The operator dashboard: health, session counts, small charts of recent activity and
// the live-session table, refreshed every few seconds. Needs an admin credential
// (or a server running with --auth none).

import { $, el, Api, ApiError, setUpTopBar, formatTime, formatAge, pathId, notifyReachable } from "./common.js";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const api = new Api();
let paused = false;
let timer = null;
let liveSessions = [];
let usageServed = true;

const bar = setUpTopBar({ onCredentialChange: () => refresh() });

// ---- cards ----------------------------------------------------------------------------------

function card(label, value, tone = "") {
  return el("div", { class: "card", dataset: { card: label } },
    el("div", { class: "label" }, label),
    el("div", { class: `value ${tone}` }, value));
}

function seconds(value) {
  if (value === null || value === undefined) return "off";
  return value >= 3600 ? `${(value / 3600).toFixed(1)} h` : value >= 60 ? `${Math.round(value / 60)} min` : `${value} s`;
}

async function probe(path) {
  try {
    const response = await fetch(path, { cache: "no-store" });
    let detail = "";
    try { const body = await response.json(); detail = body.status || (body.error && body.error.message) || ""; } catch { /* plain */ }
    return { ok: response.ok, detail: detail || String(response.status) };
  } catch {
    return { ok: false, detail: "unreachable" };
  }
}

function renderCards(health, ready, stats) {
  const cards = [
    card("process", health.ok ? "up" : health.detail, health.ok ? "ok" : "bad"),
    card("store & locks", ready.ok ? "ready" : ready.detail, ready.ok ? "ok" : "bad"),
  ];
  if (stats) {
    cards.push(
      card("total sessions", stats.total_sessions),
      card("live / max", `${stats.live_sessions} / ${stats.max_live_sessions}`),
      card("active", stats.active_sessions),
      card("idle", stats.idle_sessions),
      card("evictions", stats.evictions),
      card("expirations", stats.expirations),
      card("session TTL", seconds(stats.session_ttl_seconds)),
      card("policy", stats.policy ?? "queue"),
    );
  }
  $("#cards").replaceChildren(...cards);
}

// ---- charts ---------------------------------------------------------------------------------

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** A line per series over the points (null leaves a gap); scaled to the largest value. */
function chart(title, unit, series, points, format = (v) => v) {
  const width = 300, height = 60;
  const values = series.flatMap((s) => points.map(s.value)).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...values);
  const x = (i) => (points.length > 1 ? (i / (points.length - 1)) * width : width);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const y = (v) => height - 2 - (v / max) * (height - 4);
  const picture = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": `${title}, last ${Math.round(points.length)} buckets` });
  series.forEach((s, n) => {
    let d = "", open = false;
    points.forEach((point, i) => {
      const v = s.value(point);
      if (v === null || v === undefined) { open = false; return; }
      // a segment starts half a bucket early, so that a lone point still shows
      if (!open) d += `M${Math.max(0, x(i) - step / 2).toFixed(1)},${y(v).toFixed(1)}`;
      d += `L${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      open = true;
    });
    if (d) picture.append(svg("path", { d, class: n ? "line second" : "line" }));
  });
  const last = (s) => {
    for (let i = points.length - 1; i >= 0; i--) {
      const v = s.value(points[i]);
      if (v !== null && v !== undefined) return format(v);
    }
    return "–";
  };
  const now = series.map((s) => `${s.label ? `${s.label} ` : ""}${last(s)}`).join(" · ");
  return el("div", { class: "card chart", dataset: { chart: title } },
    el("div", { class: "head" }, el("span", {}, title), el("span", { class: "now" }, `${now}${unit ? ` ${unit}` : ""}`)),
    picture,
    el("div", { class: "muted small" }, `max ${format(values.length ? max : 0)}${unit ? ` ${unit}` : ""}`));
}

function renderCharts(series) {
  const points = series.points;
  const round = (v) => (Math.round(v * 100) / 100).toString();
  const evictions = points.map((p, i) => {
    const before = points.slice(0, i).reverse().find((q) => q.evictions !== null);
    return p.evictions === null || !before ? null : Math.max(0, p.evictions - before.evictions);
  });
  const minutes = Math.round((points.length * series.bucket_seconds) / 60);
  $("#window").textContent = `(this process, last ${minutes} min, ${series.bucket_seconds} s buckets)`;
  $("#charts").replaceChildren(
    chart("turns per second", "", [{ value: (p) => p.turns_per_second }], points, round),
    chart("turn latency", "ms", [{ label: "p50", value: (p) => p.latency_p50_ms }, { label: "p95", value: (p) => p.latency_p95_ms }], points, round),
    chart("live sessions", "", [{ value: (p) => p.live_sessions }], points, round),
    chart("active sessions", "", [{ value: (p) => p.active_sessions }], points, round),
    chart("errors", "", [{ label: "failed turns", value: (p) => p.failed + p.interrupted }, { label: "5xx", value: (p) => p.http_errors }], points, round),
    chart("evictions", "", [{ value: (p) => p.evicted }], points.map((p, i) => ({ ...p, evicted: evictions[i] })), round),
  );
}

// ---- live sessions ---------------------------------------------------------------------------

function renderLive() {
  const filter = $("#filter").value.trim().toLowerCase();
  const rows = liveSessions
    .filter((s) => !filter || `${s.tenant_id} ${s.user_id} ${s.session_id}`.toLowerCase().includes(filter))
    .sort((a, b) => b.last_used - a.last_used);
  $("#live tbody").replaceChildren(...rows.map((s) => {
    const evict = el("button", { type: "button", class: "evict", disabled: s.busy, title: s.busy ? "a turn is running: it cannot be evicted now" : "Drop it from memory (it stays in the store)", "aria-label": `Evict ${s.user_id}/${s.session_id}` }, "Evict");
    evict.addEventListener("click", () => evictSession(s, evict));
    return el("tr", { dataset: { user: s.user_id, session: s.session_id } },
      el("td", { class: "id" }, s.tenant_id),
      el("td", { class: "id" }, s.user_id),
      el("td", { class: "id" }, s.session_id),
      el("td", {}, formatTime(s.created_at)),
      el("td", {}, `${formatAge(s.last_used)} ago`),
      el("td", { class: "num" }, s.messages_in_window),
      el("td", {}, s.busy ? "running a turn" : "idle"),
      el("td", {}, evict));
  }));
  $("#live-status").textContent = liveSessions.length
    ? `${rows.length} of ${liveSessions.length} live session(s) in this process`
    : "No session is live in this process.";
}

async function evictSession(s, button) {
  button.disabled = true;
  try {
    const result = await api.json("DELETE", `v1/admin/sessions/${pathId(s.tenant_id)}/${pathId(s.user_id)}/${pathId(s.session_id)}`);
    $("#evict-status").textContent = result.evicted ? `Evicted ${s.user_id}/${s.session_id}.` : `${s.user_id}/${s.session_id} was not evicted (busy, or already gone).`;
  } catch (error) {
    $("#evict-status").textContent = error instanceof ApiError ? error.describe() : String(error);
  }
  await refresh();
}

async function cleanup() {
  const status = $("#cleanup-status");
  status.textContent = "cleaning…";
  try {
    const result = await api.json("POST", "v1/admin/cleanup");
    status.textContent = `expired ${result.expired} idle session(s), deleted ${result.deleted} old one(s)`;
    status.className = "status-line good";
  } catch (error) {
    status.textContent = error instanceof ApiError ? error.describe() : String(error);
    status.className = "status-line bad";
  }
  await refresh();
}

// ---- usage (when the server has GET /v1/usage) ---------------------------------------------------

function renderUsage(usage) {
  const rows = Array.isArray(usage) ? usage : usage.tenants || usage.usage || (usage ? [usage] : []);
  if (!rows.length || typeof rows[0] !== "object") { $("#usage-panel").hidden = true; return; }
  const columns = Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== "object");
  $("#usage").replaceChildren(el("table", { class: "data" },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map((c) => el("td", {}, String(r[c] ?? ""))))))));
  $("#usage-panel").hidden = false;
}

// ---- refresh loop -------------------------------------------------------------------------------

let refreshing = null;

async function refreshOnce() {
  const [health, ready] = await Promise.all([probe("healthz"), probe("readyz")]);
  notifyReachable(health.ok || health.detail !== "unreachable");
  if (!health.ok && health.detail === "unreachable") {
    renderCards(health, ready, null);
    bar.showBanner(`Cannot reach the server at ${location.origin}: retrying every ${REFRESH_MS / 1000} s.`);
    return;
  }
  try {
    const [stats, series, live] = await Promise.all([api.get("v1/admin/stats"), api.get("v1/admin/series"), api.get("v1/admin/sessions")]);
    bar.clearBanner();
    renderCards(health, ready, stats);
    renderCharts(series);
    liveSessions = live.sessions;
    renderLive();
    $("#updated").textContent = `updated ${formatTime(Date.now() / 1000)}`;
  } catch (error) {
    renderCards(health, ready, null);
    if (error instanceof ApiError && error.status === 403) bar.showBanner(`This dashboard needs an admin credential: ${error.message}.`);
    else if (error instanceof ApiError && error.status !== 401) bar.showBanner(error.describe());
    return;
  }
  if (usageServed) {
    try { renderUsage(await api.get("v1/usage")); } catch (error) {
      $("#usage-panel").hidden = true;
      if (error instanceof ApiError && error.status === 404) usageServed = false; // not on this server
    }
  }
}

async function refresh() {
  if (refreshing) return refreshing;
  clearTimeout(timer);
  refreshing = refreshOnce().finally(() => {
    refreshing = null;
    if (!paused) timer = setTimeout(refresh, REFRESH_MS);
  });
  return refreshing;
}

$("#pause").addEventListener("click", () => {
  paused = !paused;
  $("#pause").setAttribute("aria-pressed", String(paused));
  $("#pause").textContent = paused ? "Resume" : "Pause";
  if (!paused) refresh(); else clearTimeout(timer);
});
$("#filter").addEventListener("input", renderLive);
$("#cleanup").addEventListener("click", cleanup);
refresh();
