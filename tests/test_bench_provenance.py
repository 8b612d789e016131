"""ser-bench knows which files a model was trained on from the model's own records, not the dataset's name."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from ser_edge.benchmarks.provenance import model_provenance
from ser_edge.edge.model_file import read_metadata
from ser_edge.edge.registry import resolve_model
from ser_edge.models import shipped_dir
from tests.test_bench import EMODB_GOOD, ser_bench, write_tone


def copy_model(folder: Path, name: str = "emodb-float32") -> tuple[Path, dict]:
    """A shipped model copied alone into ``folder`` (no sidecar beside it yet)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.tflite"
    shutil.copy(resolve_model(name), path)
    return path, read_metadata(path)


def write_sidecar(model: Path, metadata: dict, **lists: list[str]) -> Path:
    sidecar = model.parent / f"{Path(metadata['source_model']['file']).stem}.json"
    sidecar.write_text(json.dumps({"dataset": metadata["dataset"], "label_names": metadata["label_names"], **lists}))
    return sidecar


def test_the_shipped_models_know_their_training_and_validation_files():
    for name in ("emodb", "ravdess"):
        path = resolve_model(name)
        provenance = model_provenance(path, read_metadata(path))
        sidecar = json.loads((shipped_dir() / f"{name}.json").read_text())
        assert provenance.source == f"{name}.json"
        assert provenance.validation == {Path(n).stem for n in sidecar["validation_files"]}
        if "training_files" in sidecar:  # models trained since issue 11
            assert provenance.training == {Path(n).stem for n in sidecar["training_files"]}
            assert provenance.problem is None
            assert provenance.status(Path(sidecar["training_files"][0]).with_suffix(".wav")) == "training"
        else:
            assert provenance.training is None and "training_files" in provenance.problem
        first = sidecar["validation_files"][0]
        assert provenance.status(Path("/anywhere") / first) == "validation"
        assert provenance.status(Path("/anywhere") / Path(first).with_suffix(".wav")) == "validation"  # WAV copy
        # With both lists a file on neither was never seen; with only the validation list nobody knows.
        unlisted = "unseen" if "training_files" in sidecar else "unknown"
        assert provenance.status("not-a-listed-file.wav") == unlisted


def test_statuses_from_a_sidecar_with_both_lists(tmp_path):
    model, metadata = copy_model(tmp_path)
    write_sidecar(model, metadata, training_files=["a.flac", "b.flac"], validation_files=["c.flac"])
    provenance = model_provenance(model, metadata)
    assert [provenance.status(f"{n}.wav") for n in "abcd"] == ["training", "training", "validation", "unseen"]
    assert provenance.problem is None


def test_no_sidecar_and_a_sidecar_of_another_model(tmp_path):
    model, metadata = copy_model(tmp_path)
    nothing = model_provenance(model, metadata)
    assert nothing.source is None and "no training sidecar" in nothing.problem
    assert nothing.status("03a01Fa.wav") == "unknown"
    # A sidecar with other labels is another model's.
    sidecar = write_sidecar(model, metadata, training_files=["x.wav"])
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "label_names": ["a", "b"]}))
    assert "another model" in model_provenance(model, metadata).problem
    # A .keras beside it that is not the one exported: its sidecar may describe other training.
    write_sidecar(model, metadata, training_files=["x.wav"])
    keras = model.parent / metadata["source_model"]["file"]
    keras.write_bytes(b"other weights")
    assert hashlib.sha256(keras.read_bytes()).hexdigest() != metadata["source_model"]["sha256"]
    other = model_provenance(model, metadata)
    assert other.training is None and "sha256 differs" in other.problem


@pytest.fixture
def emodb_tones(tmp_path: Path) -> Path:
    folder = tmp_path / "emodb"
    for i, name in enumerate(EMODB_GOOD):
        write_tone(folder / f"{name}.wav", 1.0 + 0.1 * i, 16000, pitch=150 + 30 * i)
    return folder


@pytest.mark.slow
def test_a_run_splits_accuracy_by_the_model_lists(tmp_path, emodb_tones):
    model, metadata = copy_model(tmp_path / "model")
    trained, held = EMODB_GOOD[:2], EMODB_GOOD[2:3]
    write_sidecar(model, metadata, training_files=[f"{n}.flac" for n in trained],
                  validation_files=[f"{n}.flac" for n in held])
    out = tmp_path / "out"
    done = ser_bench("--dataset", "emodb", "--data-dir", str(emodb_tones), "--model", str(model), "--warmup", "0",
                     "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    provenance = results["provenance"]
    assert provenance["counts"] == {"training": 2, "validation": 1, "unseen": len(EMODB_GOOD) - 3, "unknown": 0}
    assert provenance["source"] == "emodb.json" and provenance["training_files"] == 2
    rows = {row.split(",")[0]: row.split(",")[2] for row in (out / "utterances-litert.csv").read_text().splitlines()[1:]}
    unseen = [f"{n}.wav" for n in EMODB_GOOD[3:]]
    expected_war = sum(rows[name] == label for name, label in
                       ((f"{n}.wav", _emodb_label(n)) for n in EMODB_GOOD[3:])) / len(unseen)
    assert provenance["accuracy"]["unseen"]["war"] == pytest.approx(expected_war)
    page = (out / "report.md").read_text()
    assert "close to training" not in page
    assert "never seen by the model" in page and "Not a generalisation figure" in page
    assert "never seen by the model" in done.stdout
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_run_without_a_training_list_says_it_cannot_tell(tmp_path, emodb_tones):
    model, metadata = copy_model(tmp_path / "model")
    write_sidecar(model, metadata, validation_files=[f"{EMODB_GOOD[0]}.flac"])
    out = tmp_path / "out"
    done = ser_bench("--dataset", "emodb", "--data-dir", str(emodb_tones), "--model", str(model), "--warmup", "0",
                     "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["counts"]["unknown"] == len(EMODB_GOOD) - 1
    assert any("cannot be placed as trained on or not" in note for note in results["notes"])
    assert "Not a generalisation figure" not in (out / "report.md").read_text()


def _emodb_label(name: str) -> str:
    from ser_edge.edge.datasets import EMODB_CODES

    return EMODB_CODES[name[5]]
