"""Compute a dataset's MFCC matrices once with the ``edge`` frontend and cache them.

The cache file name carries the feature configuration's key and a hash of the
file list, so a change to either computes afresh instead of mixing results.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.edge import atomic, features
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.datasets import Utterance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSet:
    features: np.ndarray  # (n, frames, n_mfcc) float32
    labels: np.ndarray  # (n,) int class ids into ``label_names``
    speakers: np.ndarray  # (n,) str
    paths: np.ndarray  # (n,) str
    label_names: tuple[str, ...]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ser-edge" / "features"


def load_features(utterances: list[Utterance], label_names: tuple[str, ...], config: FeatureConfig,
                  cache_dir: Path | None = None) -> FeatureSet:
    """Features for ``utterances`` (cached on disk), labels as ids into ``label_names``."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    listing = "\n".join(f"{u.path}\t{u.label}\t{u.speaker}" for u in utterances)
    key = f"{config.cache_key()}-{hashlib.sha256(listing.encode()).hexdigest()[:16]}"
    cache_file = cache_dir / f"mfcc-{key}.npy"
    if cache_file.exists():
        matrix = np.load(cache_file)
        log.info("features from cache %s", cache_file)
    else:
        matrix = compute(utterances, config)
        with atomic.replacing(cache_file) as partial:
            np.save(partial, matrix)
    index = {name: i for i, name in enumerate(label_names)}
    return FeatureSet(
        features=matrix,
        labels=np.array([index[u.label] for u in utterances], dtype=np.int64),
        speakers=np.array([u.speaker for u in utterances]),
        paths=np.array([str(u.path) for u in utterances]),
        label_names=tuple(label_names),
    )


def compute(utterances: list[Utterance], config: FeatureConfig) -> np.ndarray:
    """(n, frames, n_mfcc) float32 for every utterance, with progress on stderr."""
    from ser_edge.edge import audio  # soundfile and soxr: not needed to read a cache or a bundle

    out = np.empty((len(utterances), config.num_frames, config.n_mfcc), dtype=np.float32)
    started = time.monotonic()
    for i, utterance in enumerate(utterances):
        signal = audio.load(utterance.path, config.sample_rate)
        out[i] = features.utterance_features(signal, config)
        if (i + 1) % 100 == 0 or i + 1 == len(utterances):
            log.info("features %d/%d (%.0f s)", i + 1, len(utterances), time.monotonic() - started)
    return out


def save_bundle(data: FeatureSet, path: Path) -> None:
    """One portable file with a dataset's features, labels, speakers and paths (no audio needed to train)."""
    with atomic.replacing(path) as partial:
        np.savez(partial, features=data.features, labels=data.labels, speakers=data.speakers, paths=data.paths,
                 label_names=np.array(data.label_names))


def load_bundle(path: Path) -> FeatureSet:
    with np.load(path) as bundle:
        return FeatureSet(features=bundle["features"], labels=bundle["labels"], speakers=bundle["speakers"],
                          paths=bundle["paths"], label_names=tuple(bundle["label_names"].tolist()))
