"""Rolling-origin backtests: how good the forecasts are against honest baselines.

``data`` loads a wide CSV/Parquet file or a buffer directory into a per-server grid of
step means, ``folds`` places the forecast origins and horizon buckets, ``baselines``
and ``tft_model`` are the forecasters, ``engine`` runs every model over every fold and
``scoring`` turns the errors into MASE, quantile loss and interval coverage, which
``report`` writes as JSON and a table. ``cli`` is ``nordiqd backtest``.

Everything runs synchronously in the calling process; only ``tft_model`` imports torch.
"""
