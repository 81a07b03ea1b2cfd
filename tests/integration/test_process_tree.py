"""The real process tree: start, faults, restarts, shutdown, control, notify."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd.roles import ORDER
from tests.harness import alive, wait_for

ROLES = list(ORDER)


def test_reaches_all_ready_quickly(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory()
    d.start()
    d.wait_ready(timeout=15.0)  # raises unless every role is ready within 15 s
    st = d.status()
    assert [r.name for r in st.roles] == ROLES
    assert all(r.pid and alive(r.pid) for r in st.roles)
    assert [r.restarts for r in st.roles] == [0, 0, 0, 0], d.log_text()
    # Started in order: each role's uptime is no longer than the one before it.
    uptimes = [r.uptime_s for r in st.roles]
    assert uptimes == sorted(uptimes, reverse=True)
    # Each role is spawned only once the one before it is ready (the README's promise).
    step_line = re.compile(r" supervisor: (?:spawned (\w+) pid=|(\w+) pid=\d+ ready in )")
    steps = [
        ("spawned", spawned) if spawned else ("ready", ready)
        for spawned, ready in step_line.findall(d.log_text())
    ]
    assert steps == [(step, role) for role in ROLES for step in ("spawned", "ready")], d.log_text()
    # The api serves cached bytes below the others' CPU priority ([api] nice = 5).
    base = os.getpriority(os.PRIO_PROCESS, d.proc.pid)
    nice = {r.name: os.getpriority(os.PRIO_PROCESS, r.pid) - base for r in st.roles if r.pid}
    assert nice == {"ingest": 0, "predictor": 0, "trainer": 0, "api": 5}


@pytest.mark.parametrize("role", ROLES)
def test_kill_9_role_is_ready_again_within_3s(daemon, role: str) -> None:  # type: ignore[no-untyped-def]
    old = daemon.role(role).pid
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()

    def back() -> bool:
        r = daemon.role(role)
        return r.state == "ready" and r.pid != old

    assert wait_for(back, 3.0), daemon.log_text()
    assert time.monotonic() - t0 < 3.0
    r = daemon.role(role)
    assert r.restarts == 1
    assert "SIGKILL" in (r.last_exit or "")
    others = [x for x in daemon.status().roles if x.name != role]
    assert all(x.restarts == 0 and x.state == "ready" for x in others)


def test_frozen_role_is_killed_and_restarted(daemon) -> None:  # type: ignore[no-untyped-def]
    old = daemon.role("trainer").pid
    os.kill(old, signal.SIGSTOP)
    assert wait_for(
        lambda: daemon.role("trainer").pid not in (None, old) and daemon.role("trainer").state == "ready",
        10.0,
    )
    r = daemon.role("trainer")
    assert r.restarts == 1
    assert "missed heartbeats" in (r.last_exit or "")
    assert not alive(old)


def test_role_crashing_at_start_backs_off_then_tree_stops(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime

    # Another process holds the predictor's port: the role fails at init, every time.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    d = daemon_factory(
        supervisor={"max_restarts": 3, "restart_period_s": 60.0, "backoff_initial_s": 0.3},
        endpoints={"predictor": f"tcp://127.0.0.1:{port}"},
    )
    d.start()
    code = d.wait_exit(timeout=30)
    squatter.close()
    log = d.log_text()
    assert code != 0
    spawns = [line for line in log.splitlines() if "spawned " in line]
    predictor = [line for line in spawns if "spawned predictor" in line]
    assert len(predictor) == 1 + 3, log  # the first start, then max_restarts restarts
    times = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in predictor]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    # The back-off doubles; each gap between spawns is that delay plus the seconds the
    # role took to start and fail, which a loaded machine makes noisy.
    delays = [
        float(x.split("restarts in ")[1].split(" s")[0])
        for x in log.splitlines()
        if "predictor restarts in" in x
    ]
    assert delays == [0.3, 0.6, 1.2], (delays, log)
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True)), (gaps, delays)
    assert "predictor exceeded its restart intensity" in log
    pids = [int(line.split("pid=")[1].split()[0]) for line in spawns]
    assert any("spawned ingest" in line for line in spawns)
    assert not any(alive(p) for p in pids)


def test_sigterm_stops_every_process_with_exit_0(daemon) -> None:  # type: ignore[no-untyped-def]
    pids = daemon.tree_pids()
    os.kill(daemon.proc.pid, signal.SIGTERM)
    assert daemon.wait_exit(timeout=5.0 * 4) == 0
    assert wait_for(lambda: not any(alive(p) for p in pids), 2.0)
    assert "supervisor stopped with exit code 0" in daemon.log_text()


def test_ctl_stop_stops_every_process_with_exit_0(daemon) -> None:  # type: ignore[no-untyped-def]
    pids = daemon.tree_pids()
    out = daemon.cli("ctl", "-c", str(daemon.config), "stop")
    assert out.returncode == 0, out.stderr
    assert daemon.wait_exit(timeout=20) == 0
    assert wait_for(lambda: not any(alive(p) for p in pids), 2.0)


def test_children_exit_by_themselves_when_supervisor_is_killed(daemon) -> None:  # type: ignore[no-untyped-def]
    children = daemon.tree_pids()[1:]
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    # liveness 6 x 0.25 s heartbeats, plus the role's own shutdown
    assert wait_for(lambda: not any(alive(p) for p in children), 8.0), daemon.log_text()
    assert "supervisor silent" in daemon.log_text()


def test_ctl_status_and_restart(daemon) -> None:  # type: ignore[no-untyped-def]
    out = daemon.cli("ctl", "-c", str(daemon.config), "status")
    assert out.returncode == 0
    for role in ROLES:
        assert role in out.stdout
    old = daemon.role("predictor").pid
    out = daemon.cli("ctl", "-c", str(daemon.config), "restart", "predictor")
    assert out.returncode == 0, out.stderr
    r = daemon.role("predictor")
    assert r.state == "ready" and r.pid != old and r.restarts == 1
    out = daemon.cli("ctl", "-c", str(daemon.config), "restart", "nosuch")
    assert out.returncode == 1 and "no role named 'nosuch'" in out.stderr


def test_concurrent_control_commands_are_queued(daemon) -> None:  # type: ignore[no-untyped-def]
    """Four requests in flight at once are answered in arrival order, each in its turn.

    They go out on one DEALER, so they reach the supervisor in this order; a restart
    holds the commands behind it until its role is ready again.
    """
    before = {r.name: r.pid for r in daemon.status().roles}
    cmds = [
        m.RestartRequest(role="trainer"),
        m.StatusRequest(),
        m.RestartRequest(role="ingest"),
        m.StatusRequest(),
    ]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = make_socket(ctx, zmq.DEALER, connect=daemon.endpoint("control"))
    try:
        for rid, msg in enumerate(cmds):
            sock.send_multipart([str(rid).encode(), codec.control.encode(msg)])
        replies: list[tuple[int, m.Message]] = []
        deadline = time.monotonic() + 60
        while len(replies) < len(cmds) and sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            rid_frame, payload = sock.recv_multipart()
            replies.append((int(rid_frame), codec.control.decode(payload)))
    finally:
        sock.close(0)
        ctx.term()
    assert [rid for rid, _ in replies] == [0, 1, 2, 3], (replies, daemon.log_text())
    restarted_trainer, first, restarted_ingest, second = (msg for _, msg in replies)
    assert isinstance(first, m.StatusReply) and isinstance(second, m.StatusReply)
    after_trainer = {r.name: r.pid for r in first.roles}
    after_both = {r.name: r.pid for r in second.roles}
    assert restarted_trainer == m.Ack(message=f"trainer restarted (pid {after_trainer['trainer']})")
    assert restarted_ingest == m.Ack(message=f"ingest restarted (pid {after_both['ingest']})")
    # The first status sees the trainer restarted and the ingest not yet; the second both.
    assert {r.name: r.restarts for r in first.roles} == {role: int(role == "trainer") for role in ROLES}
    assert {r.name: r.restarts for r in second.roles} == {
        role: int(role in ("trainer", "ingest")) for role in ROLES
    }
    assert after_trainer == {**before, "trainer": after_trainer["trainer"]} and after_trainer != before
    assert after_both == {**after_trainer, "ingest": after_both["ingest"]} and after_both != after_trainer
    assert all(r.state == "ready" for r in first.roles + second.roles)


def test_rest_health_and_status_auth(daemon) -> None:  # type: ignore[no-untyped-def]
    r = daemon.get("/health", key=None)
    assert r.status_code == 200
    assert r.json()["roles"] == {role: "ready" for role in ROLES}
    assert daemon.get("/status", key=None).status_code == 401
    bad = daemon.get("/status", key="x" * 43)
    assert bad.status_code == 401 and bad.json()["success"] is False
    ok = daemon.get("/status")
    assert ok.status_code == 200
    assert [r["name"] for r in ok.json()["roles"]] == ROLES
    spec = daemon.get("/openapi.json").json()
    assert "/health" in spec["paths"] and "/status" in spec["paths"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[daemon]\nbogus_key = 1\n", "daemon.bogus_key"),
        ('[api]\nport = "eighty"\n', "api.port"),
        ("[api]\nport = 0\n", "api.port"),
        ("[nosuchsection]\nx = 1\n", "nosuchsection"),
    ],
)
def test_bad_config_exits_with_config_error_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "nordiqd", "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 78
    assert needle in out.stderr


def test_key_file_readable_by_others_is_refused(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory()
    assert d.cli("keygen", "-c", str(d.config)).returncode == 0
    os.chmod(d.key_file, 0o644)
    out = d.cli("run", "-c", str(d.config))
    assert out.returncode == 78
    assert "readable or writable by others" in out.stderr


def test_sd_notify_ready_watchdog_stopping(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": sock_path})
    got: list[str] = []
    deadline = time.monotonic() + 20

    def drain() -> None:
        try:
            while True:
                got.extend(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            pass

    while time.monotonic() < deadline and got.count("WATCHDOG=1") < 3:
        drain()
    assert "READY=1" in got
    assert got.index("READY=1") < got.index("WATCHDOG=1")
    assert got.count("WATCHDOG=1") >= 3
    os.kill(d.proc.pid, signal.SIGTERM)
    assert d.wait_exit(20) == 0
    drain()
    assert "STOPPING=1" in got
    sock.close()
