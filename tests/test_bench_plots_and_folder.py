"""ser-bench's figures (robust, labelled latency histograms; a row-normalised confusion matrix) and --dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("matplotlib")

from ser_edge.benchmarks.plot import confusion_figure, histogram_range, latency_figure  # noqa: E402
from ser_edge.benchmarks.run import STAGES, Measurement, Timing  # noqa: E402
from ser_edge.benchmarks.stats import accuracy  # noqa: E402
from ser_edge.edge.datasets import read_audio_folder  # noqa: E402
from ser_edge.edge.registry import THESIS_PI_MEAN_SECONDS  # noqa: E402
from tests.fixtures import RATE, SENTENCES, espeak, model_path  # noqa: E402
from tests.test_bench import ser_bench  # noqa: E402


def measurement_with_one_outlier(rng) -> Measurement:
    timings = []
    for i in range(200):
        stages = {stage: float(rng.normal(0.010, 0.0005)) for stage in STAGES}
        timings.append(Timing(Path(f"{i}.wav"), "a", "a", 2.0, stages))
    timings[17].stages.update({stage: 1.0 for stage in STAGES})  # one utterance 100 times slower
    return Measurement("litert", timings, wall_s=3.0)


def test_histogram_range_leaves_out_a_far_outlier_but_keeps_the_bulk(rng):
    values = np.concatenate([rng.normal(10.0, 0.5, 500), [1000.0]])
    low, high = histogram_range(values)
    assert low == values.min() and np.percentile(values, 99) <= high < 1000.0
    same = np.full(20, 7.0)  # identical values still give a drawable range
    low, high = histogram_range(same)
    assert low <= 7.0 <= high and high > low


def test_latency_panels_are_labelled_and_an_outlier_does_not_squeeze_them(rng):
    import matplotlib.pyplot as plt

    figure = latency_figure(measurement_with_one_outlier(rng), "test")
    try:
        for axis in figure.axes:
            assert "ms" in axis.get_xlabel() and axis.get_ylabel() == "utterances"
            heights = [patch.get_height() for patch in axis.patches]
            assert sum(heights) == 199  # the outlier is not drawn ...
            assert max(heights) < 0.5 * 199  # ... so the bulk spreads over several bars
            notes = [text.get_text() for text in axis.texts]
            assert any(note.startswith("1 slower, not drawn") and "1000.0 ms" in note for note in notes)
    finally:
        plt.close(figure)


def test_confusion_is_row_normalised_recall_with_labelled_axes():
    import matplotlib.pyplot as plt

    true = ["a"] * 4 + ["b"] * 2 + ["c"] * 5
    predicted = ["a", "a", "a", "b", "b", "a", "c", "c", "c", "c", "a"]
    scores = accuracy(true, predicted, ("a", "b", "c", "d"))  # d never occurs
    figure = confusion_figure(scores, "test")
    try:
        axis = figure.axes[0]
        shown = np.ma.filled(axis.images[0].get_array().astype(float), np.nan)
        counts = np.asarray(scores["confusion"], dtype=float)
        for row in range(3):
            assert shown[row].sum() == pytest.approx(1.0)
            assert shown[row] == pytest.approx(counts[row] / counts[row].sum())
        assert np.isnan(shown[3]).all()  # no utterances of d: no recall, not 0 %
        assert np.diag(shown)[:3] == pytest.approx([scores["per_class_recall"][n] for n in "abc"])
        assert axis.get_xlabel() == "predicted class" and axis.get_ylabel().startswith("true class")
    finally:
        plt.close(figure)


@pytest.fixture
def audio_folder(tmp_path) -> Path:
    """Any folder of audio: WAV and OGG files at other rates, nested, plus a file that is not audio."""
    folder = tmp_path / "my recordings"
    (folder / "kitchen").mkdir(parents=True)
    speech = espeak(SENTENCES[0], tmp_path / "s0.wav")
    soundfile.write(folder / "one.wav", speech, RATE)
    soundfile.write(folder / "kitchen" / "two.ogg", espeak(SENTENCES[1], tmp_path / "s1.wav"), RATE)
    import soxr

    soundfile.write(folder / "kitchen" / "three-48k.flac", soxr.resample(speech, RATE, 48000), 48000)
    (folder / "notes.txt").write_text("not audio, not listed")
    (folder / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return folder


def test_the_folder_reader_lists_every_audio_file(audio_folder):
    found = read_audio_folder(audio_folder)
    assert sorted(u.path.name for u in found) == ["broken.wav", "one.wav", "three-48k.flac", "two.ogg"]
    assert all(u.label == "" for u in found)


@pytest.mark.slow
def test_ser_bench_on_any_folder_measures_latency_only(tmp_path, audio_folder):
    out = tmp_path / "out"
    done = ser_bench("--dataset", "folder", "--data-dir", str(audio_folder), "--model", str(model_path()),
                     "--warmup", "0", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["measured"] == 3 and [s["path"] for s in results["skipped"]] == ["broken.wav"]
    assert results["accuracy"] is None and "unlabelled" in results["accuracy_note"]
    assert results["thesis"]["pi_seconds"] == THESIS_PI_MEAN_SECONDS  # the thesis's mean: a folder is none of its datasets
    assert (out / "latency.png").is_file() and not (out / "confusion.png").exists()
    assert "latency only" in done.stdout
    page = (out / "report.md").read_text()
    assert "three datasets on average" in page


def test_folder_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing to hear")
    for args, fragment in ((["--data-dir", str(empty)], "no audio files found"),
                           ([], "--data-dir DIR is required: any folder of audio files")):
        done = ser_bench("--dataset", "folder", *args, cwd=tmp_path)
        assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr
