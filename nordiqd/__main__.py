"""``python -m nordiqd``: the same CLI as the ``nordiqd`` command."""

import sys

from nordiqd.cli import main

sys.exit(main())
