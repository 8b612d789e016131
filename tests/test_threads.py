"""Thread discipline: a real ``ser-edge`` process runs its BLAS with ``threads`` threads, whatever the environment.

Each case starts a fresh interpreter that imports numpy first (so the
environment's OPENBLAS_NUM_THREADS has already been read), wraps
``EmotionClassifier.classify`` to ask threadpoolctl what every loaded BLAS /
OpenMP pool uses at the moment an utterance is classified, then runs the
real ``ser_edge.edge.cli.main`` (classify, listen on a file, listen with the systemd
unit's config and environment), another command's ``main`` (``--module``: the gain
benchmark) or the classifier alone (``--classifier``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ser_edge.edge import threads
from ser_edge.edge.errors import SerEdgeError
from tests.fixtures import espeak

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of `-m "not slow"`

REPO_ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS")

SPY = textwrap.dedent("""
    import json, sys
    import numpy, threadpoolctl
    import ser_edge.edge.classifier

    seen = []
    original = ser_edge.edge.classifier.EmotionClassifier.classify

    def spy(self, signal):
        seen.append([p["num_threads"] for p in threadpoolctl.threadpool_info()])
        return original(self, signal)

    ser_edge.edge.classifier.EmotionClassifier.classify = spy
    if sys.argv[1:] == ["--control"]:  # no ser-edge code: what numpy alone uses here
        print("POOLS " + json.dumps([[p["num_threads"] for p in threadpoolctl.threadpool_info()]]), file=sys.stderr)
        sys.exit(0)
    if sys.argv[1] == "--classifier":  # the class alone: MODEL THREADS HOLD_BLAS
        import numpy as np
        from ser_edge.edge.classifier import EmotionClassifier
        from ser_edge.edge.registry import resolve_model
        model, count, hold = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "hold"
        EmotionClassifier(resolve_model(model), threads=count, hold_blas=hold).classify(
            np.sin(np.arange(100_000, dtype=np.float32) * 0.05) * 0.3)
        code = 0
    elif sys.argv[1] == "--module":  # another command's main(): MODULE ARGS...
        import importlib
        code = importlib.import_module(sys.argv[2]).main(sys.argv[3:])
    else:
        from ser_edge.edge.cli import main
        code = main(sys.argv[1:])
    print("POOLS " + json.dumps(seen), file=sys.stderr)
    sys.exit(code)
""")


def pools_seen(args: list[str], environment: dict[str, str]) -> list[list[int]]:
    """Thread counts of every BLAS/OpenMP pool, once per classified utterance, inside a real ser-edge run."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(environment, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", SPY, *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if line.startswith("POOLS "))
    seen = json.loads(line.removeprefix("POOLS "))
    assert seen and all(counts for counts in seen), f"no BLAS pool seen: {seen}"
    return seen


HOSTILE = [{}, {"OPENBLAS_NUM_THREADS": "64"}, {"OMP_NUM_THREADS": "64"}]


def usable_cores() -> int:
    """The CPUs this process may run on: OpenBLAS caps its pool there, so `taskset -c 0` looks like one core."""
    return len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("threads") / "speech.wav"
    espeak("What a wonderful surprise, thank you so much.", path)
    return path


def test_the_check_can_tell_here():
    """Without ser-edge, numpy's BLAS uses more than one thread here (unless the machine has one core)."""
    control = pools_seen(["--control"], {})
    if usable_cores() < 2:
        pytest.skip("one usable CPU core: the BLAS default is already one thread, so this machine cannot tell")
    assert max(control[0]) > 1, control


@pytest.mark.parametrize("environment", HOSTILE, ids=["unset", "openblas64", "omp64"])
def test_classify_uses_one_blas_thread_whatever_the_environment(wav, environment):
    seen = pools_seen(["classify", "--json", str(wav), str(wav)], environment)
    assert seen == [[1] * len(seen[0])] * 2


def test_classify_uses_exactly_the_threads_it_is_told(wav):
    seen = pools_seen(["classify", "--threads", "3", str(wav)], {"OPENBLAS_NUM_THREADS": "1"})
    assert seen == [[3] * len(seen[0])]


