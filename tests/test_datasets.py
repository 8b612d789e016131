"""Dataset readers on small generated trees, and on the shared corpora when present."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ser_edge.edge import datasets
from ser_edge.edge.datasets import Utterance, read_dataset
from ser_edge.edge.errors import SerEdgeError


def touch(root: Path, relative: str) -> Path:
    """The readers only list names; a few bytes stand in for the audio."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


# --- EMO-DB ------------------------------------------------------------------------

EMODB_LETTERS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}


def test_emodb_names(tmp_path):
    wanted = {
        "03a01Fa.wav": ("happiness", "03"),
        "08b02Wc.flac": ("anger", "08"),
        "10a05Lb.wav": ("boredom", "10"),
        "11b09Ea.WAV": ("disgust", "11"),  # suffixes are case-insensitive
        "12a07Ad.wav": ("fear", "12"),
        "13b03Tc.flac": ("sadness", "13"),
        "16b10Nb.wav": ("neutral", "16"),
        "sub/dir/09a04Wa.wav": ("anger", "09"),  # found recursively
    }
    ignored = [
        "03a01Xa.wav",  # unknown emotion letter
        "03a01fa.wav",  # lower-case emotion letter
        "03c01Fa.wav",  # text must be a.. or b..
        "3a01Fa.wav",  # one-digit speaker
        "03a01Fa.txt",  # not audio
        "03a01Fa.mp3",  # not a suffix the readers take
        "03a01Fab.wav",  # extra character
        "silence.wav",
    ]
    for name in [*wanted, *ignored]:
        touch(tmp_path, name)
    (tmp_path / "04a01Fa.wav").mkdir()  # a folder named like audio is not a file

    found = read_dataset("emodb", tmp_path)
    assert all(isinstance(u, Utterance) for u in found)
    got = {u.path.relative_to(tmp_path).as_posix(): (u.label, u.speaker) for u in found}
    assert got == wanted
    assert [u.path for u in found] == sorted(u.path for u in found)


@pytest.mark.parametrize("letter,label", sorted(EMODB_LETTERS.items()))
def test_emodb_letter_six_is_the_emotion(tmp_path, letter, label):
    touch(tmp_path, f"14a02{letter}b.wav")
    (utterance,) = datasets.read_emodb(tmp_path)
    assert utterance == Utterance(tmp_path / f"14a02{letter}b.wav", label, "14")


def test_emodb_label_order():
    assert datasets.LABELS["emodb"] == ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")


# --- RAVDESS -----------------------------------------------------------------------

RAVDESS_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def test_ravdess_names(tmp_path):
    wanted = {
        "Actor_01/03-01-01-01-01-01-01.wav": ("neutral", "01"),
        "Actor_02/03-01-02-02-02-02-02.flac": ("calm", "02"),
        "Actor_05/03-01-03-01-02-01-05.wav": ("happy", "05"),
        "Actor_12/03-01-04-02-01-02-12.flac": ("sad", "12"),
        "Actor_17/03-01-05-01-01-01-17.wav": ("angry", "17"),
        "Actor_20/03-01-06-02-02-02-20.flac": ("fearful", "20"),
        "Actor_23/03-01-07-01-01-01-23.wav": ("disgust", "23"),
        "Actor_24/03-01-08-02-02-01-24.FLAC": ("surprised", "24"),
    }
    ignored = [
        "Actor_01/03-02-01-01-01-01-01.wav",  # vocal channel 02: song
        "Actor_01/01-01-01-01-01-01-01.wav",  # modality 01: audio-video
        "Actor_01/02-01-01-01-01-01-01.wav",  # modality 02: video only
        "Actor_01/03-01-09-01-01-01-01.wav",  # no emotion 09
        "Actor_01/03-01-00-01-01-01-01.wav",
        "Actor_01/03-01-01-03-01-01-01.wav",  # intensity 03
        "Actor_01/03-01-01-01-03-01-01.wav",  # statement 03
        "Actor_01/03-01-01-01-01-03-01.wav",  # repetition 03
        "Actor_01/03-01-01-01-01-01-1.wav",  # one-digit actor
        "Actor_01/03-01-01-01-01-01-01-01.wav",  # extra field
        "Actor_01/03-01-01-01-01-01-01.mp4",
        "Actor_01/03-01-01-01-01-01-01.txt",
        "Actor_01/notes.wav",
    ]
    for name in [*wanted, *ignored]:
        touch(tmp_path, name)
    found = read_dataset("ravdess", tmp_path)
    got = {u.path.relative_to(tmp_path).as_posix(): (u.label, u.speaker) for u in found}
    assert got == wanted


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
@pytest.mark.parametrize("code", range(1, 9))
def test_ravdess_emotion_codes(tmp_path, suffix, code):
    touch(tmp_path, f"Actor_07/03-01-{code:02d}-01-02-01-07{suffix}")
    (utterance,) = datasets.read_ravdess(tmp_path)
    assert utterance.label == RAVDESS_EMOTIONS[code - 1]
    assert utterance.speaker == "07"
    assert utterance.path.suffix == suffix


