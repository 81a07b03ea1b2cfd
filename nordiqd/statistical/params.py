"""What a full fit of a statistical model found, so a refresh can reuse it.

A full fit searches: the model form (AutoETS's trend and season by AICc, AutoTheta's
deseasonalising and theta by its last day's error) and the parameters (maximum
likelihood or least squares, a scipy optimiser each). That search is the expensive part.
A **refresh** takes the form and parameters found here and runs the model's filter over
the latest data (``models.apply``): the level, trend and seasonal states follow the new
data at the cost of one pass, with no optimisation. One Struct per model, tagged with
the model's name in ``statistical.MODELS``, so a fleet's parameters are one msgpack file.
"""

from __future__ import annotations

import msgspec

__all__ = ["EtsParams", "MstlParams", "Params", "ThetaParams", "model_of"]


class EtsParams(msgspec.Struct, frozen=True, tag="auto_ets"):
    """An additive-error ETS: its form and smoothing parameters.

    Attributes:
        trend: Damped additive trend.
        seasonal: Additive season of one day of bins.
        params: statsmodels ``ETSModel`` parameters in its order (alpha, beta, gamma,
            phi, those the form has); the initial states are re-derived from each
            refresh's data (heuristic initialisation).
    """

    trend: bool
    seasonal: bool
    params: list[float]


class ThetaParams(msgspec.Struct, frozen=True, tag="auto_theta"):
    """A Theta method: its variant and SES parameter.

    Attributes:
        method: ``"add"`` or ``"mul"`` deseasonalising.
        seasonal: Whether the series was found seasonal (and is deseasonalised).
        theta: The theta line's weight.
        alpha: The SES smoothing parameter; the drift ``b0`` (least squares, no
            optimiser) and the seasonal factors are recomputed on each refresh's data.
    """

    method: str
    seasonal: bool
    theta: float
    alpha: float


class MstlParams(msgspec.Struct, frozen=True, tag="mstl"):
    """MSTL: its seasons at the full fit and the ETS of the adjusted series.

    Attributes:
        periods: Bins per season (a day, and a week given two weeks of data).
        seasonal: float32 bytes, the seasons' sum at each bin of the full fit, oldest
            first: a refresh adjusts those bins as the fit did.
        cycles: Per season, its last ``period`` values (oldest first) at the full fit:
            a refresh continues them over the bins since.
        end_s: When the full fit's last bin ended (epoch seconds, or 0 in a series'
            own time): a refresh reads each season at its phase from here.
        bin_s: Seconds per bin.
        ets: The adjusted series' ETS (never seasonal).
    """

    periods: list[int]
    seasonal: bytes
    cycles: list[list[float]]
    end_s: float
    bin_s: int
    ets: EtsParams


Params = EtsParams | ThetaParams | MstlParams


def model_of(params: Params) -> str:
    """The model name in ``statistical.MODELS`` these parameters belong to."""
    match params:
        case EtsParams():
            return "auto_ets"
        case ThetaParams():
            return "auto_theta"
        case MstlParams():
            return "mstl"
