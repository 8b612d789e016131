"""The device side on arm64 for real: scripts/arm64_check.py in an emulated Debian bookworm root.

The end-to-end test builds (or reuses, from ~/.cache/ser-edge/arm64) an arm64
root with mmdebstrap and qemu-user-static, ``pip install .`` there, classifies
real files on both sides and checks the figures itself from the script's
JSON. It skips only where the kernel refuses the aarch64 binfmt_misc handler
(and where it is not root, which chroot needs). A cold run (no cache) takes
minutes; see the README. No emulated timing is a Raspberry Pi figure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "arm64_check.py"
TOLERANCE = 0.02
COLD_RUN_LIMIT_S = 1500


def load_script():
    spec = importlib.util.spec_from_file_location("arm64_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(name: str, label: str, **probabilities: float) -> dict:
    return {"file": f"/data/{name}", "label": label, "probabilities": probabilities}


def test_compare_accepts_small_differences_and_reports_real_ones():
    compare = load_script().compare
    here = [result("a.wav", "happy", happy=0.6, sad=0.4), result("b.wav", "sad", happy=0.3, sad=0.7)]
    close = [result("a.wav", "happy", happy=0.59, sad=0.41), result("b.wav", "sad", happy=0.31, sad=0.69)]
    assert compare(here, close, TOLERANCE) == ([], pytest.approx(0.01))
    far = [result("a.wav", "happy", happy=0.57, sad=0.43), result("b.wav", "happy", happy=0.51, sad=0.49)]
    problems, largest = compare(here, far, TOLERANCE)
    assert largest == pytest.approx(0.21)
    assert any("a.wav: probabilities differ by up to 0.03" in p for p in problems)
    assert any("b.wav: label sad here, happy on arm64" in p for p in problems)
    assert compare(here, close[:1], TOLERANCE)[0] == ["2 results here but 1 on arm64"]


def test_a_missing_file_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nothing.wav")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert ("no such file" in done.stderr) or ("needs root" in done.stderr)


@pytest.mark.arm64
@pytest.mark.slow
def test_device_side_on_arm64_agrees_with_this_machine(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: binfmt_misc registration, mmdebstrap --mode=root and chroot")
    out = tmp_path / "arm64.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--tolerance", str(TOLERANCE)],
                          capture_output=True, text=True, timeout=COLD_RUN_LIMIT_S)
    if done.returncode == 3:  # only where the kernel refuses binfmt_misc
        pytest.skip(done.stderr.strip())
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(out.read_text())

    target = report["target"]
    assert target["machine"] == "aarch64"
    assert target["python"].startswith("3.11.") and target["libc"] == "glibc 2.36"  # bookworm, Raspberry Pi OS's base
    packages = set(target["packages"])
    assert "ser-edge" in packages and "ai-edge-litert" in packages
    assert not packages & {"tensorflow", "keras", "librosa", "numba", "scikit-learn"}, "only the device side"

    files = report["files"]
    assert len(files) >= 3
    for model, figures in report["models"].items():
        here, arm = figures["here"], figures["arm64"]
        assert len(here) == len(arm) == len(files), model
        for ours, theirs in zip(here, arm):
            assert Path(ours["file"]).name == Path(theirs["file"]).name.split("-", 1)[1]
            assert ours["label"] == theirs["label"], (model, ours["file"])
            if ours.get("speech_probability") is not None or theirs.get("speech_probability") is not None:
                assert abs(ours["speech_probability"] - theirs["speech_probability"]) <= TOLERANCE, ours["file"]
            if "probabilities" not in ours:  # not speech: no label was invented, on either machine
                assert "probabilities" not in theirs and ours["label"] is None, (model, ours["file"])
                continue
            assert set(ours["probabilities"]) == set(theirs["probabilities"])
            for label, p in ours["probabilities"].items():
                assert abs(p - theirs["probabilities"][label]) <= TOLERANCE, (model, ours["file"], label)
    assert done.returncode == 0, done.stdout
