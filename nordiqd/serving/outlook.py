"""Every server's forecast and risk at one moment, from one model: the numbers of a pass.

``look_ahead`` takes one snapshot of the rolling windows and one reference to the served
model; ``outlook_of`` forecasts every server of a snapshot with enough history (the TFT,
or the naive baseline when no model is served), clips the forecasts to each metric's
valid range, routes each series' lead buckets to their best candidate when a ``Router``
is given (``serving.routes``) and assesses the risk of what is served. An issue
point's pass (``serving.cycle``) runs ``outlook_of`` on the windows as they stood at the
issue point; ``forecast_snapshot`` is its forecast-and-clip part (the model's own
forecast, which the ledger keeps), which the accuracy thread runs itself only when that
pass could not be had. The ``Outlook`` it returns is plain arrays; encoding them is
``rest_bodies``' job and the Prometheus text ``exposition``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.accuracy.routing import CANDIDATES, STATISTICAL
from nordiqd.config import Config
from nordiqd.predict.naive import naive_forecast
from nordiqd.predict.risk import Assessment, assess, clip
from nordiqd.predict.windows import RollingWindows, WindowSnapshot
from nordiqd.serving.routes import Router, route
from nordiqd.serving.slot import ServedModel


class ModelIdentity(msgspec.Struct, frozen=True):
    """Which model a pass forecast with: ``{"kind": "tft", "version": ...}`` in the bodies."""

    kind: Literal["tft", "baseline"]
    version: str | None

    @property
    def label(self) -> str:
        """The version, or ``baseline``: what etags and Prometheus labels carry."""
        return self.version or "baseline"


BASELINE = ModelIdentity("baseline", None)


@dataclass(frozen=True)
class Outlook:
    """Every server's forecast and risk from one pass, in snapshot row order.

    Attributes:
        generated_at: Epoch seconds the pass was asked for.
        model: The model every forecast came from.
        names: Server names.
        profiles: Profile of each server.
        last_seen: Array [n], epoch seconds of each server's newest record.
        metrics: The columns of ``current``.
        current: Array [n, len(metrics)], the newest raw sample of every metric.
        forecast_start: Epoch seconds of the first forecast step; None without servers.
        values: Array [n, targets, horizon, quantiles], clipped, as served (routed);
            NaN for servers without enough history.
        eligible: Rows that were forecast (enough history), ascending.
        risk: Risk score and alert level of every server.
        raw: The model's own forecasts, ``values`` before routing (the same array when
            nothing was routed): what the accuracy ledger keeps for the model.
        sources: Array [n, targets, buckets] int8, the candidate
            (``accuracy.routing.CANDIDATES``) each lead bucket was served from.
    """

    generated_at: float
    model: ModelIdentity
    names: list[str]
    profiles: list[str]
    last_seen: np.ndarray
    metrics: tuple[str, ...]
    current: np.ndarray
    forecast_start: float | None
    values: np.ndarray
    eligible: np.ndarray
    risk: Assessment
    raw: np.ndarray
    sources: np.ndarray

    @property
    def forecast_count(self) -> int:
        """Servers forecast in this pass."""
        return int(self.eligible.size)


def forecast_snapshot(
    config: Config,
    snap: WindowSnapshot,
    served: ServedModel | None,
    cancelled: Callable[[], bool],
) -> tuple[np.ndarray, np.ndarray, ModelIdentity]:
    """Forecast every server of a target snapshot with enough history, clipped.

    The forecast a pass serves and the one the accuracy ledger keeps at an issue point
    both come from here, so what is scored is what was served.

    Args:
        config: The daemon's configuration ([model], [predictor]).
        snap: Windows of ``[model] targets``, in that order.
        served: The model to forecast with; None for the baseline.
        cancelled: Polled between batches (see ``look_ahead``).

    Returns:
        ``values`` [n, targets, horizon, quantiles] (NaN for rows not forecast), the
        ``eligible`` rows that were, ascending, and the model they came from.
    """
    spec = config.model
    values = np.full(
        (len(snap.names), len(spec.targets), spec.horizon_steps, len(spec.quantiles)), np.nan, np.float32
    )
    eligible = np.flatnonzero(snap.filled_steps >= config.predictor.min_history_steps)
    model = ModelIdentity("tft", served.version) if served is not None else BASELINE
    if eligible.size:
        history = snap.windows[eligible]
        if served is not None:
            fc = served.forecaster.forecast(
                history,
                [snap.names[i] for i in eligible],
                [snap.profiles[i] for i in eligible],
                snap.last_bucket_start[eligible],
                cancelled=cancelled,
            )
            values[eligible] = clip(fc.values, list(spec.targets))
        else:
            values[eligible] = naive_forecast(history, spec)
    return values, eligible, model


def look_ahead(
    config: Config,
    windows: RollingWindows,
    served: ServedModel | None,
    now: float,
    cancelled: Callable[[], bool],
    router: Router | None = None,
) -> Outlook:
    """Snapshot the windows at ``now``, then ``outlook_of`` the snapshot.

    Args:
        config: The daemon's configuration ([model], [predictor], [alerts]).
        windows: The rolling windows; snapshotted once, at ``now``.
        served: The model to forecast with, taken once by the caller; None for the baseline.
        now: Epoch seconds the pass is for.
        cancelled: Polled between batches: True abandons the pass with
            ``ForecastCancelled`` (a newer model was swapped in).
        router: Routes each series' buckets (None: the model serves every step).
    """
    snap = windows.snapshot(list(config.model.targets), now)
    return outlook_of(config, tuple(windows.metrics), snap, served, now, cancelled, router)


def outlook_of(
    config: Config,
    metrics: tuple[str, ...],
    snap: WindowSnapshot,
    served: ServedModel | None,
    generated_at: float,
    cancelled: Callable[[], bool],
    router: Router | None = None,
) -> Outlook:
    """Forecast (TFT or baseline), clip, route and assess every server of a target snapshot.

    Args:
        config: The daemon's configuration ([model], [predictor], [alerts]).
        metrics: Every metric of the windows (the columns of ``snap.current``).
        snap: Windows of ``[model] targets``, in that order.
        served: The model to forecast with; None for the baseline.
        generated_at: Epoch seconds the pass is for.
        cancelled: Polled between batches (see ``look_ahead``).
        router: Routes each series' buckets (None: the model serves every step).

    Returns:
        The pass's numbers.
    """
    cfg, spec = config, config.model
    n = len(snap.names)
    raw, eligible, model = forecast_snapshot(config, snap, served, cancelled)
    values, sources = _routed(config, snap, raw, eligible, router)
    risk = assess(
        values,
        snap.current,
        targets=list(spec.targets),
        metrics=list(metrics),
        quantiles=spec.quantiles,
        warning=cfg.alerts.warning,
        critical=cfg.alerts.critical,
        step_seconds=spec.step_seconds,
        profiles=snap.profiles,
        by_profile={p: (t.warning, t.critical) for p, t in cfg.alerts.profiles.items()},
    )
    return Outlook(
        generated_at=generated_at,
        model=model,
        names=snap.names,
        profiles=snap.profiles,
        last_seen=snap.last_seen,
        metrics=metrics,
        current=snap.current,
        forecast_start=float(snap.last_bucket_start[0]) + spec.step_seconds if n else None,
        values=values,
        eligible=eligible,
        risk=risk,
        raw=raw,
        sources=sources,
    )


def _routed(
    config: Config, snap: WindowSnapshot, raw: np.ndarray, eligible: np.ndarray, router: Router | None
) -> tuple[np.ndarray, np.ndarray]:
    """The served values and each bucket's source: ``raw`` itself where nothing is routed."""
    spec = config.model
    sources = np.zeros((len(snap.names), len(spec.targets), len(BUCKETS)), dtype=np.int8)
    names = [snap.names[i] for i in eligible]
    if router is None or not names:
        return raw, sources
    start = float(snap.last_bucket_start[0]) + spec.step_seconds
    challenger = router.challenger(names, start) if router.challenger is not None else None
    # A series the challenger has no forecast for (not fitted yet) goes to the best of the rest.
    absent = np.zeros((len(names), len(spec.targets), len(CANDIDATES)), dtype=bool)
    absent[..., STATISTICAL] = (
        True if challenger is None else ~np.isfinite(challenger).all(axis=(-1, -2))
    )
    choice = router.choose(names, absent)
    if choice is None:
        return raw, sources
    bands = router.bands(names) if router.bands is not None else None
    if not (choice.any() or router.blend_steps or bands is not None):
        return raw, sources
    routed, used = route(
        snap.windows[eligible], raw[eligible], choice, spec, router.blend_steps, challenger, bands
    )
    sources[eligible] = used
    values = raw.copy()
    values[eligible] = routed
    return values, sources
