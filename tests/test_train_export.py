"""Smoke training with ser-train, then ser-export in all four variants, run with LiteRT on real audio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="needs the train extra: pip install '.[train]'")

from ser_edge.edge import audio  # noqa: E402
from ser_edge.edge.classifier import EmotionClassifier  # noqa: E402
from ser_edge.edge.config import FeatureConfig  # noqa: E402
from ser_edge.edge.datasets import LABELS  # noqa: E402
from ser_edge.edge.model_file import read_metadata  # noqa: E402
from ser_edge.edge.registry import VARIANTS  # noqa: E402
from tests.generated_corpus import make_emodb_corpus  # noqa: E402

pytestmark = pytest.mark.slow
CONFIG = FeatureConfig()


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_emodb_corpus(tmp_path_factory.mktemp("emodb"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    done = run("ser_edge.models.train_cli", "--dataset", "emodb", "--data-dir", str(corpus), "--out", str(out),
               "--folds", "2", "--epochs", "2", "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained, corpus) -> dict:
    folder = tmp_path_factory.mktemp("export")
    files = {}
    for variant in VARIANTS:
        out = folder / f"smoke-{variant}.tflite"
        done = run("ser_edge.export.cli", str(trained / "final.keras"), "--quantize", variant, "--out", str(out),
                   "--calibration-data", str(corpus), "--dataset", "emodb", "--report", str(folder / "parity"))
        assert done.returncode == 0, done.stderr[-3000:]
        files[variant] = out
    return {"files": files, "parity": folder / "parity"}


def test_cross_validation_report_and_resume(trained, corpus):
    report = json.loads((trained / "report.json").read_text())
    assert report["folds_finished"] == 2
    assert 0.0 <= report["war"]["mean"] <= 1.0
    assert len(report["confusion"]) == 7 and sum(map(sum, report["confusion"])) == 28
    for name in ("report.md", "confusion.png", "final.keras", "final.json", "fold_00.json", "fold_01.json"):
        assert (trained / name).is_file(), name
    folds = [json.loads((trained / f"fold_{i:02d}.json").read_text()) for i in range(2)]
    tested = [set(f["test_paths"]) for f in folds]
    assert not tested[0] & tested[1] and len(tested[0] | tested[1]) == 28
    assert all(f["threads"] == 0 for f in folds)  # TensorFlow's default, recorded next to the seconds
    # A rerun finds both folds finished and trains nothing but the final model; the thread count
    # changes speed, not the run's settings, so it may differ on resume.
    again = run("ser_edge.models.train_cli", "--dataset", "emodb", "--data-dir", str(corpus), "--out", str(trained),
                "--folds", "2", "--epochs", "2", "--no-final", "--threads", "1")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already finished") == 2 and "epoch" not in again.stderr.replace("best_epoch", "")
    # Different settings never mix into the same folder.
    other = run("ser_edge.models.train_cli", "--dataset", "emodb", "--data-dir", str(corpus), "--out", str(trained),
                "--folds", "2", "--epochs", "3", "--no-final")
    assert other.returncode == 2 and "different settings" in other.stderr


def test_every_variant_runs_on_real_audio_with_its_metadata(exported, corpus):
    wav = sorted(corpus.glob("*.wav"))[0]
    for variant, path in exported["files"].items():
        metadata = read_metadata(path)
        assert metadata["quantization"] == variant
        assert metadata["label_names"] == list(LABELS["emodb"])
        assert metadata["features"]["num_samples"] == CONFIG.num_samples and metadata["features"]["n_mfcc"] == CONFIG.n_mfcc
        assert metadata["source_model"]["file"] == "final.keras"
        assert path.stat().st_mode & 0o044 == 0o044, "the service user must be able to read the model"
        classifier = EmotionClassifier(path)
        prediction = classifier.classify(audio.load(wav, classifier.sample_rate))
        assert prediction.label in LABELS["emodb"]
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=0.02)


def test_parity_reports(exported):
    for variant in VARIANTS:
        report = json.loads((exported["parity"] / f"smoke-{variant}.parity.json").read_text())
        assert report["held_out_items"] > 0
        assert report["bytes"] == exported["files"][variant].stat().st_size
        for threads in ("1_thread", "2_threads"):
            assert report["invoke_latency_ms"][threads]["median"] > 0
        assert report["load_while_timing"]["cpus"] >= 1 and report["load_while_timing"]["load_average_1min"] >= 0
        if variant in ("float32", "float16"):
            assert report["top1_agreement"] >= 0.995
            assert report["max_abs_probability_difference"] < 0.01
    int8 = json.loads((exported["parity"] / "smoke-int8.parity.json").read_text())
    assert int8["conversion_mode"].startswith("int8")
    assert "DIV" not in int8["ops"]  # the squash is written without division
    # The int8 graph keeps the documented parts in float and names each one with its reason.
    assert set(int8["float_layers"]) <= {"attention", "attention norm", "routing", "time-row BatchNorm"}
    assert int8["float_layers"] and all(int8["float_layers"].values())


def test_a_parity_report_timed_on_a_busy_machine_says_its_timings_are_not_figures(exported):
    from ser_edge.export.parity import parity_markdown

    report = json.loads((exported["parity"] / "smoke-dynamic.parity.json").read_text())
    quiet = parity_markdown({**report, "load_while_timing": {"load_average_1min": 1.1, "cpus": 2}})
    busy = parity_markdown({**report, "load_while_timing": {"load_average_1min": 2.9, "cpus": 2}})
    assert "1-min load average 1.10 on 2 CPUs |" in quiet and "not figures" not in quiet
    assert "1-min load average 2.90 on 2 CPUs: other work shared the machine" in busy and "not figures" in busy


def test_float32_matches_keras_on_real_features(exported, trained, corpus):
    import keras

    import ser_edge.models.tpmnet  # noqa: F401
    from ser_edge.edge.features import model_inputs, utterance_features

    from ser_edge.edge.config import FeatureConfig

    model = keras.saving.load_model(trained / "final.keras", compile=False)
    config = FeatureConfig.from_dict(json.loads((trained / "final.json").read_text())["features"])
    assert config.input_mean is not None  # the default recipe standardises; the runtime must too
    classifier = EmotionClassifier(exported["files"]["float32"])
    assert classifier.features == config
    for wav in sorted(corpus.glob("*.wav"))[:6]:
        matrix = utterance_features(audio.load(wav, CONFIG.sample_rate))
        expected = np.asarray(model.predict(model_inputs(matrix, config), verbose=0))[0]
        np.testing.assert_allclose(classifier.infer(matrix), expected, atol=1e-4)


def test_level_reference_makes_an_exported_model_gain_independent(tmp_path, trained, corpus):
    import shutil

    for name in ("final.keras", "final.json"):
        shutil.copy2(trained / name, tmp_path / name)
    done = run("ser_edge.models.level_reference", str(tmp_path / "final.json"), str(corpus),
               "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr[-3000:]
    sidecar = json.loads((tmp_path / "final.json").read_text())
    reference = sidecar["features"]["level_reference"]
    assert reference == pytest.approx(float(np.mean([  # the mean loudest-frame c0 of the training files
        utterance_features_c0_max(corpus / name) for name in sidecar["training_files"]])), abs=1e-3)
    out = tmp_path / "levelled.tflite"
    done = run("ser_edge.export.cli", str(tmp_path / "final.keras"), "--quantize", "float32", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    levelled, plain = EmotionClassifier(out), EmotionClassifier(out)
    assert levelled.features.level_reference == pytest.approx(reference)
    plain.features = FeatureConfig.from_dict({k: v for k, v in levelled.features.to_dict().items()
                                              if k != "level_reference"})
    def largest_change(classifier) -> float:
        change = 0.0
        for wav in sorted(corpus.glob("*.wav"))[:4]:
            signal = audio.load(wav, CONFIG.sample_rate)
            loud, quiet = (np.array(list(classifier.classify(x).probabilities.values()))
                           for x in (signal, signal * 10 ** (-20 / 20)))
            change = max(change, float(np.abs(loud - quiet).max()))
        return change

    # Real LiteRT inference at -20 dB: with the reference the outputs stay put (float rounding only);
    # the same model without it moves (a little, after two epochs of training; far more when trained).
    with_reference, without = largest_change(levelled), largest_change(plain)
    assert with_reference < 1e-5 and without > 10 * with_reference, (with_reference, without)


def utterance_features_c0_max(path: Path) -> float:
    from ser_edge.edge.features import utterance_features

    return float(utterance_features(audio.load(path, CONFIG.sample_rate))[:, 0].max())


def test_level_reference_bad_input_is_one_line(tmp_path, corpus):
    sidecar = tmp_path / "model.json"
    for content, expected in (("not json", "not a readable model sidecar"),
                              (json.dumps({"dataset": "emodb", "features": CONFIG.to_dict(), "training_files": []}),
                               "no training files"),
                              (json.dumps({"dataset": "emodb", "features": CONFIG.to_dict(),
                                           "training_files": ["03a01Fa.wav", "nothere.wav"]}), "are missing")):
        sidecar.write_text(content)
        done = run("ser_edge.models.level_reference", str(sidecar), str(corpus), "--cache-dir", str(tmp_path / "c"))
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert sidecar.read_text() == content  # nothing written


@pytest.mark.parametrize("case", ["missing", "not_keras", "labels_mismatch", "empty_calibration", "bad_out"])
def test_export_bad_input_leaves_no_file(tmp_path, trained, corpus, case):
    model, out = trained / "final.keras", tmp_path / "out.tflite"
    args = [str(model), "--quantize", "int8", "--out", str(out), "--calibration-data", str(corpus),
            "--dataset", "emodb"]
    expected = {"missing": "no such model file", "not_keras": "not a Keras model",
                "labels_mismatch": "do not match", "empty_calibration": "calibration set is empty",
                "bad_out": "must end in .tflite"}[case]
    if case == "missing":
        args[0] = str(tmp_path / "nope.keras")
    elif case == "not_keras":
        bogus = tmp_path / "bogus.keras"
        bogus.write_text("not a zip")
        args[0] = str(bogus)
    elif case == "labels_mismatch":
        args[-1] = "ravdess"
    elif case == "empty_calibration":
        args += ["--calibration-size", "0"]
    else:
        out = tmp_path / "out.bin"
        args[4] = str(out)
    done = run("ser_edge.export.cli", *args)
    assert done.returncode == 2 and expected in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_bad_arguments_are_refused_before_tensorflow_loads(tmp_path, corpus):
    probe = ("import sys; from ser_edge.models import train_cli; "
             f"code = train_cli.main(['--dataset', 'emodb', '--data-dir', {str(corpus)!r}, '--out', "
             f"{str(tmp_path / 'out')!r}, '--only-fold', '10']); print(code, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr[-2000:]
    assert "--only-fold 10 is out of range" in done.stderr


def test_train_bad_input(tmp_path, corpus):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--dataset", "emodb", "--data-dir", str(empty)], "no emodb utterances found"),
        (["--dataset", "emodb", "--data-dir", str(tmp_path / "absent")], "not a directory"),
        (["--dataset", "cremad", "--data-dir", str(corpus)], "unknown dataset"),
        (["--dataset", "emodb", "--data-dir", str(corpus), "--threads", "-1"], "--threads must be"),
        (["--dataset", "emodb", "--data-dir", str(corpus), "--only-fold", "2"], "--only-fold 2 is out of range"),
    ]
    partial = tmp_path / "partial"
    partial.mkdir()
    for wav in corpus.glob("*.wav"):
        if wav.stem[5] != "E":  # no disgust at all
            (partial / wav.name).write_bytes(wav.read_bytes())
    cases.append((["--dataset", "emodb", "--data-dir", str(partial)], "['disgust']"))
    for args, message in cases:
        done = run("ser_edge.models.train_cli", *args, "--folds", "2", "--out", str(tmp_path / "out"))
        assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
