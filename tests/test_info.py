"""``ser-edge info``: a short summary from the file's own metadata (and its parity report); JSON behind --json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ser_edge.edge import model_summary
from ser_edge.edge.model_file import read_metadata
from ser_edge.edge.registry import VARIANTS, resolve_model, shipped_dir

SER_EDGE = [sys.executable, "-m", "ser_edge.edge.cli"]


def info(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SER_EDGE, "info", *args], capture_output=True, text=True, timeout=60)


def misses_targets(report: dict) -> bool:
    return report["top1_agreement"] < 0.98 or report["keras"]["war"] - report["tflite"]["war"] > 0.01


@pytest.mark.parametrize("name", ["ravdess", "emodb"])
def test_summary_is_short_and_carries_what_a_user_asks(name):
    path = resolve_model(name)
    metadata = read_metadata(path)
    done = info(name)
    assert done.returncode == 0 and done.stderr == ""
    text = done.stdout
    assert len(text.splitlines()) <= 15
    assert not text.lstrip().startswith("{")
    for label in metadata["label_names"]:
        assert label in text
    assert f"{path.stat().st_size:,} bytes" in text
    assert metadata["quantization"] in text
    for figure in metadata["training"]["figures"]:
        spread = f" ± {100 * figure['war']['std']:.1f}" if figure["folds_finished"] > 1 else ""  # one fold has none
        assert f"WAR {100 * figure['war']['mean']:.1f}{spread} %, UAR" in text
        assert f"({figure['folds_finished']} of {figure['folds_planned']} folds" in text
        # Folds of another recipe say so on the line under their figure, and only there.
        lines = text.splitlines()
        heading = f"{figure['split']} {figure['folds_planned']}-fold cross-validation"
        below = next(lines[i + 1] for i, line in enumerate(lines) if heading in line)
        differs = figure.get("differs_from_model") or ()
        assert ("trained unlike this model in: " in below) == bool(differs), below
        for setting in differs:
            assert setting in below
    assert f"{100 * metadata['training']['validation_accuracy']:.1f} %" in text
    reference = metadata["features"].get("level_reference")
    assert reference is not None and f"normalised: each utterance's loudest frame to c0 {reference:.1f}" in text


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ["ravdess", "emodb"])
def test_not_recommended_exactly_where_the_parity_report_misses_the_targets(name, variant):
    report = json.loads((shipped_dir() / "parity" / f"{name}-{variant}.parity.json").read_text())
    done = info(f"{name}-{variant}")
    assert done.returncode == 0
    assert ("not recommended" in done.stdout) == misses_targets(report), done.stdout
    assert f"top-1 agreement {100 * report['top1_agreement']:.1f} %" in done.stdout


def test_the_shipped_int8_models_are_flagged():
    """The README says int8 is shipped but not recommended; info must say so too."""
    for name in ("ravdess", "emodb"):
        assert "not recommended" in info(f"{name}-int8").stdout


def test_json_carries_the_whole_metadata():
    done = info("ravdess-int8", "--json")
    assert done.returncode == 0
    data = json.loads(done.stdout)
    path = resolve_model("ravdess-int8")
    assert data["metadata"] == read_metadata(path)
    assert data["size_bytes"] == path.stat().st_size
    assert data["parity"]["file"] == path.name
    assert data["warning"].startswith("not recommended")


def test_a_copied_int8_without_its_report_says_agreement_is_unknown(tmp_path):
    copy = tmp_path / "ravdess-int8.tflite"
    shutil.copy(resolve_model("ravdess-int8"), copy)
    text = info(str(copy)).stdout
    assert "unknown" in text and "no parity report" in text
    # A report for another file of the same name is not this file's report.
    (tmp_path / "parity").mkdir()
    report = json.loads((shipped_dir() / "parity" / "ravdess-int8.parity.json").read_text())
    report["bytes"] += 1
    (tmp_path / "parity" / "ravdess-int8.parity.json").write_text(json.dumps(report))
    assert "no parity report" in info(str(copy)).stdout


def test_summary_of_a_file_with_little_metadata(tmp_path):
    path = tmp_path / "bare.tflite"
    path.write_bytes(b"x" * 1000)
    text = model_summary.summary(path, {"label_names": ["a", "b"], "quantization": "float32"}, None)
    assert "a, b (2)" in text and "not recorded" in text and "1,000 bytes" in text


def test_info_on_a_bad_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    done = info(str(bad))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "not a TFLite model" in done.stderr
