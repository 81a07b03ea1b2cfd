"""What a simulation run is asked for: ``SimulationOptions``.

The CLI and the demo build one; ``sender.run_simulation`` runs it and
``sinks.open_sink`` picks its destination from it. It holds plain values only,
so every part of the simulator can import it without importing another part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Via = Literal["zmq", "rest", "file"]


@dataclass(frozen=True)
class SimulationOptions:
    """Everything a run needs; the CLI builds one from its arguments and the config.

    Attributes:
        servers: fleet size.
        interval_s: seconds between two samples of one server (simulated time).
        seed: the seed of every random draw.
        scenarios: scripted incidents, ``scenarios.SYNTAX`` specs; a relative start
            (``@+30m``) counts from the simulated now (where live begins).
        backfill_days: history sent first, ``[now - days, now)``.
        live: stream live samples after the backfill.
        speed: simulated seconds per wall second in live mode.
        duration_s: wall seconds of live streaming; None: until ``stop``.
        start: the simulated now (epoch seconds); None: the clock's now, moved back
            by ``duration_s * (speed - 1)`` when speed > 1 so live never runs ahead.
        batch_size: most records per batch.
        metrics: metric names the daemon accepts; None: every simulated metric.
        cap_at_clock: never let simulated time pass the clock (the daemon refuses
            future timestamps): a speed above 1 runs until it catches up with the
            clock, then goes on at 1x.
        via: "zmq", "rest" or "file".
        endpoint: zmq ingest endpoint (via zmq).
        url: API base URL (via rest); ``api_key`` its key.
        out: output file for via "file"; ``.parquet`` or JSON lines.
        timeout_s: seconds to wait for one answer; ``attempts`` per batch.
    """

    servers: int = 20
    interval_s: float = 5.0
    seed: int = 0
    scenarios: tuple[str, ...] = ()
    backfill_days: float = 0.0
    live: bool = True
    speed: float = 1.0
    duration_s: float | None = None
    start: float | None = None
    batch_size: int = 1000
    metrics: tuple[str, ...] | None = None
    cap_at_clock: bool = False
    via: Via = "zmq"
    endpoint: str = ""
    url: str = ""
    api_key: str = ""
    out: str = ""
    timeout_s: float = 10.0
    attempts: int = 6
