"""ser_edge.edge.audio.load against librosa.load, on real and generated files, and its errors.

Tolerances, measured with soundfile 0.14 / libsndfile 1.2.2, soxr 1.1.0,
librosa 0.11, numpy 2.4:
- decoded signal: ser_edge.edge.audio.load and librosa.load are bit-identical (max abs
  difference 0.0) on every file below: EMO-DB, RAVDESS (48 kHz -> 22,050 Hz, mono
  and stereo) and all 108 generated format/rate/channel cases. Both decode with
  soundfile as float32, mix by a float32 channel mean and resample with soxr
  "HQ", so the signal test asserts exact equality: any difference is drift.
- MFCCs of those signals (ser_edge.edge.features.mfcc vs librosa.feature.mfcc): max abs
  difference 6e-5 .. 1.2e-4 measured; asserted <= 1e-3.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

librosa = pytest.importorskip("librosa")

from ser_edge.edge import audio, features  # noqa: E402
from ser_edge.edge.config import FeatureConfig  # noqa: E402
from ser_edge.edge.errors import SerEdgeError  # noqa: E402

SR = FeatureConfig().sample_rate
MFCC_TOLERANCE = 1e-3

# librosa.load imports audioread, which imports modules deprecated in Python 3.13.
pytestmark = pytest.mark.filterwarnings("ignore:'(aifc|audioop|sunau)' is deprecated:DeprecationWarning")

SPEECH_FILES = [
    "emodb/03a01Fa.flac",  # EMO-DB copy: 22,050 Hz mono already, no resampling
    "emodb/09b02Wd.flac",
    "emodb/16b10Td.flac",
    "ravdess/Actor_01/03-01-01-01-01-01-01.flac",  # 48 kHz mono
    "ravdess/Actor_01/03-01-02-01-01-02-01.flac",  # 48 kHz stereo
    "ravdess/Actor_20/03-01-06-01-01-02-20.flac",  # 48 kHz stereo
    "ravdess/Actor_12/03-01-05-02-01-01-12.flac",
]


def assert_same_as_librosa(path: Path, sample_rate: int = SR) -> np.ndarray:
    """ser_edge.edge.audio.load == librosa.load exactly; their MFCCs agree to MFCC_TOLERANCE."""
    got = audio.load(path, sample_rate)
    want, rate = librosa.load(path, sr=sample_rate)
    assert rate == sample_rate
    assert got.dtype == np.float32 and got.ndim == 1
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # measured: max abs difference 0.0
    if sample_rate == SR:
        mfcc_diff = np.abs(features.mfcc(got) - librosa.feature.mfcc(y=want, sr=SR, n_mfcc=FeatureConfig().n_mfcc).T).max()
        assert mfcc_diff <= MFCC_TOLERANCE, f"MFCC difference {mfcc_diff:.3g}"
    return got


# --- real speech -------------------------------------------------------------------


@pytest.mark.datasets
@pytest.mark.parametrize("relative", SPEECH_FILES)
def test_real_files_match_librosa(shared_datasets, relative):
    path = shared_datasets / relative
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared datasets")
    info = soundfile.info(path)
    got = assert_same_as_librosa(path)
    assert got.shape == (math.ceil(info.frames * SR / info.samplerate),)
    assert np.isfinite(got).all() and np.abs(got).max() <= 1.0


# --- generated files ---------------------------------------------------------------

FORMATS = [
    ("WAV", "PCM_16", "wav"),
    ("WAV", "PCM_24", "wav"),
    ("WAV", "FLOAT", "wav"),
    ("FLAC", "PCM_16", "flac"),
    ("FLAC", "PCM_24", "flac"),
    ("OGG", "VORBIS", "ogg"),
]
RATES = [8000, 16000, 22050, 44100, 48000, 96000]
CHANNELS = [1, 2, 6]


def _test_signal(rng: np.random.Generator, rate: int, channels: int, seconds: float = 0.25) -> np.ndarray:
    """Tones plus noise, different on each channel, within [-0.9, 0.9]."""
    t = np.arange(int(rate * seconds)) / rate
    columns = []
    for channel in range(channels):
        tone = 0.4 * np.sin(2 * np.pi * (220.0 * (channel + 1)) * t + channel)
        columns.append(tone + 0.1 * rng.uniform(-1.0, 1.0, t.shape[0]))
    return np.stack(columns, axis=1).astype(np.float32)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("container,subtype,suffix", FORMATS, ids=[f"{c}-{s}" for c, s, _ in FORMATS])
def test_generated_files_match_librosa(tmp_path, rng, container, subtype, suffix, rate, channels):
    signal = _test_signal(rng, rate, channels)
    path = tmp_path / f"signal.{suffix}"
    soundfile.write(path, signal, rate, format=container, subtype=subtype)
    got = assert_same_as_librosa(path)
    assert got.shape == (math.ceil(signal.shape[0] * SR / rate),)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("target", [8000, 16000, 44100])
def test_other_target_rates_match_librosa(tmp_path, rng, target):
    path = tmp_path / "signal.wav"
    soundfile.write(path, _test_signal(rng, 48000, 2), 48000, subtype="PCM_16")
    got = assert_same_as_librosa(path, target)
    assert got.shape == (math.ceil(12000 * target / 48000),)


@pytest.mark.parametrize("channels", [2, 6])
def test_channels_are_mixed_by_mean(tmp_path, rng, channels):
    """At 22,050 Hz nothing is resampled, so the result is exactly the channel mean."""
    signal = _test_signal(rng, SR, channels)
    path = tmp_path / "multi.wav"
    soundfile.write(path, signal, SR, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load(path), signal.mean(axis=1, dtype=np.float32))
    assert not np.array_equal(audio.load(path), signal[:, 0])


def test_native_rate_is_not_resampled(tmp_path, rng):
    signal = _test_signal(rng, SR, 1)[:, 0]
    path = tmp_path / "mono.wav"
    soundfile.write(path, signal, SR, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load(str(path)), signal)  # str paths work too


def test_pcm16_values_are_scaled_to_unit_range(tmp_path):
    path = tmp_path / "pcm.wav"
    soundfile.write(path, np.array([0, 16384, -32768, 32767], dtype=np.int16), SR, subtype="PCM_16")
    np.testing.assert_array_equal(audio.load(path), np.array([0, 0.5, -1, 32767 / 32768], dtype=np.float32))


# --- a WAV with an extra chunk before 'data' ---------------------------------------


def _wav_bytes(samples: np.ndarray, rate: int, extra_chunks=()) -> bytes:
    """A PCM_16 RIFF/WAVE file built by hand: fmt chunk, extra chunks, data chunk."""
    channels = samples.shape[1]
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    body = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    for chunk_id, payload in extra_chunks:
        pad = b"\0" if len(payload) % 2 else b""  # RIFF chunks are word aligned
        body += chunk_id + struct.pack("<I", len(payload)) + payload + pad
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


@pytest.mark.parametrize(
    "extra_chunks",
    [
        [(b"FLLR", bytes(4044))],  # Apple's filler: aligns 'data' to 4,096 bytes
        [(b"FLLR", b"\xaa" * 7)],  # odd size, followed by a pad byte
        [(b"FLLR", b"")],
        [(b"FLLR", bytes(100)), (b"LIST", b"INFOISFT\x06\x00\x00\x00ser-ed")],
    ],
    ids=["fllr-4044", "fllr-odd", "fllr-empty", "fllr-and-list"],
)
@pytest.mark.parametrize("rate", [16000, SR])
def test_extra_riff_chunk_decodes_like_plain_wav(tmp_path, rng, extra_chunks, rate):
    samples = rng.integers(-20000, 20000, size=(4000, 2)).astype(np.int16)
    plain = tmp_path / "plain.wav"
    soundfile.write(plain, samples, rate, subtype="PCM_16")
    assert plain.read_bytes() == _wav_bytes(samples, rate)  # the hand-built header is right
    with_chunk = tmp_path / "fllr.wav"
    with_chunk.write_bytes(_wav_bytes(samples, rate, extra_chunks))
    assert with_chunk.stat().st_size > plain.stat().st_size or extra_chunks == [(b"FLLR", b"")]
    np.testing.assert_array_equal(audio.load(with_chunk), audio.load(plain))
    decoded, native = audio.read(with_chunk)
    assert native == rate
    np.testing.assert_array_equal(decoded, samples.astype(np.float32) / 32768)


# --- bad input ---------------------------------------------------------------------


def assert_one_line_error(path, match: str) -> SerEdgeError:
    with pytest.raises(SerEdgeError, match=match) as info:  # any other exception fails
        audio.load(path)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return info.value


def test_missing_file(tmp_path):
    assert_one_line_error(tmp_path / "nope.wav", "no such file")


def test_missing_file_whose_name_holds_a_line_break(tmp_path):
    assert_one_line_error(tmp_path / "two\nlines.wav", "no such file")


def test_directory(tmp_path):
    assert_one_line_error(tmp_path, "is a directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert_one_line_error(path, "empty file")


# (libsndfile writes a 0-byte file for an empty FLAC, so only WAV has a header here.)
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_zero_samples(tmp_path, subtype):
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros((0, 2), dtype=np.float32), 16000, subtype=subtype)
    assert path.stat().st_size > 0  # a valid header, no frames
    assert soundfile.info(path).frames == 0
    assert_one_line_error(path, "contains no audio samples")


@pytest.mark.parametrize("text", ["hello, this is not audio\n", "RIFF\n\nWAVE\n", "\x00" * 64])
def test_text_file_named_wav(tmp_path, text):
    path = tmp_path / "notes.wav"
    path.write_text(text)
    assert_one_line_error(path, "cannot decode audio")


def test_truncated_wav_returns_the_complete_frames(tmp_path, rng):
    """Observed (libsndfile 1.2.2): a WAV cut to half its length still opens; the
    header's frame count is clamped to the bytes present, so load returns exactly
    the complete frames that remain, bit-identical to the start of the full file,
    and no error. (A cut inside the header is an error: next test.)"""
    samples = rng.integers(-30000, 30000, size=(8001, 2)).astype(np.int16)
    path = tmp_path / "full.wav"
    soundfile.write(path, samples, SR, subtype="PCM_16")
    data = path.read_bytes()
    header = len(data) - samples.nbytes
    assert header == 44
    cut = tmp_path / "half.wav"
    cut.write_bytes(data[: len(data) // 2])
    remaining = (len(data) // 2 - header) // 4  # complete stereo int16 frames
    got = audio.load(cut)
    assert got.shape == (remaining,)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, audio.load(path)[:remaining])


def test_truncated_flac_is_an_error(tmp_path, rng):
    """Observed (libsndfile 1.2.2): a FLAC cut to half its length opens, then the
    read fails ("flac decoder lost sync"); load turns that into a SerEdgeError."""
    path = tmp_path / "full.flac"
    soundfile.write(path, rng.uniform(-0.5, 0.5, (20000, 2)).astype(np.float32), 16000, subtype="PCM_16")
    cut = tmp_path / "half.flac"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_one_line_error(cut, "cannot decode audio")


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.1])
def test_truncated_ogg_is_an_error_or_a_shorter_signal(tmp_path, rng, fraction):
    """Ogg Vorbis decodes page by page, so what a cut file gives depends on where
    the cut falls. Observed: 0.9 -> a shorter finite signal, 0.5 -> "contains no
    audio samples", 0.1 -> "cannot decode audio". Never another exception."""
    path = tmp_path / "full.ogg"
    soundfile.write(path, rng.uniform(-0.5, 0.5, (20000, 2)).astype(np.float32), 16000, subtype="VORBIS")
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    try:
        got = audio.load(cut)
    except SerEdgeError as error:
        assert "\n" not in str(error)
    else:
        full = audio.load(path)
        assert 0 < got.shape[0] < full.shape[0]
        assert np.isfinite(got).all()


