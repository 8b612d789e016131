"""Bad config, unreachable files, lying model metadata and absurd audio headers: one line, never a traceback.

Real subprocesses of ``ser-edge``, real files (WAVs with hand-set headers,
FIFOs, devices, directories the unprivileged user cannot enter) and the
shipped LiteRT models, edited in place.
"""

from __future__ import annotations

import re

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from tests.daemon_tools import SER_EDGE, assert_one_clear_error, lock, without_file_privileges
from tests.fixtures import RATE, model_path


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*SER_EDGE, *args], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(RATE * 2) / RATE
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path


# --- 5. numbers the config accepted but the code did not survive --------------------------

@pytest.mark.parametrize("content, message", [
    ("max_silence_s = inf\n", "max_silence_s must be in [0.02, 60] s, got inf"),
    ("min_speech_s = inf\n", "min_speech_s must be in [0, 60] s, got inf"),
    ("duration_s = inf\n", "duration_s must be in [0.001, 1e+09] s, got inf"),
    ("max_silence_s = nan\n", "max_silence_s must be in"),
    ("threads = 9223372036854775807\n", "threads must be in [1, 64]"),
    ("threads = 100000\n", "threads must be in [1, 64], got 100000"),
    ("energy_threshold_db = -120.0\n", "energy_threshold_db must be in [-100, 0] dBFS"),
    ("input_rate = 1\n", "input_rate must be in [1000, 384000] Hz"),
    ("device = true\n", "device must be a name or an index, got True"),
    ("speaker_min_utterances = 0\n", "speaker_min_utterances must be in [1, 1e+06], got 0"),
    ("speaker_min_utterances = 2.5\n", "speaker_min_utterances must be an integer"),
    ("speaker_state = 3\n", "speaker_state must be a string"),
])
def test_config_values_are_bounded_at_parse_time(tmp_path, wav, content, message):
    config = tmp_path / "ser-edge.toml"
    config.write_text(content)
    done = run("listen", "--config", str(config), "--model", str(model_path()), "--input", str(wav))
    assert_one_clear_error(done, message)
    assert "ready" not in done.stderr  # refused before READY, not after
    assert done.stdout == ""


@pytest.mark.parametrize("flag, value", [("--duration", "inf"), ("--max-silence-s", "1e308"),
                                         ("--min-speech-s", "-1"), ("--threads", "100000")])
def test_flag_values_are_bounded(wav, flag, value):
    done = run("listen", "--model", str(model_path()), "--input", str(wav), flag, value)
    assert_one_clear_error(done, "must be in [")


def test_classify_threads_are_bounded(wav):
    assert_one_clear_error(run("classify", "--threads", "100000", str(wav)), "threads must be 1..64")


# --- 6. permission errors -----------------------------------------------------------------

def run_unprivileged(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*without_file_privileges(), *SER_EDGE, *args], capture_output=True, text=True,
                          timeout=120)


def test_model_in_a_directory_the_user_cannot_enter(tmp_path, wav):
    """ProtectHome=yes does exactly this to a model under /home: Path.exists() raised PermissionError."""
    private = tmp_path / "private"
    private.mkdir()
    shutil.copyfile(model_path(), private / "model.tflite")
    lock(private)
    model = str(private / "model.tflite")
    for args in (["listen", "--input", str(wav), "--model", model], ["classify", str(wav), "--model", model],
                 ["info", model]):
        assert_one_clear_error(run_unprivileged(*args), "cannot access model file (permission denied)")


def test_input_in_a_directory_the_user_cannot_enter(tmp_path, wav):
    private = tmp_path / "private"
    private.mkdir()
    shutil.copyfile(wav, private / "tone.wav")
    lock(private)
    for command in (["listen", "--input"], ["classify"]):
        done = run_unprivileged(*command, str(private / "tone.wav"), "--model", str(model_path()))
        assert_one_clear_error(done, "cannot access file (permission denied)")


def test_unreadable_audio_file(tmp_path, wav):
    target = tmp_path / "secret.wav"
    shutil.copyfile(wav, target)
    lock(target)
    done = run_unprivileged("classify", str(target))
    assert_one_clear_error(done, "cannot open file (permission denied)")


def test_unreadable_config(tmp_path):
    config = tmp_path / "ser-edge.toml"
    config.write_text('model = "ravdess"\n')
    lock(config)
    done = run_unprivileged("listen", "--config", str(config))
    assert_one_clear_error(done, "cannot open config file (permission denied)")


# --- 10. pipes and devices are not "empty files" -------------------------------------------

def test_fifo_and_device_as_audio_input(tmp_path):
    fifo = tmp_path / "audio.wav"
    os.mkfifo(fifo)
    assert_one_clear_error(run("classify", str(fifo)), "is a FIFO, not a file")
    assert_one_clear_error(run("classify", "/dev/zero"), "is a character device, not a file")
    assert_one_clear_error(run("listen", "--input", "/dev/zero"), "is a character device, not a file")


