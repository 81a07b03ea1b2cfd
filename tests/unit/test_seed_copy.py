"""tests/data/seed_manual.txt is the seed manual verbatim (its scripts are run by the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

COPY = Path(__file__).resolve().parents[1] / "data" / "seed_manual.txt"
ORIGINAL = Path(__file__).resolve().parents[3] / "shared" / "seed" / "000_53f8cf6659dae08f.txt"


@pytest.mark.skipif(not ORIGINAL.exists(), reason=f"{ORIGINAL} is not beside this checkout")
def test_copy_equals_the_seed_manual() -> None:
    assert COPY.read_bytes() == ORIGINAL.read_bytes()
