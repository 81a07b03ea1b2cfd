"""The promotion gate's rules: from the holdout figures to ``promoted`` or ``rejected``.

Pure and torch-free: the job scores (``holdout``), the trainer judges here. The rules,
on the MASE of every target and lead bucket pooled (``mase`` of each model):

1. With a champion: the candidate's MASE is at most the champion's x (1 + tolerance).
   A negative tolerance demands an improvement.
2. With ``must_beat_baseline``: the candidate's MASE is below seasonal naive's.

With no champion only rule 2 applies. A candidate without a score (nothing on the
holdout could be scored) is rejected. Every rule says what it compared, pass or fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nordiqd.retraining import PromotionConfig


@dataclass(frozen=True)
class Verdict:
    """The gate's decision and one sentence per rule."""

    promoted: bool
    reasons: list[str]


def _mase(figures: dict[str, Any] | None) -> float | None:
    value = (figures or {}).get("mase")
    return float(value) if isinstance(value, int | float) else None


def judge(gate: dict[str, Any], rules: PromotionConfig) -> Verdict:
    """Apply the rules of the module docstring to ``gate`` (``holdout.score``'s figures)."""
    candidate = _mase(gate.get("candidate"))
    if candidate is None:
        return Verdict(False, ["the candidate could not be scored on the holdout"])
    ok, reasons = True, []
    champion = gate.get("champion")
    champion_mase = _mase(champion)
    if champion is not None and champion_mase is not None:
        limit = champion_mase * (1.0 + rules.tolerance)
        passed = candidate <= limit
        ok &= passed
        reasons.append(
            f"MASE {candidate:.4f} {'<=' if passed else '>'} champion {champion.get('version')}'s "
            f"{champion_mase:.4f} x (1 {'+' if rules.tolerance >= 0 else '-'} {abs(rules.tolerance):g})"
            f" = {limit:.4f}"
        )
        seen = champion.get("seen_holdout_hours") or 0
        if seen:
            reasons.append(f"note: the champion trained on {seen:g} h of the holdout, which favours it")
    elif champion is not None:
        reasons.append(f"champion {champion.get('version')} could not be scored: not compared")
    else:
        reasons.append("no champion: only the baseline test applies")
    baseline = _mase(gate.get("baseline"))
    if rules.must_beat_baseline:
        if baseline is None:
            ok = False
            reasons.append("seasonal naive could not be scored on the holdout: nothing to beat")
        else:
            passed = candidate < baseline
            ok &= passed
            reasons.append(f"MASE {candidate:.4f} {'<' if passed else '>='} seasonal naive's {baseline:.4f}")
    return Verdict(ok, reasons)
