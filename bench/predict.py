"""Prediction benchmark: fleet forecast latency, GET /predictions/current under load,
during model swaps and while a training job runs.

Prints one line per figure with its target, PASS/FAIL and a reference measured in the
same run:

1. In process, default model size (ModelSpec defaults: 288-step encoder, 96-step
   horizon, hidden 32): ``WindowForecaster.forecast`` against ``predict_via_dataframe``
   (``model.predict(DataFrame)``) on the same windows, for 100 and ``--servers``
   servers, with the torch threads the predictor uses; then one whole
   ``ForecastCycle.compute`` (snapshot, forecast, clip, risk, encode) for the fleet.
   The model is a 1-epoch fit on a ``--train-servers`` simulated fleet (few windows:
   its accuracy is irrelevant here, its shape is the default one).
   Then the cost of live accuracy (``bench/live_cost.py``): the ledger's memory with the
   issues a horizon keeps outstanding, holding that pass's forecasts, and the scoring
   (issue + observe of one step) as a share of the pass.
2. A real ``nordiqd run`` on a temporary directory, ``--servers`` x 42 h of 5-minute
   history sent through the zmq ingest client (42 h so a training job has a window;
   the predictor needs 24 h), six published versions of that model. ``--clients``
   processes fetch ``GET /predictions/current`` back to back for ``--seconds``
   (``--runs`` times): p50/p99 latency and the body size.
3. The same while ``current`` is pointed at ``--swaps`` (5) other versions in turn (the atomic
   symlink replace publish uses), the next swap ``--swap-gap`` seconds after the
   previous one answered: failed requests, p99 against the steady p99, and per swap the
   seconds until ``/predictions/current`` (first client response carrying the version),
   ``/predictions/<one server>`` and ``/admin/model-info`` show the new version.
4. ``POST /admin/trigger-training`` at the default model size; once its fit loop runs,
   the same client load (p99 against idle), then zmq ingest records/s against the
   idle rate measured just before the job started and
   just after it was cancelled (their mean).

Clients are separate processes (one http.client keep-alive connection each) so their
parsing does not share a GIL; they run on the same 2 cores as the daemon, as a
dashboard on the box would. The machine is shared: every line carries the load average.

How it stops: the daemon's process group is killed and the temporary directory removed
on exit, also on Ctrl-C or an error; client processes are joined or terminated.

Usage: ``python bench/predict.py [--servers N] [--quick] [--json OUT]``
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import live_cost  # noqa: E402  (bench/live_cost.py, next to this script)
import routing_cost  # noqa: E402  (bench/routing_cost.py)

STEP_S = 300
SEED = 7
HISTORY_H = 42  # encoder 24 h + horizon 8 h + 8 h validation hold-out, + 2 h slack
TARGETS = {
    "forecast_s": 5.0,
    "speedup": 3.0,
    "p99_ms": 100.0,
    "swap_failed": 0,
    "swap_p99_x": 2.0,
    "swap_visible_s": 2.0,
    "train_p99_x": 2.0,
    "train_ingest_share": 0.5,
}
_VERSION = re.compile(rb'"version":"([^"]*)"')
_GENERATED = re.compile(rb'"generated_at":"([^"]*)"')


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def why(lat: dict[str, Any]) -> str:
    """The first failure of a measurement, for its line."""
    return f" [first failure: {lat['failures'][0][:90]!r}]" if lat.get("failures") else ""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# -- 1. the forecast, in process ----------------------------------------------------------


def train_model(models: Path, train_servers: int, end: int, versions: int) -> tuple[list[str], float]:
    """Fit a default-size TFT for one epoch of few windows; publish it ``versions`` times."""
    import torch

    from nordiqd.model import artifacts, fitting
    from nordiqd.model.params import ModelSpec
    from nordiqd.simulate import SimulatedFleet

    torch.set_num_threads(2)
    table = (
        SimulatedFleet(train_servers, seed=SEED, interval_s=STEP_S)
        .generate(end - HISTORY_H * 3600, end)
        .to_arrow()
    )
    t = time.perf_counter()
    trained = fitting.fit(table, ModelSpec(max_windows_per_epoch=256), epochs=1, threads=2)
    fit_s = time.perf_counter() - t
    for _ in range(versions):
        artifacts.publish(models, trained)
    return artifacts.list_versions(models), fit_s


def fleet_windows(servers: int, end: int) -> Any:
    """Rolling windows of a simulated fleet, refilled from 25 h of 5-minute records."""
    from nordiqd import config as nconfig
    from nordiqd.predict.windows import RollingWindows
    from nordiqd.simulate import SimulatedFleet

    cfg = nconfig.from_dict({})
    table = SimulatedFleet(servers, seed=SEED, interval_s=STEP_S).generate(end - 25 * 3600, end).to_arrow()
    windows = RollingWindows(cfg.schema.metrics, cfg.model.step_seconds, cfg.model.encoder_steps)
    windows.refill(table)
    return cfg, windows


def forecast_figures(args: argparse.Namespace, models: Path, end: int, report: dict[str, Any]) -> list[str]:
    import numpy as np
    import torch

    from nordiqd.model import artifacts
    from nordiqd.model.forecast import WindowForecaster
    from nordiqd.model.reference import predict_via_dataframe
    from nordiqd.serving.cycle import ForecastCycle
    from nordiqd.serving.slot import ReloadStats, ServedModel

    model = artifacts.load(models / artifacts.CURRENT)
    cfg, windows = fleet_windows(args.servers, end)
    torch.set_num_threads(cfg.predictor.torch_threads)
    pcfg = cfg.predictor
    # As the predictor runs it, and on one thread: the reference gets one thread too.
    forecaster = WindowForecaster(model, batch_size=pcfg.forecast_batch_size, workers=args.forecast_workers)
    single = WindowForecaster(model, batch_size=pcfg.forecast_batch_size, workers=1)
    now = end - 1  # inside the bucket of the last record
    snap = windows.snapshot(list(model.spec.targets), now)
    assert np.isfinite(snap.windows).all(), "the reference path needs complete windows"
    lines: list[str] = []
    report["forecast"] = {}
    for n in sorted({min(100, args.servers), args.servers}):
        w, names, profiles = snap.windows[:n], snap.names[:n], snap.profiles[:n]
        last = snap.last_bucket_start[:n]
        ours, ref, one = [], [], []
        for run in range(args.runs):
            t = time.perf_counter()
            fast = forecaster.forecast(w, names, profiles, last).values
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            single.forecast(w, names, profiles, last)
            one.append(time.perf_counter() - t)
            t = time.perf_counter()
            slow = predict_via_dataframe(model, w, names, profiles, last, batch_size=pcfg.forecast_batch_size)
            ref.append(time.perf_counter() - t)
            print(
                f"  {n} servers run {run + 1}: batched {ours[-1]:.2f} s "
                f"(1 worker: {one[-1]:.2f} s), model.predict(DataFrame) {ref[-1]:.2f} s ({load()})",
                flush=True,
            )
        # A window whose target never moves has scale = eps in the EncoderNormalizer: both
        # paths then feed float rounding / 1.2e-7 to the network, which differs in the noise.
        flat = (np.ptp(w, axis=1) == 0).any(axis=1)
        gap = np.abs(fast - slow).max(axis=(1, 2, 3))
        diff, diff_varying = float(gap.max()), float(gap[~flat].max(initial=0.0))
        best, med = min(ours), statistics.median(ours)
        obest, omed = min(one), statistics.median(one)
        rbest, rmed = min(ref), statistics.median(ref)
        ratio = rmed / omed
        ok = ratio >= TARGETS["speedup"] and (n < args.servers or med <= TARGETS["forecast_s"])
        report["forecast"][n] = {
            "best_s": best,
            "median_s": med,
            "workers": forecaster.workers,
            "one_worker_best_s": obest,
            "one_worker_median_s": omed,
            "ref_best_s": rbest,
            "ref_median_s": rmed,
            "ratio_median": ratio,
            "ratio_best": rbest / obest,
            "ratio_as_served": rmed / med,
            "max_abs_diff": diff,
            "max_abs_diff_varying": diff_varying,
            "flat_windows": int(flat.sum()),
            "pass": ok,
            "load": load(),
        }
        target = f"<= {TARGETS['forecast_s']:g} s and " if n == args.servers else ""
        lines.append(
            f"{f'fleet forecast {n:,} servers':<32} {best:>7.2f} s best, {med:.2f} s median "
            f"(WindowForecaster as the predictor runs it: batch {forecaster.batch_size}, "
            f"{forecaster.workers} workers x {torch.get_num_threads()} torch thread)"
            f" | target {target}>= {TARGETS['speedup']:g}x {verdict(ok)}"
            f" | ref: model.predict(DataFrame) {rbest:.2f} s best, {rmed:.2f} s median, 1 thread, against "
            f"WindowForecaster on 1 thread {obest:.2f} / {omed:.2f} s: x{ratio:.1f} median, "
            f"x{rbest / obest:.1f} best (x{rmed / med:.1f} as served); max |diff| {diff_varying:.1e} "
            f"({n - int(flat.sum())} windows), {diff:.1e} with the {int(flat.sum())} windows that have "
            f"a constant target ({load()})"
        )
    version = str(model.version)
    served = ServedModel(
        version=version, path=str(model.path), loaded_at="", manifest=model.manifest, forecaster=forecaster
    )
    slot = SimpleNamespace(served=served, stats=ReloadStats())
    cycle = ForecastCycle(cfg, windows, slot)  # type: ignore[arg-type]  # runs one pass already
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        last_pass = cycle.compute(now)
        times.append(time.perf_counter() - t)
    bodies = last_pass.bodies
    forecast_s = report["forecast"][args.servers]["median_s"]
    report["cycle"] = {
        "best_s": min(times),
        "median_s": statistics.median(times),
        "body_bytes": (plain := len(gzip.decompress(bodies.predictions_gzip))),
        "body_gzip_bytes": len(bodies.predictions_gzip),
        "load": load(),
    }
    lines.append(
        f"{f'ForecastCycle.compute {args.servers:,}':<32} {min(times):>7.2f} s best, "
        f"{statistics.median(times):.2f} s "
        f"median (snapshot + forecast + clip + risk + encode + gzip; body {plain / 1e6:.1f} MB, "
        f"{len(bodies.predictions_gzip) / 1e6:.1f} MB gzip)"
        f" | target: none (the forecast's <= {TARGETS['forecast_s']:g} s covers it) "
        f"| ref: forecast alone {forecast_s:.2f} s median, "
        f"rest {statistics.median(times) - forecast_s:.2f} s ({load()})"
    )
    accuracy, live = live_cost.accuracy_figures(
        cfg, windows, cycle, now, snap, last_pass.outlook, statistics.median(times), args.runs, load, report
    )
    lines += accuracy
    lines += routing_cost.routing_figures(cfg, windows, cycle, now, live, args.runs, load, report)
    return lines


# -- 2-4. the daemon ------------------------------------------------------------------------


def client_loop(url: str, key: str, path: str, stop: Any, out: Any) -> None:
    """One client process: GET ``path`` back to back until ``stop``; put its records on ``out``.

    A record is (start, end, status, version, generated_at, bytes); status -1 is an
    exception (connection reset, timeout).
    """
    if url.startswith("ipc://"):
        return zmq_client_loop(url, stop, out)
    host, port = url.removeprefix("http://").split(":")
    records: list[tuple[float, float, int, str, str, int]] = []
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    # As browsers and requests do: the daemon sends the fleet body gzip-compressed.
    headers = {"X-API-Key": key, "Accept-Encoding": "gzip"}
    while not stop.is_set():
        t0 = time.time()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            t1 = time.time()
            wire = len(body)
            if resp.getheader("Content-Encoding") == "gzip":
                # Only the head is needed for the version; the latency ends at t1.
                body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, 400)
            if resp.status != 200:
                records.append(
                    (t0, time.time(), resp.status, body[:200].decode(errors="replace"), "", len(body))
                )
                continue
            head = body[:400]
            v, g = _VERSION.search(head), _GENERATED.search(head)
            records.append(
                (
                    t0,
                    t1,
                    200,
                    v.group(1).decode() if v else "",
                    g.group(1).decode() if g else "",
                    wire,
                )
            )
        except (OSError, http.client.HTTPException) as exc:
            records.append((t0, time.time(), -1, repr(exc)[:200], "", 0))
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.close()
    out.put(records)


def zmq_client_loop(endpoint: str, stop: Any, out: Any) -> None:
    """``client_loop`` straight to the predictor's service socket: the REST layer left out."""
    import zmq

    from ipc import codec
    from ipc import messages as m
    from ipc.client import RequestClient

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    client = RequestClient(ctx, endpoint, codec.service_replies, timeout_s=10.0, retries=0)
    records: list[tuple[float, float, int, str, str, int]] = []
    while not stop.is_set():
        t0 = time.time()
        try:
            reply = client.request(m.PredictionsRequest())
            head = reply.body[:400]
            v = _VERSION.search(head)
            records.append((t0, time.time(), 200, v.group(1).decode() if v else "", "", len(reply.body)))
        except Exception as exc:  # a timeout is a failed request here
            records.append((t0, time.time(), -1, repr(exc)[:200], "", 0))
    client.close()
    ctx.term()
    out.put(records)


