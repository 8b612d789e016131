"""``python -m ser_edge.benchmarks.soak_bench`` on a few audio minutes: every sentence in is one JSON line out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")]


def test_a_short_soak_loses_no_utterance_and_writes_its_report(tmp_path):
    out = tmp_path / "soak"
    done = subprocess.run([sys.executable, "-m", "ser_edge.benchmarks.soak_bench", "--hours", "0.03", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["exit_code"] == 0 and result["invalid_json_lines"] == 0
    assert result["audio_hours"] >= 0.03 and result["utterances_in"] >= 10
    assert result["lines_out"] == result["utterances_in"]  # each sentence is followed by a pause longer than 0.6 s
    assert result["summary"]["not_classified"] == 0
    page = (tmp_path / "soak.md").read_text()
    assert f"| utterances in (sentences written) | {result['utterances_in']:,} |" in page and "(+0 lost)" in page


def test_no_audio_is_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ser_edge.benchmarks.soak_bench", "--hours", "0", "--out",
                           str(tmp_path / "soak")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--hours must be more than 0" in done.stderr
