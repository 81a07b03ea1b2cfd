"""What ``nordiqd simulate`` writes to the terminal, and the exit code of each outcome.

Progress and notices go to stderr; the closing summary line goes to stdout, so a
script can read it. Nothing here runs a simulation or parses arguments: ``cli``
calls these with the options, progress and outcome of a run.
"""

from __future__ import annotations

import sys
import time

from nordiqd.simulate.errors import BatchRefused, DaemonUnavailable, SimulationError
from nordiqd.simulate.generator import SimulatedFleet
from nordiqd.simulate.options import SimulationOptions
from nordiqd.simulate.scenarios import SCENARIO_KINDS, SYNTAX, ScenarioError
from nordiqd.simulate.summary import Progress, Summary
from supervisor import exitcodes

# Problems of a rejected batch printed before "... and N more".
_SHOWN_PROBLEMS = 20
# Seconds between two progress lines when stderr is not a terminal.
_PROGRESS_EVERY_S = 5.0
# ... and when it is: one line redrawn in place, so it can move more often.
_PROGRESS_EVERY_TTY_S = 0.5


def notice(text: str) -> None:
    """Print a one-off message (what is sent where, dropped metrics, catching up)."""
    print(f"nordiqd simulate: {text}", file=sys.stderr, flush=True)


def fail(message: str, code: int) -> int:
    """Print why the command failed; return ``code``, its exit code."""
    print(f"nordiqd simulate: {message}", file=sys.stderr)
    return code


class ProgressLine:
    """Prints backfill progress: redrawn in place on a terminal, else every few seconds.

    The last report (done == total) is always printed, and ends the line.
    """

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._every_s = _PROGRESS_EVERY_TTY_S if self._tty else _PROGRESS_EVERY_S
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.done < p.total and now - self._last < self._every_s:
            return
        self._last = now
        rate = p.done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        pct = 100.0 * p.done / p.total if p.total else 100.0
        line = f"backfill: {p.done:,}/{p.total:,} records ({pct:.0f} %), {rate:,.0f} records/s"
        end = "\n" if not self._tty or p.done >= p.total else ""
        print(("\r" if self._tty else "") + line, end=end, file=sys.stderr, flush=True)


def announce(options: SimulationOptions) -> None:
    """Say, before anything is sent, what will be simulated and where it goes."""
    where = {"zmq": options.endpoint, "rest": options.url, "file": options.out}[options.via]
    live = (
        "no live"
        if not options.live
        else (
            f"live at {options.speed:g}x"
            + (f" for {options.duration_s:g} s" if options.duration_s else " until Ctrl-C")
        )
    )
    notice(
        f"{options.servers} servers every {options.interval_s:g} s, seed {options.seed}, "
        f"backfill {options.backfill_days:g} d, {live} -> {options.via} {where}"
    )


def report(outcome: Summary | BaseException) -> int:
    """Print how the run ended; return the exit code.

    Raises:
        BaseException: ``outcome`` itself when it is no simulation outcome (a bug).
    """
    if isinstance(outcome, ScenarioError):
        return fail(str(outcome), exitcodes.USAGE)
    if isinstance(outcome, Summary):
        print(f"nordiqd simulate: {outcome.line()}", flush=True)
        return 0
    if not isinstance(outcome, SimulationError):
        raise outcome
    if isinstance(outcome, BatchRefused):
        print(f"nordiqd simulate: {outcome}", file=sys.stderr)
        for problem in outcome.problems[:_SHOWN_PROBLEMS]:
            print(
                f"  record {problem.get('index', '?')}, {problem.get('field', '?')}: "
                f"{problem.get('message', problem)}",
                file=sys.stderr,
            )
        if len(outcome.problems) > _SHOWN_PROBLEMS:
            print(f"  ... and {len(outcome.problems) - _SHOWN_PROBLEMS} more", file=sys.stderr)
        code = exitcodes.FAILURE
    else:
        print(f"nordiqd simulate: {outcome}", file=sys.stderr)
        code = exitcodes.UNAVAILABLE if isinstance(outcome, DaemonUnavailable) else exitcodes.FAILURE
    if outcome.summary is not None:
        print(f"nordiqd simulate: {outcome.summary.line()}", flush=True)
    return code


def scenario_help(servers: int, seed: int) -> str:
    """The ``--list-scenarios`` text: syntax, kinds, and the fleet's server names."""
    fleet = SimulatedFleet(servers, seed)
    by_profile: dict[str, list[str]] = {}
    for s in fleet.servers:
        by_profile.setdefault(s.profile, []).append(s.name)
    lines = [f"scenario syntax: {SYNTAX}", "", "kinds:"]
    lines += [f"  {kind:<12} {text}" for kind, text in SCENARIO_KINDS.items()]
    lines += [
        "",
        "START is ISO-8601 with an offset (2026-11-26T14:00Z) or +DURATION after the simulated now",
        "(where live streaming begins); DURATION like 90m, 1h30m, 2d; SEVERITY in (0, 1], default 1.",
        "",
        f"servers of a {servers}-server fleet (seed {seed}):",
    ]
    lines += [
        f"  {profile:<11} {names[0]}..{names[-1]}" if len(names) > 1 else f"  {profile:<11} {names[0]}"
        for profile, names in by_profile.items()
    ]
    lines += ["", "example: --scenario memory_leak:" + fleet.servers[0].name + "@+10m+2h"]
    return "\n".join(lines)
