"""The learning-curve table reads the epochs it names, and copies folds in only from outside its folder
and outside the committed models/shipped tree."""

import json
from pathlib import Path

from ser_edge.models import curves

SHIPPED_FOLD = Path(__file__).parents[1] / "models" / "shipped" / "cv" / "ravdess-random" / "folds" / "fold_00.json"


def fold_file(path, scale):
    fold = {"history": {"accuracy": [scale * e / 100 for e in range(1, 21)],
                        "val_accuracy": [scale * e / 200 for e in range(1, 21)]},
            "best_epoch": 17, "test": {"war": 0.6125}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fold))
    return path


def test_table_cells_are_the_named_epochs_and_inside_folds_are_not_copied(tmp_path):
    out = tmp_path / "probe"
    inside = fold_file(out / "folds" / "fold_00.json", 1.0)
    outside = fold_file(tmp_path / "runs" / "fold_01.json", 2.0)
    assert curves.main(["--out", str(out), f"a={inside}", f"b={outside}"]) == 0
    lines = [line for line in (out / "curves.md").read_text().splitlines() if line.startswith(("| a ", "| b "))]
    rows = {tuple(cells[:2]): cells[2:] for cells in
            ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)}
    # ep 5, 10, 20 of a training curve that is epoch/100 (and twice that for b)
    assert rows[("a", "train (training mode)")][:3] == ["5.0", "10.0", "20.0"]
    assert rows[("b", "validation")][:3] == ["5.0", "10.0", "20.0"]
    assert rows[("a", "train (training mode)")][3:5] == ["17", "61.25"]
    assert (out / "curves.png").stat().st_size > 0
    assert not (out / "a.fold.json").exists()
    assert json.loads((out / "b.fold.json").read_text())["best_epoch"] == 17


def test_a_fold_already_committed_under_models_shipped_is_not_copied(tmp_path):
    out = tmp_path / "probe"
    outside = fold_file(tmp_path / "runs" / "fold_01.json", 1.0)
    assert curves.main(["--out", str(out), f"shipped={SHIPPED_FOLD}", f"run={outside}"]) == 0
    assert "| shipped | train (training mode) |" in (out / "curves.md").read_text()
    assert not (out / "shipped.fold.json").exists()
    assert (out / "run.fold.json").exists()
