"""ModelSlot: a burst of ``current`` swaps loads only the newest; reloads answer in order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nordiqd.model import artifacts, fitting
from nordiqd.promotion.log import Promotion, PromotionLog
from nordiqd.serving.slot import ModelSlot
from tests.harness import wait_for
from tests.unit.test_model_training import SPEC, fleet


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    trained = fitting.fit(fleet(["s0", "s1"]), SPEC, epochs=1)
    root = tmp_path_factory.mktemp("models")
    when = [datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC) for i in range(3)]
    return root, [artifacts.publish(root, trained, now=t).name for t in when]


def test_a_burst_of_swaps_loads_only_the_newest(models: tuple[Path, list[str]]) -> None:
    root, versions = models
    artifacts.point_current(root, versions[0])
    swapped: list[str] = []
    slot = ModelSlot(str(root), SPEC, lambda: None, lambda: swapped.append(slot.served.version))  # type: ignore[union-attr]
    slot.start()
    try:
        assert wait_for(lambda: swapped == [versions[0]], 30), swapped
        artifacts.point_current(root, versions[1])
        artifacts.point_current(root, versions[2])
        assert wait_for(lambda: slot.served is not None and slot.served.version == versions[2], 30)
        assert not wait_for(lambda: len(swapped) > 2, 0.5)  # nothing more is loaded
        assert swapped == [versions[0], versions[2]] and slot.stats.ok == 2  # versions[1] never loaded
    finally:
        slot.close()


def test_reload_requests_answer_in_the_order_they_came(models: tuple[Path, list[str]]) -> None:
    root, versions = models
    artifacts.point_current(root, versions[2])
    slot = ModelSlot(str(root), SPEC, lambda: None, lambda: None)
    answers: list[tuple[bool, str, str]] = []
    done = threading.Event()

    def answer(ok: bool, kind: str, message: str) -> None:
        answers.append((ok, kind, message))
        if len(answers) == 3:
            done.set()

    slot.start()
    try:
        slot.request(version=versions[1], done=answer)
        slot.request(version="tft_model_19990101_000000", done=answer)
        slot.request(rollback=True, done=answer)  # from versions[1] to versions[0]
        assert done.wait(30), answers
        served = slot.served
    finally:
        slot.close()
    # A bad request fails alone; the others get what is served once the pointer has moved
    # (all three usually arrive inside one debounce window and share one load).
    assert answers[1][:2] == (False, "not_found") and "tft_model_19990101_000000" in answers[1][2]
    assert answers[0][0] and answers[0][2] in (f"now serving {v}" for v in versions[:2])
    assert answers[2] == (True, "", f"now serving {versions[0]}")
    assert artifacts.current_version(root) == versions[0] and served and served.version == versions[0]


def test_a_rollback_by_hand_follows_the_promotion_log(models: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, versions = models
    promotions = PromotionLog(tmp_path)
    history: list[tuple[str, str | None, Any]] = [
        (versions[0], None, "promoted"),
        (versions[1], versions[0], "rejected"),
        (versions[2], versions[0], "forced"),
    ]
    for version, previous, decision in history:
        promotions.append(Promotion(at="2026-01-01T00:00:00Z", version=version, previous=previous,
                                    decision=decision, trigger="manual", reasons=[]))  # fmt: skip
    artifacts.point_current(root, versions[2])
    slot = ModelSlot(str(root), SPEC, lambda: None, lambda: None, promotions=promotions)
    answers: list[tuple[bool, str, str]] = []
    done = threading.Event()
    slot.start()
    try:
        slot.request(rollback=True, done=lambda *a: (answers.append(a), done.set()))
        assert done.wait(30), answers
    finally:
        slot.close()
    # versions[1] was published after versions[0] but rejected: it never served.
    assert answers == [(True, "", f"now serving {versions[0]}")]
    assert artifacts.current_version(root) == versions[0]
    newest = promotions.newest()
    assert newest is not None and (newest.decision, newest.trigger) == ("rolled_back", "manual")
    assert (newest.version, newest.previous) == (versions[0], versions[2])
