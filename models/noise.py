"""Additive noise at a set signal-to-noise ratio: shared by training's noisy copies and the noise benchmark.

numpy only (no TensorFlow): ``ser_edge.benchmarks.noise_bench`` imports it too.

- Noise is Gaussian with a power spectrum falling as 1/f**exponent: 0 white,
  1 pink (3 dB per octave, like much room and fan noise), 2 brown (6 dB per
  octave: rumble, traffic).
- The SNR is set against the speech's level, not the whole file's (the
  corpora's files are up to half silence): the RMS over the 20 ms frames
  within 40 dB of the file's loudest frame, a simple stand-in for ITU-T
  P.56's active speech level. Pauses whose own noise lies within those 40 dB
  count towards the level (EMO-DB's mirror: its floor is about 32 dB below
  the speech), which lowers it (by 3 dB where half the frames are such
  pauses), so there the noise is that much quieter than the stated SNR
  says; RAVDESS's pauses (about 75 dB below) never count. The noise covers the whole signal.
- The sum is clipped to [-1, 1] as an ADC would (the clipped samples are counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser_edge.edge.errors import SerEdgeError

COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # the exponent of 1/f in the noise's power spectrum
FRAME_S = 0.020
ACTIVE_RANGE_DB = 40.0  # frames this far below the loudest one still count as speech
# Training's noisy copies use white and brown only, so that pink, between them, stays unseen for the benchmark.
TRAINING_COLOURS = ("white", "brown")


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum 1/f**COLOURS[colour], unit RMS, float64."""
    if colour not in COLOURS:
        raise SerEdgeError(f"noise must be one of {', '.join(COLOURS)}, got {colour!r}")
    if length < 2:
        raise SerEdgeError("noise needs at least two samples")
    white = rng.standard_normal(length)
    if COLOURS[colour]:
        frequency = np.fft.rfftfreq(length)
        frequency[0] = frequency[1]  # no infinite DC: the lowest band's level
        noise = np.fft.irfft(np.fft.rfft(white) / frequency ** (COLOURS[colour] / 2), length)
    else:
        noise = white
    return noise / np.sqrt(np.mean(np.square(noise)))


def frame_power(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean power of each 20 ms frame (a last partial frame left out; a signal shorter than a frame is one)."""
    samples = np.asarray(signal, dtype=np.float64)
    frame = min(max(1, round(FRAME_S * sample_rate)), max(1, len(samples)))
    count = len(samples) // frame
    return np.mean(np.square(samples[: count * frame].reshape(count, frame)), axis=1)


def speech_rms(signal: np.ndarray, sample_rate: int) -> float:
    """RMS over the 20 ms frames within ACTIVE_RANGE_DB of the loudest frame (0 for a silent signal)."""
    power = frame_power(signal, sample_rate)
    if not power.size or power.max() <= 0:
        return 0.0
    active = power >= power.max() * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)
    return float(np.sqrt(power[active].mean()))


def add_noise(signal: np.ndarray, noise: np.ndarray, snr_db: float, level: float) -> tuple[np.ndarray, int]:
    """``signal`` plus unit-RMS ``noise`` ``snr_db`` below ``level`` (the speech RMS), float32, clipped to
    [-1, 1], and how many samples were clipped."""
    mixed = (signal + noise * (level / 10.0 ** (snr_db / 20.0))).astype(np.float32)
    clipped = int(np.count_nonzero(np.abs(mixed) > 1.0))
    return (np.clip(mixed, -1.0, 1.0, out=mixed) if clipped else mixed), clipped


@dataclass(frozen=True)
class NoiseCopy:
    """The ``copy``-th noisy version of a training set: per file a colour from TRAINING_COLOURS and an SNR
    uniform in [snr_low, snr_high] dB, drawn from (copy, file position) alone, so a copy is the same on any
    machine and in any run over the same file list."""

    copy: int
    snr_low: float
    snr_high: float

    @property
    def key(self) -> str:
        """For cache file names: what decides the copy's content."""
        return f"noise{self.copy}-{self.snr_low:g}-{self.snr_high:g}-{'+'.join(TRAINING_COLOURS)}"

    def apply(self, signal: np.ndarray, sample_rate: int, position: int) -> np.ndarray:
        level = speech_rms(signal, sample_rate)
        if level == 0 or len(signal) < 2:  # silence has no SNR: left as it is
            return signal
        rng = np.random.default_rng([self.copy, position])
        colour = TRAINING_COLOURS[int(rng.integers(len(TRAINING_COLOURS)))]
        snr = float(rng.uniform(self.snr_low, self.snr_high))
        return add_noise(signal, coloured_noise(len(signal), colour, rng), snr, level)[0]


def check_snr_range(snr: tuple[float, float]) -> tuple[float, float]:
    low, high = snr
    if not (np.isfinite(low) and np.isfinite(high) and -10.0 <= low <= high <= 60.0):
        raise SerEdgeError(f"--noise-snr must be LOW,HIGH dB with -10 <= LOW <= HIGH <= 60, got {low:g},{high:g}")
    return float(low), float(high)
