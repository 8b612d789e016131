"""``ser-train``: k-fold training and evaluation of TPMNet, then the shipping model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ser_edge.edge import command
from ser_edge.edge.config import REVERSE_AXES, FeatureConfig
from ser_edge.edge.datasets import DATASETS, LABELS, read_dataset
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models.splits import SPLITS
from ser_edge.models import ABLATIONS, LOSSES, READINGS, RECIPES, SCHEDULES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-train", description=__doc__)
    parser.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASETS)}")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", type=Path, help="the dataset's folder")
    source.add_argument("--bundle", type=Path,
                        help="a feature bundle written by --write-bundle (train where the audio is not)")
    parser.add_argument("--write-bundle", type=Path, metavar="FILE",
                        help="compute the dataset's features, write them to FILE (.npz) and stop")
    parser.add_argument("--bundle-float16", action="store_true",
                        help="with --write-bundle: store the features at half precision, compressed (a third "
                             "of the size, for the 64 MiB a lent GPU machine receives)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (resumable)")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--only-fold", type=int, action="append", help="run just this fold (0-based); repeatable")
    parser.add_argument("--reading", choices=READINGS, default="authors",
                        help="model structure: the authors' notebooks (default) or this project's first reading")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="converging",
                        help="training recipe (models/__init__.py); the flags below override its values")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--dropout", type=float, help="SpatialDropout of the conv blocks")
    parser.add_argument("--head-dropout", type=float)
    parser.add_argument("--bn-momentum", type=float)
    parser.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--utterance-mean", action=argparse.BooleanOptionalAction, default=None,
                        help="subtract each utterance's mean MFCC vector before the standardisation (the "
                             "model's feature contract then asks the runtime to do the same)")
    parser.add_argument("--level-normalise", action=argparse.BooleanOptionalAction, default=None,
                        help="move each utterance's c0 to the training part's loudest-frame level (the model's "
                             "feature contract then asks the runtime to do the same): predictions no longer "
                             "depend on the input gain")
    parser.add_argument("--speaker-normalise", action="store_true",
                        help="standardise each speaker's features by that speaker's own statistics "
                             "(models/speaker_norm.py); the final model carries the training speakers' pooled "
                             "statistics, and `ser-edge listen` learns its speaker's (edge/speaker_stats.py)")
    parser.add_argument("--speaker-reference", choices=("all", "calm"), default="all",
                        help="with --speaker-normalise: a speaker's statistics from all of their utterances, or "
                             "(a cross-validation probe, needs --no-final) only their neutral and calm ones")
    parser.add_argument("--add-corpus", metavar="NAME:DIR",
                        help="another corpus's utterances of the emotions both share, as training material only "
                             "(never validation or test; models/mixed_corpus.py), e.g. emodb:../shared/datasets/emodb")
    parser.add_argument("--speed-perturb", type=speeds_list, default=(), metavar="SPEEDS",
                        help="comma-separated speeds, e.g. 0.9,1.1: each training item is drawn from the original "
                             "and copies resampled to play that much faster (pitch, formants and tempo move "
                             "together); validation and test stay unperturbed")
    parser.add_argument("--noise-perturb", type=int, default=0, metavar="COPIES",
                        help="this many noisy copies of every training file (white or brown noise at an SNR "
                             "drawn from --noise-snr against its speech level; models/noise.py), drawn like the "
                             "speed copies; validation and test stay clean")
    parser.add_argument("--noise-snr", type=snr_range, default=(5.0, 35.0), metavar="LOW,HIGH",
                        help="with --noise-perturb: the SNRs in dB the copies are drawn from (default 5,35)")
    parser.add_argument("--head-scale", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=10,
                        help="save weights and optimiser state every N epochs; an interrupted fold resumes there")
    parser.add_argument("--track-test", action="store_true",
                        help="record each fold's test accuracy per epoch (diagnostic only: it chooses nothing)")
    parser.add_argument("--keep-fold-models", action="store_true",
                        help="save each fold's model as fold_NN.keras beside its result (for probes that re-test it)")
    parser.add_argument("--patience", type=int, default=0, help="stop after N epochs without a better validation")
    parser.add_argument("--split", choices=SPLITS, default="random")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--init-seed", type=int,
                        help="seed the weights, batches and augmentation apart from --seed, which keeps the "
                             "folds and the validation split: the same files, another model")
    parser.add_argument("--reverse-axis", choices=REVERSE_AXES, default=FeatureConfig.reverse_axis)
    parser.add_argument("--ablate", action="append", choices=ABLATIONS, default=[])
    parser.add_argument("--jit-compile", action="store_true", help="XLA-compile the training step")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow CPU threads (0: TensorFlow's default, all cores); with 2 cores, two runs "
                             "of --threads 1 side by side finish more folds per hour than one run on both")
    parser.add_argument("--no-cv", action="store_true", help="skip cross-validation; train only the final model")
    parser.add_argument("--no-final", action="store_true", help="skip the final (shipping) model")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default ~/.cache/ser-edge/features)")
    return parser.parse_args(argv)


def speeds_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of speeds: {text!r}") from None


def snr_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not LOW,HIGH in dB: {text!r}") from None
    return low, high


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command.log_to_stderr("info")
    return command.run("ser-train", lambda: run(args),
                       interrupted="interrupted; finished folds are kept, run the same command to resume")


def run(args: argparse.Namespace) -> int:
    if args.dataset not in DATASETS:
        raise SerEdgeError(f"unknown dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    if args.folds < 2:
        raise SerEdgeError(f"--folds must be at least 2, got {args.folds}")
    if args.epochs is not None and args.epochs < 1:
        raise SerEdgeError(f"--epochs must be at least 1, got {args.epochs}")
    bad_folds = [n for n in args.only_fold or [] if not 0 <= n < args.folds]
    if bad_folds:
        raise SerEdgeError(f"--only-fold {bad_folds[0]} is out of range: folds are numbered 0 to {args.folds - 1}")
    if args.threads < 0:
        raise SerEdgeError(f"--threads must be 0 (default) or more, got {args.threads}")
    if args.checkpoint_every < 1:
        raise SerEdgeError(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    for name in ("dropout", "head_dropout", "label_smoothing"):
        value = getattr(args, name)
        if value is not None and not 0 <= value < 1:
            raise SerEdgeError(f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
    if args.bn_momentum is not None and not 0 < args.bn_momentum < 1:
        raise SerEdgeError(f"--bn-momentum must be in (0, 1), got {args.bn_momentum}")
    for name in ("learning_rate", "head_scale"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise SerEdgeError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.speaker_reference != "all" and not args.speaker_normalise:
        raise SerEdgeError("--speaker-reference says where --speaker-normalise takes its statistics; give both")
    if args.speaker_reference != "all" and not args.no_final:
        raise SerEdgeError("--speaker-reference calm is a cross-validation probe: the device learns statistics "
                           "from all it hears, so no shipping model is trained with it; add --no-final")
    if args.bundle_float16 and not args.write_bundle:  # before any bundle or feature is read
        raise SerEdgeError("--bundle-float16 says how --write-bundle stores the features; give --write-bundle")
    from ser_edge.models.feature_cache import check_speeds
    from ser_edge.models.noise import check_snr_range

    speeds = check_speeds(args.speed_perturb)
    if args.noise_perturb < 0 or args.noise_perturb > 8:
        raise SerEdgeError(f"--noise-perturb must be 0 to 8 copies, got {args.noise_perturb}")
    noise_snr = check_snr_range(args.noise_snr) if args.noise_perturb else ()
    label_names = LABELS[args.dataset]
    added = None
    if args.add_corpus:
        from ser_edge.models import mixed_corpus

        if args.bundle:
            raise SerEdgeError("a bundle carries its added corpus: write one with --write-bundle and --add-corpus")
        name, folder = mixed_corpus.parse(args.add_corpus, args.dataset)
        added = name, mixed_corpus.added_utterances(name, folder, args.dataset)
    if args.bundle:
        from ser_edge.models.feature_cache import load_bundle

        if not args.bundle.is_file():
            raise SerEdgeError(f"{args.bundle}: no such feature bundle")
        bundle = load_bundle(args.bundle)
        if bundle.label_names != label_names:
            raise SerEdgeError(f"{args.bundle}: labels {bundle.label_names} are not {args.dataset}'s")
        if speeds and bundle.speeds != speeds:
            raise SerEdgeError(f"{args.bundle}: holds speeds {list(bundle.speeds)}, --speed-perturb asks for "
                               f"{list(speeds)}; write the bundle with the same --speed-perturb")
        if not speeds:  # a speed bundle also holds the plain features: one file serves both kinds of run
            bundle = bundle.without_speeds()
        if args.noise_perturb and (len(bundle.noise_features) != args.noise_perturb or bundle.noise_snr != noise_snr):
            raise SerEdgeError(f"{args.bundle}: holds {len(bundle.noise_features)} noisy copies "
                               f"(SNR {list(bundle.noise_snr)} dB), --noise-perturb asks for {args.noise_perturb} "
                               f"({list(noise_snr)} dB); write the bundle with the same --noise-perturb and "
                               "--noise-snr")
        if not args.noise_perturb:
            bundle = bundle.without_noise()
        own = bundle.trained_size  # an added corpus is not the trained dataset
        labels = [label_names[i] for i in bundle.labels[:own]]
        speakers = set(bundle.speakers[:own].tolist())
        where = args.bundle
    else:
        utterances = read_dataset(args.dataset, args.data_dir)
        labels = [u.label for u in utterances]
        speakers = {u.speaker for u in utterances}
        where = args.data_dir
    if args.write_bundle:
        if args.bundle:
            raise SerEdgeError("--write-bundle computes features from --data-dir; it cannot copy a --bundle")
        from ser_edge.models.feature_cache import load_features, save_bundle

        config = FeatureConfig(reverse_axis=args.reverse_axis)
        data = with_added_corpus(load_features(utterances, label_names, config, args.cache_dir, speeds,
                                               args.noise_perturb, args.noise_snr), added, config, args)
        save_bundle(data, args.write_bundle, args.bundle_float16)
        print(f"{args.dataset}: {len(data.labels)} feature matrices written to {args.write_bundle}")
        return 0
    counts = {name: labels.count(name) for name in label_names}
    missing = [name for name, count in counts.items() if count < args.folds]
    if missing:
        raise SerEdgeError(f"{where}: classes {missing} have fewer than {args.folds} utterances "
                           f"(counts: {counts}); stratified {args.folds}-fold needs each class in every fold")
    if args.split == "speaker" and len(speakers) < args.folds:
        raise SerEdgeError(f"--split speaker needs at least {args.folds} speakers")

    # TensorFlow is imported only now, after the cheap checks.
    if args.threads and not args.write_bundle:
        limit_tensorflow_threads(args.threads)
    from ser_edge.models.feature_cache import load_features

    config = FeatureConfig(reverse_axis=args.reverse_axis)
    data = bundle if args.bundle else with_added_corpus(
        load_features(utterances, label_names, config, args.cache_dir, speeds, args.noise_perturb, args.noise_snr),
        added, config, args)
    from ser_edge.models.train import TrainSettings, run_cross_validation, train_final

    settings = TrainSettings.from_recipe(
        args.recipe, dataset=args.dataset, folds=args.folds, split=args.split, reading=args.reading,
        epochs=args.epochs, batch_size=args.batch_size, patience=args.patience, seed=args.seed,
        init_seed=args.init_seed, jit_compile=args.jit_compile, ablate=tuple(args.ablate),
        learning_rate=args.learning_rate,
        schedule=args.schedule, dropout=args.dropout, head_dropout=args.head_dropout,
        bn_momentum=args.bn_momentum, standardize=args.standardize, utterance_mean=args.utterance_mean,
        level_normalise=args.level_normalise, speaker_normalise=args.speaker_normalise or None,
        speaker_reference=args.speaker_reference,
        add_corpus=data.added_corpus or None,  # a bundle carries it; --add-corpus put it in data otherwise
        speed_perturb=speeds, noise_copies=args.noise_perturb, noise_snr=noise_snr, head_scale=args.head_scale,
        label_smoothing=args.label_smoothing, loss=args.loss, augment=args.augment)
    report = None
    if not args.no_cv:
        report = run_cross_validation(data, settings, config, args.out, only_folds=args.only_fold,
                                      checkpoint_every=args.checkpoint_every, track_test=args.track_test,
                                      keep_models=args.keep_fold_models)
        print(f"{args.dataset}: {report['folds_finished']}/{report['folds_planned']} folds, "
              f"WAR mean {100 * report['war']['mean']:.2f} % (std {100 * report['war']['std']:.2f}), "
              f"UAR mean {100 * report['uar']['mean']:.2f} %; report in {args.out / 'report.md'}")
    if not args.no_final:
        args.out.mkdir(parents=True, exist_ok=True)
        path = train_final(data, settings, config, args.out, report, checkpoint_every=args.checkpoint_every)
        print(f"final model: {path}")
    return 0


def with_added_corpus(data, added: tuple[str, list] | None, config: FeatureConfig, args: argparse.Namespace):
    """``data`` with the ``--add-corpus`` utterances (their features made exactly like ``data``'s) appended."""
    if added is None:
        return data
    from ser_edge.models.feature_cache import load_features
    from ser_edge.models.mixed_corpus import with_added

    name, utterances = added
    extra = load_features(utterances, data.label_names, config, args.cache_dir, data.speeds,
                          len(data.noise_features), args.noise_snr)
    return with_added(data, extra, name)


def limit_tensorflow_threads(threads: int) -> None:
    """Must run before TensorFlow builds anything. Threads change speed, not the settings of a run."""
    import os

    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
