"""Results of a run as one JSON document, a Markdown page and per-utterance CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ser_edge.benchmarks.provenance import STATUSES, TITLES, Provenance
from ser_edge.benchmarks.run import STAGES, Measurement
from ser_edge.benchmarks.stats import accuracy, summary
from ser_edge.edge import atomic
from ser_edge.edge.registry import THESIS_PI_SECONDS

FORMAT = 1
STAGE_TITLES = {"decode_resample": "decode + resample", "features": "features (MFCC)",
                "inference": "inference", "total": "total"}


def latency(measurement: Measurement, paths: set[Path] | None = None) -> dict[str, dict]:
    """Per-stage summaries (seconds), optionally over just the utterances in ``paths``."""
    timings = [t for t in measurement.timings if paths is None or t.path in paths]
    return {stage: summary([t.stages[stage] for t in timings]) for stage in STAGES}


def scored(measurement: Measurement, label_names: tuple[str, ...] | None) -> dict | None:
    if label_names is None or not measurement.timings:
        return None
    return accuracy([t.label for t in measurement.timings], [t.predicted for t in measurement.timings], label_names)


def litert_results(measurement: Measurement, label_names: tuple[str, ...] | None, thesis_s: float) -> dict:
    """Latency, real-time factor, throughput, thesis ratio and (if labels match) accuracy."""
    stages = latency(measurement)
    audio = [t.audio_s for t in measurement.timings]
    totals = measurement.stage("total")
    mean = stages["total"]["mean"]
    return {
        "measured": len(measurement.timings),
        "latency_s": stages,
        "audio_s": summary(audio),
        "real_time_factor": {
            "overall": sum(totals) / sum(audio),
            "per_utterance": summary([t / a for t, a in zip(totals, audio)]),
        },
        "throughput_per_s": len(totals) / measurement.wall_s if measurement.wall_s > 0 else None,
        "thesis": {"pi_seconds": thesis_s, "ratio": mean / thesis_s, "speedup": thesis_s / mean,
                   "inference_only_ratio": stages["inference"]["mean"] / thesis_s},
        "accuracy": scored(measurement, label_names),
    }


def provenance_results(measurement: Measurement, label_names: tuple[str, ...] | None,
                       provenance: Provenance) -> dict:
    """How many measured files the model trained on, held out or never saw, with accuracy on each group."""
    groups: dict[str, list] = {status: [] for status in STATUSES}
    for timing in measurement.timings:
        groups[provenance.status(timing.path)].append(timing)
    return {
        **provenance.to_dict(),
        "counts": {status: len(timings) for status, timings in groups.items()},
        "accuracy": {status: (accuracy([t.label for t in timings], [t.predicted for t in timings], label_names)
                              if label_names and timings else None) for status, timings in groups.items()},
    }


def baseline_results(litert: Measurement, modes: dict[str, Measurement], label_names: tuple[str, ...] | None,
                     data_dir: Path) -> dict:
    """Each Keras mode beside LiteRT on the utterances both measured: latency, speed-up, agreement."""
    ours = {t.path: t for t in litert.timings}
    result = {}
    for mode, measurement in modes.items():
        shared = {t.path for t in measurement.timings} & set(ours)
        if not shared:
            result[mode] = {"measured": 0, "skipped": skipped_list(measurement, data_dir)}
            continue
        theirs, mine = latency(measurement, shared), latency(litert, shared)
        agree = sum(t.predicted == ours[t.path].predicted for t in measurement.timings if t.path in shared)
        result[mode] = {
            "measured": len(shared),
            "latency_s": theirs,
            "litert_latency_s": mine,
            "speedup_of_litert": {stage: theirs[stage]["mean"] / mine[stage]["mean"] for stage in STAGES},
            "agreement_with_litert": agree / len(shared),
            "accuracy": scored(measurement, label_names),
            "skipped": skipped_list(measurement, data_dir),
        }
    return result


def write_json(results: dict, path: Path) -> None:
    atomic.write_text(path, json.dumps(results, indent=1) + "\n")


def write_csv(measurement: Measurement, path: Path, data_dir: Path) -> None:
    columns = ["path", "label", "predicted", "audio_s", *(f"{stage}_s" for stage in STAGES)]
    rows = [[relative(t.path, data_dir), t.label, t.predicted, f"{t.audio_s:.4f}",
             *(f"{t.stages[stage]:.6f}" for stage in STAGES)] for t in measurement.timings]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(rows)


def write_markdown(results: dict, path: Path) -> None:
    atomic.write_text(path, markdown(results))


def markdown(results: dict) -> str:
    """A human-readable page for one run: what, where, how fast, how accurate, what was skipped."""
    lines = [*_heading(results), *_latency_section(results), *_thesis_section(results),
             *_accuracy_section(results), *_baseline_section(results), *_skipped_section(results)]
    if results["notes"]:
        lines += ["## Notes", "", *(f"- {note}" for note in results["notes"]), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def relative(path: Path, data_dir: Path) -> str:
    """A path inside the dataset folder, relative to it (committed results name no home folders)."""
    try:
        return Path(path).resolve().relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def skipped_list(measurement: Measurement, data_dir: Path) -> list[dict]:
    return [{"path": relative(s.path, data_dir), "reason": s.reason} for s in measurement.skipped]


def _heading(results: dict) -> list[str]:
    host, model, data = results["host"], results["model"], results["dataset"]
    board = f", {host['board']}" if host.get("board") else ""
    limit = f" (--limit {data['limit']})" if data["limit"] else ""
    return [
        f"# ser-bench: {data['name']} with {model['file']}, {host['threads']} thread(s)",
        "",
        f"- date: {host['date']}",
        f"- host: {host['cpu']}{board}, {host['cores']} cores ({host['machine']}), {host['os']}",
        f"- Python {host['python']}, {host['litert']}",
        f"- threads: LiteRT {host['threads']}, BLAS {_pools(results)}; "
        f"load: {_load(results)}",
        f"- model: `{model['file']}` (sha256 `{model['sha256'][:16]}…`), "
        f"trained on {model['trained_on'] or 'unknown'}, "
        f"{model['quantization']}",
        f"- dataset: {data['name']}, {data['used']} of {data['listed']} utterances used{limit}; "
        f"{results['measured']} measured, {len(results['skipped'])} skipped; warm-up {results['settings']['warmup']}",
        "",
    ]


def _pools(results: dict) -> str:
    pools = results.get("thread_pools") or []
    return ", ".join(f"{p['library']} {p['threads']}" for p in pools) or "none loaded"


def _load(results: dict) -> str:
    load = results.get("load") or {}
    if not load.get("busy_processes"):
        return "none beside the measurement"
    cpu = ", ".join("?" if c is None else f"{c:.1f}" for c in load["cpu_s_each"])
    return (f"{load['busy_processes']} busy process(es) beside the LiteRT pass ({load['kind']}; "
            f"CPU seconds each: {cpu} in {load['wall_s']:.1f} s)")


def _latency_section(results: dict) -> list[str]:
    rtf, cold = results["real_time_factor"], results["cold_start_s"]
    throughput = results["throughput_per_s"]
    lines = ["## Latency per utterance at batch 1 (ms)", "", *_stage_table(results["latency_s"]), ""]
    lines += [
        f"- real-time factor: {rtf['overall']:.4f} (processing time / audio duration; "
        f"{1 / rtf['overall']:.1f}x faster than real time); per utterance p95 {rtf['per_utterance']['p95']:.4f}",
        f"- audio per utterance: mean {results['audio_s']['mean']:.2f} s "
        f"({results['audio_s']['min']:.2f} to {results['audio_s']['max']:.2f} s)",
    ]
    if throughput:
        lines.append(f"- throughput: {throughput:.2f} utterances per second, one at a time")
    lines += [
        f"- peak resident memory: {results['peak_rss_mib']:.1f} MiB (whole process, LiteRT pass)",
        f"- cold start: {cold['total']:.2f} s from process start to the first result ({cold['source']}): "
        f"interpreter and imports {cold['startup']:.2f} s, argument checks {cold['argument_checks']:.2f} s, "
        f"dataset listing {cold['dataset_listing']:.2f} s, "
        f"model load {cold['model_load']:.2f} s, first utterance {cold['first_utterance']:.2f} s",
        "", "![latency per stage](latency.png)", "",
    ]
    return lines


def _stage_table(stages: dict[str, dict]) -> list[str]:
    rows = ["| stage | mean | median | p95 | p99 | max |", "|---|---:|---:|---:|---:|---:|"]
    for stage in STAGES:
        s = stages[stage]
        rows.append(f"| {STAGE_TITLES[stage]} | " + " | ".join(
            f"{1000 * s[key]:.1f}" for key in ("mean", "median", "p95", "p99", "max")) + " |")
    return rows


def _thesis_section(results: dict) -> list[str]:
    thesis = results["thesis"]
    mean = results["latency_s"]["total"]["mean"]
    name = results["dataset"]["name"]
    which = name if name in THESIS_PI_SECONDS else "its three datasets on average (this folder is none of them)"
    return [
        "## Against the thesis's Raspberry Pi figure", "",
        f"The thesis reports {thesis['pi_seconds']:.2f} s per utterance at batch 1 on a Raspberry Pi for "
        f"{which}. This run's mean total is {mean:.3f} s: "
        f"{thesis['ratio']:.3f} of the thesis's time, a {thesis['speedup']:.1f}x speed-up (decoding, resampling "
        f"and features included; inference alone is {thesis['inference_only_ratio']:.3f} of it).", "",
    ]


def _accuracy_section(results: dict) -> list[str]:
    scores = results["accuracy"]
    if scores is None:
        return ["## Accuracy", "", f"Not measured: {results['accuracy_note']}", ""]
    lines = ["## Accuracy", "", f"On the {scores['n']} measured utterances: WAR (accuracy) "
             f"{100 * scores['war']:.2f} %, UAR (mean per-class recall) {100 * scores['uar']:.2f} %.", "",
             *_confusion_table(scores), "", "![confusion matrix, row-normalised](confusion.png)", ""]
    return lines + _provenance_section(results.get("provenance"))


def _provenance_section(provenance: dict | None) -> list[str]:
    """Accuracy split by what the model's own records say it saw in training."""
    if not provenance:
        return []
    counts = provenance["counts"]
    where = f"from `{provenance['source']}`" if provenance["source"] else "none found"
    lines = ["### By what the model saw in training", "",
             f"The model's records of its training and validation files: {where}"
             + (f" ({provenance['problem']})." if provenance["problem"] else "."), "",
             "| utterances | n | WAR | UAR |", "|---|---:|---:|---:|"]
    for status in STATUSES:
        if counts[status]:
            scores = provenance["accuracy"][status]
            cells = ("-", "-") if scores is None else (f"{100 * scores['war']:.2f} %", f"{100 * scores['uar']:.2f} %")
            lines.append(f"| {TITLES[status]} | {counts[status]} | {cells[0]} | {cells[1]} |")
    lines.append("")
    if counts["training"]:
        lines.append(f"**Not a generalisation figure:** the model was trained on {counts['training']} of these "
                     "utterances. Its model card gives the cross-validated figures.")
    if counts["unknown"]:
        lines.append(f"{counts['unknown']} utterance(s) are not in the model's validation list, and it records no "
                     "training list: they may or may not have been trained on, so their accuracy is neither a "
                     "training nor a test figure.")
    if counts["unseen"]:
        lines.append(f"The {counts['unseen']} utterance(s) the model never saw are the fair test.")
    return lines + [""]


