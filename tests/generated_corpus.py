"""A tiny EMO-DB-layout corpus of real (synthetic) speech for smoke training and export tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ser_edge.edge.datasets import EMODB_CODES

TEXTS = ("The grass is green.", "Open the window please.", "We met at noon.", "It is raining again.")
# One espeak-ng voice and pitch per emotion letter, so there is something to learn.
VOICES = {"W": ("en", 20), "L": ("en+m3", 35), "E": ("en+f2", 50), "A": ("en+f4", 80), "F": ("en+m1", 65),
          "T": ("en+m7", 10), "N": ("en+f1", 45)}


def make_emodb_corpus(folder: Path, per_class: int = 4) -> Path:
    """``per_class`` WAVs per emotion named like EMO-DB (speakers 03, 08, 09, 10 in turn)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    folder.mkdir(parents=True, exist_ok=True)
    speakers = ("03", "08", "09", "10")
    for letter in EMODB_CODES:
        voice, pitch = VOICES[letter]
        for i in range(per_class):
            name = f"{speakers[i % len(speakers)]}a0{i + 1}{letter}a.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(140 + 10 * i), "-w",
                            str(folder / name), TEXTS[i % len(TEXTS)]], check=True, capture_output=True)
    return folder
