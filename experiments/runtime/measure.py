"""The measurement: timed runs, peak memory of a worker process, and how busy the other processes kept
the CPUs (a worker that ran while others competed is run again or flagged in the table)."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable

#: A worker ran disturbed if other processes kept more than this many cores busy meanwhile.
DISTURBED_CORES = 0.25


def timed_runs(
    run: Callable[[int], object], repeats: int, min_time: float, max_runs: int = 200
) -> list[float]:
    """Seconds of each of ``repeats`` calls run(r), r = 0, 1, …, or more (up to ``max_runs``) until
    ``min_time`` seconds have passed: many short runs make the median robust to bursts of load."""
    times = []
    end = time.perf_counter() + min_time
    while len(times) < repeats or (time.perf_counter() < end and len(times) < max_runs):
        start = time.perf_counter()
        run(len(times))
        times.append(time.perf_counter() - start)
    return times


def rss_mib() -> float:
    """Current resident set size of this process, MiB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set size of this process since start or the last ``reset_peak_rss``, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


def cpu_memory(reset: bool) -> dict:
    """The CPU memory figure of a worker: its peak RSS, 'rss' if the peak was reset after the warm-up,
    else 'rss-whole-process'."""
    return {"peak_mib": peak_rss_mib(), "memory": "rss" if reset else "rss-whole-process"}


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (Linux /proc/stat; (0, 0) elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # minus idle and iowait


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of the machine's CPU time spent busy over ``interval`` seconds (0 where unknown)."""
    busy0, total0 = cpu_ticks()
    time.sleep(interval)
    busy1, total1 = cpu_ticks()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_until_idle(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` of the CPUs → seconds
    waited."""
    start = time.monotonic()
    while time.monotonic() - start < max_wait and cpu_busy(2.0) > threshold:
        pass
    return time.monotonic() - start


class OtherLoad:
    """Cores that other processes kept busy while child processes ran: the machine's busy CPU time minus
    the children's own (user + system), per second of wall time, from ``__init__`` to ``cores()``."""

    def __init__(self) -> None:
        self.busy, self.own, self.start = cpu_ticks()[0], self._children_cpu_s(), time.monotonic()

    @staticmethod
    def _children_cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def cores(self) -> float:
        """Average number of cores busy with other processes since the start (≥ 0)."""
        machine_s = (cpu_ticks()[0] - self.busy) / os.sysconf("SC_CLK_TCK")
        others = (machine_s - (self._children_cpu_s() - self.own)) / (time.monotonic() - self.start)
        return max(others, 0.0)
