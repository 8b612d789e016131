"""Which benchmarked files a model was trained on, from the model's own records, never from a dataset's name.

ser-train writes a sidecar JSON beside each ``.keras`` file (``emodb.keras`` ->
``emodb.json``); every ``.tflite`` exported from it names that file and its
sha256 in its metadata (``source_model``). The sidecar is looked for beside
the ``.tflite``; the shipped ones live with their ``.keras`` in ``models/shipped/``. The sidecar lists
``validation_files`` (held out from the weights, but used to choose the
epoch) and, where the trainer recorded it, ``training_files``. Files are
matched by name without extension (names are unique in every supported
dataset, and a FLAC copy of a WAV corpus must still match).

Each benchmarked file is then one of:
- ``training``: in the training list: accuracy on it says little;
- ``validation``: in the validation list: not trained on, but it chose the epoch;
- ``unseen``: in neither, and the training list is known: a fair test;
- ``unknown``: not in the validation list, and no training list to check.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


STATUSES = ("training", "validation", "unseen", "unknown")
TITLES = {
    "training": "trained on (in the model's training list)",
    "validation": "its validation split (not trained on; chose the epoch)",
    "unseen": "never seen by the model (in neither list)",
    "unknown": "training status unknown (the model lists no training files)",
}
LIST_KEYS = {"training": "training_files", "validation": "validation_files"}


@dataclass(frozen=True)
class Provenance:
    source: str | None  # where the lists came from, for the report
    training: frozenset[str] | None  # file stems, None where not recorded
    validation: frozenset[str] | None
    problem: str | None = None  # why a list is missing, in words

    def status(self, path: Path | str) -> str:
        stem = Path(path).stem
        if self.training is not None and stem in self.training:
            return "training"
        if self.validation is not None and stem in self.validation:
            return "validation"
        return "unseen" if self.training is not None else "unknown"

    def to_dict(self) -> dict:
        return {"source": self.source, "problem": self.problem,
                "training_files": None if self.training is None else len(self.training),
                "validation_files": None if self.validation is None else len(self.validation)}


def model_provenance(model_path: Path, metadata: dict) -> Provenance:
    """The file lists recorded for this model: in its metadata, else in its training sidecar."""
    embedded = _lists(metadata.get("training") or {})
    if any(value is not None for value in embedded.values()):
        return _provenance(f"{model_path.name} (metadata)", embedded)
    source = metadata.get("source_model") or {}
    if not source.get("file"):
        return Provenance(None, None, None, "the model's metadata names no source model, so no training sidecar")
    sidecar = _sidecar_path(model_path, source["file"])
    try:
        info = json.loads(sidecar.read_text())
    except FileNotFoundError:
        return Provenance(None, None, None, f"no training sidecar {sidecar.name} beside the model")
    except (OSError, ValueError) as error:
        return Provenance(None, None, None, f"{sidecar.name}: unreadable ({error})")
    if not isinstance(info, dict):
        return Provenance(None, None, None, f"{sidecar.name}: not a ser-train sidecar")
    mismatch = _mismatch(info, metadata, sidecar, source)
    if mismatch:
        return Provenance(None, None, None, mismatch)
    return _provenance(sidecar.name, _lists(info))


def _sidecar_path(model_path: Path, source_file: str) -> Path:
    from ser_edge import models  # only its package folder: nothing heavy is imported

    return models.sidecar_path(model_path, source_file)


def _lists(info: dict) -> dict[str, frozenset[str] | None]:
    found = {}
    for kind, key in LIST_KEYS.items():
        names = info.get(key)
        found[kind] = frozenset(Path(str(name)).stem for name in names) if isinstance(names, list) else None
    return found


def _provenance(source: str, lists: dict) -> Provenance:
    missing = [LIST_KEYS[kind] for kind, names in lists.items() if names is None]
    problem = f"{source} has no {' or '.join(missing)}" if missing else None
    return Provenance(source, lists["training"], lists["validation"], problem)


def _mismatch(info: dict, metadata: dict, sidecar: Path, source: dict) -> str | None:
    """Why the sidecar is not this model's, or None."""
    if info.get("label_names") is not None and list(info["label_names"]) != list(metadata.get("label_names") or []):
        return f"{sidecar.name} lists other labels than the model: it belongs to another model"
    keras_file = sidecar.with_name(source["file"])
    if source.get("sha256") and keras_file.is_file():
        digest = hashlib.sha256(keras_file.read_bytes()).hexdigest()
        if digest != source["sha256"]:
            return (f"{keras_file.name} beside the model is not the one it was exported from (sha256 differs), "
                    f"so {sidecar.name} may describe other training")
    return None
