"""The memory cap of a training job: ``[training] max_memory_mb``, as ``RLIMIT_DATA``.

Why ``RLIMIT_DATA`` and not ``RLIMIT_AS``: the address space of a torch process is
mostly reservations that never become memory. The tiny test job peaks at 2.6 GB of
address space for 0.5 GB resident (CUDA alone reserves tens of GB of it), so a cap on
the address space fails normal jobs long before they use the memory it names.
On an H200 box, torch with CUDA (a matmul, an LSTM backward, bf16 autocast) took
18 GB of address space, 1.7 GB of data and 0.9 GB resident: it ran under an
``RLIMIT_DATA`` of 2 GB, while any ``RLIMIT_AS`` under 18 GB would have stopped it.
``RLIMIT_DATA`` (Linux >= 4.7) counts private writable mappings: the heap, every
anonymous ``mmap``, thread stacks; that is every page the job can fill with its own
data, and it leaves out the shared libraries' code and files mapped read-only. The job
sets it on itself first thing, before any thread starts or torch is imported, so it
holds for all of it; its allocators are kept from mapping far more than they use
(Arrow's mimalloc maps a 1 GiB arena: the job uses the system allocator instead). The
tiny test job then peaks at 0.59 GB of data for 0.34 GB resident (1.6 GB with mimalloc).

A cgroup ``memory.max`` would count the job's page cache too, but needs a cgroup tree
delegated to the daemon (systemd ``Delegate=yes`` and cgroup v2); the rlimit works in
any container, needs no privilege and cannot touch the serving roles.

Over the cap an allocation fails: Python raises ``MemoryError``, torch and Arrow raise
their own errors that say so; ``is_out_of_memory`` recognises them and the job reports
``out of memory (limit N MB)``. The trainer role and the next job are not affected.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
from pathlib import Path

DEFAULT_SHARE = 0.5  # of the machine's memory (or the daemon's cgroup limit, if lower)
MIN_DEFAULT_MB = 1024
# What allocators put in the errors they raise when the rlimit refuses them.
_OOM_TEXTS = (
    "can't allocate memory",  # torch's CPU allocator
    "Cannot allocate memory",  # ENOMEM from any C library
    "std::bad_alloc",
    "failed to map segment from shared object",  # dlopen of a library under the cap
    "out of memory",
)


def limit_mb(configured: int) -> int:
    """The cap in MiB: ``configured``, or for 0 half of what this machine can give."""
    if configured > 0:
        return configured
    return max(MIN_DEFAULT_MB, int(available_bytes() * DEFAULT_SHARE) >> 20)


def available_bytes() -> int:
    """Physical memory, or the memory limit of this process's cgroup when lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit()
    return min(physical, limit) if limit else physical


def _cgroup_limit() -> int | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            candidate = Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max"
        elif "memory" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes"
        else:
            continue
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or v1's huge "unlimited"
            return int(text)
    return None


def apply(limit: int) -> None:
    """Cap the calling process's data (private writable memory) at ``limit`` MiB.

    Call it before pyarrow is imported: it also makes Arrow use the system allocator,
    whose mappings are what it uses (Arrow's mimalloc maps a 1 GiB arena on the first
    Parquet read, of which the job touches a few MB, and the cap would count it all).
    """
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    cap = limit << 20
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, is an allocation that failed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or any(text in str(current) for text in _OOM_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def out_of_memory(limit: int) -> str:
    """The failure text of a job over its cap."""
    return f"out of memory (limit {limit} MB)"


_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


def map_large_blocks(threshold: int = 1 << 20) -> None:
    """Give every allocation of ``threshold`` bytes or more its own mapping (glibc).

    Such a block goes back to the system the moment it is freed. By default glibc
    raises this threshold (up to 32 MB) each time a mapped block is freed, after which
    arrays of a few MB come from the heap, and the heap keeps their pages when they are
    freed: a Ray worker that reads and frames its shard in pieces grew by hundreds of MB
    that way. Fixing the threshold turns the raising off. Elsewhere than glibc it does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, threshold)


def release_freed() -> None:
    """Free what is unreachable now and give the freed heap back to the OS.

    A job that drops its read rows once framed wants them gone before training. Two
    things keep them: reference cycles (pytorch-forecasting's network ``__init__``
    leaves its frames, and with them its callers' locals, in a cycle that only the
    collector frees), and glibc, which keeps freed blocks for reuse (``malloc_trim``
    returns them; elsewhere than glibc that step does nothing).
    """
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Give the heap's free pages back to the OS (glibc's ``malloc_trim``), without a collection.

    A Ray worker calls it between the pieces of its shard: a collection with torch and
    Lightning loaded takes about 0.4 s, the trim well under a millisecond, and the
    pieces' arrays hold no reference cycle.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
