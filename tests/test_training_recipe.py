"""The converging recipe's parts: standardised inputs in the feature contract, reproducible augmented
batches, a fold resumed mid-way that ends exactly like an uninterrupted one, and runs of another
reading or recipe never mixed into a folder."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ser_edge.benchmarks.host import cpu_model
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.features import model_inputs

CONFIG = FeatureConfig()
FRAMES, COEFFICIENTS = CONFIG.num_frames, CONFIG.n_mfcc


def test_standardisation_travels_in_the_feature_contract():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=COEFFICIENTS), rng.uniform(1, 50, COEFFICIENTS)
    config = CONFIG.standardized(mean, std)
    again = FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    # The MFCC matrices themselves do not change, so cached features stay valid.
    assert config.cache_key() == CONFIG.cache_key()
    matrix = rng.normal(size=(FRAMES, COEFFICIENTS)).astype(np.float32)
    forward = model_inputs(matrix, config)["forward"][0, :, :, 0]
    np.testing.assert_allclose(forward, (matrix - mean) / std, rtol=1e-5, atol=1e-5)
    raw = model_inputs(matrix, CONFIG)["forward"][0, :, :, 0]
    np.testing.assert_array_equal(raw, matrix)


def tones(seconds: float = 3.0) -> np.ndarray:
    """A voiced-like test signal: harmonics with a slow vibrato, some noise, silence at both ends."""
    rate = CONFIG.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.hanning(t.size)
    return (0.3 * voice + 0.01 * np.random.default_rng(3).normal(size=t.size)).astype(np.float32)


def test_utterance_mean_travels_and_makes_inputs_gain_independent():
    from ser_edge.edge.features import utterance_features

    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=COEFFICIENTS), rng.uniform(1, 50, COEFFICIENTS)
    config = dataclasses.replace(CONFIG.standardized(mean, std), utterance_mean=True)
    again = FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.utterance_mean
    assert config.cache_key() == CONFIG.cache_key()
    # Off, the key is not written at all: models and run files from before it read and compare as they did.
    assert "utterance_mean" not in CONFIG.standardized(mean, std).to_dict()
    with pytest.raises(SerEdgeError, match="utterance_mean"):
        FeatureConfig.from_dict({**CONFIG.to_dict(), "utterance_mean": "yes"})

    signal = tones()
    loud, quiet = utterance_features(signal), utterance_features(signal * 0.1)  # -20 dB
    expected = ((loud - loud.mean(axis=0)) - mean) / std
    forward = model_inputs(loud, config)["forward"][0, :, :, 0]
    np.testing.assert_allclose(forward, expected, rtol=1e-4, atol=1e-4)
    # A gain moves c0 only, by a constant: with the subtraction the inputs do not move.
    assert np.abs(quiet[:, 0].mean() - loud[:, 0].mean()) > 100
    np.testing.assert_allclose(model_inputs(quiet, config)["forward"], model_inputs(loud, config)["forward"],
                               atol=2e-3)
    without = CONFIG.standardized(mean, std)
    assert np.abs(model_inputs(quiet, without)["forward"] - model_inputs(loud, without)["forward"]).max() > 1


def small_feature_set(features: np.ndarray):
    """Twelve utterances in three classes, one speaker: enough for fold_features and a feed."""
    from ser_edge.models.feature_cache import FeatureSet

    return FeatureSet(features=features, labels=np.arange(len(features)) % 3, speakers=np.zeros(len(features), int),
                      paths=np.array([""] * len(features)), label_names=("a", "b", "c"))


def assert_batches_are_runtime_inputs(data, train: np.ndarray, config: FeatureConfig) -> None:
    """The unaugmented training batches hold exactly the inputs the runtime makes (normalised once, not twice)."""
    from ser_edge.models.feed import make_feed

    feed = make_feed(data.features[train], data.labels[train], 3, config, batch_size=len(train), seed=0,
                     augmented=False)
    x, _ = feed[0]
    in_order = data.features[train][feed._order()]
    np.testing.assert_allclose(x["forward"], model_inputs(in_order, config)["forward"], atol=1e-5)


def test_utterance_mean_statistics_come_after_the_subtraction_and_batches_apply_it_once():
    pytest.importorskip("keras")
    from ser_edge.models.train import TrainSettings, fold_features

    rng = np.random.default_rng(2)
    # Utterances with very different offsets (gains, microphones): raw statistics would be dominated by them.
    features = (rng.normal(size=(12, FRAMES, COEFFICIENTS)) * 3 + rng.normal(scale=40, size=(12, 1, COEFFICIENTS)))
    data = small_feature_set(features.astype(np.float32))
    features = data.features
    train = np.arange(8)
    settings = TrainSettings(dataset="ravdess", utterance_mean=True)
    config = fold_features(data, train, settings, CONFIG)
    assert config.utterance_mean
    assert "utterance_mean" in settings.to_dict() and "utterance_mean" not in TrainSettings(dataset="ravdess").to_dict()
    inputs = model_inputs(features[train], config)["forward"][..., 0].reshape(-1, COEFFICIENTS)
    np.testing.assert_allclose(inputs.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(inputs.std(axis=0), 1, atol=1e-3)
    assert_batches_are_runtime_inputs(data, train, config)


def test_level_reference_travels_and_cancels_gain_in_c0_only():
    from ser_edge.edge.features import utterance_features

    rng = np.random.default_rng(4)
    mean, std = rng.normal(size=COEFFICIENTS), rng.uniform(1, 50, COEFFICIENTS)
    plain = CONFIG.standardized(mean, std)
    config = dataclasses.replace(plain, level_reference=-250.0)
    assert FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.cache_key() == CONFIG.cache_key() and "level_reference" not in plain.to_dict()
    for bad in ("loud", float("nan"), True):
        with pytest.raises(SerEdgeError, match="level_reference"):
            FeatureConfig.from_dict({**CONFIG.to_dict(), "level_reference": bad})

    loud = utterance_features(tones())
    quiet = utterance_features(tones() * 10 ** (-20 / 20))
    kept = loud.copy()
    levelled = model_inputs(loud, config)["forward"][0, :, :, 0]
    np.testing.assert_array_equal(loud, kept)  # the caller's matrix is not touched
    # The loudest frame sits at the reference; the spectral shape (c1...) is as without it.
    assert levelled[:, 0].max() * std[0] + mean[0] == pytest.approx(-250.0, abs=1e-2)
    np.testing.assert_array_equal(levelled[:, 1:], model_inputs(loud, plain)["forward"][0, :, 1:, 0])
    np.testing.assert_allclose(model_inputs(quiet, config)["forward"], model_inputs(loud, config)["forward"],
                               atol=2e-3)
    assert np.abs(model_inputs(quiet, plain)["forward"] - model_inputs(loud, plain)["forward"]).max() > 1


def test_level_normalised_training_statistics_and_batches():
    pytest.importorskip("keras")
    from ser_edge.models.train import TrainSettings, fold_features

    rng = np.random.default_rng(5)
    features = rng.normal(size=(12, FRAMES, COEFFICIENTS)).astype(np.float32) * 3
    features[..., 0] += rng.normal(scale=80, size=(12, 1)).astype(np.float32) - 300  # levels far apart
    data = small_feature_set(features)
    train = np.arange(8)
    settings = TrainSettings(dataset="ravdess", level_normalise=True)
    config = fold_features(data, train, settings, CONFIG)
    assert config.level_reference == pytest.approx(features[train, :, 0].max(axis=1).mean(), abs=1e-3)
    assert "level_normalise" in settings.to_dict() and "level_normalise" not in TrainSettings(dataset="x").to_dict()
    inputs = model_inputs(features[train], config)["forward"][..., 0]
    np.testing.assert_allclose(inputs.reshape(-1, COEFFICIENTS).mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(inputs[:, :, 0].max(axis=1), inputs[0, :, 0].max(), atol=1e-4)  # one level
    assert_batches_are_runtime_inputs(data, train, config)


@pytest.mark.parametrize("change", [
    {"input_mean": [0.0] * 3, "input_std": [1.0] * 3},
    {"input_mean": [0.0] * COEFFICIENTS, "input_std": None},
    {"input_mean": [0.0] * COEFFICIENTS, "input_std": [0.0] * COEFFICIENTS},
    {"input_mean": [float("nan")] * COEFFICIENTS, "input_std": [1.0] * COEFFICIENTS},
])
def test_bad_standardisation_is_refused(change):
    with pytest.raises(SerEdgeError, match="input_"):
        FeatureConfig.from_dict({**CONFIG.to_dict(), **change})


def test_augmented_batches_depend_only_on_seed_and_epoch():
    pytest.importorskip("keras")
    from ser_edge.models.feed import make_feed

    rng = np.random.default_rng(1)
    features = rng.normal(size=(10, FRAMES, COEFFICIENTS)).astype(np.float32)
    labels = np.arange(10) % 3

    def batches(epoch):
        feed = make_feed(features, labels, 3, CONFIG, batch_size=4, seed=5, augmented=True)
        feed.start_epoch(epoch)
        return [feed[i] for i in range(len(feed))]

    first, again, other = batches(2), batches(2), batches(3)
    for (x, y), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x["forward"], x2["forward"])
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(first[0][0]["forward"], other[0][0]["forward"])
    # Every item once per epoch, and the backward input is the reversed (augmented) forward one.
    assert sorted(np.concatenate([y.argmax(1) for _, y in first]).tolist()) == sorted(labels.tolist())
    x, _ = first[0]
    np.testing.assert_array_equal(x["backward"], x["forward"][:, ::-1])
    # Masks and shifts changed something, but not everything.
    assert 0 < np.mean(x["forward"][..., 0] == 0) < 0.5


tensorflow = pytest.importorskip("tensorflow", reason="needs the train extra: pip install '.[train]'")


def ser_train(*args: str) -> subprocess.Popen:
    # SIGINT as a terminal's Ctrl-C delivers it: a test run started in the background of a script inherits
    # SIGINT ignored, and so would ser-train, which then never sees the interrupt the resume test sends.
    return subprocess.Popen([sys.executable, "-m", "ser_edge.models.train_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from tests.generated_corpus import make_emodb_corpus

    return make_emodb_corpus(tmp_path_factory.mktemp("emodb"), per_class=3)


@pytest.mark.slow
def test_a_resumed_fold_ends_exactly_like_an_uninterrupted_one(tmp_path, corpus):
    # Twelve epochs, a checkpoint every two: ten epochs of margin for the SIGINT to land mid-fold even when
    # a loaded machine deschedules this test for a while (with six, it once finished first).
    EPOCHS = 12
    common = ["--dataset", "emodb", "--data-dir", str(corpus), "--folds", "3", "--only-fold", "0", "--epochs", str(EPOCHS),
              "--checkpoint-every", "2", "--no-final", "--threads", "1", "--cache-dir", str(tmp_path / "cache")]
    straight = ser_train(*common, "--out", str(tmp_path / "straight"))
    _, error = straight.communicate(timeout=600)
    assert straight.returncode == 0, error[-2000:]

    interrupted = ser_train(*common, "--out", str(tmp_path / "resumed"))
    state = tmp_path / "resumed" / "fold_00.ckpt" / "state.json"
    deadline = time.monotonic() + 600
    while not state.exists() and interrupted.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    interrupted.send_signal(signal.SIGINT)
    _, error = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, error[-2000:]  # stopped mid-fold, not finished
    assert not (tmp_path / "resumed" / "fold_00.json").exists()
    done = json.loads(state.read_text())["epochs_done"]
    assert done in range(2, EPOCHS, 2)

    resumed = ser_train(*common, "--out", str(tmp_path / "resumed"))
    _, error = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, error[-2000:]
    assert f"resumed at epoch {done + 1}" in error
    assert not state.parent.exists()  # the checkpoint goes once the fold is written

    a, b = (json.loads((tmp_path / run / "fold_00.json").read_text()) for run in ("straight", "resumed"))
    assert len(b["history"]["loss"]) == EPOCHS
    np.testing.assert_allclose(a["history"]["loss"], b["history"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(a["history"]["val_loss"], b["history"]["val_loss"], rtol=1e-5)
    assert a["best_epoch"] == b["best_epoch"] and a["test_predicted"] == b["test_predicted"]
    # Which machine trained which epochs survives the resume (a fold may start on a GPU and end on a CPU).
    machine = a["machine"]
    assert a["history"]["machines"] == [[machine, 1, EPOCHS]]
    assert b["history"]["machines"] == [[machine, 1, done], [machine, done + 1, EPOCHS]]
    assert b["machine"] == f"{machine} (epochs 1-{done}); {machine} (epochs {done + 1}-{EPOCHS})"


@pytest.mark.slow
@pytest.mark.parametrize("other", [["--reading", "gate"], ["--recipe", "thesis"], ["--no-augment"]])
def test_another_reading_or_recipe_never_resumes_a_run(tmp_path, corpus, other):
    out = tmp_path / "run"
    out.mkdir()
    common = ["--dataset", "emodb", "--data-dir", str(corpus), "--folds", "3", "--epochs", "1", "--no-final",
              "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    first = ser_train(*common, "--only-fold", "0")
    _, error = first.communicate(timeout=600)
    assert first.returncode == 0, error[-2000:]
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["reading"] == "authors" and settings["recipe"] == "converging"
    refused = ser_train(*common, "--only-fold", "1", *other)
    _, error = refused.communicate(timeout=600)
    assert refused.returncode == 2 and "different settings" in error
    assert not (out / "fold_01.json").exists() and not (out / "fold_01.ckpt").exists()


@pytest.mark.slow
def test_a_level_normalised_model_carries_its_reference(tmp_path, corpus):
    from ser_edge.edge import audio
    from ser_edge.edge.features import utterance_features

    out = tmp_path / "run"
    done = ser_train("--dataset", "emodb", "--data-dir", str(corpus), "--out", str(out), "--no-cv", "--epochs", "1",
                     "--folds", "3", "--level-normalise", "--cache-dir", str(tmp_path / "cache"))
    _, error = done.communicate(timeout=600)
    assert done.returncode == 0, error[-2000:]
    sidecar = json.loads((out / "final.json").read_text())
    assert sidecar["settings"]["level_normalise"] is True
    expected = np.mean([utterance_features(audio.load(corpus / name, CONFIG.sample_rate))[:, 0].max()
                        for name in sidecar["training_files"]])
    assert sidecar["features"]["level_reference"] == pytest.approx(expected, abs=1e-3)


@pytest.mark.slow
def test_a_feature_bundle_trains_without_the_audio(tmp_path, corpus):
    bundle = tmp_path / "emodb.npz"
    write = ser_train("--dataset", "emodb", "--data-dir", str(corpus), "--out", str(tmp_path / "unused"),
                      "--write-bundle", str(bundle), "--cache-dir", str(tmp_path / "cache"))
    _, error = write.communicate(timeout=600)
    assert write.returncode == 0, error[-2000:]
    train = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(tmp_path / "run"), "--folds", "3",
                      "--only-fold", "2", "--epochs", "1", "--no-final", "--track-test")
    _, error = train.communicate(timeout=600)
    assert train.returncode == 0, error[-2000:]
    fold = json.loads((tmp_path / "run" / "fold_02.json").read_text())
    assert len(fold["history"]["test_accuracy_diagnostic"]) == 1
    assert set(fold["train_accuracy"]) == {"best_epoch", "last_epoch"}
    assert "tensorflow" in fold["machine"]
    assert f"on cpu: {cpu_model()}, " in fold["machine"] and f", {os.cpu_count()} cores" in fold["machine"]
    wrong = ser_train("--dataset", "ravdess", "--bundle", str(bundle), "--out", str(tmp_path / "run2"))
    _, error = wrong.communicate(timeout=600)
    assert wrong.returncode == 2 and "not ravdess's" in error


@pytest.mark.slow
def test_init_seed_trains_another_model_on_the_same_files(tmp_path, corpus):
    common = ["--dataset", "emodb", "--data-dir", str(corpus), "--no-cv", "--epochs", "1", "--folds", "3",
              "--threads", "1", "--cache-dir", str(tmp_path / "cache")]
    runs = {}
    for name, extra in (("plain", []), ("init7", ["--init-seed", "7"])):
        done = ser_train(*common, "--out", str(tmp_path / name), *extra)
        _, error = done.communicate(timeout=600)
        assert done.returncode == 0, error[-2000:]
        runs[name] = json.loads((tmp_path / name / "final.json").read_text())
    plain, other = runs["plain"], runs["init7"]
    assert other["validation_files"] == plain["validation_files"]  # --seed still draws the split
    assert other["training_files"] == plain["training_files"]
    assert other["settings"]["init_seed"] == 7 and "init_seed" not in plain["settings"]
    assert other["history"]["loss"] != plain["history"]["loss"]  # other weights, other batches


def test_init_seed_is_written_only_when_set_and_seeds_the_training_alone():
    from ser_edge.models.train import TrainSettings

    assert "init_seed" not in TrainSettings(dataset="emodb").to_dict()  # earlier run files still match
    assert TrainSettings(dataset="emodb", init_seed=0).to_dict()["init_seed"] == 0  # 0 is a seed, not "off"
    assert TrainSettings(dataset="emodb", seed=3).training_seed == 3
    assert TrainSettings(dataset="emodb", seed=3, init_seed=7).training_seed == 7
