// nordiqd fleet page: fetches the daemon's JSON API with the key kept in sessionStorage and
// draws the fleet table, one SVG chart per forecast target and the live accuracy panel
// (accuracy.js). No libraries, no build step.
//
// Runs as a loop of refreshes: one every REFRESH_MS while the tab is visible, none while it
// is hidden (an immediate one when it shows again). A 401 forgets the key and asks again.

import { renderAccuracy, serverSkillText } from "./accuracy.js";
import { renderPromotion } from "./promotion.js";
import { drawChart, svgEl } from "./chart.js";
import { fmt, fmtClock, fmtHourMinute, fmtMinutes, fmtSource } from "./format.js";

const REFRESH_MS = 10000;
const RETRY_MS = 3000; // after a failed refresh: the daemon may be restarting a role
const KEY_STORE = "nordiqd.apiKey";
const SELECTED_STORE = "nordiqd.server";
const LEVEL_RANK = { critical: 2, warning: 1, ok: 0 };

const state = {
  key: null,
  selected: sessionStorage.getItem(SELECTED_STORE),
  fleet: null,
  detail: null,
  accuracy: null, // GET /admin/accuracy, null when it did not answer
  serverAccuracy: null, // the same for the selected server only
  timer: null,
  busy: false,
  failing: false,
  detailToken: 0,
};

// ---- small DOM helpers (textContent only: server names come from ingest) ------------

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// ---- API --------------------------------------------------------------------------

class Unauthorized extends Error {}
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const resp = await fetch(path, {
    headers: { "X-API-Key": state.key, Accept: "application/json" },
    cache: "no-store",
  });
  if (resp.status === 401) throw new Unauthorized("the API key was refused");
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (!resp.ok) throw new HttpError(resp.status, (body && body.error) || resp.statusText);
  return body;
}

// Optional calls: anything but a refused key just means "nothing to show".
const optional = (promise) =>
  promise.catch((err) => {
    if (err instanceof Unauthorized) throw err;
    return null;
  });

// ---- key handling -----------------------------------------------------------------

// The fragment may carry the key (the demo's printed link) and a server to show
// (#key=...&server=db-001); the key is stored and removed from the address bar at once.
function readFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const server = params.get("server");
  if (server) state.selected = server;
  if (!params.has("key")) return;
  sessionStorage.setItem(KEY_STORE, params.get("key"));
  // The key must not linger in the address bar, the history or a shared screenshot.
  showSelectedInAddress();
}

function showSelectedInAddress() {
  const hash = state.selected ? `#server=${encodeURIComponent(state.selected)}` : "";
  history.replaceState(null, "", location.pathname + location.search + hash);
}

function askForKey(message) {
  stopTimer();
  state.key = null;
  sessionStorage.removeItem(KEY_STORE);
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  setConnection("down", "no key");
  $("key-input").value = "";
  $("key-input").focus();
}

function useKey(key) {
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  $("login").hidden = true;
  $("main").hidden = false;
  refresh();
}

// ---- refresh loop -----------------------------------------------------------------

function stopTimer() {
  if (state.timer !== null) clearTimeout(state.timer);
  state.timer = null;
}

function schedule() {
  stopTimer();
  if (state.key && !document.hidden) state.timer = setTimeout(refresh, state.failing ? RETRY_MS : REFRESH_MS);
}

async function refresh() {
  if (state.busy || !state.key) return;
  state.busy = true;
  try {
    const [fleet, model, training, accuracy, stats] = await Promise.all([
      api("/predictions/current"),
      optional(api("/admin/model-info")),
      optional(api("/admin/training-status")),
      optional(api("/admin/accuracy")),
      optional(api("/admin/training-stats")),
    ]);
    state.fleet = fleet;
    state.accuracy = accuracy;
    renderHeader(fleet, model, training);
    renderPromotion(stats);
    renderAccuracy(accuracy, fleet.model);
    const rows = sortedServers(fleet);
    if (!rows.some(([name]) => name === state.selected)) {
      state.selected = rows.length ? rows[0][0] : null;
      showSelectedInAddress();
    }
    renderTable(rows);
    await loadDetail();
    state.failing = false;
    setConnection("live", "live");
    setMessage("");
  } catch (err) {
    if (err instanceof Unauthorized) {
      askForKey("The API key was refused. Enter it again.");
      return;
    }
    state.failing = true;
    setConnection("down", err instanceof HttpError ? `HTTP ${err.status}` : "unreachable");
    $("updated").classList.add("stale");
    const shown = state.fleet ? "Showing the last data" : "Nothing to show yet";
    setMessage(`Refresh failed: ${err.message}. ${shown}; retrying in ${RETRY_MS / 1000} s.`, true);
  } finally {
    state.busy = false;
    schedule();
  }
}

async function loadDetail() {
  const name = state.selected;
  const token = ++state.detailToken;
  if (!name) {
    state.detail = null;
    renderDetail();
    return;
  }
  sessionStorage.setItem(SELECTED_STORE, name);
  let detail = null;
  const mine = optional(api(`/admin/accuracy?server=${encodeURIComponent(name)}`));
  try {
    detail = await api(`/predictions/${encodeURIComponent(name)}`);
  } catch (err) {
    if (!(err instanceof HttpError && err.status === 404)) throw err;
  }
  const serverAccuracy = await mine;
  if (token !== state.detailToken) return; // a newer selection won
  state.detail = detail;
  state.serverAccuracy = serverAccuracy;
  renderDetail();
}

