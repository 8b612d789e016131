"""k-fold training and evaluation of TPMNet, resumable per fold, plus the shipping model.

Layout of an output folder:
  run.json            settings + feature config; a resumed run must match it
  fold_NN.json        one finished fold: test metrics, predictions, chosen epoch
  fold_NN.keras       with keep_models: that fold's model (its feature config is in fold_NN.json)
  report.json/.md     aggregate over the finished folds (rewritten after each)
  confusion.png       summed confusion matrix over the finished folds
  final.keras/.json   the model trained for shipping (all data but a validation split)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_edge.edge import atomic
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.features import model_inputs, standardize
from ser_edge.models.level_reference import level_reference
from ser_edge.models import RECIPES, WRITTEN_WHEN_ON, metrics
from ser_edge.models.feature_cache import FeatureSet
from ser_edge.models.splits import Fold, make_folds, validation_split

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a run's result; saved in run.json (a resume must match it)."""

    dataset: str
    folds: int = 10
    split: str = "random"
    reading: str = "authors"
    recipe: str = "converging"
    epochs: int = 150
    batch_size: int = 32
    patience: int = 0  # 0: no early stopping, the best validation epoch is still kept
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    schedule: str = "cosine"  # "step": the thesis's decay; "cosine": warm-up then cosine to 0
    warmup_epochs: int = 5
    decay_start: int = 50  # step schedule; thesis: "after epoch 50 ... reduced by 0.15 every 20 epochs"
    decay_every: int = 20
    decay_factor: float = 0.85  # our reading of "reduced by 0.15": multiply by 0.85
    dropout: float = 0.0  # SpatialDropout2D of the three conv blocks
    head_dropout: float = 0.0
    bn_momentum: float = 0.9
    standardize: bool = True  # per-coefficient, statistics of the training part
    utterance_mean: bool = False  # cepstral mean subtraction per utterance (FeatureConfig.utterance_mean)
    level_normalise: bool = False  # c0 to the training part's loudest-frame level (FeatureConfig.level_reference)
    speaker_normalise: bool = False  # each speaker standardised by their own statistics (speaker_norm.py)
    speaker_reference: str = "all"  # which of a speaker's utterances give the statistics (speaker_norm.REFERENCES)
    add_corpus: str = ""  # another corpus's shared emotions as training material only (mixed_corpus.py)
    speed_perturb: tuple[float, ...] = ()  # speeds of the perturbed copies drawn in training (feature_cache)
    noise_copies: int = 0  # noisy copies drawn in training (models/noise.py)
    noise_snr: tuple[float, ...] = ()  # (LOW, HIGH) dB their SNRs are drawn from; () without noise
    head_scale: float = 20.0  # a constant on the head's input: the capsule outputs have norm <= 1
    label_smoothing: float = 0.1
    loss: str = "crossentropy"  # or "margin": the authors' margin loss + 0.392 x MSE
    augment: bool = True  # see ser_edge.models.feed
    validation_fraction: float = 0.1
    seed: int = 42  # the folds and the validation split; also the training's, unless init_seed is set
    init_seed: int | None = None  # weights, batches and augmentation alone: the same files, another model
    jit_compile: bool = False
    ablate: tuple[str, ...] = field(default=())

    @classmethod
    def from_recipe(cls, recipe: str, **overrides) -> "TrainSettings":
        """The named recipe's values (models.RECIPES), then ``overrides`` (None values ignored)."""
        values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(recipe=recipe, **values)

    def learning_rate_at(self, epoch: int) -> float:
        """Epochs count from 0."""
        if self.schedule == "cosine":
            if epoch < self.warmup_epochs:
                return self.learning_rate * (epoch + 1) / self.warmup_epochs
            progress_ = (epoch - self.warmup_epochs) / max(1, self.epochs - self.warmup_epochs)
            return 0.5 * self.learning_rate * (1 + math.cos(math.pi * progress_))
        if epoch < self.decay_start:  # step: epochs 0..decay_start-1 run at the initial rate
            return self.learning_rate
        return self.learning_rate * self.decay_factor ** (1 + (epoch - self.decay_start) // self.decay_every)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["ablate"] = list(self.ablate)
        data["speed_perturb"] = list(self.speed_perturb)
        data["noise_snr"] = list(self.noise_snr)
        for name, off in WRITTEN_WHEN_ON.items():  # added later: written only when on, so earlier run files match
            if data[name] == off:
                del data[name]
        return data

    @property
    def training_seed(self) -> int:
        return self.seed if self.init_seed is None else self.init_seed


def run_cross_validation(data: FeatureSet, settings: TrainSettings, config: FeatureConfig, out: Path,
                         only_folds: list[int] | None = None, checkpoint_every: int = 10,
                         track_test: bool = False, keep_models: bool = False) -> dict:
    """Train and test every fold not already finished in ``out``; return the aggregate report.

    A fold interrupted mid-way resumes from its last checkpoint (``fold_NN.ckpt/``). With
    ``keep_models`` each fold's model is saved beside its result, for probes that re-test it.
    """
    out.mkdir(parents=True, exist_ok=True)
    check_or_write_run_file(out, settings, config, data)
    if settings.speaker_normalise:
        from ser_edge.models.speaker_norm import speaker_normalised

        data = speaker_normalised(data, settings.speaker_reference)
    folds = training_folds(data, settings)
    for fold in folds:
        fold_file = out / f"fold_{fold.index:02d}.json"
        if fold_file.exists():
            log.info(f"fold {fold.index + 1}/{len(folds)}: already finished, skipped")
            continue
        if only_folds is not None and fold.index not in only_folds:
            continue
        checkpoints = out / f"fold_{fold.index:02d}.ckpt"
        result = train_and_test_fold(data, fold, settings, config, total=len(folds), checkpoints=checkpoints,
                                     checkpoint_every=checkpoint_every, track_test=track_test,
                                     keep_model=out / f"fold_{fold.index:02d}.keras" if keep_models else None)
        atomic.write_json(fold_file, result)
        shutil.rmtree(checkpoints, ignore_errors=True)
        report = write_report(out, data.label_names, settings)
        log.info(f"fold {fold.index + 1}/{len(folds)}: test WAR {result['test']['war']:.4f} "
                 f"UAR {result['test']['uar']:.4f}; mean WAR so far {report['war']['mean']:.4f}")
    return write_report(out, data.label_names, settings)


def training_folds(data: FeatureSet, settings: TrainSettings) -> list[Fold]:
    """The folds of the trained dataset; an added corpus (``data.added``) joins every training part only."""
    if data.added_corpus != settings.add_corpus:
        raise SerEdgeError(f"the run adds {settings.add_corpus or 'no corpus'}, the features hold "
                           f"{data.added_corpus or 'none'}")
    size = data.trained_size
    folds = make_folds(data.labels[:size], data.speakers[:size], folds=settings.folds, split=settings.split,
                       seed=settings.seed, validation_fraction=settings.validation_fraction)
    added = np.arange(size, len(data.labels))
    return [dataclasses.replace(fold, train=np.concatenate([fold.train, added])) for fold in folds]


def train_and_test_fold(data: FeatureSet, fold: Fold, settings: TrainSettings, config: FeatureConfig,
                        total: int, checkpoints: Path | None = None, checkpoint_every: int = 10,
                        track_test: bool = False, keep_model: Path | None = None) -> dict:
    assert not set(fold.test) & (set(fold.train) | set(fold.validation)), "test items leaked into training"
    started = time.monotonic()
    config = fold_features(data, fold.train, settings, config)
    diagnostic = fold.test if track_test else None
    model, history = fit(data, fold.train, fold.validation, settings, config,
                         seed=settings.training_seed + fold.index, tag=f"fold {fold.index + 1}/{total}",
                         checkpoints=checkpoints, checkpoint_every=checkpoint_every, diagnostic_test=diagnostic)
    probabilities = predict(model, data.features[fold.test], config)
    predicted = probabilities.argmax(axis=1)
    if keep_model is not None:
        with atomic.replacing(keep_model) as partial:
            model.save(partial)
    return {
        "fold": fold.index,
        "sizes": {"train": len(fold.train), "validation": len(fold.validation), "test": len(fold.test)},
        "test_speakers": sorted(set(data.speakers[fold.test].tolist())),
        "best_epoch": history["best_epoch"],
        "epochs_run": len(history["val_accuracy"]),
        "best_val_accuracy": history["best_val_accuracy"],
        # Inference-mode accuracy on the (unaugmented) training part: does the recipe fit?
        "train_accuracy": history["train_accuracy"],
        "history": history,
        # A fold resumed elsewhere names each machine with its epochs, and its seconds are the sum.
        "seconds": history["seconds"] if len(history["machines"]) > 1 else time.monotonic() - started,
        "machine": describe_machines(history["machines"]),
        "threads": tensorflow_threads(),  # what "seconds" was measured with; 0 is the backend's default
        "test": metrics.summarise(data.labels[fold.test], predicted, data.label_names),
        "test_paths": data.paths[fold.test].tolist(),
        "test_true": data.labels[fold.test].tolist(),
        "test_predicted": predicted.tolist(),
        "features": config.to_dict(),  # the fold's input normalisation: what re-testing its model needs
    }


def fold_features(data: FeatureSet, train: np.ndarray, settings: TrainSettings, config: FeatureConfig) -> FeatureConfig:
    """``config`` with the run's input normalisation; statistics from the training part only (never
    validation or test), measured after the cepstral mean subtraction where the run uses it."""
    reference = level_reference(data.features[train]) if settings.level_normalise else None
    config = dataclasses.replace(config, utterance_mean=settings.utterance_mean, level_reference=reference)
    if not settings.standardize:
        return config
    raw = dataclasses.replace(config, input_mean=None, input_std=None)
    frames = standardize(data.features[train], raw).astype(np.float64).reshape(-1, data.features.shape[-1])
    return config.standardized(frames.mean(axis=0), np.maximum(frames.std(axis=0), 1e-6))


def train_final(data: FeatureSet, settings: TrainSettings, config: FeatureConfig, out: Path,
                cross_validation: dict | None, checkpoint_every: int = 10) -> Path:
    """The shipping model: all data but a validation split, which picks the epoch."""
    size = data.trained_size
    train, validation = validation_split(np.arange(size), data.labels, data.speakers, split=settings.split,
                                         seed=settings.seed, fraction=settings.validation_fraction)
    train = np.concatenate([train, np.arange(size, len(data.labels))])  # an added corpus: training only
    pooled = None
    if settings.speaker_normalise:
        from ser_edge.models.speaker_norm import frame_statistics, speaker_normalised

        if settings.speaker_reference != "all":  # the device's running estimate takes all it hears
            raise SerEdgeError("a final model takes its speakers' statistics from all their utterances")

        # What the device uses until it has heard its own speaker: the training part's plain frames, pooled.
        pooled = frame_statistics(data.features[train])
        data = speaker_normalised(data)
    config = fold_features(data, train, settings, config)
    model, history = fit(data, train, validation, settings, config, seed=settings.training_seed, tag="final",
                         checkpoints=out / "final.ckpt", checkpoint_every=checkpoint_every)
    if pooled is not None:  # only now: the features above are already each speaker's own standardisation
        config = config.with_speaker_statistics(*pooled)
    path = out / "final.keras"
    with atomic.replacing(path) as partial:
        model.save(partial)
    atomic.write_json(out / "final.json", {
        "dataset": settings.dataset,
        "label_names": list(data.label_names),
        "features": config.to_dict(),
        "settings": settings.to_dict(),
        "train_size": len(train),
        "validation_size": len(validation),
        # File names (unique in every supported dataset): the exporter's held-out set, and what
        # ser-bench needs to tell held-out files from training files.
        "validation_files": sorted(Path(p).name for p in data.paths[validation]),
        "training_files": sorted(Path(p).name for p in data.paths[train]),
        "best_epoch": history["best_epoch"],
        "best_val_accuracy": history["best_val_accuracy"],
        "train_accuracy": history["train_accuracy"],
        "history": history,
        "machine": machine_description(),
        "cross_validation": cross_validation,
    })
    shutil.rmtree(out / "final.ckpt", ignore_errors=True)
    return path


def build_model(settings: TrainSettings, classes: int, config: FeatureConfig):
    from ser_edge.models.tpmnet import build_tpmnet

    return build_tpmnet(classes, features=config, ablate=settings.ablate, reading=settings.reading,
                        dropout=settings.dropout, head_dropout=settings.head_dropout,
                        bn_momentum=settings.bn_momentum, head_scale=settings.head_scale)


def compile_model(model, settings: TrainSettings) -> None:
    import keras

    from ser_edge.models.losses import margin_mse_loss

    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate, beta_1=settings.beta_1,
                                      beta_2=settings.beta_2, epsilon=1e-8)
    if settings.loss == "margin":
        loss = margin_mse_loss(settings.label_smoothing)
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                  jit_compile=settings.jit_compile if keras.backend.backend() == "tensorflow" else "auto")


