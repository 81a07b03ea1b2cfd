"""A configuration that does not convert, said in the keys an operator wrote.

msgspec says ``Expected `int`, got `str` - at `$.api.port```; ``describe`` turns that into
``key 'api.port': ...``, finds which key of a table is at fault, and says what a name
pattern means in words.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import msgspec


def describe(msg: str, data: dict[str, Any], target: type, rules: Mapping[str, str]) -> str:
    """msgspec's message for ``data`` (parsed TOML) not converting to ``target``, in keys.

    Args:
        msg: The ``msgspec.ValidationError``'s text.
        data: The parsed TOML.
        target: The type it was converted to (the whole configuration).
        rules: What each name pattern means, in words.
    """
    # msgspec says "Expected `int`, got `str` - at `$.api.port`"; operators think in keys.
    unknown = re.match(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?", msg)
    if unknown:
        key = ".".join(p for p in (unknown.group(2), unknown.group(1)) if p)
        section = unknown.group(2)
        if not section:
            return f"unknown section [{key}]"
        return f"unknown key '{key}'"
    table = re.search(r" - at `key` in `\$\.?([^`]*)`", msg)
    at = table or re.search(r" - at `\$\.?([^`]*)`", msg)
    if at is None:
        return msg
    path, why = _resolve(data, at.group(1), msg, target), msg[: at.start()]
    rule = re.fullmatch(r"Expected `str` matching regex '(.*)'", why)
    pattern = rule.group(1).replace("\\\\", "\\") if rule else ""  # msgspec's message doubles each backslash
    value = _lookup(data, path)
    if pattern in rules:
        if table and isinstance(value, dict):
            bad = [k for k in value if not (isinstance(k, str) and re.search(pattern, k))]
            why = f"{bad[0]!r} is not usable as a name here: {rules[pattern]}" if bad else rules[pattern]
        else:
            why = f"{value!r} is not usable: {rules[pattern]}"
    elif not table and isinstance(value, (str, int, float)):
        why = f"{why} (the value is {value!r})"
    if not table and not why.startswith(("Object contains", "Expected")) and "." not in path:
        # A section's own check failed (e.g. [model]); its message starts with the key.
        field, _, rest = why.partition(" ")
        return f"key '{path}.{field}': {rest}" if field.isidentifier() else f"[{path}]: {why}"
    return f"key '{path}': {why}"


def _resolve(data: dict[str, Any], path: str, msg: str, target: type) -> str:
    """``path`` with msgspec's ``[...]`` (some key of a table) replaced by the key at fault.

    The key at fault is the one without which the same error goes away.
    """
    head, found, tail = path.partition("[...]")
    table = _lookup(data, head) if found else None
    if not isinstance(table, dict):
        return path
    for key in table:
        trial = copy.deepcopy(data)
        del _lookup(trial, head)[key]
        try:
            msgspec.convert(trial, target)
        except msgspec.ValidationError as exc:
            if str(exc) == msg:
                continue
        return _resolve(data, f"{head}.{key}{tail}", msg, target)
    return path


def _lookup(data: Any, path: str) -> Any:
    """The value at msgspec's path (``schema.metrics[2]``) in the parsed TOML, or None."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            data = data[int(part[1:-1])] if part.startswith("[") else data[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return data
