"""Dataset readers (EMO-DB, RAVDESS, IEMOCAP): each lists (path, label, speaker).

TensorFlow-free so that the trainer, the exporter's calibration and
``ser-bench`` on a Pi share them. Speakers are returned so that
speaker-independent splits are possible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ser_edge.edge.errors import SerEdgeError

AUDIO_SUFFIXES = (".wav", ".flac")
# What libsndfile decodes, by the usual file names (MP3 needs libsndfile 1.1 or later).
ANY_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64")


@dataclass(frozen=True)
class Utterance:
    path: Path
    label: str
    speaker: str


# Label lists in the order the models are trained with (index = class id).
EMODB_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
RAVDESS_CODES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}
IEMOCAP_CODES = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"}

LABELS = {
    "emodb": tuple(EMODB_CODES.values()),
    "ravdess": tuple(RAVDESS_CODES.values()),
    "iemocap": ("angry", "happy", "neutral", "sad"),
}
DATASETS = tuple(LABELS)

IEMOCAP_HELP = (
    "IEMOCAP is licensed by USC SAIL and not redistributable: request it at "
    "https://sail.usc.edu/iemocap/ and pass --data-dir pointing at IEMOCAP_full_release "
    "(the folder holding Session1..Session5)"
)

_EMODB_NAME = re.compile(r"^(\d\d)[a-b]\d\d([WLEAFTN])[a-z]$")
_RAVDESS_NAME = re.compile(r"^03-01-(0[1-8])-0[12]-0[12]-0[12]-(\d\d)$")
_IEMOCAP_LINE = re.compile(r"^\[[\d.]+ - [\d.]+\]\t(Ses(\d\d)[FM]_\S+_([FM])\d+)\t(\w+)\t")


def select_listed(utterances: list[Utterance], names, data_dir: str | Path, what: str) -> list[Utterance]:
    """The utterances a model's sidecar lists (``names``: file names), matched by stem so that a
    sample-for-sample WAV copy of a FLAC corpus matches too; one line if any of them is missing."""
    wanted = {Path(str(name)).stem for name in names}
    found = [u for u in utterances if u.path.stem in wanted]
    missing = len(wanted) - len({u.path.stem for u in found})
    if missing:
        raise SerEdgeError(f"{data_dir}: {missing} of the model's {len(wanted)} {what} files are missing")
    return found


def read_dataset(name: str, data_dir: str | Path) -> list[Utterance]:
    """All utterances of dataset ``name`` under ``data_dir``, sorted by path."""
    readers = {"emodb": read_emodb, "ravdess": read_ravdess, "iemocap": read_iemocap}
    if name not in readers:
        raise SerEdgeError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        extra = f"; {IEMOCAP_HELP}" if name == "iemocap" else ""
        raise SerEdgeError(f"{data_dir}: not a directory{extra}")
    utterances = readers[name](data_dir)
    if not utterances:
        extra = f"; {IEMOCAP_HELP}" if name == "iemocap" else ""
        raise SerEdgeError(f"{data_dir}: no {name} utterances found{extra}")
    return utterances


def read_emodb(data_dir: Path) -> list[Utterance]:
    """EMO-DB: ``03a01Fa.wav``: speaker 03, text a01, emotion letter 6 (F), version a."""
    found = []
    for path in _audio_files(data_dir):
        match = _EMODB_NAME.match(path.stem)
        if match:
            found.append(Utterance(path, EMODB_CODES[match.group(2)], match.group(1)))
    return found


def read_ravdess(data_dir: Path) -> list[Utterance]:
    """RAVDESS speech: ``Actor_NN/03-01-EE-II-SS-RR-NN.wav`` (or .flac)."""
    found = []
    for path in _audio_files(data_dir):
        match = _RAVDESS_NAME.match(path.stem)
        if match:
            found.append(Utterance(path, RAVDESS_CODES[match.group(1)], match.group(2)))
    return found


def read_iemocap(data_dir: Path) -> list[Utterance]:
    """IEMOCAP 4-class protocol (excited merged into happy), from the release layout.

    Labels come from ``SessionN/dialog/EmoEvaluation/*.txt``; audio from
    ``SessionN/sentences/wav/<dialog>/<utterance>.wav``. The speaker is the
    session plus the utterance speaker's gender (10 speakers in all).
    """
    found = []
    for session in sorted(data_dir.glob("Session[1-5]")):
        for evaluation in sorted((session / "dialog" / "EmoEvaluation").glob("*.txt")):
            for line in evaluation.read_text(errors="replace").splitlines():
                match = _IEMOCAP_LINE.match(line)
                if not match or match.group(4) not in IEMOCAP_CODES:
                    continue
                name = match.group(1)
                dialog = name.rsplit("_", 1)[0]
                path = session / "sentences" / "wav" / dialog / f"{name}.wav"
                if path.is_file():
                    speaker = f"Ses{match.group(2)}{match.group(3)}"
                    found.append(Utterance(path, IEMOCAP_CODES[match.group(4)], speaker))
    return sorted(found, key=lambda u: u.path)


def read_audio_folder(data_dir: str | Path) -> list[Utterance]:
    """Every audio file under ``data_dir`` (any layout, no labels): what ``ser-bench --dataset folder`` times.

    Labels and speakers are empty: such a folder measures latency only.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SerEdgeError(f"{data_dir}: not a directory")
    found = [Utterance(path, "", "") for path in _audio_files(data_dir, ANY_AUDIO_SUFFIXES)]
    if not found:
        raise SerEdgeError(f"{data_dir}: no audio files found (looked for {', '.join(ANY_AUDIO_SUFFIXES)})")
    return found


def _audio_files(data_dir: Path, suffixes: tuple[str, ...] = AUDIO_SUFFIXES) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
