"""Serving forecasts: the model slot with hot reload, and the cached fleet forecast."""
