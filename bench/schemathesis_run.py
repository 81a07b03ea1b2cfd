"""Schemathesis, all checks, against a live daemon for longer than the test does.

Starts a real ``nordiqd run`` on a temporary directory (tests/harness.py), runs the
schemathesis CLI on its /openapi.json with every phase (examples, coverage, fuzzing,
stateful) and ``--max-examples`` per operation (or ``--max-time`` seconds), and prints
the counts: operations in the document and reached, requests generated and passed,
failures, errors. ``tests/integration/test_openapi.py`` is the short run inside
``make test``; the hooks both use are in ``tests/apifuzz.py``.

How it stops: the daemon's process group is killed when the run ends, also on an error.

Usage: ``python bench/schemathesis_run.py [--max-examples N] [--max-time S] [--runs N]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))

from tests.apifuzz import run_schemathesis  # noqa: E402
from tests.harness import Daemon  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-examples", type=int, default=200, help="per operation and phase")
    parser.add_argument("--max-time", type=int, default=None, help="seconds for the whole run instead")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"schemathesis bench, {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, load {os.getloadavg()[0]:.2f}")
    worst = 0
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="nordiqd-schemathesis-") as tmp:
            d = Daemon(Path(tmp), {})
            try:
                d.start()
                d.wait_ready(timeout=120)
                limit = ["--max-time", str(args.max_time)] if args.max_time else []
                outcome = run_schemathesis(
                    d,
                    "--phases", args.phases, "--max-examples", str(args.max_examples),
                    "--workers", args.workers, *limit,
                    timeout=3600,
                )  # fmt: skip
            finally:
                d.kill_group()
        print(
            f"run {run}: {len(outcome.tested)}/{len(outcome.operations)} operations reached, "
            f"{outcome.generated} test cases generated, {outcome.passed} passed, "
            f"{outcome.failures} failures, {outcome.errors} errored, exit {outcome.returncode}, "
            f"{outcome.seconds:.0f} s (load {os.getloadavg()[0]:.2f})"
        )
        missed = sorted(outcome.operations - outcome.tested)
        if missed:
            print("  not reached:", ", ".join(missed))
        if outcome.returncode:
            print(outcome.output[-6000:])
        worst = max(worst, outcome.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())
