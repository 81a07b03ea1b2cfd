"""The ``[promotion]`` and ``[retrain]`` sections: when a new model may serve, and when
the trainer starts a job by itself (``nordiqd.promotion``, ``nordiqd.training.retrain``).
Each says what makes it unusable (``problem``), so the loader names the key.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from croniter import croniter
from msgspec import Meta


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class PromotionConfig(_Section, frozen=True):
    """[promotion]: the gate a finished job's model must pass before it is served."""

    holdout_hours: Annotated[float, Meta(gt=0, le=24 * 366)] = 24.0  # newest hours, not trained on
    tolerance: Annotated[float, Meta(gt=-1, le=100)] = 0.02  # MASE <= champion's x (1 + tolerance)
    must_beat_baseline: bool = True  # and MASE below seasonal naive's
    probation_hours: Annotated[float, Meta(ge=0, le=24 * 366)] = (
        24.0  # data time beside the predecessor; 0 off
    )
    rollback_tolerance: Annotated[float, Meta(gt=-1, le=100)] = (
        0.05  # roll back if live MASE > its x (1 + this)
    )

    def problem(self, horizon_h: float) -> tuple[str, str] | None:
        """The (key, reason) that makes the gate unusable for a ``horizon_h`` forecast, else None."""
        if self.holdout_hours < horizon_h:
            return "promotion.holdout_hours", f"must cover one forecast horizon ({horizon_h:g} h)"
        return None


class RetrainConfig(_Section, frozen=True):
    """[retrain]: the jobs the trainer starts by itself; every threshold 0 (or "") is off."""

    schedule: Annotated[str, Meta(max_length=200)] = "0 2 * * 0"  # cron, UTC; the manual's Sunday 2 AM
    min_new_records: Annotated[int, Meta(ge=0, le=10**15)] = 0  # records since the last job's data
    skill_threshold: Annotated[float, Meta(ge=0, le=1e6)] = 0.0  # champion's live skill above it
    skill_window_hours: Annotated[float, Meta(ge=0, le=24 * 366)] = 6.0  # ... over this much data time
    coverage_range: Annotated[list[Annotated[float, Meta(ge=0, le=1)]], Meta(max_length=2)] = msgspec.field(
        default_factory=list
    )  # [low, high] of p10-p90 coverage
    cooldown_hours: Annotated[float, Meta(ge=0, le=24 * 366)] = 6.0  # between two automatic jobs
    epochs: Annotated[int, Meta(ge=1, le=100_000)] = 5
    incremental: bool = True

    def problem(self) -> tuple[str, str] | None:
        """The first (key, reason) that makes these triggers unusable, else None."""
        if self.schedule and not croniter.is_valid(self.schedule):
            return "retrain.schedule", f"{self.schedule!r} is not a cron expression"
        band = self.coverage_range
        if band and not (len(band) == 2 and 0 <= band[0] < band[1] <= 1):
            return "retrain.coverage_range", f"must be [low, high] with 0 <= low < high <= 1, not {band}"
        # Both live triggers pool over this window; at 0 they would never see a score.
        for key, on in (("skill_threshold", self.skill_threshold), ("coverage_range", band)):
            if on and not self.skill_window_hours:
                return "retrain.skill_window_hours", f"must be above 0 when retrain.{key} is set"
        return None
