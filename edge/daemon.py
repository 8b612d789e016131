"""``ser-edge listen``: capture -> voice activity -> batch-1 classification -> JSON lines.

A small state machine: open the source (READY=1), then read / segment /
classify until a signal or the end of the input; a microphone that vanishes
is reopened with back-off. One JSON line per utterance on stdout (and the
optional JSONL file, reopened on SIGHUP, and the optional MQTT broker); a
summary line on stderr when it ends.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.judge import Judge
from ser_edge.edge.latency import LatencyStats
from ser_edge.edge.notify import Notifier
from ser_edge.edge.registry import resolve_model, thesis_seconds
from ser_edge.edge.segmenter import Segment, Segmenter
from ser_edge.edge.settings import ListenSettings
from ser_edge.edge.speaker_stats import SpeakerStatistics
from ser_edge.edge.sinks import LineSink, OutputClosed
from ser_edge.edge.speech_gate import load_gate
from ser_edge.edge.sources import AudioSource, DeviceLost, EndOfStream, StreamFailed, make_source
from ser_edge.edge.threads import describe

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.25  # how quickly a signal is noticed
RECONNECT_DELAYS_S = (0.5, 1, 2, 4, 8, 16, 30)


# Builds the audio source for the settings at the model's rate: make_source, or a fake in tests.
SourceFactory = Callable[[ListenSettings, int], AudioSource]


class Listener:
    def __init__(self, settings: ListenSettings, notifier: Notifier | None = None,
                 source_factory: SourceFactory = make_source):
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.stop_requested = threading.Event()
        self.reopen_requested = threading.Event()
        self.latencies = LatencyStats()
        self.gate_latencies = LatencyStats()  # every segment the gate judged, speech or not
        self.failed = 0  # utterances the model could not classify
        self.mqtt_settings = mqtt_settings_of(settings)  # before the model: a bad URL or credentials file fails fast
        self.not_speech = 0  # segments the speech gate turned away
        self.classifier = EmotionClassifier(resolve_model(settings.model), threads=settings.threads,
                                            level=settings.level)
        self.judge = Judge(self.classifier, load_gate(settings.speech_threshold, settings.segmenter),
                           settings.uncertain_below)
        if getattr(self.judge.gate, "reason", ""):  # said once, not per utterance
            log.warning("speech gate: %s; using the energy gate: loud sounds count as speech", self.judge.gate.reason)
        self.thread_pools = self.judge.thread_pools  # every pool held to settings.threads, the gate's too
        if self.classifier.features.per_speaker:
            self.classifier.speaker = SpeakerStatistics(self.classifier.features, settings.speaker_state,
                                                        settings.speaker_min_utterances)
        self.thesis_s = thesis_seconds(self.classifier.dataset)
        self.source = source_factory(settings, self.classifier.sample_rate)
        self.segmenter = Segmenter(self.classifier.sample_rate, self.classifier.features.num_samples,
                                   settings.segmenter)
        self.stdout = LineSink.stdout()
        self.jsonl: LineSink | None = None
        self._samples = 0  # audio consumed, at the model's rate
        self.mqtt = None  # MqttPublisher once run() starts it
        self._speaker_warned: str | None = None  # the last speaker-statistics save failure logged

    def request_stop(self, *_: object) -> None:
        self.stop_requested.set()

    def request_reopen(self, *_: object) -> None:
        """SIGHUP: logrotate renamed the JSONL file; write to a fresh one at the same path."""
        self.reopen_requested.set()

    def run(self) -> int:
        if self.settings.jsonl:
            try:
                self.jsonl = LineSink.append_to(self.settings.jsonl)
            except SerEdgeError as error:
                raise SerEdgeError(f"{error}; --jsonl FILE writes elsewhere, --no-jsonl writes no file") from None
        if self.mqtt_settings is not None:
            self.mqtt = start_publisher(self.mqtt_settings, self.classifier)
        self.source.open()
        self.notifier.send(READY=1, STATUS=f"listening on {self.source.name}, 0 utterances")
        level = "normalised" if self.classifier.features.level_reference is not None else "as recorded"
        log.info("ready: model %s (%s), source %s, threads: LiteRT %d, %s; speech gate: %s; uncertain below %s; "
                 "level %s; speaker statistics: %s", self.classifier.path.name, self.classifier.dataset,
                 self.source.name, self.settings.threads, describe(self.thread_pools), self.judge.gate.description,
                 self.judge.uncertain_below, level, self._speaker_description())
        failure: SerEdgeError | None = None
        try:
            try:
                self._loop()
            except StreamFailed as error:  # still classify what was heard before the stream broke
                failure = error
            for segment in self.segmenter.flush():
                self._classify(segment)
        except OutputClosed as error:
            failure = error
        finally:
            log.debug("input ended after %d samples; closing %s", self._samples, self.source.name)
            self.source.close()
            self.notifier.send(STOPPING=1)
            if self.mqtt:
                self.mqtt.stop()
                failure = failure or self.mqtt.failure
            self._write_summary()
            if self.jsonl:
                self.jsonl.close()
        if failure is not None:
            raise failure
        return 0

    def _loop(self) -> None:
        duration = self.settings.duration_s
        limit = None if duration is None else round(duration * self.classifier.sample_rate)
        failures = 0
        while not self.stop_requested.is_set():
            if self.mqtt and self.mqtt.failure:  # the broker refused the credentials: a configuration error
                return
            if self.reopen_requested.is_set():
                self.reopen_requested.clear()
                if self.jsonl:
                    self.jsonl.reopen()
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
            self.notifier.send(STATUS=f"listening on {self.source.name}, {self.latencies.count} utterances")
        except SerEdgeError as error:
            log.warning("reopen failed: %s", error)
        return failures + 1

    def _classify(self, segment: Segment) -> None:
        try:
            judgement = self.judge.judge(segment.samples)
        except SerEdgeError as error:  # e.g. non-finite output: skip this utterance, never write NaN
            self.failed += 1
            log.warning("utterance at %.2f s not classified: %s", segment.start_s, error)
            return
        prediction, gate_s = judgement.prediction, judgement.speech.gate_s
        self.gate_latencies.add(gate_s)
        if prediction is None:  # noise, music, a tone: counted, not labelled
            self.not_speech += 1
            log.debug("%.2f s at %.2f s is not speech (speech probability %s)", segment.duration_s,
                      segment.start_s, judgement.speech.probability)
            return
        processing = prediction.processing_s
        self.latencies.add(processing)
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "start_s": round(segment.start_s, 3),
            "duration_s": round(segment.duration_s, 3),
            **judgement.fields(),
            "latency_s": {
                "end_of_speech_wait": round(segment.end_wait_s, 4),
                "speech_gate": round(gate_s, 6),
                "features": round(prediction.features_s, 6),
                "inference": round(prediction.inference_s, 6),
                "processing": round(processing, 6),
                "total": round(segment.end_wait_s + gate_s + processing, 4),
            },
            "thesis_pi_s": self.thesis_s,
            "processing_vs_thesis": round(processing / self.thesis_s, 6),
            "overflows": self.source.overflows,
        }
        speaker = self.classifier.speaker
        if speaker is not None:  # what this line was standardised by; utterances heard, this one included
            record["speaker_statistics"] = {"used": prediction.speaker_statistics, "utterances": speaker.utterances}
        line = json.dumps(record, allow_nan=False)
        self.stdout.write(line)
        if self.jsonl:
            self.jsonl.write(line)
        if self.mqtt:
            self.mqtt.publish(record)
        if speaker is not None:  # after the line: a slow or failing disk never delays or loses a result
            self._save_speaker_statistics(speaker)
        self.notifier.send(STATUS=f"listening on {self.source.name}, {self.latencies.count} utterances")

    def _save_speaker_statistics(self, speaker: SpeakerStatistics) -> None:
        speaker.save()
        if speaker.save_error and speaker.save_error != self._speaker_warned:  # each new failure logged once
            log.warning("speaker statistics kept in memory only: %s", speaker.save_error)
        self._speaker_warned = speaker.save_error

    def _speaker_description(self) -> str:
        speaker = self.classifier.speaker
        if speaker is None:
            return "not used by the model"
        where = speaker.path or "memory only"
        return (f"{speaker.utterances} utterances heard ({where}); own after {speaker.min_utterances}, "
                f"pooled until then")

    def summary(self) -> dict:
        stats = {"utterances": self.latencies.count, "overflows": self.source.overflows,
                 "audio_s": round(self._samples / self.classifier.sample_rate, 3), "thesis_pi_s": self.thesis_s,
                 "not_classified": self.failed, "not_speech": self.not_speech, "speech_gate": self.judge.gate.name,
                 "unwritten_lines": {"stdout": self.stdout.unwritten, "jsonl": self.jsonl.unwritten if self.jsonl else 0}}
        stats.update(self.latencies.summary(self.thesis_s))
        # The gate's cost is latency a listener waits for; it judges every segment, speech or not.
        stats["speech_gate_segments"] = self.gate_latencies.count
        stats.update(self.gate_latencies.figures("speech_gate"))
        if self.mqtt:
            stats["mqtt"] = self.mqtt.summary()
        return stats

    def _write_summary(self) -> None:
        try:
            print(json.dumps({"summary": self.summary()}), file=sys.stderr, flush=True)
        except OSError as error:  # stderr on a full disk: the summary is the one thing we cannot report
            log.debug("summary not written: %s", error)


def mqtt_settings_of(settings: ListenSettings):
    """The broker settings when --mqtt / ``mqtt`` is set, else None (paho is then never imported)."""
    if not settings.mqtt:
        return None
    from ser_edge.edge.mqtt_settings import mqtt_settings

    return mqtt_settings(settings.mqtt, credentials=settings.mqtt_credentials, device_id=settings.mqtt_device_id,
                         discovery_prefix=settings.mqtt_discovery_prefix, queue_size=settings.mqtt_queue)


def start_publisher(mqtt_settings, classifier: EmotionClassifier):
    from ser_edge.edge.ha_discovery import Announcement
    from ser_edge.edge.mqtt_publisher import MqttPublisher

    announcement = Announcement(device_id=mqtt_settings.device_id, labels=classifier.labels,
                                model=f"{classifier.path.name} ({classifier.dataset})",
                                discovery_prefix=mqtt_settings.discovery_prefix)
    publisher = MqttPublisher(mqtt_settings, announcement)
    publisher.start()
    return publisher


def run_listen(settings: ListenSettings) -> int:
    started = time.monotonic()
    listener = Listener(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, listener.request_stop)
    signal.signal(signal.SIGHUP, listener.request_reopen)
    log.debug("model loaded in %.3f s", time.monotonic() - started)
    return listener.run()
