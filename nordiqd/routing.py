"""The ``[routing]`` section: which candidate serves each series and lead bucket.

The accuracy ledger scores, at every issue point, the served model and the baselines
beside it (``nordiqd.accuracy.routing``); the forecast pass serves each server x target
x lead bucket from the candidate with the best trailing live error there
(``nordiqd.serving.routes``). ``problem`` says what makes the section unusable, so the
loader names the key.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class RoutingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """[routing]: per-series routing between the model and its challengers."""

    enabled: bool = True  # false: the model serves every step, as before routing
    # scored points a candidate needs in a series' bucket before it may serve there
    min_points: Annotated[int, Meta(ge=1, le=1_000_000)] = 36
    # data time over which a candidate's trailing error halves its weight
    half_life_hours: Annotated[float, Meta(gt=0, le=24 * 366)] = 24.0
    # steps on each side of a bucket edge over which two candidates are cross-faded
    blend_steps: Annotated[int, Meta(ge=0, le=10_000)] = 3
    # hours between two fits of the statistical challengers (a child process at idle
    # priority); 0: no statistical candidate
    refit_hours: Annotated[float, Meta(ge=0, le=24 * 366)] = 6.0
    # refits between two full fits of a series (model chosen, parameters estimated);
    # each refit fits about 1/reestimate_every of the series in full (new ones first,
    # that share per refit, refits a minute apart until all are fitted) and re-filters
    # the rest with their kept parameters; 1: all in full each time
    reestimate_every: Annotated[int, Meta(ge=1, le=10_000)] = 12
    # p10/p90 of every served bucket moved by conformal calibration on the ledger's
    # recent residuals of that series, target and bucket
    calibrate: bool = True

    def problem(self, horizon_steps: int) -> tuple[str, str] | None:
        """The (key, reason) that makes routing unusable for a ``horizon_steps`` forecast, else None."""
        if self.blend_steps * 2 > horizon_steps:
            return (
                "routing.blend_steps",
                f"{self.blend_steps} steps each side of a bucket edge is more than the horizon "
                f"({horizon_steps} steps) holds; at most {horizon_steps // 2}",
            )
        return None
