"""A training job below serving (SCHED_IDLE), and out of that class once told to stop."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")

SCRIPT = """
import os
from nordiqd.training.priority import lower_priority, wind_down
lower_priority("idle", os.getppid())
print(os.sched_getscheduler(0) == os.SCHED_IDLE, os.getpriority(os.PRIO_PROCESS, 0))
wind_down()
print(os.sched_getscheduler(0) == os.SCHED_OTHER, os.getpriority(os.PRIO_PROCESS, 0))
"""


def test_a_stopping_job_leaves_the_idle_class_and_keeps_its_nice_value() -> None:
    # In a child of its own: the scheduling class and session change the calling process.
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    idle, stopping = (line.split() for line in out.stdout.splitlines())
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert idle == ["True", str(min(19, base + 10))], out.stdout
    assert stopping == ["True", str(min(19, base + 10))], out.stdout
