"""The noise benchmark (benchmarks/noise_bench.py) on real validation files through the shipped default model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile

from ser_edge.benchmarks import label_drift, noise_bench
from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.registry import resolve_model
from ser_edge.models.noise import coloured_noise, speech_rms
from tests.conftest import shared_dataset_dir


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier(resolve_model("ravdess"), threads=1)


@pytest.fixture(scope="module")
def items(classifier):
    utterances, _ = label_drift.validation_utterances(classifier, shared_dataset_dir("ravdess"))
    return label_drift.decode(utterances[:3], classifier.sample_rate)


@pytest.mark.datasets
def test_the_core_on_three_validation_files(classifier, items):
    run = noise_bench.measure(classifier, items, [20, 80, 20], "pink", seed=0)
    assert run.snrs == (math.inf, 80.0, 20.0)  # clean first, then cleanest to noisiest, no repeats
    clean = run.probabilities[math.inf]
    for item, probabilities in zip(items, clean):  # the clean row is the runtime's own answer on the file
        direct = classifier.classify(item.signal).probabilities
        np.testing.assert_array_equal(probabilities, [direct[name] for name in classifier.labels])
    # At 80 dB SNR the noise is below the 16-bit floor of the files: the labels cannot move, the noise did act.
    np.testing.assert_array_equal(run.probabilities[80.0].argmax(1), clean.argmax(1))
    assert not np.array_equal(run.probabilities[80.0], clean)
    # At 20 dB: exactly the mix the module says, classified.
    rng = np.random.default_rng([0, 1])
    noise = coloured_noise(len(items[1].signal), "pink", rng)
    mixed = (items[1].signal + noise * (speech_rms(items[1].signal, classifier.sample_rate) / 10.0)).astype(np.float32)
    direct = classifier.classify(np.clip(mixed, -1, 1)).probabilities
    np.testing.assert_allclose(run.probabilities[20.0][1], [direct[name] for name in classifier.labels], atol=1e-6)
    rows = noise_bench.summarize(run, uncertain_below=0.5)
    assert rows[0]["agreement"] == 1.0 and rows[0]["changed_files"] == 0 and rows[1]["agreement"] == 1.0
    truth = [item.label for item in items]
    for row, snr in zip(rows, run.snrs):
        predicted = [classifier.labels[i] for i in run.probabilities[snr].argmax(1)]
        assert row["war"] == pytest.approx(np.mean([p == t for p, t in zip(predicted, truth)]))
        assert sum(row["shares"].values()) == pytest.approx(1.0)
        assert row["uncertain"] == pytest.approx(np.mean(run.probabilities[snr].max(1) < 0.5))
    context = {"command": "test", "date": "today", "model_file": classifier.path.name, "model_sha256": "0" * 64,
               "variant": "dynamic", "files_text": "three", "noise": "pink", "seed": 0, "threshold": 0.5,
               "notes": []}
    page = noise_bench.markdown(run, rows, context)
    assert "| clean | " in page and "| 80 dB SNR | " in page and "| 20 dB SNR | " in page


@pytest.mark.datasets
def test_the_seed_and_the_colour_change_the_draw(classifier, items):
    first = noise_bench.measure(classifier, items[:1], [5], "white", seed=0)
    again = noise_bench.measure(classifier, items[:1], [5], "white", seed=0)
    other = noise_bench.measure(classifier, items[:1], [5], "white", seed=1)
    brown = noise_bench.measure(classifier, items[:1], [5], "brown", seed=0)
    np.testing.assert_array_equal(first.probabilities[5.0], again.probabilities[5.0])
    assert not np.array_equal(first.probabilities[5.0], other.probabilities[5.0])
    assert not np.array_equal(first.probabilities[5.0], brown.probabilities[5.0])


@pytest.mark.datasets
def test_the_command_writes_its_page(classifier, items, tmp_path, capsys):
    out = tmp_path / "noise.md"
    files = [str(item.path) for item in items[:2]]
    assert noise_bench.main(["--model", "ravdess", "--snrs", "10", "--noise", "brown", "--files", *files,
                             "--out", str(out)]) == 0
    page = out.read_text()
    assert capsys.readouterr().out == page + "\n"
    assert "with brown noise" in page and "2 files given with --files" in page and "| 10 dB SNR |" in page


def test_babble_is_a_seeded_stretch_of_voices_at_unit_rms():
    make = noise_bench.noise_maker("babble", 22050)
    first, again = (make(22050, np.random.default_rng([0, 3])) for _ in range(2))
    other = make(22050, np.random.default_rng([0, 4]))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.sqrt(np.mean(first ** 2)) == pytest.approx(1.0)
    # Speech, not Gaussian noise: far more of its 20 ms frames are quiet than loud (pauses between syllables).
    frames = np.sqrt(np.mean(first[: 22050 // 441 * 441].reshape(-1, 441) ** 2, axis=1))
    assert frames.max() / np.median(frames) > 1.5


def test_a_silent_file_is_refused_with_one_line(tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(22050, np.float32), 22050)
    assert noise_bench.main(["--model", "ravdess", "--files", str(silent)]) != 0
    err = capsys.readouterr().err.strip()
    assert "silent.wav: silent, so no SNR can be set against it" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("flags", [["--snrs", "nan"], ["--snrs", "100"], ["--noise", "violet"]])
def test_bad_arguments_are_refused(flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        noise_bench.main(["--model", "ravdess", *flags])
    assert exit_.value.code == 2



def test_the_files_own_floor_is_that_of_their_pauses():
    from ser_edge.benchmarks.label_drift import Item

    rate = 22050
    t = np.arange(rate) / rate
    speech = (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)  # RMS 0.0707: -23.0 dBFS
    quiet = [Item(None, None, np.concatenate([np.zeros(rate, np.float32), speech]))]
    assert noise_bench.own_floor(quiet, rate)["floor_dbfs"] == pytest.approx(-200.0)  # digital silence
    for hiss_dbfs, below in [(-70.0, 47.0), (-60.0, 34.3)]:
        hiss = (10 ** (hiss_dbfs / 20) * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)
        floor = noise_bench.own_floor([Item(None, None, np.concatenate([hiss, speech + hiss]))], rate)
        assert floor["floor_dbfs"] == pytest.approx(hiss_dbfs, abs=0.5)
        # 47 dB below the speech the pauses are left out of its level; within 40 dB they count towards it
        # (models/noise.py: half the frames at -60 dBFS pull the level from -23.0 to -26.0 dBFS).
        assert floor["below_speech_db"] == pytest.approx(below, abs=0.5)
