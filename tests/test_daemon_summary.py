"""The daemon's summary statistics: numpy.percentile's figures without importing numpy.ma."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ser_edge.benchmarks import signals
from ser_edge.edge.latency import LatencyStats, percentile
from tests.fixtures import espeak

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, 101])
@pytest.mark.parametrize("q", [0, 5, 50, 95, 99, 100])
def test_percentile_matches_numpy(rng, size, q):
    values = rng.exponential(0.01, size)
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-15)


def test_a_listen_run_loads_neither_numpy_ma_nor_numpy_random(tmp_path):
    wav = tmp_path / "speech.wav"
    espeak("I feel so tired and sad today.", wav)
    code = textwrap.dedent(f"""
        import sys
        from ser_edge.edge.cli import main
        assert main(["listen", "--input", {str(wav)!r}]) == 0
        loaded = sorted(m for m in sys.modules if m.split(".")[:2] in (["numpy", "ma"], ["numpy", "random"]))
        assert not loaded, loaded
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert '"utterances": 1' in done.stderr  # the summary was written, percentiles included
    assert '"processing_p95_s"' in done.stderr


def test_the_summary_gives_the_speech_gates_time_over_every_segment_it_judged(tmp_path):
    """Speech then a tone: two segments through the gate, one line; the gate's figures cover both."""
    wav = tmp_path / "speech-then-tone.wav"
    espeak("I feel so tired and sad today.", wav)
    speech, rate = soundfile.read(wav, dtype="float32")
    gap = np.zeros(rate, np.float32)
    soundfile.write(wav, np.concatenate([gap, speech, gap, signals.tone(rate, 3.0), gap]), rate, subtype="PCM_16")
    done = subprocess.run([sys.executable, "-m", "ser_edge.edge.cli", "listen", "--input", str(wav)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    summary = next(json.loads(line)["summary"] for line in done.stderr.splitlines() if line.startswith('{"summary"'))
    assert (summary["utterances"], summary["not_speech"], len(lines)) == (1, 1, 1)
    assert summary["speech_gate_segments"] == 2
    speech_gate = lines[0]["latency_s"]["speech_gate"]
    # Two figures: the mean is their average, so the tone's is twice the mean less the speech's.
    tone_gate = 2 * summary["speech_gate_mean_s"] - speech_gate
    assert tone_gate > 0 and summary["speech_gate_p95_s"] >= summary["speech_gate_p50_s"] > 0


def test_latency_figures_are_named_and_empty_before_the_first():
    stats = LatencyStats(window=4)
    assert stats.figures("speech_gate") == {} and stats.summary(1.35) == {}
    for seconds in (0.1, 0.2, 0.3, 0.4, 0.5):  # the first leaves the window of four
        stats.add(seconds)
    assert stats.figures("speech_gate") == {"speech_gate_mean_s": pytest.approx(0.3),
                                            "speech_gate_p50_s": pytest.approx(0.35),
                                            "speech_gate_p95_s": pytest.approx(0.485)}
    assert stats.summary(1.5)["mean_vs_thesis"] == pytest.approx(0.2) and stats.summary(1.5)["percentiles_over"] == 4
