"""The configuration: one TOML file loaded into typed, frozen Structs, one per section.

Every key has a default, so an empty file (or none) is a valid configuration. Unknown
keys, wrong types and impossible values raise ``ConfigError`` naming the key, which the
CLI turns into exit code 78 ("configuration error") so that nothing respawns it.
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Annotated, Any, Literal

import msgspec
from croniter import croniter
from msgspec import Meta

from nordiqd.model.params import ModelSpec

PositiveFloat = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
Port = Annotated[int, Meta(ge=1, le=65535)]

DEFAULT_METRICS = [
    "cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct", "cpu_idle_pct", "java_cpu_pct",
    "mem_used_pct", "swap_used_pct", "disk_usage_pct", "net_in_mb_s", "net_out_mb_s",
    "back_close_wait", "front_close_wait", "load_average", "uptime_days",
]  # fmt: skip


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the file."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class DaemonConfig(_Section, frozen=True):
    """[daemon]: where state and sockets live, and logging."""

    data_dir: str = "/var/lib/nordiqd"
    run_dir: str = "/run/nordiqd"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class SupervisorConfig(_Section, frozen=True):
    """[supervisor]: heartbeats, restart back-off and intensity, shutdown grace."""

    heartbeat_interval_s: PositiveFloat = 1.0
    heartbeat_liveness: PositiveInt = 3
    start_timeout_s: PositiveFloat = 60.0
    stop_grace_s: PositiveFloat = 10.0
    backoff_initial_s: PositiveFloat = 0.1
    backoff_factor: Annotated[float, Meta(ge=1)] = 2.0
    backoff_max_s: PositiveFloat = 30.0
    backoff_reset_after_s: PositiveFloat = 60.0
    max_restarts: PositiveInt = 5
    restart_period_s: PositiveFloat = 60.0


class EndpointsConfig(_Section, frozen=True):
    """[endpoints]: zmq endpoints; empty means ``ipc://<run_dir>/<name>.sock``."""

    control: str = ""
    children: str = ""
    events: str = ""
    ingest: str = ""
    ingest_publish: str = ""
    predictor: str = ""
    trainer: str = ""
    trainer_jobs: str = ""


class ApiConfig(_Section, frozen=True):
    """[api]: the REST admin port."""

    host: str = "127.0.0.1"
    port: Port = 8000
    key_file: str = "/etc/nordiqd/api_key"
    threads: Annotated[int, Meta(ge=1, le=64)] = 4
    request_timeout_s: PositiveFloat = 10.0
    max_body_mb: PositiveFloat = 16.0
    nice: Annotated[int, Meta(ge=0, le=19)] = 5  # below a forecast pass: the api serves cached bytes


class BufferConfig(_Section, frozen=True):
    """[buffer]: the durable daily-Parquet buffer."""

    retention_days: PositiveInt = 60
    fsync: str = "1000ms"
    max_future_s: Annotated[float, Meta(ge=0)] = 300.0
    max_batch_records: PositiveInt = 100_000
    compact_interval_s: PositiveFloat = 10.0


class SchemaConfig(_Section, frozen=True):
    """[schema]: accepted metrics and how a profile is inferred from a server name."""

    metrics: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_METRICS))
    profile_patterns: list[list[str]] = msgspec.field(
        default_factory=lambda: [
            ["web*", "web"],
            ["api*", "api"],
            ["db*", "database"],
            ["ml*", "ml_compute"],
            ["etl*", "batch_etl"],
            ["cache*", "cache"],
        ]  # fmt: skip
    )


class TrainingConfig(_Section, frozen=True):
    """[training]: what a training job reads and when it may run."""

    training_days: PositiveInt = 30
    min_records: Annotated[int, Meta(ge=0)] = 100_000
    default_epochs: PositiveInt = 5
    cpu_threads: PositiveInt = 1
    cpu_priority: Literal["idle", "nice"] = "idle"  # idle: SCHED_IDLE, CPU that serving leaves
    cancel_grace_s: PositiveFloat = 10.0


class PredictorConfig(_Section, frozen=True):
    """[predictor]: how often the fleet is forecast and who qualifies."""

    refresh_s: Annotated[float, Meta(ge=0)] = 0.0  # 0: once per model step
    min_history_steps: PositiveInt = 12
    forecast_batch_size: PositiveInt = 64  # windows per forward pass: 64 stay in the CPU cache
    forecast_workers: Annotated[int, Meta(ge=1, le=64)] = 1  # threads running a pass's batches side by side
    torch_threads: PositiveInt = 1  # torch threads inside each forward pass