def fit(data: FeatureSet, train: np.ndarray, validation: np.ndarray, settings: TrainSettings,
        config: FeatureConfig, *, seed: int, tag: str, checkpoints: Path | None = None,
        checkpoint_every: int = 10, diagnostic_test: np.ndarray | None = None):
    """Train one model; return it with the weights of its best validation epoch.

    With ``checkpoints``, the weights, optimiser state and history are saved
    every ``checkpoint_every`` epochs, and a later call resumes from them.
    ``diagnostic_test`` (indices) records test accuracy per epoch for the
    report only: it never chooses anything.
    """
    import keras

    from ser_edge.models.checkpoint import load_checkpoint
    from ser_edge.models.feed import make_feed, one_hot

    keras.utils.set_random_seed(seed)
    classes = len(data.label_names)
    model = build_model(settings, classes, config)
    compile_model(model, settings)
    if tuple(settings.speed_perturb) != data.speeds:
        raise SerEdgeError(f"the run wants speeds {list(settings.speed_perturb)}, the features have {list(data.speeds)}")
    if settings.noise_copies != len(data.noise_features) or tuple(settings.noise_snr) != tuple(data.noise_snr):
        raise SerEdgeError(f"the run wants {settings.noise_copies} noisy copies (SNR {list(settings.noise_snr)} dB), "
                           f"the features have {len(data.noise_features)} ({list(data.noise_snr)} dB)")
    feed = make_feed(data.features[train], data.labels[train], classes, config, batch_size=settings.batch_size,
                     seed=seed, augmented=settings.augment, copies=tuple(f[train] for f in data.copies))
    keeper = BestValidationKeeper(settings, tag, feed, checkpoints, checkpoint_every)
    if diagnostic_test is not None:
        keeper.diagnostic = (model_inputs(data.features[diagnostic_test], config), data.labels[diagnostic_test])
    initial_epoch = load_checkpoint(checkpoints, model, keeper) if checkpoints else 0
    if initial_epoch:
        log.info(f"{tag}: resumed at epoch {initial_epoch + 1} from {checkpoints}")
    feed.start_epoch(initial_epoch)
    if initial_epoch < settings.epochs and not keeper.stopped:
        model.fit(
            feed, validation_data=(model_inputs(data.features[validation], config),
                                   one_hot(data.labels[validation], classes)),
            epochs=settings.epochs, initial_epoch=initial_epoch, verbose=0,
            callbacks=[keras.callbacks.LearningRateScheduler(settings.learning_rate_at), keeper],
        )
    last_train = accuracy(model, data, train, config)
    model.set_weights(keeper.best_weights)
    history = keeper.history()
    history["seconds"] = round(keeper.seconds(), 1)  # training alone, resumed runs included
    history["machines"] = keeper.machine_runs()
    history["train_accuracy"] = {"best_epoch": accuracy(model, data, train, config), "last_epoch": last_train}
    return model, history


