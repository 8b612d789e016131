"""The timed loop: every utterance through a pipeline at batch 1, stage by stage.

A pipeline maps a file to (predicted label, audio seconds, stage seconds). The
LiteRT one is here; ``keras_baseline`` supplies the thesis's. Unreadable files
are counted and skipped so one bad file never ends a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_edge.edge import audio
from ser_edge.edge.datasets import Utterance
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.pipeline import DECODE, FEATURES, INFERENCE, TimedPipeline

log = logging.getLogger(__name__)

STAGES = (DECODE, FEATURES, INFERENCE, "total")
PROGRESS_EVERY = 50

Pipeline = Callable[[Path], tuple[str, float, dict[str, float]]]


@dataclass(frozen=True)
class Timing:
    path: Path
    label: str
    predicted: str
    audio_s: float
    stages: dict[str, float]  # seconds, one per name in STAGES


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Measurement:
    name: str
    timings: list[Timing] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    wall_s: float = 0.0  # the timed pass, warm-up excluded

    def stage(self, name: str) -> list[float]:
        return [t.stages[name] for t in self.timings]


def litert_pipeline(classifier) -> Pipeline:
    """ser_edge.edge.audio.load -> ser_edge.edge.features.utterance_features -> classifier.infer, timed per stage."""
    rate = classifier.sample_rate
    return labelled(classifier.pipeline(lambda path: audio.load(path, rate)), classifier.labels, rate)


def labelled(pipeline: TimedPipeline, labels: Sequence[str], sample_rate: int) -> Pipeline:
    """A file -> (predicted label, audio seconds, stage seconds) function over a timed pipeline."""

    def run(path: Path) -> tuple[str, float, dict[str, float]]:
        timed = pipeline.from_file(path)
        return labels[int(np.argmax(timed.probabilities))], timed.samples / sample_rate, dict(timed.seconds)

    return run


def measure(pipeline: Pipeline, utterances: Sequence[Utterance], *, name: str, warmup: int = 0,
            on_first_result: Callable[[], None] | None = None, progress_every: int = PROGRESS_EVERY) -> Measurement:
    """Warm up on the first ``warmup`` utterances (untimed), then time every utterance once."""
    first = _FirstResult(on_first_result)
    for utterance in utterances[:warmup]:
        try:
            pipeline(utterance.path)
        except (SerEdgeError, OSError):
            continue  # counted in the timed pass
        first()
    result = Measurement(name)
    pass_started = time.perf_counter()
    for count, utterance in enumerate(utterances, 1):
        started = time.perf_counter()
        try:
            predicted, audio_s, stages = pipeline(utterance.path)
        except (SerEdgeError, OSError) as error:
            result.skipped.append(Skipped(utterance.path, _reason(error, utterance.path)))
            log.warning("skipped %s: %s", utterance.path, result.skipped[-1].reason)
        else:
            stages["total"] = time.perf_counter() - started
            first()
            result.timings.append(Timing(utterance.path, utterance.label, predicted, audio_s, stages))
        if count % progress_every == 0 or count == len(utterances):
            _progress(result, count, len(utterances))
    result.wall_s = time.perf_counter() - pass_started
    return result


class _FirstResult:
    """Calls ``callback`` once, at the first finished utterance (the cold-start mark)."""

    def __init__(self, callback: Callable[[], None] | None):
        self._callback = callback

    def __call__(self) -> None:
        if self._callback is not None:
            callback, self._callback = self._callback, None
            callback()


def _progress(result: Measurement, count: int, total: int) -> None:
    totals = result.stage("total")
    mean = f"mean total {1000 * sum(totals) / len(totals):.1f} ms" if totals else "nothing measured yet"
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    log.info("%s: %d/%d utterances, %s%s", result.name, count, total, mean, skipped)


def _reason(error: BaseException, path: Path) -> str:
    """The error's first line without the full path: results get committed, home folders should not."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    text = text.removeprefix(f"{path}: ")
    return text.replace(str(path), Path(path).name)