class AccuracyConfig(_Section, frozen=True):
    """[accuracy]: how often a served forecast is kept for scoring, and the metrics' window."""

    issue_every_s: PositiveInt = 3600  # data-time s between kept forecasts (x step_seconds)
    window_hours: PositiveInt = 24  # trailing hours that /metrics' skill and coverage cover


class PromotionConfig(_Section, frozen=True):
    """[promotion]: the gate a finished job's model must pass before it is served."""

    holdout_hours: PositiveFloat = 24.0  # newest buffer hours the job does not train on
    tolerance: Annotated[float, Meta(gt=-1)] = 0.02  # MASE <= champion's x (1 + tolerance)
    must_beat_baseline: bool = True  # and MASE below seasonal naive's


class RetrainConfig(_Section, frozen=True):
    """[retrain]: the jobs the trainer starts by itself; every threshold 0 (or "") is off."""

    schedule: str = "0 2 * * 0"  # cron (croniter), UTC; the seed manual's Sunday 2 AM
    min_new_records: Annotated[int, Meta(ge=0)] = 0  # records since the last job's data
    skill_threshold: Annotated[float, Meta(ge=0)] = 0.0  # champion's live skill above it
    skill_window_hours: Annotated[float, Meta(ge=0)] = 6.0  # ... over this much data time
    coverage_range: list[float] = msgspec.field(default_factory=list)  # [low, high] p10-p90
    cooldown_hours: Annotated[float, Meta(ge=0)] = 6.0  # between two automatic jobs
    epochs: PositiveInt = 5
    incremental: bool = True


class ProfileThresholds(_Section, frozen=True):
    """[alerts.profiles.<profile>]: thresholds that replace the defaults for that profile."""

    warning: dict[str, float] = msgspec.field(default_factory=dict)
    critical: dict[str, float] = msgspec.field(default_factory=dict)


