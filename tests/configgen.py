"""Hypothesis strategies for configuration files, derived from ``nordiqd.config.Config``.

The strategies read the Structs' types and bounds with ``msgspec.inspect``, so a key
added to the configuration is generated without touching this file. ``config_data``
draws values that TOML can hold: inside the bounds, at and just past them, of the
wrong type, and strings of any characters; ``usable_data`` draws only values inside the
bounds, which is what a real daemon start is tried with.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec.inspect as mi
from hypothesis import strategies as st

from nordiqd.config import Config

_TOML_SCALARS = st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans())
_SMALL = 10_000  # usable sizes stay small enough for a test machine to start


def _bounds(t: mi.IntType | mi.FloatType) -> tuple[float, float]:
    lo = t.ge if t.ge is not None else (t.gt if t.gt is not None else -1e6)
    hi = t.le if t.le is not None else (t.lt if t.lt is not None else 1e6)
    return float(lo), float(hi)


def _number(t: mi.IntType | mi.FloatType, usable: bool) -> st.SearchStrategy[Any]:
    lo, hi = _bounds(t)
    if isinstance(t, mi.IntType):
        inside = st.integers(int(math.ceil(lo + (t.gt is not None))), int(min(hi, lo + _SMALL)))
        if usable:
            return inside
        edges = st.sampled_from([int(lo) - 1, int(lo), int(hi), int(hi) + 1, 0, -1])
        return st.one_of(inside, edges, st.integers())
    inside_f = st.floats(
        lo, min(hi, max(lo, 1.0) * 100), exclude_min=t.gt is not None, exclude_max=t.lt is not None
    )
    if usable:
        return inside_f
    edges_f = st.sampled_from([lo, hi, hi * 2 + 1, -hi, 0.0, math.nan, math.inf, -math.inf])
    return st.one_of(inside_f, edges_f, st.floats())


def values(t: mi.Type, usable: bool) -> st.SearchStrategy[Any]:
    """Values for a field of type ``t``: usable ones, or anything TOML can say."""
    wrong = st.nothing() if usable else _TOML_SCALARS
    match t:
        case mi.BoolType():
            strategy: st.SearchStrategy[Any] = st.booleans()
        case mi.IntType() | mi.FloatType():
            strategy = _number(t, usable)
        case mi.StrType(pattern=pattern) if pattern:
            strategy = st.from_regex(re.compile(pattern), fullmatch=True).filter(lambda s: len(s) < 120)
            if not usable:
                strategy = st.one_of(strategy, st.text(max_size=12))
        case mi.StrType():
            strategy = st.text(max_size=12)
        case mi.LiteralType(values=options):
            strategy = st.sampled_from(options)
        case mi.ListType(item_type=item) | mi.VarTupleType(item_type=item):
            strategy = st.lists(
                values(item, usable), min_size=t.min_length or 0, max_size=min(t.max_length or 5, 5)
            )
        case mi.TupleType(item_types=items):
            strategy = st.tuples(*(values(i, usable) for i in items)).map(list)
        case mi.DictType(key_type=key, value_type=value):
            keys = values(key, True) if usable else st.one_of(values(key, True), st.text(max_size=12))
            strategy = st.dictionaries(keys, values(value, usable), max_size=3)  # TOML keys are strings
        case mi.StructType():
            strategy = section(t, usable)
        case mi.UnionType(types=types):
            strategy = st.one_of(*(values(u, usable) for u in types))
        case _:
            raise TypeError(f"no strategy for {t!r}")
    return st.one_of(strategy, wrong)


def section(
    t: mi.StructType, usable: bool, skip: frozenset[str] = frozenset()
) -> st.SearchStrategy[dict[str, Any]]:
    """A table: some of the fields of ``t``, each drawn by ``values``."""
    fields = {f.name: values(f.type, usable) for f in t.fields if f.name not in skip}
    return st.fixed_dictionaries({}, optional=fields)  # type: ignore[arg-type]


def config_data(
    usable: bool = False, skip: frozenset[str] = frozenset()
) -> st.SearchStrategy[dict[str, Any]]:
    """A whole configuration as parsed TOML; ``skip`` holds ``section.key`` left out."""
    tables = {}
    for f in mi.type_info(Config).fields:
        assert isinstance(f.type, mi.StructType)
        own = frozenset(k.partition(".")[2] for k in skip if k.startswith(f"{f.name}."))
        tables[f.name] = section(f.type, usable, own)
    return st.fixed_dictionaries({}, optional=tables)  # type: ignore[arg-type]


def config_keys() -> set[str]:
    """Every ``section.key`` of the configuration."""
    return {
        f"{s.name}.{k.name}"
        for s in mi.type_info(Config).fields
        if isinstance(s.type, mi.StructType)
        for k in s.type.fields
    }
