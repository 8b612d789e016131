"""Per-speaker feature normalisation (``ser-train --speaker-normalise``): each voice standardised by its own statistics.

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

from ser_edge.edge.errors import SerEdgeError
from ser_edge.models.feature_cache import FeatureSet

# Which of a speaker's utterances give their statistics: all of them, or only the unemotional ones (labels read
# in training, where they are known), so that what a device hears most (calm speech) is what training used.
REFERENCES = {"all": None, "calm": ("neutral", "calm")}


def frame_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and standard deviation over every frame of ``features`` (utterances x frames x coefficients)."""
    frames = features.astype(np.float64).reshape(-1, features.shape[-1])
    return frames.mean(axis=0), np.maximum(frames.std(axis=0), 1e-6)


def speaker_statistics(features: np.ndarray, speakers: np.ndarray,
                       reference: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each speaker's per-coefficient mean and standard deviation over all frames of their utterances (with
    ``reference``, a mask over the utterances: only of those)."""
    use = np.ones(len(speakers), bool) if reference is None else reference
    statistics = {}
    for speaker in sorted(set(speakers.tolist())):
        rows = (speakers == speaker) & use
        if not rows.any():
            raise SerEdgeError(f"speaker {speaker} has no utterance to take their statistics from")
        statistics[speaker] = frame_statistics(features[rows])
    return statistics


def reference_rows(data: FeatureSet, reference: str = "all") -> np.ndarray | None:
    """The mask of utterances whose frames give a speaker's statistics; None: all of them."""
    if reference not in REFERENCES:
        raise SerEdgeError(f"speaker reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    labels = REFERENCES[reference]
    return None if labels is None else np.isin(np.asarray(data.label_names)[data.labels], labels)


def speaker_normalised(data: FeatureSet, reference: str = "all") -> FeatureSet:
    """``data`` with every utterance, and each of its perturbed copies, standardised by its speaker's
    statistics (those of the speaker's plain utterances, or of their ``reference`` ones: a copy is the same
    voice, perturbed)."""
    statistics = speaker_statistics(data.features, data.speakers, reference_rows(data, reference))

    def normalise(features: np.ndarray) -> np.ndarray:
        out = np.empty_like(features, dtype=np.float32)
        for speaker, (mean, std) in statistics.items():
            rows = data.speakers == speaker
            out[rows] = (features[rows] - mean) / std
        return out

    return dataclasses.replace(data, features=normalise(data.features),
                               speed_features=tuple(normalise(f) for f in data.speed_features),
                               noise_features=tuple(normalise(f) for f in data.noise_features))
