"""Speed perturbation for training: the perturbed features are those of a truly faster utterance,
they are drawn per item reproducibly, they never change a run without them, and ser-train and its
bundles carry them."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.datasets import Utterance
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.features import utterance_features
from ser_edge.models.feature_cache import check_speeds, compute, load_bundle, load_features, save_bundle

CONFIG = FeatureConfig()
RATE = CONFIG.sample_rate


def chord(seconds: float, scale: float = 1.0) -> np.ndarray:
    """Three steady partials (220, 660, 1540 Hz times ``scale``) with a raised-cosine envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * f * scale * t) / k for k, f in enumerate((220, 660, 1540), 1))
    return (0.3 * voice * np.hanning(t.size)).astype(np.float32)


def test_a_speed_perturbed_file_has_the_features_of_a_faster_utterance(tmp_path):
    path = tmp_path / "chord.wav"
    soundfile.write(path, chord(2.0), RATE, subtype="FLOAT")
    (original,), (faster,) = (compute([Utterance(path, "a", "s")], CONFIG, speed) for speed in (1.0, 1.25))
    # 25 % faster: every partial 25 % higher, the utterance 25 % shorter.
    expected = utterance_features(chord(2.0 / 1.25, scale=1.25))
    voiced = expected[:, 0] > expected[:, 0].max() - 20  # frames within 20 (log units) of the loudest
    assert 0.6 * voiced.sum() < (original[:, 0] > original[:, 0].max() - 20).sum() / 1.25 < 1.4 * voiced.sum()
    error = np.abs(faster[voiced, 1:] - expected[voiced, 1:]).mean()
    unchanged = np.abs(original[voiced, 1:] - expected[voiced, 1:]).mean()
    assert error < 0.1 * unchanged, (error, unchanged)


def test_speeds_are_checked():
    assert check_speeds((0.9, 1.1)) == (0.9, 1.1)
    for bad in ((1.0,), (0.9, 0.9), (0.2,), (3.0,)):
        with pytest.raises(SerEdgeError, match="speeds"):
            check_speeds(bad)


def constant_set(n: int = 12):
    from ser_edge.models.feature_cache import FeatureSet

    features = np.zeros((n, CONFIG.num_frames, CONFIG.n_mfcc), np.float32)
    data = FeatureSet(features=features, labels=np.arange(n) % 3, speakers=np.zeros(n, int),
                      paths=np.array([f"{i}.wav" for i in range(n)]), label_names=("a", "b", "c"))
    # Version k of every utterance holds the constant k, so a batch shows which version each item is.
    return data.with_speeds((0.9, 1.1), (features + 1, features + 2))


def test_each_item_is_drawn_from_every_version_reproducibly():
    pytest.importorskip("keras")
    from ser_edge.models.feed import make_feed

    data = constant_set(60)
    feed = lambda: make_feed(data.features, data.labels, 3, CONFIG, batch_size=60, seed=7, augmented=False,
                             copies=data.speed_features)
    first, again = feed(), feed()
    drawn = first[0][0]["forward"][:, :, :, 0].mean(axis=(1, 2))
    assert set(np.round(drawn).astype(int)) == {0, 1, 2}
    assert all(np.bincount(np.round(drawn).astype(int)) > 10)  # uniform-ish over the three
    np.testing.assert_array_equal(again[0][0]["forward"], first[0][0]["forward"])
    first.on_epoch_end()
    later = first[0][0]["forward"][:, :, :, 0].mean(axis=(1, 2))
    assert not np.array_equal(later, drawn)


def test_a_run_without_speeds_sees_the_batches_it_saw_before():
    pytest.importorskip("keras")
    from ser_edge.models.feed import make_feed

    rng = np.random.default_rng(1)
    features = rng.normal(size=(12, CONFIG.num_frames, CONFIG.n_mfcc)).astype(np.float32)
    labels = np.arange(12) % 3
    plain = make_feed(features, labels, 3, CONFIG, batch_size=5, seed=3, augmented=True)
    # Copies identical to the original: whatever version is drawn, the batches must equal the plain run's.
    same = make_feed(features, labels, 3, CONFIG, batch_size=5, seed=3, augmented=True,
                     copies=(features.copy(),))
    for index in range(len(plain)):
        np.testing.assert_array_equal(plain[index][0]["forward"], same[index][0]["forward"])