@pytest.mark.parametrize("environment", HOSTILE[:2], ids=["unset", "openblas64"])
def test_listen_uses_one_blas_thread(wav, environment):
    seen = pools_seen(["listen", "--input", str(wav)], environment)
    assert all(counts == [1] * len(counts) for counts in seen), seen


def test_listen_as_the_systemd_unit_runs_it(wav, tmp_path):
    """The unit's ExecStart arguments, its Environment= lines and its config file, plus a hostile variable."""
    unit = (REPO_ROOT / "systemd" / "ser-edge.service").read_text().splitlines()
    exec_start = next(line for line in unit if line.startswith("ExecStart=")).split()[1:]
    assert exec_start[:2] == ["listen", "--config"], exec_start
    environment = dict(line.removeprefix("Environment=").split("=", 1) for line in unit
                       if line.startswith("Environment="))
    config = (REPO_ROOT / "systemd" / "ser-edge.toml").read_text()
    config = config.replace('"/var/lib/ser-edge/utterances.jsonl"', json.dumps(str(tmp_path / "out.jsonl")))
    (tmp_path / "ser-edge.toml").write_text(config)
    assert "\nthreads = 1\n" in config
    seen = pools_seen(["listen", "--config", str(tmp_path / "ser-edge.toml"), "--input", str(wav)],
                      {**environment, "OPENBLAS_NUM_THREADS": "64"})
    assert all(counts == [1] * len(counts) for counts in seen), seen


def test_listen_takes_threads_from_the_config_file(wav, tmp_path):
    (tmp_path / "two.toml").write_text("threads = 3\n")
    seen = pools_seen(["listen", "--config", str(tmp_path / "two.toml"), "--input", str(wav)], {})
    assert all(counts == [3] * len(counts) for counts in seen), seen


@pytest.mark.parametrize("count", [1, 3])
def test_the_classifier_holds_blas_to_its_thread_count(count):
    """Whatever builds an EmotionClassifier computes MFCCs as the device does, not only the ser-edge commands."""
    seen = pools_seen(["--classifier", "emodb", str(count), "hold"], {"OPENBLAS_NUM_THREADS": "64"})
    assert seen == [[count] * len(seen[0])]


def test_hold_blas_false_leaves_the_pools_alone():
    """What ``ser-bench --blas-threads`` needs: the environment's count stays."""
    if usable_cores() < 2:
        pytest.skip("one usable CPU core: OpenBLAS caps its pool at one thread, so 2 cannot be seen")
    seen = pools_seen(["--classifier", "emodb", "1", "leave"], {"OPENBLAS_NUM_THREADS": "2"})
    assert seen == [[2] * len(seen[0])]


@pytest.mark.datasets
def test_the_gain_benchmark_classifies_with_one_blas_thread(tmp_path):
    """Its figures (labels kept at -20 dB) are the device's: one BLAS thread, whatever the environment."""
    from ser_edge.benchmarks import label_drift
    from ser_edge.edge.classifier import EmotionClassifier
    from ser_edge.edge.registry import resolve_model
    from tests.conftest import shared_dataset_dir

    utterances, _ = label_drift.validation_utterances(EmotionClassifier(resolve_model("emodb")),
                                                     shared_dataset_dir("emodb"))
    files = [str(u.path) for u in utterances[:2]]
    seen = pools_seen(["--module", "ser_edge.benchmarks.gain_bench", "--model", "emodb", "--gains", "-20",
                       "--files", *files, "--out", str(tmp_path / "gain.md")], {"OPENBLAS_NUM_THREADS": "64"})
    assert len(seen) == 4 and all(counts == [1] * len(counts) for counts in seen), seen


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_limit_refuses_a_count_that_is_not_a_positive_integer(bad):
    with pytest.raises(SerEdgeError, match="positive integer"):
        threads.limit(bad)


def test_describe_names_library_and_threads():
    assert threads.describe([{"library": "openblas", "threads": 1}]) == "openblas 1"
    assert threads.describe([]) == "no BLAS/OpenMP pool loaded"
