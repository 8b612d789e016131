"""What the speech gate lets through: generated non-speech, espeak-ng speech, and real dataset speech.

``python -m ser_edge.benchmarks.speech_gate_bench [--data-dir ../shared/datasets] [--out benchmarks/results/speech_gate.md]``

For each signal: Silero's speech probability (edge/speech_gate.py), whether
the Silero gate passes it, whether the energy gate (the fallback) would, and,
where the gate passes it, what the default model then says. For each dataset:
how many of the default model's validation files pass. No timings: these are
decisions, the same on any machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

from ser_edge.benchmarks import signals
from ser_edge.benchmarks.host import cpu_model, file_sha256
from ser_edge.benchmarks.label_drift import validation_utterances
from ser_edge.edge import atomic, audio, command
from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.judge import Judge
from ser_edge.edge.registry import resolve_model
from ser_edge.edge.segmenter import SegmenterSettings
from ser_edge.edge.speech_gate import DEFAULT_THRESHOLD, EnergyGate, SileroGate

SECONDS = 4.0
DATASETS = ("emodb", "ravdess")


def signal_rows(judge: Judge, energy: EnergyGate, rate: int) -> list[dict]:
    made = {name: make(rate, SECONDS) for name, make in signals.NON_SPEECH.items()}
    made["babble (6 espeak-ng voices)"] = signals.babble(rate, SECONDS)
    made["espeak-ng sentence"] = signals.espeak_voice("I can't believe you did this to me, I am furious.", rate)
    made["espeak-ng sentence, clipped +20 dB"] = signals.clipped_speech(
        "I can't believe you did this to me, I am furious.", rate)
    rows = []
    for name, signal in made.items():
        judgement = judge.judge(signal)
        rows.append({"signal": name, "speech_probability": round(judgement.speech.probability, 3),
                     "silero_gate": judgement.speech.is_speech, "energy_gate": energy.judge(signal, rate).is_speech,
                     "label": judgement.label})
    return rows


def dataset_rows(gate: SileroGate, data_dir: Path, rate: int) -> list[dict]:
    rows = []
    for name in DATASETS:
        folder = data_dir / name
        if not folder.is_dir():
            print(f"{name}: no {folder}, left out", file=sys.stderr)
            continue
        # The shipped model's own list of held-out files (its training sidecar), as the other benchmarks read it.
        found, _ = validation_utterances(EmotionClassifier(resolve_model(name)), folder)
        probabilities = [gate.judge(audio.load(u.path, rate), rate).probability for u in found]
        rows.append({"dataset": name, "files": len(probabilities),
                     "passed": sum(p >= gate.threshold for p in probabilities),
                     "lowest_probability": round(min(probabilities), 3)})
        print(f"{name}: {rows[-1]}", file=sys.stderr)
    return rows


def markdown(signal_table: list[dict], datasets: list[dict], gate: SileroGate, model: Path) -> str:
    # The labels belong to one model file: name it by its checksum, so a page left from an older model shows it.
    lines = ["# Speech gate: what passes", "",
             f"`python -m ser_edge.benchmarks.speech_gate_bench` on {cpu_model()} ({platform.machine()}, "
             f"Python {platform.python_version()}); gate: {gate.description}; model "
             f"`{model.name}` (sha256 `{file_sha256(model)[:16]}…`). Signals of {SECONDS:g} s at 22,050 Hz "
             "(espeak-ng sentences as long as they are), "
             "peak 0.5 unless clipped; `benchmarks/signals.py` makes them.", "",
             "| signal | speech probability | Silero gate | energy gate (fallback) | label |",
             "|---|---|---|---|---|"]
    for row in signal_table:
        lines.append(f"| {row['signal']} | {row['speech_probability']:.3f} | "
                     f"{'speech' if row['silero_gate'] else 'not speech'} | "
                     f"{'speech' if row['energy_gate'] else 'not speech'} | {row['label'] or '-'} |")
    if datasets:
        lines += ["", "Real speech: the shipped models' validation files.", "",
                  "| dataset | files | passed the gate | lowest speech probability |", "|---|---|---|---|"]
        lines += [f"| {row['dataset']} | {row['files']} | {row['passed']} | {row['lowest_probability']:.3f} |"
                  for row in datasets]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.benchmarks.speech_gate_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="shared datasets folder (emodb/, ravdess/)")
    parser.add_argument("--model", default="ravdess")
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args(argv)
    return command.run("speech_gate_bench", lambda: write_page(args.model, args.data_dir, args.out))


def write_page(model: str, data_dir: Path | None, out: Path | None) -> None:
    if data_dir and not any((data_dir / name).is_dir() for name in DATASETS):  # before the model, the gate and espeak-ng run
        raise SerEdgeError(f"{data_dir}: holds neither {' nor '.join(f'{n}/' for n in DATASETS)}")
    classifier = EmotionClassifier(resolve_model(model))
    gate = SileroGate(DEFAULT_THRESHOLD)
    rate = classifier.sample_rate
    table = signal_rows(Judge(classifier, gate), EnergyGate(SegmenterSettings()), rate)
    datasets = dataset_rows(gate, data_dir, rate) if data_dir else []
    text = markdown(table, datasets, gate, classifier.path)
    print(text)
    if out:
        atomic.write_text(out, text)

if __name__ == "__main__":
    sys.exit(main())
