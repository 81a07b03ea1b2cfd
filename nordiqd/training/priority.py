"""How a training job gets out of the way of ingest and predictions.

A CPU training job would take a core from the roles that serve. Three things keep it
below them, each where the system allows it (Linux; a refusal is logged, not fatal):

- nice +10 and, with ``[training] cpu_priority = "idle"``, ``SCHED_IDLE``: within the
  daemon's group of tasks, any runnable serving thread preempts the job.
- its own session, with the lowest autogroup weight (``/proc/self/autogroup`` = 19): with
  ``sched_autogroup`` on, the kernel shares CPU between sessions first, and a job left
  in the daemon's session has its CPU charged to the daemon's share, so serving threads
  wait behind other sessions for the time the job took (measured: prediction p99 x3.4).
- a parent-death signal, so the job, no longer in the daemon's process group, still
  stops when the trainer role dies.

A job told to stop leaves ``SCHED_IDLE`` (``wind_down``): on a machine busy with other
work an idle-class task can wait minutes for a slice, and a stopping job must reach its
next stop check, not linger as an orphan holding its memory.

All of it is set before any thread starts, so torch's and pyarrow's threads inherit it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal

log = logging.getLogger(__name__)

NICE_INCREMENT = 10
_PR_SET_PDEATHSIG = 1


def lower_priority(priority: str, parent: int) -> None:
    """Put the calling process (a training job of trainer ``parent``) below serving."""
    try:
        os.nice(NICE_INCREMENT)
    except OSError:
        pass
    if priority != "idle":
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:
        log.warning("cannot run the job under SCHED_IDLE (%s); it runs at nice +%d", exc, NICE_INCREMENT)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (AttributeError, OSError) as exc:
        log.warning("job keeps the daemon's session: no parent-death signal (%s)", exc)
        return
    if os.getppid() != parent:  # the trainer died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
        return
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(19))
    except OSError as exc:  # no autogroup (cgroups decide instead), or refused
        log.info("job autogroup weight unchanged: %s", exc)


def wind_down() -> None:
    """Take the calling thread out of ``SCHED_IDLE`` (at nice +10) so a stopping job gets CPU."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_IDLE:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError) as exc:
        log.info("stopping job stays under SCHED_IDLE: %s", exc)
