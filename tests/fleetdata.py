"""Feeding a test daemon with simulated fleet history through the real ingest client."""

from __future__ import annotations

import time

from nordiqd.agent import IngestClient
from nordiqd.simulate import SimulatedFleet

# A gate every finished job passes: tests of serving, reloads and jobs need the new
# model served whatever a tiny model's holdout figures are (tests/integration/
# test_promotion.py tests the gate itself).
OPEN_GATE = {"holdout_hours": 6, "tolerance": 10.0, "must_beat_baseline": False}

TINY_MODEL = {
    "encoder_steps": 24,
    "horizon_steps": 6,
    "hidden_size": 8,
    "attention_heads": 1,
    "hidden_continuous_size": 4,
    "batch_size": 32,
    "max_windows_per_epoch": 128,
}


def hourly_accuracy(step: int) -> dict[str, dict[str, object]]:
    """Config sections of the live-accuracy tests: the tiny model at ``step`` seconds, a
    forecast kept for scoring every step, and little data needed to train. The gate's
    holdout is one horizon and any candidate is served: these tests score what serves,
    and ``test_promotion.py`` tests the gate."""
    return {
        "model": {**TINY_MODEL, "step_seconds": step},
        "predictor": {"min_history_steps": 6},
        "training": {"min_records": 500},
        "accuracy": {"issue_every_s": step},
        "promotion": {
            "holdout_hours": TINY_MODEL["horizon_steps"] * step / 3600,
            "must_beat_baseline": False,
        },
    }


def backfill(
    endpoint: str,
    *,
    servers: int = 8,
    days: float = 2.0,
    seed: int = 1,
    interval_s: float = 300.0,
    names: list[str] | None = None,
    end: float | None = None,
) -> int:
    """Send ``days`` of history for a simulated fleet ending at ``end`` (now); return records sent."""
    fleet = SimulatedFleet(size=servers, seed=seed, interval_s=interval_s)
    end = time.time() if end is None else end
    sent = 0
    with IngestClient(endpoint, timeout_s=10) as client:
        for batch in fleet.batches(end - days * 86400, end, max_records=1000):
            records = batch.to_records()
            if names is not None:
                records = [r for r in records if r["server_name"] in names]
                if not records:
                    continue
            sent += client.send(records).accepted
    return sent
