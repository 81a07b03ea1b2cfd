// The promotion cell of the fleet page's header: the champion (the model the gate let
// serve, or one promoted by hand), the last decision of the promotion log with its
// reasons, and the next scheduled retraining. Reads GET /admin/training-stats' `retrain`.

import { fmtHourMinute } from "./format.js";

const $ = (id) => document.getElementById(id);

function when(iso) {
  const ms = Date.parse(iso || "");
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  return (sameDay ? "" : d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" }) + " ") + fmtHourMinute(ms);
}

export function renderPromotion(stats) {
  const box = $("promotion");
  const retrain = stats && stats.retrain;
  box.hidden = !retrain;
  if (!retrain) return;
  const champion = retrain.champion ? String(retrain.champion).replace(/^tft_model_/, "") : "baseline";
  $("promotion-champion").textContent = champion;
  const last = retrain.last_decision;
  const decision = $("promotion-decision");
  decision.textContent = last ? `${last.decision} ${String(last.version).replace(/^tft_model_/, "")}` : "no decision yet";
  decision.className = `decision ${last ? last.decision : ""}`;
  decision.title = last
    ? `${last.decision} ${last.version} at ${last.at} (trigger: ${last.trigger})\n` + (last.reasons || []).join("\n")
    : "No candidate has been judged yet";
  $("promotion-reasons").textContent = last ? (last.reasons || []).join(" · ") : "";
  const next = $("promotion-next");
  next.textContent = retrain.next_run ? `next run ${when(retrain.next_run)}` : "no schedule";
  next.title = retrain.schedule ? `[retrain] schedule = "${retrain.schedule}" (UTC)` : "[retrain] schedule is off";
  if (retrain.waiting) next.title += `\n${retrain.waiting}`;
}
