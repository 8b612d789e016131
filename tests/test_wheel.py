"""What `pip install .` puts on a Pi: one `ser_edge` namespace, the device's .tflite files, no .keras."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import BARE_NAMES, REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # Build from the tracked files only (git archive): a stale build/ or egg-info here must not change the answer.
    tree = tmp_path_factory.mktemp("tree")
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    files = [name for name in archive.decode().split("\0") if name and (REPO_ROOT / name).is_file()]
    subprocess.run(["tar", "-C", str(REPO_ROOT), "-cf", str(tree / "tree.tar"), *files], check=True)
    subprocess.run(["tar", "-C", str(tree), "-xf", str(tree / "tree.tar")], check=True)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(tree)], check=True, capture_output=True)
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    return wheel.namelist()


def test_one_top_level_name_and_no_generic_ones(wheel_names):
    top = {name.split("/")[0] for name in wheel_names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"ser_edge"}
    assert not top & set(BARE_NAMES)


def test_the_device_files_are_in_and_the_keras_files_are_not(wheel_names):
    assert not [name for name in wheel_names if name.endswith(".keras")]
    shipped = {name for name in wheel_names if name.startswith("ser_edge/edge/shipped/") and name.endswith(".tflite")}
    expected = {f"ser_edge/edge/shipped/{p.name}" for p in (REPO_ROOT / "edge" / "shipped").glob("*.tflite")}
    assert shipped == expected and expected


def test_the_console_scripts_keep_their_names_and_point_into_the_namespace(wheel, wheel_names):
    (entry_points,) = [name for name in wheel_names if name.endswith(".dist-info/entry_points.txt")]
    lines = [line.split("=") for line in wheel.read(entry_points).decode().splitlines() if "=" in line]
    targets = {name.strip(): target.strip() for name, target in lines}
    assert set(targets) == {"ser-edge", "ser-train", "ser-export", "ser-bench"}
    assert all(target.startswith("ser_edge.") for target in targets.values()), targets
