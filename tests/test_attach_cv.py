"""ser_edge.models.attach_cv: cross-validation figures into a shipped model's sidecar, reports beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ser_edge.edge.errors import SerEdgeError
from ser_edge.models import attach_cv


def write_run(folder: Path, dataset: str, split: str, war: float, finished: int = 10) -> Path:
    folder.mkdir(parents=True)
    stats = {"min": war - 0.1, "max": war + 0.1, "mean": war, "std": 0.05, "n": finished}
    report = {"dataset": dataset, "split": split, "folds_finished": finished, "folds_planned": 10,
              "settings": {"epochs": 40, "patience": 12}, "war": stats, "uar": {**stats, "mean": war - 0.05}}
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "report.md").write_text(f"# {split}\n")
    return folder


@pytest.fixture
def sidecar(tmp_path) -> Path:
    path = tmp_path / "shipped" / "emodb.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"dataset": "emodb", "best_epoch": 56, "cross_validation": None}))
    return path


def test_figures_and_reports_are_attached(tmp_path, sidecar):
    random_run = write_run(tmp_path / "cv", "emodb", "random", 0.58)
    speaker_run = write_run(tmp_path / "speaker", "emodb", "speaker", 0.45, finished=5)
    assert attach_cv.main([str(sidecar), str(random_run), str(speaker_run)]) == 0
    info = json.loads(sidecar.read_text())
    assert info["best_epoch"] == 56  # the rest of the sidecar is kept
    assert [f["split"] for f in info["figures"]] == ["random", "speaker"]
    assert info["cross_validation"]["war"]["mean"] == pytest.approx(0.58)
    assert info["figures"][1]["folds_finished"] == 5 and info["figures"][1]["epochs"] == 40
    assert (sidecar.parent / "cv" / "emodb-speaker" / "report.md").read_text() == "# speaker\n"
    assert info["figures"][0]["report"] == "cv/emodb-random"


def test_a_retrained_model_reattaches_the_reports_already_kept(tmp_path, sidecar):
    (tmp_path / "folds").mkdir()
    (tmp_path / "folds" / "fold_00.json").write_text("{}")
    attach_cv.attach(sidecar, [write_run(tmp_path / "cv-run", "emodb", "random", 0.7)])
    kept = sidecar.parent / "cv" / "emodb-random"
    # A new shipping model of the same recipe: its sidecar has no figures until they are re-attached.
    sidecar.write_text(json.dumps({"dataset": "emodb", "best_epoch": 90, "cross_validation": None}))
    info = attach_cv.attach(sidecar, [kept])
    assert info["best_epoch"] == 90 and info["cross_validation"]["war"]["mean"] == pytest.approx(0.7)
    assert info["figures"][0]["report"] == "cv/emodb-random"
    assert (kept / "report.md").read_text() == "# random\n"


def test_folds_of_another_recipe_say_how_they_differ(tmp_path, sidecar):
    model = {"epochs": 40, "patience": 12, "level_normalise": True, "folds": 10, "split": "random", "seed": 42}
    sidecar.write_text(json.dumps({"dataset": "emodb", "settings": model}))
    run = write_run(tmp_path / "run", "emodb", "speaker", 0.6)  # folds: epochs 40, patience 12, nothing else
    info = attach_cv.attach(sidecar, [run])
    assert info["figures"][0]["differs_from_model"] == ["level_normalise"]
    # Off written or left out is the same setting; split, folds and seed are not the recipe.
    assert attach_cv.recipe_differences({**model, "level_normalise": False, "split": "speaker", "seed": 1,
                                         "init_seed": 7}, {"epochs": 40, "patience": 12}) == []
    assert attach_cv.recipe_differences(model, {**model, "epochs": 150}) == ["epochs"]


def test_wrong_dataset_or_missing_report_is_refused_and_sidecar_untouched(tmp_path, sidecar, capsys):
    before = sidecar.read_text()
    other = write_run(tmp_path / "ravdess", "ravdess", "random", 0.5)
    with pytest.raises(SerEdgeError, match="is a ravdess run"):
        attach_cv.attach(sidecar, [other])
    assert attach_cv.main([str(sidecar), str(tmp_path / "nothing")]) == 2
    assert "no report.json" in capsys.readouterr().err
    assert sidecar.read_text() == before


def test_another_runs_reports_are_never_mixed_with_or_lost(tmp_path, sidecar, capsys):
    old = write_run(tmp_path / "old", "emodb", "random", 0.7)
    for n in range(3):
        (old / f"fold_{n:02d}.json").write_text(json.dumps({"fold": n, "run": "old"}))
    attach_cv.attach(sidecar, [old])
    kept = sidecar.parent / "cv" / "emodb-random"
    attached = sidecar.read_text()

    # The same split with another recipe, two folds finished so far: it would leave fold 3 of the old one.
    new = tmp_path / "new"
    new.mkdir()
    report = json.loads((old / "report.json").read_text())
    report["settings"] = {**report["settings"], "level_normalise": True}
    (new / "report.json").write_text(json.dumps(report))
    (new / "folds").mkdir()  # kept as this project keeps them: fold files under folds/
    for n in range(2):
        (new / "folds" / f"fold_{n:02d}.json").write_text(json.dumps({"fold": n, "run": "new"}))
    speaker = write_run(tmp_path / "speaker", "emodb", "speaker", 0.5)
    assert attach_cv.main([str(sidecar), str(speaker), str(new)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "settings differ: level_normalise" in err and "history/" in err
    # Nothing was copied, not even the run that came first, and the sidecar is as it was.
    assert not (sidecar.parent / "cv" / "emodb-speaker").exists()
    assert sidecar.read_text() == attached
    assert {json.loads(p.read_text())["run"] for p in (kept / "folds").glob("*.json")} == {"old"}

    # The same run with fewer folds than were kept would lose one.
    (new / "report.json").write_text((old / "report.json").read_text())
    with pytest.raises(SerEdgeError, match="fold_02.json, which .* lacks"):
        attach_cv.attach(sidecar, [new])

    # Moved into history, the folder takes the new run, folds read from its folds/.
    kept.rename(tmp_path / "history-emodb-random")
    (new / "report.json").write_text(json.dumps(report))
    attach_cv.attach(sidecar, [new])
    assert sorted(p.name for p in (kept / "folds").glob("*.json")) == ["fold_00.json", "fold_01.json"]
    assert {json.loads(p.read_text())["run"] for p in (kept / "folds").glob("*.json")} == {"new"}
