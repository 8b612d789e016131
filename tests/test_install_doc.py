"""systemd/INSTALL.md as a user follows it: no placeholders, and the by-hand command runs as written."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import RATE, SENTENCES, alsa_fake_microphone, portaudio_available, speech_with_pauses

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "systemd" / "INSTALL.md"
README = ROOT / "README.md"
INSTALLED_EXEC = "/opt/ser-edge/venv/bin/ser-edge"
INSTALLED_CONFIG = "/etc/ser-edge/ser-edge.toml"
STATE_DIR = Path("/var/lib/ser-edge")


def code_lines(text: str) -> list[str]:
    """Every line inside a fenced code block, and every inline `code` span outside them."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif fenced:
            lines.append(line.strip())
        else:
            lines += re.findall(r"`([^`]+)`", line)
    return lines


@pytest.mark.parametrize("document", [INSTALL, README], ids=lambda p: p.name)
def test_no_placeholder_in_any_command(document):
    placeholders = [line for line in code_lines(document.read_text())
                    if re.search(r"<[a-z_-]+>|(^|\s)\.\.\.(\s|$)", line) and "</" not in line]
    assert placeholders == [], f"{document.name}: commands with placeholders: {placeholders}"


def test_readme_carries_the_install_guide_verbatim():
    readme = README.read_text()
    assert readme[readme.index("## Installing on a Raspberry Pi"):] == INSTALL.read_text()


def by_hand_command() -> list[str]:
    """The one documented command that runs the daemon by hand with the installed configuration."""
    commands = [line for line in code_lines(INSTALL.read_text())
                if line.startswith(f"{INSTALLED_EXEC} listen --config {INSTALLED_CONFIG}")]
    assert len(commands) == 1, commands
    return shlex.split(commands[0])


@pytest.mark.skipif(not portaudio_available(), reason="PortAudio missing (apt install libportaudio2)")
def test_the_documented_by_hand_command_runs(tmp_path):
    """Run as written, with the file step 3 installs, by a user who cannot write the service's state folder."""
    if STATE_DIR.exists():
        pytest.skip(f"{STATE_DIR} exists here: the by-hand run must not be tested against a real service's state")
    signal_, _ = speech_with_pauses(tmp_path)
    env = alsa_fake_microphone(tmp_path, signal_)  # ALSA's default capture device plays the speech
    command = by_hand_command()
    command = [sys.executable, "-m", "ser_edge.edge.cli", *command[1:]]
    command[command.index(INSTALLED_CONFIG)] = str(ROOT / "systemd" / "ser-edge.toml")
    # The user stops it with Ctrl-C; the test stops it when the speech has been played.
    command += ["--duration", f"{signal_.size / RATE:.3f}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == len(SENTENCES)
    assert not STATE_DIR.exists()
    assert not list(tmp_path.glob("*.jsonl"))


def test_no_jsonl_overrides_the_config_file(tmp_path):
    """--no-jsonl wins over the config's jsonl; without it the unwritable path is one clear error."""
    from tests.fixtures import espeak, model_path

    wav = tmp_path / "speech.wav"
    espeak(SENTENCES[0], wav)
    config = tmp_path / "ser-edge.toml"
    unwritable = tmp_path / "no-such-folder" / "utterances.jsonl"
    config.write_text(f'jsonl = "{unwritable}"\n')
    base = [sys.executable, "-m", "ser_edge.edge.cli", "listen", "--config", str(config), "--model", str(model_path()),
            "--input", str(wav)]
    failed = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2
    (line,) = failed.stderr.splitlines()
    assert "cannot open for appending" in line and "--no-jsonl" in line
    done = subprocess.run([*base, "--no-jsonl"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert not unwritable.parent.exists()


def readme_block(heading: str) -> list[str]:
    """The lines of the first fenced block after ``heading`` in the README."""
    text = README.read_text()
    after = text[text.index(heading):]
    start = after.index("```sh\n") + len("```sh\n")
    return after[start:after.index("```", start)].strip().splitlines()


def test_the_first_run_without_a_microphone_works_as_written(tmp_path):
    """Each command of the README's block, in a fresh folder whose .venv/bin/ser-edge is this checkout's."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    commands = readme_block("### First run without a microphone")
    assert commands[0].startswith("sudo apt-get install") and "espeak-ng" in commands[0]
    launcher = tmp_path / ".venv" / "bin" / "ser-edge"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m ser_edge.edge.cli "$@"\n')
    launcher.chmod(0o755)
    outputs = []
    for command in commands[1:]:  # the package install is the user's, not the test's
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        assert "Traceback" not in done.stderr and "XNNPACK" not in done.stderr
        outputs.append(done.stdout)
    classify, listen, info = outputs[1:]
    assert "hello.wav" in classify
    # The same best guess from both paths. Not the same label: listen's segmenter ends the utterance at the
    # end of speech (2.64 of 2.93 s here), so its confidence differs and may fall under the "uncertain" line.
    assert json.loads(listen.splitlines()[0])["best_guess"] in classify.splitlines()[1].split()
    assert "labels" in info and "accuracy" in info