def _confusion_table(scores: dict) -> list[str]:
    labels = scores["labels"]
    rows = ["| true \\ predicted | " + " | ".join(labels) + " | recall | n |",
            "|---|" + "---:|" * (len(labels) + 2)]
    for name, counts in zip(labels, scores["confusion"]):
        recall = scores["per_class_recall"][name]
        shown = "-" if recall is None else f"{100 * recall:.1f} %"
        rows.append(f"| {name} | " + " | ".join(str(c) for c in counts) + f" | {shown} | {scores['support'][name]} |")
    return rows


def _baseline_section(results: dict) -> list[str]:
    baseline = results.get("baseline")
    if not baseline:
        return []
    if "error" in baseline:
        return ["## Baseline: the thesis's stack", "", f"Failed: {baseline['error']}", ""]
    info = baseline["info"]
    lines = ["## Baseline: the thesis's stack (librosa + Keras predict, batch 1)", "",
             f"`{info['model_file']}` with TensorFlow {info['tensorflow']}, Keras {info['keras']}, librosa "
             f"{info['librosa']} (TensorFlow intra-op threads {info['tf_intra_op_threads'] or 'default (all cores)'}), "
             f"on the first {baseline['utterances']} utterances, in this process after the LiteRT pass. Speed-ups "
             "compare means over the utterances both pipelines measured.", "",
             "| pipeline | n | decode + resample | features | inference | total mean | total p95 | LiteRT speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    shown = None  # the LiteRT row repeats only where a mode measured a different set of utterances
    for mode, entry in baseline["modes"].items():
        if not entry["measured"]:
            lines.append(f"| Keras {mode} | 0 | - | - | - | - | - | - |")
            continue
        if entry["litert_latency_s"] != shown:
            shown = entry["litert_latency_s"]
            lines.append(_baseline_row("LiteRT (this run, same utterances)", entry["measured"], shown, "1.0x"))
        lines.append(_baseline_row(f"Keras {mode}", entry["measured"], entry["latency_s"],
                                   f"{entry['speedup_of_litert']['total']:.1f}x"))
    lines.append("")
    for mode, entry in baseline["modes"].items():
        if entry["measured"]:
            agreement = f"Keras {mode}: top-1 agreement with LiteRT {100 * entry['agreement_with_litert']:.1f} %"
            if entry["accuracy"]:
                agreement += f", WAR {100 * entry['accuracy']['war']:.2f} %, UAR {100 * entry['accuracy']['uar']:.2f} %"
            lines.append(f"- {agreement}")
    lines += [f"- peak resident memory after the baseline: {baseline['peak_rss_mib_after']:.1f} MiB", ""]
    return lines


def _baseline_row(name: str, count: int, stages: dict, speedup: str) -> str:
    cells = [f"{1000 * stages[s]['mean']:.1f}" for s in ("decode_resample", "features", "inference")]
    cells += [f"{1000 * stages['total']['mean']:.1f}", f"{1000 * stages['total']['p95']:.1f}"]
    return f"| {name} | {count} | " + " | ".join(cells) + f" | {speedup} |"


def _skipped_section(results: dict) -> list[str]:
    if not results["skipped"]:
        return []
    count = len(results["skipped"])
    return ["## Skipped files", "", f"{count} file(s) could not be read; the run went on without them.",
            "", *(f"- `{s['path']}`: {s['reason']}" for s in results["skipped"]), ""]
