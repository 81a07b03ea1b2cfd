"""The metric model: from time, server parameters and incidents to the 14 metrics.

Every metric is computed for all servers and all sample times at once, as
arrays of shape ``(n_servers, n_samples)``. The model is built so the numbers
are physically consistent: the four CPU parts sum to 100, the JVM's share
never exceeds user CPU, swap appears only above the memory-pressure
threshold, load follows CPU and I/O demand relative to the cores, and uptime
grows until a reboot sets it back to zero (taking the slow memory leak with it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nordiqd.simulate.lifecycle import last_event
from nordiqd.simulate.noise import F64, Stream, jitter, octaves, substream
from nordiqd.simulate.profiles import PROFILES
from nordiqd.simulate.servers import ServerTable

METRICS: tuple[str, ...] = (
    "cpu_user_pct",
    "cpu_sys_pct",
    "cpu_iowait_pct",
    "cpu_idle_pct",
    "java_cpu_pct",
    "mem_used_pct",
    "swap_used_pct",
    "disk_usage_pct",
    "net_in_mb_s",
    "net_out_mb_s",
    "back_close_wait",
    "front_close_wait",
    "load_average",
    "uptime_days",
)
SWAP_THRESHOLD = 85.0
# Busy CPUs leave a sliver idle: the kernel's own accounting never shows 0 for long.
_CPU_CEILING = 99.5
_DAY = 86400.0
_HOURS = np.arange(25, dtype=np.float64)


class Demand(NamedTuple):
    """What drives a server at each sample, all ``(n_servers, n_samples)``.

    Attributes:
        cpu: CPU demand, roughly 0..1.4 (1 = a busy weekday peak).
        io: disk I/O demand, same scale.
        net: network demand, same scale.
        mem: working-set demand, 0..1.
        traffic: the autocorrelated traffic noise behind ``cpu``, in [-1, 1].
        wobble: slow noise in [-1, 1] that keeps incidents from being flat lines.
    """

    cpu: F64
    io: F64
    net: F64
    mem: F64
    traffic: F64
    wobble: F64


class MetricModel:
    """Computes metrics for a fleet; holds no state that changes between calls."""

    def __init__(self, table: ServerTable, utc_offset_h: float = 0.0) -> None:
        """Prepares the per-stream keys.

        Args:
            table: the fleet's server parameters.
            utc_offset_h: offset of the fleet's local time (business hours) from UTC.
        """
        self.table = table
        self.offset_s = utc_offset_h * 3600.0
        self._keys = {s: substream(table.keys, s) for s in Stream}
        self._curves = {n: np.array(p.day_curve + p.day_curve[:1]) for n, p in PROFILES.items()}

    def _jitter(self, salt: int, steps: np.ndarray) -> F64:
        return jitter(substream(self._keys[Stream.JITTER], 0, salt), steps)

    def activity(self, t: F64) -> Demand:
        """What each server is asked to do at each time.

        Daily and weekly seasonality per profile, autocorrelated noise, short
        traffic bursts, ETL's night window and hourly loads, ML's long jobs and
        the database's nightly backup.
        """
        tb = self.table
        n = tb.n
        local = t + self.offset_s
        hour = np.mod(local, _DAY) / 3600.0
        weekend = np.mod(np.floor(local / _DAY) + 3.0, 7.0) >= 5.0  # 1970-01-01 was a Thursday
        day = np.empty((n, len(t)))
        for name, group in tb.profile_rows.items():
            h = np.mod(hour[None, :] + tb.shift_h[group, None], 24.0)
            day[group] = np.interp(h.ravel(), _HOURS, self._curves[name]).reshape(h.shape)
        week = np.where(weekend[None, :], tb.weekend[:, None], 1.0)
        traffic = octaves(self._keys[Stream.TRAFFIC], t, (14400.0, 3000.0, 420.0), (0.5, 0.3, 0.2))
        b = octaves(self._keys[Stream.BURST], t, (900.0, 180.0), (0.6, 0.4))
        burst = np.clip((b - 0.4) / 0.6, 0.0, 1.0)
        level = tb.level[:, None]
        a = day * week * level * (1.0 + 0.3 * traffic) + 0.3 * level * burst * burst
        a = np.clip(a, 0.0, 1.4)
        ion = octaves(self._keys[Stream.IO], t, (3600.0, 600.0), (0.6, 0.4))
        io_act = a * (0.8 + 0.4 * ion)
        net_act = a.copy()
        mem_act = np.minimum(a, 1.0)

        if (rows := tb.profile_rows.get("batch_etl")) is not None:
            # Hourly incremental loads in the first seven minutes of each hour.
            a[rows] += 0.2 * (np.mod(local, 3600.0) < 420.0)[None, :]
            io_act[rows] = a[rows]
            net_act[rows] = a[rows]
        if (rows := tb.profile_rows.get("database")) is not None:
            backup = np.clip(np.minimum(hour - 2.0, 3.0 - hour) * 6.0, 0.0, 1.0)
            io_act[rows] = 0.6 * a[rows] + 1.4 * backup[None, :]
        if (rows := tb.profile_rows.get("ml_compute")) is not None:
            jobs = octaves(self._keys[Stream.ML_JOBS][rows], t, (18000.0, 5400.0), (0.75, 0.25))
            x = np.clip((jobs - tb.ml_threshold[rows, None]) / 0.12, 0.0, 1.0)
            job = x * x * (3.0 - 2.0 * x)
            # Data loading at the start of a job, checkpoints at its end.
            edges = 4.0 * job * (1.0 - job)
            a[rows] = 0.04 + job * (0.92 + 0.06 * traffic[rows])
            io_act[rows] = 0.2 * job + edges
            net_act[rows] = 0.08 + 0.1 * job + 0.9 * edges
            mem_act[rows] = job
        return Demand(a, io_act, net_act, mem_act, traffic, ion)

    def compute(self, t: F64, steps: np.ndarray, incidents: dict[str, F64]) -> dict[str, F64]:
        """All 14 metrics, each of shape ``(n_servers, len(t))``.

        Args:
            t: sample times in epoch seconds.
            steps: the samples' step indices (keys for per-sample measurement noise).
            incidents: intensity curves per incident kind (see ``IncidentPlan``).
        """
        tb = self.table
        shape = (tb.n, len(t))
        zero = np.zeros(shape)
        runaway = incidents.get("cpu_runaway", zero)
        storm = incidents.get("io_storm", zero)
        leak = incidents.get("memory_leak", zero)
        outage = incidents.get("db_outage", zero)
        wait = incidents.get("db_wait", zero)
        fill = incidents.get("disk_fill", zero)
        col = np.newaxis

        a, io_act, net_act, mem_act, traffic, wobble = self.activity(t)
        # Real incidents flicker; a flat plateau would look scripted.
        flicker = 0.85 + 0.15 * wobble
        storm, outage, wait = storm * flicker, outage * flicker, wait * flicker
        jvm = (tb.java_share > 0)[:, col]
        user = np.maximum(0.0, tb.user0[:, col] + tb.user1[:, col] * a + 0.5 * self._jitter(1, steps))
        sys = np.maximum(0.0, tb.sys_ratio[:, col] * user + 0.4 + 0.2 * self._jitter(2, steps))
        io = np.maximum(0.0, tb.io0[:, col] + tb.io1[:, col] * io_act + 0.15 * self._jitter(3, steps))

        user = user + runaway * np.maximum(0.0, 97.0 - user - sys - io)
        user = user + 10.0 * leak * leak * jvm  # garbage collector fighting the leak
        user = user * (1.0 - 0.35 * storm) * (1.0 - 0.5 * outage) * (1.0 - 0.45 * wait)
        sys = sys + 8.0 * outage + 5.0 * wait
        io = io + 50.0 * storm + 40.0 * outage + 12.0 * wait
        total = user + sys + io
        scale = np.where(total > _CPU_CEILING, _CPU_CEILING / np.maximum(total, 1e-9), 1.0)
        user, sys, io = user * scale, sys * scale, io * scale
        share = tb.java_share[:, col] + (0.95 - tb.java_share[:, col]) * runaway * jvm
        java = user * share

        rebooted = last_event(
            self._keys[Stream.REBOOT], t, tb.reboot_s, tb.reboot_phase, 0.3, window=(self.offset_s, 2.0, 3.0)
        )
        uptime = (t[None, :] - rebooted) / _DAY
        slow_leak = np.minimum(tb.leak_per_day[:, col] * uptime, tb.leak_cap[:, col])
        mem_noise = octaves(self._keys[Stream.MEMORY], t, (7200.0, 900.0), (0.7, 0.3))
        mem = (
            tb.mem_base[:, col]
            + tb.mem_span[:, col] * mem_act
            + slow_leak
            + 1.2 * mem_noise
            + 0.1 * self._jitter(4, steps)
        )
        mem = np.clip(mem + leak * np.maximum(0.0, 97.0 - mem), 0.0, 99.5)
        swap = np.clip(tb.swap_base[:, col] + 3.5 * np.maximum(0.0, mem - SWAP_THRESHOLD), 0.0, 100.0)

        cleaned = last_event(self._keys[Stream.CLEANUP], t, tb.cleanup_s, tb.cleanup_phase, 0.2)
        since = (t[None, :] - cleaned) / tb.cleanup_s[:, col]
        disk_noise = octaves(self._keys[Stream.DISK], t, (3600.0,), (1.0,))
        disk = tb.disk_base[:, col] + tb.disk_fill[:, col] * since / 1.2 + 0.15 * disk_noise
        if (rows := tb.profile_rows.get("batch_etl")) is not None:
            disk[rows] += 10.0 * np.minimum(a[rows], 1.0)  # temporary files of the running job
        disk = np.clip(disk + fill * np.maximum(0.0, 98.5 - disk), 0.0, 100.0)

        net_noise = octaves(self._keys[Stream.NETWORK], t, (1800.0, 300.0), (0.6, 0.4))
        served = (1.0 - 0.6 * wait) * (1.0 - 0.5 * outage)
        net_in = np.maximum(0.0, tb.net_in[:, col] * net_act * (1.0 + 0.2 * net_noise) * served)
        net_out = net_in * tb.net_out_ratio[:, col] * (1.0 + 0.05 * self._jitter(5, steps))
        if (rows := tb.profile_rows.get("database")) is not None:
            hour = np.mod(t + self.offset_s, _DAY) / 3600.0
            backup = np.clip(np.minimum(hour - 2.0, 3.0 - hour) * 6.0, 0.0, 1.0)
            net_out[rows] += 25.0 * backup[None, :] * served[rows]  # backup shipped off-host
        net_out = np.maximum(0.0, net_out)

        back = tb.cw_back[:, col] * a + 1.2 * self._jitter(6, steps) + 380.0 * wait
        front = tb.cw_front[:, col] * a + 1.2 * self._jitter(7, steps) + 140.0 * wait + 260.0 * outage
        cores = tb.cores[:, col]
        load = cores * (
            (user + sys + io) / 100.0 * (1.0 + 0.05 * traffic) + 0.4 * runaway + 0.8 * wait + 0.5 * outage
        )
        # Agents report what /proc and sysstat print: two decimals for percentages and
        # load, three for rates. The idle share is what the rounded parts leave, so the
        # four CPU parts still add up to 100.
        user, sys, io = np.round(user, 2), np.round(sys, 2), np.round(io, 2)
        return {
            "cpu_user_pct": user,
            "cpu_sys_pct": sys,
            "cpu_iowait_pct": io,
            "cpu_idle_pct": np.maximum(0.0, np.round(100.0 - (user + sys + io), 2)),
            "java_cpu_pct": np.minimum(np.round(java, 2), user),
            "mem_used_pct": np.round(mem, 2),
            "swap_used_pct": np.round(swap, 2),
            "disk_usage_pct": np.round(disk, 2),
            "net_in_mb_s": np.round(net_in, 3),
            "net_out_mb_s": np.round(net_out, 3),
            "back_close_wait": np.floor(np.maximum(0.0, back) + 0.5),
            "front_close_wait": np.floor(np.maximum(0.0, front) + 0.5),
            "load_average": np.round(np.maximum(0.0, load), 2),
            "uptime_days": uptime,
        }
