"""The statistical challenger as the predictor runs it: the real refit child over a real
buffer, its fit saved and loaded, and sliced for a pass and an issue point."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from nordiqd import config
from nordiqd.buffer.records import RecordValidator
from nordiqd.buffer.store import BufferStore
from nordiqd.serving.challenger import StatisticalChallenger
from nordiqd.simulate import SimulatedFleet
from tests.harness import wait_for, write_config


@pytest.mark.timeout(240)
def test_a_refit_fits_every_series_and_a_pass_gets_its_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sections = {
        "daemon": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")},
        "model": {"targets": ["cpu_user_pct", "mem_used_pct"], "horizon_steps": 24},
        "routing": {"refit_hours": 1.0, "reestimate_every": 1000},
    }
    write_config(tmp_path / "nordiqd.toml", sections)
    monkeypatch.setenv("NORDIQD_CONFIG", str(tmp_path / "nordiqd.toml"))
    cfg = config.load(None)
    store = BufferStore(cfg.buffer_dir, cfg.schema.metrics, fsync=1000)
    store.open()
    validator = RecordValidator(cfg.schema.metrics)
    end = time.time()
    fleet = SimulatedFleet(size=2, seed=3, interval_s=300.0)
    for batch in fleet.batches(end - 3 * 86400, end, max_records=2000):
        store.append(validator.from_records(batch.to_records()))
    store.close()

    challenger = StatisticalChallenger(cfg, first_delay_s=0, backlog_gap_s=0.2)
    assert challenger.forecast(["x"], end) is None  # nothing fitted yet
    # A new fleet is fitted a share per refit (1 of 4 series in 1,000 rounds up to one):
    # the others wait, without a forecast, and turns wait until none does.
    assert challenger.refit()
    first = challenger.fit
    assert first is not None and (first.estimated, first.filtered, first.waiting) == (1, 0, 3)
    fitted = np.isfinite(np.frombuffer(first.values, "<f4").reshape(2, 2, -1)).all(axis=-1)
    assert fitted.sum() == 1
    # The background loop refits again soon while series wait (not in refit_hours, 1 h
    # here), one share each time, and then waits the hour.
    challenger.start()
    try:
        assert wait_for(lambda: challenger.refits >= 4, 180), challenger.refits
        time.sleep(1.0)
    finally:
        challenger.close()
    fit = challenger.fit
    assert challenger.refits == 4 and challenger.failures == 0
    assert fit is not None and (fit.estimated, fit.filtered, fit.waiting) == (1, 3, 0)
    assert fit is not None and sorted(fit.servers) == sorted(s.name for s in fleet.servers)
    assert all(m in ("auto_ets", "auto_theta", "mstl") for row in fit.models for m in row), fit.models
    assert fit.steps == 24 + 12 and fit.origin % 300 == 0 and 0 < fit.origin - end <= 600
    names = [*fit.servers, "new-1"]
    now = challenger.forecast(names, fit.origin)
    assert now is not None and now.shape == (3, 2, 24, 3)
    assert np.isfinite(now[:2]).all() and np.isnan(now[2]).all()
    assert (np.diff(now[:2], axis=-1) >= 0).all()  # quantiles ordered
    later = challenger.forecast(names, fit.origin + 20 * 300)  # 16 steps left in the path
    assert later is not None and np.isfinite(later[:2, :, :16]).all() and np.isnan(later[:, :, 16:]).all()
    np.testing.assert_array_equal(later[:2, :, 0], now[:2, :, 20])
    # A restarted predictor serves the saved fit at once.
    again = StatisticalChallenger(cfg)
    assert again.fit == fit
    # With every series fitted, the next refit re-filters them with the kept parameters
    # (none is due in 1,000), which on the same data is the same forecast.
    assert (tmp_path / "data" / "state" / "statistical_params.msgpack").is_file()
    assert again.refit()
    refitted = again.fit
    assert refitted is not None and refitted.models == fit.models
    assert (refitted.estimated, refitted.filtered, refitted.failed, refitted.waiting) == (0, 4, 0, 0)
    np.testing.assert_allclose(
        np.frombuffer(refitted.values, "<f4"), np.frombuffer(fit.values, "<f4"), rtol=1e-4, atol=1e-3
    )
