"""pytest-benchmark timings of the MFCC frontends, each also a numerical test.

pyproject passes --benchmark-disable by default: every benchmarked call then
runs once and the asserts below still check shape and agreement with librosa.
Time them with ``pytest tests/test_frontend_benchmark.py --benchmark-enable``;
``python -m ser_edge.benchmarks.frontend_bench`` prints the side-by-side table.
"""

from __future__ import annotations

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")

from ser_edge.benchmarks.frontend_bench import synthetic_signal  # noqa: E402
from ser_edge.edge import features  # noqa: E402
from ser_edge.edge.config import FeatureConfig  # noqa: E402

TOLERANCE = 1e-3
CONFIG = FeatureConfig()
SHAPE = (CONFIG.num_frames, CONFIG.n_mfcc)


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    """The synthetic utterance (the model's window) the benchmark script falls back to."""
    y = synthetic_signal(seed=0)
    assert y.shape == (CONFIG.num_samples,) and y.dtype == np.float32
    return y


@pytest.fixture(scope="module")
def reference(signal) -> np.ndarray:
    return librosa.feature.mfcc(y=signal, sr=CONFIG.sample_rate, n_mfcc=CONFIG.n_mfcc).T


def test_edge_mfcc(benchmark, fft_backend, signal, reference):
    benchmark.group = "mfcc 100,000 samples"
    benchmark.extra_info["fft_backend"] = fft_backend
    result = benchmark(features.mfcc, signal)
    assert features.FFT_BACKEND == fft_backend
    assert result.shape == SHAPE and result.dtype == np.float32
    assert np.abs(result - reference).max() <= TOLERANCE


def test_librosa_mfcc(benchmark, signal, reference):
    benchmark.group = "mfcc 100,000 samples"
    result = benchmark(lambda y: librosa.feature.mfcc(y=y, sr=CONFIG.sample_rate, n_mfcc=CONFIG.n_mfcc).T, signal)
    assert result.shape == SHAPE
    np.testing.assert_array_equal(result, reference)  # deterministic
    assert np.abs(result - features.mfcc(signal)).max() <= TOLERANCE
