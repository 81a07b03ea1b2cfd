"""Probation's decision on a real LiveAccuracy: a champion worse live than its predecessor
in shadow is rolled back (``current`` and the log), one as good is kept; a predecessor
that cannot forecast ends probation (``failed``) without raising; the state file resumes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pytest

from nordiqd import config
from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.model import artifacts
from nordiqd.predict.windows import WindowSnapshot
from nordiqd.promotion.log import Promotion, PromotionLog
from nordiqd.serving.probation import FILE, Probation, ProbationState
from nordiqd.serving.slot import ModelSlot, ServedModel
from tests.unit.accuracy_fakes import T0

if TYPE_CHECKING:  # torch: the judging never forecasts with the champion
    from nordiqd.model.forecast import WindowForecaster

STEP = 300
DAY = 86400 // STEP
V1, V2 = "tft_model_20261201_000000", "tft_model_20261202_000000"
NAMES = ["a", "b", "c"]


def _setup(tmp_path: Path, tolerance: float) -> tuple[config.Config, LiveAccuracy, Probation]:
    cfg = config.from_dict(
        {
            "daemon": {"data_dir": str(tmp_path)},
            "promotion": {"probation_hours": 3, "rollback_tolerance": tolerance},
        }
    )
    for version in (V1, V2):
        (Path(cfg.models_dir) / version).mkdir(parents=True)
        (Path(cfg.models_dir) / version / artifacts.MANIFEST).write_text("{}")
    artifacts.point_current(cfg.models_dir, V2)
    live = LiveAccuracy.from_config(cfg)
    slot = ModelSlot(cfg.models_dir, cfg.model, lambda: None, lambda: None)  # never started: loads nothing
    return cfg, live, Probation(cfg, live, slot)


def _served(version: str) -> ServedModel:
    # Judging never forecasts with the champion: no model behind it.
    return ServedModel(version, "", "", {}, cast("WindowForecaster", None))


def _snap(data: np.ndarray, at: int) -> WindowSnapshot:
    start0 = T0 - DAY * STEP
    end = (at - start0) // STEP
    n = len(NAMES)
    return WindowSnapshot(
        NAMES,
        ["web"] * n,
        data[:, end - DAY : end],
        np.full(n, at - STEP, np.int64),
        np.full(n, DAY, np.int64),
        np.full(n, at - 1.0),
        np.full((n, data.shape[2]), np.nan),
    )


def _run(live: LiveAccuracy, probation: Probation, champion_error: float, shadow_error: float) -> None:
    """Issue both models hourly over probation (T0 .. T0 + 3 h), then the judging issue point."""
    spec = config.from_dict({}).model
    rng = np.random.default_rng(7)
    t = np.arange(3 * DAY)
    data = (
        50
        + 20 * np.sin(2 * np.pi * t / DAY)[None, :, None]
        + rng.normal(0, 3, (3, 3 * DAY, len(spec.targets)))
    )
    for at in live.due(T0 - 1, T0 + 3 * 3600):
        snap = _snap(data, at)
        live.observe(NAMES, snap.windows, at - STEP, through=at)
        if at == T0 + 3 * 3600:
            break
        truth = data[:, (at - T0 + DAY * STEP) // STEP :][:, : spec.horizon_steps].transpose(0, 2, 1)
        for version, kind, error in ((V2, "tft", champion_error), (V1, "shadow", shadow_error)):
            mid = truth + error
            live.issue(at, version, kind, NAMES, np.stack([mid - 5, mid, mid + 5], axis=-1), snap.windows)  # type: ignore[arg-type]
    probation.at_issue(T0 + 3 * 3600, _snap(data, T0 + 3 * 3600), _served(V2))


@pytest.mark.parametrize(("champion_error", "rolled"), [(8.0, True), (1.0, False)])
def test_probation_rolls_back_a_worse_champion_and_keeps_a_good_one(
    tmp_path: Path, champion_error: float, rolled: bool
) -> None:
    cfg, live, probation = _setup(tmp_path, tolerance=0.05)
    probation._save(
        ProbationState(
            champion=V2, predecessor=V1, promoted_at="2026-12-02T00:00:00Z", started=T0, ends=T0 + 3 * 3600
        )
    )
    _run(live, probation, champion_error=champion_error, shadow_error=2.0)
    state = probation.state
    assert state is not None and state.verdict == ("rolled_back" if rolled else "kept"), state
    mase = state.figures
    assert mase["champion"] is not None and mase["predecessor"] is not None
    assert (mase["champion"] > mase["predecessor"] * 1.05) is rolled
    current = os.path.basename(os.path.realpath(Path(cfg.models_dir) / "current"))
    entries = PromotionLog(cfg.state_dir).entries()
    if rolled:
        assert current == V1
        (entry,) = entries
        assert (entry.decision, entry.version, entry.previous, entry.trigger) == (
            "rolled_back",
            V1,
            V2,
            "probation",
        )
        assert (
            entry.gate["champion"]["mase"] == mase["champion"]
            and entry.gate["predecessor"]["mase"] == mase["predecessor"]
        )
    else:
        assert current == V2 and entries == []
    kinds = {(v.version, v.kind) for v in live.report().versions}
    assert kinds == {(V2, "tft"), (V1, "shadow")}
    # Judged: a fresh Probation (a restart) reads the verdict and does not start again.
    again = Probation(cfg, live, probation.slot)
    assert again.state == state


def test_a_forced_promotion_starts_probation_and_a_missing_predecessor_ends_it(tmp_path: Path) -> None:
    cfg, live, probation = _setup(tmp_path, tolerance=0.05)
    Path(cfg.state_dir).mkdir(parents=True)
    log = PromotionLog(cfg.state_dir)
    log.append(
        Promotion(
            at="2026-12-02T00:00:00Z",
            version=V2,
            previous=V1,
            decision="forced",
            trigger="manual",
            reasons=[],
        )
    )
    data = 50 + np.zeros((3, 2 * DAY, len(cfg.model.targets)))
    # V1's folder holds no real model: loading it in shadow fails, and probation ends.
    probation.at_issue(T0, _snap(data, T0), _served(V2))
    state = probation.state
    assert state is not None and (state.champion, state.predecessor, state.started) == (V2, V1, T0)
    assert state.ends == T0 + 3 * 3600 and state.verdict == "failed"
    assert (Path(cfg.state_dir) / FILE).is_file()
    # The same promotion does not start again; the served model is untouched.
    probation.at_issue(T0 + 3600, _snap(data, T0 + 3600), _served(V2))
    assert probation.state == state
    assert os.path.basename(os.path.realpath(Path(cfg.models_dir) / "current")) == V2


def test_a_change_of_served_model_drops_probation(tmp_path: Path) -> None:
    cfg, live, probation = _setup(tmp_path, tolerance=0.05)
    probation._save(
        ProbationState(
            champion=V2, predecessor=V1, promoted_at="2026-12-02T00:00:00Z", started=T0, ends=T0 + 3 * 3600
        )
    )
    data = 50 + np.zeros((3, 2 * DAY, len(cfg.model.targets)))
    probation.at_issue(T0 + 3600, _snap(data, T0 + 3600), _served(V1))
    assert probation.state is not None and probation.state.verdict == "dropped"
    assert Probation(cfg, live, probation.slot).state == probation.state


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"rollback_tolerance": -1}, "promotion.rollback_tolerance"),
        ({"probation_hours": -2}, "promotion.probation_hours"),
    ],
)
def test_bad_probation_settings_name_their_key(section: dict[str, float], key: str) -> None:
    with pytest.raises(config.ConfigError, match=key):
        config.from_dict({"promotion": section})
    defaults = config.from_dict({}).promotion
    assert (defaults.probation_hours, defaults.rollback_tolerance) == (24.0, 0.05)


def test_probation_hours_zero_ends_a_resumed_probation_and_starts_none(tmp_path: Path) -> None:
    cfg, live, probation = _setup(tmp_path, tolerance=0.05)
    running = ProbationState(
        champion=V2, predecessor=V1, promoted_at="2026-12-02T00:00:00Z", started=T0, ends=T0 + 3 * 3600
    )
    probation._save(running)
    off = Probation(
        config.from_dict({"daemon": {"data_dir": str(tmp_path)}, "promotion": {"probation_hours": 0}}),
        live,
        probation.slot,
    )
    assert off.state == running  # resumed from the file
    data = 50 + np.zeros((3, 2 * DAY, len(cfg.model.targets)))
    off.at_issue(T0 + 3600, _snap(data, T0 + 3600), _served(V2))
    assert off.state is not None and off.state.verdict == "dropped"
    assert [v.kind for v in live.report().versions] == []  # nothing forecast in shadow
