"""Conformal calibration of the outer forecast band (p10-p90 by default).

See ``conformal`` for the method; ``shift`` and ``apply`` are the API.
"""

from __future__ import annotations

from nordiqd.calibration.conformal import MIN_POINTS, BandShift, apply, shift

__all__ = ["MIN_POINTS", "BandShift", "apply", "shift"]