def test_fifo_as_model_does_not_block(tmp_path):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    assert_one_clear_error(run("info", str(fifo)), "is a FIFO, not a model file")


# --- 8. metadata that contradicts the model's tensors ---------------------------------------

def edited_model(folder: Path, old: bytes, new: bytes) -> Path:
    """The shipped model with one metadata value changed in place (same length, so still a valid file).

    Its checksum entry is renamed away, as in a file exported before checksums: the checks of the
    metadata against the graph must hold on their own (tests/test_model_checksum.py covers signed files).
    """
    assert len(old) == len(new)
    data = model_path().read_bytes()
    assert data.count(old) == 1 and data.count(b'"checksum": {') == 1
    path = folder / "edited.tflite"
    path.write_bytes(data.replace(old, new).replace(b'"checksum": {', b'"unsigned": {'))
    return path


CONFIG = FeatureConfig()
SHAPE_ERROR = f"has shape {(1, *CONFIG.input_shape)}"


@pytest.mark.parametrize("old, new, message", [
    # The default model standardises its 39 coefficients: 40 no longer matches its statistics either.
    (b'"n_mfcc": 39', b'"n_mfcc": 40', "input_mean must be 40 finite numbers"),
    (f'"num_samples": {CONFIG.num_samples}'.encode(), b'"num_samples": 150000', SHAPE_ERROR),
    (b'"hop_length": 512', b'"hop_length": 256', SHAPE_ERROR),
])
def test_feature_config_is_checked_against_the_input_shape(tmp_path, wav, old, new, message):
    model = edited_model(tmp_path, old, new)
    with pytest.raises(SerEdgeError, match=re.escape(message)):
        EmotionClassifier(model)
    done = run("listen", "--model", str(model), "--input", str(wav))
    assert_one_clear_error(done, message)
    assert "ready" not in done.stderr


def test_label_count_is_checked_against_the_output_shape(tmp_path):
    # Drop one label without changing the length: '"calm", ' becomes 8 spaces.
    model = edited_model(tmp_path, b'"calm", ', b" " * 8)
    with pytest.raises(SerEdgeError, match=r"expected one output of shape \(1, 7\)"):
        EmotionClassifier(model)


@pytest.mark.parametrize("old, new, message", [
    (b'"format": 1', b'"format": 2', "ser-edge metadata format 2, but this ser-edge reads format 1"),
    (b'"inputs": ["forward", "backward"]', b'"inputs": ["backward", "forward"]', "the metadata's inputs"),
    (b'"output": "probabilities"', b'"output": "logits"       ', "the metadata's output is 'logits'"),
])
def test_metadata_format_and_bindings_are_checked(tmp_path, wav, old, new, message):
    model = edited_model(tmp_path, old, new)
    with pytest.raises(SerEdgeError, match=re.escape(message)):
        EmotionClassifier(model)
    assert_one_clear_error(run("classify", "--model", str(model), str(wav)), message)


def test_absurd_feature_numbers_are_refused(tmp_path, wav):
    model = edited_model(tmp_path, f'"sample_rate": {RATE}'.encode(), b'"sample_rate":     1')
    with pytest.raises(SerEdgeError, match=r"sample_rate must be an integer in \[4000, 192000\], got 1"):
        EmotionClassifier(model)
    assert_one_clear_error(run("classify", "--model", str(model), str(wav)), "sample_rate must be an integer in")


# --- 9. absurd sample rates and lengths ----------------------------------------------------

def wav_with_rate(path: Path, rate: int, seconds_of_bytes: int = 20_000) -> Path:
    """A 16-bit mono WAV whose header declares ``rate``: libsndfile decodes it as such."""
    samples = np.zeros(seconds_of_bytes, dtype="<i2")
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + samples.nbytes, b"WAVE", b"fmt ", 16, 1, 1, rate,
                         rate * 2, 2, 16, b"data", samples.nbytes)
    path.write_bytes(header + samples.tobytes())
    return path


@pytest.mark.parametrize("rate", [1, 100, 999, 1_000_000])
def test_absurd_sample_rates_are_refused(tmp_path, rate):
    path = wav_with_rate(tmp_path / "odd.wav", rate)
    assert soundfile.info(path).samplerate == rate  # libsndfile believes the header
    assert_one_clear_error(run("classify", str(path)), f"sample rate {rate} Hz is outside 1000..384000 Hz")
    assert_one_clear_error(run("listen", "--input", str(path)), f"sample rate {rate} Hz is outside")


def test_decoded_length_is_capped(tmp_path):
    path = wav_with_rate(tmp_path / "long.wav", 1000, seconds_of_bytes=601 * 1000)
    assert_one_clear_error(run("classify", str(path)), "longer than 600 s")


def test_unnormalised_float_samples_are_refused(tmp_path):
    path = tmp_path / "huge_float.wav"
    rng = np.random.default_rng(7)
    soundfile.write(path, rng.uniform(-1e6, 1e6, RATE).astype(np.float32), RATE, subtype="FLOAT")
    assert_one_clear_error(run("classify", str(path)), "but full scale is 1.0")

