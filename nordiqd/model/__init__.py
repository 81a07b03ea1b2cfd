"""The forecasting model: data framing, TFT training, artifacts and batched forecasts.

Importing this package is cheap: torch and pytorch-forecasting are imported only by
the modules that need them (``dataset``, ``network``, ``trainer``, ``fitting``,
``artifacts`` when loading or saving, ``forecast``), so the config and API code can use
``params``, ``errors`` and ``baseline`` freely.

Two sides share the value modules (``params``, ``shapes``, ``trained``, ``frames``):
training (``dataset``, ``network``, ``trainer``, ``fitting``) and serving
(``artifacts``, ``network``, ``inference``, ``forecast``). Serving imports nothing that
only training needs.
"""

from __future__ import annotations
