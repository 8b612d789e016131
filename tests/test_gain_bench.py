"""The input-level benchmark (benchmarks/gain_bench.py) on real dataset files, and the gain path's features."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ser_edge.benchmarks import gain_bench, label_drift
from ser_edge.edge import audio, features
from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.registry import resolve_model
from ser_edge.export.uncertainty import default_sidecar, validation_files
from tests.conftest import shared_dataset_dir

GAINS = (0.0, -6.0, -20.0)


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier(resolve_model("ravdess"), threads=1)


def _validation_utterances(classifier: EmotionClassifier, count: int):
    """The first ``count`` of the model's validation files, found through the benchmark's own selection."""
    utterances, _ = label_drift.validation_utterances(classifier, shared_dataset_dir("ravdess"))
    return utterances[:count]


def test_apply_gain_scales_and_clips_only_above_full_scale():
    signal = np.array([0.0, 0.25, -0.6, 0.9], dtype=np.float32)
    same, clipped = gain_bench.apply_gain(signal, 0.0)
    assert same is signal and clipped == 0
    quieter, clipped = gain_bench.apply_gain(signal, -20.0)
    np.testing.assert_allclose(quieter, signal / 10, rtol=1e-6)
    assert clipped == 0 and quieter.dtype == np.float32
    louder, clipped = gain_bench.apply_gain(signal, 6.0)  # x 1.995: 0.9 and -0.6 go past full scale
    assert clipped == 2
    np.testing.assert_allclose(louder, [0.0, 0.25 * 10 ** 0.3, -1.0, 1.0], rtol=1e-6)
    assert signal[3] == np.float32(0.9)  # the decoded signal itself is untouched


def test_zero_db_is_added_as_the_reference():
    assert gain_bench.gains_with_reference([-6, -20, -6]) == (0.0, -6.0, -20.0)
    assert gain_bench.gains_with_reference([-6, 0, 6]) == (-6.0, 0.0, 6.0)


@pytest.mark.datasets
def test_the_core_on_three_validation_files(classifier):
    utterances = _validation_utterances(classifier, 3)
    wanted = {name.rsplit(".", 1)[0] for name in validation_files(default_sidecar(classifier.path))}
    assert len(utterances) == 3 and all(u.path.stem in wanted for u in utterances)
    items = label_drift.decode(utterances, classifier.sample_rate)
    run = gain_bench.measure(classifier, items, [-6, -20])  # 0 dB is added first
    assert run.gains == GAINS
    rows = gain_bench.summarize(run, uncertain_below=0.5)
    assert [row["gain_db"] for row in rows] == list(GAINS)
    assert all(row["files"] == 3 and row["labelled"] == 3 for row in rows)
    reference = rows[0]
    assert reference["agreement"] == 1.0 and reference["changed_files"] == 0
    assert reference["mean_max_abs_change"] == 0.0
    # 0 dB is the runtime's own answer on the decoded file, probability for probability.
    for item, probabilities in zip(items, run.probabilities[0.0]):
        direct = classifier.classify(audio.load(item.path, classifier.sample_rate)).probabilities
        np.testing.assert_array_equal(probabilities, [direct[name] for name in classifier.labels])
    truth = [item.label for item in items]
    assert reference["war"] == pytest.approx(np.mean([p == t for p, t in zip(run.predicted(0.0), truth)]))
    for row in rows:
        assert sum(row["shares"].values()) == pytest.approx(1.0)
        assert row["shares"][row["most_predicted"]] == row["most_predicted_share"] == max(row["shares"].values())
        assert row["clipped_samples"] is None  # no positive gain asked for
        agreement = np.mean(run.probabilities[row["gain_db"]].argmax(1) == run.probabilities[0.0].argmax(1))
        assert row["agreement"] == pytest.approx(agreement)
    context = {"command": "test", "date": "today", "model_file": classifier.path.name, "model_sha256": "0" * 64,
               "variant": "dynamic", "files_text": "three", "threshold": 0.5, "notes": []}
    page = gain_bench.markdown(run, rows, context)
    for title in ("| gain | factor |", "| gain | label | share of the files |", "| gain | neutral |"):
        gains = [row[0] for row in _table(page, title) if row[0] != "true labels"]
        assert gains == ["0 dB", "-6 dB", "-20 dB"], title


def _table(page: str, header: str) -> list[list[str]]:
    """The cells of each row of the Markdown table whose header line starts with ``header``."""
    lines = page[page.index(header):].split("\n\n")[0].splitlines()[2:]  # under the header and the rule
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]


@pytest.mark.datasets
def test_the_command_on_two_files_with_a_positive_gain(classifier, tmp_path, capsys):
    paths = [u.path for u in _validation_utterances(classifier, 2)]
    out = tmp_path / "gain.md"
    assert gain_bench.main(["--model", "ravdess", "--gains", "-6", "12", "--files", *map(str, paths),
                            "--out", str(out)]) == 0
    page = out.read_text()
    assert capsys.readouterr().out == page + "\n"  # printed as written
    assert "2 files given with --files (2 its validation split" in page
    rows = _table(page, "| gain | factor |")
    assert [row[0] for row in rows] == ["0 dB", "-6 dB", "+12 dB"]
    assert [row[-1] for row in rows[:2]] == ["-", "-"]
    assert rows[2][-1].endswith("files)")  # a clipping count at the positive gain


def _inputs(signal: np.ndarray, config: FeatureConfig) -> dict[str, np.ndarray]:
    return features.model_inputs(features.utterance_features(signal, config), config)


@pytest.mark.datasets
@pytest.mark.parametrize("base", ["default", "shipped"])
def test_utterance_mean_makes_the_inputs_level_independent(classifier, base):
    """Cepstral mean subtraction: -20 dB moves only c0 by a constant, which the utterance mean removes."""
    config = FeatureConfig() if base == "default" else classifier.features  # shipped: standardised as well
    signal = audio.load(shared_dataset_dir("ravdess") / "Actor_01" / "03-01-01-01-01-01-01.flac", config.sample_rate)
    quieter, _ = gain_bench.apply_gain(signal, -20.0)
    # The level normalisation (level_reference, on in the shipped models) would cancel the gain by itself: off here.
    with_mean = dataclasses.replace(config, utterance_mean=True, level_reference=None)
    without = dataclasses.replace(config, utterance_mean=False, level_reference=None)
    loud, quiet = _inputs(signal, with_mean), _inputs(quieter, with_mean)
    assert loud.keys() == quiet.keys() == set(config.input_names)
    for name in loud:
        np.testing.assert_allclose(quiet[name], loud[name], rtol=0, atol=2e-3, err_msg=name)
    loud, quiet = _inputs(signal, without), _inputs(quieter, without)
    for name in loud:
        # Without it, c0 moves with the level (by 20 dB x sqrt(n_mels) raw, before any standardisation).
        assert np.abs(quiet[name] - loud[name]).max() > 0.5, name
