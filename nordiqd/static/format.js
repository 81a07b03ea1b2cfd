// Formatting of values, durations and clock times for the fleet page.

export const isPct = (metric) => /_pct$/.test(metric || "");

export function fmt(v, metric) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  const a = Math.abs(v);
  const s = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  return isPct(metric) ? s + " %" : s;
}

export function fmtMinutes(m) {
  if (m === null || m === undefined || !Number.isFinite(m)) return "—";
  if (m <= 0) return "now";
  if (m < 60) return `${Math.round(m)} min`;
  if (m < 1440) {
    const h = Math.floor(m / 60);
    const rest = Math.round(m - h * 60);
    return rest ? `${h} h ${String(rest).padStart(2, "0")}` : `${h} h`;
  }
  const d = Math.floor(m / 1440);
  return `${d} d ${Math.round((m - d * 1440) / 60)} h`;
}

const pad2 = (n) => String(n).padStart(2, "0");
export const fmtClock = (ms) => {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
};
export const fmtHourMinute = (ms) => {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
};

// Where a target's forecast came from, per lead bucket: "tft", or "0-1h last_value · 1-4h tft · ...".
export function fmtSource(source) {
  if (!source) return "";
  const parts = Object.entries(source);
  const names = new Set(parts.map(([, s]) => s));
  if (names.size === 1) return `from ${parts[0][1]}`;
  return "from " + parts.map(([bucket, s]) => `${bucket} ${s}`).join(" · ");
}
