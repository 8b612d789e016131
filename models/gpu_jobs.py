"""Run many ser-train folds side by side on a lent GPU machine, within a deadline.

The machine has no TensorFlow and no dataset: Keras runs on JAX (the wheels
travel in .whl/, see models/gpu_run.sh) and each dataset travels as a feature
bundle (``ser-train --write-bundle``). Every job is one ``ser-train``
process: one fold, one shipping model or one probe, each writing its own
files, so a job killed at the deadline leaves its last checkpoint
(``fold_NN.ckpt/``) and the same command resumes it anywhere.

    python -m ser_edge.models.gpu_jobs --plan full --epochs 150 --workers 6 --deadline 520 --runs runs/gpu

Jobs start longest first (folds, then probes); a job whose result file exists
is not run; none starts when its expected time no longer fits.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ser_edge.edge import command

log = logging.getLogger(__name__)

BUNDLES = Path(".gpu")
UTTERANCES = {"ravdess": 1200, "emodb": 535}  # a job's cost grows with its training part


def training_size(dataset: str, folds: int) -> float:
    return UTTERANCES[dataset] * (folds - 1) / folds


@dataclass
class Job:
    name: str
    args: list[str]
    weight: float  # relative cost: training utterances x epochs
    result: Path | None = None  # the file a finished job leaves; the job is dropped when it exists


# Whole cross-validations of a recipe change, beside the recipe's own: name suffix -> ser-train flags.
NOISE = ["--noise-perturb", "2", "--noise-snr", "5,35"]
CV_VARIANTS = {"": [], "-cms": ["--utterance-mean"], "-level": ["--level-normalise"],
               "-speed": ["--level-normalise", "--speed-perturb", "0.9,1.1"],
               # Each shipped recipe with training noise (models/noise.py): EMO-DB's, RAVDESS's.
               "-level-noise": ["--level-normalise", *NOISE],
               "-speed-noise": ["--level-normalise", "--speed-perturb", "0.9,1.1", *NOISE],
               # A probe of per-speaker statistics (models/speaker_norm.py): cross-validation only.
               "-speaker-norm": ["--speaker-normalise"],
               # With the other corpus's shared emotions as training material (models/mixed_corpus.py).
               "-level-plus": ["--level-normalise"]}
# Variants that read a bundle written with --add-corpus (the bundle carries the added corpus; ser-train refuses
# --add-corpus beside --bundle), and which corpus each dataset's bundle adds.
WITH_OTHER_CORPUS = {"-level-plus"}
OTHER_CORPUS = {"ravdess": "emodb", "emodb": "ravdess"}


def bundle_for(dataset: str, extra: list[str], speed_bundles_only: bool = False,
               other_corpus: bool = False) -> Path:
    """Speed-perturbed runs need a bundle written with the same --speed-perturb (three times the size).
    That bundle also holds the plain features, so with ``speed_bundles_only`` every run reads it and one
    file per dataset travels (.gpu/ravdess-speed.npz written with --bundle-float16 is 38 MB).
    Runs with training noise read a bundle written with the same --noise-perturb and --noise-snr
    (DATASET-noise.npz, or DATASET-speed-noise.npz with speeds too: five versions of RAVDESS, 66.2 MB at
    half precision, more than one call carries beside the repository: it travels in parts, join_parts.sh).
    With ``other_corpus``, the bundle written with --add-corpus (DATASET-plus-OTHER...npz)."""
    speed = speed_bundles_only or "--speed-perturb" in extra
    noise = "--noise-perturb" in extra
    plus = f"-plus-{OTHER_CORPUS[dataset]}" if other_corpus else ""
    return BUNDLES / f"{dataset}{plus}{'-speed' if speed else ''}{'-noise' if noise else ''}.npz"


def cv_jobs(dataset: str, split: str, folds: int, epochs: int, runs: Path, extra: list[str],
            tag: str = "", speed_bundles_only: bool = False) -> list[Job]:
    out = runs / f"{dataset}-{split}{tag}"
    other = tag in WITH_OTHER_CORPUS
    # An added corpus brings about 0.8 of its utterances (the shared emotions) into every training part.
    size = training_size(dataset, folds) + (UTTERANCES[OTHER_CORPUS[dataset]] * 0.8 if other else 0)
    bundle = bundle_for(dataset, extra, speed_bundles_only, other)
    base = ["--dataset", dataset, "--bundle", str(bundle), "--out", str(out),
            "--split", split, "--folds", str(folds), "--epochs", str(epochs), "--track-test", *extra]
    jobs = [Job(f"{dataset}-{split}{tag}-fold{k}", base + ["--only-fold", str(k), "--no-final"], size * epochs,
                out / f"fold_{k:02d}.json") for k in range(folds)]
    if split == "random" and "--speaker-normalise" not in extra:  # a probe trains no shipping model
        jobs.append(Job(f"{dataset}-final{tag}", base + ["--no-cv"], size * 1.1 * epochs, out / "final.keras"))
    return jobs


PROBES = {
    # name: (dataset, split, folds, extra ser-train flags); fold 0 of each split.
    "authors-converging": ("ravdess", "speaker", 5, ["--reading", "authors"]),
    "gate-converging": ("ravdess", "speaker", 5, ["--reading", "gate"]),
    "authors-thesis": ("ravdess", "speaker", 5, ["--reading", "authors", "--recipe", "thesis"]),
    "gate-thesis": ("ravdess", "speaker", 5, ["--reading", "gate", "--recipe", "thesis"]),
    "authors-converging-seed2": ("ravdess", "speaker", 5, ["--reading", "authors", "--seed", "7"]),
    "gate-converging-seed2": ("ravdess", "speaker", 5, ["--reading", "gate", "--seed", "7"]),
    "authors-no-augment": ("ravdess", "speaker", 5, ["--no-augment"]),
    "authors-no-standardize": ("ravdess", "speaker", 5, ["--no-standardize"]),
    "authors-dropout": ("ravdess", "speaker", 5, ["--dropout", "0.2"]),
    "authors-momentum-0.99": ("ravdess", "speaker", 5, ["--bn-momentum", "0.99"]),
    "authors-head-scale-1": ("ravdess", "speaker", 5, ["--head-scale", "1"]),
    "authors-margin-loss": ("ravdess", "speaker", 5, ["--loss", "margin"]),
    "emodb-gate-converging": ("emodb", "random", 10, ["--reading", "gate"]),
    # The shipped recipe with and without speed perturbation on another seed, which also draws another
    # speaker partition (fold 0 then holds out actors 01+02+11+13): one more paired comparison.
    "level-seed7": ("ravdess", "speaker", 5, ["--level-normalise", "--seed", "7"]),
    "speed-seed7": ("ravdess", "speaker", 5, ["--level-normalise", "--speed-perturb", "0.9,1.1", "--seed", "7"]),
}


def probe_jobs(epochs: int, runs: Path, names: list[str], speed_bundles_only: bool = False) -> list[Job]:
    jobs = []
    for name in names:
        dataset, split, folds, extra = PROBES[name]
        size = training_size(dataset, folds)
        bundle = bundle_for(dataset, extra, speed_bundles_only)
        jobs.append(Job(f"probe-{name}", [
            "--dataset", dataset, "--bundle", str(bundle), "--out", str(runs / f"probe-{name}"),
            "--split", split, "--folds", str(folds), "--epochs", str(epochs), "--track-test",
            "--only-fold", "0", "--no-final", *extra], size * epochs, runs / f"probe-{name}" / "fold_00.json"))
    return jobs


def plan(name: str, epochs: int, runs: Path, speed_bundles_only: bool = False) -> list[Job]:
    if name == "smoke":
        return probe_jobs(2, runs, ["authors-converging", "gate-thesis", "speed-seed7"], speed_bundles_only)
    cv = [job for tag, extra in CV_VARIANTS.items()
          for dataset, split, folds in (("ravdess", "random", 10), ("emodb", "random", 10),
                                        ("ravdess", "speaker", 5), ("emodb", "speaker", 5))
          for job in cv_jobs(dataset, split, folds, epochs, runs, extra, tag, speed_bundles_only)]
    # "authors-converging" on RAVDESS speaker fold 0 is the speaker CV's fold 0 itself.
    probes = probe_jobs(epochs, runs, [p for p in PROBES if p != "authors-converging"], speed_bundles_only)
    jobs = sorted(cv, key=lambda j: -j.weight) + probes
    return [job for job in jobs if job.result is None or not job.result.exists()]


def select(jobs: list[Job], patterns: list[str]) -> list[Job]:
    """The jobs whose names match one of the shell-style ``patterns`` (all when none), in plan order."""
    return [job for job in jobs if not patterns or any(fnmatch.fnmatchcase(job.name, p) for p in patterns)]


def run(jobs: list[Job], workers: int, deadline_s: float, logs: Path) -> dict:
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pending = list(jobs)
    running: dict[str, tuple[subprocess.Popen, float, Job]] = {}
    finished: dict[str, dict] = {}
    rate = None  # seconds per unit of weight, learnt from the first finished jobs
    retried: set[str] = set()
    while pending or running:
        now = time.monotonic() - started
        for name, (process, began, job) in list(running.items()):
            if process.poll() is not None:
                seconds = now - began
                finished[name] = {"rc": process.returncode, "seconds": round(seconds, 1)}
                if process.returncode == 0:
                    unit = seconds / job.weight
                    rate = unit if rate is None else max(rate, unit)
                elif name not in retried:  # e.g. a thread limit hit: once more, from its checkpoint
                    retried.add(name)
                    pending.insert(0, job)
                del running[name]
                log.info("[%6.0f s] %s: rc %s in %.0f s", now, name, process.returncode, seconds)
        left = deadline_s - now
        if left < 20:
            break
        while pending and len(running) < workers:
            job = pending[0]
            if rate is not None and job.weight * rate > left:
                pending.pop(0)
                finished[job.name] = {"rc": None, "skipped": "would not finish before the deadline"}
                continue
            pending.pop(0)
            output = open(logs / f"{job.name}.log", "w")
            command = [sys.executable, "-m", "ser_edge.models.train_cli", *job.args]
            running[job.name] = (subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                                  start_new_session=True), time.monotonic() - started, job)
            log.info("[%6.0f s] started %s", now, job.name)
        time.sleep(1)
    # Out of time: stop, keep the checkpoints. SIGTERM, not SIGINT: started in the background by a
    # non-interactive shell (gpu_run.sh), this runner and its jobs inherit SIGINT ignored.
    for name, (process, began, job) in running.items():
        os.killpg(process.pid, signal.SIGTERM)
    for name, (process, began, job) in running.items():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        ended_by = signal.Signals(-process.returncode).name if process.returncode < 0 else process.returncode
        finished[name] = {"rc": "stopped at the deadline", "ended_by": ended_by,
                          "seconds": round(time.monotonic() - started - began, 1)}
    for job in pending:
        finished[job.name] = {"rc": None, "skipped": "deadline"}
    return finished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.models.gpu_jobs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", choices=("smoke", "full"), default="full")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--workers", type=int, default=6,
                        help="trainings sharing the GPU (H100: 12 gave 3.6 epochs/s in all but 500 s a fold)")
    parser.add_argument("--deadline", type=float, default=500, help="seconds from now; no job runs past it")
    parser.add_argument("--runs", type=Path, default=Path("runs/gpu"))
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only the jobs whose names match (shell-style, repeatable; see --list)")
    parser.add_argument("--list", action="store_true", help="print the jobs and stop")
    parser.add_argument("--speed-bundles-only", action="store_true",
                        help="every job reads .gpu/DATASET-speed.npz (it holds the plain features too), so one "
                             "bundle per dataset travels")
    args = parser.parse_args(argv)
    jobs = select(plan(args.plan, args.epochs, args.runs, args.speed_bundles_only), args.only)
    if not jobs:
        parser.error("no job left to run (finished, or no name matches --only)")
    if args.list:
        for job in jobs:
            print(job.name, " ".join(job.args))
        return 0
    command.log_to_stderr("info")
    summary = run(jobs, args.workers, args.deadline, args.runs / "logs")
    (args.runs / "jobs.json").write_text(json.dumps(summary, indent=1))
    done = sum(1 for s in summary.values() if s.get("rc") == 0)
    print(f"{done} of {len(jobs)} jobs finished; summary in {args.runs / 'jobs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