def accuracy(model, data: FeatureSet, indices: np.ndarray, config: FeatureConfig) -> float:
    predicted = predict(model, data.features[indices], config).argmax(axis=1)
    return float(np.mean(predicted == data.labels[indices]))


def describe_machines(runs: list[list]) -> str:
    if len(runs) <= 1:
        return runs[0][0] if runs else machine_description()
    return "; ".join(f"{machine} (epochs {first}-{last})" for machine, first, last in runs)


def machine_description() -> str:
    """Which machine trained: figures must say so (a GPU fold and a CPU fold are not timed alike)."""
    import os
    import platform

    import keras

    from ser_edge.benchmarks.host import cpu_model

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"keras {keras.__version__} jax {jax.__version__} on {device.platform}: {device.device_kind}"
    import tensorflow as tf

    # The CPU's model and core count, not just "x86_64": sessions here land on different CPUs (AMD EPYC, Intel
    # Xeon) whose epochs take different times, and a fold's seconds must say which one they were counted on.
    return (f"keras {keras.__version__} tensorflow {tf.__version__} on cpu: {cpu_model()}, {platform.machine()}, "
            f"{os.cpu_count()} cores")


def tensorflow_threads() -> int:
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def predict(model, features: np.ndarray, config: FeatureConfig) -> np.ndarray:
    return np.asarray(model.predict(model_inputs(features, config), batch_size=64, verbose=0))


