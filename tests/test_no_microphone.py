"""A machine without a microphone: ``listen`` and ``devices`` say what to check and how to go on without one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures import model_path, portaudio_available

SER_EDGE = [sys.executable, "-m", "ser_edge.edge.cli"]
pytestmark = pytest.mark.skipif(not portaudio_available(), reason="PortAudio missing (apt install libportaudio2)")

CHECKS = ("arecord -l", "audio group", "device", "--input FILE", "--input -")


@pytest.fixture
def no_microphone(tmp_path) -> dict:
    """ALSA with no capture device: the default pcm points at a sound card that does not exist."""
    config = tmp_path / "asound.conf"
    config.write_text("</usr/share/alsa/alsa.conf>\npcm.!default { type hw card 9 }\n")
    env = {**os.environ, "ALSA_CONFIG_PATH": str(config)}
    probe = subprocess.run([sys.executable, "-c", "import sounddevice as sd; "
                            "print(sum(d['max_input_channels'] > 0 for d in sd.query_devices()))"],
                           env=env, capture_output=True, text=True, timeout=60)
    if probe.stdout.strip() != "0":
        pytest.skip("this machine has a real capture card, which ALSA lists whatever the configuration says")
    return env


def test_listen_without_a_microphone_says_what_to_check(no_microphone):
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model_path())], env=no_microphone,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("ser-edge: error: no microphone found")
    for check in CHECKS:
        assert check in line, check


def test_listen_with_a_configured_device_on_a_machine_without_any(no_microphone, tmp_path):
    config = tmp_path / "ser-edge.toml"
    config.write_text('device = "USB PnP Sound Device"\n')
    done = subprocess.run([*SER_EDGE, "listen", "--config", str(config), "--model", str(model_path())],
                          env=no_microphone, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "no microphone found" in line and "--input FILE" in line


def test_devices_without_a_microphone_lists_the_checks(no_microphone):
    done = subprocess.run([*SER_EDGE, "devices"], env=no_microphone, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("no audio input devices found")
    for check in ("arecord -l", "groups", "audio", "device", "--input recording.wav", "--input -"):
        assert check in done.stderr, check
    assert "Traceback" not in done.stderr
