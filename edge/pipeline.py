"""decode -> features -> inference at batch 1, each stage timed: the one timed pipeline.

The daemon and ``classify`` start from a signal; ``ser-bench`` starts from a
file and times decoding too, for LiteRT and for the Keras baseline alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Stage names as they appear in results (latency_s of a listen line, ser-bench's reports).
DECODE, FEATURES, INFERENCE = "decode_resample", "features", "inference"


@dataclass(frozen=True)
class Timed:
    probabilities: np.ndarray
    samples: int  # length of the signal the features were computed from
    seconds: dict[str, float]  # one entry per stage run
    matrix: np.ndarray | None = None  # the features the model was given (before its input normalisation)


@dataclass(frozen=True)
class TimedPipeline:
    features: Callable[[np.ndarray], np.ndarray]  # signal -> feature matrix
    infer: Callable[[np.ndarray], np.ndarray]  # feature matrix -> class probabilities
    decode: Callable[[Path], np.ndarray] | None = None  # file -> signal at the model's rate

    def from_signal(self, signal: np.ndarray) -> Timed:
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        matrix = self.features(signal)
        computed = time.perf_counter()
        probabilities = self.infer(matrix)
        seconds[FEATURES] = computed - started
        seconds[INFERENCE] = time.perf_counter() - computed
        return Timed(probabilities, int(signal.shape[0]), seconds, matrix)

    def from_file(self, path: Path) -> Timed:
        if self.decode is None:
            raise TypeError("this pipeline has no decoder: use from_signal")
        started = time.perf_counter()
        signal = self.decode(path)
        decoded = time.perf_counter() - started
        timed = self.from_signal(signal)
        return Timed(timed.probabilities, timed.samples, {DECODE: decoded, **timed.seconds}, timed.matrix)
