"""``python -m ser_edge.benchmarks.listen_bench``: a real daemon on the fake ALSA microphone, its own latency lines."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ser_edge.benchmarks.fake_microphone import espeak_available
from ser_edge.benchmarks.listen_bench import latency_rows

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


def test_latency_rows_take_median_and_max_per_stage_and_skip_a_gate_that_did_not_run():
    lines = [{"speech_gate": 0.1, "features": 0.004, "inference": 0.002, "processing": 0.006},
             {"speech_gate": 0.3, "features": 0.002, "inference": 0.004, "processing": 0.006},
             {"speech_gate": None, "features": 0.003, "inference": 0.003, "processing": 0.006}]
    rows = latency_rows(lines)
    assert rows[0] == "| speech_gate | 200.0 ms | 300.0 ms |"  # the energy gate's null is not a 0
    assert rows[1:] == ["| features | 3.0 ms | 4.0 ms |", "| inference | 3.0 ms | 4.0 ms |",
                        "| processing | 6.0 ms | 6.0 ms |"]


@pytest.mark.slow
def test_one_run_reports_ready_memory_and_each_utterances_latency_parts():
    done = subprocess.run([sys.executable, "-m", "ser_edge.benchmarks.listen_bench", "--runs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    counted = re.search(r"as the daemon logs it \((\d+) utterances\)", done.stdout)
    assert counted and int(counted.group(1)) == 4, done.stdout  # the fake microphone plays four sentences
    stages = dict(re.findall(r"^\| (speech_gate|features|inference|processing) \| ([0-9.]+) ms \|", done.stdout, re.M))
    assert set(stages) == {"speech_gate", "features", "inference", "processing"}, done.stdout
    assert all(float(ms) > 0 for ms in stages.values())
    assert float(stages["processing"]) >= float(stages["inference"])
