"""How a shipped model's predictions hold up in a noisy room: the same utterances with noise added at set SNRs.

    python -m ser_edge.benchmarks.noise_bench --model ravdess --snrs 30 20 10 5 0 [--noise pink] \\
        [--data-dir ../shared/datasets/ravdess | --files A.flac B.flac ...] [--out benchmarks/results/noise-ravdess.md]

The corpora were recorded in quiet studios; a Pi on a shelf hears a fan, a
fridge, a street. This runs the device's path on the model's held-out
validation files (as ``gain_bench`` picks them) or on ``--files``: decode with
``ser_edge.edge.audio.load``, add noise scaled to each signal-to-noise ratio,
clip to [-1, 1] where the sum passes full scale (as an ADC would; counted),
and classify with ``EmotionClassifier`` on the exported default variant
(LiteRT, one thread). The speech gate is not in this path: it measures the
classifier, not whether the gate would pass the utterance.

- Noise (``ser_edge.models.noise``): ``white``, ``pink`` (3 dB per octave
  down, like much room and fan noise) or ``brown`` (6 dB per octave:
  rumble, traffic), Gaussian, drawn once per file from ``--seed`` and the
  file's position, and only scaled from one SNR to the next, so the rows
  differ by level alone. Training's noisy copies never use pink. Or
  ``babble``: six espeak-ng voices in four languages talking at once
  (``benchmarks/signals.py``), a seeded stretch of one 60 s track per file,
  a noise no training copy resembles (a television, a room of people).
- SNR: against the speech's level, not the whole file's (the corpora's files
  are up to half silence): the RMS over the 20 ms frames within 40 dB of
  the file's loudest frame. The noise covers the whole file, pauses included.

Per SNR: accuracy, agreement with the clean file's label, how often the
device would say "uncertain", and the share of each predicted class: does a
noisy room turn every voice into one emotion? No timings: these are
decisions, the same on any machine.
"""

from __future__ import annotations

import argparse
import math
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
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.judge import model_threshold
from ser_edge.edge.litert import runtime_name
from ser_edge.edge.registry import DEFAULT_VARIANT, resolve_model
from ser_edge.models.noise import COLOURS, add_noise, coloured_noise, frame_power, speech_rms

DEFAULT_SNRS = (30.0, 20.0, 10.0, 5.0, 0.0)
CLEAN = math.inf  # the reference row: the file as decoded, no noise


@dataclass(frozen=True)
class NoiseRun:
    labels: tuple[str, ...]  # the model's classes, in output order
    snrs: tuple[float, ...]  # CLEAN first
    items: tuple[Item, ...]
    sample_rate: int  # the items' (the model's)
    probabilities: dict[float, np.ndarray]  # snr -> (files, classes)
    clipped: dict[float, np.ndarray]  # snr -> clipped samples per file


def snrs_with_clean(snrs) -> tuple[float, ...]:
    """The clean reference first, then the SNRs from cleanest to noisiest, without repeats."""
    unique = sorted({float(s) for s in snrs} - {CLEAN}, reverse=True)
    return (CLEAN, *unique)


NOISES = (*COLOURS, "babble")
BABBLE_S = 60.0  # longer than any file of the corpora (RAVDESS's longest is about 5.3 s)


def noise_maker(noise: str, sample_rate: int):
    """(length, rng) -> unit-RMS float64 noise of that kind."""
    if noise != "babble":
        return lambda length, rng: coloured_noise(length, noise, rng)
    from ser_edge.benchmarks.signals import babble

    track = babble(sample_rate, BABBLE_S).astype(np.float64)

    def stretch(length: int, rng: np.random.Generator) -> np.ndarray:
        if length > track.size:
            raise SerEdgeError(f"a file longer than {BABBLE_S:g} s cannot get babble noise")
        start = int(rng.integers(0, track.size - length + 1))
        piece = track[start:start + length]
        return piece / max(float(np.sqrt(np.mean(np.square(piece)))), 1e-12)

    return stretch


