"""``ser-bench``: every utterance of a dataset through the LiteRT pipeline at batch 1, timed per stage.

Reports latency (mean, median, p95, p99, max per stage), real-time factor,
peak memory, cold start, the ratio to the thesis's Raspberry Pi figure and,
where the model's labels are the dataset's, WAR / UAR / confusion. With
``--baseline keras`` the thesis's own stack (librosa + Keras) runs in the same
process for a side-by-side speed-up. Results: JSON, Markdown, CSV and a PNG.
"""

from __future__ import annotations

import time

# Taken before any heavy import: the cold-start origin where /proc cannot say when the process began.
IMPORTED = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from ser_edge.edge import command
from ser_edge.edge.datasets import DATASETS, IEMOCAP_HELP, LABELS, read_audio_folder, read_dataset  # noqa: E402
from ser_edge.edge.errors import SerEdgeError  # noqa: E402
from ser_edge.edge.native_stderr import set_verbose  # noqa: E402
from ser_edge.edge.registry import DEFAULT_MODEL, thesis_seconds  # noqa: E402

log = logging.getLogger(__name__)

RESULTS_DIR = Path("benchmarks/results")
DEFAULT_WARMUP = 3
DEFAULT_BASELINE_LIMIT = 100
FOLDER = "folder"  # any folder of audio files, unlabelled: latency only
BENCH_DATASETS = (*DATASETS, FOLDER)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=BENCH_DATASETS,
                        help="the layout of --data-dir; folder: any folder of audio files (latency only)")
    parser.add_argument("--data-dir", type=Path, help="the dataset's folder (IEMOCAP: IEMOCAP_full_release)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"a shipped model name (ravdess, emodb, emodb-int8, ...) or a .tflite path "
                             f"(default {DEFAULT_MODEL})")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads (default 1)")
    parser.add_argument("--blas-threads", type=int,
                        help="numpy's BLAS threads (default: --threads, as ser-edge does; 0 leaves the library's "
                             "own default, one per core unless OPENBLAS_NUM_THREADS says otherwise)")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="run N busy processes beside the measurement (default 0)")
    parser.add_argument("--limit", type=int, help="only the first N utterances (in path order)")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP,
                        help=f"untimed runs on the first N utterances before timing (default {DEFAULT_WARMUP})")
    parser.add_argument("--out", type=Path,
                        help="results folder (default benchmarks/results/<dataset>-<model>-t<threads>)")
    parser.add_argument("--baseline", choices=("keras",), help="also time the thesis's librosa + Keras stack")
    parser.add_argument("--keras-model", type=Path, help="the .keras file (with its .json) for --baseline keras")
    parser.add_argument("--baseline-limit", type=int, default=DEFAULT_BASELINE_LIMIT,
                        help=f"baseline on the first N utterances only, 0 for all (default {DEFAULT_BASELINE_LIMIT})")
    parser.add_argument("--verbose", action="store_true",
                        help="also show LiteRT's and TensorFlow's own log lines on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    entered = time.perf_counter()
    args = parse_args(argv)
    set_verbose(args.verbose)
    command.log_to_stderr("info", "ser-bench: %(message)s", logger=__package__)
    return command.run("ser-bench", lambda: bench(args, entered), interrupted="interrupted; nothing was written")


def bench(args: argparse.Namespace, entered: float) -> int:
    check_args(args)
    checked = time.perf_counter()
    if args.dataset == FOLDER:
        utterances = read_audio_folder(args.data_dir)
    else:
        utterances = read_dataset(args.dataset, args.data_dir)
    used = utterances[: args.limit] if args.limit else utterances
    listed = time.perf_counter()

    from ser_edge.benchmarks import host, report
    from ser_edge.benchmarks.load import BusyLoad
    from ser_edge.benchmarks.provenance import model_provenance
    from ser_edge.benchmarks.run import litert_pipeline, measure
    from ser_edge.edge import threads
    from ser_edge.edge.classifier import EmotionClassifier
    from ser_edge.edge.registry import resolve_model

    model_path = resolve_model(args.model)
    classifier = EmotionClassifier(model_path, threads=args.threads, hold_blas=False)  # held just below
    blas_threads = args.threads if args.blas_threads is None else args.blas_threads
    thread_pools = threads.limit(blas_threads) if blas_threads else threads.pools()
    loaded = time.perf_counter()
    label_names, accuracy_note = scoring_labels(classifier, args.dataset)
    log.info("%s: %d of %d utterances with %s, %d thread(s)%s", args.dataset, len(used), len(utterances),
             model_path.name, args.threads, "" if label_names else " (latency only)")

    first: dict[str, float | None] = {}

    def mark_first_result() -> None:
        first["perf"], first["age"] = time.perf_counter(), host.process_age_s()

    if args.load:
        log.info("load: %d busy process(es) beside the measurement", args.load)
    with BusyLoad(args.load) as load:
        litert = measure(litert_pipeline(classifier), used, name="litert", warmup=args.warmup,
                         on_first_result=mark_first_result)
    peak_rss = host.peak_rss_mib()
    if not litert.timings:
        reason = litert.skipped[0].reason if litert.skipped else "no utterances"
        raise SerEdgeError(f"nothing could be measured: all {len(used)} files were unreadable (first: {reason})")

    results = {
        "format": report.FORMAT,
        "tool": "ser-bench",
        "dataset": {"name": args.dataset, "data_dir": str(args.data_dir), "listed": len(utterances),
                    "used": len(used), "limit": args.limit},
        "model": model_info(classifier, model_path, host.file_sha256(model_path)),
        "host": host.host_info(args.threads),
        "settings": {"threads": args.threads, "blas_threads": blas_threads or "library default",
                     "load": args.load, "warmup": args.warmup, "limit": args.limit,
                     "baseline": args.baseline, "baseline_limit": args.baseline_limit if args.baseline else None},
        **report.litert_results(litert, label_names, thesis_seconds(args.dataset)),
        "skipped": report.skipped_list(litert, args.data_dir),
        "thread_pools": thread_pools,
        "load": load.summary(),
        "peak_rss_mib": peak_rss,
        "cold_start_s": cold_start(first, entered=entered, checked=checked, listed=listed, loaded=loaded),
        "accuracy_note": accuracy_note,
        "provenance": report.provenance_results(litert, label_names,
                                                model_provenance(model_path, classifier.metadata)),
        "baseline": None,
    }
    modes = baseline_error = None
    if args.baseline:
        try:
            results["baseline"], modes = run_baseline(args, used, litert, classifier)
        except SerEdgeError as error:  # keep what LiteRT measured, then fail
            baseline_error, results["baseline"] = error, {"error": str(error)}
    results["notes"] = notes(results)

    out = args.out or RESULTS_DIR / f"{args.dataset}-{model_path.stem}-t{args.threads}"
    written = write_all(results, litert, modes, out, args.data_dir)
    summarise(results, out, written)
    if baseline_error:
        raise SerEdgeError(f"baseline: {baseline_error} (the LiteRT results are in {out})")
    return 0


def check_args(args: argparse.Namespace) -> None:
    """Everything that can be refused before a model loads or a file is read."""
    if args.data_dir is None:
        where = {"iemocap": IEMOCAP_HELP, FOLDER: "any folder of audio files"}.get(
            args.dataset, f"the folder holding the {args.dataset} files")
        raise SerEdgeError(f"--data-dir DIR is required: {where}")
    for name in ("threads", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SerEdgeError(f"--{name} must be at least 1, got {value}")
    if args.warmup < 0 or args.baseline_limit < 0 or args.load < 0 or (args.blas_threads or 0) < 0:
        raise SerEdgeError("--warmup, --baseline-limit, --load and --blas-threads must not be negative")
    if args.keras_model and not args.baseline:
        raise SerEdgeError("--keras-model goes with --baseline keras")
    if args.baseline:
        from ser_edge.benchmarks.keras_baseline import check_available

        check_available()
        if args.keras_model is None:
            raise SerEdgeError("--baseline keras needs --keras-model FILE.keras (a ser-train model with its .json)")
        if not args.keras_model.is_file():
            raise SerEdgeError(f"{args.keras_model}: no such Keras model file")
        if not args.keras_model.with_suffix(".json").is_file():
            raise SerEdgeError(f"{args.keras_model.with_suffix('.json')}: missing; ser-train writes it beside "
                               "the .keras file (labels, features)")


def scoring_labels(classifier, dataset: str) -> tuple[tuple[str, ...] | None, str | None]:
    """The dataset's labels where the model predicts exactly those classes, else why not."""
    if dataset == FOLDER:
        return None, "a folder of unlabelled audio files (no labels to score)"
    expected = LABELS[dataset]
    if set(classifier.labels) == set(expected) and len(classifier.labels) == len(expected):
        return expected, None
    trained_on = classifier.dataset or "an unnamed dataset"
    return None, (f"the model was trained on {trained_on} and predicts {', '.join(classifier.labels)}, not the "
                  f"{dataset} classes ({', '.join(expected)}), so this run measures latency only")


def model_info(classifier, path: Path, sha256: str) -> dict:
    metadata = classifier.metadata
    return {
        "file": path.name,
        "sha256": sha256,
        "size_bytes": path.stat().st_size,
        "trained_on": classifier.dataset,
        "quantization": metadata.get("quantization") or metadata.get("conversion_mode") or "unknown",
        "labels": list(classifier.labels),
        "source_model_sha256": (metadata.get("source_model") or {}).get("sha256"),
    }


def cold_start(first: dict, *, entered: float, checked: float, listed: float, loaded: float) -> dict:
    """Process start to the first classified utterance, and where that time went (perf_counter marks)."""
    first_result = first["perf"]
    if first.get("age") is not None:
        total, source = first["age"], "process start per /proc/self/stat"
    else:  # no /proc: count from when ser-bench's code was loaded
        total, source = first_result - IMPORTED, "from loading ser-bench (process start unknown)"
    return {
        "total": total,
        "source": source,
        "startup": max(0.0, total - (first_result - entered)),
        "argument_checks": checked - entered,
        "dataset_listing": listed - checked,
        "model_load": loaded - listed,
        "first_utterance": first_result - loaded,
    }


def run_baseline(args: argparse.Namespace, used: list, litert, classifier) -> tuple[dict, dict]:
    """Keras graph mode, then eager mode, on the first --baseline-limit utterances of this run."""
    from ser_edge.benchmarks import host, report
    from ser_edge.benchmarks.keras_baseline import MODES, KerasBaseline
    from ser_edge.benchmarks.run import measure

    subset = used[: args.baseline_limit] if args.baseline_limit else used
    log.info("baseline: loading %s (TensorFlow, librosa)", args.keras_model)
    baseline = KerasBaseline(args.keras_model)
    label_names, _ = scoring_labels(baseline, args.dataset)
    modes = {}
    for mode in MODES:
        with baseline.mode(mode):
            # At least one warm-up call, so graph mode's one-off tracing is not timed.
            modes[mode] = measure(baseline.pipeline(), subset, name=f"keras-{mode}", warmup=max(1, args.warmup))
    info = baseline.info()
    return {
        "info": info,
        "utterances": len(subset),
        "modes": report.baseline_results(litert, modes, label_names, args.data_dir),
        "peak_rss_mib_after": host.peak_rss_mib(),
        "labels_match_litert": tuple(baseline.labels) == tuple(classifier.labels),
        "same_weights_as_litert": info["model_sha256"] == (classifier.metadata.get("source_model") or {}).get("sha256"),
    }, modes


def notes(results: dict) -> list[str]:
    """Caveats a reader of the figures needs, in words."""
    found = []
    data, host = results["dataset"], results["host"]
    if data["used"] < data["listed"]:
        found.append(f"--limit {data['limit']}: the first {data['used']} of {data['listed']} utterances in path "
                     "order, not the whole dataset the thesis's figure covers")
    if "raspberry pi" not in (host.get("board") or "").lower():
        found.append(f"this host ({host['cpu']}) is not a Raspberry Pi: the ratio to the thesis's figure compares "
                     "different hardware as well as different software")
    if results["load"]["busy_processes"]:
        found.append(f"{results['load']['busy_processes']} busy process(es) ran beside the LiteRT pass "
                     f"({results['load']['kind']}; the Keras baseline, if any, ran without them): these are "
                     "figures under load")
    if results["settings"]["blas_threads"] == "library default":
        found.append("--blas-threads 0: numpy's BLAS kept its own thread count "
                     f"({', '.join(str(p['threads']) for p in results['thread_pools']) or 'none loaded'}), "
                     "not what ser-edge uses")
    audio = results["audio_s"]
    if data["name"] == "emodb" and abs(audio["min"] - 2.0) < 0.01 and abs(audio["max"] - 2.0) < 0.01:
        found.append("every EMO-DB file here lasts 2.0 s: a mirror that resampled and cut the original "
                     "(1.2 to 8.9 s at 16 kHz) recordings; decode and resample times are not those of the original")
    if results["skipped"]:
        found.append(f"{len(results['skipped'])} unreadable file(s) were skipped; every figure covers the rest")
    provenance = results["provenance"]
    if results["accuracy"] and provenance["counts"]["unknown"]:
        found.append(f"{provenance['counts']['unknown']} utterance(s) cannot be placed as trained on or not: "
                     f"{provenance['problem']}")
    baseline = results.get("baseline")
    if baseline and "error" in baseline:
        found.append(f"the Keras baseline failed: {baseline['error']}")
    elif baseline and not baseline["labels_match_litert"]:
        found.append("the Keras model's labels differ from the .tflite's: top-1 agreement is not meaningful")
    elif baseline and not baseline["same_weights_as_litert"]:
        found.append("the .tflite was not exported from this .keras file (sha256 differs): the speed-up compares "
                     "different weights of the same architecture")
    return found


def write_all(results: dict, litert, modes: dict | None, out: Path, data_dir: Path) -> list[str]:
    from ser_edge.benchmarks import report
    from ser_edge.benchmarks.plot import write_confusion_png, write_latency_png

    report.write_json(results, out / "results.json")
    report.write_markdown(results, out / "report.md")
    report.write_csv(litert, out / "utterances-litert.csv", data_dir)
    written = ["results.json", "report.md", "utterances-litert.csv"]
    for mode, measurement in (modes or {}).items():
        report.write_csv(measurement, out / f"utterances-keras-{mode}.csv", data_dir)
        written.append(f"utterances-keras-{mode}.csv")
    title = (f"ser-bench {results['dataset']['name']}: {results['model']['file']}, "
             f"{results['host']['threads']} thread(s)")
    if write_latency_png(litert, out / "latency.png", title, modes):
        written.append("latency.png")
    if results["accuracy"] and write_confusion_png(results["accuracy"], out / "confusion.png", title):
        written.append("confusion.png")
    return written


def summarise(results: dict, out: Path, written: list[str]) -> None:
    """A few lines on stdout; the full figures are in the files."""
    total, thesis = results["latency_s"]["total"], results["thesis"]
    print(f"{results['measured']} utterances measured, {len(results['skipped'])} skipped; total per utterance "
          f"mean {1000 * total['mean']:.1f} ms, p95 {1000 * total['p95']:.1f} ms, real-time factor "
          f"{results['real_time_factor']['overall']:.4f}")
    print(f"thesis Raspberry Pi figure {thesis['pi_seconds']:.2f} s: ratio {thesis['ratio']:.3f}, "
          f"{thesis['speedup']:.1f}x faster")
    scores = results["accuracy"]
    print(f"WAR {100 * scores['war']:.2f} %, UAR {100 * scores['uar']:.2f} %" if scores
          else f"latency only: {results['accuracy_note']}")
    if scores:
        from ser_edge.benchmarks.provenance import TITLES

        provenance = results["provenance"]
        for status, count in provenance["counts"].items():
            if count:
                group = provenance["accuracy"][status]
                print(f"  {TITLES[status]}: {count} utterances, WAR {100 * group['war']:.2f} %")
    for mode, entry in ((results.get("baseline") or {}).get("modes") or {}).items():
        if entry["measured"]:
            print(f"Keras {mode}: LiteRT is {entry['speedup_of_litert']['total']:.1f}x faster per utterance "
                  f"({entry['measured']} utterances)")
    for skipped in results["skipped"]:
        print(f"skipped {skipped['path']}: {skipped['reason']}")
    print(f"results in {out}: {', '.join(written)}")


if __name__ == "__main__":
    sys.exit(main())
