"""A refresh of the statistical challengers: the kept parameters re-filtered, a share re-fitted."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from nordiqd import statistical
from nordiqd.statistical.coarse import bins_for, to_coarse, to_steps
from nordiqd.statistical.fleet import is_due
from nordiqd.statistical.models import FITS, apply
from nordiqd.statistical.params import model_of

STEP = 300
DAY = 86400 // STEP
HOUR = 3600 // STEP
QS = (0.1, 0.5, 0.9)
END = 1_764_547_200.0 + 16 * 86400  # when the first 16 days end


def series(days: float, *, seed: int = 0, weekly: bool = False) -> np.ndarray:
    """A daily sine (quiet weekends with ``weekly``) with noise at 5-minute steps."""
    t = np.arange(int(days * DAY))
    y = 50 + 10 * np.sin(2 * np.pi * t / DAY) + np.random.default_rng(seed).normal(0, 1.0, t.size)
    return y + (np.where((t // DAY) % 7 >= 5, -15.0, 0.0) if weekly else 0.0)


def quantiles(model: str, params: object | None, history: np.ndarray, end_s: float, steps: int) -> np.ndarray:
    """The forecast [steps, Q] by a full fit (params None) or a filter with ``params``."""
    coarse = to_coarse(history, STEP, end_s=end_s)
    assert coarse is not None
    ahead = bins_for(steps, coarse.per_bin)
    if params is None:
        mean, std, _ = FITS[model](coarse, ahead)
    else:
        mean, std = apply(params, coarse, ahead)  # type: ignore[arg-type]
    return to_steps(coarse, mean, std, steps, QS)


@pytest.mark.parametrize("model", statistical.MODELS)
def test_a_refresh_is_the_full_fit_on_its_data_and_close_to_one_later(model: str) -> None:
    y = series(17, weekly=model == "mstl")
    first = y[: 16 * DAY]
    coarse = to_coarse(first, STEP, end_s=END)
    assert coarse is not None
    _, _, params = FITS[model](coarse, bins_for(96, coarse.per_bin))
    assert model_of(params) == model
    # The saved parameters survive msgpack, as the refit child keeps them.
    params = msgspec.msgpack.decode(msgspec.msgpack.encode(params), type=statistical.params.Params)
    # On the data of its fit, a refresh (a filter with the fit's parameters) is that fit.
    np.testing.assert_allclose(
        quantiles(model, params, first, END, 96), quantiles(model, None, first, END, 96), rtol=1e-5, atol=1e-4
    )
    # Six hours later the parameters barely changed: the refresh is close to a new full
    # fit, and both follow the sine.
    later, later_end = y[: 16 * DAY + 6 * HOUR], END + 6 * 3600
    refreshed = quantiles(model, params, later, later_end, 96)
    full = quantiles(model, None, later, later_end, 96)
    assert (np.diff(refreshed, axis=1) > 0).all()  # p10 < p50 < p90 everywhere
    assert np.abs(refreshed[:, 1] - full[:, 1]).mean() < 0.5, np.abs(refreshed[:, 1] - full[:, 1]).mean()
    band, full_band = refreshed[:, 2] - refreshed[:, 0], full[:, 2] - full[:, 0]
    assert np.abs(band / full_band - 1).max() < 0.2
    t = np.arange(later.size, later.size + 96)
    truth = (
        50
        + 10 * np.sin(2 * np.pi * t / DAY)
        + (np.where((t // DAY) % 7 >= 5, -15.0, 0.0) if model == "mstl" else 0)
    )
    assert np.abs(refreshed[:, 1] - truth).mean() < 2.0


def test_the_fleet_is_fitted_in_full_first_then_filtered_but_for_its_share() -> None:
    names = ["web-1", "web-2", "db-1"]
    targets = ["cpu", "mem"]
    days = 16 + 1
    data = np.stack([np.stack([series(days, seed=3 * i + j) for j in range(2)], axis=-1) for i in range(3)])
    length = 15 * DAY

    def run(end: int, previous: statistical.FleetParams | None, every: int) -> statistical.Refreshed:
        return statistical.refresh(
            data[:, end - length : end],
            names,
            targets,
            step_s=STEP,
            end_s=END + (end - 16 * DAY) * STEP,
            horizon_steps=96,
            steps=96 + 6 * HOUR,
            quantiles=QS,
            previous=previous,
            every=every,
        )

    first = run(16 * DAY, None, 1)  # every series' share: all six fitted at once
    assert (first.estimated, first.filtered, first.failed, first.waiting) == (6, 0, 0, 0)
    assert np.isfinite(first.values).all() and (np.diff(first.values, axis=-1) > 0).all()
    assert all(m in statistical.MODELS for row in first.models for m in row)
    assert first.params.refreshes == 1
    # Again on the same data, every series whose turn it is not is filtered with its kept
    # parameters, and that is the first refresh's forecast.
    again = run(16 * DAY, first.params, 4)
    due = [(i, j) for i, n in enumerate(names) for j, t in enumerate(targets) if is_due(n, t, 1, 4)]
    assert (again.estimated, again.filtered) == (len(due), 6 - len(due))
    for i in range(3):
        for j in range(2):
            if (i, j) not in due:
                np.testing.assert_allclose(again.values[i, j], first.values[i, j], rtol=1e-5, atol=1e-4)
                assert again.params.series[names[i]][j] == first.params.series[names[i]][j]
    # Six hours on, a new server is fitted in full on first sight.
    data = np.concatenate([data, data[:1] + 5.0])
    names.append("web-3")
    later = run(16 * DAY + 6 * HOUR, again.params, 4)
    due = sum(is_due(n, t, 2, 4) for n in names[:3] for t in targets)
    assert (later.estimated, later.filtered) == (due + 2, 6 - due)
    assert np.isfinite(later.values).all() and (np.diff(later.values, axis=-1) > 0).all()
    # Every 1: every series is fitted in full each time; another [model]: all are new.
    assert run(16 * DAY, later.params, 1).estimated == 8
    other = msgspec.structs.replace(later.params, targets=["disk", "mem"])
    renamed = run(16 * DAY, other, 4)
    assert (renamed.estimated, renamed.waiting) == (2, 6)  # all new: the share of 8 in 4
    with pytest.raises(ValueError, match="at least 1"):
        run(16 * DAY, None, 0)


def test_a_new_fleet_is_fitted_a_share_per_refresh_and_turns_wait_for_it() -> None:
    names = ["web-1", "web-2", "db-1"]
    targets = ["cpu", "mem"]
    data = np.stack([np.stack([series(16, seed=3 * i + j) for j in range(2)], axis=-1) for i in range(3)])

    def run(previous: statistical.FleetParams | None) -> statistical.Refreshed:
        return statistical.refresh(
            data[:, -15 * DAY :],
            names,
            targets,
            step_s=STEP,
            end_s=END,
            horizon_steps=96,
            steps=96,
            quantiles=QS,
            previous=previous,
            every=3,
        )

    kept = None
    have = np.zeros((3, 2), dtype=bool)
    # Six series, every 3: two first fits a refresh; the rest wait, with no forecast.
    for waiting in (4, 2, 0):
        done = run(kept)
        assert (done.estimated, done.waiting, done.failed) == (2, waiting, 0)
        assert done.filtered == 4 - waiting  # the ones fitted before: filtered, never their turn
        now = np.isfinite(done.values).all(axis=(-1, -2))
        assert now.sum() == 6 - waiting and (now >= have).all()
        have, kept = now, done.params
    # No series waits: turns resume, each series' slot among 3.
    steady = run(kept)
    due = sum(is_due(n, t, 3, 3) for n in names for t in targets)
    assert (steady.estimated, steady.filtered, steady.waiting) == (due, 6 - due, 0)


def test_each_series_is_due_once_in_every_refreshes() -> None:
    names = [f"srv-{i}" for i in range(200)]
    every = 8
    for name in names:
        assert sum(is_due(name, "cpu", k, every) for k in range(10, 10 + every)) == 1
    # The share is bounded: no refresh re-fits much more than 1/every of the fleet.
    shares = [sum(is_due(n, t, k, every) for n in names for t in ("cpu", "mem")) for k in range(every)]
    assert max(shares) < 2 * 400 / every, shares


def test_a_flat_series_needs_no_fit_and_a_short_one_no_forecast() -> None:
    flat = np.full((1, 16 * DAY, 1), 7.0)
    done = statistical.refresh(
        flat,
        ["idle"],
        ["swap"],
        step_s=STEP,
        end_s=END,
        horizon_steps=96,
        steps=96,
        quantiles=QS,
        previous=None,
        every=4,
    )
    assert (done.estimated, done.filtered) == (0, 0) and np.allclose(done.values, 7.0)
    short = statistical.refresh(
        flat[:, :DAY],
        ["new"],
        ["swap"],
        step_s=STEP,
        end_s=END,
        horizon_steps=96,
        steps=96,
        quantiles=QS,
        previous=None,
        every=4,
    )
    assert np.isnan(short.values).all() and short.models == [[""]] and short.params.series == {"new": [None]}
