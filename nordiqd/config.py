"""The configuration: one TOML file loaded into typed, frozen Structs, one per section.

Every key has a default, so an empty file (or none) is a valid configuration. Unknown
keys, wrong types and impossible values raise ``ConfigError`` naming the key, which the
CLI turns into exit code 78 ("configuration error") so that nothing respawns it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tomllib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from nordiqd.config_errors import describe
from nordiqd.model.params import DEFAULT_TARGETS, ModelSpec
from nordiqd.names import DEFAULT_METRICS, END, RULES, MetricName, ProfileName, ServerGlob
from nordiqd.retraining import PromotionConfig, RetrainConfig
from nordiqd.routing import RoutingConfig
from nordiqd.thresholds import AlertsConfig

# Every number has an upper bound too: a value the loader accepts must be one every role
# can use (threading's waits overflow past about 292 years; sizes become allocations).
_DAY = 86_400.0
Seconds = Annotated[float, Meta(gt=0, le=_DAY)]
PositiveInt = Annotated[int, Meta(gt=0, le=1_000_000)]
Count = Annotated[int, Meta(ge=0, le=1_000_000_000)]
Port = Annotated[int, Meta(ge=1, le=65535)]
_PATH = r"^[^\x00]+$"
# No "*" host: every endpoint is also connected to by another nordiqd process.
_ENDPOINT = r"^(?:|ipc://[^\x00]+|tcp://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5})" + END
_HOST = r"^(?:[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45})" + END
_FSYNC = r"^(?:always|[1-9][0-9]{0,6}ms)" + END
Path = Annotated[str, Meta(pattern=_PATH)]
Endpoint = Annotated[str, Meta(pattern=_ENDPOINT)]
Host = Annotated[str, Meta(pattern=_HOST)]
_RAY_ADDRESS = r"^(?:auto|(?:ray://)?(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5})" + END
_BUFFER_URI = r"^(?:|/[^\x00]*|[a-z][a-z0-9+.-]*://[^\x00]+)" + END
RayAddress = Annotated[str, Meta(pattern=_RAY_ADDRESS)]
BufferUri = Annotated[str, Meta(pattern=_BUFFER_URI)]
# What each pattern means, for the error messages.
_RULES = {
    **RULES,
    _PATH: "a path must not be empty nor hold a NUL character",
    _ENDPOINT: "an endpoint is empty (the default), ipc://PATH or tcp://HOST:PORT (0.0.0.0: every interface)",
    _HOST: "a host is a host name or an IP address",
    _RAY_ADDRESS: "a Ray address is 'auto', HOST:PORT (the head's GCS port, 6379) or ray://HOST:PORT",
    _BUFFER_URI: "the buffer URI is empty (the buffer folder), an absolute path or a URI like s3://bucket/path",
    _FSYNC: "fsync is 'always' or a period in milliseconds from '1ms' to '9999999ms', like '1000ms'",
}
FsyncPolicy = Literal["always"] | int  # int: the background fdatasync period in ms
IPC_PATH_MAX = 107  # sun_path holds 108 bytes with the closing NUL


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the file."""


@contextlib.contextmanager
def applying(*keys: str, catch: tuple[type[Exception], ...] = (ValueError,)) -> Iterator[None]:
    """Names ``keys`` when building something from them fails in a role's start.

    The loader's checks should refuse every value a role cannot use; this is the
    backstop for one they miss. An exception of ``catch`` raised inside (a ``ValueError``
    from a constructor; ``OSError`` or ``zmq.ZMQError`` binding a configured address)
    becomes a ``ConfigError`` naming the keys, which the role's runner turns into exit
    78, so the supervisor stops the tree instead of respawning the role. An address
    another process holds (``EADDRINUSE``) is not the configuration's fault and may be
    freed: that error passes, and the role restarts with back-off.
    """
    try:
        yield
    except catch as exc:
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise
        raise ConfigError(f"key {' / '.join(repr(k) for k in keys)}: {type(exc).__name__}: {exc}") from exc


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class DaemonConfig(_Section, frozen=True):
    """[daemon]: where state and sockets live, and logging."""

    data_dir: Path = "/var/lib/nordiqd"
    run_dir: Path = "/run/nordiqd"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    disk_free_warn_mb: Annotated[int, Meta(ge=0)] = 1024  # free MiB in data_dir below which to warn


