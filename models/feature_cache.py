"""Compute a dataset's MFCC matrices once with the ``edge`` frontend and cache them.

The cache file name carries the feature configuration's key and a hash of the
file list, so a change to either computes afresh instead of mixing results.

Speed perturbation (Ko et al., 2015) for training: each file also resampled
so that it plays ``speed`` times faster, which moves pitch, formants and
tempo together, roughly what another speaker's shorter or longer vocal
tract and speaking rate do. Those matrices are cached the same way, per
speed.

Additive noise for training (``ser_edge.models.noise``): noisy copies of
each file at the original speed, white or brown noise at an SNR drawn per
file; cached the same way, per copy.
"""

from __future__ import annotations

import dataclasses
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
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models.noise import NoiseCopy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSet:
    features: np.ndarray  # (n, frames, n_mfcc) float32
    labels: np.ndarray  # (n,) int class ids into ``label_names``
    speakers: np.ndarray  # (n,) str
    paths: np.ndarray  # (n,) str
    label_names: tuple[str, ...]
    # Speed-perturbed copies of ``features`` for training, one (n, frames, n_mfcc) array per speed.
    speeds: tuple[float, ...] = ()
    speed_features: tuple[np.ndarray, ...] = ()
    # Noisy copies for training (NoiseCopy 0, 1, ...), all with SNRs drawn from ``noise_snr`` (LOW, HIGH dB).
    noise_snr: tuple[float, ...] = ()
    noise_features: tuple[np.ndarray, ...] = ()
    # The last ``added`` utterances come from another corpus (``added_corpus``; models/mixed_corpus.py):
    # training material only, never in a validation or test part.
    added: int = 0
    added_corpus: str = ""

    def with_speeds(self, speeds: tuple[float, ...], speed_features: tuple[np.ndarray, ...]) -> "FeatureSet":
        if len(speeds) != len(speed_features) or any(f.shape != self.features.shape for f in speed_features):
            raise SerEdgeError("speed-perturbed features do not match the dataset's features")
        return dataclasses.replace(self, speeds=tuple(speeds), speed_features=tuple(speed_features))

    def without_speeds(self) -> "FeatureSet":
        return dataclasses.replace(self, speeds=(), speed_features=())

    def with_noise(self, snr: tuple[float, ...], noise_features: tuple[np.ndarray, ...]) -> "FeatureSet":
        if (noise_features and len(snr) != 2) or any(f.shape != self.features.shape for f in noise_features):
            raise SerEdgeError("noisy features do not match the dataset's features")
        return dataclasses.replace(self, noise_snr=tuple(snr) if noise_features else (),
                                   noise_features=tuple(noise_features))

    def without_noise(self) -> "FeatureSet":
        return dataclasses.replace(self, noise_snr=(), noise_features=())

    @property
    def trained_size(self) -> int:
        """How many utterances, from the front, belong to the dataset the figures are about."""
        return len(self.labels) - self.added

    @property
    def copies(self) -> tuple[np.ndarray, ...]:
        """Every perturbed copy training draws from besides the original: speeds, then noise."""
        return (*self.speed_features, *self.noise_features)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ser-edge" / "features"


