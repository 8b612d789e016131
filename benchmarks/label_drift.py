"""What the input-level and noise benchmarks share: which files, decoded how, and how their labels drift.

Both play a shipped model's held-out validation files (or ``--files``) through the device's path under a
changed condition (a gain, a noise) and report, per condition, accuracy and the share of each predicted
class: does the change turn every voice into one emotion?
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.benchmarks.frontend_bench import SHARED_DATASETS
from ser_edge.benchmarks.provenance import TITLES, model_provenance
from ser_edge.benchmarks.stats import accuracy
from ser_edge.edge import atomic, audio, command
from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.datasets import Utterance, read_dataset, select_listed
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.registry import DEFAULT_VARIANT, VARIANTS

EMODB_MIRROR_NOTE = ("The EMO-DB copy in ../shared/datasets is a mirror resampled to 22,050 Hz and cut or padded to "
                     "2.0 s per file (its README): its levels and figures are not those of the original recordings.")
NO_LABELS_NOTE = "No file has a label the model knows: accuracy is not measured."


@dataclass(frozen=True)
class Item:
    """One decoded file: its path, its true label (None where unknown) and the signal at the model's rate."""

    path: Path
    label: str | None
    signal: np.ndarray


def decode(utterances: list[Utterance], sample_rate: int) -> list[Item]:
    """Each file with the runtime's own decoder (mono, resampled to the model's rate)."""
    return [Item(u.path, u.label or None, audio.load(u.path, sample_rate)) for u in utterances]


def validation_utterances(classifier: EmotionClassifier, data_dir: Path) -> tuple[list[Utterance], str]:
    """The model's held-out validation files in ``data_dir`` (its own records), and where the list came from."""
    provenance = model_provenance(classifier.path, classifier.metadata)
    if not provenance.validation:
        raise SerEdgeError(f"{classifier.path.name}: no validation file list ({provenance.problem}); pass --files")
    dataset = classifier.dataset
    if not dataset:
        raise SerEdgeError(f"{classifier.path.name}: its metadata names no dataset; pass --files")
    found = select_listed(read_dataset(dataset, data_dir), provenance.validation, data_dir, "validation")
    return found, (f"the model's {len(found)} validation files in {dataset}, listed in `{provenance.source}` "
                   "(held out of the weights; they chose the epoch)")


def named_utterances(classifier: EmotionClassifier, files: list[Path]) -> tuple[list[Utterance], str]:
    """``--files``, labelled where the model's dataset reader recognises the name (else unlabelled)."""
    labels: dict[Path, str] = {}
    dataset = classifier.dataset
    if dataset:
        for folder in {Path(f).resolve().parent for f in files}:
            try:
                labels.update({u.path.resolve(): u.label for u in read_dataset(dataset, folder)})
            except SerEdgeError:
                continue  # not a folder of that dataset: these files have no labels
    found = [Utterance(Path(f), labels.get(Path(f).resolve(), ""), "") for f in files]
    provenance = model_provenance(classifier.path, classifier.metadata)
    statuses = Counter(provenance.status(u.path) for u in found)
    where = "; ".join(f"{count} {TITLES[status]}" for status, count in statuses.items())
    return found, f"{len(found)} files given with --files ({where})"


def measured_utterances(classifier: EmotionClassifier, model: str, data_dir: Path | None,
                        files: list[Path] | None) -> tuple[list[Utterance], str]:
    """``files`` where given, else the model's validation files in ``data_dir`` (default the shared datasets)."""
    if files:
        return named_utterances(classifier, files)
    shown = str(data_dir) if data_dir else f"../shared/datasets/{classifier.dataset or model}"
    utterances, text = validation_utterances(classifier, Path(data_dir) if data_dir
                                             else SHARED_DATASETS / (classifier.dataset or model))
    return utterances, f"{text}, read from `{shown}`"


