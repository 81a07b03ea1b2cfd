// The accuracy panel: the served model's live skill and coverage per lead bucket, a chart of
// skill hour by hour with every model change marked, and one server's own skill. It draws
// the body of GET /admin/accuracy (nordiqd/accuracy/report.py) and fetches nothing itself.

import { linePath, niceStep, svgEl } from "./chart.js";
import { fmtHourMinute } from "./format.js";

export const BUCKETS = ["0-1h", "1-4h", "4-8h", "all"];
export const NO_SCORE =
  "no forecast scored yet: scores appear one issue interval after the first forecast";
const CHART_HEIGHT = 130;
const MAX_SPAN_MS = 7 * 86400e3; // older hours would squeeze the recent ones into a sliver
const MAX_SKILL = 5;

const $ = (id) => document.getElementById(id);
const num = (v, digits) => (Number.isFinite(v) ? v.toFixed(digits) : "—");
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(0)} %` : "—");
const shortVersion = (v) => String(v).replace(/^tft_model_/, "");

// The version serving now: the one the fleet names, else the last in serving order
// (a model in shadow, scored beside the champion during probation, never serves).
export function servedVersion(report, model) {
  const versions = ((report && report.versions) || []).filter((v) => v.kind !== "shadow");
  const name = model && model.kind === "tft" ? String(model.version) : "baseline";
  return versions.find((v) => v.version === name) || versions[versions.length - 1] || null;
}

// `report` null: the endpoint did not answer (an older predictor, or one still starting).
export function renderAccuracy(report, model) {
  const served = servedVersion(report, model);
  const empty = $("accuracy-empty");
  empty.hidden = Boolean(served);
  empty.textContent = report ? NO_SCORE : "accuracy unavailable: the predictor did not answer";
  $("accuracy-body").hidden = !served;
  $("accuracy-through").textContent = report && report.scored_through ? `scored through ${report.scored_through}` : "";
  if (!served) return;
  $("accuracy-version").textContent =
    served.kind === "tft" ? `TFT ${shortVersion(served.version)}` : "baseline (seasonal naive)";
  $("accuracy-version").title = `${served.version}: scored from ${served.from} to ${served.to}`;
  for (const bucket of BUCKETS) {
    const s = (served.buckets || {})[bucket] || {};
    const cells = document.querySelectorAll(`#accuracy-table td[data-bucket="${bucket}"]`);
    for (const td of cells) {
      const field = td.dataset.field;
      const value = s[field];
      td.textContent = field === "skill" ? num(value, 2) : field === "coverage" ? pct(value) : value ?? "—";
      td.classList.toggle("good", field === "skill" && Number.isFinite(value) && value < 1);
      td.classList.toggle("bad", field === "skill" && Number.isFinite(value) && value > 1.05);
    }
  }
  drawSkillChart($("accuracy-chart"), report.versions);
}

// One server's skill next to its forecast (`report` from ?server=NAME: whole days, no buckets).
export function serverSkillText(report, model) {
  const served = servedVersion(report, model);
  if (!served) return report ? "skill: no score for this server yet" : "";
  const name = served.kind === "tft" ? shortVersion(served.version) : "baseline";
  return `skill ${num(served.skill, 2)} · p10–p90 coverage ${pct(served.coverage)} (${name}, ${served.points} points)`;
}

function drawSkillChart(svg, versions) {
  const W = Math.max(260, Math.round(svg.getBoundingClientRect().width) || 400);
  const H = CHART_HEIGHT;
  const m = { l: 34, r: 10, t: 14, b: 18 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();

  const series = versions.map((v) => ({
    v,
    t: (v.hours || []).map((h) => Date.parse(h.hour)),
    s: (v.hours || []).map((h) => h.skill),
  }));
  const times = series.flatMap((x) => x.t).filter(Number.isFinite);
  if (!times.length) {
    svg.append(svgEl("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no hourly score yet"));
    return;
  }
  const t1 = Math.max(...times) + 3600e3;
  const t0 = Math.max(Math.min(...times), t1 - MAX_SPAN_MS);
  const skills = series.flatMap((x) => x.s.filter((_, i) => x.t[i] >= t0)).filter(Number.isFinite);
  // Up to 5 times naive's error; worse than that is drawn at the top edge.
  const top = Math.min(Math.max(1.2, ...skills) * 1.05, MAX_SKILL);
  const yStep = niceStep(top, 3);
  const hi = Math.ceil(top / yStep) * yStep;
  const x = (t) => m.l + ((t - t0) / (t1 - t0)) * (W - m.l - m.r);
  const y = (v) => m.t + (1 - Math.min(v, hi) / hi) * (H - m.t - m.b);

  const grid = svgEl("g", { class: "axis" });
  for (let v = 0; v <= hi + 1e-9; v += yStep) {
    grid.append(svgEl("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    grid.append(svgEl("text", { class: "tick", x: m.l - 5, y: y(v) + 3, "text-anchor": "end" }, String(Number(v.toFixed(3)))));
  }
  const hours = (t1 - t0) / 3600e3;
  const tickH = [1, 2, 3, 4, 6, 12, 24, 48, 96].find((h) => hours / h <= Math.max(3, Math.floor((W - m.l) / 60))) || 168;
  for (let t = Math.ceil(t0 / (tickH * 3600e3)) * tickH * 3600e3; t <= t1; t += tickH * 3600e3) {
    grid.append(svgEl("text", { class: "tick", x: x(t), y: H - 5, "text-anchor": "middle" }, fmtHourMinute(t)));
  }
  svg.append(grid);
  // Skill 1 is the seasonal-naive reference: a line below it beats "same time yesterday".
  svg.append(svgEl("line", { class: "naive", x1: m.l, x2: W - m.r, y1: y(1), y2: y(1) }));
  svg.append(svgEl("text", { class: "naive-label", x: W - m.r - 2, y: y(1) - 3, "text-anchor": "end" }, "naive = 1"));

  for (const { v, t, s } of series) {
    // Each hour is a step of the line, centred on its hour.
    const path = linePath(t.map((ti) => ti + 1800e3), s, x, y);
    if (path) svg.append(svgEl("path", { class: `skill ${v.kind}`, d: path }));
    if (t.length === 1 && Number.isFinite(s[0])) {
      svg.append(svgEl("circle", { class: `skill-dot ${v.kind}`, cx: x(t[0] + 1800e3), cy: y(s[0]), r: 2.5 }));
    }
  }
  // Every model change: a marker where each version's first scored step lies.
  for (const v of versions) {
    const at = Date.parse(v.from);
    if (v.kind === "shadow" || !Number.isFinite(at) || at < t0) continue; // shadow: no change
    const change = svgEl("g", { class: `change ${v.kind}`, "data-version": v.version });
    change.append(svgEl("title", {}, `${v.version} from ${v.from}`));
    change.append(svgEl("line", { x1: x(at), x2: x(at), y1: m.t - 2, y2: H - m.b }));
    change.append(svgEl("text", { x: x(at) + 3, y: m.t - 4 }, shortVersion(v.version)));
    svg.append(change);
  }
}
