"""ser-bench: the IEMOCAP reader it relies on, refusals, figures, reports, and runs on generated audio.

Runs that need a model use $SER_TEST_MODEL (a .tflite exported by ser-export)
or edge/shipped/emodb-float32.tflite, and skip with a reason where neither
exists. No test asserts how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ser_edge.benchmarks import keras_baseline, report
from ser_edge.benchmarks.cli import main
from ser_edge.benchmarks.provenance import Provenance
from ser_edge.benchmarks.host import cpu_model
from ser_edge.benchmarks.run import STAGES, Measurement, Skipped, Timing
from ser_edge.benchmarks.stats import accuracy, summary
from ser_edge.edge.datasets import LABELS, read_dataset
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.registry import THESIS_PI_SECONDS, shipped_dir

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_EMODB = shipped_dir() / "emodb-float32.tflite"
CONSOLE_SCRIPT = Path(sys.executable).with_name("ser-bench")


# --- fixtures: generated datasets -------------------------------------------------------------

def write_tone(path: Path, seconds: float, rate: int, pitch: float = 220.0) -> None:
    rng = np.random.default_rng(int(pitch))
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal.astype(np.float32), rate)


EMODB_GOOD = ["03a01Fa", "03a01Wa", "03a02Ta", "08a01La", "08a02Ea", "10b01Aa"]
EMODB_CORRUPT = "03a02Na"  # sorts third, so --limit 5 keeps it


@pytest.fixture
def emodb_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "emodb"
    for i, name in enumerate(EMODB_GOOD):
        write_tone(folder / f"{name}.wav", 0.8 + 0.2 * i, 16000, pitch=150 + 30 * i)
    (folder / f"{EMODB_CORRUPT}.wav").write_text("this is not audio\n")
    return folder


IEMOCAP_EVALUATION = {
    # session: (dialog, [(utterance, code)]) -- the codes cover merge (exc), skips (xxx, fru) and both genders
    1: ("Ses01F_impro01", [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "exc"),
                           ("Ses01F_impro01_F001", "xxx"), ("Ses01F_impro01_M001", "fru"),
                           ("Ses01F_impro01_F002", "hap")]),
    2: ("Ses02M_script01_1", [("Ses02M_script01_1_F000", "sad"), ("Ses02M_script01_1_M003", "ang"),
                              ("Ses02M_script01_1_M004", "neu")]),  # M004 has no wav: not listed
}
IEMOCAP_EXPECTED = {
    ("Ses01F_impro01_F000", "neutral", "Ses01F"), ("Ses01F_impro01_M000", "happy", "Ses01M"),
    ("Ses01F_impro01_F002", "happy", "Ses01F"), ("Ses02M_script01_1_F000", "sad", "Ses02F"),
    ("Ses02M_script01_1_M003", "angry", "Ses02M"),
}


def make_iemocap(root: Path) -> Path:
    """A tiny IEMOCAP_full_release: SessionN/dialog/EmoEvaluation/*.txt + sentences/wav/<dialog>/*.wav."""
    for session, (dialog, entries) in IEMOCAP_EVALUATION.items():
        base = root / f"Session{session}"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for i, (name, code) in enumerate(entries):
            lines += [f"[{6.2901 + 3 * i:.4f} - {8.2357 + 3 * i:.4f}]\t{name}\t{code}\t[2.5000, 2.5000, 2.5000]",
                      "C-E2:\tNeutral;\t()", "C-E4:\tFrustration;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            if not name.endswith("M004"):
                write_tone(base / "sentences" / "wav" / dialog / f"{name}.wav", 0.6, 16000, pitch=200 + 20 * i)
        evaluation = base / "dialog" / "EmoEvaluation"
        evaluation.mkdir(parents=True, exist_ok=True)
        (evaluation / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
        # The release also has per-annotator files one level down; they must not be read as labels.
        (evaluation / "Categorical").mkdir(exist_ok=True)
        (evaluation / "Categorical" / f"{dialog}_e1_cat.txt").write_text(f"{entries[0][0]} :Anger; ()\n")
    return root


def ser_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script (or the module, where the script is not beside this Python)."""
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.is_file() else [sys.executable, "-m", "ser_edge.benchmarks.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ser-bench: error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


# --- the IEMOCAP reader -----------------------------------------------------------------------

def test_iemocap_reader_on_the_release_layout(tmp_path):
    utterances = read_dataset("iemocap", make_iemocap(tmp_path / "IEMOCAP_full_release"))
    assert {(u.path.stem, u.label, u.speaker) for u in utterances} == IEMOCAP_EXPECTED
    assert all(u.path.is_file() and u.label in LABELS["iemocap"] for u in utterances)
    assert [u.path for u in utterances] == sorted(u.path for u in utterances)


@pytest.mark.slow
def test_iemocap_without_data_dir_says_where_to_get_it(tmp_path):
    assert_one_line_error(ser_bench("--dataset", "iemocap", cwd=tmp_path), "USC SAIL", "--data-dir")


@pytest.mark.slow
def test_iemocap_on_a_folder_that_is_not_iemocap(tmp_path, emodb_dir):
    result = ser_bench("--dataset", "iemocap", "--data-dir", str(emodb_dir), cwd=tmp_path)
    assert_one_line_error(result, "USC SAIL", "sail.usc.edu")


# --- refusals that need no model --------------------------------------------------------------

@pytest.mark.slow
def test_unknown_dataset_is_refused(tmp_path):
    result = ser_bench("--dataset", "tess", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("make_dir, fragment", [
    (lambda tmp: tmp / "missing", "not a directory"),
    (lambda tmp: tmp, "no emodb utterances"),
])
def test_a_folder_without_the_dataset_is_refused(tmp_path, capsys, make_dir, fragment):
    assert main(["--dataset", "emodb", "--data-dir", str(make_dir(tmp_path)), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ser-bench: error: ") and fragment in error
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_model_is_refused(tmp_path, emodb_dir, capsys):
    fake = tmp_path / "fake.tflite"
    fake.write_text("not a flatbuffer")
    assert main(["--dataset", "emodb", "--data-dir", str(emodb_dir), "--model", str(fake)]) == 2
    assert "not a TFLite model" in capsys.readouterr().err


@pytest.mark.parametrize("extra, fragment", [
    (["--baseline", "keras"], "--keras-model"),
    (["--baseline", "keras", "--keras-model", "nowhere.keras"], "no such Keras model"),
    (["--keras-model", "x.keras"], "goes with --baseline"),
    (["--threads", "0"], "--threads"),
    (["--limit", "0"], "--limit"),
])
def test_bad_flags_are_refused_before_any_work(tmp_path, emodb_dir, capsys, extra, fragment):
    assert main(["--dataset", "emodb", "--data-dir", str(emodb_dir), *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_baseline_without_the_train_extra_says_what_to_install(tmp_path, emodb_dir, capsys, monkeypatch):
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"PK")
    keras_file.with_suffix(".json").write_text("{}")
    monkeypatch.setattr(keras_baseline, "_installed", lambda module: module != "tensorflow")
    argv = ["--dataset", "emodb", "--data-dir", str(emodb_dir), "--baseline", "keras", "--keras-model", str(keras_file)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "tensorflow" in error and "pip install 'ser-edge[train]' librosa" in error
    with pytest.raises(SerEdgeError, match="ser-edge"):
        keras_baseline.check_available()


def test_the_device_path_imports_no_training_stack():
    code = ("import sys, ser_edge.benchmarks.cli, ser_edge.benchmarks.run, ser_edge.benchmarks.report, ser_edge.benchmarks.stats, ser_edge.benchmarks.host, "
            "ser_edge.benchmarks.plot, ser_edge.benchmarks.keras_baseline; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'librosa', 'sklearn', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


# --- figures ----------------------------------------------------------------------------------

def test_summary_percentiles():
    figures = summary(np.arange(1, 101, dtype=float))
    assert figures["n"] == 100 and figures["mean"] == 50.5 and figures["median"] == 50.5
    assert figures["p95"] == pytest.approx(95.05) and figures["p99"] == pytest.approx(99.01)
    assert figures["min"] == 1 and figures["max"] == 100
    with pytest.raises(ValueError):
        summary([])


def test_accuracy_war_uar_and_confusion():
    labels = ("a", "b", "c", "d")  # d never occurs: no recall, not part of UAR
    scores = accuracy(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"], labels)
    assert scores["war"] == pytest.approx(3 / 5)
    assert scores["uar"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert scores["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 0.0, "d": None}
    assert scores["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert scores["support"] == {"a": 2, "b": 2, "c": 1, "d": 0}


def test_cpu_model_on_a_raspberry_pi_and_on_x86():
    pi = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU architecture: 8\nCPU part\t: 0xd08\nModel\t\t: Raspberry Pi 4"
    assert cpu_model(pi) == "Cortex-A72 (ARMv8)"
    assert cpu_model("processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7\n") == "Intel(R) Core(TM) i7"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process_age_s reads /proc (None elsewhere)")
def test_process_age_counts_from_the_process_start():
    """A child that sleeps 0.5 s before asking is 0.5 s old or a little more (not 0, not the machine's uptime)."""
    code = "import time; time.sleep(0.5); from ser_edge.benchmarks.host import process_age_s; print(process_age_s())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0.45 <= float(done.stdout) < 30, done.stdout


def fake_measurement(name: str, scale: float, paths: list[Path]) -> Measurement:
    timings = [Timing(path, "a" if i % 2 else "b", "a", 2.0,
                      {"decode_resample": 0.01 * scale, "features": 0.02 * scale, "inference": 0.03 * scale,
                       "total": 0.06 * scale}) for i, path in enumerate(paths)]
    return Measurement(name, timings, [Skipped(Path("/data/bad.wav"), "cannot decode audio")], wall_s=1.0)


def fake_results(tmp_path: Path) -> tuple[dict, Measurement, dict]:
    paths = [tmp_path / f"{i}.wav" for i in range(4)]
    litert = fake_measurement("litert", 1.0, paths)
    modes = {"graph": fake_measurement("keras-graph", 4.0, paths[:2]),
             "eager": fake_measurement("keras-eager", 8.0, paths[:2])}
    results = {
        "dataset": {"name": "emodb", "data_dir": str(tmp_path), "listed": 5, "used": 5, "limit": None},
        "model": {"file": "m.tflite", "sha256": "0" * 64, "trained_on": "emodb", "quantization": "float32"},
        "host": {"cpu": "cpu", "board": None, "machine": "x86_64", "cores": 2, "os": "Linux", "python": "3.11",
                 "litert": "ai-edge-litert 2", "threads": 1, "date": "2026-01-01"},
        "settings": {"warmup": 0},
        **report.litert_results(litert, ("a", "b"), thesis_s=1.2),
        "skipped": report.skipped_list(litert, Path("/data")),
        "peak_rss_mib": 50.0,
        "cold_start_s": {"total": 1.0, "source": "test", "startup": 0.2, "argument_checks": 0.0,
                         "dataset_listing": 0.1, "model_load": 0.5, "first_utterance": 0.2},
        "accuracy_note": None,
        "provenance": report.provenance_results(
            litert, ("a", "b"), Provenance("m.json", frozenset({"0"}), frozenset({"1"}))),
        "baseline": {"info": {"model_file": "m.keras", "tensorflow": "2", "keras": "3", "librosa": "0.11",
                              "tf_intra_op_threads": 0},
                     "utterances": 2, "modes": report.baseline_results(litert, modes, ("a", "b"), tmp_path),
                     "peak_rss_mib_after": 900.0},
        "notes": ["a note"],
    }
    return results, litert, modes


def test_report_figures_and_markdown(tmp_path):
    results, litert, _ = fake_results(tmp_path)
    assert results["thesis"]["ratio"] == pytest.approx(0.06 / 1.2)
    assert results["thesis"]["speedup"] == pytest.approx(20.0)
    assert results["real_time_factor"]["overall"] == pytest.approx(0.03)
    assert results["accuracy"]["war"] == pytest.approx(0.5)
    graph = results["baseline"]["modes"]["graph"]
    assert graph["measured"] == 2 and graph["agreement_with_litert"] == 1.0
    assert graph["speedup_of_litert"]["total"] == pytest.approx(4.0)
    assert results["baseline"]["modes"]["eager"]["speedup_of_litert"]["inference"] == pytest.approx(8.0)
    assert results["skipped"] == [{"path": "bad.wav", "reason": "cannot decode audio"}]
    page = report.markdown(results)
    for heading in ("## Latency per utterance", "## Against the thesis", "## Accuracy", "## Baseline",
                    "## Skipped files", "## Notes"):
        assert heading in page
    assert "| total | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 |" in page
    # Accuracy is split by what the model's own file lists say, not by the dataset's name.
    assert results["provenance"]["counts"] == {"training": 1, "validation": 1, "unseen": 2, "unknown": 0}
    assert "### By what the model saw in training" in page and "Not a generalisation figure" in page
    assert "close to training" not in page
    results["provenance"] = report.provenance_results(litert, ("a", "b"), Provenance("m.json", None, frozenset()))
    page = report.markdown(results)
    assert "Not a generalisation figure" not in page and "4 utterance(s) are not in the model's validation" in page
    assert "| Keras eager | 2 |" in page and page.count("LiteRT (this run, same utterances)") == 1
    json.dumps(results)  # everything in it is plain JSON


def test_latency_png_and_its_absence_without_matplotlib(tmp_path, monkeypatch, caplog):
    from ser_edge.benchmarks.plot import write_latency_png

    _, litert, modes = fake_results(tmp_path)
    written = write_latency_png(litert, tmp_path / "latency.png", "test", modes)
    assert written and written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert write_latency_png(litert, tmp_path / "none.png", "test") is None
    assert not (tmp_path / "none.png").exists()
    assert "matplotlib is not installed" in caplog.text


# --- runs with a real model -------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_path() -> Path:
    wanted = os.environ.get("SER_TEST_MODEL")
    if wanted:
        if not Path(wanted).is_file():
            pytest.fail(f"SER_TEST_MODEL={wanted} is not a file")
        return Path(wanted)
    if SHIPPED_EMODB.is_file():
        return SHIPPED_EMODB
    pytest.skip(f"no model to run: set SER_TEST_MODEL to a ser-export .tflite, or ship {SHIPPED_EMODB.name}")


@pytest.mark.slow
def test_run_on_a_small_emodb_folder(tmp_path, emodb_dir, model_path):
    out = tmp_path / "out"
    result = ser_bench("--dataset", "emodb", "--data-dir", str(emodb_dir), "--model", str(model_path),
                       "--limit", "5", "--warmup", "1", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "litert: 5/5 utterances" in result.stderr  # progress
    assert f"skipped {EMODB_CORRUPT}.wav" in result.stdout

    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == {"name": "emodb", "data_dir": str(emodb_dir), "listed": 7, "used": 5, "limit": 5}
    assert results["measured"] == 4
    assert [s["path"] for s in results["skipped"]] == [f"{EMODB_CORRUPT}.wav"]
    for stage in STAGES:
        figures = results["latency_s"][stage]
        assert figures["n"] == 4
        assert all(figures[key] > 0 for key in ("mean", "median", "p95", "p99", "max"))
    assert results["latency_s"]["total"]["mean"] >= results["latency_s"]["inference"]["mean"]
    assert results["real_time_factor"]["overall"] > 0 and results["peak_rss_mib"] > 0
    assert results["cold_start_s"]["total"] > 0
    assert results["thesis"]["pi_seconds"] == THESIS_PI_SECONDS["emodb"] and results["thesis"]["ratio"] > 0

    host, model = results["host"], results["model"]
    assert host["cpu"] and host["cores"] >= 1 and host["python"] and host["date"] and host["threads"] == 1
    assert host["litert"] != "unknown"
    assert model["file"] == model_path.name and len(model["sha256"]) == 64
    if set(model["labels"]) == set(LABELS["emodb"]):
        assert results["accuracy"]["n"] == 4 and 0 <= results["accuracy"]["war"] <= 1
    else:
        assert results["accuracy"] is None and "latency only" in results["accuracy_note"]

    page = (out / "report.md").read_text()
    assert "## Skipped files" in page and f"`{EMODB_CORRUPT}.wav`" in page
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"
    rows = (out / "utterances-litert.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[0].startswith("path,label,predicted")


@pytest.mark.slow
def test_a_model_for_other_labels_gives_latency_only(tmp_path, model_path):
    data = make_iemocap(tmp_path / "IEMOCAP_full_release")
    result = ser_bench("--dataset", "iemocap", "--data-dir", str(data), "--model", str(model_path),
                       "--warmup", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "latency only" in result.stdout
    out = tmp_path / "benchmarks" / "results" / f"iemocap-{model_path.stem}-t1"  # the default --out
    results = json.loads((out / "results.json").read_text())
    assert results["measured"] == len(IEMOCAP_EXPECTED) and results["accuracy"] is None
    assert "latency only" in results["accuracy_note"] and results["thesis"]["pi_seconds"] == THESIS_PI_SECONDS["iemocap"]
    assert "Not measured: " in (out / "report.md").read_text()


@pytest.mark.slow
def test_nothing_measurable_is_an_error(tmp_path, model_path):
    folder = tmp_path / "emodb"
    folder.mkdir()
    for name in EMODB_GOOD[:2]:
        (folder / f"{name}.wav").write_bytes(b"RIFF????WAVEjunk")
    result = ser_bench("--dataset", "emodb", "--data-dir", str(folder), "--model", str(model_path),
                       "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(result, "nothing could be measured")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_broken_baseline_keeps_the_litert_results(tmp_path, emodb_dir, model_path):
    try:
        keras_baseline.check_available()
    except SerEdgeError as error:
        pytest.skip(str(error))
    keras_file = tmp_path / "broken.keras"
    keras_file.write_text("not a zip archive")
    keras_file.with_suffix(".json").write_text(json.dumps({"label_names": list(LABELS["emodb"]), "features": {}}))
    out = tmp_path / "out"
    result = ser_bench("--dataset", "emodb", "--data-dir", str(emodb_dir), "--model", str(model_path), "--limit", "2",
                       "--out", str(out), "--baseline", "keras", "--keras-model", str(keras_file), cwd=tmp_path)
    assert_one_line_error(result, "baseline: ", "not a Keras model")
    results = json.loads((out / "results.json").read_text())
    assert results["measured"] == 2 and "not a Keras model" in results["baseline"]["error"]
