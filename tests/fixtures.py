"""Real-part fixtures for the runtime tests: espeak-ng speech, ALSA fake microphones (ser_edge.benchmarks.fake_microphone), models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ser_edge.benchmarks import fake_microphone
from ser_edge.benchmarks.fake_microphone import RATE, SENTENCES, alsa_fake_microphone  # noqa: F401 (the tests import them from here)
from ser_edge.edge.registry import resolve_model


def model_path(name: str = "ravdess") -> Path:
    """A real exported model: $SER_TEST_MODEL if set, else the shipped one."""
    override = os.environ.get("SER_TEST_MODEL")
    return Path(override) if override else resolve_model(name)


def espeak(text: str, path: Path) -> np.ndarray:
    """Synthetic speech from espeak-ng at RATE (skips the test when espeak-ng is absent)."""
    _need_espeak()
    return fake_microphone.espeak(text, path)


def speech_with_pauses(folder: Path, sentences=SENTENCES, pause_s: float = 1.5) -> tuple[np.ndarray, Path]:
    """The sentences separated (and followed) by silence; returns the signal and a WAV of it."""
    _need_espeak()
    return fake_microphone.speech_with_pauses(folder, sentences, pause_s)


def _need_espeak() -> None:
    if not fake_microphone.espeak_available():
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")


def portaudio_available() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:
        return False
    return True
