"""WAR and UAR from a confusion matrix: the one definition training, export parity and ser-bench use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(true: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """``confusion[i][j]`` counts items of class i predicted as class j (class ids 0..classes-1)."""
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return confusion


def recalls(confusion: np.ndarray) -> np.ndarray:
    """Recall per class; NaN for a class absent from the reference labels (it has no recall)."""
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1)
    return np.divide(np.diag(confusion), support, out=np.full(len(support), np.nan), where=support > 0)


def war(confusion: np.ndarray) -> float:
    """Weighted average recall: plain accuracy over all items."""
    confusion = np.asarray(confusion)
    return float(np.trace(confusion) / confusion.sum())


def uar(confusion: np.ndarray) -> float:
    """Unweighted average recall: the mean recall over the classes present in the reference labels.

    The standard definition (as in the SER literature and scikit-learn's
    ``recall_score(average="macro")`` restricted to the labels that occur): a
    class with no reference item has no recall, so it neither counts as 0 nor
    as 1. Predictions of an absent class still lower the recall of the class
    they were taken from.
    """
    values = recalls(confusion)
    return float(np.nanmean(values))
