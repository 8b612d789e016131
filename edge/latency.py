"""Per-utterance processing (and speech gate) times for the daemon's summary, in constant memory.

A daemon that runs for months must not keep every figure (the soak's only
memory growth was this list): count and mean over all utterances, percentiles
over the most recent ``window``.
"""

from __future__ import annotations

import numpy as np

WINDOW = 10_000  # percentiles over the last 10,000 utterances: 80 kB


class LatencyStats:
    def __init__(self, window: int = WINDOW):
        self.count = 0
        self._total = 0.0
        # Preallocated ring: no per-utterance allocation, so nothing for the heap to fragment.
        self._recent = np.zeros(window, dtype=np.float64)

    def add(self, seconds: float) -> None:
        self._recent[self.count % self._recent.size] = seconds
        self.count += 1
        self._total += seconds

    @property
    def kept(self) -> int:
        """How many figures are held (at most ``window``), in a buffer allocated once."""
        return min(self.count, self._recent.size)

    def figures(self, name: str) -> dict:
        """``{name}_mean_s`` over all, ``{name}_p50_s`` and ``{name}_p95_s`` over the recent window."""
        if not self.count:
            return {}
        recent = self._recent[: self.kept]
        return {f"{name}_mean_s": self._total / self.count, f"{name}_p50_s": percentile(recent, 50),
                f"{name}_p95_s": percentile(recent, 95)}

    def summary(self, thesis_s: float) -> dict:
        """The processing figures with the window they cover and the mean against the thesis's Pi time."""
        if not self.count:
            return {}
        figures = self.figures("processing")
        return {**figures, "percentiles_over": self.kept, "mean_vs_thesis": figures["processing_mean_s"] / thesis_s}


def percentile(values: np.ndarray, q: float) -> float:
    """numpy.percentile's default (linear) estimate, without it: np.percentile imports numpy.ma
    (about 3.7 MiB resident), which raised the daemon's peak memory when it wrote its summary."""
    ordered = np.sort(values)
    position = (ordered.size - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, ordered.size - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
