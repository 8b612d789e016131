"""Learning curves of finished folds side by side: a markdown table and a PNG.

    python -m ser_edge.models.curves --out models/shipped/probes/ravdess-speaker-fold1 \\
        gate-thesis=runs/gpu/probe-gate-thesis/fold_00.json authors-converging=runs/.../fold_00.json

Compares recipes and readings by their curves, not one number: training
accuracy (training mode, augmented batches), validation accuracy (what picks
the epoch) and, where the fold recorded it with ``--track-test``, test accuracy
(diagnostic only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHECKPOINTS = (5, 10, 20, 40, 80, 100, 150, 200, 300)
# The repository's models/ folder (this module's own); its shipped/ folds are committed.
COMMITTED_MODELS = Path(__file__).resolve().parent / "shipped"


def load(spec: str) -> tuple[str, Path, dict]:
    name, _, path = spec.partition("=")
    if not path:
        raise SystemExit(f"curves: {spec!r} is not NAME=FOLD_JSON")
    return name, Path(path), json.loads(Path(path).read_text())


def table(runs: list[tuple[str, dict]]) -> str:
    epochs = max(len(fold["history"]["accuracy"]) for _, fold in runs)
    marks = [e for e in CHECKPOINTS if e <= epochs]
    lines = ["| run | curve | " + " | ".join(f"ep {e}" for e in marks) + " | chosen epoch | test WAR at it |",
             "|---|---|" + "---|" * len(marks) + "---|---|"]
    for name, fold in runs:
        history = fold["history"]
        for key, label in (("accuracy", "train (training mode)"), ("val_accuracy", "validation"),
                           ("test_accuracy_diagnostic", "test (diagnostic)")):
            curve = history.get(key)
            if not curve:
                continue
            cells = [f"{100 * curve[e - 1]:.1f}" if e <= len(curve) else "" for e in marks]
            tail = (f"{fold['best_epoch']} | {100 * fold['test']['war']:.2f}" if key == "accuracy" else " | ")
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + f" | {tail} |")
    return "\n".join(lines) + "\n"


def plot(runs: list[tuple[str, dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for (name, fold), color in zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3):
        history = fold["history"]
        for axis, key in zip(axes, ("accuracy", "val_accuracy", "test_accuracy_diagnostic")):
            curve = history.get(key)
            if curve:
                axis.plot(range(1, len(curve) + 1), [100 * v for v in curve], color=color, label=name, lw=1.2)
    for axis, label in zip(axes, ("training accuracy (training mode)", "validation accuracy (picks the epoch)",
                                  "test accuracy (diagnostic only)")):
        axis.set_title(label)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy %")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.models.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=path/to/fold_NN.json")
    parser.add_argument("--out", type=Path, required=True, help="folder for curves.md and curves.png")
    parser.add_argument("--title", default="learning curves")
    args = parser.parse_args(argv)
    loaded = [load(spec) for spec in args.runs]
    runs = [(name, fold) for name, _, fold in loaded]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curves.md").write_text(f"# {args.title}\n\n" + table(runs))
    plot(runs, args.out / "curves.png", args.title)
    # Copy the folds in so a probe folder stands alone (runs/ is not committed),
    # unless they already live under it or in this project's committed models/ tree.
    kept_where_they_are = (args.out.resolve(), COMMITTED_MODELS)
    for name, path, fold in loaded:
        if not any(path.resolve().is_relative_to(folder) for folder in kept_where_they_are):
            (args.out / f"{name}.fold.json").write_text(json.dumps(fold, indent=1))
    print(f"{len(runs)} runs: {args.out / 'curves.md'}, {args.out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