def _callback_base():
    import keras

    return keras.callbacks.Callback


class BestValidationKeeper(_callback_base()):
    """Keeps the weights of the best validation accuracy (ties: lower loss); optional patience; checkpoints."""

    def __init__(self, settings: TrainSettings, tag: str, feed=None, checkpoints: Path | None = None,
                 checkpoint_every: int = 10):
        super().__init__()
        self.settings, self.tag, self.feed = settings, tag, feed
        self.checkpoints, self.checkpoint_every = checkpoints, checkpoint_every
        self.best = (-1.0, float("inf"))
        self.best_epoch = -1
        self.best_weights = None
        self.log: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
        self.diagnostic = None
        self.test_log: list[float] = []
        self.stopped = False
        self.seconds_before = 0.0
        self.started = time.monotonic()
        self.machines: list[list] = []  # [machine, first epoch, last epoch] of the runs before a resume

    def on_epoch_begin(self, epoch, logs=None):
        if self.feed is not None:
            self.feed.start_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in self.log:
            self.log[key].append(float(logs[key]))
        if self.diagnostic is not None:
            inputs, labels = self.diagnostic
            predicted = np.asarray(self.model.predict(inputs, batch_size=64, verbose=0)).argmax(axis=1)
            self.test_log.append(float(np.mean(predicted == labels)))
        score = (logs["val_accuracy"], -logs["val_loss"])
        if score > (self.best[0], -self.best[1]):
            self.best = (logs["val_accuracy"], logs["val_loss"])
            self.best_epoch = epoch
            self.best_weights = self.model.get_weights()
        log.info(f"{self.tag} epoch {epoch + 1}/{self.settings.epochs} loss {logs['loss']:.3f} "
                 f"acc {logs['accuracy']:.3f} val_acc {logs['val_accuracy']:.3f} "
                 f"best {self.best[0]:.3f}@{self.best_epoch + 1} ({self.seconds():.0f} s)")
        if self.settings.patience and epoch - self.best_epoch >= self.settings.patience:
            self.model.stop_training = True
            self.stopped = True
        if self.checkpoints and ((epoch + 1) % self.checkpoint_every == 0 or self.stopped):
            from ser_edge.models.checkpoint import save_checkpoint

            save_checkpoint(self.checkpoints, self.model, self, epoch + 1)

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self.started

    def state(self) -> dict:
        return {"log": self.log, "test_log": self.test_log, "best": list(self.best), "best_epoch": self.best_epoch,
                "stopped": self.stopped, "seconds": self.seconds(), "machines": self.machine_runs()}

    def machine_runs(self) -> list[list]:
        """Which machine trained which epochs (1-based, inclusive), this run's included."""
        done_before = self.machines[-1][2] if self.machines else 0
        runs = list(self.machines)
        if len(self.log["loss"]) > done_before:
            runs.append([machine_description(), done_before + 1, len(self.log["loss"])])
        return runs

    def restore(self, state: dict, best_weights) -> None:
        self.log, self.test_log = state["log"], state["test_log"]
        self.best, self.best_epoch = tuple(state["best"]), state["best_epoch"]
        self.stopped, self.seconds_before = state["stopped"], state["seconds"]
        # Checkpoints from before this was recorded: the earlier epochs' machine is unknown.
        self.machines = state.get("machines") or [["not recorded", 1, len(self.log["loss"])]]
        self.started = time.monotonic()
        self.best_weights = best_weights

    def history(self) -> dict:
        history = {**self.log, "best_epoch": self.best_epoch + 1, "best_val_accuracy": float(self.best[0])}
        if self.test_log:
            history["test_accuracy_diagnostic"] = self.test_log
        return history


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
    atomic.write_json(run_file, wanted)


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
                      "train_accuracy": (r.get("train_accuracy") or {}).get("best_epoch"),
                      "train_accuracy_last": (r.get("train_accuracy") or {}).get("last_epoch"),
                      **test_epoch_diagnostics(r),
                      "seconds": round(r["seconds"], 1), "threads": r.get("threads"),
                      "machine": r.get("machine")} for r in results],
        "pooled": pooled_report(results, label_names),
        "confusion": confusion,
        "label_names": list(label_names),
    }
    atomic.write_json(out / "report.json", report)
    (out / "report.md").write_text(report_markdown(report))
    metrics.save_confusion_png(confusion, label_names, out / "confusion.png",
                               f"{settings.dataset} {settings.split} split, {len(results)} folds")
    return report


