"""Real non-speech (and speech) signals for the speech gate's tests and benchmark, all generated, all seeded.

Each maker returns float32 mono at ``rate`` with a stated peak level; babble and
speech come from espeak-ng (a SerEdgeError names the package where it is missing).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ser_edge.edge import audio
from ser_edge.edge.errors import SerEdgeError

SEED = 20240611
# Several voices and languages talking at once, each a different sentence: "babble".
BABBLE = (
    ("en-us", "The meeting moved to Thursday because the room was booked."),
    ("en+f3", "Could you pass me the salt and the pepper, please?"),
    ("de", "Wir fahren morgen früh mit dem Zug nach Berlin."),
    ("fr", "Il fait beau aujourd'hui, allons nous promener au parc."),
    ("en+m3", "I think the printer on the second floor is broken again."),
    ("es", "Mañana vamos a comprar pan y leche en el mercado."),
)


def _peak(signal: np.ndarray, peak: float) -> np.ndarray:
    return (signal * (peak / max(float(np.max(np.abs(signal))), 1e-12))).astype(np.float32)


def white_noise(rate: int, seconds: float, peak: float = 0.5) -> np.ndarray:
    return _peak(np.random.default_rng(SEED).standard_normal(round(rate * seconds)), peak)


def pink_noise(rate: int, seconds: float, peak: float = 0.5) -> np.ndarray:
    """White noise shaped to 1/f power (3 dB per octave down) in the frequency domain."""
    n = round(rate * seconds)
    spectrum = np.fft.rfft(np.random.default_rng(SEED + 1).standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / rate)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    return _peak(np.fft.irfft(spectrum, n), peak)


def tone(rate: int, seconds: float, hz: float = 440.0, peak: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return _peak(np.sin(2 * np.pi * hz * t), peak)


def sweep(rate: int, seconds: float, low_hz: float = 100.0, high_hz: float = 4000.0, peak: float = 0.5) -> np.ndarray:
    """A logarithmic sine sweep, like a siren or a test signal."""
    t = np.arange(round(rate * seconds)) / rate
    k = np.log(high_hz / low_hz) / seconds
    return _peak(np.sin(2 * np.pi * low_hz * (np.exp(k * t) - 1) / k), peak)


def _note(rate: int, hz: float, seconds: float) -> np.ndarray:
    """A plucked note: five harmonics, fast attack, exponential decay."""
    t = np.arange(round(rate * seconds)) / rate
    harmonics = sum(np.sin(2 * np.pi * hz * h * t) / h for h in range(1, 6))
    return harmonics * np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)


def chords(rate: int, seconds: float, peak: float = 0.5) -> np.ndarray:
    """C, F, G, C major triads, one a second: music-like, harmonic, periodic."""
    triads = ((261.63, 329.63, 392.00), (349.23, 440.00, 523.25), (392.00, 493.88, 587.33), (261.63, 329.63, 392.00))
    parts = [sum(_note(rate, hz, 1.0) for hz in triads[i % len(triads)]) for i in range(int(np.ceil(seconds)))]
    return _peak(np.concatenate(parts)[: round(rate * seconds)], peak)


def arpeggio(rate: int, seconds: float, peak: float = 0.5) -> np.ndarray:
    """An A minor arpeggio, eight notes a second."""
    notes = (220.00, 261.63, 329.63, 440.00, 329.63, 261.63)
    count = int(np.ceil(seconds * 8))
    parts = [_note(rate, notes[i % len(notes)], 0.125) for i in range(count)]
    return _peak(np.concatenate(parts)[: round(rate * seconds)], peak)


def digital_silence(rate: int, seconds: float) -> np.ndarray:
    return np.zeros(round(rate * seconds), dtype=np.float32)


def clipped_tone(rate: int, seconds: float) -> np.ndarray:
    """A 220 Hz hum driven 20 dB into full scale: a square wave, the worst of clipping."""
    return np.clip(10 * tone(rate, seconds, 220.0, peak=1.0), -1.0, 1.0).astype(np.float32)


def espeak_voice(text: str, rate: int, voice: str = "en") -> np.ndarray:
    """One espeak-ng sentence at ``rate``."""
    if shutil.which("espeak-ng") is None:
        raise SerEdgeError("espeak-ng is not installed (apt install espeak-ng)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "voice.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
        return audio.load(path, rate)


def babble(rate: int, seconds: float, peak: float = 0.5) -> np.ndarray:
    """Six espeak-ng voices in four languages, mixed with staggered starts and looped to fill ``seconds``."""
    n = round(rate * seconds)
    mix = np.zeros(n)
    for i, (voice, text) in enumerate(BABBLE):
        talker = espeak_voice(text, rate, voice)
        looped = np.tile(talker, n // talker.size + 2)
        offset = round(i * 0.37 * rate)  # staggered, so no two talkers pause together
        mix += looped[offset : offset + n]
    return _peak(mix, peak)


def clipped_speech(text: str, rate: int) -> np.ndarray:
    """espeak-ng speech driven 20 dB into full scale and clipped."""
    return np.clip(10 * _peak(espeak_voice(text, rate), 1.0), -1.0, 1.0).astype(np.float32)


NON_SPEECH = {
    "white noise": white_noise,
    "pink noise": pink_noise,
    "tone 440 Hz": tone,
    "sine sweep": sweep,
    "chords": chords,
    "arpeggio": arpeggio,
    "digital silence": digital_silence,
    "clipped tone": clipped_tone,
}
