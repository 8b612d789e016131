"""How many sentences per-speaker normalisation needs: re-tests a speaker-normalised run's fold models.

    python -m ser_edge.models.enrolment_probe RUN --data-dir ../shared/datasets/ravdess [--draws 10]

``ser-train --speaker-normalise`` (models/speaker_norm.py) standardises each
held-out speaker by statistics from all of that speaker's utterances: an
upper bound, since a device knows only what its user has said to it. With
the fold models that ``--keep-fold-models`` saved, this measures what is
left of the gain when a held-out speaker's statistics come from k of their
utterances (an enrolment), and each of their other utterances is tested:

  any        k utterances of any emotion (a user who enrols while talking normally)
  calm       k of their neutral or calm utterances (a user reading sentences calmly)
  half-calm  half of the k neutral or calm, half of the other emotions (a device that hears
             mostly everyday, unemotional speech)
  none       no enrolment: statistics pooled over the fold's training speakers

With ``--baseline`` (the fold files of the same recipe trained without
per-speaker statistics, e.g. models/shipped/cv/ravdess-speaker) each draw is
also compared with what that model got right on the same utterances: the
gain a device would see over the model it would otherwise run.

Every draw is compared, utterance for utterance, with the same utterances
standardised by all of the speaker's statistics (what ``ser-train``
reported). Nothing is trained and no label chooses anything but the ``calm``
enrolment's utterances.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ser_edge.edge import atomic, command
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.datasets import read_dataset
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models.attach_cv import fold_files
from ser_edge.models.speaker_norm import REFERENCES, frame_statistics

CALM_LABELS = REFERENCES["calm"]  # the labels a calm enrolment draws from: what --speaker-reference calm uses


def standardised(features: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``features`` standardised by the statistics of ``frames``, as models/speaker_norm.py does with all of a
    speaker's utterances."""
    mean, std = frame_statistics(frames)
    return ((features - mean) / std).astype(np.float32)


def enrolments(labels: np.ndarray, label_names: tuple[str, ...], sentences: list[int], draws: int,
               rng: np.random.Generator) -> list[tuple[str, int, int, np.ndarray]]:
    """(mode, k, draw, indices into one speaker's utterances) for every enrolment to try."""
    is_calm = np.isin(np.asarray(label_names)[labels], CALM_LABELS)
    calm, other = np.flatnonzero(is_calm), np.flatnonzero(~is_calm)
    everyone = np.arange(len(labels))
    out = [("none", 0, d, everyone[:0]) for d in range(draws)]
    for mode, pool in (("any", everyone), ("calm", calm)):
        for k in sentences:
            if k < len(pool):  # at least one utterance of the pool stays to be tested
                out += [(mode, k, d, rng.choice(pool, size=k, replace=False)) for d in range(draws)]
    for k in sentences:
        half = (k + 1) // 2
        if half <= len(calm) and k - half < len(other):  # some utterances stay to be tested
            out += [("half-calm", k, d, np.concatenate([rng.choice(calm, size=half, replace=False),
                                                        rng.choice(other, size=k - half, replace=False)]))
                    for d in range(draws)]
    return out