function select(name) {
  if (!name || name === state.selected) return;
  state.selected = name;
  showSelectedInAddress();
  for (const tr of $("fleet-rows").children) tr.classList.toggle("sel", tr.dataset.server === name);
  loadDetail().catch((err) => {
    if (err instanceof Unauthorized) askForKey("The API key was refused. Enter it again.");
    else setMessage(`Could not load ${name}: ${err.message}`, true);
  });
}

function setConnection(kind, text) {
  $("conn-dot").className = `dot ${kind}`;
  $("conn-text").textContent = text;
}

function setMessage(text, isError) {
  $("message").textContent = text;
  $("foot").classList.toggle("error", Boolean(isError));
}

// ---- header -----------------------------------------------------------------------

function renderHeader(fleet, model, training) {
  const kind = (fleet.model && fleet.model.kind) || "baseline";
  const badge = $("model-kind");
  badge.textContent = kind.toUpperCase();
  badge.className = `model-badge ${kind === "tft" ? "tft" : "baseline"}`;
  let version = kind === "tft" ? String(fleet.model.version) : "seasonal-naive, no trained model yet";
  if (model && model.last_reload_error) version += " · last reload failed";
  $("model-version").textContent = version;
  $("model").title =
    model && model.loaded_at
      ? `loaded ${model.loaded_at}` + (model.last_reload_error ? `\nlast reload error: ${model.last_reload_error}` : "")
      : "The seasonal-naive baseline serves until a trained model is published";

  const updated = $("updated");
  const generated = Date.parse(fleet.generated_at);
  updated.textContent = Number.isFinite(generated) ? fmtClock(generated) : "—";
  updated.title = `generated ${fleet.generated_at} · ${fleet.horizon_steps} steps of ${fleet.step_seconds} s`;
  updated.classList.remove("stale");

  const box = $("training");
  box.hidden = !training;
  if (training) {
    const pct = Math.max(0, Math.min(100, Number(training.progress_pct) || 0));
    const status = training.status || "unknown";
    const failed = ["failed", "cancelled", "rejected"].includes(status);
    box.className = `cell ${status === "completed" ? "done" : failed ? "failed" : ""}`;
    let text = status;
    if (status === "completed" && training.completed_at) text += " " + fmtHourMinute(Date.parse(training.completed_at));
    $("training-status").textContent = text;
    $("training-bar").style.width = `${status === "completed" ? 100 : pct}%`;
    $("training-pct").textContent = status === "running" || status === "queued" ? `${pct.toFixed(0)} %` : "";
    box.title = `job ${training.job_id}` + (training.error ? `\n${training.error}` : "");
  }

  const summary = fleet.summary || {};
  $("n-ok").textContent = summary.ok ?? "–";
  $("n-warning").textContent = summary.warning ?? "–";
  $("n-critical").textContent = summary.critical ?? "–";
  $("n-pending").textContent = summary.insufficient_history ?? 0;
  $("pending").hidden = !summary.insufficient_history;
}

// ---- fleet table ------------------------------------------------------------------

function sortedServers(fleet) {
  const entries = Object.entries(fleet.servers || {});
  const risk = (s) => (Number.isFinite(s.risk_score) ? s.risk_score : -1);
  return entries.sort(
    ([an, a], [bn, b]) =>
      risk(b) - risk(a) ||
      (LEVEL_RANK[b.alert_level] || 0) - (LEVEL_RANK[a.alert_level] || 0) ||
      (an < bn ? -1 : an > bn ? 1 : 0),
  );
}

function renderTable(rows) {
  const body = $("fleet-rows");
  const fresh = document.createDocumentFragment();
  for (const [name, s] of rows) fresh.append(tableRow(name, s));
  body.replaceChildren(fresh);
  $("fleet-empty").hidden = rows.length > 0;
}

function tableRow(name, s) {
  const risk = s.risk || {};
  const level = s.alert_level || "ok";
  const pending = !s.forecast;
  const minutes = risk.minutes_to_threshold;
  const etaClass = minutes === null || minutes === undefined ? "" : minutes <= 60 ? "soon" : minutes <= 240 ? "near" : "";
  const score = Number.isFinite(s.risk_score) ? s.risk_score : null;
  const bar = el("span", { class: level });
  bar.style.width = `${Math.max(0, Math.min(100, score || 0))}%`;
  const tr = el(
    "tr",
    {
      "data-server": name,
      class: [level, pending ? "pending" : "", name === state.selected ? "sel" : ""].filter(Boolean).join(" "),
      tabindex: "0",
    },
    el("td", { class: "name", text: name }),
    el("td", { class: "col-profile", text: s.profile || "—" }),
    el("td", {}, el("span", { class: `badge ${level}`, text: level })),
    el("td", { class: "num" }, el("div", { class: "risk" }, el("span", { text: score === null ? "—" : score.toFixed(1) }), el("span", { class: "riskbar" }, bar))),
    el("td", { class: "metric", text: pending ? "collecting history…" : risk.metric || "—" }),
    el("td", { class: "num", text: risk.metric ? fmt((s.current || {})[risk.metric], risk.metric) : "—" }),
    el("td", { class: "num col-threshold", text: fmt(risk.threshold, risk.metric) }),
    el("td", { class: `num eta ${etaClass}`, text: fmtMinutes(minutes) }),
  );
  tr.addEventListener("click", () => select(name));
  tr.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      select(name);
    } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const next = ev.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
      if (next) {
        next.focus();
        select(next.dataset.server);
      }
    }
  });
  return tr;
}

