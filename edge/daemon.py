"""``ser-edge listen``: capture -> voice activity -> batch-1 classification -> JSON lines.

A small state machine: open the source (READY=1), then read / segment /
classify until a signal or the end of the input; a microphone that vanishes
is reopened with back-off. One JSON line per utterance on stdout (and the
optional JSONL file); a summary line on stderr when it ends.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from datetime import datetime, timezone

import numpy as np

from edge.classifier import EmotionClassifier
from edge.errors import SerEdgeError
from edge.notify import Notifier
from edge.registry import resolve_model, thesis_seconds
from edge.segmenter import Segment, Segmenter
from edge.settings import ListenSettings
from edge.sources import DeviceLost, EndOfStream, make_source
from edge.threads import describe, limit

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.25  # how quickly a signal is noticed
RECONNECT_DELAYS_S = (0.5, 1, 2, 4, 8, 16, 30)


class Listener:
    def __init__(self, settings: ListenSettings, out=None, notifier: Notifier | None = None):
        self.settings = settings
        self.out = out or sys.stdout
        self.notifier = notifier or Notifier()
        self.stop_requested = threading.Event()
        self.latencies: list[float] = []
        self.classifier = EmotionClassifier(resolve_model(settings.model), threads=settings.threads)
        # After the model loads, so every native library is there to be limited (edge/threads.py).
        self.thread_pools = limit(settings.threads)
        self.thesis_s = thesis_seconds(self.classifier.dataset)
        self.source = make_source(settings, self.classifier.sample_rate)
        self.segmenter = Segmenter(self.classifier.sample_rate, self.classifier.features.num_samples,
                                   settings.segmenter)
        self._jsonl = None
        self._samples = 0  # audio consumed, at the model's rate

    def request_stop(self, *_: object) -> None:
        self.stop_requested.set()

    def run(self) -> int:
        if self.settings.jsonl:
            try:
                self._jsonl = open(self.settings.jsonl, "a", buffering=1)
            except OSError as error:
                raise SerEdgeError(f"{self.settings.jsonl}: cannot open for appending ({error.strerror}); "
                                  "--jsonl FILE writes elsewhere, --no-jsonl writes no file") from None
        self.source.open()
        self.notifier.send(READY=1, STATUS=f"listening on {self.source.name}, 0 utterances")
        log.info("ready: model %s (%s), source %s, threads: LiteRT %d, %s", self.classifier.path.name,
                 self.classifier.dataset, self.source.name, self.settings.threads, describe(self.thread_pools))
        try:
            self._loop()
            for segment in self.segmenter.flush():
                self._classify(segment)
        finally:
            log.debug("input ended after %d samples; closing %s", self._samples, self.source.name)
            self.source.close()
            self.notifier.send(STOPPING=1)
            self._write_summary()
            if self._jsonl:
                self._jsonl.close()
        return 0

    def _loop(self) -> None:
        duration = self.settings.duration_s
        limit = None if duration is None else round(duration * self.classifier.sample_rate)
        failures = 0
        while not self.stop_requested.is_set():
            try:
                chunk = self.source.read(READ_TIMEOUT_S)
            except EndOfStream:
                return
            except DeviceLost as lost:
                failures = self._reconnect(lost, failures)
                continue
            if chunk is None or chunk.size == 0:
                continue
            failures = 0
            self.notifier.watchdog()
            if limit is not None:
                chunk = chunk[: limit - self._samples]
            self._samples += chunk.size
            for segment in self.segmenter.push(chunk):
                self._classify(segment)
            if limit is not None and self._samples >= limit:
                return

    def _reconnect(self, lost: Exception, failures: int) -> int:
        delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
        log.warning("audio source lost (%s); reopening in %.1f s", lost, delay)
        self.notifier.send(STATUS=f"device lost, retrying in {delay:.0f} s")
        self.source.close()
        if self.stop_requested.wait(delay):
            return failures + 1
        try:
            self.source.open()
            self.notifier.send(STATUS=f"listening on {self.source.name}, {len(self.latencies)} utterances")
        except SerEdgeError as error:
            log.warning("reopen failed: %s", error)
        return failures + 1

    def _classify(self, segment: Segment) -> None:
        prediction = self.classifier.classify(segment.samples)
        processing = prediction.processing_s
        self.latencies.append(processing)
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "start_s": round(segment.start_s, 3),
            "duration_s": round(segment.duration_s, 3),
            "label": prediction.label,
            "probabilities": {k: round(v, 4) for k, v in prediction.probabilities.items()},
            "latency_s": {
                "end_of_speech_wait": round(segment.end_wait_s, 4),
                "features": round(prediction.features_s, 6),
                "inference": round(prediction.inference_s, 6),
                "processing": round(processing, 6),
                "total": round(segment.end_wait_s + processing, 4),
            },
            "thesis_pi_s": self.thesis_s,
            "processing_vs_thesis": round(processing / self.thesis_s, 6),
            "overflows": self.source.overflows,
        }
        line = json.dumps(record)
        print(line, file=self.out, flush=True)
        if self._jsonl:
            self._jsonl.write(line + "\n")
        self.notifier.send(STATUS=f"listening on {self.source.name}, {len(self.latencies)} utterances")

    def summary(self) -> dict:
        values = np.asarray(self.latencies, dtype=np.float64)
        stats = {"utterances": len(self.latencies), "overflows": self.source.overflows,
                 "audio_s": round(self._samples / self.classifier.sample_rate, 3), "thesis_pi_s": self.thesis_s}
        if values.size:
            stats.update({
                "processing_mean_s": float(values.mean()),
                "processing_p50_s": percentile(values, 50),
                "processing_p95_s": percentile(values, 95),
                "mean_vs_thesis": float(values.mean() / self.thesis_s),
            })
        return stats

    def _write_summary(self) -> None:
        print(json.dumps({"summary": self.summary()}), file=sys.stderr, flush=True)


def percentile(values: np.ndarray, q: float) -> float:
    """numpy.percentile's default (linear) estimate, without it: np.percentile imports numpy.ma
    (about 3.7 MiB resident), which raised the daemon's peak memory when it wrote its summary."""
    ordered = np.sort(values)
    position = (ordered.size - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, ordered.size - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def run_listen(settings: ListenSettings) -> int:
    started = time.monotonic()
    listener = Listener(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, listener.request_stop)
    log.debug("model loaded in %.3f s", time.monotonic() - started)
    return listener.run()
