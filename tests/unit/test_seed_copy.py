"""tests/data/seed_manual.txt is the seed manual verbatim (its scripts are run by the tests).

The manual's SHA-256 was taken from the original when the copy was made, so the check
runs on every clone: an edit to the copy, or a line-ending or encoding change made by a
tool, fails it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

COPY = Path(__file__).resolve().parents[1] / "data" / "seed_manual.txt"
SEED_SHA256 = "dcc94d98de105b7b1deb68f49ae6a3d24c73997496acd0c942c821b0d3caa8f5"


def test_copy_is_the_seed_manual_byte_for_byte() -> None:
    assert hashlib.sha256(COPY.read_bytes()).hexdigest() == SEED_SHA256


def test_copy_holds_the_scripts_the_training_tests_run() -> None:
    text = COPY.read_text()
    for script in ("weekly_retrain.sh", "def weekly_retrain", "/admin/trigger-training"):
        assert script in text, script
