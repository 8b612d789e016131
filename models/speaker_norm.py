"""Per-speaker feature normalisation: a cross-validation probe (``ser-train --speaker-normalise``).

Voices the model never heard are its weak point (README, *Accuracy*). A
common remedy is to standardise each speaker's MFCCs by that speaker's own
mean and standard deviation per coefficient, so that what is left is how an
utterance departs from its speaker's usual voice. This module does that to a
whole :class:`FeatureSet` before the folds are drawn: every speaker's
statistics come from all of that speaker's plain (unperturbed) utterances,
whatever fold they fall in. It never reads a label, but for a held-out
speaker it reads that speaker's audio: the probe's figure is what a device
would get after hearing its user say a set of sentences like the corpus's
(emotionally balanced), an upper bound for an enrolment of ordinary speech.

A final model trained this way carries the training speakers' pooled
statistics in its feature contract (``FeatureConfig.speaker_mean``); the
device uses them until it has heard enough of its own speaker
(edge/speaker_stats.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ser_edge.models.feature_cache import FeatureSet


def frame_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and standard deviation over every frame of ``features`` (utterances x frames x coefficients)."""
    frames = features.astype(np.float64).reshape(-1, features.shape[-1])
    return frames.mean(axis=0), np.maximum(frames.std(axis=0), 1e-6)


def speaker_statistics(features: np.ndarray, speakers: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each speaker's per-coefficient mean and standard deviation over all frames of their utterances."""
    return {speaker: frame_statistics(features[speakers == speaker]) for speaker in sorted(set(speakers.tolist()))}


def speaker_normalised(data: FeatureSet) -> FeatureSet:
    """``data`` with every utterance, and each of its perturbed copies, standardised by its speaker's
    statistics (those of the speaker's plain utterances: a copy is the same voice, perturbed)."""
    statistics = speaker_statistics(data.features, data.speakers)

    def normalise(features: np.ndarray) -> np.ndarray:
        out = np.empty_like(features, dtype=np.float32)
        for speaker, (mean, std) in statistics.items():
            rows = data.speakers == speaker
            out[rows] = (features[rows] - mean) / std
        return out

    return dataclasses.replace(data, features=normalise(data.features),
                               speed_features=tuple(normalise(f) for f in data.speed_features),
                               noise_features=tuple(normalise(f) for f in data.noise_features))
