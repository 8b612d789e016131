"""Two ser-train runs on the same folds, compared fold by fold and utterance by utterance.

    python -m ser_edge.models.compare_runs BASELINE CANDIDATE [--markdown FILE]

BASELINE and CANDIDATE are run folders (``fold_NN.json`` at their top or under ``folds/``, as
``ser-train`` and ``attach_cv`` leave them). Folds are paired by number and must hold the same test
utterances, which they do when both runs used the same dataset, split, fold count and seed; only the
folds both runs finished are compared. Per fold: each run's WAR and UAR and the gain. Over all
compared folds: the mean gain, how many folds gain, and, pooled over the test utterances, how many
only one of the runs got right, with McNemar's exact test on those: the folds of one split share
their training data, so a count of folds that gain says less than it seems to.

Nothing is trained or re-tested: every figure comes from the fold files' recorded predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
from math import comb
from pathlib import Path

from ser_edge.edge import atomic, command
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models import attach_cv  # where run folders' fold files are found


def read_folds(run_dir: Path) -> dict[int, dict]:
    """Fold number -> fold file contents, from ``run_dir`` or its ``folds/``."""
    if not run_dir.is_dir():
        raise SerEdgeError(f"{run_dir}: not a folder")
    paths = attach_cv.fold_files(run_dir)
    if not paths:
        raise SerEdgeError(f"{run_dir}: no fold_NN.json (nor folds/fold_NN.json); not a ser-train run folder")
    folds = {}
    for path in paths:
        try:
            fold = json.loads(path.read_text())
            folds[int(fold["fold"])] = fold
        except (ValueError, KeyError, TypeError) as error:
            raise SerEdgeError(f"{path}: not a ser-train fold file ({error})") from None
    return folds


def right_by_utterance(fold: dict, where: str) -> dict[str, bool]:
    """Test file name -> whether the fold's model got it right. Names, not paths: the same corpus sits
    in different folders on different machines."""
    try:
        names = [Path(p).name for p in fold["test_paths"]]
        right = [t == p for t, p in zip(fold["test_true"], fold["test_predicted"], strict=True)]
    except (KeyError, ValueError) as error:
        raise SerEdgeError(f"{where}: no per-utterance test predictions ({error})") from None
    if len(set(names)) != len(names):
        raise SerEdgeError(f"{where}: test file names repeat; utterances cannot be paired by name")
    return dict(zip(names, right))


def mcnemar_exact(only_baseline: int, only_candidate: int) -> float:
    """Two-sided exact p-value that the discordant utterances split evenly between the runs."""
    n = only_baseline + only_candidate
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(only_baseline, only_candidate) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(baseline: Path, candidate: Path) -> dict:
    base_folds, cand_folds = read_folds(baseline), read_folds(candidate)
    numbers = sorted(set(base_folds) & set(cand_folds))
    if not numbers:
        raise SerEdgeError(f"{baseline} (folds {sorted(base_folds)}) and {candidate} (folds {sorted(cand_folds)}) "
                           "have no finished fold in common")
    rows, only_baseline, only_candidate, both, total = [], 0, 0, 0, 0
    for n in numbers:
        where_base, where_cand = f"{baseline} fold {n + 1}", f"{candidate} fold {n + 1}"
        base_right = right_by_utterance(base_folds[n], where_base)
        cand_right = right_by_utterance(cand_folds[n], where_cand)
        if set(base_right) != set(cand_right):
            differ = sorted(set(base_right) ^ set(cand_right))
            raise SerEdgeError(f"fold {n + 1} tests other utterances in the two runs ({len(differ)} differ, e.g. "
                               f"{differ[0]}): not the same split, seed or data")
        fold_only_base = sum(base_right[u] and not cand_right[u] for u in base_right)
        fold_only_cand = sum(cand_right[u] and not base_right[u] for u in base_right)
        only_baseline += fold_only_base
        only_candidate += fold_only_cand
        both += sum(base_right[u] and cand_right[u] for u in base_right)
        total += len(base_right)
        rows.append({
            "fold": n,
            "utterances": len(base_right),
            "baseline": {"war": base_folds[n]["test"]["war"], "uar": base_folds[n]["test"]["uar"]},
            "candidate": {"war": cand_folds[n]["test"]["war"], "uar": cand_folds[n]["test"]["uar"]},
            "gain": cand_folds[n]["test"]["war"] - base_folds[n]["test"]["war"],
            "only_baseline_right": fold_only_base,
            "only_candidate_right": fold_only_cand,
        })
    gains = [row["gain"] for row in rows]
    return {
        "baseline": str(baseline),
        "candidate": str(candidate),
        "folds": rows,
        "folds_only_in_baseline": sorted(set(base_folds) - set(cand_folds)),
        "folds_only_in_candidate": sorted(set(cand_folds) - set(base_folds)),
        "mean_gain": sum(gains) / len(gains),
        "folds_gaining": sum(g > 0 for g in gains),
        "folds_losing": sum(g < 0 for g in gains),
        "pooled": {"utterances": total, "both_right": both, "only_baseline_right": only_baseline,
                   "only_candidate_right": only_candidate,
                   "baseline_war": (both + only_baseline) / total, "candidate_war": (both + only_candidate) / total,
                   "mcnemar_p": mcnemar_exact(only_baseline, only_candidate)},
    }


def markdown(result: dict) -> str:
    pooled = result["pooled"]
    lines = [
        f"# {result['candidate']} against {result['baseline']}",
        "",
        f"{len(result['folds'])} fold{'s' if len(result['folds']) > 1 else ''} in common; the candidate gains on {result['folds_gaining']}, "
        f"loses on {result['folds_losing']}; mean gain {100 * result['mean_gain']:+.2f} points (WAR).",
        "",
        "| fold | baseline WAR % (UAR %) | candidate WAR % (UAR %) | gain | right only in baseline | "
        "right only in candidate |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["folds"]:
        base, cand = row["baseline"], row["candidate"]
        lines.append(f"| {row['fold'] + 1} | {100 * base['war']:.2f} ({100 * base['uar']:.2f}) | "
                     f"{100 * cand['war']:.2f} ({100 * cand['uar']:.2f}) | {100 * row['gain']:+.2f} | "
                     f"{row['only_baseline_right']} | {row['only_candidate_right']} |")
    lines += [
        "",
        f"Pooled over {pooled['utterances']} test utterances: baseline {100 * pooled['baseline_war']:.2f} %, "
        f"candidate {100 * pooled['candidate_war']:.2f} %; right in one run only: {pooled['only_baseline_right']} "
        f"(baseline) against {pooled['only_candidate_right']} (candidate), McNemar's exact p = "
        f"{pooled['mcnemar_p']:.3g}.",
    ]
    for key, run in (("folds_only_in_baseline", "baseline"), ("folds_only_in_candidate", "candidate")):
        if result[key]:
            lines.append(f"Not compared (finished in the {run} only): folds "
                         f"{', '.join(str(n + 1) for n in result[key])}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.models.compare_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path, help="a ser-train run folder")
    parser.add_argument("candidate", type=Path, help="a ser-train run folder on the same folds")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table to FILE")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)

    def run() -> None:
        result = compare(args.baseline, args.candidate)
        text = markdown(result)
        if args.markdown:
            atomic.write_text(args.markdown, text)
        if args.json:
            atomic.write_json(args.json, result)
        print(text, end="")

    return command.run("compare_runs", run)


if __name__ == "__main__":
    sys.exit(main())
