"""Checkpoints inside a fold: weights, optimiser state, best weights and history, every few epochs.

A fold resumed from a checkpoint continues exactly where the interrupted run
was: the optimiser's moments and step count come back with the weights, and
the batches depend only on (seed, epoch) (ser_edge.models.feed). A checkpoint folder is
replaced whole (written beside, then renamed), so an interruption while
saving leaves the previous one intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

STATE = "state.json"


def save_checkpoint(folder: Path, model, keeper, epochs_done: int) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _save_arrays(partial / "weights.npz", model.get_weights())
    _save_arrays(partial / "best.npz", keeper.best_weights)
    _save_arrays(partial / "optimizer.npz", [np.asarray(v) for v in model.optimizer.variables])
    (partial / STATE).write_text(json.dumps({"epochs_done": epochs_done, "keeper": keeper.state()}))
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        folder.replace(old)
    partial.replace(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, model, keeper) -> int:
    """Restore ``model`` (compiled) and ``keeper`` from ``folder``; return the epochs already done (0: none)."""
    if not (folder / STATE).is_file():
        old = folder.with_name(folder.name + ".old")  # interrupted between the two renames
        if not (old / STATE).is_file():
            return 0
        folder = old
    state = json.loads((folder / STATE).read_text())
    model.set_weights(_load_arrays(folder / "weights.npz"))
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    saved = _load_arrays(folder / "optimizer.npz")
    if len(saved) != len(optimizer.variables):
        raise ValueError(f"{folder}: optimiser state has {len(saved)} variables, the model's has "
                         f"{len(optimizer.variables)}")
    for variable, value in zip(optimizer.variables, saved):
        variable.assign(value)
    keeper.restore(state["keeper"], _load_arrays(folder / "best.npz"))
    return int(state["epochs_done"])


def _save_arrays(path: Path, arrays) -> None:
    np.savez(path, *arrays)


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]
