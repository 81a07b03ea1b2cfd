"""The exit codes of every nordiqd process, in one place (values from sysexits.h).

The supervisor reads them: ``CONFIG`` from a role means "do not respawn me, the
configuration is wrong", so the tree stops instead of looping. The command-line tools
(``run``, ``ctl``, ``simulate``, ``backtest``) and training jobs use the same table, so
a script sees one meaning per number whichever command it ran.
"""

from __future__ import annotations

OK = 0
FAILURE = 1  # the work was refused or failed: a role past its restart intensity, a rejected batch
USAGE = 2  # a bad command line (argparse's own code)
CANCELLED = 3  # a training job stopped on request
UNAVAILABLE = 69  # EX_UNAVAILABLE: the daemon did not answer
CONFIG = 78  # EX_CONFIG: configuration error; such a child is never respawned
