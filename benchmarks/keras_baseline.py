"""The thesis's own stack, for ``--baseline keras``: librosa features + Keras ``predict`` at batch 1.

The only module of ``benchmarks`` that imports TensorFlow, Keras or librosa,
and only when a baseline is asked for, so that ``ser-bench`` runs on a Pi
without them. Two modes: graph (Keras's compiled predict function) and eager
(``tf.config.run_functions_eagerly(True)``, as the thesis authors' code sets
globally).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ser_edge.benchmarks.run import Pipeline, labelled
from ser_edge.edge import native_stderr
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.features import fit_length, model_inputs
from ser_edge.edge.pipeline import TimedPipeline

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ser-edge[train]' librosa"
REQUIRED = ("tensorflow", "keras", "librosa")
MODES = ("graph", "eager")
LIBROSA_DB_DEFAULTS = (1e-10, 80.0)  # power_to_db's amin and top_db


def check_available() -> None:
    """Fail early, before any measuring, where TensorFlow, Keras or librosa is missing."""
    missing = [name for name in REQUIRED if not _installed(name)]
    if missing:
        raise SerEdgeError(f"--baseline keras needs {', '.join(missing)} (not installed): {INSTALL_HINT}")


class KerasBaseline:
    """A trained .keras file (with its ser-train .json) run the way the thesis ran it."""

    def __init__(self, keras_path: str | Path):
        check_available()
        from ser_edge.export.keras_model import load_trained_model

        # TensorFlow's oneDNN / CUDA / CPU-feature notices stay off stderr (ser-bench --verbose shows them):
        # they come at import, model load and device discovery, so all three happen inside the filter.
        with native_stderr.filtered():
            # First: it refuses a bad file or sidecar before importing Keras.
            self.trained = load_trained_model(keras_path)
            self.path = Path(keras_path)
            try:
                import librosa
                import tensorflow as tf
            except ImportError as error:
                raise SerEdgeError(f"--baseline keras cannot import {error.name}: {INSTALL_HINT}") from None
            tf.config.list_physical_devices()
        self._librosa = librosa
        self._tf = tf
        config = self.trained.features
        # librosa.feature.mfcc cannot pass amin or top_db on to power_to_db: only its defaults are reachable.
        if (config.amin, config.top_db) != LIBROSA_DB_DEFAULTS:
            raise SerEdgeError(f"{self.path}: amin/top_db {config.amin}/{config.top_db} differ from librosa's "
                               f"{LIBROSA_DB_DEFAULTS}; the librosa baseline cannot reproduce these features")
        log.info("baseline: %s loaded with TensorFlow %s", self.path.name, tf.__version__)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.trained.label_names

    @property
    def dataset(self) -> str | None:
        return self.trained.info.get("dataset")

    def pipeline(self) -> Pipeline:
        """librosa.load -> fit_length + librosa.feature.mfcc(...).T -> model.predict, timed per stage."""
        config = self.trained.features
        model = self.trained.model
        librosa = self._librosa

        def mfcc(signal: np.ndarray) -> np.ndarray:
            return librosa.feature.mfcc(
                y=fit_length(signal, config), sr=config.sample_rate, n_mfcc=config.n_mfcc, n_fft=config.n_fft,
                hop_length=config.hop_length, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
            ).T

        def predict(matrix: np.ndarray) -> np.ndarray:
            return model.predict(model_inputs(matrix, config), batch_size=1, verbose=0)[0]

        def decode(path: Path) -> np.ndarray:
            return self._decode(path, config.sample_rate)

        return labelled(TimedPipeline(mfcc, predict, decode), self.trained.label_names, config.sample_rate)

    @contextlib.contextmanager
    def mode(self, name: str) -> Iterator[None]:
        """Run Keras's tf.functions as graphs ("graph") or op by op ("eager"); restore afterwards."""
        if name not in MODES:
            raise SerEdgeError(f"unknown baseline mode {name!r}; use one of {MODES}")
        before = self._tf.config.functions_run_eagerly()
        self._tf.config.run_functions_eagerly(name == "eager")
        try:
            with warnings.catch_warnings():
                # predict's tf.data input pipeline stays compiled either way; TF warns about it on every call.
                warnings.filterwarnings("ignore", message=".*does not apply to tf.data functions.*")
                yield
        finally:
            self._tf.config.run_functions_eagerly(before)

    def info(self) -> dict:
        from ser_edge.benchmarks.host import file_sha256

        threading = self._tf.config.threading
        return {
            "model_file": self.path.name,
            "model_sha256": file_sha256(self.path),
            "labels": list(self.labels),
            "tensorflow": _version("tensorflow"),
            "keras": _version("keras"),
            "librosa": _version("librosa"),
            # 0 means TensorFlow's default: a pool as large as the machine's cores.
            "tf_intra_op_threads": threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": threading.get_inter_op_parallelism_threads(),
        }

    def _decode(self, path: Path, sample_rate: int) -> np.ndarray:
        # librosa raises many exception types (and warns) for a bad file; one line is enough here.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                signal, _ = self._librosa.load(path, sr=sample_rate)
        except Exception as error:  # noqa: BLE001 - soundfile, audioread and ValueError alike
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SerEdgeError(f"{path}: librosa cannot decode it ({reason})") from None
        if signal.size == 0:
            raise SerEdgeError(f"{path}: contains no audio samples")
        return signal


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
