"""The four shipped variants of one model, timed side by side in one run.

    python -m ser_edge.benchmarks.variants_bench --model emodb --data-dir ../shared/datasets/emodb [--items 40] [--rounds 5]

Every variant invokes the same real feature matrices (the first ``--items``
utterances of the dataset, sorted by path, decoded and featurised once), at one
thread, in a rotating order per round so that background load hits all alike.
Reports invoke latency (median, p95) and top-1 agreement with the float32 file
on those items, as a Markdown table on stdout. This is the measurement behind
the README's choice of default variant and the int8 speed comparison.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ser_edge.edge import audio, datasets, features
from ser_edge.edge import command
from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.registry import VARIANTS, resolve_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="emodb", help="a shipped model name")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.items < 1 or args.rounds < 1:
        parser.error("--items and --rounds must be at least 1")
    return command.run("variants_bench", lambda: print(run(args.model, args.data_dir, args.items, args.rounds)))


def run(model: str, data_dir: str, items: int, rounds: int) -> str:
    paths = {variant: resolve_model(model, variant) for variant in VARIANTS}
    classifiers = {variant: EmotionClassifier(path, threads=1) for variant, path in paths.items()}
    config = classifiers["float32"].features
    utterances = sorted(datasets.read_dataset(classifiers["float32"].dataset or model, data_dir),
                        key=lambda u: str(u.path))[:items]
    matrices = [features.utterance_features(audio.load(u.path, config.sample_rate), config) for u in utterances]
    timings = {variant: [] for variant in VARIANTS}
    top1 = {variant: [] for variant in VARIANTS}
    for round_index in range(rounds):
        order = VARIANTS[round_index % len(VARIANTS):] + VARIANTS[:round_index % len(VARIANTS)]
        for variant in order:
            classifier = classifiers[variant]
            classifier.infer(matrices[0])  # warm the interpreter after the others ran
            for matrix in matrices:
                started = time.perf_counter()
                probabilities = classifier.infer(matrix)
                timings[variant].append((time.perf_counter() - started) * 1e3)
                if round_index == 0:
                    top1[variant].append(int(np.argmax(probabilities)))
    reference = np.array(top1["float32"])
    lines = [
        f"# Variants of `{model}`: invoke latency at 1 thread, side by side",
        "",
        f"{len(matrices)} real utterances from {data_dir}, {rounds} rounds, rotating order.",
        "",
        "| variant | file bytes | median ms | p95 ms | top-1 agreement with float32 |",
        "|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        samples = np.array(timings[variant])
        agreement = float(np.mean(np.array(top1[variant]) == reference))
        size = paths[variant].stat().st_size
        lines.append(f"| {variant} | {size:,} | {np.median(samples):.2f} | {np.percentile(samples, 95):.2f} | "
                     f"{100 * agreement:.1f} % |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