@contextlib.contextmanager
def clients(url: str, key: str, n: int, path: str = "/predictions/current") -> Iterator[list[Any]]:
    """``n`` client processes hammering ``path``; the yielded list holds their records after exit."""
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=client_loop, args=(url, key, path, stop, out), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    records: list[Any] = []
    try:
        yield records
    finally:
        stop.set()
        for _ in procs:
            try:
                records.extend(out.get(timeout=120))
            except Exception:  # a client that died: its records are lost, the others count
                break
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()


def latency(records: list[Any], since: float = 0.0, until: float = math.inf) -> dict[str, Any]:
    """p50/p99 in ms, requests, failures and body size of the records started in [since, until)."""
    window = [r for r in records if since <= r[0] < until]
    ok = [(r[1] - r[0]) * 1000 for r in window if r[2] == 200]
    failed = [r for r in window if r[2] != 200]
    span = (max(r[1] for r in window) - min(r[0] for r in window)) if window else math.nan
    return {
        "p50_ms": pct(ok, 50),
        "p99_ms": pct(ok, 99),
        "max_ms": max(ok, default=math.nan),
        "requests": len(window),
        "failed": len(failed),
        "failures": [f"{r[2]} {r[3]}" for r in failed[:5]],
        "req_per_s": len(window) / span if window else 0.0,
        "body_bytes": statistics.median([r[5] for r in window if r[2] == 200] or [0]),
        "views": len({r[4] for r in window if r[2] == 200}),
    }


