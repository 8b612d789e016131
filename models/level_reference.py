"""Give a trained model level normalisation: write its ``features.level_reference`` into the sidecar.

    python -m ser_edge.models.level_reference models/shipped/ravdess.json ../shared/datasets/ravdess

The reference is the mean, over the model's own training files (the sidecar's
``training_files``), of each utterance's loudest-frame c0; ``standardize``
then moves every utterance there, so a speaker twice as far from the
microphone gives the model the same inputs. ``ser-export`` embeds it with
the rest of the feature contract. A model trained with ``ser-train
--level-normalise`` already has it (and was trained with it); one trained
without gets it at inference only, which costs some accuracy at the
corpus's own recording level (benchmarks/results/gain-*.md measure both).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ser_edge.edge import atomic, command
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.datasets import LABELS, read_dataset, select_listed
from ser_edge.edge.errors import SerEdgeError


def level_reference(features: np.ndarray) -> float:
    """The mean over utterances (n, frames, n_mfcc) of the loudest frame's c0: the level each is moved to."""
    return float(features[..., 0].max(axis=1).astype(np.float64).mean())


def measure(sidecar: dict, data_dir: Path, cache_dir: Path | None = None) -> float:
    """The level reference of the model described by ``sidecar``, from its training files in ``data_dir``."""
    from ser_edge.models.feature_cache import load_features

    dataset, names = sidecar.get("dataset"), sidecar.get("training_files")
    if dataset not in LABELS or not names:
        raise SerEdgeError("the sidecar names no known dataset or no training files")
    config = FeatureConfig.from_dict(sidecar["features"])
    utterances = read_dataset(dataset, data_dir)
    training = {u.path for u in select_listed(utterances, names, data_dir, "training")}  # before any decoding
    data = load_features(utterances, LABELS[dataset], config, cache_dir)  # the whole listing, as ser-train read it
    return level_reference(data.features[[i for i, u in enumerate(utterances) if u.path in training]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.models.level_reference",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("sidecar", type=Path, help="models/shipped/NAME.json")
    parser.add_argument("data_dir", type=Path, help="the dataset the model was trained on")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default ~/.cache/ser-edge/features)")

    def run() -> None:
        try:
            info = json.loads(args.sidecar.read_text())
        except (OSError, ValueError) as error:
            raise SerEdgeError(f"{args.sidecar}: not a readable model sidecar ({error})") from None
        reference = measure(info, args.data_dir, args.cache_dir)
        info["features"]["level_reference"] = reference
        FeatureConfig.from_dict(info["features"])  # still a valid contract
        atomic.write_json(args.sidecar, info)
        print(f"{args.sidecar}: level_reference {reference:.3f} (mean loudest-frame c0 of "
              f"{len(info['training_files'])} training files)")

    args = parser.parse_args(argv)
    return command.run("level_reference", run)


if __name__ == "__main__":
    sys.exit(main())
