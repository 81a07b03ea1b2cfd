"""Prometheus text exposition format: the one writer every role uses for /metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> str:
    """One metric family: ``# HELP``, ``# TYPE`` and a line per (labels, value) sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        if labels:
            rendered = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{rendered}}} {_number(value)}")
        else:
            lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"
