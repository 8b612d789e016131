"""The daemon's reconnect path: a source that is lost is closed, waited for with back-off, and reopened.

A fake source (passed to ``Listener`` through its factory) plays speech, loses
the device, refuses one reopen, then plays speech again; the real model
classifies what it hears before and after.
"""

from __future__ import annotations

import json

import numpy as np

from ser_edge.edge.daemon import RECONNECT_DELAYS_S, Listener
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.settings import ListenSettings
from ser_edge.edge.sources import DeviceLost, EndOfStream
from tests.fixtures import RATE, SENTENCES, espeak


class FakeSource:
    """Plays ``script``: arrays are chunks, exceptions are raised; reads while closed lose the device."""

    def __init__(self, script: list, failing_opens: set[int]):
        self.name = "fake microphone"
        self.overflows = 0
        self.events: list[str] = []
        self._script = list(script)
        self._failing_opens = failing_opens  # which open() calls (1-based) fail
        self._opens = 0
        self._open = False

    def open(self) -> None:
        self._opens += 1
        if self._opens in self._failing_opens:
            self.events.append("open failed")
            raise SerEdgeError("cannot open input device 'fake microphone': busy")
        self._open = True
        self.events.append("open")

    def read(self, timeout: float):
        if not self._open:
            raise DeviceLost("fake microphone: not open")
        if not self._script:
            raise EndOfStream
        item = self._script.pop(0)
        if isinstance(item, BaseException):
            self._open = False
            self.events.append("lost")
            raise item
        return item

    def close(self) -> None:
        self._open = False
        self.events.append("close")


class RecordedWaits:
    """Stands in for the stop event: records each back-off instead of sleeping through it."""

    def __init__(self):
        self.delays: list[float] = []

    def wait(self, delay: float) -> bool:
        self.delays.append(delay)
        return False  # no stop requested during the wait

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        pass


class RecordedNotifier:
    def __init__(self):
        self.messages: list[dict] = []

    def send(self, **fields) -> None:
        self.messages.append(fields)

    def watchdog(self) -> None:
        pass


def utterance(speech: np.ndarray, rate: int) -> list[np.ndarray]:
    """Speech (it must pass the speech gate) then enough silence to end it, in 50 ms chunks."""
    assert rate == RATE, "the fixture's speech is at the model's rate"
    signal = np.concatenate([speech, np.zeros(2 * rate)]).astype(np.float32)
    block = rate // 20
    return [signal[i : i + block] for i in range(0, signal.size, block)]


def test_a_lost_device_is_reopened_with_back_off_and_listening_goes_on(capfd, tmp_path):
    made = []
    speech = espeak(SENTENCES[0], tmp_path / "speech.wav")

    def factory(settings: ListenSettings, rate: int) -> FakeSource:
        # Lost twice in a row (the second time while reopening fails), then found again.
        script = [*utterance(speech, rate), DeviceLost("fake microphone: unplugged"), *utterance(speech, rate)]
        made.append(FakeSource(script, failing_opens={2}))
        return made[-1]

    notifier = RecordedNotifier()
    listener = Listener(ListenSettings(), notifier=notifier, source_factory=factory)
    listener.stop_requested = waits = RecordedWaits()
    assert listener.run() == 0

    source = made[0]
    assert source.events == ["open", "lost", "close", "open failed", "close", "open", "close"]
    # The first loss waits the first delay, the failed reopen the next: back-off grows, then resets.
    assert waits.delays == list(RECONNECT_DELAYS_S[:2])
    statuses = [m["STATUS"] for m in notifier.messages if "STATUS" in m]
    assert sum(s.startswith("device lost") for s in statuses) == 2
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert len(lines) == 2  # one utterance before the loss, one after the reopen
    assert lines[1]["start_s"] > lines[0]["start_s"]


def blips(rate: int) -> list[np.ndarray]:
    """0.2 s of tone and 2 s of silence in 50 ms chunks: audio that flows (the gate may drop it)."""
    t = np.arange(round(0.2 * rate)) / rate
    signal = np.concatenate([0.3 * np.sin(2 * np.pi * 220 * t), np.zeros(2 * rate)]).astype(np.float32)
    return [signal[i : i + rate // 20] for i in range(0, signal.size, rate // 20)]


def test_back_off_resets_after_audio_flows_again(capfd):
    def factory(settings: ListenSettings, rate: int) -> FakeSource:
        lost = DeviceLost("fake microphone: unplugged")
        return FakeSource([*blips(rate), lost, *blips(rate), lost, *blips(rate)],
                          failing_opens=set())

    listener = Listener(ListenSettings(), notifier=RecordedNotifier(), source_factory=factory)
    listener.stop_requested = waits = RecordedWaits()
    assert listener.run() == 0
    assert waits.delays == [RECONNECT_DELAYS_S[0]] * 2
