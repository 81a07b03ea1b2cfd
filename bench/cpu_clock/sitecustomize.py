"""Bench helper (issue 16, session 23): with BENCH_CPU_CLOCK=1 every perf_counter reading
is the process's CPU time, so a bench that only measures wall time reports CPU-seconds."""

import os
import time

if os.environ.get("BENCH_CPU_CLOCK") == "1":
    time.perf_counter = time.process_time
