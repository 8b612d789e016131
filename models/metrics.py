"""Scores of a training run: WAR and UAR (``ser_edge.edge.scores``), per-class report, confusion matrix."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report

from ser_edge.edge import scores


def summarise(true: np.ndarray, predicted: np.ndarray, label_names: tuple[str, ...]) -> dict:
    """WAR and UAR as ``ser_edge.edge.scores`` defines them, scikit-learn's per-class report, the confusion matrix."""
    ids = list(range(len(label_names)))
    confusion = scores.confusion_matrix(true, predicted, len(label_names))
    return {
        "war": scores.war(confusion),
        "uar": scores.uar(confusion),
        "per_class": classification_report(true, predicted, labels=ids, target_names=list(label_names),
                                           output_dict=True, zero_division=0),
        "confusion": confusion.tolist(),
    }


def spread(values: list[float]) -> dict:
    array = np.asarray(values, dtype=np.float64)
    return {"min": float(array.min()), "max": float(array.max()), "mean": float(array.mean()),
            "std": float(array.std()), "n": int(array.size)}


def save_confusion_png(confusion: list[list[int]], label_names: tuple[str, ...], path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(col, row, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
