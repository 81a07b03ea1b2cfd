"""Counter-based random numbers and smooth noise for the fleet simulator.

Every random number the simulator uses is a pure function of
``(seed, server name, stream, counter)``: a SplitMix64-style hash, evaluated
with vectorised numpy integer arithmetic. Nothing carries state from one call
to the next, which is what makes generating ``[t0, t1)`` then ``[t1, t2)``
identical to generating ``[t0, t2)`` in one go.

Only exact IEEE operations (``+ - * /``, ``floor``, comparisons) are used on
floats here and in the modules built on this one: numpy's SIMD ``exp``/``sin``
may round differently from its scalar tail loop, and that would make a value
depend on where in an array it was computed, i.e. on how time was chunked.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]
F64 = NDArray[np.float64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 2.0**-53
_HALF_UNIT = 2.0**-26


class Stream(IntEnum):
    """Independent random streams; one id per use so draws never collide."""

    PARAMS = 1
    TRAFFIC = 2
    BURST = 3
    IO = 4
    MEMORY = 5
    NETWORK = 6
    DISK = 7
    ML_JOBS = 8
    REBOOT = 9
    CLEANUP = 10
    INCIDENT = 11
    JITTER = 12


def mix64(x: U64) -> U64:
    """SplitMix64 finaliser: a bijective, well-avalanched 64-bit hash.

    Args:
        x: uint64 array (at least one dimension, so overflow wraps silently).

    Returns:
        The hashed array, same shape.
    """
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def server_keys(seed: int, names: list[str]) -> U64:
    """Derives one 64-bit key per server from the seed and the server's name.

    Keys depend on the name, not the position, so ``web-003`` behaves the same
    whatever the size of the fleet around it.

    Args:
        seed: the simulation seed (any int; reduced modulo 2**64).
        names: server names.

    Returns:
        uint64 array of shape ``(len(names),)``.
    """
    seed_key = mix64(np.array([seed % 2**64], dtype=np.uint64))
    name_keys = np.array(
        [int.from_bytes(hashlib.blake2b(n.encode(), digest_size=8).digest(), "little") for n in names],
        dtype=np.uint64,
    )
    return mix64(name_keys ^ seed_key)


def substream(keys: U64, stream: int, salt: int = 0) -> U64:
    """Keys for one named stream (and optional salt) of each server."""
    offset = np.array([(stream * 0x100000001B3 + salt) % 2**64], dtype=np.uint64)
    return mix64(keys ^ mix64(offset * _GOLDEN))


def hash_grid(keys: U64, counters: NDArray[np.int64]) -> U64:
    """Hashes every (key, counter) pair: shape ``(len(keys), len(counters))``."""
    c = mix64(np.ascontiguousarray(counters, dtype=np.int64).view(np.uint64) + _GOLDEN)
    return mix64(keys[:, None] + c[None, :])


def uniform(keys: U64, counters: NDArray[np.int64]) -> F64:
    """Uniform draws in [0, 1) for every (server key, counter) pair."""
    return (hash_grid(keys, counters) >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def uniform_cells(keys: U64, counters: NDArray[np.int64]) -> F64:
    """Uniform draws in [0, 1) for keys and counters paired elementwise (broadcast)."""
    c = mix64(np.ascontiguousarray(counters, dtype=np.int64).view(np.uint64) + _GOLDEN)
    return (mix64(keys + c) >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def uniform_per_key(keys: U64, salt: int = 0) -> F64:
    """One uniform draw in [0, 1) per key (for static per-server parameters)."""
    return uniform(keys, np.array([salt], dtype=np.int64))[:, 0]


def jitter(keys: U64, counters: NDArray[np.int64]) -> F64:
    """Zero-mean, unit-variance triangular noise per (server, step).

    Two 26-bit halves of one hash are summed, which is cheaper than two hashes
    and close enough to Gaussian for measurement noise.
    """
    h = hash_grid(keys, counters)
    mask = np.uint64((1 << 26) - 1)
    a = (h >> np.uint64(38)).astype(np.float64) * _HALF_UNIT
    b = ((h >> np.uint64(12)) & mask).astype(np.float64) * _HALF_UNIT
    return (a + b - 1.0) * 2.449489742783178  # sqrt(6): unit variance


def smooth(keys: U64, t: F64, spacing_s: float) -> F64:
    """1-D value noise in [-1, 1]: random knots every ``spacing_s``, eased between.

    Knots sit at absolute times ``j * spacing_s``, so the curve does not depend
    on where a chunk starts, and the smoothstep easing makes it continuous with
    a continuous slope (autocorrelated, not white).

    Args:
        keys: per-server stream keys, shape ``(n,)``.
        t: sample times in epoch seconds, shape ``(m,)``, non-decreasing.
        spacing_s: distance between knots in seconds.

    Returns:
        Array of shape ``(n, m)``.
    """
    x = t / spacing_s
    j = np.floor(x)
    f = x - j
    j_int = j.astype(np.int64)
    j0 = int(j_int[0]) if len(j_int) else 0
    idx = j_int - j0
    span = int(idx[-1]) + 2 if len(idx) else 1
    knots = uniform(keys, np.arange(j0, j0 + span, dtype=np.int64)) * 2.0 - 1.0
    a = knots[:, idx]
    b = knots[:, idx + 1]
    s = f * f * (3.0 - 2.0 * f)
    return a + (b - a) * s[None, :]


def octaves(keys: U64, t: F64, spacings_s: tuple[float, ...], weights: tuple[float, ...]) -> F64:
    """Sum of value-noise octaves with the given weights (roughly in [-1, 1]).

    Each octave gets its own substream so coarse and fine knots are independent.
    """
    total = sum(weights)
    out = np.zeros((len(keys), len(t)))
    for i, (spacing, weight) in enumerate(zip(spacings_s, weights, strict=True)):
        out += smooth(substream(keys, 0, salt=i + 1), t, spacing) * (weight / total)
    return out