@pytest.mark.parametrize(
    "keep,match",
    [
        (44, "contains no audio samples"),  # header only: data chunk claims bytes that are gone
        (30, "cannot decode audio"),  # no 'data' chunk marker
        (20, "cannot decode audio"),  # malformed 'fmt ' chunk
        (10, "cannot decode audio"),  # format not recognised
    ],
)
def test_wav_truncated_inside_the_header(tmp_path, rng, keep, match):
    path = tmp_path / "full.wav"
    soundfile.write(path, rng.uniform(-0.5, 0.5, 4000).astype(np.float32), SR, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:keep])
    assert_one_line_error(cut, match)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_non_finite_samples(tmp_path, rng, bad, subtype):
    samples = rng.uniform(-0.5, 0.5, (4000, 2)).astype(np.float32)
    samples[1234, 1] = bad
    path = tmp_path / "bad.wav"
    soundfile.write(path, samples, 16000, subtype=subtype)
    assert_one_line_error(path, "NaN or infinite")


@pytest.mark.parametrize("rates", [(0, SR), (SR, 0), (-8000, SR)])
def test_resample_rejects_bad_rates(rates):
    with pytest.raises(SerEdgeError, match="positive"):
        audio.resample(np.zeros(100, dtype=np.float32), *rates)


def test_fix_length():
    y = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(audio.fix_length(y, 3), [1, 2, 3])
    np.testing.assert_array_equal(audio.fix_length(y, 7), [1, 2, 3, 4, 5, 0, 0])
