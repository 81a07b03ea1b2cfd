"""The promotion log: every decision about which model serves, oldest line first.

``state/promotions.jsonl`` holds one JSON object per line and is only ever appended to
(``durable.append_synced``), never rewritten: a gate's verdict (``promoted`` or
``rejected``), a promotion by hand (``forced``) and an automatic rollback
(``rolled_back``, written through ``PromotionLog.rolled_back``) are all kept. A crash
can cut the last line short; the reader skips such a line with a warning.

Any process may append (the trainer does for the gate and ``POST /admin/promote``; the
predictor may for a rollback): a reader notices that the file grew and reads it again.
The module is torch-free and imports nothing of training or serving.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec

from nordiqd.durable import append_synced

log = logging.getLogger(__name__)

Decision = Literal["promoted", "rejected", "forced", "rolled_back"]
DECISIONS: tuple[Decision, ...] = get_args(Decision)
FILE = "promotions.jsonl"


class Promotion(msgspec.Struct, frozen=True, kw_only=True):
    """One decision.

    Attributes:
        at: When (ISO 8601 UTC, seconds, ``Z``).
        version: The model serving after the decision (``promoted``, ``forced``,
            ``rolled_back``), or the candidate turned down (``rejected``).
        previous: The model serving before it (None: the baseline); after a rejection
            it still serves.
        decision: ``promoted``, ``rejected``, ``forced`` or ``rolled_back``.
        trigger: What started it: the job's trigger (``manual``, ``schedule``, ``data``,
            ``skill``, ``coverage``), ``manual`` for a promotion by hand, ``probation``
            for a rollback.
        reasons: One sentence per rule, with the figures it compared.
        gate: The figures: ``candidate``, ``champion`` and ``baseline`` (each None when
            absent), plus ``holdout`` for a gate's verdict.
        job_id: The training job whose candidate it was, if any.
    """

    at: str
    version: str
    previous: str | None
    decision: Decision
    trigger: str
    reasons: list[str]
    gate: dict[str, Any] = msgspec.field(default_factory=dict)
    job_id: str | None = None


def now_iso(moment: datetime | None = None) -> str:
    """``moment`` (default now) as the log writes it."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class PromotionLog:
    """The log file of one data directory, read back whenever another writer grew it."""

    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir) / FILE
        self._entries: list[Promotion] = []
        self._size = -1

    def entries(self) -> list[Promotion]:
        """Every decision, oldest first."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        if size != self._size:
            self._entries = self._read()
            self._size = size
        return list(self._entries)

    def newest(self) -> Promotion | None:
        """The last decision, if any."""
        entries = self.entries()
        return entries[-1] if entries else None

    def counts(self) -> dict[Decision, int]:
        """How many decisions of each kind (every kind present, zeros included)."""
        found = Counter(e.decision for e in self.entries())
        return {d: found[d] for d in DECISIONS}

    def append(self, entry: Promotion) -> Promotion:
        """Write one decision (a single fsynced line) and return it."""
        # After a line cut short by a crash, start a new line: the cut one stays unread alone.
        append_synced(self.path, (b"" if self._ends_a_line() else b"\n") + msgspec.json.encode(entry) + b"\n")
        log.info("promotion log: %s %s (%s)", entry.decision, entry.version, "; ".join(entry.reasons))
        return entry

    def rolled_back(
        self,
        version: str,
        to: str | None,
        reasons: list[str],
        figures: dict[str, Any],
        at: str | None = None,
        trigger: str = "probation",
    ) -> Promotion:
        """Record that ``version`` was taken out of service and ``to`` serves again.

        The entry's ``version`` is ``to`` (None: the baseline) and its ``previous`` the
        model rolled back; ``figures`` holds the live scores of both that decided it
        (empty for a rollback by hand, ``trigger`` ``manual``).
        """
        return self.append(
            Promotion(
                at=at or now_iso(),
                version=to or "baseline",
                previous=version,
                decision="rolled_back",
                trigger=trigger,
                reasons=reasons,
                gate=figures,
            )
        )

    def served_versions(self) -> list[str]:
        """Every model that took over serving, in order (repeats included)."""
        return [e.version for e in self.entries() if e.decision != "rejected" and e.version != "baseline"]

    def served_before(self, version: str, available: Collection[str]) -> str | None:
        """The model that served before ``version`` last took over, by the log.

        Rejected candidates never served, so they are never the answer; a model taken out
        by a rollback is skipped too (serving it again is a promotion, not a rollback), and
        so is one no longer in ``available`` (on disk). None when nothing qualifies.
        """
        served = self.served_versions()
        if version not in served:
            return None
        taken_out = {e.previous for e in self.entries() if e.decision == "rolled_back"}
        last = len(served) - 1 - served[::-1].index(version)
        for earlier in reversed(served[:last]):
            if earlier != version and earlier not in taken_out and earlier in available:
                return earlier
        return None

    def _ends_a_line(self) -> bool:
        try:
            with self.path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                return fh.read(1) == b"\n"
        except OSError:  # no file, or an empty one
            return True

    def _read(self) -> list[Promotion]:
        entries: list[Promotion] = []
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return entries
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(msgspec.json.decode(line, type=Promotion))
            except msgspec.DecodeError as exc:
                # A line cut short by a crash; the lines before and after it still count.
                log.warning("%s line %d unreadable, skipped: %s", self.path, number, exc)
        return entries
