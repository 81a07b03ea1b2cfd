"""Lead buckets: which part of the horizon a forecast step belongs to.

Step ``h`` (0-based) of a forecast issued at ``t`` covers ``[t + h*step, t + (h+1)*step)``,
so its actual is known ``(h + 1) * step`` seconds after the issue: that is its lead time.
The contract names three buckets, ``0-1h`` (lead at most one hour), ``1-4h`` (at most four
hours) and ``4-8h`` (the rest of the horizon, whatever its length, so a longer horizon
than 8 h still lands in the last bucket rather than in a name nobody queries), and
``all``, the sum of the three.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALL", "BUCKETS", "bucket_of_lead"]

BUCKETS: tuple[str, ...] = ("0-1h", "1-4h", "4-8h")
ALL = "all"

# Upper lead-time bound (inclusive, seconds) of each bucket but the last.
_BOUNDS_S = (3600, 4 * 3600)


def bucket_of_lead(horizon_steps: int, step_seconds: int) -> np.ndarray:
    """The bucket index (into ``BUCKETS``) of every lead index of a horizon.

    Args:
        horizon_steps: Steps forecast.
        step_seconds: Model step.

    Returns:
        Array [horizon_steps] int64.
    """
    lead_s = (np.arange(horizon_steps, dtype=np.int64) + 1) * step_seconds
    return np.searchsorted(np.asarray(_BOUNDS_S, dtype=np.int64), lead_s, side="left").astype(np.int64)
