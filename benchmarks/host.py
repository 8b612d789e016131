"""What a run ran on: CPU, cores, Python, LiteRT, the model file; process age and peak memory."""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import resource
import sys
from pathlib import Path

from ser_edge.edge.litert import runtime_name

# /proc/cpuinfo on a Raspberry Pi has no "model name"; its "CPU part" names the core.
ARM_CORES = {"0xd03": "Cortex-A53", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72",
             "0xd0b": "Cortex-A76", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78"}


def host_info(threads: int) -> dict:
    return {
        "cpu": cpu_model(),
        "board": board_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "litert": runtime_name(),
        "threads": threads,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cpu_model(cpuinfo: str | None = None) -> str:
    """"Intel(R) Xeon(R) ..." on x86; "Cortex-A72 (ARMv8)" style on a Pi; platform's guess elsewhere."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    if fields.get("model name"):
        return fields["model name"]
    part = fields.get("cpu part", "").lower()
    if part:
        return f"{ARM_CORES.get(part, 'ARM CPU part ' + part)} (ARMv{fields.get('cpu architecture', '?')})"
    return platform.processor() or platform.machine() or "unknown"


def board_model() -> str | None:
    """The board ("Raspberry Pi 4 Model B Rev 1.4") where the device tree names it."""
    try:
        return Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace") or None
    except OSError:
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def process_age_s() -> float | None:
    """Seconds since this process started (kernel start time, 10 ms resolution); None off Linux."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        stat = Path("/proc/self/stat").read_text()
    except (OSError, ValueError, IndexError):
        return None
    # Field 2 (the command) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        started_ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
    except (IndexError, ValueError):
        return None
    return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
