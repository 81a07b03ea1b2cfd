"""The command line of a training job: built by the trainer role, parsed by the job.

It lives apart from ``nordiqd.training.job`` so that the trainer role, which starts jobs,
never imports the job's fitting code (``make lint`` checks it).
"""

from __future__ import annotations

import argparse
import sys

MODULE = "nordiqd.training.job"


def command(
    job_id: str,
    epochs: int,
    incremental: bool,
    events: str,
    parent: int,
    config: str | None,
    max_memory_mb: int | None = None,
) -> list[str]:
    """The command line that runs one job in a fresh interpreter (what ``main`` parses)."""
    argv = [sys.executable, "-m", MODULE, "--job-id", job_id, "--epochs", str(epochs)]
    argv += ["--events", events, "--parent", str(parent)]
    if max_memory_mb is not None:
        argv += ["--max-memory-mb", str(max_memory_mb)]
    if incremental:
        argv.append("--incremental")
    if config:
        argv += ["--config", config]
    return argv


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse what ``command`` built (``sys.argv[1:]`` when ``argv`` is None)."""
    p = argparse.ArgumentParser(prog=MODULE)
    p.add_argument("--config", default=None)
    p.add_argument("--job-id", required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--incremental", action="store_true")
    p.add_argument("--events", required=True, help="PUSH endpoint of the trainer role")
    p.add_argument("--parent", type=int, default=None, help="pid of the trainer role that started the job")
    p.add_argument("--max-memory-mb", type=int, default=None, help="the job's memory cap (RLIMIT_DATA), MiB")
    return p.parse_args(argv)
