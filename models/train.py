"""k-fold training and evaluation of TPMNet, resumable per fold, plus the shipping model.

Layout of an output folder:
  run.json            settings + feature config; a resumed run must match it
  fold_NN.json        one finished fold: test metrics, predictions, chosen epoch
  report.json/.md     aggregate over the finished folds (rewritten after each)
  confusion.png       summed confusion matrix over the finished folds
  final.keras/.json   the model trained for shipping (all data but a validation split)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.config import FeatureConfig
from edge.errors import SerEdgeError
from edge.features import model_inputs
from models import metrics
from models.feature_cache import FeatureSet
from models.splits import Fold, make_folds, validation_split


@dataclass(frozen=True)
class TrainSettings:
    dataset: str
    folds: int = 10
    split: str = "random"
    epochs: int = 300
    batch_size: int = 32
    patience: int = 0  # 0: no early stopping, the best validation epoch is still kept
    learning_rate: float = 1e-3
    decay_start: int = 50  # thesis: "after epoch 50 ... reduced by 0.15 every 20 epochs"
    decay_every: int = 20
    decay_factor: float = 0.85  # our reading of "reduced by 0.15": multiply by 0.85
    validation_fraction: float = 0.1
    seed: int = 42
    jit_compile: bool = False
    ablate: tuple[str, ...] = field(default=())

    def learning_rate_at(self, epoch: int) -> float:
        """Epochs count from 0; epochs 0..decay_start-1 run at the initial rate."""
        if epoch < self.decay_start:
            return self.learning_rate
        return self.learning_rate * self.decay_factor ** (1 + (epoch - self.decay_start) // self.decay_every)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["ablate"] = list(self.ablate)
        return data


def run_cross_validation(data: FeatureSet, settings: TrainSettings, config: FeatureConfig, out: Path,
                         only_folds: list[int] | None = None) -> dict:
    """Train and test every fold not already finished in ``out``; return the aggregate report."""
    out.mkdir(parents=True, exist_ok=True)
    check_or_write_run_file(out, settings, config, data)
    folds = make_folds(data.labels, data.speakers, folds=settings.folds, split=settings.split, seed=settings.seed,
                       validation_fraction=settings.validation_fraction)
    for fold in folds:
        fold_file = out / f"fold_{fold.index:02d}.json"
        if fold_file.exists():
            progress(f"fold {fold.index + 1}/{len(folds)}: already finished, skipped")
            continue
        if only_folds is not None and fold.index not in only_folds:
            continue
        result = train_and_test_fold(data, fold, settings, config, total=len(folds))
        write_json_atomically(fold_file, result)
        report = write_report(out, data.label_names, settings)
        progress(f"fold {fold.index + 1}/{len(folds)}: test WAR {result['test']['war']:.4f} "
                 f"UAR {result['test']['uar']:.4f}; mean WAR so far {report['war']['mean']:.4f}")
    return write_report(out, data.label_names, settings)


def train_and_test_fold(data: FeatureSet, fold: Fold, settings: TrainSettings, config: FeatureConfig,
                        total: int) -> dict:
    assert not set(fold.test) & (set(fold.train) | set(fold.validation)), "test items leaked into training"
    started = time.monotonic()
    model, history = fit(data, fold.train, fold.validation, settings, config, seed=settings.seed + fold.index,
                         tag=f"fold {fold.index + 1}/{total}")
    probabilities = predict(model, data.features[fold.test], config)
    predicted = probabilities.argmax(axis=1)
    return {
        "fold": fold.index,
        "sizes": {"train": len(fold.train), "validation": len(fold.validation), "test": len(fold.test)},
        "test_speakers": sorted(set(data.speakers[fold.test].tolist())),
        "best_epoch": history["best_epoch"],
        "epochs_run": len(history["val_accuracy"]),
        "best_val_accuracy": history["best_val_accuracy"],
        "history": history,
        "seconds": time.monotonic() - started,
        "threads": tensorflow_threads(),  # what "seconds" was measured with; 0 is TensorFlow's default (all cores)
        "test": metrics.summarise(data.labels[fold.test], predicted, data.label_names),
        "test_paths": data.paths[fold.test].tolist(),
        "test_true": data.labels[fold.test].tolist(),
        "test_predicted": predicted.tolist(),
    }


def train_final(data: FeatureSet, settings: TrainSettings, config: FeatureConfig, out: Path,
                cross_validation: dict | None) -> Path:
    """The shipping model: all data but a validation split, which picks the epoch."""
    everything = np.arange(len(data.labels))
    train, validation = validation_split(everything, data.labels, data.speakers, split=settings.split,
                                         seed=settings.seed, fraction=settings.validation_fraction)
    model, history = fit(data, train, validation, settings, config, seed=settings.seed, tag="final")
    path = out / "final.keras"
    partial = out / "final.partial.keras"
    model.save(partial)
    partial.replace(path)
    write_json_atomically(out / "final.json", {
        "dataset": settings.dataset,
        "label_names": list(data.label_names),
        "features": config.to_dict(),
        "settings": settings.to_dict(),
        "train_size": len(train),
        "validation_size": len(validation),
        # File names (unique in every supported dataset): the exporter's held-out set.
        "validation_files": sorted(Path(p).name for p in data.paths[validation]),
        "best_epoch": history["best_epoch"],
        "best_val_accuracy": history["best_val_accuracy"],
        "history": history,
        "cross_validation": cross_validation,
    })
    return path


def fit(data: FeatureSet, train: np.ndarray, validation: np.ndarray, settings: TrainSettings,
        config: FeatureConfig, *, seed: int, tag: str):
    """Train one model; return it with the weights of its best validation epoch."""
    import keras

    from models.tpmnet import build_tpmnet

    keras.utils.set_random_seed(seed)
    model = build_tpmnet(len(data.label_names), features=config, ablate=settings.ablate)
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate, beta_1=0.97, beta_2=0.93, epsilon=1e-8)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=settings.jit_compile)
    keeper = BestValidationKeeper(settings, tag)
    model.fit(
        model_inputs(data.features[train], config), data.labels[train],
        validation_data=(model_inputs(data.features[validation], config), data.labels[validation]),
        epochs=settings.epochs, batch_size=settings.batch_size, shuffle=True, verbose=0,
        callbacks=[keras.callbacks.LearningRateScheduler(settings.learning_rate_at), keeper],
    )
    model.set_weights(keeper.best_weights)
    return model, keeper.history()


def tensorflow_threads() -> int:
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def predict(model, features: np.ndarray, config: FeatureConfig) -> np.ndarray:
    return np.asarray(model.predict(model_inputs(features, config), batch_size=64, verbose=0))


def _callback_base():
    import keras

    return keras.callbacks.Callback


class BestValidationKeeper(_callback_base()):
    """Keeps the weights of the best validation accuracy (ties: lower loss); optional patience."""

    def __init__(self, settings: TrainSettings, tag: str):
        super().__init__()
        self.settings, self.tag = settings, tag
        self.best = (-1.0, float("inf"))
        self.best_epoch = -1
        self.best_weights = None
        self.log: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in self.log:
            self.log[key].append(float(logs[key]))
        score = (logs["val_accuracy"], -logs["val_loss"])
        if score > (self.best[0], -self.best[1]):
            self.best = (logs["val_accuracy"], logs["val_loss"])
            self.best_epoch = epoch
            self.best_weights = self.model.get_weights()
        progress(f"{self.tag} epoch {epoch + 1}/{self.settings.epochs} loss {logs['loss']:.3f} "
                 f"acc {logs['accuracy']:.3f} val_acc {logs['val_accuracy']:.3f} "
                 f"best {self.best[0]:.3f}@{self.best_epoch + 1} ({time.monotonic() - self.started:.0f} s)")
        if self.settings.patience and epoch - self.best_epoch >= self.settings.patience:
            self.model.stop_training = True

    def history(self) -> dict:
        return {**self.log, "best_epoch": self.best_epoch + 1, "best_val_accuracy": float(self.best[0])}


def check_or_write_run_file(out: Path, settings: TrainSettings, config: FeatureConfig, data: FeatureSet) -> None:
    """Refuse to resume a folder that holds a run with other settings, features or data."""
    wanted = {"settings": settings.to_dict(), "features": config.to_dict(),
              "label_names": list(data.label_names), "utterances": len(data.labels)}
    run_file = out / "run.json"
    if run_file.exists():
        existing = json.loads(run_file.read_text())
        if existing != wanted:
            changed = sorted(k for k in wanted if existing.get(k) != wanted[k])
            raise SerEdgeError(f"{out} holds a run with different {', '.join(changed)}; "
                               "use a new --out folder (results of different runs are never mixed)")
        return
    write_json_atomically(run_file, wanted)


def write_report(out: Path, label_names: tuple[str, ...], settings: TrainSettings) -> dict:
    results = [json.loads(p.read_text()) for p in sorted(out.glob("fold_*.json"))]
    confusion = np.sum([r["test"]["confusion"] for r in results], axis=0).tolist()
    report = {
        "dataset": settings.dataset,
        "split": settings.split,
        "folds_finished": len(results),
        "folds_planned": settings.folds,
        "settings": settings.to_dict(),
        "war": metrics.spread([r["test"]["war"] for r in results]),
        "uar": metrics.spread([r["test"]["uar"] for r in results]),
        "per_fold": [{"fold": r["fold"], "war": r["test"]["war"], "uar": r["test"]["uar"],
                      "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
                      "seconds": round(r["seconds"], 1), "threads": r.get("threads")} for r in results],
        "pooled": pooled_report(results, label_names),
        "confusion": confusion,
        "label_names": list(label_names),
    }
    write_json_atomically(out / "report.json", report)
    (out / "report.md").write_text(report_markdown(report))
    metrics.save_confusion_png(confusion, label_names, out / "confusion.png",
                               f"{settings.dataset} {settings.split} split, {len(results)} folds")
    return report


def pooled_report(results: list[dict], label_names: tuple[str, ...]) -> dict:
    """Per-class precision / recall / F1 over all finished test folds together."""
    true = np.concatenate([r["test_true"] for r in results]).astype(np.int64)
    predicted = np.concatenate([r["test_predicted"] for r in results]).astype(np.int64)
    return metrics.summarise(true, predicted, label_names)


def report_markdown(report: dict) -> str:
    war, uar = report["war"], report["uar"]
    lines = [
        f"# {report['dataset']}: {report['split']} split, {report['folds_finished']} of "
        f"{report['folds_planned']} folds finished",
        "",
        "WAR is plain accuracy; UAR is the mean of per-class recalls. The epoch of each fold was picked",
        "on a validation split carved from its training part; the test fold chose nothing.",
        "",
        "| metric | min | max | mean | std |",
        "|---|---|---|---|---|",
        f"| WAR % | {100 * war['min']:.2f} | {100 * war['max']:.2f} | {100 * war['mean']:.2f} | {100 * war['std']:.2f} |",
        f"| UAR % | {100 * uar['min']:.2f} | {100 * uar['max']:.2f} | {100 * uar['mean']:.2f} | {100 * uar['std']:.2f} |",
        "",
        "| fold | WAR % | UAR % | best epoch | epochs run | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["per_fold"]:
        lines.append(f"| {row['fold'] + 1} | {100 * row['war']:.2f} | {100 * row['uar']:.2f} | {row['best_epoch']} "
                     f"| {row['epochs_run']} | {row['seconds']} |")
    lines += ["", "Per class, pooled over the finished test folds:", "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name in report["label_names"]:
        row = report["pooled"]["per_class"][name]
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1-score']:.3f} "
                     f"| {int(row['support'])} |")
    lines += ["", "Confusion matrix (rows true, columns predicted), summed over folds:", "",
              "| | " + " | ".join(report["label_names"]) + " |",
              "|---" * (len(report["label_names"]) + 1) + "|"]
    for name, row in zip(report["label_names"], report["confusion"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    settings = report["settings"]
    lines += ["", f"Settings: epochs {settings['epochs']}, batch {settings['batch_size']}, patience "
              f"{settings['patience']}, Adam lr {settings['learning_rate']} (x{settings['decay_factor']} every "
              f"{settings['decay_every']} epochs from epoch {settings['decay_start']}), seed {settings['seed']}.", ""]
    return "\n".join(lines)


def write_json_atomically(path: Path, data: dict) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(path)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
