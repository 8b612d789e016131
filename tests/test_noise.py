"""Additive noise (models/noise.py): the colours have their slopes, the SNR is the one asked for against the
speech level, training's noisy copies are reproducible and never pink, and features, bundles and training
carry them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models.feature_cache import FeatureSet, load_bundle, save_bundle
from ser_edge.models.noise import (COLOURS, TRAINING_COLOURS, NoiseCopy, add_noise, check_snr_range,
                                   coloured_noise, speech_rms)

RATE = 22050
CONFIG = FeatureConfig()


def octave_slope_db(noise: np.ndarray) -> float:
    """Power change in dB per octave, fitted over octave bands from 100 Hz to 6.4 kHz."""
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequency = np.fft.rfftfreq(len(noise), 1 / RATE)
    edges = 100.0 * 2.0 ** np.arange(7)
    # Mean power density per band: a flat spectrum gives the same value in every band.
    bands = [power[(frequency >= lo) & (frequency < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:])]
    return float(np.polyfit(np.arange(len(bands)), 10 * np.log10(bands), 1)[0])


@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_each_colour_has_its_slope_and_unit_rms(colour, slope):
    noise = coloured_noise(4 * RATE, colour, np.random.default_rng(1))
    assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0, rel=1e-9)
    assert octave_slope_db(noise) == pytest.approx(slope, abs=0.5)


def test_an_unknown_colour_or_too_short_a_signal_is_refused():
    with pytest.raises(SerEdgeError, match="noise must be one of"):
        coloured_noise(100, "violet", np.random.default_rng(0))
    with pytest.raises(SerEdgeError, match="two samples"):
        coloured_noise(1, "white", np.random.default_rng(0))


def tone(seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_the_speech_level_leaves_the_pauses_out():
    """Half a second of tone between two of silence: the level is the tone's RMS, not the file's."""
    signal = np.concatenate([np.zeros(RATE, np.float32), tone(0.5, 0.2), np.zeros(RATE, np.float32)])
    assert speech_rms(signal, RATE) == pytest.approx(0.2 / np.sqrt(2), rel=0.01)
    whole = float(np.sqrt(np.mean(signal.astype(np.float64) ** 2)))
    assert whole < 0.5 * speech_rms(signal, RATE)
    assert speech_rms(np.zeros(RATE, np.float32), RATE) == 0.0
    assert speech_rms(np.zeros(0, np.float32), RATE) == 0.0


@pytest.mark.parametrize("snr", [30.0, 10.0, 0.0])
def test_the_noise_sits_the_asked_snr_below_the_speech(snr):
    signal = np.concatenate([np.zeros(RATE // 2, np.float32), tone(1.0, 0.1)])
    level = speech_rms(signal, RATE)
    noisy, clipped = add_noise(signal, coloured_noise(len(signal), "pink", np.random.default_rng(2)), snr, level)
    assert noisy.dtype == np.float32 and clipped == 0
    added = noisy.astype(np.float64) - signal
    assert 20 * np.log10(level / np.sqrt(np.mean(added ** 2))) == pytest.approx(snr, abs=0.01)


def test_a_sum_past_full_scale_is_clipped_and_counted():
    signal = tone(0.5, 0.99)
    noisy, clipped = add_noise(signal, coloured_noise(len(signal), "white", np.random.default_rng(3)), 0.0,
                               speech_rms(signal, RATE))
    assert clipped > 0 and np.max(np.abs(noisy)) == 1.0
    assert clipped == int(np.count_nonzero(np.abs(noisy) == 1.0))


def test_training_copies_are_reproducible_within_their_snrs_and_never_pink():
    signal = np.concatenate([np.zeros(RATE // 2, np.float32), tone(1.5, 0.1)])
    level = speech_rms(signal, RATE)
    copy = NoiseCopy(0, 5.0, 35.0)
    slopes, snrs = [], []
    for position in range(24):
        noisy = copy.apply(signal, RATE, position)
        np.testing.assert_array_equal(noisy, copy.apply(signal, RATE, position))  # same draw every time
        added = noisy.astype(np.float64) - signal
        snrs.append(20 * np.log10(level / np.sqrt(np.mean(added ** 2))))
        slopes.append(octave_slope_db(added))
    assert all(4.99 <= snr <= 35.01 for snr in snrs) and max(snrs) - min(snrs) > 15
    assert all(abs(s) < 1.0 or abs(s + 6.0) < 1.0 for s in slopes), slopes  # white or brown, never pink (-3)
    assert any(abs(s) < 1.0 for s in slopes) and any(abs(s + 6.0) < 1.0 for s in slopes)
    assert set(TRAINING_COLOURS) < set(COLOURS) and "pink" not in TRAINING_COLOURS
    other = NoiseCopy(1, 5.0, 35.0).apply(signal, RATE, 0)
    assert not np.array_equal(other, copy.apply(signal, RATE, 0))  # another copy, another draw
    assert copy.key != NoiseCopy(0, 5.0, 30.0).key != NoiseCopy(1, 5.0, 30.0).key


def test_silence_gets_no_noise():
    silence = np.zeros(RATE, np.float32)
    assert NoiseCopy(0, 5.0, 35.0).apply(silence, RATE, 0) is silence


@pytest.mark.parametrize("bad", [(10.0, 5.0), (-20.0, 5.0), (5.0, 80.0), (float("nan"), 5.0)])
def test_an_snr_range_out_of_order_or_bounds_is_refused(bad):
    with pytest.raises(SerEdgeError, match="--noise-snr"):
        check_snr_range(bad)
    assert check_snr_range((5, 35)) == (5.0, 35.0)


def feature_set(n: int = 12) -> FeatureSet:
    features = np.zeros((n, CONFIG.num_frames, CONFIG.n_mfcc), np.float32)
    return FeatureSet(features=features, labels=np.arange(n) % 3, speakers=np.zeros(n, int),
                      paths=np.array([f"{i}.wav" for i in range(n)]), label_names=("a", "b", "c"))


def test_copies_are_the_speeds_then_the_noise_and_a_bundle_keeps_them(tmp_path):
    base = feature_set()
    data = base.with_speeds((0.9,), (base.features + 1,)).with_noise((5.0, 35.0), (base.features + 2,
                                                                                   base.features + 3))
    assert [int(c[0, 0, 0]) for c in data.copies] == [1, 2, 3]
    save_bundle(data, tmp_path / "b.npz")
    again = load_bundle(tmp_path / "b.npz")
    assert again.noise_snr == (5.0, 35.0) and len(again.noise_features) == 2
    np.testing.assert_array_equal(again.noise_features[1], data.noise_features[1])
    assert again.without_noise().copies == again.speed_features
    save_bundle(base, tmp_path / "plain.npz")
    assert load_bundle(tmp_path / "plain.npz").noise_features == ()
    with pytest.raises(SerEdgeError, match="noisy features"):
        base.with_noise((5.0, 35.0), (np.zeros((3, 2, 2), np.float32),))


def test_training_refuses_features_without_the_runs_noise_copies():
    pytest.importorskip("keras")
    from ser_edge.models.train import TrainSettings, fit

    data = feature_set()
    settings = TrainSettings(dataset="emodb", noise_copies=2, noise_snr=(5.0, 35.0), epochs=1)
    assert settings.to_dict()["noise_copies"] == 2 and settings.to_dict()["noise_snr"] == [5.0, 35.0]
    plain = TrainSettings(dataset="emodb").to_dict()
    assert "noise_copies" not in plain and "noise_snr" not in plain  # earlier run files still match
    with pytest.raises(SerEdgeError, match="noisy copies"):
        fit(data, np.arange(8), np.arange(8, 12), settings, CONFIG, seed=0, tag="t")
    wrong_snr = data.with_noise((5.0, 30.0), (data.features, data.features))
    with pytest.raises(SerEdgeError, match="noisy copies"):
        fit(wrong_snr, np.arange(8), np.arange(8, 12), settings, CONFIG, seed=0, tag="t")


def test_noisy_features_are_those_of_the_noisy_signal(tmp_path):
    """compute() with a NoiseCopy gives the frontend's features of exactly NoiseCopy.apply's signal."""
    import soundfile

    from ser_edge.edge import audio
    from ser_edge.edge.datasets import Utterance
    from ser_edge.edge.features import utterance_features
    from ser_edge.models.feature_cache import compute

    paths = []
    for k in range(2):
        paths.append(tmp_path / f"{k}.wav")
        soundfile.write(paths[-1], np.concatenate([np.zeros(RATE // 4, np.float32), tone(1.0, 0.1 + 0.1 * k)]),
                        RATE, subtype="FLOAT")
    utterances = [Utterance(p, "a", "s") for p in paths]
    copy = NoiseCopy(0, 5.0, 35.0)
    noisy, clean = compute(utterances, CONFIG, noise=copy), compute(utterances, CONFIG)
    for position, path in enumerate(paths):
        expected = utterance_features(copy.apply(audio.load(path, RATE), RATE, position), CONFIG)
        np.testing.assert_array_equal(noisy[position], expected)
        assert not np.allclose(noisy[position], clean[position])
    assert dataclasses.is_dataclass(copy)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from tests.generated_corpus import make_emodb_corpus

    return make_emodb_corpus(tmp_path_factory.mktemp("emodb"), per_class=3)


def ser_train(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "ser_edge.models.train_cli", *args], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_ser_train_trains_with_noise_copies_and_its_bundle_must_match(tmp_path, corpus):
    import json

    bundle = tmp_path / "noise.npz"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    done = ser_train("--dataset", "emodb", "--data-dir", str(corpus), "--out", str(tmp_path / "unused"),
                     "--write-bundle", str(bundle), "--noise-perturb", "2", "--noise-snr", "10,20", *cache)
    assert done.returncode == 0, done.stderr[-2000:]
    written = load_bundle(bundle)
    assert written.noise_snr == (10.0, 20.0) and len(written.noise_features) == 2
    assert not np.allclose(written.noise_features[0], written.features)

    out = tmp_path / "run"
    done = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(out), "--no-cv", "--epochs", "1",
                     "--folds", "3", "--noise-perturb", "2", "--noise-snr", "10,20", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    settings = json.loads((out / "final.json").read_text())["settings"]
    assert settings["noise_copies"] == 2 and settings["noise_snr"] == [10.0, 20.0]

    plain = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(tmp_path / "plain"), "--no-cv",
                      "--epochs", "1", "--folds", "3", "--threads", "1")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "noise_copies" not in json.loads((tmp_path / "plain" / "final.json").read_text())["settings"]

    for flags, message in [(["--noise-perturb", "1", "--noise-snr", "10,20"], "same --noise-perturb"),
                           (["--noise-perturb", "2"], "same --noise-perturb"),
                           (["--noise-perturb", "9"], "0 to 8 copies"),
                           (["--noise-perturb", "2", "--noise-snr", "30,10"], "--noise-snr must be")]:
        refused = ser_train("--dataset", "emodb", "--bundle", str(bundle), "--out", str(tmp_path / "other"),
                            "--no-cv", "--epochs", "1", "--folds", "3", *flags)
        assert refused.returncode == 2 and message in refused.stderr, (flags, refused.stderr[-500:])
        assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "other").exists()
