"""The .deb on this machine: install, run as nordiq without systemd, upgrade, remove, purge.

Slow (minutes) and it changes the machine (a package, a system user), so it is marked
``deb``: ``make test-deb`` runs it, ``make test`` does not. It needs root and dpkg. It
uses the package named by ``$NORDIQD_DEB`` (``make test-deb`` builds one with ``make deb``
first) or builds one with packaging/build-deb.sh. It refuses to run where nordiqd is
already installed, or where port 8000 is taken, rather than touch what it did not make,
and it purges the package and removes the user nordiq on the way out whatever happens.

Without systemd there is no RuntimeDirectory=: postinst makes /run/nordiqd (owned by
nordiq) when it sees no /run/systemd/system, and the test checks that it did.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.deb

ROOT = Path(__file__).resolve().parents[2]
CONF = Path("/etc/nordiqd/nordiqd.toml")
KEY = Path("/etc/nordiqd/api_key")
STATE = Path("/var/lib/nordiqd")
RUN = Path("/run/nordiqd")
HEALTH = "http://127.0.0.1:8000/health"
# Where the package may leave a trace; compared before install and after purge.
WATCHED = ["/etc", "/opt", "/var/lib", "/var/cache", "/run", "/usr/bin", "/lib/systemd", "/usr/share/doc",
           "/usr/share/lintian", "/dev/shm"]  # fmt: skip
# dpkg's own bookkeeping: it changes with every install, and was there before.
IGNORED = ("/var/lib/dpkg/", "/var/cache/debconf/", "/var/cache/apt/", "/var/lib/apt/", "/run/user/")
# The daemon's environment, as systemd would give it: no venv, no PYTHONPATH of ours.
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _sh(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _installed() -> str | None:
    proc = _sh("dpkg-query", "-W", "-f=${Status} ${Version}", "nordiqd", check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _snapshot() -> set[str]:
    paths: set[str] = set()
    for top in WATCHED:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if not path.startswith(IGNORED):
                    paths.add(path)
    return paths


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _nordiq_processes(uid: int) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{pid}: {cmd}")
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _feed(key: str) -> None:
    """POST one batch of records for two servers, as an agent would."""
    now = int(time.time())
    records = [
        {"timestamp": now - 60 * i, "server_name": f"web-00{n}", "cpu_user_pct": 10.0 + i}
        for i in range(10)
        for n in (1, 2)
    ]
    req = urllib.request.Request(
        HEALTH.replace("/health", "/feed/data"),
        data=json.dumps({"records": records}).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, resp.read()


class Run:
    """``runuser -u nordiq -- /usr/bin/nordiqd run -c /etc/nordiqd/nordiqd.toml``."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.fh = open(log, "ab")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "nordiq", "--", "/usr/bin/nordiqd", "run", "-c", str(CONF)],
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            env=ENV,
            cwd="/",
            start_new_session=True,
        )

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def wait_healthy(self, timeout: float = 300) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"nordiqd exited {self.proc.returncode} before /health:\n{self.tail()}")
            try:
                with urllib.request.urlopen(HEALTH, timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"no 200 from {HEALTH} within {timeout:.0f} s:\n{self.tail()}")

    def supervisor_pid(self) -> int:
        return int((RUN / "nordiqd.pid").read_text().split()[0])

    def stop(self, timeout: float = 60) -> int:
        # SIGTERM to the supervisor itself: runuser would forward it, but SIGKILLs its
        # child 2 s later, shorter than the supervisor's ordered stop.
        os.kill(self.supervisor_pid(), signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.fh.close()


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, float]]:
    """The package, the same package with a bumped version, and the build time (0 if given).

    What it builds (gigabytes) is deleted afterwards.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root: it installs a package and creates a system user")
    for tool in ("dpkg", "dpkg-deb", "runuser"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: this test runs on Debian")
    if (state := _installed()) is not None:
        pytest.skip(f"nordiqd is already installed here ({state}); the test would purge it")
    if not _port_free(8000):
        pytest.skip("127.0.0.1:8000 is in use (a demo?); the packaged config listens there")
    out = tmp_path_factory.mktemp("debs")
    built = 0.0
    if given := os.environ.get("NORDIQD_DEB"):
        deb = Path(given).resolve()
        assert deb.is_file(), f"NORDIQD_DEB={given} is not a file"
    else:
        start = time.monotonic()
        _sh(str(ROOT / "packaging" / "build-deb.sh"), str(out), timeout=3600)
        built = time.monotonic() - start
        (deb,) = out.glob("nordiqd_*.deb")
    # The same package with a bumped version: unpacked, Version changed, repacked
    # uncompressed (fast; dpkg installs it the same way).
    tree = out / "bumped"
    _sh("dpkg-deb", "-R", str(deb), str(tree))
    control = tree / "DEBIAN" / "control"
    lines = control.read_text().splitlines()
    version = next(line.split(": ", 1)[1] for line in lines if line.startswith("Version: "))
    bumped_version = version + "+upgrade1"
    control.write_text(
        "\n".join(f"Version: {bumped_version}" if ln.startswith("Version: ") else ln for ln in lines) + "\n"
    )
    bumped = out / f"nordiqd_{bumped_version}_{deb.name.rsplit('_', 1)[1]}"
    _sh("dpkg-deb", "--root-owner-group", "-Znone", "--build", str(tree), str(bumped))
    shutil.rmtree(tree)
    yield deb, bumped, built
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def machine(debs: tuple[Path, Path, float]) -> Iterator[list[Run]]:
    """Runs started by the test; whatever happens, they are killed and nordiqd is purged."""
    runs: list[Run] = []
    yield runs
    for r in runs:
        r.kill()
    if _installed() is not None:
        _sh("dpkg", "--purge", "--force-all", "nordiqd", check=False)
    if _sh("getent", "passwd", "nordiq", check=False).returncode == 0:
        _sh("deluser", "--quiet", "--system", "nordiq", check=False)
    if _sh("getent", "group", "nordiq", check=False).returncode == 0:
        _sh("delgroup", "--quiet", "--system", "nordiq", check=False)


@pytest.mark.timeout(3600)
def test_install_run_upgrade_remove_purge(
    debs: tuple[Path, Path, float], machine: list[Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deb, bumped, built = debs
    timings = {"build": built}
    before = _snapshot()

    # --- install ---------------------------------------------------------------------
    t = time.monotonic()
    _sh("dpkg", "-i", str(deb))
    timings["dpkg -i"] = time.monotonic() - t
    user = pwd.getpwnam("nordiq")
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin", user
    st = KEY.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, user.pw_gid), "key not 0640 root:nordiq"
    st = STATE.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o750, user.pw_uid), "/var/lib/nordiqd not 0750 nordiq"
    if not Path("/run/systemd/system").is_dir():
        assert RUN.stat().st_uid == user.pw_uid, "postinst did not give nordiq /run/nordiqd"
    assert Path("/opt/nordiqd/bin/nordiqd").read_text().splitlines()[0] == "#!/opt/nordiqd/bin/python"
    site = next(Path("/opt/nordiqd/lib").glob("python3*/site-packages"))
    assert any((site / "torch" / "__pycache__").glob("*.pyc")), "postinst did not compile the byte code"
    assert _sh("/usr/bin/nordiqd", "version").stdout.startswith("nordiqd ")
    if analyze := shutil.which("systemd-analyze"):
        # Installed, /usr/bin/nordiqd exists: the plain verify of the acceptance criteria.
        proc = _sh(analyze, "verify", "--man=no", "/lib/systemd/system/nordiqd.service", check=False)
        assert proc.returncode == 0 and "nordiqd" not in proc.stdout + proc.stderr, proc.stderr
    key = KEY.read_text()

    # --- run as nordiq, without systemd; it writes a buffer --------------------------
    run = Run(tmp_path / "nordiqd-1.log")
    machine.append(run)
    timings["start to /health 200"] = run.wait_healthy()
    _feed(key.strip())
    assert run.stop() == 0, f"nordiqd did not stop cleanly:\n{run.tail()}"
    assert any(p.is_file() for p in (STATE / "buffer").rglob("*")), "the fed batch left no buffer file"

    # A model directory stand-in (not a tft_model_* name, so the daemon ignores it) and
    # an edited config: the upgrade must keep both, and the buffer the daemon wrote.
    marker = STATE / "models" / "kept-by-upgrade" / "manifest.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"version": "stand-in"}')
    for p in (marker, marker.parent):
        os.chown(p, user.pw_uid, user.pw_gid)
    edited = CONF.read_text().replace("retention_days = 60 ", "retention_days = 45 ")
    assert edited != CONF.read_text()
    CONF.write_text(edited)
    kept = {p: p.read_bytes() for p in STATE.rglob("*") if p.is_file()}

    # --- upgrade ---------------------------------------------------------------------
    t = time.monotonic()
    _sh("dpkg", "-i", str(bumped))
    timings["dpkg -i (upgrade)"] = time.monotonic() - t
    assert _installed() == f"install ok installed {bumped.name.split('_')[1]}"
    assert CONF.read_text() == edited, "the upgrade replaced the edited config"
    assert KEY.read_text() == key, "the upgrade replaced the API key"
    lost = [str(p) for p, body in kept.items() if not p.is_file() or p.read_bytes() != body]
    assert not lost, f"the upgrade lost or changed: {lost}"

    # Runs on the kept data, and is left running: dpkg -r must stop it (prerm).
    run = Run(tmp_path / "nordiqd-2.log")
    machine.append(run)
    timings["start to /health 200 (upgraded)"] = run.wait_healthy()
    supervisor = run.supervisor_pid()

    # --- remove: keeps config, key, user, state --------------------------------------
    t = time.monotonic()
    _sh("dpkg", "-r", "nordiqd")
    timings["dpkg -r (stops the daemon)"] = time.monotonic() - t
    assert run.proc.wait(10) == 0, f"prerm did not stop the daemon cleanly:\n{run.tail()}"
    assert not Path(f"/proc/{supervisor}").exists()
    assert not _nordiq_processes(user.pw_uid), _nordiq_processes(user.pw_uid)
    assert _installed() == f"deinstall ok config-files {bumped.name.split('_')[1]}"
    for path in (CONF, KEY, *kept):
        assert path.is_file(), f"dpkg -r removed {path}, which README says is kept"
    assert CONF.read_text() == edited
    assert pwd.getpwnam("nordiq").pw_uid == user.pw_uid
    for gone in ("/opt/nordiqd", "/usr/bin/nordiqd", "/lib/systemd/system/nordiqd.service", str(RUN)):
        assert not os.path.lexists(gone), f"dpkg -r left {gone}"

    # --- purge: nothing left ---------------------------------------------------------
    _sh("dpkg", "-P", "nordiqd")
    assert _installed() is None
    assert _sh("getent", "passwd", "nordiq", check=False).returncode != 0, "purge left the user"
    assert _sh("getent", "group", "nordiq", check=False).returncode != 0, "purge left the group"
    # The machine is shared (other tests make files in /dev/shm, /run...): a new path is
    # the package's if it names nordiq; what the daemon made belongs to nordiq's uid.
    left = sorted(p for p in _snapshot() - before if "nordiq" in p)
    assert not left, f"dpkg -P left: {left[:20]}"
    owned = _sh(
        "find", "/", "/run", "/dev/shm", "/tmp", "-xdev",
        "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/work", ")",
        "-prune", "-o", "-uid", str(user.pw_uid), "-print", check=False,
    ).stdout.split()  # fmt: skip
    assert not owned, f"files of the removed user nordiq (uid {user.pw_uid}) remain: {owned[:20]}"

    with capsys.disabled():
        print("\n" + "\n".join(f"  {k}: {v:.1f} s" for k, v in timings.items()))
        print(f"  package: {deb.name}, {deb.stat().st_size / 2**20:.0f} MiB")
