"""Choose a model's "uncertain" threshold on its validation files and record it in the model file.

``python -m ser_edge.export.uncertainty MODEL.tflite --data-dir DIR`` runs the exported
model exactly as the device does (decode, MFCCs, LiteRT at batch 1) on the
validation files its training sidecar lists (held out of the gradient steps;
they did choose the epoch, so the figures are slightly optimistic), and picks:

    the lowest top-1 probability t such that the predictions with top-1
    probability >= t are at least TARGET_ACCURACY (90 %) correct, counting
    only thresholds that keep at least MIN_ACCEPTED (10) predictions.

Below t the runtime says "uncertain" (keeping its best guess). A model that
never reaches the target (int8) gets 1.0: every label uncertain. The
threshold, the rule and what it measured go into the metadata under
``uncertainty``, and the file is re-signed (edge/model_file.py checksums).
``ser-export`` does this itself whenever it is given the dataset
(``--calibration-data``), before it writes the parity report, so every
re-export (``models/export_shipped.sh``) measures it anew; this command
re-measures an exported file on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.edge.errors import SerEdgeError

TARGET_ACCURACY = 0.90
MIN_ACCEPTED = 10
@dataclass(frozen=True)
class Choice:
    threshold: float
    accepted: int  # validation predictions at or above the threshold
    accepted_accuracy: float
    total: int
    overall_accuracy: float
    reached: bool  # False: no threshold reaches the target, so the threshold is 1.0 (all uncertain)

    def describe(self, name: str, target: float = TARGET_ACCURACY) -> str:
        reached = "" if self.reached else f" (no threshold reaches {100 * target:g} %: all uncertain)"
        return (f"{name}: uncertain below {self.threshold:.4f}{reached}: {self.accepted} of {self.total} validation "
                f"files at or above it, {100 * self.accepted_accuracy:.1f} % of them correct "
                f"(all: {100 * self.overall_accuracy:.1f} %)")

    def record(self, target: float, min_accepted: int) -> dict:
        return {"threshold": round(self.threshold, 6), "rule": rule(target, min_accepted),
                "target_accuracy": target, "target_reached": self.reached, "validation_files": self.total,
                "accepted": self.accepted, "accepted_accuracy": round(self.accepted_accuracy, 4),
                "overall_accuracy": round(self.overall_accuracy, 4),
                "command": "python -m ser_edge.export.uncertainty MODEL.tflite --data-dir DIR --write"}


def rule(target: float = TARGET_ACCURACY, min_accepted: int = MIN_ACCEPTED) -> str:
    return (f"lowest top-1 probability t at which the validation predictions with top-1 >= t are at least "
            f"{100 * target:g} % correct, keeping at least {min_accepted} of them")


def choose_threshold(confidences: np.ndarray, correct: np.ndarray, target: float = TARGET_ACCURACY,
                     min_accepted: int = MIN_ACCEPTED) -> Choice:
    """The rule above, over every observed confidence as a candidate threshold."""
    confidences, correct = np.asarray(confidences, dtype=np.float64), np.asarray(correct, dtype=bool)
    if confidences.size == 0 or confidences.shape != correct.shape:
        raise SerEdgeError("no validation predictions to choose a threshold from")
    order = np.argsort(-confidences, kind="stable")
    sorted_conf, sorted_correct = confidences[order], correct[order]
    accepted = np.arange(1, sorted_conf.size + 1)
    accuracy = np.cumsum(sorted_correct) / accepted
    # A candidate t accepts every prediction >= t: with ties, only the last of equal confidences counts.
    last_of_tie = np.append(sorted_conf[1:] != sorted_conf[:-1], True)
    ok = last_of_tie & (accuracy >= target) & (accepted >= min_accepted)
    if not ok.any():  # the model is never that accurate: by the rule, every prediction is uncertain
        sure = sorted_correct[sorted_conf >= 1.0]
        return Choice(1.0, int(sure.size), float(sure.mean()) if sure.size else 0.0, int(correct.size),
                      float(correct.mean()), reached=False)
    best = int(np.flatnonzero(ok)[-1])  # the lowest qualifying threshold accepts the most
    return Choice(float(sorted_conf[best]), int(accepted[best]), float(accuracy[best]), int(correct.size),
                  float(correct.mean()), reached=True)


def validation_files(sidecar: Path) -> set[str]:
    """The file names a training sidecar lists as its validation split."""
    wanted = set(json.loads(sidecar.read_text()).get("validation_files") or [])
    if not wanted:
        raise SerEdgeError(f"{sidecar}: lists no validation_files")
    return wanted


def validation_predictions(model: Path, data_dir: Path, wanted: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 probability, correct?) of ``model`` on the validation files named in ``wanted``."""
    from ser_edge.edge import audio
    from ser_edge.edge.classifier import EmotionClassifier
    from ser_edge.edge.datasets import read_dataset, select_listed

    if not wanted:  # before loading anything
        raise SerEdgeError(f"{model}: the training sidecar lists no validation_files to measure on")
    classifier = EmotionClassifier(model)  # BLAS held to its thread count, as `ser-edge` runs it
    utterances = select_listed(read_dataset(classifier.dataset, data_dir), wanted, data_dir, "validation")
    confidences, correct = [], []
    for utterance in utterances:
        prediction = classifier.classify(audio.load(utterance.path, classifier.sample_rate))
        confidences.append(prediction.probabilities[prediction.label])
        correct.append(prediction.label == utterance.label)
    return np.array(confidences), np.array(correct)


