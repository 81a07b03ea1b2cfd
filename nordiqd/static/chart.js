// One SVG chart: recent history, the forecast's p10–p90 band and p50 line, a "now" marker
// and the alert threshold when it is known. Drawn at the element's current width.

import { fmt, fmtHourMinute, isPct } from "./format.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_HEIGHT = 150;
const MIN_HISTORY_SPAN_MS = 6 * 3600e3;

export function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

export function niceStep(span, ticks) {
  const raw = span / ticks;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
}

export function linePath(ts, vs, x, y) {
  let path = "";
  let pen = false;
  for (let i = 0; i < ts.length; i++) {
    const v = vs[i];
    if (v === null || v === undefined || !Number.isFinite(v) || !Number.isFinite(ts[i])) {
      pen = false;
      continue;
    }
    path += `${pen ? "L" : "M"}${x(ts[i]).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  return path;
}

export function drawChart(svg, data) {
  const W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 400);
  const H = CHART_HEIGHT;
  const m = { l: 40, r: 10, t: 12, b: 18 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();

  const { forecast, threshold, now, metric } = data;
  const fEnd = forecast && forecast.t.length ? forecast.t[forecast.t.length - 1] : now;
  const span = Math.max(MIN_HISTORY_SPAN_MS, 2 * (fEnd - now));
  const t0 = (Number.isFinite(now) ? now : fEnd) - span;
  const t1 = Math.max(fEnd, now);
  const keep = data.histT.map((t, i) => t >= t0 && Number.isFinite(data.histV[i]));
  const histT = data.histT.filter((_, i) => keep[i]);
  const histV = data.histV.filter((_, i) => keep[i]);

  const values = [...histV];
  if (forecast) values.push(...forecast.p10, ...forecast.p50, ...forecast.p90);
  const finite = values.filter(Number.isFinite);
  if (!finite.length) {
    svg.append(svgEl("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
    return;
  }
  let lo = Math.min(0, ...finite);
  let hi = Math.max(...finite);
  // Show the threshold when it is within reach; far above the data it would flatten it.
  let thresholdOffScale = false;
  if (threshold) {
    if (threshold.value <= Math.max(hi, 1e-9) * 2.5) hi = Math.max(hi, threshold.value);
    else thresholdOffScale = true;
  }
  if (isPct(metric)) hi = Math.min(Math.max(hi, 1), 100);
  if (hi <= lo) hi = lo + 1;
  const yStep = niceStep(hi - lo, 4);
  hi = Math.ceil((hi * 1.04) / yStep) * yStep;
  if (isPct(metric)) hi = Math.min(hi, 100);

  const x = (t) => m.l + ((t - t0) / (t1 - t0)) * (W - m.l - m.r);
  const y = (v) => m.t + (1 - (v - lo) / (hi - lo)) * (H - m.t - m.b);

  // grid and axes
  const grid = svgEl("g", { class: "axis" });
  for (let v = lo; v <= hi + yStep / 2; v += yStep) {
    grid.append(svgEl("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    grid.append(svgEl("text", { class: "tick", x: m.l - 5, y: y(v) + 3, "text-anchor": "end" }, String(Number(v.toFixed(6)))));
  }
  const hours = (t1 - t0) / 3600e3;
  const tickH = [1, 2, 3, 4, 6, 12, 24].find((h) => hours / h <= Math.max(3, Math.floor((W - m.l) / 55))) || 24;
  const first = Math.ceil(t0 / (tickH * 3600e3)) * tickH * 3600e3;
  for (let t = first; t <= t1; t += tickH * 3600e3) {
    grid.append(svgEl("line", { class: "grid", x1: x(t), x2: x(t), y1: m.t, y2: H - m.b }));
    grid.append(svgEl("text", { class: "tick", x: x(t), y: H - 5, "text-anchor": "middle" }, fmtHourMinute(t)));
  }
  svg.append(grid);

  // forecast band, then lines on top of it
  if (forecast && forecast.t.length) {
    const upper = linePath(forecast.t, forecast.p90, x, y);
    const lower = forecast.t
      .map((t, i) => [t, forecast.p10[i]])
      .reverse()
      .filter(([, v]) => Number.isFinite(v))
      .map(([t, v]) => `L${x(t).toFixed(1)},${y(v).toFixed(1)}`)
      .join("");
    if (upper) svg.append(svgEl("path", { class: "band", d: `${upper}${lower}Z` }));
  }
  if (threshold && !thresholdOffScale) {
    const ty = y(threshold.value);
    svg.append(svgEl("line", { class: `thr ${threshold.level}`, x1: m.l, x2: W - m.r, y1: ty, y2: ty }));
  }
  const hist = linePath(histT, histV, x, y);
  if (hist) svg.append(svgEl("path", { class: "hist", d: hist }));
  if (forecast) {
    const p50 = linePath(forecast.t, forecast.p50, x, y);
    if (p50) svg.append(svgEl("path", { class: "p50", d: p50 }));
  }
  if (Number.isFinite(now)) {
    svg.append(svgEl("line", { class: "now", x1: x(now), x2: x(now), y1: m.t - 4, y2: H - m.b }));
    svg.append(svgEl("text", { class: "now-label", x: x(now) + 3, y: m.t - 3 }, "now"));
  }
  // Labels last, over the lines (their dark outline keeps them readable).
  if (threshold) {
    const label = `${threshold.level} ${fmt(threshold.value, metric)}${thresholdOffScale ? " ↑ off scale" : ""}`;
    const ty = thresholdOffScale ? m.t + 2 : y(threshold.value) - 3;
    const text = svgEl("text", { class: `thr-label ${threshold.level}`, x: m.l + 4, y: ty }, label);
    svg.append(text);
    const box = text.getBBox();
    if (box.width) {
      const pad = svgEl("rect", { class: "label-bg", x: box.x - 2, y: box.y, width: box.width + 4, height: box.height, rx: 2 });
      svg.insertBefore(pad, text);
    }
  }
}
