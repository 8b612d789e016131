"""``ser-bench --load N`` and ``--blas-threads``: real busy processes, real thread pools, reported in the results.

No test asserts how fast anything is: only that the load really ran and is
reported, and that the BLAS thread count is what was asked for.
"""

from __future__ import annotations

import json
import time

import pytest

from ser_edge.benchmarks.load import BusyLoad, cpu_seconds
from tests.test_bench import EMODB_GOOD, ser_bench, write_tone
from tests.fixtures import model_path as shipped_model

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of `-m "not slow"`


@pytest.fixture
def small_emodb(tmp_path):
    folder = tmp_path / "emodb"
    for i, name in enumerate(EMODB_GOOD):
        write_tone(folder / f"{name}.wav", 1.0, 16000, pitch=150 + 30 * i)
    return folder


def test_busy_load_runs_its_processes_and_stops_them():
    with BusyLoad(2) as load:
        pids = [p.pid for p in load._processes]
        time.sleep(1.0)
        assert all(cpu_seconds(pid) is not None for pid in pids)
    summary = load.summary()
    assert summary["busy_processes"] == 2 and summary["wall_s"] >= 1.0
    assert all(cpu > 0.05 for cpu in summary["cpu_s_each"]), summary  # they did burn CPU
    assert all(cpu_seconds(pid) is None for pid in pids)  # and are gone (reaped)


def test_no_load_is_reported_as_none():
    with BusyLoad(0) as load:
        pass
    assert load.summary()["busy_processes"] == 0 and load.summary()["cpu_s_each"] == []


def test_negative_load_is_refused():
    with pytest.raises(ValueError):
        BusyLoad(-1)


@pytest.mark.parametrize("flags, expected_threads, setting", [
    (["--load", "2"], 1, 1),
    (["--load", "1", "--blas-threads", "3"], 3, 3),
])
def test_ser_bench_reports_load_and_blas_threads(tmp_path, small_emodb, monkeypatch, flags, expected_threads,
                                                 setting):
    out = tmp_path / "out"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "64")  # a hostile environment for the ser-bench process
    result = ser_bench("--dataset", "emodb", "--data-dir", str(small_emodb), "--model", str(shipped_model("emodb")),
                       "--warmup", "1", "--out", str(out), *flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    load = results["load"]
    assert load["busy_processes"] == int(flags[1]) and len(load["cpu_s_each"]) == int(flags[1])
    assert all(cpu is not None and cpu > 0 for cpu in load["cpu_s_each"]), load
    assert results["settings"]["blas_threads"] == setting and results["settings"]["load"] == int(flags[1])
    assert results["thread_pools"] and all(p["threads"] == expected_threads for p in results["thread_pools"])
    assert any("busy process" in note for note in results["notes"])
    page = (out / "report.md").read_text()
    assert "busy process(es) beside the LiteRT pass" in page and f"openblas {expected_threads}" in page


def test_blas_threads_zero_keeps_the_library_default_and_says_so(tmp_path, small_emodb):
    out = tmp_path / "out"
    result = ser_bench("--dataset", "emodb", "--data-dir", str(small_emodb), "--model", str(shipped_model("emodb")),
                       "--warmup", "0", "--limit", "2", "--blas-threads", "0", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["blas_threads"] == "library default"
    assert results["load"]["busy_processes"] == 0
    assert any("--blas-threads 0" in note for note in results["notes"])


@pytest.mark.parametrize("flag", ["--load", "--blas-threads"])
def test_negative_values_are_one_line_errors(tmp_path, small_emodb, flag):
    result = ser_bench("--dataset", "emodb", "--data-dir", str(small_emodb), flag, "-1", cwd=tmp_path)
    assert result.returncode == 2 and "must not be negative" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
