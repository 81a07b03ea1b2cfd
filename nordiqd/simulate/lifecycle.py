"""Recurring server events in closed form: maintenance reboots and disk cleanups.

A stateful simulator would remember when each server last rebooted; ours
cannot, because any time range must be generated on its own and come out the
same. So recurring events sit on a per-server grid: event ``c`` happens at
``phase + c * period + jitter_c``, with ``jitter_c`` drawn from the server's key
and ``c`` and kept below the period. The last event before ``t`` is then either
event ``floor((t - phase) / period)`` or the one before it.
"""

from __future__ import annotations

import numpy as np

from nordiqd.simulate.noise import F64, U64, uniform_cells

_DAY = 86400.0


def _event_time(
    keys: U64, c: F64, period: F64, phase: F64, jitter: float, window: tuple[float, float, float] | None
) -> F64:
    """Time of event ``c`` per cell; see ``last_event`` for the arguments."""
    c_int = c.astype(np.int64)
    nominal = phase + c * period + uniform_cells(keys[:, None], c_int) * jitter * period
    if window is None:
        return nominal
    offset_s, first_h, length_h = window
    day = np.floor((nominal + offset_s) / _DAY)
    u = uniform_cells(keys[:, None] ^ np.uint64(0x5DEECE66D), c_int)
    return day * _DAY - offset_s + (first_h + u * length_h) * 3600.0


def last_event(
    keys: U64,
    t: F64,
    period_s: F64,
    phase_s: F64,
    jitter: float,
    window: tuple[float, float, float] | None = None,
) -> F64:
    """Time of each server's most recent event at or before each ``t``.

    Args:
        keys: per-server stream keys, shape ``(n,)``.
        t: sample times, shape ``(m,)``.
        period_s: nominal time between events per server, shape ``(n,)``; at
            least two days when ``window`` is given.
        phase_s: offset of event 0 per server, shape ``(n,)``.
        jitter: how late an event may come, as a fraction of the period (< 1).
        window: ``(utc_offset_s, first_hour, hours)``: move each event into
            that local time window of its day (maintenance happens at night).

    Returns:
        Event times, shape ``(n, m)``; always ``<= t``.
    """
    period = period_s[:, None]
    phase = phase_s[:, None]
    c = np.floor((t[None, :] - phase) / period)
    # Moving an event within its day can put it before its nominal slot, so
    # the next event may already have happened; three candidates cover it.
    best = np.full(c.shape, -np.inf)
    for k in (-1.0, 0.0, 1.0):
        when = _event_time(keys, c + k, period, phase, jitter, window)
        best = np.where((when <= t[None, :]) & (when > best), when, best)
    return best
