"""The feature contract shared by training, export, benchmarks and the device.

Every number of the frontend lives here, once. An exported model stores
``FeatureConfig.to_dict()`` in its metadata and the runtime rebuilds the same
object from it, so training and inference cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ser_edge.edge.errors import SerEdgeError

REVERSE_AXES = ("time", "coefficients")
# What any plausible speech model uses; far outside means a damaged file, not a choice.
INTEGER_BOUNDS = {"sample_rate": (4000, 192_000), "num_samples": (1, 10_000_000), "n_mfcc": (1, 256),
                  "n_fft": (16, 65_536), "hop_length": (1, 65_536), "n_mels": (1, 1024)}


# How the runtime treats the input level (FeatureConfig.level_reference): the setting ``level``.
LEVELS = ("normalised", "as-recorded")
# The fields applied to (cached) MFCC matrices when the model inputs are made (features.standardize).
NORMALISATION = ("speaker_mean", "speaker_std", "input_mean", "input_std", "utterance_mean", "level_reference")
STATISTICS = (("speaker_mean", "speaker_std"), ("input_mean", "input_std"))  # per-coefficient pairs


@dataclass(frozen=True)
class FeatureConfig:
    """Decode -> mono -> resample -> centred fit -> MFCC -> (forward, reversed).

    Defaults are the thesis's (TIM-Net's) preprocessing: librosa's MFCC
    defaults at 22,050 Hz on 100,000 samples, 39 coefficients.
    """

    sample_rate: int = 22050
    num_samples: int = 100_000
    n_mfcc: int = 39
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None means sample_rate / 2
    amin: float = 1e-10
    top_db: float | None = 80.0  # None: no floor
    # The thesis text reverses along time; the authors' code appears to flip
    # the coefficient axis. "time" is what the text says.
    reverse_axis: str = "time"
    # Model inputs in the order the Keras model declares them.
    input_names: tuple[str, ...] = field(default=("forward", "backward"))
    # Per-coefficient standardisation, (mfcc - mean) / std, with statistics of
    # the model's training set; None: raw MFCCs (models trained before it).
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    # Cepstral mean subtraction: each utterance's mean MFCC vector (over the
    # fitted window) is subtracted before the standardisation. A gain change
    # moves only c0 by a constant and a fixed microphone response adds a
    # constant vector, so both leave such a model's inputs (almost) unchanged.
    utterance_mean: bool = False
    # Level normalisation: each utterance's c0 is shifted so that its loudest
    # frame's c0 equals this value (the mean over the training files). A gain
    # moves every frame's c0 by the same amount, so the model sees the same
    # level however far the speaker is from the microphone. None: as recorded.
    level_reference: float | None = None
    # Per-speaker standardisation, the first step: (mfcc - mean) / std per
    # coefficient with the statistics of the voice being classified (a model
    # trained with ``ser-train --speaker-normalise``). These are the training
    # speakers' pooled statistics: what the runtime uses until it has heard
    # enough of its own speaker (edge/speaker_stats.py). None: no such step.
    speaker_mean: tuple[float, ...] | None = None
    speaker_std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.reverse_axis not in REVERSE_AXES:
            raise SerEdgeError(
                f"reverse_axis must be one of {REVERSE_AXES}, got {self.reverse_axis!r}"
            )
        # Bounds keep a damaged or hand-edited metadata block from reaching numpy as a huge allocation.
        for name, (low, high) in INTEGER_BOUNDS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise SerEdgeError(f"feature config: {name} must be an integer in [{low}, {high}], got {value!r}")
        for name in ("fmin", "amin", "top_db", "fmax"):
            value = getattr(self, name)
            if value is None and name in ("top_db", "fmax"):
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise SerEdgeError(f"feature config: {name} must be a finite number, got {value!r}")
        if self.n_mfcc > self.n_mels:
            raise SerEdgeError(f"feature config: n_mfcc ({self.n_mfcc}) exceeds n_mels ({self.n_mels})")
        if not 0 <= self.fmin < self.fmax_hz <= self.sample_rate / 2:
            raise SerEdgeError(f"feature config: need 0 <= fmin ({self.fmin}) < fmax ({self.fmax_hz}) <= "
                               f"sample_rate / 2 ({self.sample_rate / 2})")
        if self.amin <= 0 or (self.top_db is not None and self.top_db <= 0):
            raise SerEdgeError(f"feature config: amin ({self.amin}) and top_db ({self.top_db}) must be > 0")
        if not isinstance(self.input_names, tuple) or len(self.input_names) != 2 or \
                not all(isinstance(name, str) for name in self.input_names):
            raise SerEdgeError(f"feature config: input_names must be two names, got {self.input_names!r}")
        if self.level_reference is not None and (not isinstance(self.level_reference, (int, float))
                                                 or isinstance(self.level_reference, bool)
                                                 or not math.isfinite(self.level_reference)):
            raise SerEdgeError(f"feature config: level_reference must be a finite number, got {self.level_reference!r}")
        if not isinstance(self.utterance_mean, bool):
            raise SerEdgeError(f"feature config: utterance_mean must be true or false, got {self.utterance_mean!r}")
        for mean_name, std_name in STATISTICS:
            mean, std = getattr(self, mean_name), getattr(self, std_name)
            if (mean is None) != (std is None):
                raise SerEdgeError(f"feature config: {mean_name} and {std_name} come together")
            if mean is None:
                continue
            for name, values in ((mean_name, mean), (std_name, std)):
                if not isinstance(values, tuple) or len(values) != self.n_mfcc or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                    raise SerEdgeError(f"feature config: {name} must be {self.n_mfcc} finite numbers")
            if min(std) <= 0:
                raise SerEdgeError(f"feature config: {std_name} must be positive")

    def unnormalised(self) -> "FeatureConfig":
        """This configuration with every step of ``NORMALISATION`` off: the MFCC matrices as they are."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in NORMALISATION}
        return dataclasses.replace(self, **defaults)

    def standardized(self, mean, std) -> "FeatureConfig":
        """This configuration with per-coefficient statistics for the model's inputs."""
        return dataclasses.replace(self, input_mean=tuple(float(v) for v in mean),
                                   input_std=tuple(float(v) for v in std))

    def with_speaker_statistics(self, mean, std) -> "FeatureConfig":
        """This configuration with per-speaker standardisation, ``mean``/``std`` its fallback statistics."""
        return dataclasses.replace(self, speaker_mean=tuple(float(v) for v in mean),
                                   speaker_std=tuple(float(v) for v in std))

    @property
    def per_speaker(self) -> bool:
        """Whether the model expects each speaker's MFCCs standardised by that speaker's statistics."""
        return self.speaker_mean is not None

    @property
    def num_frames(self) -> int:
        """Frames of a centred STFT over ``num_samples`` samples (196 by default)."""
        return 1 + self.num_samples // self.hop_length

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one model input without the batch axis: (frames, n_mfcc, 1)."""
        return (self.num_frames, self.n_mfcc, 1)

    @property
    def fmax_hz(self) -> float:
        return float(self.sample_rate) / 2 if self.fmax is None else float(self.fmax)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["input_names"] = list(self.input_names)
        for pair in STATISTICS:
            for name in pair:
                if data[name] is not None:
                    data[name] = list(data[name])
        # Written only when on: older readers and run files stay valid.
        if self.speaker_mean is None:
            del data["speaker_mean"], data["speaker_std"]
        if not self.utterance_mean:
            del data["utterance_mean"]
        if self.level_reference is None:
            del data["level_reference"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SerEdgeError(f"feature config: unknown keys {unknown}")
        values = dict(data)
        for name in ("input_names", "input_mean", "input_std", "speaker_mean", "speaker_std"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)

    def cache_key(self) -> str:
        """A short stable string that changes whenever a number of the MFCC matrices does.

        The standardisation statistics, the cepstral mean subtraction and the
        level normalisation are left out: they are applied to the (cached) matrices when the model
        inputs are made.
        """
        import hashlib
        import json

        data = self.to_dict()
        for name in NORMALISATION:
            data.pop(name, None)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