def measure(classifier: EmotionClassifier, items: list[Item], snrs, colour: str, seed: int,
            progress=None) -> NoiseRun:
    """Classify every item clean and at every SNR, with one noise draw per item scaled to each SNR."""
    if not items:
        raise SerEdgeError("no files to measure")
    snrs = snrs_with_clean(snrs)
    rate = classifier.sample_rate
    levels = [speech_rms(item.signal, rate) for item in items]
    silent = [item.path.name for item, level in zip(items, levels) if level == 0]
    if silent:
        raise SerEdgeError(f"{silent[0]}: silent, so no SNR can be set against it")
    make = noise_maker(colour, rate)
    noises = [make(len(item.signal), np.random.default_rng([seed, index])) for index, item in enumerate(items)]

    def change(index: int, item: Item, snr: float) -> tuple[np.ndarray, int]:
        return (item.signal, 0) if snr == CLEAN else add_noise(item.signal, noises[index], snr, levels[index])

    probabilities, clipped = classify_under(classifier, items, snrs, change, _snr, progress)
    return NoiseRun(tuple(classifier.labels), snrs, tuple(items), rate, probabilities, clipped)


def summarize(run: NoiseRun, uncertain_below: float | None = None) -> list[dict]:
    """One row per SNR: accuracy, agreement with the clean label, uncertain share, class shares, clipping."""
    clean = run.probabilities[CLEAN].argmax(axis=1)
    total_samples = sum(item.signal.shape[0] for item in run.items)
    rows = []
    for snr in run.snrs:
        probabilities = run.probabilities[snr]
        top1 = probabilities.max(axis=1)
        rows.append({
            "snr_db": snr,
            "files": len(run.items),
            **label_figures(run.items, run.labels, [run.labels[i] for i in probabilities.argmax(axis=1)]),
            "agreement": float(np.mean(probabilities.argmax(axis=1) == clean)),
            "changed_files": int(np.count_nonzero(probabilities.argmax(axis=1) != clean)),
            "mean_top1": float(top1.mean()),
            "uncertain": None if uncertain_below is None else float(np.mean(top1 < uncertain_below)),
            "clipped_samples": int(run.clipped[snr].sum()),
            "clipped_share": float(run.clipped[snr].sum() / total_samples),
        })
    return rows


def _snr(snr: float) -> str:
    return "clean" if snr == CLEAN else f"{snr:g} dB SNR"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def own_floor(items, sample_rate: int) -> dict[str, float]:
    """The files' own noise floor: the quietest 5 % of their 20 ms frames in dBFS, and how far below the speech
    level that lies (medians over the files): what the pauses sound like before any noise is added."""
    floors, gaps = [], []
    for item in items:
        power = frame_power(item.signal, sample_rate)
        if not power.size:
            continue
        floor = 20 * np.log10(max(float(np.percentile(np.sqrt(power), 5)), 1e-10))
        floors.append(floor)
        gaps.append(20 * np.log10(max(speech_rms(item.signal, sample_rate), 1e-10)) - floor)
    return {"floor_dbfs": float(np.median(floors)), "below_speech_db": float(np.median(gaps))}


