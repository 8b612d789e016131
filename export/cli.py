"""``ser-export``: a trained TPMNet .keras -> one self-describing .tflite, plus a parity report."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path

import numpy as np

from ser_edge.edge import atomic
from ser_edge.edge import command
from ser_edge.edge.datasets import DATASETS, LABELS, read_dataset
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.registry import VARIANTS

log = logging.getLogger(__name__)

CALIBRATION_SIZE = 300


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="ser-export", description=__doc__)
    parser.add_argument("model", type=Path, help="a .keras file written by ser-train (with its .json beside it)")
    parser.add_argument("--quantize", required=True, choices=VARIANTS)
    parser.add_argument("--out", required=True, type=Path, help="the .tflite file to write")
    parser.add_argument("--calibration-data", type=Path, help="dataset folder: int8 calibration and parity set")
    parser.add_argument("--dataset", choices=DATASETS, help="the layout of --calibration-data")
    parser.add_argument("--calibration-size", type=int, default=CALIBRATION_SIZE)
    parser.add_argument("--report", type=Path, help="folder for the parity report (JSON + Markdown)")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default ~/.cache/ser-edge/features)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # Its own progress and the feature cache's, not TensorFlow's INFO records.
    from ser_edge.models import feature_cache

    for logger in (__package__, feature_cache.__name__):
        command.log_to_stderr("info", logger=logger)
    return command.run("ser-export", lambda: export(args))


def export(args) -> None:
    if args.out.suffix != ".tflite":
        raise SerEdgeError(f"--out {args.out}: the file name must end in .tflite")
    if (args.calibration_data is None) != (args.dataset is None):
        raise SerEdgeError("--calibration-data and --dataset go together")
    if args.quantize == "int8" and args.calibration_data is None:
        raise SerEdgeError("int8 needs real calibration features: pass --calibration-data DIR --dataset NAME")
    if args.report and args.calibration_data is None:
        raise SerEdgeError("a parity report needs held-out real features: pass --calibration-data DIR --dataset NAME")

    from ser_edge.export.convert import convert
    from ser_edge.export.keras_model import load_trained_model
    from ser_edge.export.metadata import build_metadata, embed

    trained = load_trained_model(args.model)
    calibration = held_out = held_out_labels = None
    if args.calibration_data is not None:
        calibration, held_out, held_out_labels = real_features(trained, args)

    log.info("converting %s to %s ...", args.model, args.quantize)
    flatbuffer, record = convert(trained, args.quantize, calibration)
    source_sha = hashlib.sha256(args.model.read_bytes()).hexdigest()
    flatbuffer = embed(flatbuffer, build_metadata(trained, record, source_sha))
    atomic.write_bytes(args.out, flatbuffer)
    float_ops = ", ".join(record["float_ops"]) if args.quantize == "int8" else "n/a"
    print(f"wrote {args.out} ({len(flatbuffer):,} bytes, {record['mode']}; float ops in graph: {float_ops or 'none'})")

    if args.quantize == "int8":
        check_runs(args.out, np.concatenate([calibration, held_out]))
    if args.calibration_data is not None:  # before the parity report, which records the final file's size
        from ser_edge.export.uncertainty import measure

        choice = measure(args.out, args.calibration_data, set(trained.info.get("validation_files") or []))
        print(choice.describe(args.out.name) + "; recorded in the file")
    if args.report:
        from ser_edge.export.parity import parity_report, write_parity
        from ser_edge.models.train import predict

        keras_probabilities = predict(trained.model, held_out, trained.features)
        report = parity_report(args.out, keras_probabilities, held_out, held_out_labels, trained.label_names, record)
        write_parity(report, args.report)
        print(f"parity: top-1 agreement {100 * report['top1_agreement']:.2f} % on {len(held_out)} held-out "
              f"utterances; report in {args.report}")


def real_features(trained, args):
    """(calibration, held_out, held_out_labels): stratified training items and the validation split."""
    from ser_edge.models.feature_cache import load_features

    if tuple(LABELS[args.dataset]) != trained.label_names:
        raise SerEdgeError(f"--dataset {args.dataset} labels {LABELS[args.dataset]} do not match the model's "
                           f"{trained.label_names}")
    utterances = read_dataset(args.dataset, args.calibration_data)
    data = load_features(utterances, trained.label_names, trained.features, args.cache_dir)
    names = np.array([Path(p).name for p in data.paths])
    held_names = set(trained.info.get("validation_files") or [])
    held = np.isin(names, list(held_names))
    if not held.any():
        raise SerEdgeError(f"{args.calibration_data}: none of the model's held-out files are there; "
                           "is it the dataset the model was trained on?")
    training = np.flatnonzero(~held)
    if len(training) == 0 or args.calibration_size < 1:
        raise SerEdgeError("calibration set is empty")
    rng = np.random.default_rng(0)
    # Stratified: the same share of every class.
    share = min(1.0, args.calibration_size / len(training))
    picked = np.concatenate([rng.permutation(idx)[: max(1, round(share * len(idx)))]
                             for idx in (training[data.labels[training] == c] for c in range(len(trained.label_names)))
                             if len(idx)])
    return data.features[np.sort(picked)], data.features[held], data.labels[held]


def check_runs(path: Path, features: np.ndarray) -> None:
    """Invoke the exported model on every given item: int8 must run, not only convert."""
    from ser_edge.edge.classifier import EmotionClassifier

    classifier = EmotionClassifier(path)
    for matrix in features:
        probabilities = classifier.infer(matrix)
        if not np.isfinite(probabilities).all():
            raise SerEdgeError(f"{path}: produced non-finite probabilities on real features")
    print(f"invoked {path.name} on {len(features)} real feature matrices without error")


if __name__ == "__main__":
    sys.exit(main())
