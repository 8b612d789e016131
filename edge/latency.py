"""Per-utterance processing times for the daemon's summary, in constant memory.

A daemon that runs for months must not keep every figure (the soak's only
memory growth was this list): count and mean over all utterances, percentiles
over the most recent ``window``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

WINDOW = 10_000  # percentiles over the last 10,000 utterances: 80 kB


class LatencyStats:
    def __init__(self, window: int = WINDOW):
        self.count = 0
        self._total = 0.0
        self._recent: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self.count += 1
        self._total += seconds
        self._recent.append(seconds)

    @property
    def kept(self) -> int:
        """How many figures are held in memory (at most ``window``)."""
        return len(self._recent)

    def summary(self, thesis_s: float) -> dict:
        if not self.count:
            return {}
        recent = np.fromiter(self._recent, dtype=np.float64, count=len(self._recent))
        mean = self._total / self.count
        return {
            "processing_mean_s": mean,
            "processing_p50_s": float(np.percentile(recent, 50)),
            "processing_p95_s": float(np.percentile(recent, 95)),
            "percentiles_over": len(recent),
            "mean_vs_thesis": mean / thesis_s,
        }