# --- IEMOCAP -----------------------------------------------------------------------

EVALUATION_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def iemocap_tree(root: Path, sessions: dict[int, list[tuple[str, str]]], missing_wavs=()) -> Path:
    """IEMOCAP_full_release layout: SessionN/dialog/EmoEvaluation/<dialog>.txt and
    SessionN/sentences/wav/<dialog>/<utterance>.wav, with evaluator lines the reader
    must skip."""
    release = root / "IEMOCAP_full_release"
    for session, utterances in sessions.items():
        dialogs: dict[str, list[str]] = {}
        for start, (name, code) in enumerate(utterances):
            dialog = name.rsplit("_", 1)[0]
            dialogs.setdefault(dialog, []).append(
                f"[{6.2901 + start:.4f} - {8.2357 + start:.4f}]\t{name}\t{code}\t[2.5000, 2.5000, 2.5000]\n"
                "C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n"
            )
            if name not in missing_wavs:
                touch(release, f"Session{session}/sentences/wav/{dialog}/{name}.wav")
        for dialog, blocks in dialogs.items():
            evaluation = release / f"Session{session}/dialog/EmoEvaluation/{dialog}.txt"
            evaluation.parent.mkdir(parents=True, exist_ok=True)
            evaluation.write_text(EVALUATION_HEADER + "".join(blocks))
        # Folders and files the reader must not read as evaluations.
        (release / f"Session{session}/dialog/EmoEvaluation/Categorical").mkdir(exist_ok=True)
    return release


def test_iemocap_four_classes(tmp_path):
    release = iemocap_tree(
        tmp_path,
        {
            1: [
                ("Ses01F_impro01_F000", "neu"),
                ("Ses01F_impro01_M001", "ang"),
                ("Ses01F_impro01_F002", "fru"),  # skipped: not one of the 4 classes
                ("Ses01F_impro01_M003", "xxx"),  # skipped: no agreement
                ("Ses01M_script01_1_F004", "exc"),  # excited merged into happy
                ("Ses01M_script01_1_M005", "sur"),  # skipped
                ("Ses01M_script01_1_M006", "sad"),
            ],
            3: [
                ("Ses03M_impro05a_F010", "hap"),
                ("Ses03M_impro05a_M011", "oth"),
                ("Ses03M_impro05a_M012", "dis"),
                ("Ses03M_impro05a_M013", "fea"),
            ],
            5: [("Ses05F_script02_2_M020", "ang"), ("Ses05F_script02_2_F021", "exc")],
        },
    )
    found = read_dataset("iemocap", release)
    got = {u.path.stem: (u.label, u.speaker) for u in found}
    assert got == {
        "Ses01F_impro01_F000": ("neutral", "Ses01F"),
        "Ses01F_impro01_M001": ("angry", "Ses01M"),  # speaker: the last token's letter
        "Ses01M_script01_1_F004": ("happy", "Ses01F"),
        "Ses01M_script01_1_M006": ("sad", "Ses01M"),
        "Ses03M_impro05a_F010": ("happy", "Ses03F"),
        "Ses05F_script02_2_M020": ("angry", "Ses05M"),
        "Ses05F_script02_2_F021": ("happy", "Ses05F"),
    }
    for u in found:
        session = f"Session{int(u.path.stem[3:5])}"
        dialog = u.path.stem.rsplit("_", 1)[0]
        assert u.path == release / session / "sentences" / "wav" / dialog / f"{u.path.stem}.wav"
    assert [u.path for u in found] == sorted(u.path for u in found)
    assert set(u.label for u in found) <= set(datasets.LABELS["iemocap"])
    assert datasets.LABELS["iemocap"] == ("angry", "happy", "neutral", "sad")


