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


def last_event(keys: U64, t: F64, period_s: F64, phase_s: F64, jitter: float) -> F64:
    """Time of each server's most recent event at or before each ``t``.

    Args:
        keys: per-server stream keys, shape ``(n,)``.
        t: sample times, shape ``(m,)``.
        period_s: nominal time between events per server, shape ``(n,)``.
        phase_s: offset of event 0 per server, shape ``(n,)``.
        jitter: how late an event may come, as a fraction of the period (< 1).

    Returns:
        Event times, shape ``(n, m)``; always ``<= t``.
    """
    period = period_s[:, None]
    phase = phase_s[:, None]
    c = np.floor((t[None, :] - phase) / period)
    c_int = c.astype(np.int64)
    this = phase + c * period + uniform_cells(keys[:, None], c_int) * jitter * period
    prev = phase + (c - 1.0) * period + uniform_cells(keys[:, None], c_int - 1) * jitter * period
    return np.where(this <= t[None, :], this, prev)

