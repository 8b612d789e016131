"""``classify`` on files longer than the model's window: utterance by utterance, as ``listen --input`` does."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from ser_edge.edge import audio
from ser_edge.edge.classifier import EmotionClassifier
from tests.fixtures import RATE, SENTENCES, espeak, model_path

SER_EDGE = [sys.executable, "-m", "ser_edge.edge.cli"]


@pytest.fixture(scope="module")
def model():
    return model_path("ravdess")


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """Two minutes: sentences with pauses, and runs of speech longer than one window (no pause long enough)."""
    folder = tmp_path_factory.mktemp("long")
    voices = [espeak(text, folder / f"s{i}.wav") for i, text in enumerate(SENTENCES)]
    pause, breath = np.zeros(2 * RATE, np.float32), np.zeros(int(0.2 * RATE), np.float32)
    block = [voices[0], pause, voices[1], breath, voices[2], breath, voices[0], pause]
    parts = []
    while sum(p.size for p in parts) < 120 * RATE:
        parts += block
    path = folder / "two-minutes.wav"
    soundfile.write(path, np.concatenate(parts), RATE, subtype="PCM_16")
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SER_EDGE, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_long_file_is_classified_utterance_by_utterance_like_listen(long_file, model):
    classified = run("classify", "--json", "--model", str(model), str(long_file))
    listened = run("listen", "--model", str(model), "--input", str(long_file))
    assert classified.returncode == 0 and listened.returncode == 0, classified.stderr + listened.stderr
    every = [json.loads(line) for line in classified.stdout.splitlines()]
    rows = [row for row in every if row["label"] is not None]  # listen writes no line for a non-speech segment
    heard = [json.loads(line) for line in listened.stdout.splitlines()]
    assert len(rows) > 10 and len(rows) == len(heard)
    for row, line in zip(rows, heard):
        assert (row["start_s"], row["duration_s"], row["label"]) == (line["start_s"], line["duration_s"], line["label"])
        for name, p in line["probabilities"].items():
            assert row["probabilities"][name] == pytest.approx(p, abs=1e-4)
    window_s = EmotionClassifier(model).features.num_samples / RATE
    assert any(row["duration_s"] == pytest.approx(window_s, abs=1e-3) for row in rows)  # long speech: windows
    assert rows[-1]["start_s"] > 100  # the whole file, not its middle 4.5 s
    assert [row["utterance"] for row in every] == list(range(1, len(every) + 1))
    assert all(row["utterances"] == len(every) and "longer than the model's" in row["note"] for row in every)


def test_the_table_says_how_a_long_file_was_split(long_file, model):
    done = run("classify", "--model", str(model), str(long_file))
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[-1].startswith(f"{long_file}: ") and "longer than the model's" in lines[-1]
    assert "utterance(s), each checked for speech and classified one by one" in lines[-1]
    assert len(lines) > 12  # header, a row per utterance, the note


def test_a_short_file_is_still_one_whole_file_result(tmp_path, model):
    wav = tmp_path / "short.wav"
    espeak(SENTENCES[1], wav)
    done = run("classify", "--json", "--model", str(model), str(wav))
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    expected = EmotionClassifier(model).classify(audio.load(wav, RATE))
    assert row["best_guess"] == expected.label and "note" not in row
    assert row["start_s"] == 0 and row["duration_s"] == pytest.approx(audio.load(wav, RATE).size / RATE, abs=1e-3)


def test_a_long_silent_file_says_nothing_was_classified(tmp_path, model):
    wav = tmp_path / "silence.wav"
    soundfile.write(wav, np.zeros(10 * RATE, np.float32), RATE)
    done = run("classify", "--json", "--model", str(model), str(wav))
    assert done.returncode == 0
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["label"] is None and row["utterances"] == 0 and "no speech" in row["note"]