def test_epoch_diagnostics(result: dict) -> dict:
    """What the test fold would have said per epoch (recorded with --track-test; it chose nothing).

    ``test_best_epoch_war`` is the thesis's protocol (best test epoch), shown
    only to compare with its figures; ``test_last_epoch_war`` is the last epoch's.
    """
    curve = result.get("history", {}).get("test_accuracy_diagnostic")
    if not curve:
        return {}
    return {"test_best_epoch_war": max(curve), "test_best_epoch": int(np.argmax(curve)) + 1,
            "test_last_epoch_war": curve[-1]}


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
    ]
    rows = report["per_fold"]
    fits = [r["train_accuracy"] for r in rows if r.get("train_accuracy") is not None]
    if fits:
        lines.insert(-1, f"| training accuracy % (chosen epoch, inference mode) | {100 * min(fits):.2f} | "
                     f"{100 * max(fits):.2f} | {100 * np.mean(fits):.2f} | {100 * np.std(fits):.2f} |")
    for key, label in (("test_last_epoch_war", "WAR % at the last epoch (diagnostic)"),
                       ("test_best_epoch_war", "WAR % at the best *test* epoch (the thesis's protocol; diagnostic)")):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            lines.insert(-1, f"| {label} | {100 * min(values):.2f} | {100 * max(values):.2f} | "
                         f"{100 * np.mean(values):.2f} | {100 * np.std(values):.2f} |")
    lines += [
        "| fold | WAR % | UAR % | best epoch | epochs run | training acc. % | last-epoch WAR % | best test epoch | seconds | machine |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def percent(value):
        return "" if value is None else f"{100 * value:.2f}"

    for row in rows:
        best_test = f"{row['test_best_epoch']} ({percent(row['test_best_epoch_war'])})" if "test_best_epoch" in row else ""
        lines.append(f"| {row['fold'] + 1} | {100 * row['war']:.2f} | {100 * row['uar']:.2f} | {row['best_epoch']} "
                     f"| {row['epochs_run']} | {percent(row.get('train_accuracy'))} "
                     f"| {percent(row.get('test_last_epoch_war'))} | {best_test} | {row['seconds']} "
                     f"| {row.get('machine') or ''} |")
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
    lines += ["", "Settings: " + ", ".join(f"{key} {value}" for key, value in settings.items()) + ".", ""]
    return "\n".join(lines)
