"""JSON arrays of numbers rounded to a few decimals, formatted in bulk with numpy.

The GET /predictions/current body carries servers x targets x quantiles x horizon
numbers: 1.44 M at 1,000 servers. Turned into Python floats (``tolist``) and encoded one
at a time they took 0.12 s of every forecast pass, and the 15 k lists holding them cost
the cyclic collector more walks. ``json_arrays`` writes them without one Python object
per number.

How: every number gets a row of slots in one matrix: the sign (if any number has one),
the integer part three digits at a time, then the point, the decimals and the
separator. Slots are looked up in small tables of strings padded with zero bytes;
dropping the zero bytes leaves the JSON text of all arrays back to back, and the tables'
string lengths say where each array ends. Each number reads as Python prints
``round(v, decimals)`` (``12.3``, ``12.0``, ``0.001``; only -0.0 reads ``0.0``); NaN and
infinities are ``null``, as msgspec writes them. Where Python would print an exponent
(more than 15 significant digits, or more than 4 decimals, which lets a number go below
1e-4) the arrays go through msgspec instead.
"""

from __future__ import annotations

import functools

import msgspec
import numpy as np


def json_arrays(values: np.ndarray, decimals: int) -> list[bytes]:
    """The JSON array of each row of ``values`` [rows, n], numbers rounded to ``decimals``.

    Args:
        values: Float array [rows, n].
        decimals: Decimal places kept, >= 1.

    Returns:
        ``rows`` byte strings such as ``b"[1.5,0.0,null]"``.
    """
    rows, n = values.shape
    if values.size == 0:
        return [b"[]"] * rows
    x = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    if not finite.all():
        x = np.where(finite, x, 0.0)
    if decimals > 4 or np.abs(x).max(initial=0.0) >= 10.0 ** (15 - decimals):
        return [msgspec.json.encode(row) for row in np.round(values.astype(np.float64), decimals).tolist()]
    m = np.rint(np.abs(x) * 10**decimals).astype(np.int64)
    whole, frac = np.divmod(m, 10**decimals)
    groups = [whole % 1000]  # the integer part, three digits at a time, lowest first
    while (whole := whole // 1000).any():
        groups.append(whole % 1000)

    digits, digit_lengths = _digit_groups()
    tails, tail_lengths = _tails(decimals)
    negative = (x < 0) & (m > 0)
    signed = bool(negative.any())
    # Slots, 4 bytes each: "-" if any number is negative, the groups (top first), a zero
    # slot where the tail takes 8 bytes and must be aligned, the tail.
    tail_slots = tails.itemsize // 4
    before_tail = signed + len(groups)
    before_tail += before_tail % tail_slots
    out = np.zeros((x.size, before_tail + tail_slots), dtype=np.uint32)
    length = np.zeros(x.size, dtype=np.int32)
    if signed:
        out[:, 0] = negative * np.uint32(ord("-"))
        length += negative
    higher = np.zeros(x.size, dtype=bool)  # a nonzero group above: this one keeps its zeros
    for slot, j in enumerate(reversed(range(len(groups))), start=int(signed)):
        g = groups[j]
        if len(groups) == 1:  # every number below 1000: bare digits, "0" for zero
            index = g + 1000
        else:  # rows 0-999 zero-padded ("007"), 1000-1999 bare ("7"), 2000 empty
            index = np.where(higher, g, np.where(g > 0, g + 1000, 1000 if j == 0 else 2000))
        out[:, slot] = digits[index]
        length += digit_lengths[index]
        higher |= g > 0
    # The tail: ".", the decimals without trailing zeros (at least one), "," or "]".
    index = frac.copy()
    index[n - 1 :: n] += 10**decimals
    out.view(tails.dtype)[:, -1] = tails[index]
    length += tail_lengths[index]
    if not finite.all():  # "null" in the first digit slot, then only the separator
        bad = ~finite
        out[bad] = 0
        out[bad, int(signed)] = _NULL
        out[bad, -tail_slots] = _SEPARATORS[(index[bad] >= 10**decimals).astype(np.int64)]
        length[bad] = 5
    flat = out.view(np.uint8).ravel()
    text = flat[flat != 0].tobytes()
    ends = np.cumsum(length.reshape(rows, n).sum(axis=1)).tolist()
    return [b"[" + text[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _table(strings: list[bytes], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Strings as zero-padded slots of ``dtype`` (4 or 8 bytes), and their lengths."""
    size = np.dtype(dtype).itemsize
    slots: np.ndarray = np.frombuffer(b"".join(s.ljust(size, b"\0") for s in strings), dtype=dtype)
    return slots, np.array([len(s) for s in strings], dtype=np.int32)


_NULL = _table([b"null"], np.uint32)[0][0]
_SEPARATORS = _table([b",", b"]"], np.uint32)[0]


@functools.cache
def _digit_groups() -> tuple[np.ndarray, np.ndarray]:
    """ "000".."999", then "0".."999" bare, then the empty string: 2001 slots and lengths."""
    return _table(
        [f"{i:03d}".encode() for i in range(1000)] + [str(i).encode() for i in range(1000)] + [b""], np.uint32
    )


@functools.cache
def _tails(decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """ ".5," for each fraction, then ".5]" for each: slots of 4 bytes (up to 2 decimals)
    or 8, and their lengths."""
    fractions = [("." + (f"{i:0{decimals}d}".rstrip("0") or "0")).encode() for i in range(10**decimals)]
    return _table(
        [f + b"," for f in fractions] + [f + b"]" for f in fractions],
        np.uint32 if decimals <= 2 else np.uint64,
    )
