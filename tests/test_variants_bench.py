"""``python -m ser_edge.benchmarks.variants_bench``: the four shipped variants invoked on the same real features."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ser_edge.edge.registry import VARIANTS, resolve_model
from tests.conftest import shared_dataset_dir

BENCH = [sys.executable, "-m", "ser_edge.benchmarks.variants_bench"]


@pytest.mark.datasets
def test_every_variant_is_timed_on_the_same_utterances_and_compared_with_float32():
    data_dir = shared_dataset_dir("emodb")
    done = subprocess.run([*BENCH, "--model", "emodb", "--data-dir", str(data_dir), "--items", "3", "--rounds", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 real utterances" in done.stdout and "2 rounds" in done.stdout
    rows = re.findall(r"^\| (\w+) \| ([0-9,]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) % \|$", done.stdout, re.M)
    assert [row[0] for row in rows] == list(VARIANTS)
    for variant, size, median, p95, agreement in rows:
        assert int(size.replace(",", "")) == resolve_model("emodb", variant).stat().st_size
        assert 0 < float(median) <= float(p95)
        assert float(agreement) in {0.0, 33.3, 66.7, 100.0}  # of three utterances
    assert dict((row[0], row[4]) for row in rows)["float32"] == "100.0"  # the reference agrees with itself


@pytest.mark.parametrize("flag", ["--items", "--rounds"])
def test_nothing_to_time_is_refused(tmp_path, flag):
    done = subprocess.run([*BENCH, "--data-dir", str(tmp_path), flag, "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "must be at least 1" in done.stderr