class AlertsConfig(_Section, frozen=True):
    """[alerts]: per-metric thresholds that forecasts and current values are held against."""

    warning: dict[str, float] = msgspec.field(
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
    critical: dict[str, float] = msgspec.field(
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
    profiles: dict[str, ProfileThresholds] = msgspec.field(
        default_factory=lambda: {
            "api": ProfileThresholds(warning={"load_average": 16.0}, critical={"load_average": 32.0}),
            "batch_etl": ProfileThresholds(warning={"load_average": 16.0}, critical={"load_average": 32.0}),
            "database": ProfileThresholds(warning={"load_average": 32.0}, critical={"load_average": 64.0}),
            "ml_compute": ProfileThresholds(warning={"load_average": 64.0}, critical={"load_average": 128.0}),
        }
    )


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole configuration, one field per TOML section."""

    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    endpoints: EndpointsConfig = msgspec.field(default_factory=EndpointsConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    buffer: BufferConfig = msgspec.field(default_factory=BufferConfig)
    schema: SchemaConfig = msgspec.field(default_factory=SchemaConfig)
    training: TrainingConfig = msgspec.field(default_factory=TrainingConfig)
    model: ModelSpec = msgspec.field(default_factory=ModelSpec)
    predictor: PredictorConfig = msgspec.field(default_factory=PredictorConfig)
    accuracy: AccuracyConfig = msgspec.field(default_factory=AccuracyConfig)
    promotion: PromotionConfig = msgspec.field(default_factory=PromotionConfig)
    retrain: RetrainConfig = msgspec.field(default_factory=RetrainConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)

    def endpoint(self, name: str) -> str:
        """The zmq endpoint for ``name``, defaulting to an ipc socket in ``run_dir``."""
        value: str = getattr(self.endpoints, name)
        return value or f"ipc://{os.path.join(self.daemon.run_dir, name)}.sock"

    @property
    def buffer_dir(self) -> str:
        return os.path.join(self.daemon.data_dir, "buffer")

    @property
    def models_dir(self) -> str:
        return os.path.join(self.daemon.data_dir, "models")

    @property
    def state_dir(self) -> str:
        return os.path.join(self.daemon.data_dir, "state")


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FSYNC = re.compile(r"^(always|[1-9][0-9]*ms)$")


def load(path: str | None) -> Config:
    """Load ``path`` (or ``$NORDIQD_CONFIG``, or the built-in defaults) and check it."""
    path = path or os.environ.get("NORDIQD_CONFIG") or None
    if path is None:
        return _check(Config(), "<defaults>")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(data, path)


def from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    """Build a ``Config`` from parsed TOML, naming the offending key on error."""
    try:
        cfg = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(str(exc))}") from None
    return _check(cfg, source)


def _describe(msg: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.api.port`"; operators think in keys.
    unknown = re.match(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?", msg)
    if unknown:
        key = ".".join(p for p in (unknown.group(2), unknown.group(1)) if p)
        section = unknown.group(2)
        if not section:
            return f"unknown section [{key}]"
        return f"unknown key '{key}'"
    at = re.search(r" - at `\$\.?([^`]*)`", msg)
    if at and not msg.startswith(("Object contains", "Expected")) and "." not in at.group(1):
        # A section's own check failed (e.g. [model]); its message names the key.
        return f"[{at.group(1)}]: {msg[: at.start()]}"
    if at:
        key = re.sub(r"\[(\d+)\]", r"[\1]", at.group(1))
        return f"key '{key}': {msg[: at.start()]}"
    return msg


def _check(cfg: Config, source: str) -> Config:
    def fail(key: str, why: str) -> ConfigError:
        return ConfigError(f"{source}: key '{key}': {why}")

    if not _FSYNC.match(cfg.buffer.fsync):
        raise fail(
            "buffer.fsync",
            f"must be 'always' or a number of milliseconds like '1000ms', not {cfg.buffer.fsync!r}",
        )
    if not cfg.schema.metrics:
        raise fail("schema.metrics", "must name at least one metric")
    for name in cfg.schema.metrics:
        if not _NAME.match(name) or name in ("timestamp", "server_name", "profile"):
            raise fail("schema.metrics", f"{name!r} is not a usable metric name")
    if len(set(cfg.schema.metrics)) != len(cfg.schema.metrics):
        raise fail("schema.metrics", "lists a metric twice")
    for pair in cfg.schema.profile_patterns:
        if len(pair) != 2:
            raise fail("schema.profile_patterns", f"each entry must be [pattern, profile], not {pair!r}")
    for t in cfg.model.targets:
        if t not in cfg.schema.metrics:
            raise fail("model.targets", f"{t!r} is not in schema.metrics")
    if cfg.supervisor.backoff_max_s < cfg.supervisor.backoff_initial_s:
        raise fail("supervisor.backoff_max_s", "must not be below supervisor.backoff_initial_s")
    if cfg.accuracy.issue_every_s % cfg.model.step_seconds:
        raise fail(
            "accuracy.issue_every_s",
            f"must be a multiple of model.step_seconds ({cfg.model.step_seconds}), "
            f"not {cfg.accuracy.issue_every_s}",
        )
    _check_retrain(cfg, fail)
    _check_thresholds(cfg, "alerts", cfg.alerts.warning, cfg.alerts.critical, fail)
    for profile, limits in cfg.alerts.profiles.items():
        warning = {**cfg.alerts.warning, **limits.warning}
        critical = {**cfg.alerts.critical, **limits.critical}
        _check_thresholds(cfg, f"alerts.profiles.{profile}", warning, critical, fail)
    return cfg


def _check_retrain(cfg: Config, fail: Any) -> None:
    horizon_h = cfg.model.horizon_steps * cfg.model.step_seconds / 3600
    if cfg.promotion.holdout_hours < horizon_h:
        raise fail("promotion.holdout_hours", f"must cover one forecast horizon ({horizon_h:g} h)")
    if cfg.retrain.schedule and not croniter.is_valid(cfg.retrain.schedule):
        raise fail("retrain.schedule", f"{cfg.retrain.schedule!r} is not a cron expression")
    band = cfg.retrain.coverage_range
    if band and not (len(band) == 2 and 0 <= band[0] < band[1] <= 1):
        raise fail("retrain.coverage_range", f"must be [low, high] with 0 <= low < high <= 1, not {band}")
    if cfg.retrain.skill_threshold and not cfg.retrain.skill_window_hours:
        raise fail("retrain.skill_window_hours", "must be above 0 when retrain.skill_threshold is set")


def _check_thresholds(
    cfg: Config, where: str, warning: dict[str, float], critical: dict[str, float], fail: Any
) -> None:
    for level, values in (("warning", warning), ("critical", critical)):
        for metric in values:
            if metric not in cfg.schema.metrics:
                raise fail(f"{where}.{level}", f"{metric!r} is not in schema.metrics")
    for metric, crit in critical.items():
        warn = warning.get(metric)
        if warn is not None and warn > crit:
            raise fail(f"{where}.warning.{metric}", f"{warn:g} is above the critical threshold {crit:g}")
