"""The reference an issue is scored against: seasonal naive from the windows as they stood.

An issue at ``at`` is made from a window snapshot whose last slot is the last complete
step before ``at`` (``RollingWindows.snapshot(targets, now=at - 1)``), so step ``h`` of the
forecast starts ``h + 1`` steps after that slot. Its seasonal-naive value is the window's
value one season (a day) earlier, NaN where that slot is a gap or outside the window;
unlike the served baseline there is no last-value fallback, because a reference that
changes its rule would not be seasonal naive. ``last_values`` is the other baseline a
routed series may be served from: the window's last value, held over the horizon.
"""

from __future__ import annotations

import numpy as np

__all__ = ["last_values", "seasonal_naive_steps"]


def seasonal_naive_steps(windows: np.ndarray, horizon: int, season_steps: int) -> np.ndarray:
    """The value one season before every forecast step, taken from the windows.

    Args:
        windows: Array [S, L, T] of step means, oldest first, the last slot the step right
            before the issue point (NaN: a gap).
        horizon: Steps forecast.
        season_steps: Steps in a season (86400 / step_seconds).

    Returns:
        Array [S, T, horizon] float32, NaN where unknown.
    """
    s, length, t = windows.shape
    out = np.full((s, t, horizon), np.nan, dtype=np.float32)
    # Step h lies at slot length + h; one season earlier is slot length + h - season.
    src = length + np.arange(horizon) - season_steps
    ok = (src >= 0) & (src < length)
    out[:, :, ok] = np.transpose(windows[:, src[ok], :], (0, 2, 1))
    return out


def last_values(windows: np.ndarray) -> np.ndarray:
    """Each series' last finite value in its window: what last-value naive forecasts.

    Args:
        windows: Array [S, L, T] of step means, oldest first (NaN: a gap).

    Returns:
        Array [S, T] float32, NaN where a window holds no value.
    """
    finite = np.isfinite(windows)
    length = windows.shape[1]
    # Index of the last finite slot: the first one counting from the end.
    newest = length - 1 - np.argmax(finite[:, ::-1, :], axis=1)  # [S, T]
    out = np.take_along_axis(windows, newest[:, None, :], axis=1)[:, 0, :]
    return np.where(finite.any(axis=1), out, np.nan).astype(np.float32)
