"""Batch-1 emotion classification of a PCM signal with one self-describing .tflite file."""

from __future__ import annotations

import dataclasses

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.edge import features as frontend
from ser_edge.edge import native_stderr
from ser_edge.edge.config import LEVELS, FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.litert import interpreter_class
from ser_edge.edge.model_file import check_bindings, parse_metadata, read_model_bytes, verify_checksums
from ser_edge.edge.pipeline import FEATURES, INFERENCE, TimedPipeline
from ser_edge.edge.speaker_stats import SpeakerStatistics
from ser_edge.edge.threads import limit, pools

MAX_THREADS = 64  # LiteRT crashes on absurd counts (100000: SIGSEGV); a Pi has 4 cores


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    features_s: float
    inference_s: float
    speaker_statistics: str | None = None  # "own" or "pooled" for a model with per-speaker statistics

    @property
    def processing_s(self) -> float:
        return self.features_s + self.inference_s


class EmotionClassifier:
    """Load a ser-edge .tflite; configure the frontend from its metadata; classify signals.

    >>> classifier = EmotionClassifier("ravdess-float32.tflite")
    >>> classifier.classify(signal_at_model_rate).label
    """

    def __init__(self, model_path: str | Path, *, threads: int = 1, level: str = "normalised", hold_blas: bool = True):
        """``level="as-recorded"`` ignores the model's level normalisation (``FeatureConfig.level_reference``).

        ``threads`` is LiteRT's thread count and, once the model has loaded, every BLAS/OpenMP pool's in this
        process (``self.thread_pools``; edge/threads.py): the MFCC's matrix products round differently with
        more BLAS threads, enough to move a top-1 probability by 1e-4, so whatever classifies (the daemon,
        ``ser-edge classify``, the exporter's threshold, the gain and variant benchmarks) computes what the
        device computes. ``hold_blas=False`` leaves the pools alone (``ser-bench --blas-threads``)."""
        self.path = Path(model_path)
        if level not in LEVELS:
            raise SerEdgeError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        if not 1 <= threads <= MAX_THREADS:
            raise SerEdgeError(f"threads must be 1..{MAX_THREADS}, got {threads}")
        # Read once into memory: LiteRT would otherwise map the file, and a copy over it
        # (NaN results) or a truncation (SIGBUS) would reach the running interpreter.
        content = read_model_bytes(self.path)
        self.metadata = parse_metadata(content, self.path)
        self.checksum_verified = verify_checksums(content, self.metadata, self.path)
        try:
            self.features = FeatureConfig.from_dict(self.metadata["features"])
            if level == "as-recorded":
                self.features = dataclasses.replace(self.features, level_reference=None)
            self.labels = tuple(self.metadata["label_names"])
        except (KeyError, TypeError, ValueError) as error:
            raise SerEdgeError(f"{self.path}: incomplete ser-edge metadata ({error})") from None
        if not self.labels or not all(isinstance(label, str) for label in self.labels):
            raise SerEdgeError(f"{self.path}: label_names must be a non-empty list of strings")
        check_bindings(self.metadata, self.features.input_names, self.path)
        self.threads = threads
        # A model with per-speaker statistics uses its pooled ones unless the caller attaches a running
        # estimate (``listen``: edge/speaker_stats.py), which every classified utterance then joins.
        self.speaker: SpeakerStatistics | None = None
        try:
            with native_stderr.filtered():  # LiteRT's "Created ... XNNPACK delegate" line comes from here
                self._interpreter = interpreter_class()(model_content=content, num_threads=threads)
                self._interpreter.allocate_tensors()
            details = self._interpreter.get_input_details()
            outputs = self._interpreter.get_output_details()
        except (ValueError, RuntimeError) as error:  # UnicodeDecodeError too: a damaged tensor name
            raise SerEdgeError(f"{self.path}: the TFLite runtime cannot load it ({_first_line(error)})") from None
        # Inputs are bound by name (the exporter names them after the feature config), never by position.
        self._inputs = {name: _by_name(details, name, self.path) for name in self.features.input_names}
        expected = (1, *self.features.input_shape)
        for name, entry in self._inputs.items():  # metadata that disagrees with the graph fails here, not after READY
            shape = tuple(int(n) for n in entry["shape"])
            if shape != expected:
                raise SerEdgeError(f"{self.path}: input {name!r} has shape {shape} but the metadata's "
                                   f"features (num_samples {self.features.num_samples}, hop_length "
                                   f"{self.features.hop_length}, n_mfcc {self.features.n_mfcc}) give {expected}")
        if len(outputs) != 1 or tuple(int(n) for n in outputs[0]["shape"]) != (1, len(self.labels)):
            raise SerEdgeError(f"{self.path}: expected one output of shape (1, {len(self.labels)}) for the "
                               f"{len(self.labels)} labels in the metadata")
        self._output = outputs[0]
        self._timed = self.pipeline()
        # One invoke now: a graph that loads but cannot run (a damaged file) fails here, before READY.
        self.infer(np.zeros(self.features.input_shape[:2], dtype=np.float32))
        # Last, so every native library the model needed is loaded and held too.
        self.thread_pools = limit(threads) if hold_blas else pools()

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def dataset(self) -> str | None:
        return self.metadata.get("dataset")

    def classify(self, signal: np.ndarray) -> Prediction:
        """Classify a mono float32 signal at ``self.sample_rate`` (fitted to the model's length)."""
        timed = self._timed.from_signal(signal)
        probabilities = timed.probabilities
        if not np.isfinite(probabilities).all():  # never let NaN reach a result (it is not JSON either)
            raise SerEdgeError(f"{self.path}: the model produced non-finite probabilities")
        used = None
        if self.speaker is not None:  # added after classifying: an utterance is not judged by its own statistics
            used = "own" if self.speaker.own else "pooled"
            self.speaker.observe(timed.matrix)
        elif self.features.per_speaker:
            used = "pooled"
        best = int(np.argmax(probabilities))
        return Prediction(
            label=self.labels[best],
            probabilities={name: float(p) for name, p in zip(self.labels, probabilities)},
            features_s=timed.seconds[FEATURES],
            inference_s=timed.seconds[INFERENCE],
            speaker_statistics=used,
        )

    def pipeline(self, decode: Callable[[Path], np.ndarray] | None = None) -> TimedPipeline:
        """This model's timed features -> inference (decode first, where given)."""
        return TimedPipeline(lambda signal: frontend.utterance_features(signal, self.features), self.infer, decode)

    def infer(self, matrix: np.ndarray) -> np.ndarray:
        """Class probabilities (float32) for one (frames, n_mfcc) MFCC matrix."""
        speaker = self.speaker.current() if self.speaker is not None else None
        inputs = frontend.model_inputs(matrix, self.features, speaker)
        try:
            for name, value in inputs.items():
                details = self._inputs[name]
                self._interpreter.set_tensor(details["index"], _quantize(value, details))
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output["index"])[0]
        except (ValueError, RuntimeError) as error:
            raise SerEdgeError(f"{self.path}: the TFLite runtime cannot run it ({_first_line(error)})") from None
        return _dequantize(output, self._output)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _quantize(value: np.ndarray, details: dict) -> np.ndarray:
    dtype = details["dtype"]
    if dtype == np.float32:
        return value
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(value: np.ndarray, details: dict) -> np.ndarray:
    if details["dtype"] == np.float32:
        return value.astype(np.float32, copy=True)
    scale, zero_point = details["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _by_name(details: list[dict], name: str, path: Path) -> dict:
    for entry in details:
        tensor = entry["name"].split(":")[0]
        if tensor == name or tensor.endswith(f"_{name}"):
            return entry
    found = [entry["name"] for entry in details]
    raise SerEdgeError(f"{path}: no model input named {name!r} (inputs: {found})")
