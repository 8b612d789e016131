"""``python -m ser_edge.models.step_profile``: a real profiled training step of a shipped model's graph."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ser_edge.models import shipped_dir

PROFILE = [sys.executable, "-m", "ser_edge.models.step_profile"]
pytestmark = pytest.mark.slow  # every test imports TensorFlow (the last in this process)


def test_the_page_times_each_batch_and_splits_the_profiled_step_over_the_models_layers(tmp_path):
    page = tmp_path / "step.md"
    done = subprocess.run([*PROFILE, "--batches", "2", "4", "--steps", "2", "--out", str(page)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    text = page.read_text()
    timed = dict(re.findall(r"^\| (batch [^|]+?) \| ([0-9.]+) \|$", text, re.M))
    assert set(timed) == {"batch 2", "batch 4", "batch 4, XLA (`--jit-compile`)", "batch 4 again, without XLA"}
    assert all(float(ms) > 0 for ms in timed.values())
    layers = re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \| ([0-9.]+) % \|$", text.split("Per op type")[0], re.M)
    named = {name for name, _, _ in layers}
    # The first conv blocks, the capsule routing and the head are layers of the shipped graph: all must be found.
    assert {"forward_conv", "backward_bn", "dynamic_routing", "emotion"} <= named, named
    assert sum(float(pct) for _, _, pct in layers) == pytest.approx(100, abs=0.5)
    unattributed = sum(float(pct) for name, _, pct in layers if name.startswith("("))
    assert unattributed < 40, layers  # most of the step must land on a named layer


def test_a_file_that_is_not_a_sidecar_is_one_line_and_status_2(tmp_path):
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps({"labels": []}))
    done = subprocess.run([*PROFILE, "--sidecar", str(bad), "--batches", "2", "--steps", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"step_profile: error: {bad}: not a training sidecar")


def test_the_shipped_sidecars_give_the_settings_they_were_trained_with():
    from ser_edge.models.step_profile import sidecar_settings

    for name in ("ravdess", "emodb"):
        data = json.loads((shipped_dir() / f"{name}.json").read_text())
        settings, classes = sidecar_settings(shipped_dir() / f"{name}.json")
        assert classes == len(data["label_names"])
        assert (settings.reading, settings.bn_momentum, settings.head_scale) == \
               (data["settings"]["reading"], data["settings"]["bn_momentum"], data["settings"]["head_scale"])


def test_the_fused_per_row_normalisation_computes_kerass_gradients(tmp_path):
    page = tmp_path / "bn.md"
    done = subprocess.run([*PROFILE, "--per-row-normalisation", "--batches", "2", "--steps", "1", "--out", str(page)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = dict((how, (float(ms), float(differs))) for how, ms, differs in
                re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \| ([0-9.e+-]+) \|$", page.read_text(), re.M))
    assert set(rows) == {"Keras BatchNormalization(axis=1)", "fused kernel, NCHW"}
    assert all(ms > 0 for ms, _ in rows.values())
    assert rows["Keras BatchNormalization(axis=1)"][1] == 0
    # The same function: its gradients agree to float32 round-off (a wrong axis would differ by order 1).
    assert rows["fused kernel, NCHW"][1] < 1e-3
