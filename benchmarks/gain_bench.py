"""How a shipped model's predictions depend on the input level: the same utterances, louder and quieter.

    python -m ser_edge.benchmarks.gain_bench --model ravdess --gains 0 -6 -12 -20 -30 \\
        [--data-dir ../shared/datasets/ravdess | --files A.flac B.flac ...] [--out benchmarks/results/gain-ravdess.md]

A Pi's microphone hears a speaker at an unknown distance through an unknown
gain, while the corpora were recorded close up and mastered. This runs the
device's path on the model's held-out validation files (the training
sidecar's ``validation_files``, matched as ``benchmarks/provenance.py`` does),
or on ``--files``: decode with ``ser_edge.edge.audio.load``, multiply the
decoded signal by 10 ** (gain / 20), clip to [-1, 1] where a positive gain
pushes it past full scale (as an ADC would; the clipped samples are counted),
and classify with ``EmotionClassifier`` on the exported default variant
(LiteRT, one thread). Per gain: accuracy against the true labels, agreement of
the label with the 0 dB label, how far the probability vector moves (the
largest change over the classes, averaged over the files), how often the
device would say "uncertain" (top-1 below the model's threshold), and the
share of each predicted class: does a quieter voice turn into "sad" or
"calm"? No timings: these are decisions, the same on any machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.benchmarks.host import cpu_model, file_sha256
from ser_edge.benchmarks.label_drift import (EMODB_MIRROR_NOTE, NO_LABELS_NOTE, Item, classify_under, decode,
                                             add_file_arguments,
                                             label_figures, measured_utterances, run_page, share_tables,
                                             shown_command)
from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.config import LEVELS
from ser_edge.edge.judge import model_threshold
from ser_edge.edge.litert import runtime_name
from ser_edge.edge.registry import DEFAULT_VARIANT, resolve_model

DEFAULT_GAINS = (0.0, -6.0, -12.0, -20.0, -30.0)
REFERENCE_DB = 0.0  # agreement and probability changes are measured against the file as decoded


def apply_gain(signal: np.ndarray, gain_db: float) -> tuple[np.ndarray, int]:
    """``signal`` * 10 ** (gain_db / 20) as float32, and how many samples a positive gain clipped to [-1, 1].

    At 0 dB the decoded signal comes back unchanged (what the runtime classifies); a gain at or below 0 dB
    never clips (a resampled file may overshoot full scale by a hair: that is the file, not the level).
    """
    if gain_db == 0:
        return signal, 0
    scaled = (signal * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32, copy=False)
    if gain_db < 0:
        return scaled, 0
    clipped = int(np.count_nonzero(np.abs(scaled) > 1.0))
    return (np.clip(scaled, -1.0, 1.0, out=scaled) if clipped else scaled), clipped


@dataclass(frozen=True)
class GainRun:
    labels: tuple[str, ...]  # the model's classes, in output order
    gains: tuple[float, ...]
    items: tuple[Item, ...]
    probabilities: dict[float, np.ndarray]  # gain -> (files, classes)
    clipped: dict[float, np.ndarray]  # gain -> clipped samples per file

    def predicted(self, gain: float) -> list[str]:
        return [self.labels[i] for i in self.probabilities[gain].argmax(axis=1)]


def gains_with_reference(gains) -> tuple[float, ...]:
    """The gains in the order given, without repeats, with 0 dB first where it was not asked for."""
    unique = tuple(dict.fromkeys(float(g) for g in gains))
    return unique if REFERENCE_DB in unique else (REFERENCE_DB, *unique)


def measure(classifier: EmotionClassifier, items: list[Item], gains, progress=None) -> GainRun:
    """Classify every item at every gain (0 dB always included) with ``classifier``."""
    gains = gains_with_reference(gains)
    probabilities, clipped = classify_under(classifier, items, gains,
                                            lambda _, item, gain: apply_gain(item.signal, gain), _db, progress)
    return GainRun(tuple(classifier.labels), gains, tuple(items), probabilities, clipped)


def summarize(run: GainRun, uncertain_below: float | None = None) -> list[dict]:
    """One row per gain: accuracy, agreement with 0 dB, probability change, class shares, clipping."""
    reference = run.probabilities[REFERENCE_DB]
    reference_labels = reference.argmax(axis=1)
    total_samples = sum(item.signal.shape[0] for item in run.items)
    rows = []
    for gain in run.gains:
        probabilities = run.probabilities[gain]
        change = np.abs(probabilities - reference).max(axis=1)  # per file, the class that moved most
        top1 = probabilities.max(axis=1)
        rows.append({
            "gain_db": gain,
            "factor": 10.0 ** (gain / 20.0),
            "files": len(run.items),
            **label_figures(run.items, run.labels, run.predicted(gain)),
            "agreement": float(np.mean(probabilities.argmax(axis=1) == reference_labels)),
            "changed_files": int(np.count_nonzero(probabilities.argmax(axis=1) != reference_labels)),
            "mean_max_abs_change": float(change.mean()),
            "max_max_abs_change": float(change.max()),
            "mean_top1": float(top1.mean()),
            "uncertain": None if uncertain_below is None else float(np.mean(top1 < uncertain_below)),
            "clipped_samples": int(run.clipped[gain].sum()) if gain > 0 else None,
            "clipped_share": float(run.clipped[gain].sum() / total_samples) if gain > 0 else None,
            "clipped_files": int(np.count_nonzero(run.clipped[gain])) if gain > 0 else None,
        })
    return rows


def levels(items: list[Item] | tuple[Item, ...]) -> dict[str, float]:
    """Median RMS and peak of the decoded files in dBFS (what "0 dB" is)."""
    rms = [20 * np.log10(max(float(np.sqrt(np.mean(np.square(i.signal, dtype=np.float64)))), 1e-10)) for i in items]
    peak = [20 * np.log10(max(float(np.max(np.abs(i.signal))), 1e-10)) for i in items]
    return {"rms_dbfs_median": float(np.median(rms)), "rms_dbfs_min": float(np.min(rms)),
            "rms_dbfs_max": float(np.max(rms)), "peak_dbfs_median": float(np.median(peak)),
            "over_full_scale_files": sum(float(np.max(np.abs(i.signal))) > 1.0 for i in items)}


def _db(gain: float) -> str:
    return "0 dB" if gain == 0 else f"{gain:+g} dB"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def markdown(run: GainRun, rows: list[dict], context: dict) -> str:
    """The page: what ran where, on which files, then the per-gain tables."""
    level = levels(run.items)
    lines = [
        f"# Input level: `{context['model_file']}` from {_db(max(r['gain_db'] for r in rows))} to "
        f"{_db(min(r['gain_db'] for r in rows))}", "",
        f"`{context['command']}` on {cpu_model()} ({platform.machine()}, Python {platform.python_version()}, "
        f"{runtime_name()}), {context['date']}.", "",
        f"- model: `{context['model_file']}` (sha256 `{context['model_sha256'][:16]}…`), the exported "
        f"{context['variant']} variant, LiteRT at 1 thread, through `EmotionClassifier.classify`, "
        f"setting `level = \"{context.get('level', 'normalised')}\"`",
        f"- files: {context['files_text']}",
        f"- level at 0 dB (each file as decoded, 22,050 Hz mono): RMS median {level['rms_dbfs_median']:.1f} dBFS "
        f"({level['rms_dbfs_min']:.1f} to {level['rms_dbfs_max']:.1f}), peak median {level['peak_dbfs_median']:.1f} "
        f"dBFS",
        "- gain: the decoded signal times 10^(gain/20); above 0 dB clipped to [-1, 1] as an ADC would",
        f"- uncertain: top-1 probability below the model's threshold "
        f"({'none recorded' if context['threshold'] is None else format(context['threshold'], '.4f')}), "
        "where `ser-edge` reports `uncertain`",
        "",
        "## Per gain", "",
        "| gain | factor | accuracy (WAR) | UAR | same label as 0 dB | files changed | mean max\\|Δp\\| | "
        "worst max\\|Δp\\| | mean top-1 | uncertain | clipped samples |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        clipped = ("-" if row["clipped_samples"] is None else
                   f"{row['clipped_samples']:,} ({100 * row['clipped_share']:.3f} %, {row['clipped_files']} files)")
        lines.append(
            f"| {_db(row['gain_db'])} | {row['factor']:.4g} | {_percent(row['war'])} | {_percent(row['uar'])} | "
            f"{_percent(row['agreement'])} | {row['changed_files']} | {row['mean_max_abs_change']:.3f} | "
            f"{row['max_max_abs_change']:.3f} | {row['mean_top1']:.3f} | {_percent(row['uncertain'])} | {clipped} |")
    lines += ["", "mean max|Δp|: per file the largest change of any class's probability against 0 dB, averaged "
              "over the files (worst: the largest over the files).",
              *share_tables(run.items, run.labels, rows, [_db(row["gain_db"]) for row in rows], "gain")]
    if context.get("notes"):
        lines += ["", "## Notes", "", *(f"- {note}" for note in context["notes"])]
    return "\n".join(lines) + "\n"


def run(model: str, gains, data_dir: Path | None = None, files: list[Path] | None = None,
        variant: str = DEFAULT_VARIANT, command_line: str = "", progress=None,
        level_setting: str = "normalised") -> tuple[str, list[dict]]:
    """The whole benchmark: (Markdown page, rows)."""
    import datetime

    classifier = EmotionClassifier(resolve_model(model, variant), threads=1, level=level_setting)
    utterances, files_text = measured_utterances(classifier, model, data_dir, files)
    items = decode(utterances, classifier.sample_rate)
    measured = measure(classifier, items, gains, progress)
    threshold = model_threshold(classifier.metadata)
    rows = summarize(measured, threshold)
    level = levels(items)
    notes = []
    if level["over_full_scale_files"]:
        notes.append(f"{level['over_full_scale_files']} file(s) exceed full scale by a hair once resampled; they are "
                     "classified as decoded at 0 dB and below, and clipped only at positive gains.")
    if classifier.dataset == "emodb" and not files:
        notes.append(EMODB_MIRROR_NOTE)
    features = classifier.features
    if features.level_reference is not None:
        notes.append(f"The model normalises the level (`FeatureConfig.level_reference` {features.level_reference:.1f}): "
                     "each utterance's c0 is moved so that its loudest frame sits there. A gain moves every frame's c0 "
                     "by the same amount, so it cancels, until the quietest input meets the -100 dB floor (`amin`) "
                     "of the zero padding, which does not move with the gain.")
    elif not features.utterance_mean:
        notes.append("The model takes the level as recorded (no `level_reference`, no `utterance_mean`): a gain "
                     "moves the log-mel energies by the same number of dB in every band (where no floor applies), so "
                     "c0 by that times sqrt(n_mels), and the training set's standardisation passes that on to the model.")
    if not any(item.label in classifier.labels for item in items):
        notes.append(NO_LABELS_NOTE)
    context = {
        "command": command_line or f"python -m ser_edge.benchmarks.gain_bench --model {model}",
        "date": datetime.date.today().isoformat(),
        "model_file": classifier.path.name, "model_sha256": file_sha256(classifier.path), "variant": variant,
        "files_text": files_text, "level": level_setting,
        "threshold": threshold, "notes": notes,
    }
    return markdown(measured, rows, context), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.benchmarks.gain_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_file_arguments(parser)
    parser.add_argument("--level", default="normalised", choices=LEVELS,
                        help="the runtime's level setting (default normalised, what the device runs)")
    parser.add_argument("--gains", type=float, nargs="+", default=list(DEFAULT_GAINS),
                        help="gains in dB (0 dB, the reference, is added where missing)")
    args = parser.parse_args(argv)
    shown = shown_command("gain_bench", args, *([] if args.level == "normalised" else ["--level", args.level]),
                          "--gains", *(f"{g:g}" for g in args.gains))
    return run_page("gain_bench", lambda progress: run(args.model, args.gains, args.data_dir, args.files, args.variant,
                                                       shown, progress=progress, level_setting=args.level)[0],
                    args.out)


if __name__ == "__main__":
    sys.exit(main())
