"""Helpers for driving a real ``ser-edge listen`` process: PCM bytes, strict JSON, unprivileged runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SER_EDGE = [sys.executable, "-m", "edge.cli"]
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


def assert_one_clear_error(done: subprocess.CompletedProcess, fragment: str) -> None:
    """A non-zero exit, exactly one error line containing ``fragment``, no traceback."""
    stderr = done.stderr if isinstance(done.stderr, str) else done.stderr.decode()
    assert done.returncode not in (0, None) and done.returncode > 0, (done.returncode, stderr)
    assert "Traceback" not in stderr and "Fatal Python error" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1 and fragment in errors[0], stderr


def as_nobody() -> dict:
    """subprocess arguments that drop root (file permissions do not bind root); none when not root."""
    if os.geteuid() != 0:
        return {}
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def shared_tmp() -> Path:
    """A temporary directory the unprivileged user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ser-edge-test-"))
    path.chmod(0o755)
    return path
