"""Config: defaults, and errors that name the key."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from nordiqd import config


def test_defaults_hold_the_fixed_keys() -> None:
    cfg = config.load(None)
    assert cfg.api.host == "127.0.0.1" and cfg.api.port == 8000
    assert cfg.buffer.retention_days == 60
    assert cfg.training.training_days == 30 and cfg.training.min_records == 100_000
    assert len(cfg.schema.metrics) == 14
    assert list(cfg.model.quantiles) == [0.1, 0.5, 0.9]
    assert (cfg.model.step_seconds, cfg.model.encoder_steps, cfg.model.horizon_steps) == (300, 288, 96)
    assert set(cfg.model.targets) <= set(cfg.schema.metrics)
    assert (cfg.accuracy.issue_every_s, cfg.accuracy.window_hours) == (3600, 24)
    assert cfg.daemon.data_dir and cfg.daemon.run_dir and cfg.api.key_file and cfg.model.hidden_size


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"daemon": {"dta_dir": "/x"}}, "unknown key 'daemon.dta_dir'"),
        ({"nope": {}}, "unknown section [nope]"),
        ({"api": {"port": "80"}}, "key 'api.port': Expected `int`, got `str`"),
        ({"api": {"port": 70000}}, "key 'api.port'"),
        ({"buffer": {"fsync": "sometimes"}}, "key 'buffer.fsync'"),
        ({"buffer": {"max_backlog_records": 0}}, "key 'buffer.max_backlog_records'"),
        ({"buffer": {"backlog_wait_s": 10.0}}, "key 'buffer.backlog_wait_s': must be below api.request"),
        ({"model": {"targets": ["gpu_pct"]}}, "key 'model.targets': 'gpu_pct' is not in schema.metrics"),
        ({"model": {"quantiles": [0.9, 0.5]}}, "key 'model.quantiles': must be strictly increasing"),
        ({"model": {"hidden_size": 30}}, "key 'model.hidden_size': must be a multiple of attention_heads"),
        ({"model": {"encoder_steps": 10**9}}, "key 'model.encoder_steps': Expected `int` <= 10000"),
        (
            {"schema": {"profile_patterns": [["web*", "web server"]]}},
            "key 'schema.profile_patterns[0][1]': 'web server'",
        ),
        ({"schema": {"profile_patterns": [["web*"]]}}, "key 'schema.profile_patterns[0]'"),
        ({"schema": {"metrics": ["CPU"]}}, "key 'schema.metrics[0]': 'CPU' is not usable: a metric name"),
        ({"schema": {"metrics": ["series"]}}, "key 'schema.metrics[0]': 'series' is not usable"),
        (
            {"alerts": {"warning": {"cpu pct": 1.0}}},
            "key 'alerts.warning': 'cpu pct' is not usable as a name",
        ),
        (
            {"alerts": {"profiles": {"db": {"critical": {"mem_used_pct": "x"}}}}},
            "key 'alerts.profiles.db.critical.mem_used_pct'",
        ),
        ({"alerts": {"warning": {"cpu_user_pct": float("nan")}}}, "key 'alerts.warning.cpu_user_pct'"),
        (
            {"alerts": {"profiles": {"web server": {}}}},
            "key 'alerts.profiles': 'web server' is not usable as a name",
        ),
        ({"buffer": {"fsync": "99999999999ms"}}, "key 'buffer.fsync': '99999999999ms' is not usable"),
        ({"daemon": {"data_dir": ""}}, "key 'daemon.data_dir': '' is not usable"),
        ({"daemon": {"run_dir": "/" + "r" * 110}}, "key 'daemon.run_dir': the socket path"),
        (
            {"endpoints": {"ingest": "localhost:5555"}},
            "key 'endpoints.ingest': 'localhost:5555' is not usable",
        ),
        (
            {"endpoints": {"ingest": "tcp://0.0.0.0:5555", "trainer": "tcp://0.0.0.0:5555"}},
            "key 'endpoints.trainer'",
        ),
        ({"endpoints": {"ingest": "tcp://*:5555"}}, "key 'endpoints.ingest': 'tcp://*:5555' is not usable"),
        (
            {"supervisor": {"heartbeat_interval_s": 0.1, "heartbeat_liveness": 3}},
            "key 'supervisor.heartbeat_liveness'",
        ),
        ({"supervisor": {"stop_grace_s": 1e300}}, "key 'supervisor.stop_grace_s'"),
        ({"model": {"hidden_sise": 8}}, "unknown key 'model.hidden_sise'"),
        ({"schema": {"metrics": ["a", "a"]}}, "key 'schema.metrics'"),
        ({"training": {"min_records": -1}}, "key 'training.min_records'"),
        ({"training": {"backend": "spark"}}, "key 'training.backend'"),
        ({"training": {"ray_address": "head"}}, "key 'training.ray_address': 'head' is not usable: a Ray"),
        ({"training": {"ray_address": "http://h:1"}}, "key 'training.ray_address'"),
        ({"training": {"ray_workers": 0}}, "key 'training.ray_workers'"),
        ({"training": {"ray_cpus_per_worker": 0}}, "key 'training.ray_cpus_per_worker'"),
        ({"training": {"ray_use_gpu": "yes"}}, "key 'training.ray_use_gpu'"),
        ({"training": {"ray_buffer_uri": "buffer"}}, "key 'training.ray_buffer_uri': 'buffer' is not usable"),
        ({"accuracy": {"issue_every_s": 0}}, "key 'accuracy.issue_every_s'"),
        ({"accuracy": {"issue_every_s": 1000}}, "must be a multiple of model.step_seconds (300)"),
        ({"accuracy": {"window_hours": 0}}, "key 'accuracy.window_hours'"),
        ({"accuracy": {"window": 24}}, "unknown key 'accuracy.window'"),
    ],
)
def test_errors_name_the_key(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(config.ConfigError) as err:
        config.from_dict(data, "my.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("my.toml: ")


def test_ray_keys_take_the_addresses_ray_does() -> None:
    assert config.from_dict({}).training.backend == "local"
    for address in ("auto", "10.0.0.5:6379", "ray://head.example:10001", "[::1]:6379"):
        training = config.from_dict({"training": {"backend": "ray", "ray_address": address}}).training
        assert training.ray_address == address
    for uri in ("", "/mnt/shared/buffer", "s3://bucket/nordiq/buffer"):
        assert config.from_dict({"training": {"ray_buffer_uri": uri}}).training.ray_buffer_uri == uri


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[api\nport=1")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(str(bad))
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(str(tmp_path / "missing.toml"))


def test_endpoints_default_to_ipc_under_run_dir() -> None:
    cfg = config.from_dict({"daemon": {"run_dir": "/r"}, "endpoints": {"ingest": "tcp://0.0.0.0:5555"}})
    assert cfg.endpoint("control") == "ipc:///r/control.sock"
    assert cfg.endpoint("ingest") == "tcp://0.0.0.0:5555"


def test_issue_every_s_follows_the_model_step() -> None:
    cfg = config.from_dict({"model": {"step_seconds": 60}, "accuracy": {"issue_every_s": 900}})
    assert cfg.accuracy.issue_every_s == 900


def test_narrowing_schema_metrics_alone_drops_the_built_in_entries_for_the_others() -> None:
    cfg = config.from_dict({"schema": {"metrics": ["cpu_user_pct", "net_in_mb_s"]}})
    assert cfg.alerts.warning == {"cpu_user_pct": 80.0, "net_in_mb_s": 500.0}
    assert set(cfg.alerts.critical) == {"cpu_user_pct", "net_in_mb_s"}
    assert cfg.alerts.profiles == {}  # the built-in profiles only held load_average
    assert cfg.model.targets == ("cpu_user_pct",)
    # None of the default targets left: every metric of the schema is forecast.
    assert config.from_dict({"schema": {"metrics": ["net_in_mb_s", "gpu_pct"]}}).model.targets == (
        "net_in_mb_s",
        "gpu_pct",
    )


def test_the_packaged_file_with_narrowed_metrics_loads(tmp_path: Path) -> None:
    # etc/nordiqd.toml writes the built-in thresholds out; written out is not chosen.
    packaged = (Path(__file__).resolve().parents[2] / "etc" / "nordiqd.toml").read_text()
    narrowed = tmp_path / "nordiqd.toml"
    narrowed.write_text(
        re.sub(r"(?ms)^metrics = \[.*?\]", 'metrics = ["cpu_user_pct", "mem_used_pct"]', packaged)
    )
    cfg = config.load(str(narrowed))
    assert cfg.schema.metrics == ["cpu_user_pct", "mem_used_pct"]
    assert set(cfg.alerts.warning) == {"cpu_user_pct", "mem_used_pct"}
    assert cfg.model.targets == ("cpu_user_pct", "mem_used_pct")


def test_what_the_user_wrote_is_still_checked_against_the_schema() -> None:
    narrow = {"metrics": ["cpu_user_pct"]}
    for data, key in [
        ({"schema": narrow, "alerts": {"warning": {"load_average": 9.0}}}, "alerts.warning"),
        (
            {"schema": narrow, "alerts": {"profiles": {"database": {"critical": {"load_average": 70.0}}}}},
            "alerts.profiles.database.critical",
        ),
        ({"schema": narrow, "model": {"targets": ["cpu_user_pct", "load_average"]}}, "model.targets"),
    ]:
        with pytest.raises(
            config.ConfigError, match=f"key '{re.escape(key)}': 'load_average' is not in schema.metrics"
        ):
            config.from_dict(data)


def test_the_default_issue_interval_follows_a_step_it_is_not_a_multiple_of() -> None:
    assert config.from_dict({"model": {"step_seconds": 7}}).accuracy.issue_every_s == 3605
    assert config.from_dict({"model": {"step_seconds": 86400}}).accuracy.issue_every_s == 86400
    with pytest.raises(config.ConfigError, match="key 'accuracy.issue_every_s'"):
        config.from_dict({"model": {"step_seconds": 7}, "accuracy": {"issue_every_s": 3601}})


def test_fsync_is_parsed_in_the_config() -> None:
    assert config.from_dict({}).buffer.fsync_policy == 1000
    assert config.from_dict({"buffer": {"fsync": "always"}}).buffer.fsync_policy == "always"
    assert config.from_dict({"buffer": {"fsync": "25ms"}}).buffer.fsync_policy == 25


def test_applying_names_the_keys_of_a_start_that_fails() -> None:
    with pytest.raises(
        config.ConfigError, match=r"key 'schema.metrics' / 'schema.profile_patterns': ValueError: no"
    ):
        with config.applying("schema.metrics", "schema.profile_patterns"):
            raise ValueError("no")
    with pytest.raises(OSError):  # only what it was told to catch
        with config.applying("api.port"):
            raise OSError("not a configuration error here")
    with pytest.raises(OSError):  # an address another process holds may be freed: restart
        with config.applying("api.port", catch=(OSError,)):
            raise OSError(errno.EADDRINUSE, "Address already in use")