def test_iemocap_skips_labels_without_audio_and_other_sessions(tmp_path):
    release = iemocap_tree(
        tmp_path,
        {2: [("Ses02F_impro02_F000", "neu"), ("Ses02F_impro02_M001", "sad")]},
        missing_wavs={"Ses02F_impro02_M001"},
    )
    # Session6 is not part of the release layout; its files are ignored.
    touch(release, "Session6/sentences/wav/Ses06F_impro01/Ses06F_impro01_F000.wav")
    evaluation = release / "Session6/dialog/EmoEvaluation/Ses06F_impro01.txt"
    evaluation.parent.mkdir(parents=True)
    evaluation.write_text("[1.0000 - 2.0000]\tSes06F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n")
    found = read_dataset("iemocap", release)
    assert [(u.path.stem, u.label, u.speaker) for u in found] == [("Ses02F_impro02_F000", "neutral", "Ses02F")]


def test_iemocap_without_sessions_mentions_the_licence(tmp_path):
    with pytest.raises(SerEdgeError, match="USC SAIL") as info:
        read_dataset("iemocap", tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(SerEdgeError, match="USC SAIL"):
        read_dataset("iemocap", tmp_path / "IEMOCAP_full_release")


# --- read_dataset errors -----------------------------------------------------------


@pytest.mark.parametrize("name", ["emodb", "ravdess", "iemocap"])
def test_empty_folder(tmp_path, name):
    touch(tmp_path, "README.txt")
    with pytest.raises(SerEdgeError, match=f"no {name} utterances found") as info:
        read_dataset(name, tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["emodb", "ravdess", "iemocap"])
def test_missing_folder(tmp_path, name):
    with pytest.raises(SerEdgeError, match="not a directory") as info:
        read_dataset(name, tmp_path / "absent")
    assert "\n" not in str(info.value)
    assert ("USC SAIL" in str(info.value)) == (name == "iemocap")


def test_a_file_is_not_a_folder(tmp_path):
    path = touch(tmp_path, "03a01Fa.wav")
    with pytest.raises(SerEdgeError, match="not a directory"):
        read_dataset("emodb", path)


@pytest.mark.parametrize("name", ["tess", "EMODB", "", "crema-d"])
def test_unknown_dataset(tmp_path, name):
    touch(tmp_path, "03a01Fa.wav")
    with pytest.raises(SerEdgeError, match="unknown dataset") as info:
        read_dataset(name, tmp_path)
    assert "emodb, ravdess, iemocap" in str(info.value)


# --- the shared corpora ------------------------------------------------------------


@pytest.mark.datasets
def test_shared_emodb(shared_datasets):
    folder = shared_datasets / "emodb"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    found = read_dataset("emodb", folder)
    assert len(found) == 535
    speakers = Counter(u.speaker for u in found)
    assert sorted(speakers) == ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    assert Counter(u.label for u in found) == {
        "anger": 127,
        "boredom": 81,
        "disgust": 46,
        "fear": 69,
        "happiness": 71,
        "neutral": 79,
        "sadness": 62,
    }
    assert all(u.path.suffix == ".flac" for u in found)


@pytest.mark.datasets
def test_shared_ravdess(shared_datasets):
    folder = shared_datasets / "ravdess"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    found = read_dataset("ravdess", folder)
    assert len(found) == 1200
    speakers = Counter(u.speaker for u in found)
    assert sorted(speakers) == [f"{n:02d}" for n in range(1, 21)]
    assert set(speakers.values()) == {60}
    labels = Counter(u.label for u in found)
    assert labels == {label: (80 if label == "neutral" else 160) for label in RAVDESS_EMOTIONS}
    for u in found:  # the folder agrees with the actor field
        assert u.path.parent.name == f"Actor_{u.speaker}"