def default_sidecar(model: Path) -> Path:
    """The training sidecar beside the model: its source .keras file's name with .json."""
    from ser_edge.edge.model_file import read_metadata

    source = (read_metadata(model).get("source_model") or {}).get("file")
    if not source:
        raise SerEdgeError(f"{model}: metadata names no source model; pass --sidecar")
    from ser_edge import models

    return models.sidecar_path(model, source)


def measure(model: Path, data_dir: Path, wanted: set[str], target: float = TARGET_ACCURACY,
            min_accepted: int = MIN_ACCEPTED, write: bool = True) -> Choice:
    """Choose ``model``'s threshold on its validation files and (``write``) record it in the file."""
    choice = choose_threshold(*validation_predictions(model, data_dir, wanted), target, min_accepted)
    if write:
        write_threshold(model, choice.record(target, min_accepted))
    return choice


def write_threshold(model: Path, record: dict) -> None:
    """Re-embed the model's metadata with ``uncertainty`` = ``record`` (and new checksums)."""
    from ser_edge.edge.model_file import read_model_bytes, parse_metadata
    from ser_edge.edge.atomic import write_bytes
    from ser_edge.export.metadata import embed

    content = read_model_bytes(model)
    metadata = parse_metadata(content, model)
    write_bytes(model, embed(content, {**metadata, "uncertainty": record}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.export.uncertainty", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="an exported .tflite")
    parser.add_argument("--data-dir", required=True, type=Path, help="the dataset the model was trained on")
    parser.add_argument("--sidecar", type=Path, help="training sidecar with validation_files (default: beside it)")
    parser.add_argument("--target-accuracy", type=float, default=TARGET_ACCURACY)
    parser.add_argument("--min-accepted", type=int, default=MIN_ACCEPTED)
    parser.add_argument("--write", action="store_true", help="record the threshold in the model file")
    args = parser.parse_args(argv)
    try:
        if not 0 < args.target_accuracy <= 1 or args.min_accepted < 1:
            raise SerEdgeError("--target-accuracy must be in (0, 1] and --min-accepted at least 1")
        wanted = validation_files(args.sidecar or default_sidecar(args.model))
        choice = measure(args.model, args.data_dir, wanted, args.target_accuracy, args.min_accepted, args.write)
    except (SerEdgeError, OSError, ValueError) as error:
        print(f"ser_edge.export.uncertainty: error: {error}", file=sys.stderr)
        return 2
    print(choice.describe(args.model.name, args.target_accuracy) + ("; written" if args.write else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