class SupervisorConfig(_Section, frozen=True):
    """[supervisor]: heartbeats, restart back-off and intensity, shutdown grace."""

    heartbeat_interval_s: Annotated[float, Meta(ge=0.05, le=60)] = 1.0
    heartbeat_liveness: Annotated[int, Meta(ge=1, le=1000)] = 3
    start_timeout_s: Seconds = 60.0
    stop_grace_s: Seconds = 10.0
    backoff_initial_s: Seconds = 0.1
    backoff_factor: Annotated[float, Meta(ge=1, le=100)] = 2.0
    backoff_max_s: Seconds = 30.0
    backoff_reset_after_s: Seconds = 60.0
    max_restarts: Annotated[int, Meta(ge=1, le=1000)] = 5
    restart_period_s: Seconds = 60.0


class EndpointsConfig(_Section, frozen=True):
    """[endpoints]: zmq endpoints; empty means ``ipc://<run_dir>/<name>.sock``."""

    control: Endpoint = ""
    children: Endpoint = ""
    events: Endpoint = ""
    ingest: Endpoint = ""
    ingest_publish: Endpoint = ""
    predictor: Endpoint = ""
    trainer: Endpoint = ""
    trainer_jobs: Endpoint = ""


class ApiConfig(_Section, frozen=True):
    """[api]: the REST admin port."""

    host: Host = "127.0.0.1"
    port: Port = 8000
    key_file: Path = "/etc/nordiqd/api_key"
    threads: Annotated[int, Meta(ge=1, le=64)] = 4
    request_timeout_s: Seconds = 10.0
    max_body_mb: Annotated[float, Meta(gt=0, le=1024)] = 16.0
    nice: Annotated[int, Meta(ge=0, le=19)] = 5  # below a forecast pass: the api serves cached bytes


class BufferConfig(_Section, frozen=True):
    """[buffer]: the durable daily-Parquet buffer."""

    retention_days: Annotated[int, Meta(ge=1, le=36_500)] = 60
    fsync: Annotated[str, Meta(pattern=_FSYNC)] = "1000ms"
    max_future_s: Annotated[float, Meta(ge=0, le=_DAY)] = 300.0
    max_batch_records: Annotated[int, Meta(ge=1, le=10_000_000)] = 100_000
    compact_interval_s: Seconds = 10.0
    # Push-back: acknowledged records not yet in Parquet (the write-ahead log's backlog,
    # held in ingest's memory) above which new batches wait, and how long one waits
    # before it is refused as busy (REST: 503 with Retry-After). Under the api's
    # request_timeout_s, so a REST sender hears "busy" rather than a timeout.
    max_backlog_records: Annotated[int, Meta(ge=1, le=100_000_000)] = 100_000
    backlog_wait_s: Seconds = 5.0

    @property
    def fsync_policy(self) -> FsyncPolicy:
        """``fsync`` parsed: ``"always"``, or the background fdatasync period in ms."""
        return "always" if self.fsync == "always" else int(self.fsync.removesuffix("ms"))


class SchemaConfig(_Section, frozen=True):
    """[schema]: accepted metrics and how a profile is inferred from a server name."""

    metrics: Annotated[list[MetricName], Meta(min_length=1, max_length=1000)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_METRICS)
    )
    profile_patterns: list[tuple[ServerGlob, ProfileName]] = msgspec.field(
        default_factory=lambda: [
            ("web*", "web"),
            ("api*", "api"),
            ("db*", "database"),
            ("ml*", "ml_compute"),
            ("etl*", "batch_etl"),
            ("cache*", "cache"),
        ]  # fmt: skip
    )


