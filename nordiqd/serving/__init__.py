"""Serving forecasts: the model slot with hot reload, and the forecast cycle's passes.

``slot`` holds the served model; ``cycle`` runs a ``forecast_pass`` at every step: an
``outlook`` (forecasts and risk), then its ``rest_bodies`` and its ``exposition`` text.
"""
