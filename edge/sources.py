"""Where ``ser-edge listen`` gets audio: a microphone, a file, or raw PCM on stdin.

Every source delivers float32 mono chunks at the model's rate through
``read(timeout)``; ``None`` means nothing yet, ``EndOfStream`` the end.
"""

from __future__ import annotations

import logging
import os
import select
from typing import Protocol

import numpy as np
import soxr

from ser_edge.edge import audio
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import os_reason

log = logging.getLogger(__name__)

BLOCK_S = 0.05  # 50 ms capture blocks: low latency, few callbacks
INT16_SCALE = 1.0 / 32768.0


class AudioSource(Protocol):
    """What the daemon reads: ``open``, ``read(timeout)``, ``close``; a ``name`` and an ``overflows`` count."""

    name: str
    overflows: int

    def open(self) -> None: ...

    def read(self, timeout: float) -> np.ndarray | None: ...

    def close(self) -> None: ...


class EndOfStream(Exception):
    """The source has no more audio (files and stdin; a microphone never ends)."""


class DeviceLost(Exception):
    """The capture device stopped delivering audio; the daemon reconnects."""


class FileSource:
    """A decoded file, served in blocks, as fast as it is consumed."""

    def __init__(self, path: str, rate: int):
        self.name = path
        self.rate = rate
        self.overflows = 0
        self._signal = None
        self._offset = 0

    def open(self) -> None:
        self._signal = audio.load(self.name, self.rate)

    def read(self, timeout: float) -> np.ndarray:
        if self._offset >= self._signal.shape[0]:
            raise EndOfStream
        block = round(BLOCK_S * self.rate)
        chunk = self._signal[self._offset : self._offset + block]
        self._offset += block
        return chunk

    def close(self) -> None:
        pass


class StreamFailed(SerEdgeError):
    """Reading the input failed (e.g. a socket reset): the stream ends with an error."""


class StdinSource:
    """Raw signed 16-bit little-endian mono PCM on stdin at ``input_rate``.

    Read in the main thread with select() and os.read(): no reader thread that
    could die silently on a read error, and no buffered stdin whose lock a
    daemon thread holds while the interpreter shuts down (SIGTERM used to end
    in "Fatal Python error: _enter_buffered_busy").
    """

    def __init__(self, rate: int, input_rate: int | None, fd: int = 0):
        self.name = "stdin"
        self.rate = rate
        self.input_rate = input_rate or rate
        self.overflows = 0
        self._fd = fd
        self._block_bytes = 2 * round(BLOCK_S * self.input_rate)
        self._leftover = b""
        self._resampler = None
        self._ended = False

    def open(self) -> None:
        if self.input_rate != self.rate:
            self._resampler = soxr.ResampleStream(self.input_rate, self.rate, 1, dtype="float32", quality="HQ")

    def read(self, timeout: float) -> np.ndarray | None:
        if self._ended:
            raise EndOfStream
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return None
            data = os.read(self._fd, self._block_bytes)
        except OSError as error:
            self._ended = True
            raise StreamFailed(f"stdin: read failed ({os_reason(error)}); the stream ends here") from None
        if not data:
            self._ended = True
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True) if self._resampler else None
            if tail is not None and tail.size:
                return tail
            raise EndOfStream
        data = self._leftover + data
        usable = len(data) // 2 * 2  # an odd byte waits for its partner
        self._leftover = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) * INT16_SCALE
        return self._resampler.resample_chunk(samples) if self._resampler else samples

    def close(self) -> None:
        pass


