"""The predictor's domain: rolling windows, the seasonal-naive baseline, risk and alerts.

Plain modules that know nothing of processes or sockets; the predictor role drives them.
``windows`` keeps per-server step means, ``naive`` forecasts before any model exists,
``risk`` clips forecasts to valid ranges and scores them against the alert thresholds.
"""

from __future__ import annotations
