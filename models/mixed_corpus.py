"""Another corpus as extra training material (``ser-train --add-corpus NAME:DIR``).

More voices is what the field reaches for when a model must carry over to
speakers it never heard: EMO-DB's ten German actors beside RAVDESS's twenty
North American ones, or the other way round. Only the emotions both corpora
name are kept (EMO-DB's boredom has no RAVDESS counterpart; RAVDESS's calm
and surprised none in EMO-DB), each mapped onto the trained dataset's label.

The added utterances go into the training part of every fold and of the
shipping model, never into a validation or test part: every figure is still
measured on the trained dataset alone. Their speakers are prefixed with the
corpus name, since both corpora number their actors from 01.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ser_edge.edge.datasets import LABELS, Utterance, read_dataset
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models.feature_cache import FeatureSet

# One name per emotion across the corpora's label sets.
EMOTION = {"anger": "angry", "angry": "angry", "happiness": "happy", "happy": "happy", "sadness": "sad", "sad": "sad",
           "fear": "fearful", "fearful": "fearful", "disgust": "disgust", "neutral": "neutral",
           "boredom": "boredom", "calm": "calm", "surprised": "surprised"}


def label_map(source: str, target: str) -> dict[str, str]:
    """``source``'s labels that ``target`` also has, mapped to ``target``'s name for them."""
    by_emotion = {EMOTION[label]: label for label in LABELS[target]}
    return {label: by_emotion[EMOTION[label]] for label in LABELS[source] if EMOTION[label] in by_emotion}


def parse(value: str, dataset: str) -> tuple[str, str]:
    """``NAME:DIR`` of ``--add-corpus``, checked against the trained ``dataset``."""
    name, separator, folder = value.partition(":")
    if not separator or not folder:
        raise SerEdgeError(f"--add-corpus wants NAME:DIR (e.g. emodb:../shared/datasets/emodb), got {value!r}")
    if name not in LABELS:
        raise SerEdgeError(f"--add-corpus: unknown dataset {name!r}; choose one of {', '.join(LABELS)}")
    if name == dataset:
        raise SerEdgeError(f"--add-corpus {name} is the dataset being trained; name another corpus")
    if not label_map(name, dataset):
        raise SerEdgeError(f"--add-corpus: {name} shares no emotion with {dataset}")
    return name, folder


def added_utterances(name: str, folder: str, dataset: str) -> list[Utterance]:
    """``name``'s utterances whose emotion ``dataset`` has, labelled and with speakers as training needs."""
    mapping = label_map(name, dataset)
    return [Utterance(u.path, mapping[u.label], f"{name}:{u.speaker}")
            for u in read_dataset(name, folder) if u.label in mapping]


def with_added(data: FeatureSet, extra: FeatureSet, corpus: str) -> FeatureSet:
    """``data`` followed by ``extra``'s utterances (and their perturbed copies), marked as training-only."""
    if data.added:
        raise SerEdgeError(f"the features already hold an added corpus ({data.added_corpus})")
    if extra.label_names != data.label_names or extra.speeds != data.speeds or extra.noise_snr != data.noise_snr \
            or len(extra.noise_features) != len(data.noise_features):
        raise SerEdgeError(f"{corpus}'s features were not made like the trained dataset's (labels, speeds or noise)")
    def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b])

    return dataclasses.replace(
        data, features=join(data.features, extra.features), labels=join(data.labels, extra.labels),
        speakers=join(data.speakers, extra.speakers), paths=join(data.paths, extra.paths),
        speed_features=tuple(join(a, b) for a, b in zip(data.speed_features, extra.speed_features)),
        noise_features=tuple(join(a, b) for a, b in zip(data.noise_features, extra.noise_features)),
        added=len(extra.labels), added_corpus=corpus)