def load_features(utterances: list[Utterance], label_names: tuple[str, ...], config: FeatureConfig,
                  cache_dir: Path | None = None, speeds: tuple[float, ...] = (), noise_copies: int = 0,
                  noise_snr: tuple[float, float] = (5.0, 35.0)) -> FeatureSet:
    """Features for ``utterances`` (cached on disk), labels as ids into ``label_names``; with
    ``speeds``, also the speed-perturbed features for training, with ``noise_copies`` the noisy ones."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    matrix = cached_features(utterances, config, cache_dir)
    index = {name: i for i, name in enumerate(label_names)}
    return FeatureSet(
        features=matrix,
        labels=np.array([index[u.label] for u in utterances], dtype=np.int64),
        speakers=np.array([u.speaker for u in utterances]),
        paths=np.array([str(u.path) for u in utterances]),
        label_names=tuple(label_names),
        speeds=tuple(speeds),
        speed_features=tuple(cached_features(utterances, config, cache_dir, speed) for speed in speeds),
        noise_snr=tuple(noise_snr) if noise_copies else (),
        noise_features=tuple(cached_features(utterances, config, cache_dir, noise=NoiseCopy(k, *noise_snr))
                             for k in range(noise_copies)),
    )


def cached_features(utterances: list[Utterance], config: FeatureConfig, cache_dir: Path,
                    speed: float = 1.0, noise: NoiseCopy | None = None) -> np.ndarray:
    listing = "\n".join(f"{u.path}\t{u.label}\t{u.speaker}" for u in utterances)
    key = f"{config.cache_key()}-{hashlib.sha256(listing.encode()).hexdigest()[:16]}"
    if speed != 1.0:
        key += f"-speed{speed:g}"
    if noise is not None:
        key += f"-{noise.key}"
    cache_file = cache_dir / f"mfcc-{key}.npy"
    if cache_file.exists():
        log.info("features from cache %s", cache_file)
        return np.load(cache_file)
    matrix = compute(utterances, config, speed, noise)
    with atomic.replacing(cache_file) as partial:
        np.save(partial, matrix)
    return matrix


def check_speeds(speeds: tuple[float, ...]) -> tuple[float, ...]:
    """Speeds of a perturbation: distinct, none 1 (the original is always used), within 0.5-2."""
    if len(set(speeds)) != len(speeds) or any(not 0.5 <= s <= 2.0 or s == 1.0 for s in speeds):
        raise SerEdgeError(f"speeds must be distinct, between 0.5 and 2 and not 1, got {list(speeds)}")
    return tuple(speeds)


def compute(utterances: list[Utterance], config: FeatureConfig, speed: float = 1.0,
            noise: NoiseCopy | None = None) -> np.ndarray:
    """(n, frames, n_mfcc) float32 for every utterance (``noise`` added to the decoded signal), with progress."""
    from ser_edge.edge import audio  # soundfile and soxr: not needed to read a cache or a bundle

    out = np.empty((len(utterances), config.num_frames, config.n_mfcc), dtype=np.float32)
    started = time.monotonic()
    for i, utterance in enumerate(utterances):
        # Decoded at rate / speed and read as if at rate: ``speed`` times faster, in one resampling.
        signal = audio.load(utterance.path, round(config.sample_rate / speed))
        if noise is not None:
            signal = noise.apply(signal, config.sample_rate, i)
        out[i] = features.utterance_features(signal, config)
        if (i + 1) % 100 == 0 or i + 1 == len(utterances):
            log.info("features %d/%d (%.0f s)", i + 1, len(utterances), time.monotonic() - started)
    return out


def save_bundle(data: FeatureSet, path: Path, float16: bool = False) -> None:
    """One portable file with a dataset's features, labels, speakers and paths (no audio needed to train).

    ``float16`` stores the features at half precision, compressed: a third of the size, so that the
    RAVDESS bundle with its speed copies (110 MB) fits the 64 MiB a lent GPU machine receives. Each
    value keeps 11 significant bits (relative error at most 2**-11); on RAVDESS the largest error is
    0.4 % of its coefficient's standard deviation. The loader returns float32.
    """
    dtype = np.float16 if float16 else np.float32
    speeds = ({"speeds": np.array(data.speeds), "speed_features": np.stack(data.speed_features).astype(dtype)}
              if data.speeds else {})
    if data.noise_features:
        speeds.update(noise_snr=np.array(data.noise_snr), noise_features=np.stack(data.noise_features).astype(dtype))
    if data.added:
        speeds.update(added=np.array(data.added), added_corpus=np.array(data.added_corpus))
    save = np.savez_compressed if float16 else np.savez
    with atomic.replacing(path) as partial:
        save(partial, features=data.features.astype(dtype), labels=data.labels, speakers=data.speakers,
             paths=data.paths, label_names=np.array(data.label_names), **speeds)


def load_bundle(path: Path) -> FeatureSet:
    with np.load(path) as bundle:
        data = FeatureSet(features=bundle["features"].astype(np.float32, copy=False), labels=bundle["labels"],
                          speakers=bundle["speakers"], paths=bundle["paths"],
                          label_names=tuple(bundle["label_names"].tolist()))
        if "speeds" in bundle:
            data = data.with_speeds(tuple(bundle["speeds"].tolist()),
                                    tuple(bundle["speed_features"].astype(np.float32, copy=False)))
        if "noise_snr" in bundle:
            data = data.with_noise(tuple(bundle["noise_snr"].tolist()),
                                   tuple(bundle["noise_features"].astype(np.float32, copy=False)))
        if "added" in bundle:
            data = dataclasses.replace(data, added=int(bundle["added"]), added_corpus=str(bundle["added_corpus"]))
    return data
