"""Another corpus as training material: shared emotions mapped onto the trained dataset's labels, added
utterances in every training part and never in a validation or test part, and refusals for what cannot work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge.errors import SerEdgeError
from ser_edge.models.feature_cache import FeatureSet, load_bundle, save_bundle
from ser_edge.models.mixed_corpus import added_utterances, label_map, parse, with_added
from ser_edge.models.train import TrainSettings, training_folds


def test_only_shared_emotions_are_mapped_onto_the_trained_labels():
    assert label_map("emodb", "ravdess") == {"anger": "angry", "disgust": "disgust", "fear": "fearful",
                                             "happiness": "happy", "sadness": "sad", "neutral": "neutral"}
    back = label_map("ravdess", "emodb")
    assert "calm" not in back and "surprised" not in back and back["angry"] == "anger" and len(back) == 6


@pytest.mark.parametrize("value, message", [("emodb", "wants NAME:DIR"), ("nope:/tmp", "unknown dataset"),
                                            ("ravdess:/tmp", "is the dataset being trained")])
def test_bad_corpus_arguments_are_refused(value, message):
    with pytest.raises(SerEdgeError, match=message):
        parse(value, "ravdess")


def feature_set(n: int, speakers: list[str], seed: int, label_names=("a", "b")) -> FeatureSet:
    rng = np.random.default_rng(seed)
    return FeatureSet(features=rng.normal(size=(n, 4, 3)).astype(np.float32), labels=np.arange(n) % 2,
                      speakers=np.array(speakers), paths=np.array([f"{seed}-{i}.wav" for i in range(n)]),
                      label_names=label_names)


@pytest.mark.parametrize("split, folds", [("random", 5), ("speaker", 3)])
def test_added_utterances_train_every_fold_and_are_never_validated_or_tested(split, folds):
    own = feature_set(30, [f"s{i % 6}" for i in range(30)], 0)
    extra = feature_set(8, [f"emodb:{i % 2}" for i in range(8)], 1)
    mixed = with_added(own, extra, "emodb")
    settings = TrainSettings(dataset="ravdess", folds=folds, split=split, add_corpus="emodb")
    added = set(range(30, 38))
    for fold in training_folds(mixed, settings):
        assert added <= set(fold.train.tolist())
        assert not added & set(fold.validation.tolist()) and not added & set(fold.test.tolist())
    # The trained dataset's folds are the ones it has without the added corpus.
    plain = training_folds(own, TrainSettings(dataset="ravdess", folds=folds, split=split))
    for with_extra, without in zip(training_folds(mixed, settings), plain):
        assert np.array_equal(with_extra.test, without.test)
        assert np.array_equal(with_extra.validation, without.validation)
    with pytest.raises(SerEdgeError, match="the run adds no corpus, the features hold emodb"):
        training_folds(mixed, TrainSettings(dataset="ravdess", folds=folds, split=split))


def test_features_made_unlike_the_trained_datasets_are_refused_and_a_bundle_keeps_the_mark(tmp_path):
    own = feature_set(6, ["a"] * 6, 0)
    with pytest.raises(SerEdgeError, match="not made like"):
        with_added(own, feature_set(4, ["x"] * 4, 1, label_names=("c", "d")), "emodb")
    mixed = with_added(own, feature_set(4, ["x"] * 4, 1), "emodb")
    save_bundle(mixed, tmp_path / "mixed.npz")
    again = load_bundle(tmp_path / "mixed.npz")
    assert (again.added, again.added_corpus) == (4, "emodb")
    assert np.array_equal(again.features, mixed.features) and list(again.speakers) == list(mixed.speakers)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path]:
    """A generated EMO-DB corpus, and the same files named as RAVDESS actors 01-04 say them."""
    from tests.generated_corpus import make_emodb_corpus

    emodb = make_emodb_corpus(tmp_path_factory.mktemp("emodb"), per_class=4)
    ravdess = tmp_path_factory.mktemp("ravdess")
    codes = {"W": "05", "E": "07", "A": "06", "F": "03", "T": "04", "N": "01"}  # no boredom in RAVDESS
    for k, path in enumerate(sorted(emodb.glob("*.wav"))):
        emotion = codes.get(path.stem[5])
        if emotion:
            actor = f"{k % 4 + 1:02d}"
            (ravdess / f"Actor_{actor}").mkdir(exist_ok=True)
            shutil.copy(path, ravdess / f"Actor_{actor}" / f"03-01-{emotion}-01-01-{k % 2 + 1:02d}-{actor}.wav")
    return emodb, ravdess


def test_added_corpus_speakers_are_prefixed_and_unshared_emotions_left_out(corpora):
    emodb, _ = corpora
    added = added_utterances("emodb", str(emodb), "ravdess")
    assert len(added) == 24  # 28 files, the 4 "boredom" ones have no RAVDESS counterpart
    assert {u.label for u in added} == {"angry", "disgust", "fearful", "happy", "sad", "neutral"}
    assert all(u.speaker.startswith("emodb:") for u in added)


@pytest.mark.slow
def test_a_fold_trained_with_an_added_corpus_is_tested_on_the_dataset_alone(tmp_path, corpora):
    emodb, ravdess = corpora
    out = tmp_path / "run"
    common = [sys.executable, "-m", "ser_edge.models.train_cli", "--dataset", "emodb", "--folds", "3", "--epochs", "1",
              "--no-final", "--threads", "1", "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run([*common, "--data-dir", str(emodb), "--out", str(out), "--only-fold", "0",
                           "--add-corpus", f"ravdess:{ravdess}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["settings"]["add_corpus"] == "ravdess"
    fold = json.loads((out / "fold_00.json").read_text())
    assert all(Path(p).parent == emodb for p in fold["test_paths"])
    assert fold["sizes"]["train"] + fold["sizes"]["validation"] + fold["sizes"]["test"] == 28 + 24
    # The same folder is never resumed without the corpus, and a bundle cannot be given one.
    refused = subprocess.run([*common, "--data-dir", str(emodb), "--out", str(out), "--only-fold", "1"],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "different settings" in refused.stderr
    bundle = subprocess.run([*common, "--out", str(tmp_path / "b"), "--bundle", str(tmp_path / "x.npz"),
                             "--add-corpus", f"ravdess:{ravdess}"], capture_output=True, text=True, timeout=600)
    assert bundle.returncode == 2 and "a bundle carries its added corpus" in bundle.stderr


@pytest.mark.slow
def test_a_bundle_written_with_an_added_corpus_trains_with_it(tmp_path, corpora):
    emodb, ravdess = corpora
    common = [sys.executable, "-m", "ser_edge.models.train_cli", "--dataset", "emodb", "--cache-dir", str(tmp_path)]
    written = subprocess.run([*common, "--data-dir", str(emodb), "--out", str(tmp_path / "unused"), "--write-bundle",
                              str(tmp_path / "mixed.npz"), "--add-corpus", f"ravdess:{ravdess}"],
                             capture_output=True, text=True, timeout=600)
    assert written.returncode == 0, written.stderr[-2000:]
    assert (load_bundle(tmp_path / "mixed.npz").added, load_bundle(tmp_path / "mixed.npz").added_corpus) == (24, "ravdess")
    out = tmp_path / "run"
    done = subprocess.run([*common, "--bundle", str(tmp_path / "mixed.npz"), "--out", str(out), "--folds", "3",
                           "--only-fold", "2", "--epochs", "1", "--no-final", "--threads", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["settings"]["add_corpus"] == "ravdess"
    assert all(Path(p).parent == emodb for p in json.loads((out / "fold_02.json").read_text())["test_paths"])