def load_clients(d: Any, args: argparse.Namespace, seconds: float, url: str = "") -> dict[str, Any]:
    with clients(url or d.url, d.key, args.clients) as records:
        time.sleep(1.0 + seconds)  # 1 s for the clients to start; left out below
        t_end = time.time()
    lat = latency(records, since=t_end - seconds, until=t_end)
    return lat | {"load": load()}


class BodyPool:
    """msgpack ingest bodies, one fleet step of 1,000 records each; ``body(i)`` never repeats."""

    def __init__(self, servers: int, t0: float, steps: int) -> None:
        import msgspec

        from nordiqd.simulate import SimulatedFleet

        self.t0, self.steps, self.span = t0, steps, steps * 5.0
        self.bodies: list[bytes] = []
        self.stamps: list[float] = []
        self.records = 0
        for batch in SimulatedFleet(servers, seed=SEED + 1, interval_s=5.0).batches(
            t0, t0 + self.span, max_records=1000
        ):
            self.stamps.append(float(batch.timestamps[0]))
            self.bodies.append(msgspec.msgpack.encode({"records": batch.to_records()}))

    def body(self, i: int) -> bytes:
        k, j = divmod(i, len(self.bodies))
        if k == 0:
            return self.bodies[j]
        ts = self.stamps[j]
        return self.bodies[j].replace(
            b"\xcb" + struct.pack(">d", ts), b"\xcb" + struct.pack(">d", ts + k * self.span)
        )