def probe_fold(model, config: FeatureConfig, fold: dict, features: np.ndarray, labels: np.ndarray,
               speakers: np.ndarray, label_names: tuple[str, ...], sentences: list[int], draws: int,
               rng: np.random.Generator, baseline_right: np.ndarray | None = None,
               reference: np.ndarray | None = None) -> tuple[float, list[dict]]:
    """The fold's accuracy with every statistic (ser-train's figure, reproduced), and one row per
    (mode, k, draw, speaker): utterances tested, right with the enrolment, right with every statistic, and
    (with ``baseline_right``, per utterance of the corpus) right by the model without per-speaker statistics.
    ``reference`` masks the utterances whose frames gave statistics in training (speaker_norm.reference_rows):
    the pooled ones and "every statistic" come from those, as the run's did."""
    from ser_edge.models.train import predict

    held_out = np.isin(speakers, fold["test_speakers"])
    reference = np.ones(len(speakers), bool) if reference is None else reference
    pooled = features[~held_out & reference]
    batches, expected, rows = [], [], []
    full_right = {}
    for speaker in fold["test_speakers"]:
        own = np.flatnonzero(speakers == speaker)
        everything = standardised(features[own], features[own[reference[own]]])
        full_right[speaker] = predict(model, everything, config).argmax(axis=1) == labels[own]
        for mode, k, draw, enrolled in enrolments(labels[own], label_names, sentences, draws, rng):
            tested = np.setdiff1d(np.arange(len(own)), enrolled)
            frames = pooled if mode == "none" else features[own[enrolled]]
            batches.append(standardised(features[own[tested]], frames))
            expected.append(labels[own[tested]])
            rows.append({"mode": mode, "sentences": k, "draw": draw, "speaker": speaker, "tested": tested})
    right = predict(model, np.concatenate(batches), config).argmax(axis=1) == np.concatenate(expected)
    start = 0
    for row in rows:
        tested = row.pop("tested")
        row["utterances"] = len(tested)
        row["right"] = int(right[start:start + len(tested)].sum())
        row["right_with_all"] = int(full_right[row["speaker"]][tested].sum())
        if baseline_right is not None:
            row["right_baseline"] = int(baseline_right[np.flatnonzero(speakers == row["speaker"])[tested]].sum())
        start += len(tested)
    everything_right = np.concatenate(list(full_right.values()))
    return float(everything_right.mean()), rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per (mode, k): accuracy over all tested utterances of every fold, its spread over the draws, and
    the paired accuracy of the same utterances with every statistic."""
    summary = []
    for mode, k in sorted({(r["mode"], r["sentences"]) for r in rows}, key=lambda mk: (mk[0] != "none", mk)):
        chosen = [r for r in rows if r["mode"] == mode and r["sentences"] == k]
        counts = ("utterances", "right", "right_with_all", "right_baseline")
        per_draw: dict[int, np.ndarray] = {}
        for r in chosen:
            per_draw[r["draw"]] = per_draw.get(r["draw"], 0) + np.array([r.get(c, 0) for c in counts])
        totals = np.array(list(per_draw.values()), dtype=np.float64)
        accuracy, with_all, baseline = (totals[:, i] / totals[:, 0] for i in (1, 2, 3))
        row = {"mode": mode, "sentences": k, "draws": len(per_draw),
               "accuracy": float(accuracy.mean()), "accuracy_std_over_draws": float(accuracy.std()),
               "accuracy_with_all": float(with_all.mean()), "difference": float((accuracy - with_all).mean())}
        if "right_baseline" in chosen[0]:
            row.update(accuracy_baseline=float(baseline.mean()), gain=float((accuracy - baseline).mean()))
        summary.append(row)
    return summary


def gains_by_fold(rows: list[dict]) -> dict[tuple[str, int], dict[int, float]]:
    """Per (mode, k) and fold: accuracy minus the baseline's on the same utterances, pooled over the fold's
    speakers and draws (a pre-registered bar asks how many folds gain, not only the mean)."""
    totals: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    for r in rows:
        if "right_baseline" not in r:
            return {}
        per_fold = totals.setdefault((r["mode"], r["sentences"]), {})
        per_fold[r["fold"]] = per_fold.get(r["fold"], 0) + np.array([r["right"] - r["right_baseline"],
                                                                      r["utterances"]])
    return {key: {fold: float(t[0] / t[1]) for fold, t in sorted(per_fold.items())}
            for key, per_fold in sorted(totals.items(), key=lambda kv: (kv[0][0] != "none", kv[0]))}


def markdown(run: Path, folds: list[dict], summary: list[dict], rows: list[dict] | None = None) -> str:
    lines = [f"# Enrolment probe: {run}", "",
             "Fold models re-tested; ser-train's figure (every statistic) reproduced per fold: " +
             ", ".join(f"fold {f['fold'] + 1} {100 * f['reproduced']:.2f} % (ser-train {100 * f['reported']:.2f})"
                       for f in folds), "",
             "| enrolment | sentences | accuracy % (mean over draws ± std) | same utterances, every statistic % | "
             "difference (points) | same utterances, without per-speaker statistics % | gain (points) |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        baseline = (f"{100 * s['accuracy_baseline']:.2f} | {100 * s['gain']:+.2f}" if "gain" in s
                    else "(no --baseline) | ")
        lines.append(f"| {s['mode']} | {s['sentences']} | {100 * s['accuracy']:.2f} ± "
                     f"{100 * s['accuracy_std_over_draws']:.2f} | {100 * s['accuracy_with_all']:.2f} | "
                     f"{100 * s['difference']:+.2f} | {baseline} |")
    by_fold = gains_by_fold(rows or [])
    if by_fold:
        numbers = [f["fold"] for f in folds]
        lines += ["", "Gain over the baseline by fold (points; each fold's speakers and draws pooled):", "",
                  "| enrolment | sentences | " + " | ".join(f"fold {n + 1}" for n in numbers) + " | folds that gain |",
                  "|---|---|" + "---|" * (len(numbers) + 1)]
        for (mode, k), gains in by_fold.items():
            cells = " | ".join(f"{100 * gains[n]:+.2f}" for n in numbers)
            lines.append(f"| {mode} | {k} | {cells} | {sum(g > 0 for g in gains.values())} of {len(gains)} |")
    return "\n".join(lines) + "\n"


def baseline_right(folder: Path, fold_index: int, paths: np.ndarray, held_out: list[str],
                   speakers: np.ndarray) -> np.ndarray:
    """Per utterance of the corpus: whether the baseline run's fold got it right (only its held-out
    speakers' utterances are set, and every one of them must be in that fold's test files)."""
    name = f"fold_{fold_index:02d}.json"
    found = [p for p in fold_files(folder) if p.name == name]
    if not found:
        raise SerEdgeError(f"{folder}: no {name} (nor folds/{name}) for --baseline")
    fold = json.loads(found[0].read_text())
    if sorted(fold["test_speakers"]) != sorted(held_out):
        raise SerEdgeError(f"{found[0]}: holds out speakers {fold['test_speakers']}, not {held_out}")
    right = {Path(p).name: t == q for p, t, q in zip(fold["test_paths"], fold["test_true"], fold["test_predicted"])}
    names = [Path(p).name for p in paths]
    wanted = np.isin(speakers, held_out)
    missing = [n for n, w in zip(names, wanted) if w and n not in right]
    if missing:
        raise SerEdgeError(f"{found[0]}: {missing[0]} (held out) is not among its test files")
    return np.array([bool(right.get(n, False)) for n in names])


def probe(run_dir: Path, data_dir: Path, sentences: list[int], draws: int, seed: int,
          cache_dir: Path | None, baseline: Path | None = None) -> str:
    """Re-test every fold model of ``run_dir``; write enrolment.json/.md there; return the markdown."""
    try:
        run = json.loads((run_dir / "run.json").read_text())
        settings = run["settings"]
    except FileNotFoundError:
        raise SerEdgeError(f"{run_dir}: no run.json; not a ser-train run folder") from None
    except (json.JSONDecodeError, KeyError) as error:
        raise SerEdgeError(f"{run_dir}/run.json: not a ser-train run file ({error})") from None
    if not settings.get("speaker_normalise"):
        raise SerEdgeError(f"{run_dir}: not a --speaker-normalise run; there is nothing to enrol")
    if draws < 1 or min(sentences) < 1:
        raise SerEdgeError("--draws and every --sentences size must be at least 1")
    models = sorted(run_dir.glob("fold_*.keras"))
    if not models:
        raise SerEdgeError(f"{run_dir}: no fold models; train the folds with --keep-fold-models")
    utterances = read_dataset(settings["dataset"], data_dir)

    import keras

    import ser_edge.models.tpmnet  # noqa: F401  registers the custom layers
    from ser_edge.models.feature_cache import load_features
    from ser_edge.models.speaker_norm import reference_rows

    label_names = tuple(run["label_names"])
    data = load_features(utterances, label_names, FeatureConfig.from_dict(run["features"]), cache_dir)
    reference = reference_rows(data, settings.get("speaker_reference", "all"))
    rng = np.random.default_rng(seed)
    folds, rows = [], []
    for path in models:
        fold = json.loads(path.with_suffix(".json").read_text())
        model = keras.saving.load_model(path, compile=False)
        right = None if baseline is None else baseline_right(baseline, fold["fold"], data.paths,
                                                             fold["test_speakers"], data.speakers)
        reproduced, fold_rows = probe_fold(model, FeatureConfig.from_dict(fold["features"]), fold, data.features,
                                           data.labels, data.speakers, label_names, sentences, draws, rng, right,
                                           reference)
        folds.append({"fold": fold["fold"], "reproduced": reproduced, "reported": fold["test"]["war"]})
        rows += [{"fold": fold["fold"], **row} for row in fold_rows]
    summary = summarise(rows)
    atomic.write_json(run_dir / "enrolment.json", {"folds": folds, "sentences": sentences, "draws": draws,
                                                   "seed": seed, "baseline": str(baseline) if baseline else None,
                                                   "summary": summary, "rows": rows})
    report = markdown(run_dir, folds, summary, rows)
    atomic.write_text(run_dir / "enrolment.md", report)
    return report


def sizes_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sentence counts: {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.models.enrolment_probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a ser-train --speaker-normalise --keep-fold-models run folder")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--sentences", type=sizes_list, default=[1, 2, 4, 8, 16], help="enrolment sizes, e.g. 1,2,4")
    parser.add_argument("--draws", type=int, default=10, help="random enrolments per speaker and size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--baseline", type=Path, metavar="RUN",
                        help="fold files of the same recipe without per-speaker statistics (same folds), to "
                             "compare each draw with, utterance for utterance")
    args = parser.parse_args(argv)
    command.log_to_stderr("warning")
    return command.run("enrolment_probe", lambda: print(probe(args.run, args.data_dir, args.sentences, args.draws,
                                                              args.seed, args.cache_dir, args.baseline), end=""))


if __name__ == "__main__":
    sys.exit(main())
