"""Busy processes beside a measurement: a Pi whose other services keep the CPU busy.

``ser-bench --load N`` runs N of them (each a pure-Python busy loop, one
core's worth of demand, no memory traffic to speak of) from before the
warm-up until the timed pass ends, and reports how much CPU time each one
actually got, so a reader can see that the load was there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BUSY_LOOP = "while True:\n    pass\n"
KIND = "pure-Python busy loop (one core's demand each)"


class BusyLoad:
    """Context manager: ``count`` busy processes while the block runs; ``summary()`` afterwards."""

    def __init__(self, count: int):
        if count < 0:
            raise ValueError(f"load must not be negative, got {count}")
        self.count = count
        self._processes: list[subprocess.Popen] = []
        self._cpu_s: list[float | None] = []
        self._started = self._ended = 0.0

    def __enter__(self) -> "BusyLoad":
        self._started = time.perf_counter()
        for _ in range(self.count):
            self._processes.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc: object) -> None:
        self._ended = time.perf_counter()
        self._cpu_s = [cpu_seconds(p.pid) for p in self._processes]
        for process in self._processes:
            process.kill()
        for process in self._processes:
            process.wait()
        self._processes = []

    def summary(self) -> dict:
        """What ran beside the measurement: count, kind, wall time and each process's CPU seconds."""
        return {"busy_processes": self.count, "kind": KIND if self.count else None,
                "wall_s": round(self._ended - self._started, 3),
                "cpu_s_each": [None if c is None else round(c, 3) for c in self._cpu_s]}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15
    except (IndexError, ValueError):
        return None
