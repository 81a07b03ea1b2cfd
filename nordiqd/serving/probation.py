"""Probation: a new champion scored live beside its predecessor, and rolled back by itself.

After a promotion (the gate's or a forced one) that replaced a model, the accuracy
thread calls ``at_issue`` at every issue point, after the served forecast is kept:

- **start**: the model served is a version whose newest promotion-log entry is
  ``promoted`` or ``forced`` with a ``previous`` model, and that promotion was not judged
  yet. Probation runs from this issue point for ``[promotion] probation_hours`` of data
  time (``ends``).
- **while it runs**: the predecessor, loaded once off to the side (``ModelSlot.
  load_shadow``), forecasts the same snapshot, kept in the ledger with kind ``shadow``:
  both are scored on the same issue points and steps; ``/admin/accuracy`` lists it.
- **at the first issue point at or after ``ends``**: the live MASE of both over
  ``[started, ends)``. When the champion's exceeds the predecessor's x (1 +
  ``rollback_tolerance``), ``current`` points back to the predecessor and the log says
  ``rolled_back`` with both figures; the slot's watcher then loads it. Either way the
  promotion is judged and does not start again.

The served model changing during probation (another promotion, a rollback by hand)
drops it, as does a restart with ``probation_hours = 0``. A failure (the predecessor
missing, no scores to compare) is logged and ends probation: scoring and forecasting go
on. The state lives in ``state/probation.json``, written atomically at every change, so
a restart resumes it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import msgspec

from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.config import Config
from nordiqd.durable import write_atomic
from nordiqd.model import artifacts
from nordiqd.predict.windows import WindowSnapshot
from nordiqd.promotion.log import PromotionLog
from nordiqd.serving.outlook import forecast_snapshot
from nordiqd.serving.slot import ModelSlot, ServedModel

log = logging.getLogger(__name__)

__all__ = ["FILE", "Probation", "ProbationState"]

FILE = "probation.json"
Verdict = Literal["kept", "rolled_back", "dropped", "failed"]


class ProbationState(msgspec.Struct, frozen=True, kw_only=True):
    """One promotion's probation.

    Attributes:
        champion: The model promoted.
        predecessor: The model it replaced, forecasting in shadow.
        promoted_at: The promotion's log entry ``at``: which promotion this is.
        started: First issue point of probation (data time, epoch seconds).
        ends: ``started`` + ``probation_hours`` (data time).
        verdict: None while it runs; then ``kept``, ``rolled_back``, ``dropped`` (the
            served model changed) or ``failed``.
        figures: The live MASE of both when judged.
    """

    champion: str
    predecessor: str
    promoted_at: str
    started: int
    ends: int
    verdict: Verdict | None = None
    figures: dict[str, float | None] = msgspec.field(default_factory=dict)


class Probation:
    """Runs probation from the accuracy thread; see the module docstring.

    Args:
        config: The daemon's configuration ([promotion], state and models folders).
        live: The live accuracy the shadow forecasts are kept in and judged from.
        slot: Loads the predecessor without serving it.
    """

    def __init__(self, config: Config, live: LiveAccuracy, slot: ModelSlot) -> None:
        self.config = config
        self.live = live
        self.slot = slot
        self.path = Path(config.state_dir) / FILE
        self.promotions = PromotionLog(config.state_dir)
        self.state = self._load()
        self._shadow: ServedModel | None = None

    def at_issue(self, at: int, snap: WindowSnapshot, served: ServedModel | None) -> None:
        """Start, continue or judge probation at issue point ``at`` (``snap``: its windows)."""
        hours = self.config.promotion.probation_hours
        state = self.state
        if state is not None and state.verdict is None:
            if not hours:
                self._end(state, "dropped", "[promotion] probation_hours is 0 now")
            elif served is None or served.version != state.champion:
                self._end(state, "dropped", f"{served.version if served else 'the baseline'} serves now")
            elif at >= state.ends:
                self._judge(state)
                return
            else:
                self._forecast(at, snap, state)
                return
        if not hours or served is None:
            return
        entry = next((e for e in reversed(self.promotions.entries()) if e.version == served.version), None)
        if entry is None or entry.decision not in ("promoted", "forced") or entry.previous is None:
            return
        if self.state is not None and self.state.promoted_at >= entry.at:
            return  # judged (or dropped) already
        started = ProbationState(
            champion=served.version,
            predecessor=entry.previous,
            promoted_at=entry.at,
            started=at,
            ends=at + int(round(hours * 3600)),
        )
        self._save(started)
        log.info(
            "probation of %s beside %s until %d (data time)",
            started.champion,
            started.predecessor,
            started.ends,
        )
        self._forecast(at, snap, started)

    def _forecast(self, at: int, snap: WindowSnapshot, state: ProbationState) -> None:
        try:
            if self._shadow is None or self._shadow.version != state.predecessor:
                self._shadow = self.slot.load_shadow(state.predecessor)
            values, eligible, _ = forecast_snapshot(self.config, snap, self._shadow, lambda: False)
        except Exception as exc:
            log.exception("probation of %s: %s cannot forecast in shadow", state.champion, state.predecessor)
            self._end(state, "failed", f"{state.predecessor} cannot forecast in shadow: {exc}")
            return
        if eligible.size:
            self.live.issue(
                at,
                state.predecessor,
                "shadow",
                [snap.names[i] for i in eligible],
                values[eligible],
                snap.windows[eligible],
            )

    def _judge(self, state: ProbationState) -> None:
        report = self.live.report(since=state.started, until=state.ends, hours=False)
        mase = {(v.version, v.kind): v.mase for v in report.versions}
        champion, predecessor = mase.get((state.champion, "tft")), mase.get((state.predecessor, "shadow"))
        figures = {"champion": champion, "predecessor": predecessor}
        if champion is None or predecessor is None:
            self._end(state, "failed", f"no live MASE to compare ({figures})", figures)
            return
        tolerance = self.config.promotion.rollback_tolerance
        limit = predecessor * (1 + tolerance)
        compared = (
            f"live MASE of {state.champion} {champion:.4f} vs {state.predecessor} (shadow) {predecessor:.4f} "
            f"x (1 + {tolerance:g}) = {limit:.4f} over probation"
        )
        if champion <= limit:
            self._end(state, "kept", compared, figures)
            return
        try:
            artifacts.point_current(self.config.models_dir, state.predecessor)
        except Exception as exc:
            log.exception(
                "probation of %s: cannot point current back to %s", state.champion, state.predecessor
            )
            self._end(state, "failed", f"rollback to {state.predecessor} failed: {exc}", figures)
            return
        self.promotions.rolled_back(
            state.champion,
            state.predecessor,
            [f"{compared}: worse, rolled back"],
            {
                "champion": {"version": state.champion, "mase": champion},
                "predecessor": {"version": state.predecessor, "mase": predecessor},
                "rollback_tolerance": tolerance,
                "since": state.started,
                "until": state.ends,
            },
        )
        self._end(state, "rolled_back", compared, figures)

    def _end(
        self,
        state: ProbationState,
        verdict: Verdict,
        why: str,
        figures: dict[str, float | None] | None = None,
    ) -> None:
        log.info("probation of %s ends (%s): %s", state.champion, verdict, why)
        self._shadow = None
        self._save(msgspec.structs.replace(state, verdict=verdict, figures=figures or {}))

    def _save(self, state: ProbationState) -> None:
        self.state = state
        write_atomic(self.path, msgspec.json.encode(state))

    def _load(self) -> ProbationState | None:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=ProbationState)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("%s unreadable, no probation resumed: %s", self.path, exc)
            return None
