"""The daemon's summary statistics: numpy.percentile's figures without importing numpy.ma."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge.latency import percentile
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