class MicrophoneSource:
    """Capture int16 with sounddevice (float32 through ALSA plug devices is not exact).

    Opens at the model's rate when the device accepts it; otherwise at the
    device's default rate, resampled with soxr. Blocking reads: PortAudio's
    own buffer absorbs jitter and reports overflows, which we count.
    """

    def __init__(self, rate: int, device: str | None):
        self.rate = rate
        self.device = device
        self.name = device or "default input"
        self.overflows = 0
        self.capture_rate = rate
        self._stream = None
        self._resampler = None
        self._sd = None

    def open(self) -> None:
        sd = self._sd = import_sounddevice()
        device = resolve_device(sd, self.device)
        try:
            sd.check_input_settings(device=device, channels=1, dtype="int16", samplerate=self.rate)
            self.capture_rate = self.rate
        except Exception as refused:  # PortAudioError or ValueError: the rate is refused
            self.capture_rate = int(sd.query_devices(device, "input")["default_samplerate"])
            log.warning("device refuses %d Hz (%s); capturing at %d Hz and resampling", self.rate,
                        str(refused).splitlines()[0], self.capture_rate)
        self._resampler = None
        if self.capture_rate != self.rate:
            self._resampler = soxr.ResampleStream(self.capture_rate, self.rate, 1, dtype="float32", quality="HQ")
        try:
            self._stream = sd.RawInputStream(samplerate=self.capture_rate, device=device, channels=1, dtype="int16",
                                             blocksize=self._block)
            self._stream.start()
        except Exception as error:
            raise SerEdgeError(f"cannot open input device {self.name!r}: {str(error).splitlines()[0]}") from None
        log.info("capturing from %s at %d Hz", self.name, self.capture_rate)

    @property
    def _block(self) -> int:
        return round(BLOCK_S * self.capture_rate)

    def read(self, timeout: float) -> np.ndarray | None:
        """One 50 ms block (blocks at most that long on a real device)."""
        try:
            data, overflowed = self._stream.read(self._block)
        except Exception as error:  # PortAudioError: unplugged, driver gone
            raise DeviceLost(f"{self.name}: {str(error).splitlines()[0]}") from None
        if overflowed:
            self.overflows += 1
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) * INT16_SCALE
        return self._resampler.resample_chunk(samples) if self._resampler else samples

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()  # drop what is buffered; stop() would wait for it
                self._stream.close()
            except Exception as error:  # a vanished device may fail to close; nothing to save
                log.debug("closing stream: %s", error)
            self._stream = None


def import_sounddevice():
    """sounddevice, imported lazily: it loads PortAudio, which file input does not need."""
    try:
        import sounddevice
    except OSError as error:  # the module is there but libportaudio is not
        raise SerEdgeError(f"PortAudio is missing ({error}); on Debian/Raspberry Pi OS: apt install libportaudio2") from None
    except ImportError:
        raise SerEdgeError("sounddevice is not installed: pip install sounddevice") from None
    return sounddevice


# What a user without a working microphone should check, and how to go on without one.
NO_MICROPHONE_CHECKS = (
    ("arecord -l", "lists a capture card (is the microphone plugged in?)"),
    ("groups", "includes audio (if not: sudo usermod -aG audio $USER, then log in again)"),
    ("device = ...", "in the config file (--config) names a device from ser-edge devices, or is removed"),
)
WITHOUT_MICROPHONE = ("--input FILE (an audio file), or --input - (raw s16le mono PCM on stdin, "
                      "e.g. from arecord or ffmpeg)")


def no_microphone_hint() -> str:
    """One line: what to check, and how to classify audio without a microphone."""
    return ("check `arecord -l` (is a capture card listed?), `groups` (is this user in the audio group?) and the "
            f"config file's device; without a microphone use {WITHOUT_MICROPHONE}")


def no_microphone_report() -> str:
    """``ser-edge devices`` with nothing to list: the same advice, a line per check."""
    width = max(len(command) for command, _ in NO_MICROPHONE_CHECKS)
    lines = ["no audio input devices found. Check that:"]
    lines += [f"  {command:{width}}  {what}" for command, what in NO_MICROPHONE_CHECKS]
    lines += ["Without a microphone, ser-edge listen reads audio from elsewhere:",
              "  ser-edge listen --input recording.wav",
              "  arecord -f S16_LE -r 22050 -c 1 -t raw | ser-edge listen --input -   (raw s16le mono PCM; "
              "--input-rate for other rates)"]
    return "\n".join(lines)


def input_devices(sd) -> list[dict]:
    """PortAudio's capture devices ([] when it cannot list any)."""
    try:
        return [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    except sd.PortAudioError:
        return []


def resolve_device(sd, device: str | None):
    """A device index for a name or index string; None for the default input."""
    try:
        if device is None:
            sd.query_devices(kind="input")  # raises when there is no default input
            return None
        key = int(device) if device.isdigit() else device
        info = sd.query_devices(key, "input")
        return info["index"]
    except (ValueError, sd.PortAudioError) as error:
        reason = str(error).splitlines()[0]
        if not input_devices(sd):
            raise SerEdgeError(f"no microphone found (PortAudio: {reason}); {no_microphone_hint()}") from None
        what = "no default input device" if device is None else f"unknown input device {device!r}"
        raise SerEdgeError(f"{what} ({reason}); list them with: ser-edge devices, then pass --device NAME "
                           "or set device in the config file") from None


def make_source(settings, rate: int) -> AudioSource:
    if settings.input == "-":
        return StdinSource(rate, settings.input_rate)
    if settings.input is not None:
        return FileSource(settings.input, rate)
    return MicrophoneSource(rate, settings.device)
