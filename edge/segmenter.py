"""Energy-based voice-activity segmentation of a PCM stream into utterances.

Why energy and not a trained VAD: it is deterministic, costs microseconds per
20 ms frame, needs no extra dependency, and works at the model's 22,050 Hz
(webrtcvad accepts only 8/16/32/48 kHz). A fixed dBFS threshold plus a
hangover of ``max_silence_s`` suits a Pi with a fixed microphone; a noisy room
needs a higher ``energy_threshold_db``.

Speech longer than one model window is cut into consecutive windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.02  # analysis frame
PRE_ROLL_S = 0.1  # audio kept before the first voiced frame (soft onsets)


@dataclass(frozen=True)
class SegmenterSettings:
    energy_threshold_db: float = -45.0
    min_speech_s: float = 0.25
    max_silence_s: float = 0.6


@dataclass(frozen=True)
class Segment:
    samples: np.ndarray  # float32 mono at the stream's rate
    start_s: float  # stream time of the first sample
    speech_end_s: float  # stream time just after the last voiced frame
    emitted_s: float  # stream time when the segment was closed

    @property
    def duration_s(self) -> float:
        return self.speech_end_s - self.start_s

    @property
    def end_wait_s(self) -> float:
        """Audio that had to arrive after the speech ended before we knew it ended."""
        return self.emitted_s - self.speech_end_s


class Segmenter:
    """Feed chunks with ``push``; it returns the utterances that closed; ``flush`` at end of stream."""

    def __init__(self, sample_rate: int, max_samples: int, settings: SegmenterSettings = SegmenterSettings()):
        self.rate = sample_rate
        self.settings = settings
        self.frame = max(1, round(FRAME_S * sample_rate))
        self.max_samples = max_samples
        self.pre_roll = round(PRE_ROLL_S * sample_rate) // self.frame * self.frame
        self.max_silence_frames = max(1, round(settings.max_silence_s / FRAME_S))
        self.min_speech_samples = round(settings.min_speech_s * sample_rate)
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet framed
        self._history = np.zeros(0, dtype=np.float32)  # recent silence, for the pre-roll
        self._speech: list[np.ndarray] = []  # frames of the open utterance
        self._speech_len = 0
        self._voiced_len = 0  # samples up to and including the last voiced frame
        self._silent_frames = 0
        self._position = 0  # samples consumed
        self._start = 0

    @property
    def in_speech(self) -> bool:
        return bool(self._speech)

    def push(self, chunk: np.ndarray) -> list[Segment]:
        data = np.concatenate([self._pending, np.asarray(chunk, dtype=np.float32)])
        usable = data.shape[0] // self.frame * self.frame
        self._pending = data[usable:]
        closed = []
        for offset in range(0, usable, self.frame):
            segment = self._frame(data[offset : offset + self.frame])
            if segment is not None:
                closed.append(segment)
        return closed

    def flush(self) -> list[Segment]:
        """Close the open utterance at the end of the stream (trailing partial frame included)."""
        if self._pending.size:
            if self._speech:
                self._speech.append(self._pending)
                self._speech_len += self._pending.size
            self._position += self._pending.size
            self._pending = np.zeros(0, dtype=np.float32)
        segment = self._close()
        return [segment] if segment is not None else []

    def _frame(self, frame: np.ndarray) -> Segment | None:
        voiced = level_db(frame) >= self.settings.energy_threshold_db
        self._position += frame.size
        if not self._speech:
            if voiced:
                self._start = self._position - frame.size - self._history.size
                self._speech = [self._history, frame]
                self._speech_len = self._history.size + frame.size
                self._voiced_len = self._speech_len
                self._silent_frames = 0
                self._history = np.zeros(0, dtype=np.float32)
            else:
                self._history = np.concatenate([self._history, frame])[-self.pre_roll :] if self.pre_roll else self._history
            return None
        self._speech.append(frame)
        self._speech_len += frame.size
        if voiced:
            self._voiced_len = self._speech_len
            self._silent_frames = 0
        else:
            self._silent_frames += 1
        if self._silent_frames >= self.max_silence_frames:
            return self._close()
        if self._speech_len >= self.max_samples:  # long speech: emit one model window, go on
            return self._close(continuing=True)
        return None

    def _close(self, continuing: bool = False) -> Segment | None:
        if not self._speech:
            return None
        samples = np.concatenate(self._speech)
        start_s = self._start / self.rate
        if continuing:  # exactly one model window; the rest opens the next window
            window, rest = samples[: self.max_samples], samples[self.max_samples :]
            self._start += window.size
            self._speech, self._speech_len = [rest], rest.size
            self._voiced_len, self._silent_frames = rest.size, 0
            return Segment(window, start_s, start_s + window.size / self.rate, self._position / self.rate)
        voiced = samples[: self._voiced_len]
        self._speech, self._speech_len, self._voiced_len, self._silent_frames = [], 0, 0, 0
        # Utterances shorter than min_speech_s are clicks or breaths, not speech.
        if voiced.size - min(self.pre_roll, voiced.size) < self.min_speech_samples:
            return None
        return Segment(voiced, start_s, start_s + voiced.size / self.rate, self._position / self.rate)


def level_db(frame: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS)."""
    power = float(np.mean(np.square(frame, dtype=np.float64)))
    return 10.0 * np.log10(max(power, 1e-12))