def label_figures(items, labels: tuple[str, ...], predicted: list[str]) -> dict:
    """WAR and UAR over the labelled items (None without any), each class's share, the label said most."""
    labelled = [i for i, item in enumerate(items) if item.label in labels]
    scores = (accuracy([items[i].label for i in labelled], [predicted[i] for i in labelled], labels)
              if labelled else None)
    counts = Counter(predicted)
    most, most_count = max(counts.items(), key=lambda kv: (kv[1], -labels.index(kv[0])))
    return {"labelled": len(labelled),
            "war": None if scores is None else scores["war"], "uar": None if scores is None else scores["uar"],
            "shares": {name: counts.get(name, 0) / len(predicted) for name in labels},
            "most_predicted": most, "most_predicted_share": most_count / len(predicted)}


def share_tables(items, labels: tuple[str, ...], rows: list[dict], names: list[str], condition: str) -> list[str]:
    """The Markdown of "Predicted classes per CONDITION" and "The label predicted most often", one row each."""
    lines = ["", f"## Predicted classes per {condition} (share of the files)", "",
             f"| {condition} | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
    truth = Counter(item.label for item in items if item.label in labels)
    if truth:
        total = sum(truth.values())
        lines.append("| true labels | " + " | ".join(f"{100 * truth.get(n, 0) / total:.1f} %" for n in labels) + " |")
    lines += [f"| {name} | " + " | ".join(f"{100 * row['shares'][n]:.1f} %" for n in labels) + " |"
              for name, row in zip(names, rows)]
    lines += ["", "## The label predicted most often", "",
              f"| {condition} | label | share of the files |", "|---:|---|---:|"]
    lines += [f"| {name} | {row['most_predicted']} | {100 * row['most_predicted_share']:.1f} % |"
              for name, row in zip(names, rows)]
    return lines


def classify_under(classifier: EmotionClassifier, items: list[Item], conditions, change, describe,
                   progress=None) -> tuple[dict, dict]:
    """Classify every item under every condition through ``classifier.classify`` (the device's path).

    ``change(index, item, condition)`` gives the signal to classify and how many of its samples were clipped;
    ``describe(condition)`` names the condition for ``progress``. Returns (probabilities: condition ->
    (files, classes) float64, clipped: condition -> samples clipped per file).
    """
    if not items:
        raise SerEdgeError("no files to measure")
    probabilities, clipped = {}, {}
    for condition in conditions:
        rows, counts = [], []
        for index, item in enumerate(items):
            signal, count = change(index, item, condition)
            prediction = classifier.classify(signal)
            rows.append([prediction.probabilities[name] for name in classifier.labels])
            counts.append(count)
        probabilities[condition] = np.array(rows, dtype=np.float64)
        clipped[condition] = np.array(counts, dtype=np.int64)
        if progress:
            progress(f"{describe(condition)}: {len(items)} files")
    return probabilities, clipped


def add_file_arguments(parser) -> None:
    """--model, --variant, --data-dir or --files, --out: how both benchmarks pick what they play and where to."""
    parser.add_argument("--model", default="ravdess", help="a shipped model name (ravdess, emodb)")
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=VARIANTS,
                        help=f"which exported variant (default {DEFAULT_VARIANT}, what the device runs)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", type=Path,
                        help="the model's dataset folder (default ../shared/datasets/DATASET); its validation files")
    source.add_argument("--files", type=Path, nargs="+", help="these audio files instead of the validation files")
    parser.add_argument("--out", type=Path, help="write the Markdown page here too")


def shown_command(module: str, args, *middle: str) -> str:
    """The command line a page names: the module, the model, the variant where not the default, ``middle``."""
    return " ".join([f"python -m ser_edge.benchmarks.{module}", "--model", args.model,
                     *([] if args.variant == DEFAULT_VARIANT else ["--variant", args.variant]), *middle,
                     *(["--files", f"({len(args.files)} files)"] if args.files else [])])


def run_page(name: str, make_page, out: Path | None) -> int:
    """Run ``make_page(progress)`` as command ``name``: progress on stderr, the page on stdout and in ``out``."""
    def body() -> int:
        text = make_page(lambda line: print(line, file=sys.stderr, flush=True))
        print(text)
        if out:
            atomic.write_text(out, text)
        return 0

    return command.run(name, body)
