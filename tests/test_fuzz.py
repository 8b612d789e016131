"""Fuzzed WAV headers and model files (tests/fuzz_cases.py): a result or one clear error, never a traceback,
crash or hang. A few seconds: 600 seeded cases per model variant in a child process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ser_edge.edge.registry import resolve_model

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of `-m "not slow"`


@pytest.mark.parametrize("model, seed", [("ravdess-dynamic", 1), ("emodb-int8", 2)])
def test_fuzzed_headers_and_models(model, seed):
    done = subprocess.run([sys.executable, "-m", "tests.fuzz_cases", "--seed", str(seed), "--cases", "600",
                           "--model", str(resolve_model(model))], capture_output=True, text=True, timeout=300)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "(no output)"
    assert done.returncode == 0, f"exit {done.returncode} after {last}\n{done.stderr[-3000:]}"
    counts = json.loads(last)
    # Both outcomes occur: the mutations reach past the first check into decoding and inference.
    assert counts["ok"] > 100 and counts["error"] > 100, counts