def markdown(run: NoiseRun, rows: list[dict], context: dict) -> str:
    """The page: what ran where, on which files, then the per-SNR tables."""
    threshold = context["threshold"]
    floor = own_floor(run.items, run.sample_rate)
    lines = [
        f"# Noise: `{context['model_file']}` with {context['noise']} noise, "
        f"{', '.join(_snr(s) for s in run.snrs[1:])}", "",
        f"`{context['command']}` on {cpu_model()} ({platform.machine()}, Python {platform.python_version()}, "
        f"{runtime_name()}), {context['date']}.", "",
        f"- model: `{context['model_file']}` (sha256 `{context['model_sha256'][:16]}…`), the exported "
        f"{context['variant']} variant, LiteRT at 1 thread, through `EmotionClassifier.classify` (no speech gate)",
        f"- files: {context['files_text']}",
        f"- the files' own noise floor (the quietest 5 % of their 20 ms frames, median over the files): "
        f"{floor['floor_dbfs']:.1f} dBFS, {floor['below_speech_db']:.1f} dB below the speech level",
        f"- noise: {context['noise']} {'(espeak-ng voices)' if context['noise'] == 'babble' else 'Gaussian'}, "
        f"one draw per file (seed {context['seed']}), scaled to each SNR "
        "against the speech level (RMS of the 20 ms frames within 40 dB of the loudest), over the whole file",
        f"- uncertain: top-1 probability below the model's threshold "
        f"({'none recorded' if threshold is None else format(threshold, '.4f')}), where `ser-edge` reports "
        "`uncertain`",
        "",
        "## Per SNR", "",
        "| SNR | accuracy (WAR) | UAR | same label as clean | files changed | mean top-1 | uncertain | "
        "clipped samples |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {_snr(row['snr_db'])} | {_percent(row['war'])} | {_percent(row['uar'])} | "
            f"{_percent(row['agreement'])} | {row['changed_files']} | {row['mean_top1']:.3f} | "
            f"{_percent(row['uncertain'])} | {row['clipped_samples']:,} ({100 * row['clipped_share']:.3f} %) |")
    lines += share_tables(run.items, run.labels, rows, [_snr(row["snr_db"]) for row in rows], "SNR")
    if context.get("notes"):
        lines += ["", "## Notes", "", *(f"- {note}" for note in context["notes"])]
    return "\n".join(lines) + "\n"


def run(model: str, snrs, colour: str = "pink", seed: int = 0, data_dir: Path | None = None,
        files: list[Path] | None = None, variant: str = DEFAULT_VARIANT, command_line: str = "",
        progress=None) -> tuple[str, list[dict]]:
    """The whole benchmark: (Markdown page, rows)."""
    import datetime

    if colour not in NOISES:  # before loading anything
        raise SerEdgeError(f"noise must be one of {', '.join(NOISES)}, got {colour!r}")
    classifier = EmotionClassifier(resolve_model(model, variant), threads=1)
    utterances, files_text = measured_utterances(classifier, model, data_dir, files)
    items = decode(utterances, classifier.sample_rate)
    measured = measure(classifier, items, snrs, colour, seed, progress)
    threshold = model_threshold(classifier.metadata)
    notes = []
    if classifier.dataset == "emodb" and not files:
        notes.append(EMODB_MIRROR_NOTE)
    if not any(item.label in classifier.labels for item in items):
        notes.append(NO_LABELS_NOTE)
    context = {
        "command": command_line or f"python -m ser_edge.benchmarks.noise_bench --model {model}",
        "date": datetime.date.today().isoformat(), "model_file": classifier.path.name,
        "model_sha256": file_sha256(classifier.path), "variant": variant, "files_text": files_text,
        "noise": colour, "seed": seed, "threshold": threshold, "notes": notes,
    }
    rows = summarize(measured, threshold)
    return markdown(measured, rows, context), rows


def snr_value(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not -20.0 <= value <= 80.0:
        raise argparse.ArgumentTypeError(f"an SNR in dB between -20 and 80, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.benchmarks.noise_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_file_arguments(parser)
    parser.add_argument("--snrs", type=snr_value, nargs="+", default=list(DEFAULT_SNRS),
                        help="signal-to-noise ratios in dB against the speech level (the clean row is added)")
    parser.add_argument("--noise", default="pink", choices=NOISES,
                        help="white, pink or brown Gaussian noise, or espeak-ng babble (default pink)")
    parser.add_argument("--seed", type=int, default=0, help="the noise draws' seed (default 0)")
    args = parser.parse_args(argv)
    shown = shown_command("noise_bench", args, "--snrs", *(f"{s:g}" for s in args.snrs), "--noise", args.noise,
                          *([] if args.seed == 0 else ["--seed", str(args.seed)]))
    return run_page("noise_bench", lambda progress: run(args.model, args.snrs, args.noise, args.seed, args.data_dir,
                                                        args.files, args.variant, shown, progress)[0], args.out)


if __name__ == "__main__":
    sys.exit(main())
