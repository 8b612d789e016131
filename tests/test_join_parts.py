"""Bundles that travel to a GPU machine in parts are joined whole, or not at all."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "models" / "join_parts.sh"


def split(tmp_path: Path, size: int = 100_000) -> bytes:
    data = np.random.default_rng(0).bytes(size)
    transfer = tmp_path / "transfer"
    transfer.mkdir()
    (tmp_path / "bundle.npz").write_bytes(data)
    subprocess.run(["split", "-b", "40000", str(tmp_path / "bundle.npz"), str(transfer / "bundle.npz.part-")],
                   check=True)
    (transfer / "bundle.npz.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  bundle.npz\n")
    return data


def join(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(tmp_path / "transfer"), str(tmp_path / "gpu")],
                          capture_output=True, text=True, timeout=60)


def test_parts_are_joined_into_the_bundle_and_checked(tmp_path):
    data = split(tmp_path)
    assert len(list((tmp_path / "transfer").glob("*.part-*"))) == 3
    done = join(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "gpu" / "bundle.npz").read_bytes() == data
    assert "sha256 checked" in done.stdout


def test_a_missing_part_writes_nothing_and_says_so(tmp_path):
    split(tmp_path)
    (tmp_path / "transfer" / "bundle.npz.part-ab").unlink()  # the second call's part never arrived
    done = join(tmp_path)
    assert done.returncode == 1
    assert done.stdout.strip().count("\n") == 0 and "do not match its sha256" in done.stdout
    assert not list((tmp_path / "gpu").glob("*"))


def test_nothing_to_join_is_not_an_error(tmp_path):
    (tmp_path / "transfer").mkdir()
    done = join(tmp_path)
    assert done.returncode == 0 and done.stdout == ""