def ingest_rate(endpoint: str, pool: BodyPool, seconds: float, senders: int = 2) -> dict[str, Any]:
    """zmq ingest records/s over ``seconds`` from ``senders`` threads, acks counted in the window."""
    import itertools

    from nordiqd.agent import IngestClient

    counter = itertools.count()
    stop = threading.Event()
    acks: list[tuple[float, int]] = []
    errors: list[BaseException] = []

    def send(client: IngestClient) -> None:
        try:
            while not stop.is_set():
                n = client.send_encoded(pool.body(next(counter))).accepted
                acks.append((time.perf_counter(), n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    cs = [IngestClient(endpoint, timeout_s=30.0, retries=0) for _ in range(senders)]
    threads = [threading.Thread(target=send, args=(c,), daemon=True) for c in cs]
    start = time.perf_counter() + 1.0
    for t in threads:
        t.start()
    time.sleep(1.0 + seconds)
    stop.set()
    for t in threads:
        t.join(60)
    for c in cs:
        c.close()
    if errors:
        raise errors[0]
    got = sum(n for at, n in acks if start <= at < start + seconds)
    return {"records_per_s": got / seconds, "load": load()}


def start_daemon(root: Path, args: argparse.Namespace) -> Any:
    from nordiqd import config as nconfig
    from tests.harness import Daemon

    supervision = {
        k: getattr(nconfig.SupervisorConfig(), k) for k in nconfig.SupervisorConfig.__struct_fields__
    }
    d = Daemon(
        root,
        {
            "supervisor": supervision,  # production heartbeats, not the tests' fast ones
            "training": {"min_records": 1000, "training_days": 2},
            "predictor": {"forecast_workers": args.forecast_workers},
        },
    )
    d.start()
    d.wait_ready(timeout=180)
    return d


def backfill(d: Any, servers: int, end: float) -> tuple[int, float]:
    from nordiqd.agent import IngestClient
    from nordiqd.simulate import SimulatedFleet

    t = time.perf_counter()
    sent = 0
    with IngestClient(d.endpoint("ingest"), timeout_s=30) as client:
        for batch in SimulatedFleet(servers, seed=SEED, interval_s=STEP_S).batches(
            end - HISTORY_H * 3600, end, 1000
        ):
            sent += client.send(batch.to_records()).accepted
    return sent, time.perf_counter() - t


def wait_quiet(d: Any, role: str = "ingest", share: float = 0.05, timeout: float = 120.0) -> float:
    """Wait until ``role`` uses under ``share`` of a core over a second (its compaction of
    the records a measurement just sent is done), so the next figure measures one thing."""
    from tests.harness import cpu_seconds

    pid, t0 = d.role(role).pid, time.monotonic()
    while time.monotonic() - t0 < timeout:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < share:
            break
    return time.monotonic() - t0


def wait_for(pred: Any, timeout: float, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if value := pred():
                return value
        time.sleep(step)
    return None


def served_version(d: Any, path: str) -> str | None:
    """The model version ``path`` answers with (None on an error: the clients count those)."""
    try:
        r = d.get(path)
    except OSError:
        return None
    if r.status_code != 200:
        return None
    body = r.json()
    return body["version"] if "version" in body else body["model"]["version"]  # type: ignore[no-any-return]


def swap_figures(d: Any, args: argparse.Namespace, versions: list[str], probe: str) -> dict[str, Any]:
    """``--swaps`` swaps of ``current`` under client load; per swap the seconds until each view shows it."""
    from nordiqd.model import artifacts

    models = d.root / "data" / "models"
    swaps: list[dict[str, Any]] = []
    with clients(d.url, d.key, args.clients) as records:
        time.sleep(1.0 + args.swap_gap)
        t_first = time.time()
        for version in versions:
            t_swap = time.time()
            artifacts.point_current(models, version)
            seen: dict[str, float] = {}
            deadline = t_swap + 60
            while len(seen) < 2 and time.time() < deadline:
                for name, path in (("model_info", "/admin/model-info"), ("probe", f"/predictions/{probe}")):
                    if name not in seen and served_version(d, path) == version:
                        seen[name] = time.time() - t_swap
                time.sleep(0.02)
            swaps.append({"version": version, "t_swap": t_swap, **seen})
            time.sleep(args.swap_gap)
        t_last = time.time()
    for s in swaps:
        first = min(
            (r[1] for r in records if r[2] == 200 and r[3] == s["version"] and r[1] > s["t_swap"]),
            default=math.nan,
        )
        s["current"] = first - s["t_swap"]
    return {"swaps": swaps, **latency(records, since=t_first, until=t_last), "load": load()}


def training_figures(
    d: Any, args: argparse.Namespace, idle_pool: BodyPool, busy_pool: BodyPool, seconds: float
) -> dict[str, Any]:
    idle_ingest = ingest_rate(d.endpoint("ingest"), idle_pool, args.ingest_seconds)
    print(f"  ingest idle {idle_ingest['records_per_s']:,.0f} records/s ({idle_ingest['load']})", flush=True)
    print(f"  ingest quiet again after {wait_quiet(d):.0f} s", flush=True)
    r = d.post("/admin/trigger-training?epochs=1&incremental=false")
    assert r.status_code in (200, 202), r.text
    job = r.json()["job_id"]
    t0 = time.monotonic()

    def status() -> dict[str, Any]:
        return d.get(f"/admin/training-status?job_id={job}").json()  # type: ignore[no-any-return]

    fitting = wait_for(
        lambda: (s := status())["status"] == "running" and s["progress_pct"] > 0 and s, args.train_wait, 1.0
    )
    to_fit = time.monotonic() - t0
    if not fitting:
        raise RuntimeError(f"the training job did not reach its fit loop in {args.train_wait} s: {status()}")
    print(f"  training job {job} in its fit loop after {to_fit:.0f} s", flush=True)
    busy = load_clients(d, args, seconds)
    during_predict = status()
    busy_ingest = ingest_rate(d.endpoint("ingest"), busy_pool, args.ingest_seconds)
    during_ingest = status()
    d.post("/admin/cancel-training")
    wait_for(lambda: status()["status"] in ("cancelled", "completed", "failed"), 60, 0.5)
    after_pool = BodyPool(1000, idle_pool.t0 + 2 * 86400, 100)  # new records, still outside training_days
    idle_after = ingest_rate(d.endpoint("ingest"), after_pool, args.ingest_seconds)
    print(
        f"  ingest idle after the job {idle_after['records_per_s']:,.0f} records/s ({idle_after['load']})",
        flush=True,
    )
    idle_ingest = {
        "records_per_s": (idle_ingest["records_per_s"] + idle_after["records_per_s"]) / 2,
        "before": idle_ingest,
        "after": idle_after,
    }
    return {
        "job": job,
        "seconds_to_fit_loop": to_fit,
        "predict": busy,
        "ingest_idle": idle_ingest,
        "ingest_busy": busy_ingest,
        "status_after_predict": during_predict,
        "status_after_ingest": during_ingest,
    }


def daemon_figures(
    args: argparse.Namespace, tmp: Path, models: Path, end: int, report: dict[str, Any]
) -> list[str]:
    now = time.time()
    print(
        f"encoding ingest bodies; starting a daemon with {len(os.listdir(models))} model versions ...",
        flush=True,
    )
    idle_pool = BodyPool(1000, math.floor(now / 86400 - 10) * 86400, 100)
    busy_pool = BodyPool(1000, math.floor(now / 86400 - 6) * 86400, 100)
    root = tmp / "daemon"
    shutil.copytree(models, root / "data" / "models", symlinks=True)
    d = start_daemon(root, args)
    try:
        sent, took = backfill(d, args.servers, end)
        print(f"  backfill: {sent:,} records in {took:.1f} s ({sent / took:,.0f}/s, {load()})", flush=True)
        r = d.post("/admin/reload-model")  # a forced reload recomputes the view now, not at the next step
        assert r.status_code == 200, r.text
        body = wait_for(
            lambda: (
                (b := d.get("/predictions/current").json())["summary"]["forecast"] == args.servers
                and b["model"]["kind"] == "tft"
                and b
            ),
            120,
            0.5,
        )
        if not body:
            raise RuntimeError(
                "the fleet never got forecasts: "
                + json.dumps(d.get("/predictions/current").json()["summary"])
            )
        probe = sorted(body["servers"])[0]
        del body
        steady = []
        print(f"  ingest quiet after the backfill in {wait_quiet(d):.0f} s", flush=True)
        for run in range(args.runs):
            steady.append(load_clients(d, args, args.seconds))
            s = steady[-1]
            print(
                f"  steady run {run + 1}: p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, "
                f"{s['requests']} "
                f"requests, {s['failed']} failed, {s['views']} view(s){why(s)} ({s['load']})",
                flush=True,
            )
        direct = load_clients(d, args, args.seconds, url=d.endpoint("predictor"))
        print(
            f"  predictor over zmq: p50 {direct['p50_ms']:.0f} ms, p99 {direct['p99_ms']:.0f} ms, "
            f"{direct['requests']} requests, {direct['failed']} failed ({direct['load']})",
            flush=True,
        )
        current = os.readlink(root / "data" / "models" / "current")
        others = [
            v
            for v in sorted(os.listdir(root / "data" / "models"))
            if v.startswith("tft_model_") and v != current
        ]
        swap = swap_figures(d, args, [others[i % len(others)] for i in range(args.swaps)], probe)
        print(
            f"  swaps: p99 {swap['p99_ms']:.0f} ms, {swap['failed']} failed; "
            + ", ".join(
                "/".join(f"{s.get(k, math.nan):.2f}" for k in ("current", "probe", "model_info")) + " s"
                for s in swap["swaps"]
            )
            + f" ({swap['load']})",
            flush=True,
        )
        train = training_figures(d, args, idle_pool, busy_pool, args.seconds)
    finally:
        d.kill_group()
        if args.daemon_log:
            shutil.copyfile(d.log, args.daemon_log)
    report["daemon"] = {
        "backfill_records": sent,
        "steady": steady,
        "direct": direct,
        "swap": swap,
        "training": train,
    }
    p99s = [s["p99_ms"] for s in steady]
    p50s = [s["p50_ms"] for s in steady]
    steady_p99 = statistics.median(p99s)
    # The x2 targets are held against the best steady run: on a shared machine one noisy
    # steady window would otherwise make a slow swap or training window look fine.
    ref_p99 = min(p99s)
    body_mb = steady[0]["body_bytes"] / 1e6
    ok = steady_p99 <= TARGETS["p99_ms"] and all(s["failed"] == 0 for s in steady)
    lines = [
        f"{'GET /predictions/current':<32} p99 {min(p99s):>5.0f} ms best, {steady_p99:.0f} ms median; p50 "
        f"{min(p50s):.0f} ms best, {statistics.median(p50s):.0f} ms median ({args.servers:,} servers, "
        f"gzip body {body_mb:.1f} MB, {args.clients} clients x {args.seconds:g} s x {args.runs}, "
        f"{statistics.median(s['req_per_s'] for s in steady):.1f} req/s, "
        f"{sum(s['failed'] for s in steady)} failed{''.join(why(s) for s in steady)[:120]})"
        f" | target p99 <= {TARGETS['p99_ms']:g} ms {verdict(ok)} | ref: the same requests straight to the "
        f"predictor over zmq (no REST layer) p50 {direct['p50_ms']:.0f} ms, p99 {direct['p99_ms']:.0f} ms "
        f"({steady[-1]['load']})"
    ]
    times = [s.get("current", math.nan) for s in swap["swaps"]]
    infos = [s.get("model_info", math.nan) for s in swap["swaps"]]
    probes = [s.get("probe", math.nan) for s in swap["swaps"]]
    x = swap["p99_ms"] / ref_p99
    fails = swap["failed"]
    worst = max(times) if all(t == t for t in times) else math.nan
    lines.append(
        f"{f'during {len(times)} model swaps':<32} {fails} failed of {swap['requests']}, "
        f"p99 {swap['p99_ms']:.0f} ms "
        f"(x{x:.2f} steady), p50 {swap['p50_ms']:.0f} ms{why(swap)} | target 0 failed {verdict(fails == 0)}, "
        f"p99 <= {TARGETS['swap_p99_x']:g}x {verdict(x <= TARGETS['swap_p99_x'])} | ref: steady p99 "
        f"{ref_p99:.0f} ms best of {len(p99s)} ({swap['load']})"
    )
    lines.append(
        f"{'swap -> new version answering':<32} /predictions/current "
        + " ".join(f"{t:.2f}" for t in times)
        + f" s (worst {worst:.2f} s) | target <= {TARGETS['swap_visible_s']:g} s "
        f"{verdict(worst <= TARGETS['swap_visible_s'])} | ref: /admin/model-info "
        + " ".join(f"{t:.2f}" for t in infos)
        + " s; /predictions/<server> poll "
        + " ".join(f"{t:.2f}" for t in probes)
        + " s"
    )
    busy = train["predict"]
    x = busy["p99_ms"] / ref_p99
    lines.append(
        f"{'while training: predictions':<32} p99 {busy['p99_ms']:.0f} ms, p50 {busy['p50_ms']:.0f} ms, "
        f"{busy['failed']} failed{why(busy)} (job at {train['status_after_predict']['progress_pct']:.0f}% "
        f"{train['status_after_predict']['status']}) | target p99 <= {TARGETS['train_p99_x']:g}x idle "
        f"{verdict(x <= TARGETS['train_p99_x'] and busy['failed'] == 0)} "
        f"| ref: idle p99 {ref_p99:.0f} ms, best steady run (x{x:.2f})"
        f" ({busy['load']})"
    )
    idle, rate = train["ingest_idle"]["records_per_s"], train["ingest_busy"]["records_per_s"]
    share = rate / idle if idle else math.nan
    lines.append(
        f"{'while training: zmq ingest':<32} {rate:>9,.0f} records/s (job "
        f"{train['status_after_ingest']['status']} at {train['status_after_ingest']['progress_pct']:.0f}%) "
        f"| target >= {TARGETS['train_ingest_share']:.0%} of idle "
        f"{verdict(share >= TARGETS['train_ingest_share'])} | ref: idle {idle:,.0f} records/s, same daemon, "
        f"mean of just before and just after the job (x{share:.2f}) ({train['ingest_busy']['load']})"
    )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=1000, help="fleet size (default 1000)")
    p.add_argument("--train-servers", type=int, default=200, help="fleet the model is fitted on")
    p.add_argument("--quick", action="store_true", help="1 run, 5 s windows: a smoke test, not figures")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0, help="client load per measurement")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--swaps", type=int, default=5, help="model swaps under load (versions in turn)")
    p.add_argument(
        "--swap-gap", type=float, default=3.0, help="seconds between a swap answering and the next"
    )
    p.add_argument("--ingest-seconds", type=float, default=10.0)
    p.add_argument("--train-wait", type=float, default=600.0, help="longest wait for the job's fit loop")
    p.add_argument("--skip-forecast", action="store_true", help="only the daemon figures")
    p.add_argument("--skip-daemon", action="store_true", help="only the in-process forecast figures")
    p.add_argument("--json", type=Path, help="write every figure to this file")
    p.add_argument("--daemon-log", type=Path, help="keep the daemon's log here")
    p.add_argument("--forecast-workers", type=int, help="[predictor] forecast_workers (default: config)")
    args = p.parse_args()
    if args.forecast_workers is None:
        from nordiqd.config import PredictorConfig

        args.forecast_workers = PredictorConfig().forecast_workers
    if args.quick:
        args.runs, args.seconds, args.ingest_seconds, args.swap_gap = 1, 5.0, 4.0, 1.0
    report: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_start": load(),
        "cpus": os.cpu_count(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="nordiqd-bench-predict-"))
    try:
        end = math.floor(time.time() / STEP_S) * STEP_S
        models = tmp / "models"
        print(
            f"fitting a default-size model on {args.train_servers} servers x {HISTORY_H} h ({load()}) ...",
            flush=True,
        )
        versions, fit_s = train_model(models, args.train_servers, end, 6)
        print(f"  fitted in {fit_s:.0f} s, published {len(versions)} versions", flush=True)
        lines = [] if args.skip_forecast else forecast_figures(args, models, end, report)
        for line in lines:
            print(line, flush=True)
        if not args.skip_daemon:
            more = daemon_figures(args, tmp, models, end, report)
            for line in more:
                print(line, flush=True)
            lines += more
        report["lines"], report["load_end"] = lines, load()
        print("\n" + "\n".join(lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
