"""The GPU job runner: plans skip finished work, failed jobs are retried once, the deadline is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ser_edge.models import gpu_jobs


def test_full_plan_runs_longest_first_and_skips_finished_work(tmp_path):
    jobs = gpu_jobs.plan("full", 150, tmp_path)
    names = [job.name for job in jobs]
    assert names[0].startswith("ravdess-")  # the longest jobs first
    # The recipe's cross-validations and each variant's (CV_VARIANTS), every fold and final once.
    assert len([n for n in names if "-fold" in n]) == 30 * len(gpu_jobs.CV_VARIANTS)
    assert {"ravdess-final", "emodb-final", "ravdess-final-cms", "emodb-final-cms"} <= set(names)
    assert len(names) == len(set(names))
    cv = [job for job in jobs if not job.name.startswith("probe-")]
    assert [job.weight for job in cv] == sorted((job.weight for job in cv), reverse=True)
    finished = tmp_path / "ravdess-random" / "fold_03.json"
    finished.parent.mkdir(parents=True)
    finished.write_text("{}")
    again = [job.name for job in gpu_jobs.plan("full", 150, tmp_path)]
    assert "ravdess-random-fold3" not in again and len(again) == len(names) - 1


def test_only_selects_jobs_by_name_and_a_variant_writes_its_own_folder(tmp_path, capsys):
    jobs = gpu_jobs.select(gpu_jobs.plan("full", 150, tmp_path), ["ravdess-speaker-fold[1-4]", "*-cms-fold0"])
    names = [job.name for job in jobs]
    assert sorted(names) == sorted([f"ravdess-speaker-fold{k}" for k in range(1, 5)]
                                   + [f"{d}-{s}-cms-fold0" for d in ("ravdess", "emodb") for s in ("random", "speaker")])
    cms = next(job for job in jobs if job.name == "ravdess-speaker-cms-fold0")
    assert "--utterance-mean" in cms.args and str(tmp_path / "ravdess-speaker-cms") in cms.args
    plain = next(job for job in jobs if job.name == "ravdess-speaker-fold1")
    assert "--utterance-mean" not in plain.args and str(tmp_path / "ravdess-speaker") in plain.args
    # Speed-perturbed runs read the bundle written with the same speeds; the others never do.
    speed = gpu_jobs.select(gpu_jobs.plan("full", 150, tmp_path), ["emodb-speaker-speed-fold0"])[0]
    assert speed.args[speed.args.index("--bundle") + 1] == ".gpu/emodb-speed.npz"
    assert plain.args[plain.args.index("--bundle") + 1] == ".gpu/ravdess.npz"
    # Runs with training noise read a bundle written with it (and with the speeds where the run has them).
    noisy = sorted(gpu_jobs.select(gpu_jobs.plan("full", 150, tmp_path), ["emodb-speaker-level-noise-fold0",
                                                                           "ravdess-random-speed-noise-fold2"]),
                   key=lambda job: job.name)
    assert [job.args[job.args.index("--bundle") + 1] for job in noisy] == [".gpu/emodb-noise.npz",
                                                                          ".gpu/ravdess-speed-noise.npz"]
    assert all(job.args[job.args.index("--noise-perturb") + 1] == "2" for job in noisy)
    assert "--speed-perturb" not in noisy[0].args and "--speed-perturb" in noisy[1].args
    # Unless one bundle per dataset travels: then every run reads the speed bundle.
    shared = gpu_jobs.select(gpu_jobs.plan("full", 150, tmp_path, speed_bundles_only=True),
                             ["ravdess-speaker-level-fold1", "probe-level-seed7"])
    assert [job.args[job.args.index("--bundle") + 1] for job in shared] == [".gpu/ravdess-speed.npz"] * 2
    assert all("--speed-perturb" not in job.args for job in shared)
    with pytest.raises(SystemExit):
        gpu_jobs.main(["--runs", str(tmp_path), "--only", "no-such-job", "--list"])
    assert "no job left to run" in capsys.readouterr().err


@pytest.mark.slow
def test_a_failed_job_is_retried_once_and_reported(tmp_path):
    job = gpu_jobs.Job("bad", ["--dataset", "nope", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")], 1.0)
    summary = gpu_jobs.run([job], workers=1, deadline_s=120, logs=tmp_path / "logs")
    assert summary == {"bad": {"rc": 2, "seconds": summary["bad"]["seconds"]}}
    log = (tmp_path / "logs" / "bad.log").read_text()
    assert "unknown dataset 'nope'" in log


def test_jobs_that_cannot_start_before_the_deadline_are_reported_as_skipped(tmp_path):
    jobs = [gpu_jobs.Job(f"j{i}", ["--dataset", "nope", "--data-dir", str(tmp_path), "--out", str(tmp_path)], 1.0)
            for i in range(3)]
    summary = gpu_jobs.run(jobs, workers=1, deadline_s=10, logs=tmp_path / "logs")
    assert set(summary) == {"j0", "j1", "j2"}
    assert all(entry.get("skipped") == "deadline" for entry in summary.values())
    assert json.dumps(summary)  # what jobs.json holds
    assert not list(Path(tmp_path / "logs").glob("*.log"))


def test_a_run_with_the_other_corpus_reads_the_bundle_that_carries_it(tmp_path):
    jobs = gpu_jobs.select(gpu_jobs.plan("full", 150, tmp_path), ["*-speaker-level-plus-fold0"])
    bundles = {job.name: job.args[job.args.index("--bundle") + 1] for job in jobs}
    assert bundles == {"ravdess-speaker-level-plus-fold0": ".gpu/ravdess-plus-emodb.npz",
                       "emodb-speaker-level-plus-fold0": ".gpu/emodb-plus-ravdess.npz"}
    assert all("ADDED" not in job.args and "--level-normalise" in job.args for job in jobs)
    plain = gpu_jobs.select(gpu_jobs.plan("full", 150, tmp_path), ["ravdess-speaker-level-fold0"])[0]
    assert jobs[0].weight > plain.weight  # more training utterances, a longer job


@pytest.mark.slow
def test_a_job_still_training_at_the_deadline_is_stopped_even_with_sigint_ignored(tmp_path):
    """On the lent machine gpu_run.sh starts the runner in the background, so it and its jobs ignore SIGINT.
    The job runs 70 s before the deadline stops it (20 s of margin): long enough, on a slow machine, to start
    TensorFlow, compute the features and checkpoint its first epochs."""
    import subprocess
    import sys

    from tests.generated_corpus import make_emodb_corpus

    corpus = make_emodb_corpus(tmp_path / "corpus", per_class=4)
    script = f"""
import json, signal
from pathlib import Path
from ser_edge.models import gpu_jobs
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a non-interactive shell has it
job = gpu_jobs.Job("long", ["--dataset", "emodb", "--data-dir", {str(corpus)!r}, "--out", {str(tmp_path / "run")!r},
                           "--folds", "3", "--only-fold", "0", "--epochs", "500", "--no-final", "--threads", "1",
                           "--checkpoint-every", "1", "--cache-dir", {str(tmp_path / "cache")!r}], 1.0)
print(json.dumps(gpu_jobs.run([job], workers=1, deadline_s=90, logs=Path({str(tmp_path / "logs")!r}))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])["long"]
    assert summary["rc"] == "stopped at the deadline" and summary["ended_by"] == "SIGTERM"
    assert (tmp_path / "run" / "fold_00.ckpt").is_dir()  # the next call resumes from it
