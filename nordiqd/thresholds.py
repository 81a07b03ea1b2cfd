"""The ``[alerts]`` section: thresholds per metric and per profile, and their built-ins.

The built-in thresholds cover the built-in metrics. ``AlertsConfig.within`` drops the
built-in entries for metrics a configuration's ``[schema] metrics`` leaves out, so
narrowing the schema alone is a valid configuration; ``problem`` checks what is left
(which is what the user wrote) against the schema.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

import msgspec
from msgspec import Meta

from nordiqd.names import MetricName, ProfileName

Threshold = Annotated[float, Meta(ge=-3.4e38, le=3.4e38)]  # finite, as the records' values are


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ProfileThresholds(_Section, frozen=True):
    """[alerts.profiles.<profile>]: thresholds that replace the defaults for that profile."""

    warning: dict[MetricName, Threshold] = msgspec.field(default_factory=dict)
    critical: dict[MetricName, Threshold] = msgspec.field(default_factory=dict)


class AlertsConfig(_Section, frozen=True):
    """[alerts]: per-metric thresholds that forecasts and current values are held against."""

    warning: dict[MetricName, Threshold] = msgspec.field(
        default_factory=lambda: {
            "cpu_user_pct": 80.0,
            "cpu_sys_pct": 30.0,
            "cpu_iowait_pct": 20.0,
            "java_cpu_pct": 80.0,
            "mem_used_pct": 85.0,
            "swap_used_pct": 20.0,
            "disk_usage_pct": 85.0,
            "net_in_mb_s": 500.0,
            "net_out_mb_s": 500.0,
            "back_close_wait": 100.0,
            "front_close_wait": 100.0,
            "load_average": 8.0,
        }  # fmt: skip
    )
    critical: dict[MetricName, Threshold] = msgspec.field(
        default_factory=lambda: {
            "cpu_user_pct": 95.0,
            "cpu_sys_pct": 50.0,
            "cpu_iowait_pct": 40.0,
            "java_cpu_pct": 95.0,
            "mem_used_pct": 95.0,
            "swap_used_pct": 50.0,
            "disk_usage_pct": 95.0,
            "net_in_mb_s": 900.0,
            "net_out_mb_s": 900.0,
            "back_close_wait": 500.0,
            "front_close_wait": 500.0,
            "load_average": 16.0,
        }  # fmt: skip
    )
    # Load average is per core: bigger boxes of these profiles carry more before it hurts.
    profiles: dict[ProfileName, ProfileThresholds] = msgspec.field(
        default_factory=lambda: {
            "api": ProfileThresholds(warning={"load_average": 16.0}, critical={"load_average": 32.0}),
            "batch_etl": ProfileThresholds(warning={"load_average": 16.0}, critical={"load_average": 32.0}),
            "database": ProfileThresholds(warning={"load_average": 32.0}, critical={"load_average": 64.0}),
            "ml_compute": ProfileThresholds(warning={"load_average": 64.0}, critical={"load_average": 128.0}),
        }
    )

    def within(self, metrics: Collection[str]) -> AlertsConfig:
        """These thresholds without the built-in entries for metrics outside ``metrics``.

        An entry is built-in when it equals the default for its place, whether left out
        or written out as the packaged file does; an entry the user changed stays (and
        ``problem`` names it). A built-in profile left with no entry is dropped.
        """
        builtin = AlertsConfig()

        def keep(values: dict[str, float], defaults: dict[str, float]) -> dict[str, float]:
            return {k: v for k, v in values.items() if k in metrics or defaults.get(k) != v}

        profiles = {}
        for name, limits in self.profiles.items():
            base = builtin.profiles.get(name, ProfileThresholds())
            kept = ProfileThresholds(
                warning=keep(limits.warning, base.warning), critical=keep(limits.critical, base.critical)
            )
            if kept.warning or kept.critical or name not in builtin.profiles:
                profiles[name] = kept
        return AlertsConfig(
            warning=keep(self.warning, builtin.warning),
            critical=keep(self.critical, builtin.critical),
            profiles=profiles,
        )

    def problem(self, metrics: Collection[str]) -> tuple[str, str] | None:
        """The first (key, reason) that makes these thresholds unusable, else None.

        A threshold must name a metric of ``metrics``, and a warning must not lie above
        the critical threshold of the same metric (a profile's merged over the defaults).
        """
        tables = [("alerts", self.warning, self.critical)]
        for profile, limits in self.profiles.items():
            warning = {**self.warning, **limits.warning}
            critical = {**self.critical, **limits.critical}
            tables.append((f"alerts.profiles.{profile}", warning, critical))
        for where, warning, critical in tables:
            for level, values in (("warning", warning), ("critical", critical)):
                for metric in values:
                    if metric not in metrics:
                        return f"{where}.{level}", f"{metric!r} is not in schema.metrics"
            for metric, crit in critical.items():
                warn = warning.get(metric)
                if warn is not None and warn > crit:
                    return f"{where}.warning.{metric}", f"{warn:g} is above the critical threshold {crit:g}"
        return None
