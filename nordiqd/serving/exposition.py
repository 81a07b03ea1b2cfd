"""The predictor's lines for GET /metrics: forecasts at a few horizons, risk, itself, accuracy.

``forecast_metrics`` is a pure function of one ``ForecastPass`` and the counters the
predictor keeps beside it (model reloads, passes so far); ``accuracy_metrics`` one of
the live accuracy report over the trailing window.
"""

from __future__ import annotations

import numpy as np

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.accuracy.report import AccuracyReport, Scores
from nordiqd.accuracy.routing import CANDIDATES
from nordiqd.model.params import ModelSpec
from nordiqd.promtext import family
from nordiqd.serving.forecast_pass import ForecastPass
from nordiqd.serving.slot import ReloadStats

HORIZON_MINUTES = (30, 60, 240, 480)  # what a dashboard panel wants; clipped to the horizon


def forecast_metrics(
    forecast_pass: ForecastPass, spec: ModelSpec, reloads: ReloadStats, model_loaded: bool, cycles: int
) -> str:
    """Prometheus text for one pass.

    Args:
        forecast_pass: The pass.
        spec: The ``[model]`` section its forecasts were made for.
        reloads: The model slot's reload counters.
        model_loaded: True while a trained model is served (False: the baseline).
        cycles: Passes completed since the predictor started.
    """
    outlook = forecast_pass.outlook
    values, risk = outlook.values, outlook.risk
    steps = sorted({min(spec.horizon_steps, max(1, m * 60 // spec.step_seconds)) for m in HORIZON_MINUTES})
    qs = [
        (spec.median_index, spec.quantiles[spec.median_index]),
        (len(spec.quantiles) - 1, spec.quantiles[-1]),
    ]
    forecast: list[tuple[dict[str, str], float]] = []
    for i, name in enumerate(outlook.names):
        if not np.isfinite(values[i, :, 0, 0]).any():
            continue
        for j, target in enumerate(spec.targets):
            for qi, q in qs:
                for h in steps:
                    v = float(values[i, j, h - 1, qi])
                    if np.isfinite(v):
                        labels = {
                            "server": name,
                            "metric": target,
                            "quantile": f"{q:g}",
                            "horizon_minutes": str(h * spec.step_seconds // 60),
                        }
                        forecast.append((labels, round(v, 3)))
    model_labels = {"kind": outlook.model.kind, "version": outlook.model.label}
    return "".join(
        [
            family("nordiqd_forecast", "gauge", "Forecast quantile of a metric at a horizon.", forecast),
            family(
                "nordiqd_forecast_source",
                "gauge",
                "Where a served forecast's lead bucket came from (1): the model (tft or baseline) "
                "or the challenger routing chose (last_value, seasonal_naive, statistical).",
                _sources(forecast_pass, spec),
            ),
            family(
                "nordiqd_risk_score",
                "gauge",
                "Risk score 0-100 of a server.",
                [
                    ({"server": n, "profile": p}, float(s))
                    for n, p, s in zip(outlook.names, outlook.profiles, risk.score, strict=True)
                ],
            ),
            family(
                "nordiqd_alert_level",
                "gauge",
                "Alert level of a server: 0 ok, 1 warning, 2 critical.",
                [({"server": n}, float(lv)) for n, lv in zip(outlook.names, risk.level, strict=True)],
            ),
            family(
                "nordiqd_forecast_duration_seconds",
                "gauge",
                "Seconds the last fleet forecast pass took.",
                [({}, round(forecast_pass.duration_s, 4))],
            ),
            family(
                "nordiqd_forecast_cycles_total",
                "counter",
                "Fleet forecast passes since the predictor started.",
                [({}, float(cycles))],
            ),
            family(
                "nordiqd_forecast_servers",
                "gauge",
                "Servers known, and forecast in the last pass.",
                [
                    ({"state": "known"}, float(len(outlook.names))),
                    ({"state": "forecast"}, float(outlook.forecast_count)),
                ],
            ),
            family("nordiqd_model_info", "gauge", "The model being served (1).", [(model_labels, 1.0)]),
            family(
                "nordiqd_model_reloads_total",
                "counter",
                "Model reloads, by result.",
                [({"result": "ok"}, float(reloads.ok)), ({"result": "failed"}, float(reloads.failed))],
            ),
            family(
                "nordiqd_model_reload_seconds",
                "gauge",
                "Seconds the last successful load and check took.",
                [({}, round(reloads.last_seconds, 4))],
            ),
            family(
                "nordiqd_model_loaded",
                "gauge",
                "1 when a trained model is served, 0 for the baseline.",
                [({}, float(model_loaded))],
            ),
        ]
    )


def _sources(forecast_pass: ForecastPass, spec: ModelSpec) -> list[tuple[dict[str, str], float]]:
    """One line per forecast server, target and lead bucket, naming its source."""
    outlook = forecast_pass.outlook
    names = (outlook.model.kind, *CANDIDATES[1:])
    lines: list[tuple[dict[str, str], float]] = []
    for i in outlook.eligible.tolist():
        name = outlook.names[i]
        for target, row in zip(spec.targets, outlook.sources[i].tolist(), strict=True):
            for bucket, c in zip(BUCKETS, row, strict=True):
                lines.append(({"server": name, "metric": target, "bucket": bucket, "source": names[c]}, 1.0))
    return lines


def accuracy_metrics(report: AccuracyReport) -> str:
    """Prometheus text of the live scores over the trailing window (``LiveAccuracy.trailing``).

    Skill and coverage per version, target and lead bucket (target ``all``: every target
    together); a score with nothing to divide by is left out, not written as 0.
    """
    skill: list[tuple[dict[str, str], float]] = []
    coverage: list[tuple[dict[str, str], float]] = []
    # A model in shadow (probation) is in /admin/accuracy only: its version may also have
    # served in the window, and one version's labels must name one series.
    versions = [v for v in report.versions if v.kind != "shadow"]
    for v in versions:
        by_target: list[tuple[str, dict[str, Scores]]] = [("all", v.buckets)]
        by_target += [(name, t.buckets) for name, t in v.targets.items()]
        for target, buckets in by_target:
            for bucket, s in buckets.items():
                labels = {"version": v.version, "target": target, "bucket": bucket}
                if s.skill is not None:
                    skill.append((labels, round(s.skill, 4)))
                if s.coverage is not None:
                    coverage.append((labels, round(s.coverage, 4)))
    return "".join(
        [
            family(
                "nordiqd_forecast_skill",
                "gauge",
                "MAE of the served p50 over MAE of seasonal naive on the same points (below 1 beats it), "
                "trailing window of data time.",
                skill,
            ),
            family(
                "nordiqd_forecast_coverage",
                "gauge",
                "Share of actuals inside the outer quantile band, trailing window of data time.",
                coverage,
            ),
            family(
                "nordiqd_forecast_points_scored_total",
                "gauge",  # a trailing window: it falls as old hours leave it, so not a counter
                "Forecast points scored against their actuals, trailing window of data time.",
                [({"version": v.version}, float(v.points)) for v in versions],
            ),
        ]
    )
