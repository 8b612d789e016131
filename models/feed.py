"""Training batches: shuffled, optionally augmented, reproducible from (seed, epoch) alone.

Every random choice of an epoch comes from ``numpy.random.default_rng((seed,
epoch))``, so a fold resumed from a checkpoint at epoch k sees exactly the
batches an uninterrupted run would have seen from epoch k on.

Augmentation (``augment=True``), on the standardised MFCC matrix before the
reversed copy is made, SpecAugment-style (Park et al., 2019) plus a shift:
- a circular time shift of up to ``MAX_SHIFT`` frames (the utterance sits in
  silence padding, so the shift moves it within the window);
- two time masks of up to ``MAX_TIME_MASK`` frames and one coefficient mask
  of up to ``MAX_COEFFICIENT_MASK`` coefficients, set to 0 (the mean of a
  standardised input).

Speed perturbation and additive noise (``copies``, see ``feature_cache``):
each item of a batch is the original utterance or one of its perturbed
copies (speed-perturbed, then noisy), drawn uniformly, before the masks.
"""

from __future__ import annotations


import numpy as np

from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.features import model_inputs, standardize

MAX_SHIFT = 20
TIME_MASKS = 2
MAX_TIME_MASK = 20
MAX_COEFFICIENT_MASK = 5


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift and mask a (n, frames, coefficients) batch; returns a new array."""
    out = np.empty_like(batch)
    frames, coefficients = batch.shape[1:]
    for i, matrix in enumerate(batch):
        shifted = np.roll(matrix, int(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1)), axis=0)
        for _ in range(TIME_MASKS):
            width = int(rng.integers(0, MAX_TIME_MASK + 1))
            start = int(rng.integers(0, frames - width + 1))
            shifted[start:start + width] = 0.0
        width = int(rng.integers(0, MAX_COEFFICIENT_MASK + 1))
        start = int(rng.integers(0, coefficients - width + 1))
        shifted[:, start:start + width] = 0.0
        out[i] = shifted
    return out


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def make_feed(features: np.ndarray, labels: np.ndarray, classes: int, config: FeatureConfig, *,
              batch_size: int, seed: int, augmented: bool, copies: tuple[np.ndarray, ...] = ()):
    """A Keras PyDataset over (features, labels); Keras is imported only here."""
    import keras

    # Masks go on standardised matrices (0 is then the mean), so standardise first, once, and
    # make the inputs with the same configuration minus its statistics.
    raw = config.unnormalised()

    class Feed(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            # versions[0] is the original; versions[k] the k-th perturbed copy (speeds, then noise).
            self.versions = np.stack([standardize(f, config).astype(np.float32)
                                      for f in (features, *copies)])
            self.targets = one_hot(labels, classes)
            self.epoch = 0
            self._order_epoch = None

        def __len__(self):
            return int(np.ceil(len(self.targets) / batch_size))

        def start_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def _order(self):
            if self._order_epoch != self.epoch:
                self._permutation = np.random.default_rng((seed, self.epoch)).permutation(len(self.targets))
                self._order_epoch = self.epoch
            return self._permutation

        def __getitem__(self, index):
            picked = self._order()[index * batch_size:(index + 1) * batch_size]
            # Its own random stream, drawn only with copies: runs without them see the batches they saw before.
            version = (np.random.default_rng((seed, self.epoch, index, 1)).integers(0, len(self.versions), len(picked))
                       if len(self.versions) > 1 else 0)
            batch = self.versions[version, picked]
            if augmented:
                batch = augment(batch, np.random.default_rng((seed, self.epoch, index)))
            return model_inputs(batch, raw), self.targets[picked]

        def on_epoch_end(self):
            self.epoch += 1

    return Feed()
