"""Latency summaries and accuracy figures in plain numpy (no scikit-learn on the device)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ser_edge.edge import scores


def summary(values: Sequence[float]) -> dict[str, float]:
    """mean, median, p95, p99, min and max of ``values`` (seconds in, seconds out)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("summary of no values")
    return {
        "n": int(array.size),
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "p95": float(np.percentile(array, 95)),
        "p99": float(np.percentile(array, 99)),
        "min": float(array.min()),
        "max": float(array.max()),
    }


def accuracy(true: Sequence[str], predicted: Sequence[str], label_names: Sequence[str]) -> dict:
    """WAR, UAR (``ser_edge.edge.scores``), per-class recall (None for a class absent from ``true``), confusion.

    ``confusion[i][j]`` counts utterances of class i predicted as class j.
    """
    if len(true) != len(predicted) or not true:
        raise ValueError("accuracy needs as many predictions as labels, and at least one")
    index = {name: i for i, name in enumerate(label_names)}
    confusion = scores.confusion_matrix([index[t] for t in true], [index[p] for p in predicted], len(label_names))
    support = confusion.sum(axis=1)
    recall = scores.recalls(confusion)
    return {
        "labels": list(label_names),
        "n": int(support.sum()),
        "war": scores.war(confusion),
        "uar": scores.uar(confusion),
        "per_class_recall": {name: (float(recall[i]) if support[i] else None) for i, name in enumerate(label_names)},
        "support": {name: int(support[i]) for i, name in enumerate(label_names)},
        "confusion": confusion.tolist(),
    }
