"""The training job's memory cap: its default, the rlimit itself, and how a job over it is named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from nordiqd import config
from nordiqd.training import memory
from nordiqd.training.job import failure_text
from nordiqd.training.jobs import exit_text


def test_the_default_is_half_of_what_the_machine_gives() -> None:
    assert memory.limit_mb(300) == 300
    half = memory.available_bytes() // 2 >> 20
    assert memory.limit_mb(0) == max(memory.MIN_DEFAULT_MB, half)
    assert memory.available_bytes() <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_the_cap_stops_an_allocation_over_it_and_not_one_under_it() -> None:
    # A fresh interpreter, as a job is: under a 200 MB cap 50 MB fit, 400 MB do not.
    code = (
        "from nordiqd.training import memory\n"
        "memory.apply(200)\n"
        "small = bytearray(50 << 20)\n"
        "try:\n"
        "    big = bytearray(400 << 20)\n"
        "except MemoryError as exc:\n"
        "    print('refused', memory.is_out_of_memory(exc))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused True"


@pytest.mark.parametrize(
    ("exc", "oom"),
    [
        (MemoryError(), True),
        (
            RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
            True,
        ),
        (ImportError("libtorch_cpu.so: failed to map segment from shared object"), True),
        (OSError(12, "Cannot allocate memory"), True),
        (RuntimeError("shape mismatch"), False),
    ],
)
def test_what_counts_as_out_of_memory(exc: BaseException, oom: bool) -> None:
    assert memory.is_out_of_memory(exc) is oom


def test_a_job_over_its_cap_says_out_of_memory_with_the_limit() -> None:
    cfg = config.Config()
    text = failure_text(cfg, MemoryError("Unable to allocate 3.0 GiB"), 256)
    assert text.startswith("out of memory (limit 256 MB): MemoryError: Unable to allocate 3.0 GiB")
    assert failure_text(cfg, ValueError("no windows"), 256) == "ValueError: no windows"


def test_a_job_on_a_full_disk_says_so_with_the_folder(tmp_path: object) -> None:
    cfg = config.from_dict({"daemon": {"data_dir": str(tmp_path)}})
    gone = os.path.join(cfg.models_dir, ".staging-x", "weights.safetensors")
    os.makedirs(cfg.models_dir)
    text = failure_text(cfg, OSError(28, "No space left on device", gone), 256)
    assert text.startswith(
        f"the disk is full: no space left on device for the new model in {cfg.models_dir} ("
    )


def test_a_job_killed_by_a_crash_signal_names_the_cap_as_a_possible_cause() -> None:
    assert exit_text(-signal.SIGKILL, 512) == (
        "the training process was killed by SIGKILL (it may have run out of memory: limit 512 MB)"
    )
    assert exit_text(-signal.SIGTERM, 512) == "the training process was killed by SIGTERM"
    assert exit_text(-signal.SIGKILL) == "the training process was killed by SIGKILL"


_FREED = """
import numpy as np
from nordiqd.training import memory

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

if {fixed}:
    memory.map_large_blocks()
big = np.ones(30 << 20, np.uint8)
del big  # glibc now serves blocks up to 30 MB from the heap, unless the threshold is fixed
blocks, pins = [], []
for _ in range(20):
    blocks.append(np.ones(4 << 20, np.uint8))
    pins.append(np.ones(8 << 10, np.uint8))  # between them: freed, they leave holes, not a top to trim
before = rss()
del blocks
print((before - rss()) >> 20)
"""


@pytest.mark.skipif(os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc's malloc only")
def test_large_blocks_go_back_to_the_system_when_freed() -> None:
    def returned(fixed: bool) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _FREED.format(fixed=fixed)], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        return int(run.stdout)

    fixed = returned(fixed=True)
    assert fixed >= 76  # of the 80 MB freed
    assert returned(fixed=False) <= fixed - 12  # glibc's default keeps some: what the fix is for
