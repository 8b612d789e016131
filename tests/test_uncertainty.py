"""The "uncertain" threshold: the rule's numerics, and that every shipped model carries what the rule gives on its validation files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.judge import model_threshold
from ser_edge.edge.model_file import read_metadata
from ser_edge.edge.registry import shipped_dir
from ser_edge.export.uncertainty import MIN_ACCEPTED, TARGET_ACCURACY, choose_threshold, default_sidecar, rule, \
    validation_files, validation_predictions
from tests.conftest import shared_dataset_dir


def test_the_lowest_threshold_that_reaches_the_target():
    confidences = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    choice = choose_threshold(confidences, correct, target=0.8, min_accepted=1)
    # >= 0.6 accepts five, four right (80 %); >= 0.5 accepts six, four right (67 %)
    assert (choice.threshold, choice.accepted, choice.accepted_accuracy) == (0.6, 5, pytest.approx(0.8))
    assert choice.reached and choice.overall_accuracy == pytest.approx(4 / 6)


def test_min_accepted_keeps_a_few_lucky_predictions_from_setting_it():
    confidences = np.array([0.99, 0.9, 0.8, 0.7])
    correct = np.array([1, 0, 1, 1], dtype=bool)
    assert choose_threshold(confidences, correct, target=1.0, min_accepted=1).threshold == 0.99
    with_three = choose_threshold(confidences, correct, target=0.75, min_accepted=3)
    assert (with_three.threshold, with_three.accepted) == (0.7, 4)  # 3 of 4: 75 %


def test_tied_confidences_are_accepted_together():
    confidences = np.array([0.9, 0.7, 0.7, 0.5])
    correct = np.array([1, 1, 0, 1], dtype=bool)
    # A threshold of 0.7 accepts both 0.7s (2 of 3 right); it cannot accept just the right one.
    choice = choose_threshold(confidences, correct, target=0.75, min_accepted=2)
    assert (choice.threshold, choice.accepted) == (0.5, 4)


def test_a_model_that_never_reaches_the_target_is_always_uncertain():
    choice = choose_threshold(np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0], dtype=bool), target=0.9, min_accepted=1)
    assert not choice.reached and choice.threshold == 1.0 and choice.accepted == 0
    assert choice.record(0.9, 1)["target_reached"] is False


def test_no_predictions_is_an_error():
    with pytest.raises(SerEdgeError, match="no validation predictions"):
        choose_threshold(np.array([]), np.array([], dtype=bool))


@pytest.mark.parametrize("bad", [{"threshold": 1.5}, {"threshold": "high"}, {"threshold": float("nan")}, ["x"]])
def test_a_damaged_threshold_in_the_metadata_is_a_clear_error(bad):
    with pytest.raises(SerEdgeError, match="uncertainty.threshold"):
        model_threshold({"uncertainty": bad})


@pytest.mark.datasets
@pytest.mark.parametrize("name", ["ravdess", "emodb"])
def test_each_shipped_variant_carries_the_threshold_the_rule_gives_on_its_validation_files(name):
    """Repeats ``python -m ser_edge.export.uncertainty`` (the step in models/export_shipped.sh) and compares."""
    data_dir = shared_dataset_dir(name)
    for model in sorted(shipped_dir().glob(f"{name}-*.tflite")):
        record = read_metadata(model).get("uncertainty")
        assert record is not None, f"{model.name} carries no uncertainty threshold"
        confidences, correct = validation_predictions(model, data_dir, validation_files(default_sidecar(model)))
        choice = choose_threshold(confidences, correct)
        # Dynamic-range kernels quantise activations at run time, differently on different CPUs: emodb-dynamic's
        # threshold came out 4.5e-5 apart on two x86 dev machines (2026-11-27). What the rule decides from it
        # (how many files it accepts, whether it reaches its target) must still match exactly.
        tolerance = 2e-4 if model.stem.endswith("-dynamic") else 1e-5
        assert record["threshold"] == pytest.approx(choice.threshold, abs=tolerance), model.name
        assert (record["accepted"], record["validation_files"], record["target_reached"]) == \
               (choice.accepted, len(confidences), choice.reached)
        assert (record["target_accuracy"], record["rule"]) == (TARGET_ACCURACY, rule())
        if choice.reached:
            assert choice.accepted_accuracy >= TARGET_ACCURACY and choice.accepted >= MIN_ACCEPTED


def test_the_command_rejects_a_missing_dataset_in_one_line(tmp_path):
    model = shipped_dir() / "ravdess-dynamic.tflite"
    done = subprocess.run([sys.executable, "-m", "ser_edge.export.uncertainty", str(model), "--data-dir",
                           str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("ser_edge.export.uncertainty: error:")


def test_the_readme_quotes_the_thresholds_the_shipped_files_carry():
    """The README's threshold table and its line about the default model go stale on every retraining: check them."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| (RAVDESS|EMO-DB) \| \**(\w+)\** [^|]*\| \**([0-9.]+)\**[^|]*\| (\d+) of (\d+) \|", readme, re.M)
    assert len(rows) == 8, rows  # two models, four variants each
    for dataset, variant, threshold, accepted, files in rows:
        name = {"RAVDESS": "ravdess", "EMO-DB": "emodb"}[dataset]
        record = read_metadata(shipped_dir() / f"{name}-{variant}.tflite")["uncertainty"]
        assert float(threshold) == pytest.approx(record["threshold"], abs=5e-4), (name, variant)
        assert (int(accepted), int(files)) == (record["accepted"], record["validation_files"]), (name, variant)
    default = read_metadata(shipped_dir() / "ravdess-dynamic.tflite")["uncertainty"]["threshold"]
    quoted = re.search(r"threshold \(([0-9.]+) for the\s+default model", readme)
    assert quoted and float(quoted.group(1)) == pytest.approx(default, abs=5e-3)
