"""The ``routed`` entry: per server x target x lead bucket, the candidate that did best before.

What the live router serves (issue 18), replayed over the folds without look-ahead. At
each fold, for every server, target and horizon bucket, ``Router.route`` takes the
candidate with the smallest mean scaled absolute error of its median (the MASE terms)
on the **earlier folds only** (shrunk towards the candidate's mean over the whole fleet
by ``prior_points``: a few hours of one server are a noisy record), among candidates
with at least ``min_points`` scored steps there and a forecast for the whole horizon
now; a group with no such candidate gets the default (the TFT, or the served seasonal
naive without one). Only after the fold is routed does ``observe`` add its errors, so a
fold's own future never chooses its forecast (``tests/unit/test_backtest_routing.py``
fails if it did).

Bucket edges are joined smoothly by ``nordiqd.predict.blend`` (the choices as one-hot
weights averaged over ``blend_steps`` steps; the weighted mean of the candidates'
quantiles): inside a bucket, away from its edges, the path is exactly the chosen
candidate's forecast.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nordiqd.backtest.folds import Bucket
from nordiqd.predict import blend

ROUTED = "routed"
# The default first: the TFT, or without one the predictor's own fallback.
CANDIDATES = ("tft", "seasonal_naive_1d", "naive", "auto_ets", "auto_theta", "mstl")
MIN_POINTS = 12  # one earlier fold's first hour at 5-minute steps
BLEND_STEPS = blend.BLEND_STEPS
MARGIN = 0.0  # tuned on the bundled sets: 0.05-0.2 helped Azure (TFT best) and cost NAB more
PRIOR_POINTS = 96.0  # tuned on the bundled sets (bench/accuracy.md): 36 and 288 did worse


class Router:
    """Skill bookkeeping per candidate and the routing of one fold.

    Args:
        candidates: Candidate model names; the first present in a fold is the default.
        buckets: The horizon buckets routed separately.
        servers: Servers in the grid (skill is kept per grid index).
        targets: Number of targets.
        min_points: Scored earlier steps a candidate needs in a group to be chosen.
        blend_steps: Width of the moving average that joins bucket edges (odd; 1: none).
        prior_points: Weight, in points, of the fleet's skill (the candidate's mean over
            every server, same target and bucket) added to a group's own: a group with few
            points of its own follows the fleet, one with many its own record.
        margin: How much better (relative) than the default a candidate's skill must be
            to replace it: a near tie on a few folds is noise, and the default is the
            better-tested forecast.
    """

    def __init__(
        self,
        candidates: Sequence[str],
        buckets: Sequence[Bucket],
        servers: int,
        targets: int,
        *,
        min_points: int = MIN_POINTS,
        blend_steps: int = BLEND_STEPS,
        prior_points: float = PRIOR_POINTS,
        margin: float = MARGIN,
    ) -> None:
        self.candidates = tuple(candidates)
        self.buckets = tuple(buckets)
        self.min_points = min_points
        self.blend_steps = blend_steps
        self.prior_points = prior_points
        self.margin = margin
        shape = (len(self.candidates), servers, targets, len(self.buckets))
        self._sum = np.zeros(shape)
        self._count = np.zeros(shape, dtype=np.int64)

    def choice(self, servers: np.ndarray, present: Sequence[str], available: np.ndarray) -> np.ndarray:
        """Index into ``present`` of the candidate routed to, [n, k, buckets].

        Args:
            servers: Grid indexes of the fold's servers.
            present: Candidates forecasting this fold, the default first.
            available: Bool [len(present), n, k]: a finite forecast for the whole horizon.
        """
        rows = [self.candidates.index(c) for c in present]
        total, count = self._sum[rows][:, servers], self._count[rows][:, servers]
        with np.errstate(invalid="ignore", divide="ignore"):
            fleet = self._sum[rows].sum(axis=1) / self._count[rows].sum(axis=1)  # [C, k, B]
            prior = self.prior_points * np.nan_to_num(fleet, nan=0.0)[:, None]
            skill = (total + prior) / (count + self.prior_points)
        eligible = (count >= self.min_points) & available[..., None]
        skill = np.where(eligible, skill, np.inf)
        best = np.argmin(skill, axis=0)
        lowest = skill.min(axis=0)
        with np.errstate(invalid="ignore"):  # inf * (1 - margin): the default is not eligible
            holds = ~np.isfinite(lowest) | (lowest >= (1.0 - self.margin) * skill[0])
        return np.where(holds, 0, best)

    def route(self, servers: np.ndarray, forecasts: dict[str, np.ndarray]) -> np.ndarray:
        """The routed [n, k, H, Q] forecast of a fold from the candidates' forecasts."""
        present = [c for c in self.candidates if c in forecasts]
        if not present:
            raise ValueError(f"no routing candidate among the forecasts {sorted(forecasts)}")
        stack = np.stack([forecasts[c] for c in present])  # [C, n, k, H, Q]
        available = np.isfinite(stack).all(axis=(-1, -2))
        chosen = self.choice(servers, present, available)  # [n, k, B]
        spans = [(b.start, b.stop) for b in self.buckets]
        return blend.blend(stack, blend.weights(chosen, spans, len(present), self.blend_steps))

    def observe(
        self,
        servers: np.ndarray,
        forecasts: dict[str, np.ndarray],
        truth: np.ndarray,
        scale: np.ndarray,
        median: int,
    ) -> None:
        """Add a fold's scaled absolute errors of every candidate's median (after routing it).

        Args:
            servers: Grid indexes of the fold's servers.
            forecasts: [n, k, H, Q] per model.
            truth: [n, k, H] actual values (NaN: none).
            scale: [n, k] the fold's scale (NaN: not scored).
            median: Index of the 0.5 quantile.
        """
        for c, name in enumerate(self.candidates):
            if name not in forecasts:
                continue
            with np.errstate(invalid="ignore"):
                err = np.abs(forecasts[name][..., median] - truth) / scale[..., None]
            for b, bucket in enumerate(self.buckets):
                part = err[..., bucket.start : bucket.stop]
                ok = np.isfinite(part)
                self._sum[c, servers, :, b] += np.where(ok, part, 0.0).sum(axis=-1)
                self._count[c, servers, :, b] += ok.sum(axis=-1)
