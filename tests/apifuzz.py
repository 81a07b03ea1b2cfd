"""Schemathesis against a live daemon: the run (for the test and the bench) and its hooks.

``run_schemathesis`` runs the schemathesis CLI, all checks, on a daemon's
/openapi.json and returns its counts.

One rule of ``POST /feed/data`` depends on the clock: a timestamp lies between
2000-01-01 and ``[buffer] max_future_s`` after the server's now. A static document can
state the lower bound for numbers only and the upper bound not at all, so /openapi.json
says it in words; a schema-valid batch generated with a timestamp outside that window
gets the current time instead, just before it is sent. Every other value, and every
negative case, is sent as generated. The CLI loads them from ``SCHEMATHESIS_HOOKS``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import schemathesis

from nordiqd.api.schemas import EARLIEST_EPOCH_S
from tests.harness import Daemon

MAX_FUTURE_S = 300.0  # the default [buffer] max_future_s, which the runs use


def _epoch(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError):
            return math.nan  # not RFC 3339 as Python reads it: sent as generated, to be seen
    return math.nan


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Moves the timestamps of a positive ``POST /feed/data`` case into the window."""
    if case.operation.path != "/feed/data" or case.meta is None or not case.meta.generation.mode.is_positive:
        return
    records = case.body.get("records") if isinstance(case.body, dict) else None
    for record in records if isinstance(records, list) else ():
        if not isinstance(record, dict) or "timestamp" not in record:
            continue
        when = _epoch(record["timestamp"])
        if not math.isnan(when) and not EARLIEST_EPOCH_S <= when <= time.time() + MAX_FUTURE_S:
            record["timestamp"] = time.time() - 1.0


@dataclass(frozen=True)
class Outcome:
    """What a schemathesis run reported."""

    returncode: int
    operations: frozenset[str]  # in /openapi.json, as "METHOD /path"
    tested: frozenset[str]  # those schemathesis sent requests to
    generated: int
    passed: int
    failures: int
    errors: int
    seconds: float
    output: str


def run_schemathesis(d: Daemon, *args: str, timeout: float = 600.0) -> Outcome:
    """Runs ``schemathesis run --checks all ARGS`` against ``d`` and reads its report.

    The document is fetched to a file first: loaded from its URL, schemathesis leaves out
    ``GET /openapi.json`` itself. The first model reload after a start imports torch in
    the predictor (seconds, on a loaded machine); one is asked for first, so that a burst
    of generated reloads does not hold every api thread while it happens.
    """
    deadline = time.monotonic() + 600  # a loaded 2-core machine can take minutes
    while d.post("/admin/reload-model", timeout=300).status_code == 503 and time.monotonic() < deadline:
        pass  # the api waited [api] reload timeout for the loader: ask again
    document = d.get("/openapi.json").json()
    operations = frozenset(f"{m.upper()} {p}" for p, methods in document["paths"].items() for m in methods)
    work = d.root / "schemathesis"
    work.mkdir(exist_ok=True)
    (work / "openapi.json").write_text(json.dumps(document))
    cli = Path(sys.executable).with_name("schemathesis")
    repo = str(Path(__file__).resolve().parents[1])  # where the CLI imports this module from
    path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "SCHEMATHESIS_HOOKS": __name__, "NO_COLOR": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [
            str(cli), "run", str(work / "openapi.json"), "--url", d.url, "-H", f"X-API-Key: {d.key}",
            "--checks", "all", "--report", "junit", "--report-dir", str(work), *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=work,  # its cache of crashes goes there, not into the checkout
    )  # fmt: skip
    out = done.stdout + done.stderr
    tested = {
        case.get("name", "")
        for report in work.glob("junit-*.xml")
        for case in ElementTree.parse(report).getroot().iter("testcase")
    }

    # "Test cases:" then e.g. "659 generated, 657 passed, 1 found 1 unique failure, 2 errored"
    cases = re.search(r"Test cases:\s*\n\s*(.*)", out)
    summary = cases.group(1) if cases else ""

    def count(pattern: str) -> int:
        found = re.search(pattern, summary)
        return int(found.group(1)) if found else 0

    return Outcome(
        returncode=done.returncode,
        operations=operations,
        tested=frozenset(tested),
        generated=count(r"(\d+) generated"),
        passed=count(r"(\d+) passed"),
        failures=count(r"(\d+) unique failures?"),
        errors=count(r"(\d+) errored"),
        seconds=time.monotonic() - started,
        output=out,
    )
