"""Helpers for driving a real ``ser-edge listen`` process: PCM bytes, strict JSON, unprivileged runs."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

SER_EDGE = [sys.executable, "-m", "ser_edge.edge.cli"]
NOBODY = 65534


def pcm_bytes(signal: np.ndarray) -> bytes:
    """float32 [-1, 1] -> raw s16le, what ``listen --input -`` reads."""
    return np.clip(np.round(signal * 32768.0), -32768, 32767).astype("<i2").tobytes()


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def strict_lines(stdout: str) -> list[dict]:
    """Result lines parsed as strict JSON (NaN and Infinity rejected), probabilities finite."""
    lines = [json.loads(line, parse_constant=_no_constants) for line in stdout.splitlines() if line.strip()]
    for line in lines:
        assert all(math.isfinite(p) for p in line["probabilities"].values()), line
    return lines


def summary_of(stderr: str) -> dict:
    found = [json.loads(line)["summary"] for line in stderr.splitlines() if line.startswith('{"summary"')]
    assert len(found) == 1, stderr
    return found[0]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ser-edge: error:")]


def assert_one_clear_error(done, fragment: str) -> None:
    """A non-zero exit, exactly one error line containing ``fragment``, no traceback."""
    stderr = done.stderr if isinstance(done.stderr, str) else done.stderr.decode()
    assert done.returncode not in (0, None) and done.returncode > 0, (done.returncode, stderr)
    assert "Traceback" not in stderr and "Fatal Python error" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1 and fragment in errors[0], stderr


def without_file_privileges() -> list[str]:
    """A command prefix under which file permissions bind, as they do for the service's user.

    Root bypasses them through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; setpriv drops
    both (switching users instead would also lose the interpreter under a private /root).
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop the file capabilities")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", drop, "--inh-caps", drop]


def lock(path: Path) -> Path:
    """Make ``path`` unreachable: mode 000, and not root's own when the tests run as root."""
    path.chmod(0o000)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    return path
