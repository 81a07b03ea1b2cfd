"""A configuration `nordiqd run` accepts starts every role; one it cannot use stops at once.

Real daemons on temporary folders: a value the loader refuses ends `nordiqd run` with
exit 78 and the key in its message; a value a role still cannot use at its start (a
taken port) ends the tree with 78 and the key in the log, never a restart loop; and
configurations drawn by hypothesis inside every bound reach Ready with all roles.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from nordiqd import config
from supervisor import exitcodes
from tests.configgen import config_data
from tests.harness import Daemon
from tests.unit.test_config_property import named_key

# Keys a test daemon fixes: where it lives, its port and key, its (fast) heartbeats.
HARNESS_KEYS = frozenset(
    {
        "daemon.data_dir", "daemon.run_dir", "api.host", "api.port", "api.key_file",
        *(f"endpoints.{name}" for name in config.EndpointsConfig.__struct_fields__),
        "supervisor.heartbeat_interval_s", "supervisor.heartbeat_liveness",
        "supervisor.start_timeout_s", "supervisor.stop_grace_s",
    }
)  # fmt: skip


def _refused(d: Daemon, key: str, timeout: float = 10.0) -> str:
    """Runs `nordiqd run` on ``d``'s file; asserts exit 78 within ``timeout`` naming ``key``."""
    started = time.monotonic()
    done = d.cli("run", "-c", str(d.config), timeout=timeout)
    assert done.returncode == exitcodes.CONFIG, done.stderr
    assert time.monotonic() - started < timeout
    assert f"'{key}" in done.stderr, done.stderr
    return done.stderr


def test_a_bad_profile_name_is_refused_at_load_naming_the_key(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(schema={"profile_patterns": [["web*", "web server"]]})
    message = _refused(d, "schema.profile_patterns[0][1]", timeout=5.0)
    assert "'web server'" in message
    assert not (d.root / "data").exists()  # refused before anything was made


def test_narrowing_schema_metrics_alone_starts(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # The built-in alert tables and targets name metrics this schema leaves out.
    metrics = ["cpu_user_pct", "mem_used_pct", "net_in_mb_s"]
    d = daemon_factory(schema={"metrics": metrics})
    d.start()
    d.wait_ready(timeout=90)
    ok = d.post(
        "/feed/data",
        json={"records": [{"timestamp": time.time() - 5, "server_name": "web01", "cpu_user_pct": 12.5}]},
    )
    assert ok.status_code == 200, ok.text
    dropped = d.post(
        "/feed/data",
        json={"records": [{"timestamp": time.time() - 5, "server_name": "web01", "load_average": 1.0}]},
    )
    assert dropped.status_code == 400 and "load_average" in dropped.text
    assert d.get("/admin/training-stats").status_code == 200


def test_a_role_that_cannot_use_its_configuration_stops_the_tree_with_78(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # 192.0.2.1 (TEST-NET-1) is a well-formed address no machine has: the loader cannot
    # know that, the api role's start names the keys and exits 78, and the supervisor
    # stops instead of respawning it. (A port another process holds may be freed: that
    # role restarts with back-off, test_process_tree.py.)
    d = daemon_factory(api={"host": "192.0.2.1"})
    d.start()
    assert d.wait_exit(90) == exitcodes.CONFIG
    log = d.log_text()
    assert "key 'api.host' / 'api.port'" in log and "Cannot assign requested address" in log, log
    assert log.count("spawned api") == 1, log


def test_a_supervisor_endpoint_no_machine_has_stops_with_78(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(endpoints={"control": "tcp://192.0.2.1:5999"})
    d.start()
    assert d.wait_exit(30) == exitcodes.CONFIG
    log = d.log_text()
    assert "cannot bind the control endpoint tcp://192.0.2.1:5999" in log and "spawned" not in log, log


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
@given(data=config_data(usable=True, skip=HARNESS_KEYS))
def test_drawn_configurations_start_or_stop_naming_a_key(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]
) -> None:
    d = Daemon(tmp_path_factory.mktemp("drawn"), data)
    try:
        try:
            config.load(str(d.config))
        except config.ConfigError as exc:
            key = named_key(str(exc))
            assert key, f"the error names no key: {exc}"
            _refused(d, key)
            assume(False)  # counted as refused: each example kept is a daemon started
        d.start()
        d.wait_ready(timeout=120)
        assert {r.name for r in d.status().roles} == {"ingest", "predictor", "trainer", "api"}
    finally:
        d.kill_group()
