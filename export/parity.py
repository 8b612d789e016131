"""Parity of an exported .tflite with its Keras source on held-out real features."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.litert import runtime_name
from ser_edge.models import metrics

LATENCY_RUNS = 50
# Beyond the export itself (one busy process), this much load means other work shared the CPUs.
BUSY_LOAD = 0.5


def parity_report(tflite_path: Path, keras_probabilities: np.ndarray, held_out: np.ndarray,
                  labels: np.ndarray, label_names: tuple[str, ...], record: dict) -> dict:
    classifier = EmotionClassifier(tflite_path, threads=1)
    lite = np.stack([classifier.infer(matrix) for matrix in held_out])
    keras_top, lite_top = keras_probabilities.argmax(1), lite.argmax(1)
    difference = np.abs(lite - keras_probabilities)
    report = {
        "file": tflite_path.name,
        "bytes": tflite_path.stat().st_size,
        "quantization": record["quantization"],
        "conversion_mode": record["mode"],
        "float_ops": record.get("float_ops", {}),
        "float_layers": record.get("float_layers", {}),
        "ops": record.get("ops", {}),
        "held_out_items": int(len(held_out)),
        "top1_agreement": float(np.mean(keras_top == lite_top)),
        "max_abs_probability_difference": float(difference.max()),
        "mean_abs_probability_difference": float(difference.mean()),
        "keras": {k: v for k, v in metrics.summarise(labels, keras_top, label_names).items() if k in ("war", "uar")},
        "tflite": {k: v for k, v in metrics.summarise(labels, lite_top, label_names).items() if k in ("war", "uar")},
        "runtime": runtime_name(),
        "invoke_latency_ms": {f"{threads}_thread{'s' if threads > 1 else ''}": invoke_latency(tflite_path, held_out[0], threads)
                              for threads in (1, 2)},
        # Timings are only figures on a quiet machine: say how busy it was (1-min load average).
        "load_while_timing": {"load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()},
    }
    return report


def busy(report: dict) -> bool:
    load = report.get("load_while_timing")
    return bool(load) and load["load_average_1min"] - 1 >= BUSY_LOAD


def load_rows(report: dict) -> list[str]:
    """The report's line on how busy the machine was while timing (none in reports written before it)."""
    load = report.get("load_while_timing")
    if not load:
        return []
    verdict = (": other work shared the machine, so these timings are not figures (benchmarks/ measures them "
               "on a quiet machine)" if busy(report) else "")
    return [f"| machine while timing | 1-min load average {load['load_average_1min']:.2f} on {load['cpus']} CPUs"
            f"{verdict} |"]


def invoke_latency(path: Path, matrix: np.ndarray, threads: int) -> dict:
    classifier = EmotionClassifier(path, threads=threads)
    for _ in range(5):
        classifier.infer(matrix)
    samples = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        classifier.infer(matrix)
        samples.append((time.perf_counter() - started) * 1e3)
    return {"median": float(np.median(samples)), "p95": float(np.percentile(samples, 95)), "runs": LATENCY_RUNS}


def write_parity(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(report["file"]).stem
    (out_dir / f"{stem}.parity.json").write_text(json.dumps(report, indent=1))
    (out_dir / f"{stem}.parity.md").write_text(parity_markdown(report))


def parity_markdown(r: dict) -> str:
    one, two = r["invoke_latency_ms"]["1_thread"], r["invoke_latency_ms"]["2_threads"]
    float_ops = ", ".join(f"{k} x{v}" for k, v in r["float_ops"].items()) or "none"
    return "\n".join([
        f"# Parity: {r['file']} ({r['conversion_mode']})",
        "",
        f"Held-out real features: {r['held_out_items']} utterances (the shipping model's validation split).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| top-1 agreement with Keras | {100 * r['top1_agreement']:.2f} % |",
        f"| WAR Keras / TFLite | {100 * r['keras']['war']:.2f} % / {100 * r['tflite']['war']:.2f} % |",
        f"| UAR Keras / TFLite | {100 * r['keras']['uar']:.2f} % / {100 * r['tflite']['uar']:.2f} % |",
        f"| max / mean abs probability difference | {r['max_abs_probability_difference']:.5f} / "
        f"{r['mean_abs_probability_difference']:.5f} |",
        f"| file size | {r['bytes']:,} bytes |",
        f"| invoke, 1 thread (median / p95) | {one['median']:.2f} / {one['p95']:.2f} ms |",
        f"| invoke, 2 threads (median / p95) | {two['median']:.2f} / {two['p95']:.2f} ms |",
        *load_rows(r),
        f"| ops computing in float inside the graph | {float_ops} |",
        f"| runtime | {r['runtime']} |",
        "",
        *(["Kept in float on purpose:", ""] if r.get("float_layers") else []),
        *[f"- {layer}: {reason}" for layer, reason in r.get("float_layers", {}).items()],
        "",
    ])