class TrainingConfig(_Section, frozen=True):
    """[training]: what a training job reads and when it may run."""

    training_days: Annotated[int, Meta(ge=1, le=36_500)] = 30
    min_records: Count = 100_000
    default_epochs: Annotated[int, Meta(ge=1, le=100_000)] = 5
    cpu_threads: Annotated[int, Meta(ge=1, le=1024)] = 1
    cpu_priority: Literal["idle", "nice"] = "idle"  # idle: SCHED_IDLE, CPU that serving leaves
    cancel_grace_s: Seconds = 10.0
    max_memory_mb: Annotated[int, Meta(ge=0, le=1 << 30)] = 0  # a job's memory cap; 0: half the machine
    backend: Literal["local", "ray"] = "local"  # ray: a Ray Train run (pip install nordiqd[ray])
    ray_address: RayAddress = "auto"  # auto, HOST:PORT (the GCS) or ray://HOST:PORT (Ray Client)
    ray_workers: Annotated[int, Meta(ge=1, le=10_000)] = 2
    ray_use_gpu: bool = False  # one GPU per worker
    ray_cpus_per_worker: Annotated[float, Meta(gt=0, le=1024)] = 1.0
    ray_buffer_uri: BufferUri = ""  # where workers read the buffer's Parquet; "": the buffer folder


class PredictorConfig(_Section, frozen=True):
    """[predictor]: how often the fleet is forecast and who qualifies."""

    refresh_s: Annotated[float, Meta(ge=0, le=_DAY)] = 0.0  # 0: once per model step
    min_history_steps: PositiveInt = 12
    # windows per forward pass: 64 stay in the CPU cache
    forecast_batch_size: Annotated[int, Meta(ge=1, le=65_536)] = 64
    forecast_workers: Annotated[int, Meta(ge=1, le=64)] = 1  # threads running a pass's batches side by side
    torch_threads: Annotated[int, Meta(ge=1, le=1024)] = 1  # torch threads inside each forward pass


class AccuracyConfig(_Section, frozen=True):
    """[accuracy]: how often a served forecast is kept for scoring, and the metrics' window."""

    # data-time s between kept forecasts (a multiple of step_seconds)
    issue_every_s: Annotated[int, Meta(ge=1, le=30 * 86_400)] = 3600
    # trailing hours that /metrics' skill and coverage cover
    window_hours: Annotated[int, Meta(ge=1, le=24 * 366)] = 24


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
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
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


def load(path: str | None) -> Config:
    """Load ``path`` (or ``$NORDIQD_CONFIG``, or the built-in defaults) and check it."""
    path = path or os.environ.get("NORDIQD_CONFIG") or None
    if path is None:
        return from_dict({}, "<defaults>")
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
        raise ConfigError(f"{source}: {describe(str(exc), data, Config, _RULES)}") from None
    try:
        adapted = _adapt(cfg)
    except ValueError as exc:  # the targets that the schema left (ModelSpec's own check)
        raise ConfigError(f"{source}: key 'model.targets': {exc}") from None
    return _check(adapted, source)


