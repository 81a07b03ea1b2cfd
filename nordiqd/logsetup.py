"""The one logger setup: stderr, one line per event, with the role and pid."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s {role}[%(process)d] %(name)s: %(message)s"


def setup(role: str, level: str = "info") -> None:
    """Send every record to stderr as ``time LEVEL role[pid] logger: message``.

    journald adds its own timestamps, but the line stays readable when run by hand.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT.format(role=role)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter at INFO drowns the daemon's own events.
    for noisy in ("lightning", "lightning.pytorch", "pytorch_lightning", "waitress", "watchdog"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
