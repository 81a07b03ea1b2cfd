"""The trainer's side of promotion: judge a finished job's candidate, or serve one by hand.

A job scores its candidate on the holdout and reports the figures; ``Promoter.judge``
applies the gate (``nordiqd.promotion.gate``), points ``current`` at the candidate only
when it passes, and logs the decision either way. ``Promoter.force`` is ``POST
/admin/promote``: it serves any version on disk that verifies, past the gate, and logs
it ``forced``. The predictor's watcher loads whatever ``current`` names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ipc import messages as m
from nordiqd.model import artifacts
from nordiqd.model.errors import ModelError, ModelLoadError
from nordiqd.promotion.gate import judge
from nordiqd.promotion.log import Decision, Promotion, PromotionLog, now_iso
from nordiqd.retraining import PromotionConfig

log = logging.getLogger(__name__)

_FIGURES = ("holdout", "candidate", "champion", "baseline")


class UnknownVersion(LookupError):
    """``POST /admin/promote`` named a version that is not on disk."""


class CannotPromote(Exception):
    """The version exists but cannot be served now (unusable, or already served)."""


class Promoter:
    """Applies the gate and the promotions by hand, and writes the log.

    Args:
        promotions: the log.
        rules: the ``[promotion]`` section.
        models_dir: where the versions and ``current`` live.
        wall: the wall clock, for the log's times.
    """

    def __init__(
        self,
        promotions: PromotionLog,
        rules: PromotionConfig,
        models_dir: str,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.log = promotions
        self._rules = rules
        self._models = models_dir
        self._wall = wall

    def judge(self, job: m.JobStatus, gate: dict[str, Any] | None) -> tuple[bool, dict[str, Any]]:
        """Decide on ``job``'s candidate; return whether it now serves, and the job's ``gate``."""
        version = Path(job.model_path or "").name
        figures = {k: (gate or {}).get(k) for k in _FIGURES}
        verdict = judge(gate or {}, self._rules)
        promoted, reasons = verdict.promoted, list(verdict.reasons)
        current = artifacts.current_version(self._models)
        judged = (figures["champion"] or {}).get("version")
        if promoted and judged is not None and current != judged:
            promoted = False
            reasons.append(f"the served model changed during the gate ({judged} -> {current}): not promoted")
        if promoted:
            try:
                artifacts.point_current(self._models, version)
            except (OSError, ModelLoadError) as exc:
                log.exception("cannot point current at %s", version)
                promoted = False
                reasons.append(f"current could not be pointed at it: {exc}")
        decision: Decision = "promoted" if promoted else "rejected"
        self.log.append(
            Promotion(
                at=now_iso(self._wall()),
                version=version,
                previous=current,
                decision=decision,
                trigger=job.trigger,
                reasons=reasons,
                gate=figures,
                job_id=job.job_id,
            )
        )
        return promoted, {"decision": decision, "reasons": reasons, **figures}

    def force(self, version: str) -> Promotion:
        """Serve ``version`` past the gate and log it ``forced``.

        Raises:
            UnknownVersion: No such version on disk.
            CannotPromote: It fails verification, or it is already served.
        """
        if version not in artifacts.list_versions(self._models):
            raise UnknownVersion(f"no model version {version!r} in {self._models}")
        current = artifacts.current_version(self._models)
        if version == current:
            raise CannotPromote(f"{version} is already the served model")
        try:
            manifest = artifacts.verify(Path(self._models) / version)
        except ModelError as exc:
            raise CannotPromote(f"{version} cannot be served: {exc}") from None
        artifacts.point_current(self._models, version)
        reasons = ["promoted by hand (POST /admin/promote), past the gate"]
        gate = manifest.get("gate") if isinstance(manifest.get("gate"), dict) else None
        earlier = next((p for p in reversed(self.log.entries()) if p.version == version), None)
        if earlier is not None and earlier.decision == "rejected":
            reasons.append("the gate had rejected it: " + "; ".join(earlier.reasons))
        return self.log.append(
            Promotion(
                at=now_iso(self._wall()),
                version=version,
                previous=current,
                decision="forced",
                trigger="manual",
                reasons=reasons,
                gate={k: (gate or {}).get(k) for k in _FIGURES},
            )
        )
