"""Attach cross-validation figures to a shipped model's sidecar, and keep their reports beside it.

    python -m ser_edge.models.attach_cv models/shipped/emodb.json runs/emodb-cv runs/emodb-speaker

The shipping model is trained once on all data (but its validation split);
the figures that say how well that recipe generalises come from separate
``ser-train`` cross-validation runs. This copies each run's ``report.json``,
``report.md``, ``confusion.png``, ``run.json`` and fold files to ``models/shipped/cv/<dataset>-<split>/``
and writes a summary of every run into the sidecar's ``figures`` (the first
random-split run also as ``cross_validation``), which ``ser-export`` embeds in
every ``.tflite`` and ``ser-edge info`` shows. A folder already under
``cv/`` is summarised where it is (a shipping model retrained with the same
cross-validation behind it). A folder that holds another run's reports (other
settings), or folds the run lacks, is refused before anything is copied: move
it into the model's ``history/`` first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ser_edge.edge import atomic
from ser_edge.edge import command
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models import WRITTEN_WHEN_ON  # absent in a run file means off

REPORT_FILES = ("report.json", "report.md", "confusion.png", "run.json")
# Settings that may differ between the folds and the shipping model without changing the recipe.
NOT_RECIPE = frozenset({"dataset", "folds", "split", "seed", "init_seed", "jit_compile"})


def settings_differences(first: dict, second: dict, ignore: frozenset = frozenset()) -> list[str]:
    """The settings two runs were trained with differently (off written or left out is the same)."""
    first, second = ({**WRITTEN_WHEN_ON, **s} for s in (first, second))
    return sorted(k for k in set(first) | set(second) if k not in ignore and first.get(k) != second.get(k))


def recipe_differences(model_settings: dict | None, fold_settings: dict) -> list[str]:
    """The recipe settings in which the cross-validation's folds were trained unlike the model."""
    return settings_differences(model_settings, fold_settings, NOT_RECIPE) if model_settings else []


def summarise(report: dict, folder: str, model_settings: dict | None = None) -> dict:
    settings = report["settings"]
    return {
        "split": report["split"],
        "folds_finished": report["folds_finished"],
        "folds_planned": report["folds_planned"],
        "epochs": settings["epochs"],
        "patience": settings["patience"],
        "war": report["war"],
        "uar": report["uar"],
        "report": folder,
        # Figures of a recipe that is not quite the model's say so (ser-edge info shows it).
        "differs_from_model": recipe_differences(model_settings, settings),
    }


def fold_files(run_dir: Path) -> list[Path]:
    """A run's fold files: at its top as ser-train writes them, or under folds/ as they are kept here."""
    return sorted(run_dir.glob("fold_*.json")) or sorted((run_dir / "folds").glob("fold_*.json"))


def copy_reports(run_dir: Path, target: Path) -> None:
    for name in REPORT_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, target / name)
    # The fold files too: every figure of the report can be recomputed from them.
    (target / "folds").mkdir(exist_ok=True)
    for fold in fold_files(run_dir):
        shutil.copy2(fold, target / "folds" / fold.name)


def check_target(run_dir: Path, report: dict, target: Path) -> None:
    """Refuse to copy a run over reports it would mix with: another run's (other settings: the figures
    of two recipes in one folder), or the same run's with folds this copy lacks (they would be lost)."""
    if not (target / "report.json").is_file():
        return
    kept = json.loads((target / "report.json").read_text())
    differ = settings_differences(report["settings"], kept["settings"])
    if differ:
        raise SerEdgeError(f"{target} holds another run's reports (settings differ: {', '.join(differ)}); "
                           "move that folder into the model's history/ first")
    finished = {p.name for p in fold_files(run_dir)}
    lost = sorted(p.name for p in (target / "folds").glob("fold_*.json") if p.name not in finished)
    if lost:
        raise SerEdgeError(f"{target} holds {', '.join(lost)}, which {run_dir} lacks; attaching would lose them")


def attach(sidecar: Path, run_dirs: list[Path]) -> dict:
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError) as error:
        raise SerEdgeError(f"{sidecar}: not a readable model sidecar ({error})") from None
    # Every run is checked before anything is copied: a refusal leaves the folders and the sidecar as they were.
    checked = []
    for run_dir in run_dirs:
        report_path = run_dir / "report.json"
        if not report_path.is_file():
            raise SerEdgeError(f"{run_dir}: no report.json (run ser-train there first)")
        report = json.loads(report_path.read_text())
        if report["dataset"] != info["dataset"]:
            raise SerEdgeError(f"{run_dir} is a {report['dataset']} run; {sidecar} is a {info['dataset']} model")
        target = sidecar.parent / "cv" / f"{report['dataset']}-{report['split']}"
        kept_in_place = target.resolve() == run_dir.resolve()  # a retrained model re-attaching the reports kept
        if not kept_in_place:
            check_target(run_dir, report, target)
        checked.append((run_dir, report, target, kept_in_place))
    figures = []
    for run_dir, report, target, kept_in_place in checked:
        if not kept_in_place:
            target.mkdir(parents=True, exist_ok=True)
            copy_reports(run_dir, target)
        figures.append(summarise(report, str(target.relative_to(sidecar.parent)), info.get("settings")))
    info["figures"] = figures
    random_runs = [figure for figure in figures if figure["split"] == "random"]
    info["cross_validation"] = random_runs[0] if random_runs else None
    atomic.write_json(sidecar, info)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sidecar", type=Path, help="models/shipped/NAME.json")
    parser.add_argument("runs", type=Path, nargs="+", help="ser-train output folders")
    args = parser.parse_args(argv)
    return command.run("attach_cv", lambda: report(attach(args.sidecar, args.runs)))


def report(info: dict) -> None:
    for figure in info["figures"]:
        differs = figure["differs_from_model"]
        print(f"{figure['split']}: {figure['folds_finished']}/{figure['folds_planned']} folds, "
              f"WAR {100 * figure['war']['mean']:.2f} %, UAR {100 * figure['uar']['mean']:.2f} %"
              + (f" (folds trained unlike the model in: {', '.join(differs)})" if differs else ""))


if __name__ == "__main__":
    sys.exit(main())
