"""The forecasting model: data framing, TFT training, artifacts and fleet forecasts.

Importing this package is cheap: torch and pytorch-forecasting are imported only by
the modules that need them (``tft``, ``artifacts`` when loading or saving, ``forecast``),
so the config and API code can use ``params``, ``errors`` and ``baseline`` freely.
"""

from __future__ import annotations
