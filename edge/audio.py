"""Audio in: decode a file (soundfile), mix to mono, resample (soxr).

Mirrors ``librosa.load(path)`` (mono by channel mean, soxr "HQ", output length
``ceil(n * target / source)``) without importing librosa.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soxr

# soundfile (libsndfile, about 3 MiB resident) is imported where a file is decoded: the daemon
# listening to a microphone never decodes one (benchmarks/memory_bench.py).

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import open_regular_file

DEFAULT_SAMPLE_RATE = 22050
# Header values past these are damaged or hostile files: a 40 KB WAV declaring 1 Hz
# once decoded to gigabytes after resampling.
MIN_RATE, MAX_RATE = 1000, 384_000
MAX_CHANNELS = 32
MAX_SECONDS = 600.0  # per file; a Pi's service has 300 MB (a 48 kHz mono file: 115 MB as float32)
MAX_PEAK = 16.0  # float samples are [-1, 1]; +24 dB over full scale is not a level, it is unscaled data
RESAMPLE_QUALITY = "HQ"  # librosa's default res_type "soxr_hq"


def load(path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to a mono float32 signal at ``sample_rate`` Hz.

    Any format libsndfile reads (WAV int16/int24/float, FLAC, OGG, ...).
    Raises ``SerEdgeError`` with a one-line message for a missing, empty,
    undecodable or non-finite file.
    """
    signal, source_rate = read(path)
    return resample(to_mono(signal), source_rate, sample_rate)


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode ``path`` as float32 of shape (samples, channels) and its rate."""
    path = Path(path)
    size = check_readable(path)
    if size == 0:
        raise SerEdgeError(f"{path}: empty file")
    try:
        import soundfile
    except OSError as error:  # the module is there but libsndfile is not
        raise SerEdgeError(f"libsndfile is missing ({error}); on Debian/Raspberry Pi OS: apt install libsndfile1") from None
    try:
        with soundfile.SoundFile(path) as sound:
            rate, channels = int(sound.samplerate), int(sound.channels)
            check_format(path, rate, channels)
            # One frame past the cap tells "too long" apart without decoding the rest.
            limit = int(MAX_SECONDS * rate)
            signal = sound.read(frames=limit + 1, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SerEdgeError(f"{path}: cannot decode audio ({reason})") from None
    except MemoryError:
        raise SerEdgeError(f"{path}: too large to decode in memory") from None
    if signal.shape[0] == 0:
        raise SerEdgeError(f"{path}: contains no audio samples")
    if signal.shape[0] > limit:
        raise SerEdgeError(f"{path}: longer than {MAX_SECONDS:g} s; split it, or stream it with "
                           "`ser-edge listen --input -`")
    if not np.isfinite(signal).all():
        raise SerEdgeError(f"{path}: contains NaN or infinite samples")
    peak = float(np.max(np.abs(signal)))
    if peak > MAX_PEAK:
        raise SerEdgeError(f"{path}: samples reach {peak:.3g} but full scale is 1.0 (more than {MAX_PEAK:g} "
                           "means float audio that was never normalised)")
    return signal, rate


def check_readable(path: Path) -> int:
    """The size of a readable regular file; one-line errors for the rest (FIFOs, devices, EACCES)."""
    with open_regular_file(path, "file") as handle:
        return os.fstat(handle.fileno()).st_size


def check_format(path: Path, rate: int, channels: int) -> None:
    """Refuse header values no recording has, before they size an allocation."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise SerEdgeError(f"{path}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise SerEdgeError(f"{path}: {channels} channels; at most {MAX_CHANNELS} are supported")


def to_mono(signal: np.ndarray) -> np.ndarray:
    """Average the channels of a (samples, channels) array, as librosa does."""
    if signal.ndim == 1:
        return signal.astype(np.float32, copy=False)
    if signal.shape[1] == 1:
        return np.ascontiguousarray(signal[:, 0], dtype=np.float32)
    return signal.mean(axis=1, dtype=np.float32)


def resample(signal: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono float32 signal with soxr HQ; identity when rates agree."""
    if source_rate <= 0 or target_rate <= 0:
        raise SerEdgeError(f"sample rates must be positive, got {source_rate} -> {target_rate}")
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    if source_rate == target_rate:
        return signal
    out = soxr.resample(signal, source_rate, target_rate, quality=RESAMPLE_QUALITY)
    wanted = int(math.ceil(signal.shape[0] * target_rate / source_rate))
    return fix_length(out, wanted)


def fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the end of ``signal`` to ``length`` samples."""
    if signal.shape[0] >= length:
        return signal[:length]
    return np.pad(signal, (0, length - signal.shape[0]))
