"""Cross-validation splits that never let a test item choose anything.

Each fold has disjoint train / validation / test index sets. The validation
set is carved from the training part of the fold and is what picks the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ser_edge.edge.errors import SerEdgeError
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

SPLITS = ("random", "speaker")


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def make_folds(labels: np.ndarray, speakers: np.ndarray, *, folds: int, split: str, seed: int,
               validation_fraction: float = 0.1) -> list[Fold]:
    """Stratified k-fold (``random``) or whole-speaker k-fold (``speaker``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    everything = np.arange(len(labels))
    if split == "random":
        outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(everything, labels)
    else:
        outer = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(everything, labels, speakers)
    result = []
    for index, (rest, test) in enumerate(outer):
        train, validation = validation_split(rest, labels, speakers, split=split, seed=seed + index,
                                             fraction=validation_fraction)
        result.append(Fold(index, np.sort(train), np.sort(validation), np.sort(test)))
    return result


def validation_split(indices: np.ndarray, labels: np.ndarray, speakers: np.ndarray, *, split: str, seed: int,
                     fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (train, validation); by whole speakers for ``speaker``."""
    if split == "speaker" and len(np.unique(speakers[indices])) >= 3:
        groups = max(2, round(1 / fraction))
        groups = min(groups, len(np.unique(speakers[indices])))
        inner = StratifiedGroupKFold(n_splits=groups, shuffle=True, random_state=seed)
        train, validation = next(inner.split(indices, labels[indices], speakers[indices]))
    else:
        # At least one item of every class, so tiny datasets still get a usable split.
        classes = len(np.unique(labels[indices]))
        size = max(classes, int(np.ceil(fraction * len(indices))))
        if size > len(indices) - classes:
            raise SerEdgeError(f"{len(indices)} utterances are too few for a stratified validation split")
        inner = StratifiedShuffleSplit(n_splits=1, test_size=size, random_state=seed)
        train, validation = next(inner.split(indices, labels[indices]))
    return indices[train], indices[validation]
