"""Speech and a microphone without hardware: espeak-ng sentences, and ALSA's ``file`` plugin as capture device.

ALSA's ``file`` plugin (``type file``, ``slave.pcm "null"``, ``infile`` a raw
S16_LE file) behind a ``plug`` pcm serves as a microphone through PortAudio
and sounddevice, bit-exact when captured as int16. It is not paced in real
time and returns stale data past the end of the file. ``listen_bench``,
``memory_bench`` and the tests use it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from ser_edge.edge import audio
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError

RATE = FeatureConfig().sample_rate  # espeak-ng writes 22,050 Hz, the model's rate
SENTENCES = (
    "I can't believe you did this to me, I am furious.",
    "What a wonderful surprise, thank you so much.",
    "I feel so tired and sad today.",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, path: Path) -> np.ndarray:
    """Synthetic speech from espeak-ng, written to ``path`` and decoded at RATE."""
    if not espeak_available():
        raise SerEdgeError("espeak-ng is not installed (apt install espeak-ng)")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return audio.load(path, RATE)


def speech_with_pauses(folder: Path, sentences=SENTENCES, pause_s: float = 1.5) -> tuple[np.ndarray, Path]:
    """The sentences separated (and followed) by silence; returns the signal and a WAV of it."""
    parts = []
    for i, text in enumerate(sentences):
        parts.append(espeak(text, folder / f"sentence{i}.wav"))
        parts.append(np.zeros(round(pause_s * RATE), dtype=np.float32))
    signal = np.concatenate(parts)
    path = folder / "speech.wav"
    soundfile.write(path, signal, RATE, subtype="PCM_16")
    return audio.load(path, RATE), path


def alsa_fake_microphone(folder: Path, signal: np.ndarray, rate: int = RATE, tail_s: float = 10.0) -> dict:
    """Environment for a process whose default ALSA capture device plays ``signal``.

    PortAudio and sounddevice capture it bit-exactly as int16. Reads past the
    end of the file crawl (seconds per block), so ``tail_s`` of silence
    follows the signal and callers stop with ``--duration`` before reaching it.
    """
    raw = folder / "microphone.raw"
    signal = np.concatenate([signal, np.zeros(round(tail_s * rate), dtype=np.float32)])
    pcm = np.clip(np.round(signal * 32768.0), -32768, 32767).astype("<i2")
    raw.write_bytes(pcm.tobytes())
    config = folder / "asound.conf"
    config.write_text(
        "</usr/share/alsa/alsa.conf>\n"
        f'pcm.fakemic_raw {{ type file  slave.pcm "null"  file "/dev/null"  infile "{raw}"  format "raw" }}\n'
        f'pcm.fakemic {{ type plug  slave {{ pcm "fakemic_raw"  format S16_LE  rate {rate}  channels 1 }} }}\n'
        'pcm.!default { type asym  capture.pcm "fakemic"  playback.pcm "null" }\n'
    )
    return {**os.environ, "ALSA_CONFIG_PATH": str(config)}
