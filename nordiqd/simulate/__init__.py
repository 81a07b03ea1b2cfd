"""Deterministic fleet simulator: realistic, physically consistent server metrics.

Two halves, imported in one direction (sending uses generating, never the reverse):

* generating: ``generator.SimulatedFleet`` turns a seed, servers (``servers``,
  ``profiles``), incidents (``incidents``, ``scenarios``) and the metric model
  (``metric_model``, ``noise``, ``lifecycle``) into ``batch.Batch`` columns. It knows
  nothing about how records are sent; this package exports that half.
* sending, behind ``nordiqd simulate`` and the demo: ``options.SimulationOptions`` in,
  ``sender.run_simulation`` over a ``sinks.Sink`` (zmq, REST or a file),
  ``summary.Summary`` out or ``errors.SimulationError``; ``cli`` parses the command
  line and ``console`` prints.

Example:
    >>> from nordiqd.simulate import SimulatedFleet
    >>> fleet = SimulatedFleet(size=50, seed=1, interval_s=5.0,
    ...                        scenarios=["memory_leak:web-003@2026-11-26T14:00Z+6h"])
    >>> for batch in fleet.batches(t0, t1, max_records=1000):
    ...     send(batch.to_records())
"""

from __future__ import annotations

from nordiqd.simulate.batch import Batch
from nordiqd.simulate.generator import SimulatedFleet, epoch
from nordiqd.simulate.incidents import Incident
from nordiqd.simulate.metric_model import METRICS, SWAP_THRESHOLD
from nordiqd.simulate.profiles import PROFILES, Profile, compose
from nordiqd.simulate.scenarios import (
    SCENARIO_KINDS,
    SYNTAX,
    Scenario,
    ScenarioError,
    parse_duration,
    parse_scenario,
)
from nordiqd.simulate.servers import Server

__all__ = [
    "METRICS",
    "PROFILES",
    "SCENARIO_KINDS",
    "SWAP_THRESHOLD",
    "SYNTAX",
    "Batch",
    "Incident",
    "Profile",
    "Scenario",
    "ScenarioError",
    "Server",
    "SimulatedFleet",
    "compose",
    "epoch",
    "parse_duration",
    "parse_scenario",
]
