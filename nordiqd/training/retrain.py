"""The ``[retrain]`` triggers: when the trainer starts a job by itself, and why.

Four triggers, checked in this order, each off when its setting is 0 (or ""):

- ``schedule``: a cron expression (croniter), in UTC wall time. A run that comes due
  stays due until a job can start (one job however many runs it missed).
- ``data``: at least ``min_new_records`` records arrived since the last job's data (the
  buffer's record count now, less the count when the last job started).
- ``skill``: the champion's live skill (``GET /admin/accuracy``: its MAE over seasonal
  naive's, in data time) pooled over the last ``skill_window_hours`` scored is above
  ``skill_threshold``, and the champion served that whole window.
- ``coverage``: the champion's live p10-p90 coverage over the same window is outside
  ``coverage_range``.

A trigger that fires while a job runs, or within ``cooldown_hours`` of the last job's
start, waits (``waiting`` says why). Pure: the trainer role hands in the wall clock, the
last job, the buffer's record count and the live scores it asked the predictor for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from ipc import messages as m
from nordiqd.retraining import RetrainConfig


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Live:
    """The champion's live scores over the trailing window, as the predictor reported them."""

    version: str | None = None
    skill: float | None = None
    coverage: float | None = None
    covered: bool = False
    scored_through: str | None = None
    error: str | None = None


def live_scores(report: dict[str, Any], champion: str | None, since: int | None, slack_s: int) -> Live:
    """The champion's figures from an ``/admin/accuracy`` body over ``[since, ...)``.

    ``covered`` is True when the champion's first scored step in the window lies within
    ``slack_s`` of ``since`` (it served the whole window).
    """
    through = report.get("scored_through")
    entry = next(
        (v for v in report.get("versions", []) if v.get("version") == champion and v.get("kind") != "shadow"),
        None,
    )
    if entry is None or since is None:
        return Live(version=champion, scored_through=through)
    first = _parse(entry.get("from"))
    covered = first is not None and first.timestamp() - since <= slack_s
    return Live(champion, entry.get("skill"), entry.get("coverage"), covered, through)


class RetrainTriggers:
    """Decides, at each check, whether an automatic job is due and which trigger it has.

    Args:
        settings: the ``[retrain]`` section.
        wall: the wall clock (zone-aware).
    """

    def __init__(self, settings: RetrainConfig, wall: Callable[[], datetime]) -> None:
        self.settings = settings
        self._wall = wall
        self.next_run = self._after(wall())
        self.schedule_due = False
        self.live = Live()
        self.new_records: int | None = None
        self.waiting: str | None = None

    def _after(self, moment: datetime) -> datetime | None:
        if not self.settings.schedule:
            return None
        nxt: datetime = croniter(self.settings.schedule, moment.astimezone(UTC)).get_next(datetime)
        return nxt

    @property
    def wants_live(self) -> bool:
        """Whether a trigger reads the champion's live scores (so the predictor is asked)."""
        return bool(self.settings.skill_threshold or self.settings.coverage_range)

    def cooldown_until(self, last: m.JobStatus | None) -> datetime | None:
        """When the cooldown after the last job's start ends (None: no job, or no cooldown)."""
        start = _parse(last.queued_at) if last is not None else None
        if start is None or not self.settings.cooldown_hours:
            return None
        return start + timedelta(hours=self.settings.cooldown_hours)

    def fired(self) -> list[m.JobTrigger]:
        """The triggers whose condition holds now, in order."""
        s, live = self.settings, self.live
        out: list[m.JobTrigger] = []
        if self.schedule_due:
            out.append("schedule")
        if s.min_new_records and self.new_records is not None and self.new_records >= s.min_new_records:
            out.append("data")
        if s.skill_threshold and live.covered and live.skill is not None and live.skill > s.skill_threshold:
            out.append("skill")
        band = s.coverage_range
        if band and live.covered and live.coverage is not None and not band[0] <= live.coverage <= band[1]:
            out.append("coverage")
        return out

    def due(self, last: m.JobStatus | None, buffer_records: int | None) -> m.JobTrigger | None:
        """The trigger to start a job with now, or None (nothing fired, or it waits).

        ``buffer_records`` is the buffer's record count (None: not counted, the data
        trigger being off).
        """
        now = self._wall()
        if self.next_run is not None and now >= self.next_run:
            self.schedule_due = True
            self.next_run = self._after(now)
        base = last.buffer_records if last is not None and last.buffer_records is not None else 0
        self.new_records = None if buffer_records is None else buffer_records - base
        fired = self.fired()
        if not fired:
            self.waiting = None
            return None
        if last is not None and last.status in m.ACTIVE_JOB_STATES:
            self.waiting = f"{fired[0]} fired: waits for job {last.job_id} to end"
            return None
        until = self.cooldown_until(last)
        if until is not None and now < until:
            self.waiting = f"{fired[0]} fired: waits for the cooldown to end at {_iso(until)}"
            return None
        self.waiting = None
        return fired[0]

    def started(self, trigger: m.JobTrigger) -> None:
        """A job with ``trigger`` started: a due scheduled run is consumed by it."""
        if trigger == "schedule":
            self.schedule_due = False

    def state(self, last: m.JobStatus | None) -> dict[str, Any]:
        """The ``retrain`` block of ``/admin/training-stats``."""
        s, live = self.settings, self.live
        return {
            "schedule": s.schedule,
            "next_run": _iso(self.next_run),
            "cooldown_hours": s.cooldown_hours,
            "cooldown_until": _iso(self.cooldown_until(last)),
            "epochs": s.epochs,
            "incremental": s.incremental,
            "waiting": self.waiting,
            "triggers": {
                "schedule": {"on": bool(s.schedule), "due": self.schedule_due},
                "data": {
                    "on": bool(s.min_new_records),
                    "min_new_records": s.min_new_records,
                    "new_records": self.new_records,
                },
                "skill": {
                    "on": bool(s.skill_threshold),
                    "threshold": s.skill_threshold,
                    "window_hours": s.skill_window_hours,
                    "version": live.version,
                    "skill": live.skill,
                    "window_covered": live.covered,
                    "scored_through": live.scored_through,
                    "error": live.error,
                },
                "coverage": {
                    "on": bool(s.coverage_range),
                    "range": list(s.coverage_range),
                    "coverage": live.coverage,
                    "window_covered": live.covered,
                },
            },
        }