def _adapt(cfg: Config) -> Config:
    """Drops the built-in entries that name metrics outside ``[schema] metrics``.

    An alert entry or the target list is built-in when it equals the default, whether
    left out or written out as the packaged file does; what the user changed stays and
    is checked against the schema. With none of the default targets left, the model
    forecasts every metric of the schema. The default ``[accuracy] issue_every_s`` (an
    hour) becomes the next multiple of a ``[model] step_seconds`` it is not one of, and
    the default ``[promotion] holdout_hours`` grows to one horizon when it is shorter.
    """
    metrics = set(cfg.schema.metrics)
    targets = cfg.model.targets
    if targets == DEFAULT_TARGETS:
        targets = tuple(t for t in targets if t in metrics) or tuple(dict.fromkeys(cfg.schema.metrics))
    model = msgspec.structs.replace(cfg.model, targets=targets)
    accuracy, step = cfg.accuracy, cfg.model.step_seconds
    if accuracy.issue_every_s == AccuracyConfig().issue_every_s and accuracy.issue_every_s % step:
        accuracy = msgspec.structs.replace(accuracy, issue_every_s=-(-accuracy.issue_every_s // step) * step)
    promotion, horizon_h = cfg.promotion, model.horizon_steps * step / 3600
    if promotion.holdout_hours == PromotionConfig().holdout_hours and promotion.holdout_hours < horizon_h:
        promotion = msgspec.structs.replace(promotion, holdout_hours=horizon_h)
    return msgspec.structs.replace(
        cfg, alerts=cfg.alerts.within(metrics), model=model, accuracy=accuracy, promotion=promotion
    )


def _check(cfg: Config, source: str) -> Config:
    def fail(key: str, why: str) -> ConfigError:
        return ConfigError(f"{source}: key '{key}': {why}")

    twice = sorted({m for m in cfg.schema.metrics if cfg.schema.metrics.count(m) > 1})
    if twice:
        raise fail("schema.metrics", f"lists {twice[0]!r} twice")
    for t in cfg.model.targets:
        if t not in cfg.schema.metrics:
            raise fail("model.targets", f"{t!r} is not in schema.metrics")
    sv = cfg.supervisor
    if sv.backoff_max_s < sv.backoff_initial_s:
        raise fail("supervisor.backoff_max_s", "must not be below supervisor.backoff_initial_s")
    silence = sv.heartbeat_interval_s * sv.heartbeat_liveness
    if silence < 1.0:
        # A role importing torch can hold its interpreter for most of a second.
        raise fail(
            "supervisor.heartbeat_liveness",
            f"heartbeat_interval_s x heartbeat_liveness is {silence:g} s; "
            "a role must be allowed at least 1 s of silence",
        )
    if cfg.buffer.backlog_wait_s >= cfg.api.request_timeout_s:
        raise fail(
            "buffer.backlog_wait_s",
            f"must be below api.request_timeout_s ({cfg.api.request_timeout_s:g}), or a REST sender "
            "times out before it hears that ingest is busy",
        )
    if cfg.accuracy.issue_every_s % cfg.model.step_seconds:
        raise fail(
            "accuracy.issue_every_s",
            f"must be a multiple of model.step_seconds ({cfg.model.step_seconds}), "
            f"not {cfg.accuracy.issue_every_s}",
        )
    _check_endpoints(cfg, fail)
    problem = cfg.alerts.problem(cfg.schema.metrics)
    if problem:
        raise fail(*problem)
    horizon_h = cfg.model.horizon_steps * cfg.model.step_seconds / 3600
    problem = (
        cfg.promotion.problem(horizon_h)
        or cfg.retrain.problem()
        or cfg.routing.problem(cfg.model.horizon_steps)
    )
    if problem:
        raise fail(*problem)
    return cfg


def _check_endpoints(cfg: Config, fail: Any) -> None:
    seen: dict[str, str] = {}
    for name in EndpointsConfig.__struct_fields__:
        key = f"endpoints.{name}" if getattr(cfg.endpoints, name) else "daemon.run_dir"
        endpoint = cfg.endpoint(name)
        if endpoint in seen:
            raise fail(f"endpoints.{name}", f"{endpoint} is also endpoints.{seen[endpoint]}")
        seen[endpoint] = name
        path = endpoint.removeprefix("ipc://")
        if path != endpoint and len(os.fsencode(path)) > IPC_PATH_MAX:
            raise fail(key, f"the socket path {path} is longer than {IPC_PATH_MAX} bytes")
