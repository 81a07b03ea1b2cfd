"""One forecast pass as one immutable value: the outlook, its REST bodies, its duration."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from nordiqd.config import Config
from nordiqd.predict.windows import RollingWindows, WindowSnapshot
from nordiqd.serving.outlook import Outlook, look_ahead, outlook_of
from nordiqd.serving.rest_bodies import RestBodies, encode
from nordiqd.serving.routes import Router
from nordiqd.serving.slot import ServedModel


@dataclass(frozen=True)
class ForecastPass:
    """Everything one pass produced; requests are answered from it alone.

    Attributes:
        outlook: Every server's forecast and risk, and the model they came from.
        bodies: The REST bodies encoded from ``outlook``.
        duration_s: Seconds the pass took, snapshot to gzip.
    """

    outlook: Outlook
    bodies: RestBodies
    duration_s: float


def run_pass(
    config: Config,
    windows: RollingWindows,
    served: ServedModel | None,
    now: float,
    cancelled: Callable[[], bool],
    router: Router | None = None,
) -> ForecastPass:
    """Forecast every server and encode the bodies (``outlook.look_ahead``, ``rest_bodies.encode``).

    Raises:
        ForecastCancelled: ``cancelled`` said a newer model was swapped in mid-pass.
    """
    return timed(config, lambda: look_ahead(config, windows, served, now, cancelled, router))


def snapshot_pass(
    config: Config,
    metrics: tuple[str, ...],
    snap: WindowSnapshot,
    served: ServedModel | None,
    at: float,
    router: Router | None = None,
) -> ForecastPass:
    """A pass over windows as they stood at an earlier moment (an issue point), never cancelled.

    Args:
        config: The daemon's configuration.
        metrics: Every metric of the windows (the columns of ``snap.current``).
        snap: The target windows as they stood right before ``at``.
        served: The model served at ``at``; None for the baseline.
        at: The issue point, the pass's ``generated_at``.
        router: Routes each series' buckets (None: the model serves every step).
    """
    return timed(config, lambda: outlook_of(config, metrics, snap, served, at, lambda: False, router))


def timed(config: Config, outlook: Callable[[], Outlook]) -> ForecastPass:
    """Make the outlook, encode its bodies and time both."""
    started = time.monotonic()
    made = outlook()
    bodies = encode(made, config.model)
    return ForecastPass(outlook=made, bodies=bodies, duration_s=time.monotonic() - started)