// ---- detail panel -----------------------------------------------------------------

function renderDetail() {
  const d = state.detail;
  const charts = $("charts");
  $("detail-skill").textContent = serverSkillText(state.serverAccuracy, state.fleet && state.fleet.model);
  if (!d) {
    $("detail-name").textContent = state.selected || "no server";
    $("detail-level").className = "badge";
    $("detail-level").textContent = "";
    $("detail-profile").textContent = "";
    $("detail-risk").textContent = "";
    charts.replaceChildren();
    return;
  }
  const risk = d.risk || {};
  const level = d.alert_level || "ok";
  $("detail-name").textContent = d.server_name;
  $("detail-level").className = `badge ${level}`;
  $("detail-level").textContent = level;
  $("detail-profile").textContent = d.profile || "";
  let riskText = Number.isFinite(d.risk_score) ? `risk ${d.risk_score.toFixed(1)}` : "";
  if (risk.metric && Number.isFinite(risk.threshold)) {
    const mins = risk.minutes_to_threshold;
    const when = !Number.isFinite(mins) ? "not crossing" : mins <= 0 ? "crossed now" : `crossing in ${fmtMinutes(mins)}`;
    riskText += ` · ${risk.metric} ${level === "critical" ? "critical" : "warning"} at ${fmt(risk.threshold, risk.metric)}: ${when}`;
  }
  $("detail-risk").textContent = riskText;
  const note = $("detail-note");
  note.hidden = Boolean(d.forecast);
  note.textContent = d.forecast ? "" : "Not enough history for a forecast yet: showing what has been collected.";

  const targets = [...(d.targets || Object.keys(d.history || {}).filter((k) => k !== "timestamps"))];
  // The driving metric's chart comes first, full width: it is the one the alert is about.
  targets.sort((a, b) => (b === risk.metric) - (a === risk.metric));
  const boxes = targets.map((target) => chartBox(d, target, risk));
  charts.replaceChildren(...boxes.map((b) => b.box));
  for (const b of boxes) drawChart(b.svg, b.data);
}

function chartBox(d, target, risk) {
  const history = d.history || {};
  const histT = (history.timestamps || []).map((t) => Date.parse(t));
  const histV = history[target] || [];
  const fc = d.forecast && d.forecast[target];
  const start = Date.parse(d.forecast_start);
  const step = (d.step_seconds || 300) * 1000;
  const forecast = fc
    ? { t: (fc.p50 || []).map((_, i) => start + i * step), p10: fc.p10 || [], p50: fc.p50 || [], p90: fc.p90 || [] }
    : null;
  const driving = risk.metric === target;
  const level = d.alert_level === "critical" ? "critical" : "warning";
  const threshold = driving && Number.isFinite(risk.threshold) ? { value: risk.threshold, level } : null;
  const now = Date.parse(d.generated_at);
  const current = (d.current || {})[target];
  const last = forecast && forecast.p50.length ? forecast.p50[forecast.p50.length - 1] : null;

  const value = el("span", { class: "v" }, el("b", { text: fmt(current, target) }));
  if (last !== null) value.append(` → ${fmt(last, target)} at +${fmtMinutes((forecast.t.length * step) / 60000)}`);
  value.title = "now, and the median forecast at the end of the horizon";
  const source = fmtSource(d.source && d.source[target]);
  if (source) value.append(el("span", { class: "source", text: ` · ${source}` }));
  const svg = svgEl("svg", { role: "img", "aria-label": `${target} history and forecast` });
  const box = el(
    "div",
    { class: `chart${driving ? " driving" : ""}`, "data-target": target },
    el("div", { class: "chart-head" }, el("span", { class: "t", text: target + (driving ? " ◆" : "") }), value),
    svg,
  );
  return { box, svg, data: { histT, histV, forecast, threshold, now, metric: target } };
}

// ---- start ------------------------------------------------------------------------

function start() {
  readFragment();
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("key-input").value.trim();
    if (key) useKey(key);
  });
  $("logout").addEventListener("click", () => askForKey(""));
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stopTimer();
    else if (state.key) refresh();
  });
  window.addEventListener("hashchange", () => {
    const before = state.selected;
    readFragment();
    if (state.key && state.selected !== before) refresh();
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      renderDetail();
      if (state.fleet) renderAccuracy(state.accuracy, state.fleet.model);
    }, 150);
  });
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) useKey(key);
  else askForKey("");
}

start();
