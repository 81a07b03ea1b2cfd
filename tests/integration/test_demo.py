"""``nordiqd demo`` as a new user runs it: it reaches TFT forecasts with no failed request,
and its backfill is scored live (the baseline, skill 1 by construction)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.harness import free_port


@pytest.mark.timeout(600)
def test_demo_reaches_tft_forecasts_and_live_scores_without_a_failed_request(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "demo"
    args = ["--dir", str(root), "--port", str(port), "--servers", "6", "--interval", "60",
            "--backfill-days", "2", "--epochs", "1", "--small-model", "--run-for", "400"]  # fmt: skip
    demo = subprocess.Popen(
        [sys.executable, "-m", "nordiqd", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    failed: list[str] = []
    kinds: list[str] = []
    deadline = time.monotonic() + 400
    session = requests.Session()
    try:
        while time.monotonic() < deadline and not (root / "api_key").exists():
            assert demo.poll() is None, demo.communicate()[0]
            time.sleep(0.2)
        key = (root / "api_key").read_text().strip()
        while time.monotonic() < deadline:  # the daemon comes up
            assert demo.poll() is None, demo.communicate()[0]
            try:
                if session.get(url + "/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        while time.monotonic() < deadline and kinds[-1:] != ["tft"]:
            assert demo.poll() is None, demo.communicate()[0]
            try:
                r = session.get(url + "/predictions/current", headers={"X-API-Key": key}, timeout=30)
            except requests.RequestException as exc:
                failed.append(repr(exc))
                continue
            if r.status_code != 200:
                failed.append(f"{r.status_code}: {r.text[:200]}")
                continue
            body = r.json()
            if body["summary"]["forecast"] and (not kinds or kinds[-1] != body["model"]["kind"]):
                kinds.append(body["model"]["kind"])
            time.sleep(0.1)
        accuracy = session.get(url + "/admin/accuracy", headers={"X-API-Key": key}, timeout=30).json()
        time.sleep(3.0)  # the demo reports what it sees every 2 s
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=120)
    assert failed == [], failed[:5]
    # The baseline may be skipped when the small model trains faster than a forecast cycle.
    assert kinds in (["baseline", "tft"], ["tft"]), (kinds, out)
    assert demo.returncode == 0, out
    # The backfill went through the data-time issue points while the baseline served.
    baseline = next(v for v in accuracy["versions"] if v["kind"] == "baseline")
    assert baseline["points"] > 0 and baseline["buckets"]["0-1h"]["points"] > 0, accuracy
    assert abs(baseline["skill"] - 1.0) <= 0.01, accuracy
    lines = ("Fleet page:", "API key:", "/admin/accuracy", "now serving trained model",
             "live accuracy of the baseline: skill 1.00", "daemon stopped (exit code 0)")  # fmt: skip
    for line in lines:
        assert line in out, out