def test_training_refuses_features_without_the_runs_speeds():
    pytest.importorskip("keras")
    from ser_edge.models.train import TrainSettings, fit

    data = constant_set()
    settings = TrainSettings(dataset="emodb", speed_perturb=(0.9,), epochs=1)
    assert TrainSettings(dataset="emodb", speed_perturb=(0.9, 1.1)).to_dict()["speed_perturb"] == [0.9, 1.1]
    assert "speed_perturb" not in TrainSettings(dataset="emodb").to_dict()  # earlier run files still match
    with pytest.raises(SerEdgeError, match="speeds"):
        fit(data, np.arange(8), np.arange(8, 12), settings, CONFIG, seed=0, tag="t")


def test_a_bundle_keeps_its_speeds(tmp_path):
    data = constant_set()
    save_bundle(data, tmp_path / "b.npz")
    again = load_bundle(tmp_path / "b.npz")
    assert again.speeds == (0.9, 1.1)
    np.testing.assert_array_equal(again.speed_features[1], data.speed_features[1])
    save_bundle(constant_set().with_speeds((), ()), tmp_path / "plain.npz")
    assert load_bundle(tmp_path / "plain.npz").speeds == ()


def test_a_float16_bundle_is_smaller_and_rounds_each_value_by_at_most_half_a_unit(tmp_path):
    # MFCC-like values: c0 in the hundreds below zero, the rest a few tens either side.
    rng = np.random.default_rng(0)
    shape = (12, CONFIG.num_frames, CONFIG.n_mfcc)
    features = (rng.normal(0, 20, shape) + np.r_[-600.0, np.zeros(shape[2] - 1)]).astype(np.float32)
    data = dataclasses.replace(constant_set(), features=features).with_speeds((0.9, 1.1), (features * 0.9,
                                                                                          features * 1.1))
    save_bundle(data, tmp_path / "full.npz")
    save_bundle(data, tmp_path / "half.npz", float16=True)
    half = load_bundle(tmp_path / "half.npz")
    assert half.features.dtype == np.float32 and half.speed_features[0].dtype == np.float32
    assert half.speeds == (0.9, 1.1)
    for got, want in [(half.features, data.features), *zip(half.speed_features, data.speed_features)]:
        assert not np.array_equal(got, want)  # it did round
        np.testing.assert_allclose(got, want, rtol=2.0 ** -11, atol=2.0 ** -24)
    assert (tmp_path / "half.npz").stat().st_size < 0.5 * (tmp_path / "full.npz").stat().st_size


def ser_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_edge.models.train_cli", *args], capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from tests.generated_corpus import make_emodb_corpus

    return make_emodb_corpus(tmp_path_factory.mktemp("emodb"), per_class=3)


@pytest.mark.slow
def test_ser_train_trains_with_speeds_and_its_bundle_must_match(tmp_path, corpus):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    bundle = tmp_path / "speeds.npz"
    done = ser_train("--dataset", "emodb", "--data-dir", str(corpus), "--out", str(tmp_path / "unused"),
                     "--write-bundle", str(bundle), "--speed-perturb", "0.9,1.1", *cache)
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_bundle(bundle).speeds == (0.9, 1.1)
    cached = load_features(*_listing(corpus), CONFIG, tmp_path / "cache", (0.9, 1.1))
    np.testing.assert_array_equal(cached.speed_features[0], load_bundle(bundle).speed_features[0])

    out = tmp_path / "run"
    done = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(out), "--no-cv", "--epochs", "1",
                     "--folds", "3", "--speed-perturb", "0.9,1.1", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "final.json").read_text())["settings"]["speed_perturb"] == [0.9, 1.1]

    # The same bundle serves a run without speed perturbation: it trains on the plain features alone.
    plain = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(tmp_path / "plain"), "--no-cv",
                      "--epochs", "1", "--folds", "3", "--threads", "1")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "speed_perturb" not in json.loads((tmp_path / "plain" / "final.json").read_text())["settings"]

    refused = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(tmp_path / "other"),
                        "--no-cv", "--epochs", "1", "--folds", "3", "--speed-perturb", "0.8")
    assert refused.returncode == 2 and "same --speed-perturb" in refused.stderr
    refused = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(tmp_path / "other"),
                        "--bundle-float16")
    assert refused.returncode == 2 and "give --write-bundle" in refused.stderr
    refused = ser_train("--dataset", "emodb", "--data-dir", str(corpus), "--out", str(tmp_path / "other"),
                        "--speed-perturb", "1.0", *cache)
    assert refused.returncode == 2 and "speeds must be" in refused.stderr
    assert not (tmp_path / "other").exists()


def _listing(corpus: Path):
    from ser_edge.edge.datasets import LABELS, read_dataset

    return read_dataset("emodb", corpus), LABELS["emodb"]
