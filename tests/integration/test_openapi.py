"""/openapi.json is exact: schemathesis, all checks, against a live daemon finds nothing.

Every operation of the document is reached (coverage phase, then fuzzing); a request the
document allows is answered as a success (or 404/409 where the data is missing) and one
it forbids is refused with a 4xx, every answer has a documented status, content type and
body. ``bench/schemathesis_run.py`` runs it longer.
"""

from __future__ import annotations

from tests.apifuzz import run_schemathesis

MAX_EXAMPLES = 20  # per operation and phase: ~650 requests, every operation


def test_schemathesis_finds_no_failure(daemon) -> None:  # type: ignore[no-untyped-def]
    phases = ("--phases", "coverage,fuzzing", "--max-examples", str(MAX_EXAMPLES), "--workers", "2")
    outcome = run_schemathesis(daemon, *phases, timeout=240)
    assert outcome.returncode == 0, outcome.output[-8000:]
    assert outcome.failures == 0 and outcome.errors == 0, outcome.output[-8000:]
    assert outcome.tested == outcome.operations and len(outcome.operations) >= 19, outcome.output[-3000:]
    assert outcome.generated >= 10 * len(outcome.operations)
