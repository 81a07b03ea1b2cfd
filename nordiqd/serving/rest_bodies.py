"""The predictor's REST bodies, encoded once per pass from its ``Outlook``.

``encode`` is a pure function of an outlook and the ``[model]`` spec. It writes the
GET /predictions/current body (gzipped) and the GET /alerts/active body as bytes, and
keeps one entry per server for GET /predictions/{server}, to which the predictor adds
the server's history when asked. The numbers are written in bulk (``decimals``) and
spliced in as raw JSON: the 1,000-server body holds 1.4 M of them.

Each forecast says where it came from: ``source`` is, per target, the candidate each
lead bucket was served from (``{"cpu_user_pct": {"0-1h": "last_value", "1-4h": "tft",
"4-8h": "tft"}}``): ``tft`` or ``baseline`` for the served model itself, or
``last_value``, ``seasonal_naive`` or ``statistical`` where routing chose a challenger
(``serving.routes``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
from isal import igzip

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.accuracy.routing import CANDIDATES
from nordiqd.model.params import ModelSpec
from nordiqd.predict.risk import summary
from nordiqd.serving.decimals import json_arrays
from nordiqd.serving.outlook import Outlook

DECIMALS = 2  # served as precise as agents report (/proc and sysstat print two decimals)


@dataclass(frozen=True)
class RestBodies:
    """One pass's bodies.

    Attributes:
        etag: Names the pass: its time and model version.
        predictions_gzip: GET /predictions/current, gzipped.
        alerts: GET /alerts/active.
        servers: Per server, the GET /predictions/{server} body without ``history``.
    """

    etag: str
    predictions_gzip: bytes
    alerts: bytes
    servers: dict[str, dict[str, Any]]


def iso(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def quantile_keys(quantiles: tuple[float, ...] | list[float]) -> list[str]:
    """``p10``, ``p50``, ``p90`` ... from the configured quantiles."""
    return [f"p{q * 100:g}" for q in quantiles]


def encode(outlook: Outlook, spec: ModelSpec) -> RestBodies:
    """Every REST body of one pass.

    Args:
        outlook: The pass's forecasts and risk.
        spec: The ``[model]`` section the forecasts were made for.

    Returns:
        The encoded bodies.
    """
    targets = list(spec.targets)
    servers = _servers(outlook, spec)
    head = {
        "generated_at": iso(outlook.generated_at),
        "model": outlook.model,
        "step_seconds": spec.step_seconds,
        "horizon_steps": spec.horizon_steps,
        "quantiles": list(spec.quantiles),
        "targets": targets,
        "forecast_start": None if outlook.forecast_start is None else iso(outlook.forecast_start),
    }
    predictions = {
        **head,
        "servers": servers,
        "summary": {
            **summary(outlook.risk.level),
            "forecast": outlook.forecast_count,
            "insufficient_history": len(outlook.names) - outlook.forecast_count,
        },
    }
    alerts = sorted(
        (
            {"server_name": name, "profile": s["profile"], **s["risk"], "current": s["current"]}
            for name, s in servers.items()
            if s["alert_level"] != "ok"
        ),
        key=lambda a: -a["risk_score"],
    )
    return RestBodies(
        etag=f"{outlook.generated_at:.3f}-{outlook.model.label}",
        # ISA-L's gzip: 20 ms for the 1,000-server body where zlib's level 1 took 80.
        predictions_gzip=igzip.compress(msgspec.json.encode(predictions), compresslevel=1),
        alerts=msgspec.json.encode({**head, "count": len(alerts), "alerts": alerts}),
        servers={name: {**head, "server_name": name, **s} for name, s in servers.items()},
    )


def _servers(outlook: Outlook, spec: ModelSpec) -> dict[str, dict[str, Any]]:
    """Per server: profile, last seen, current values, forecast (raw JSON) and risk."""
    eligible = outlook.eligible
    forecasts = dict(
        zip(
            eligible.tolist(),
            _forecast_objects(outlook.values[eligible], list(spec.targets), quantile_keys(spec.quantiles)),
            strict=True,
        )
    )
    current = np.round(outlook.current.astype(np.float64), DECIMALS).tolist()
    metrics = outlook.metrics
    source = _SourceObjects(outlook.model.kind, spec.targets)
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(outlook.names):
        cur = current[i]
        r = outlook.risk.for_server(i)
        forecast = forecasts.get(i)
        out[name] = {
            "profile": outlook.profiles[i],
            "last_seen": iso(float(outlook.last_seen[i])),
            "current": {m: (None if v != v else v) for m, v in zip(metrics, cur, strict=True)},
            "forecast": forecast,
            "source": None if forecast is None else source.of(outlook.sources[i]),
            "risk_score": r["risk_score"],
            "alert_level": r["alert_level"],
            "risk": {
                "risk_score": r["risk_score"],
                "alert_level": r["alert_level"],
                "metric": r["metric"] if r["alert_level"] != "ok" or r["risk_score"] > 0 else None,
                "threshold": r["threshold"],
                "minutes_to_threshold": r["minutes_to_crossing"],
            },
        }
    return out


class _SourceObjects:
    """``{target: {bucket: source}}`` as encoded JSON, once per distinct routing of a server."""

    def __init__(self, model_kind: str, targets: tuple[str, ...]) -> None:
        self.names = (model_kind, *CANDIDATES[1:])
        self.targets = targets
        self._made: dict[bytes, msgspec.Raw] = {}

    def of(self, sources: np.ndarray) -> msgspec.Raw:
        """The object of one server's sources [targets, buckets]."""
        key = sources.tobytes()
        made = self._made.get(key)
        if made is None:
            rows = sources.tolist()
            made = self._made[key] = msgspec.Raw(
                msgspec.json.encode(
                    {
                        t: {b: self.names[c] for b, c in zip(BUCKETS, row, strict=True)}
                        for t, row in zip(self.targets, rows, strict=True)
                    }
                )
            )
        return made


def _forecast_objects(values: np.ndarray, targets: list[str], keys: list[str]) -> list[msgspec.Raw]:
    """Per server, ``{target: {"p10": [...], ...}, ...}`` as encoded JSON.

    Args:
        values: Array [n, targets, horizon, quantiles].
        targets: Target names, in ``values`` order.
        keys: Quantile keys, in ``values`` order.
    """
    n, n_targets, horizon, n_quantiles = values.shape
    arrays = json_arrays(values.transpose(0, 1, 3, 2).reshape(-1, horizon), DECIMALS)
    before = _array_prefixes(tuple(targets), tuple(keys))
    per = n_targets * n_quantiles
    out = []
    for i in range(n):
        parts = arrays[i * per : (i + 1) * per]
        out.append(msgspec.Raw(b"".join(p for pair in zip(before, parts, strict=True) for p in pair) + b"}}"))
    return out


@functools.cache
def _array_prefixes(targets: tuple[str, ...], keys: tuple[str, ...]) -> list[bytes]:
    """What goes before each array: '{"t1":{"p10":', ',"p50":', ..., '},"t2":{"p10":', ..."""
    before = []
    for j, target in enumerate(targets):
        for k, key in enumerate(keys):
            lead = (b"{" if j == 0 else b"},") + msgspec.json.encode(target) + b":{" if k == 0 else b","
            before.append(lead + msgspec.json.encode(key) + b":")
    return before
