"""Live accuracy: every served forecast scored against what happened, in data time.

Plain domain modules that do not know they run in a process: ``buckets`` (lead time to
lead bucket), ``points`` (one scored point's contribution to the sums), ``reference``
(seasonal naive from the windows), ``ledger`` (the forecasts outstanding until their
horizon passes), ``scores`` (running sums by version, target, lead bucket and hour, and
per server by day), ``report`` (a query over the sums), ``persist`` (sums and ledger
saved together atomically) and ``live`` (the facade the predictor holds).
"""
