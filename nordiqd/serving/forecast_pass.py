"""One forecast pass as one immutable value: the outlook, its REST bodies, its duration."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from nordiqd.config import Config
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.outlook import Outlook, look_ahead
from nordiqd.serving.rest_bodies import RestBodies, encode
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
) -> ForecastPass:
    """Forecast every server and encode the bodies (``outlook.look_ahead``, ``rest_bodies.encode``).

    Raises:
        ForecastCancelled: ``cancelled`` said a newer model was swapped in mid-pass.
    """
    started = time.monotonic()
    outlook = look_ahead(config, windows, served, now, cancelled)
    bodies = encode(outlook, config.model)
    return ForecastPass(outlook=outlook, bodies=bodies, duration_s=time.monotonic() - started)
