"""The names both the configuration and the records use, each defined once as a type.

A metric name is a column of the buffer, a Prometheus label value and, for a target, a
column of the training frame; a server or profile name travels in every record and is
matched against ``[schema] profile_patterns`` and ``[alerts.profiles.<profile>]``. The
config loader (``nordiqd/config.py``) and the record validator
(``nordiqd/buffer/records.py``) both decode through these types, so a name the
configuration accepts is one that ingest accepts, and the other way round.
"""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta

DEFAULT_METRICS: tuple[str, ...] = (
    "cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct", "cpu_idle_pct", "java_cpu_pct",
    "mem_used_pct", "swap_used_pct", "disk_usage_pct", "net_in_mb_s", "net_out_mb_s",
    "back_close_wait", "front_close_wait", "load_average", "uptime_days",
)  # fmt: skip

# Columns a record or the training frame holds besides the metrics (model/frames.py's
# time features among them): a metric of the same name would overwrite one.
RESERVED_COLUMNS: frozenset[str] = frozenset(
    {
        "timestamp", "server_name", "profile",  # every record
        "series", "time_idx", "relative_time_idx", "bucket", "encoder_length",  # the training frame
        "hour_sin", "hour_cos", "dow_sin", "dow_cos",  # model/frames.py TIME_FEATURES
    }
)  # fmt: skip

# Every pattern ends in "(?!\n)$": Python's "$" also matches before a final newline,
# JSON Schema's (ECMA) does not; with the lookahead both mean the end of the string, so
# the patterns say the same in msgspec, in Python's re and in /openapi.json.
END = r"(?!\n)$"
METRIC_PATTERN = r"^(?!(?:" + "|".join(sorted(RESERVED_COLUMNS)) + ")" + END + ")[a-z_][a-z0-9_]{0,63}" + END
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,253}" + END
# A glob over server names: the name characters and fnmatch's * ? [ ] !.
GLOB_PATTERN = r"^[A-Za-z0-9._*?!\[\]-]{1,253}" + END

MetricName = Annotated[str, Meta(pattern=METRIC_PATTERN)]
"""A metric: 1-64 lower-case letters, digits or ``_``, not starting with a digit, not reserved."""

ServerName = Annotated[str, Meta(pattern=NAME_PATTERN)]
"""A server: 1-253 letters, digits, ``.``, ``_`` or ``-`` (a host name fits)."""

ProfileName = Annotated[str, Meta(pattern=NAME_PATTERN)]
"""A profile: the same characters as a server name."""

ServerGlob = Annotated[str, Meta(pattern=GLOB_PATTERN)]
"""An fnmatch glob over server names."""

# What each pattern means, for the error messages of the config loader.
RULES: dict[str, str] = {
    METRIC_PATTERN: (
        "a metric name is 1-64 lower-case letters, digits or '_', not starting with a digit, "
        f"and none of {', '.join(sorted(RESERVED_COLUMNS))}"
    ),
    NAME_PATTERN: "a server or profile name is 1-253 letters, digits, '.', '_' or '-'",
    GLOB_PATTERN: "a server-name glob is 1-253 letters, digits, '.', '_', '-' or * ? [ ] !",
}

METRIC_RE = re.compile(METRIC_PATTERN)
NAME_RE = re.compile(NAME_PATTERN)
