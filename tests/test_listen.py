"""``ser-edge listen`` end to end: real PortAudio capture through ALSA, real LiteRT, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge.model_file import read_metadata
from ser_edge.edge.registry import THESIS_PI_MEAN_SECONDS, THESIS_PI_SECONDS
from tests.fixtures import RATE, SENTENCES, alsa_fake_microphone, model_path, portaudio_available, speech_with_pauses

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of `-m "not slow"`

SER_EDGE = [sys.executable, "-m", "ser_edge.edge.cli"]
needs_portaudio = pytest.mark.skipif(not portaudio_available(), reason="PortAudio missing (apt install libportaudio2)")


@pytest.fixture(scope="module")
def model() -> Path:
    return model_path("ravdess")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return speech_with_pauses(tmp_path_factory.mktemp("speech"))


def utterance_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def summary_of(stderr: str) -> dict:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith('{"summary"')]
    assert len(lines) == 1, stderr
    return lines[0]["summary"]


def check_utterances(lines: list[dict], labels: list[str]) -> None:
    assert len(lines) == len(SENTENCES)
    for line in lines:
        assert line["best_guess"] in labels and line["label"] in (line["best_guess"], "uncertain")
        assert line["speech_probability"] >= 0.5  # only what the speech gate passed is labelled
        assert set(line["probabilities"]) == set(labels)
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=0.01)
        latency = line["latency_s"]
        for stage in ("end_of_speech_wait", "features", "inference", "processing", "total"):
            assert latency[stage] > 0, stage
        assert latency["processing"] == pytest.approx(latency["features"] + latency["inference"], abs=2e-6)
        assert line["thesis_pi_s"] in (*THESIS_PI_SECONDS.values(), THESIS_PI_MEAN_SECONDS)
        assert line["processing_vs_thesis"] == pytest.approx(latency["processing"] / line["thesis_pi_s"], rel=1e-3)
        assert line["duration_s"] > 0.5


@needs_portaudio
def test_listen_from_alsa_microphone_emits_one_line_per_utterance(tmp_path, model, speech):
    signal_, _ = speech
    env = alsa_fake_microphone(tmp_path, signal_)
    jsonl = tmp_path / "results.jsonl"
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--duration", f"{signal_.size / RATE:.3f}",
                           "--jsonl", str(jsonl)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    labels = read_metadata(model)["label_names"]
    lines = utterance_lines(done.stdout)
    check_utterances(lines, labels)
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == lines
    summary = summary_of(done.stderr)
    assert summary["utterances"] == len(SENTENCES)
    processing = [line["latency_s"]["processing"] for line in lines]
    assert summary["processing_mean_s"] == pytest.approx(float(np.mean(processing)), rel=1e-3, abs=1e-5)


@needs_portaudio
def test_microphone_and_file_input_give_the_same_labels(tmp_path, model, speech):
    """int16 capture through ALSA plug is bit-exact, so both paths see the same samples."""
    signal_, wav = speech
    env = alsa_fake_microphone(tmp_path, signal_)
    mic = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--duration", f"{signal_.size / RATE:.3f}"],
                         env=env, capture_output=True, text=True, timeout=120)
    from_file = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--input", str(wav)],
                               capture_output=True, text=True, timeout=120)
    assert mic.returncode == 0 and from_file.returncode == 0, mic.stderr + from_file.stderr
    mic_lines, file_lines = utterance_lines(mic.stdout), utterance_lines(from_file.stdout)
    assert [(l["label"], l["start_s"], l["duration_s"]) for l in mic_lines] == \
           [(l["label"], l["start_s"], l["duration_s"]) for l in file_lines]
    for a, b in zip(mic_lines, file_lines):
        assert a["probabilities"] == b["probabilities"]


def test_listen_reads_raw_pcm_from_stdin_at_another_rate(tmp_path, model, speech):
    signal_, _ = speech
    import soxr

    pcm16k = np.clip(np.round(soxr.resample(signal_, RATE, 16000) * 32768), -32768, 32767).astype("<i2")
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--input", "-", "--input-rate", "16000"],
                          input=pcm16k.tobytes(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    check_utterances(utterance_lines(done.stdout.decode()), read_metadata(model)["label_names"])


@needs_portaudio
def test_systemd_notify_protocol_on_a_real_socket(tmp_path, model, speech):
    signal_, _ = speech
    env = alsa_fake_microphone(tmp_path, signal_)
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(0.2)
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="100000")
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--duration", f"{signal_.size / RATE:.3f}"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    messages = []
    while True:
        try:
            messages.append(receiver.recv(4096).decode())
        except socket.timeout:
            break
    receiver.close()
    assert messages[0].startswith("READY=1\n")
    assert "STATUS=listening on" in messages[0]
    assert any(m == "WATCHDOG=1" for m in messages)
    statuses = [m for m in messages if m.startswith("STATUS=")]
    assert statuses[-1].endswith(f"{len(SENTENCES)} utterances")
    assert messages[-1] == "STOPPING=1"


@needs_portaudio
def test_sigterm_mid_stream_ends_cleanly_with_summary(tmp_path, model, speech):
    signal_, _ = speech
    # Ten copies: far more audio than we let it hear before the signal.
    env = alsa_fake_microphone(tmp_path, np.tile(signal_, 20))
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(60)
    env["NOTIFY_SOCKET"] = address
    process = subprocess.Popen([*SER_EDGE, "listen", "--model", str(model)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert receiver.recv(4096).decode().startswith("READY=1")
        first = process.stdout.readline()  # one utterance classified: audio is flowing
        assert json.loads(first)["label"]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        receiver.close()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = summary_of(stderr)
    assert summary["utterances"] == 1 + len(utterance_lines(stdout))


@pytest.mark.parametrize("args, message", [
    (["--model", "/nonexistent/model.tflite"], "no such model file"),
    (["--model", "nosuchmodel"], "unknown model"),
    (["--input", "/nonexistent.wav"], "no such file"),
    (["--threads", "0"], "threads must be in [1, 64]"),
    (["--max-silence-s", "0"], "max_silence_s must be in [0.02, 60] s"),
    (["--config", "/nonexistent.toml"], "no such config file"),
])
def test_bad_input_gives_one_line_and_exit_2(args, message, model):
    extra = [] if "--model" in args else ["--model", str(model)]
    done = subprocess.run([*SER_EDGE, "listen", *extra, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("ser-edge: error:")]
    assert len(error_lines) == 1 and message in error_lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("content, message", [
    ('colour = "blue"\n', "unknown key 'colour'"),
    ("threads = 'two'\n", "threads must be an integer"),
    ("energy_threshold_db = 12.0\n", "energy_threshold_db must be in"),
    ("threads = [\n", "invalid TOML"),
    ('level = "loud"\n', "level must be one of normalised, as-recorded"),
])
def test_bad_config_gives_one_line_and_exit_2(tmp_path, content, message, model):
    config = tmp_path / "ser-edge.toml"
    config.write_text(content)
    done = subprocess.run([*SER_EDGE, "listen", "--config", str(config), "--model", str(model)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_model_without_metadata_and_corrupt_model(tmp_path):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    done = subprocess.run([*SER_EDGE, "classify", "--model", str(corrupt), "x.wav"], capture_output=True, text=True)
    assert done.returncode == 2 and "not a TFLite model" in done.stderr


@needs_portaudio
def test_unknown_device_and_no_device(tmp_path, model, speech):
    env = alsa_fake_microphone(tmp_path, speech[0])
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--device", "no-such-mic"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown input device 'no-such-mic'" in done.stderr, done.stderr
    # An ALSA configuration with no capture device at all.
    empty = tmp_path / "empty.conf"
    empty.write_text("</usr/share/alsa/alsa.conf>\npcm.!default { type null }\n")
    env["ALSA_CONFIG_PATH"] = str(empty)
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--device", "7"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown input device '7'" in done.stderr, done.stderr


@needs_portaudio
def test_device_refusing_the_model_rate_is_resampled(tmp_path, model, speech):
    """A hw-like device fixed at 48 kHz: capture at its rate, resample to the model's."""
    signal_, _ = speech
    import soxr

    at48k = soxr.resample(signal_, RATE, 48000)
    raw = tmp_path / "mic48k.raw"
    at48k = np.concatenate([at48k, np.zeros(10 * 48000, dtype=np.float32)])  # see alsa_fake_microphone
    raw.write_bytes(np.clip(np.round(at48k * 32768), -32768, 32767).astype("<i2").tobytes())
    config = tmp_path / "asound48k.conf"
    # No plug: the file pcm itself only takes S16_LE mono at 48 kHz, so 22,050 Hz is refused.
    config.write_text(
        "</usr/share/alsa/alsa.conf>\n"
        f'pcm.mic48k {{ type file slave.pcm "null" file "/dev/null" infile "{raw}" format "raw" }}\n'
        'pcm.fixed48k { type hw card 0 }\n'
    )
    env = {**os.environ, "ALSA_CONFIG_PATH": str(config)}
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model), "--device", "mic48k",
                           "--duration", f"{signal_.size / RATE:.3f}"], env=env, capture_output=True, text=True,
                          timeout=120)
    if "unknown input device" in done.stderr:
        pytest.skip("this PortAudio build does not list plain ALSA file pcms")
    assert done.returncode == 0, done.stderr
    assert len(utterance_lines(done.stdout)) == len(SENTENCES)
