"""The statistical challengers as backtest forecasters: AutoETS, AutoTheta and MSTL.

Each wraps ``nordiqd.statistical.forecast`` (statsmodels on hourly bins; see that
package) for every server and target of a fold, one series at a time, and clips the
quantiles to each metric's valid range as the served forecasts are. A series the model
cannot forecast (under two days of history, a failed fit) gets NaN and is not scored
for that model (the report's ``windows`` tells how many were).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nordiqd import statistical
from nordiqd.backtest.engine import Origin
from nordiqd.model.params import ModelSpec
from nordiqd.predict.risk import clip


@dataclass(frozen=True)
class Statistical:
    """One statistical model (``name`` in ``statistical.MODELS``) over a fold."""

    spec: ModelSpec
    name: str

    def forecast(self, origin: Origin) -> np.ndarray:
        """[n, k, H, Q] forecasts, NaN where the model has none."""
        n, _, k = origin.history.shape
        spec = self.spec
        out = np.full((n, k, spec.horizon_steps, len(spec.quantiles)), np.nan)
        for i in range(n):
            for j in range(k):
                out[i, j] = statistical.forecast(
                    self.name, origin.history[i, :, j], spec.step_seconds, spec.horizon_steps, spec.quantiles
                )
        return clip(out, spec.targets, axis=1)


def all_challengers(spec: ModelSpec) -> list[Statistical]:
    """AutoETS, AutoTheta and MSTL, in report order."""
    return [Statistical(spec, name) for name in statistical.MODELS]
