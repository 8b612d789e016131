"""What ``listen`` and ``classify`` do with one segment: the speech gate, the classifier, the uncertain state.

A segment that the gate does not call speech is not classified. A classified
segment whose top probability is below the model's uncertainty threshold is
labelled ``uncertain``; the argmax is kept as ``best_guess``. The threshold
comes from the model's metadata (measured on its validation files by
``python -m ser_edge.export.uncertainty``) unless the settings override it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ser_edge.edge.classifier import EmotionClassifier, Prediction
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.speech_gate import EnergyGate, SileroGate, SpeechVerdict
from ser_edge.edge.threads import limit

UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Judgement:
    speech: SpeechVerdict
    prediction: Prediction | None  # None: not speech, not classified
    uncertain_below: float | None

    @property
    def best_guess(self) -> str | None:
        return self.prediction.label if self.prediction else None

    @property
    def confidence(self) -> float | None:
        return self.prediction.probabilities[self.prediction.label] if self.prediction else None

    @property
    def label(self) -> str | None:
        """None for non-speech; ``uncertain`` below the threshold; else the best guess."""
        if self.prediction is None:
            return None
        if self.uncertain_below is not None and self.confidence < self.uncertain_below:
            return UNCERTAIN
        return self.prediction.label

    def fields(self) -> dict:
        """The JSON fields every output line shares."""
        probability = self.speech.probability
        fields = {"speech_probability": None if probability is None else round(probability, 4),
                  "label": self.label}
        if self.prediction is not None:
            fields.update(best_guess=self.best_guess, confidence=round(self.confidence, 4),
                          probabilities={k: round(v, 4) for k, v in self.prediction.probabilities.items()})
        return fields


class Judge:
    def __init__(self, classifier: EmotionClassifier, gate: SileroGate | EnergyGate,
                 uncertain_below: float | None = None):
        self.classifier = classifier
        self.gate = gate
        self.uncertain_below = model_threshold(classifier.metadata) if uncertain_below is None else uncertain_below
        # Again, as the classifier did: the Silero gate loads OpenMP (libgomp) after the model, one
        # thread per core unless held (edge/threads.py).
        self.thread_pools = limit(classifier.threads)

    def judge(self, samples: np.ndarray) -> Judgement:
        """Gate, then (for speech) classify, ``samples`` at the classifier's rate."""
        verdict = self.gate.judge(samples, self.classifier.sample_rate)
        prediction = self.classifier.classify(samples) if verdict.is_speech else None
        return Judgement(verdict, prediction, self.uncertain_below)


def model_threshold(metadata: dict) -> float | None:
    """The uncertainty threshold the model file carries; None for files exported without one."""
    record = metadata.get("uncertainty")
    if record is None:
        return None
    value = record.get("threshold") if isinstance(record, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            not 0.0 <= value <= 1.0:
        raise SerEdgeError(f"model metadata: uncertainty.threshold must be a number in [0, 1], got {value!r}")
    return float(value)
