"""Shared fixtures: a seeded random generator, the shared datasets, the FFT backend.

Also: the repository's folders (edge/, models/, export/, benchmarks/) are on
sys.path while tests run from its root, so ``import edge`` would load a second
copy of ser_edge.edge beside the installed one. Such an import fails here.
"""

from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge import features, fft

REPO_ROOT = Path(__file__).resolve().parents[1]
BARE_NAMES = ("edge", "models", "export", "benchmarks")  # the folders; the packages are ser_edge.<name>


class _NoBareImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if path is None and name in BARE_NAMES:
            raise ImportError(f"import {name}: the package is ser_edge.{name} (the bare folder would be a second copy)")
        return None


sys.meta_path.insert(0, _NoBareImports())
# ../shared/datasets relative to the project root (see shared/datasets/README.md).
SHARED_DATASETS = (REPO_ROOT.parent / "shared" / "datasets").resolve()

SEED = 20240611


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator, so every test sees the same random signals."""
    return np.random.default_rng(SEED)


def shared_dataset_dir(name: str | None = None) -> Path:
    """The shared datasets folder (or one dataset in it); skips the test when absent."""
    path = SHARED_DATASETS if name is None else SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(
            f"shared datasets not available at {path} "
            "(expected ../shared/datasets next to the project root; see its README.md)"
        )
    return path


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` relative to the repository root, or a skip with the reason."""
    return shared_dataset_dir()


@pytest.fixture(params=fft.BACKENDS)
def fft_backend(request) -> str:
    """Runs the test once per STFT backend and restores the previous backend after."""
    previous = features.FFT_BACKEND
    features.use_fft_backend(request.param)
    try:
        yield request.param
    finally:
        features.use_fft_backend(previous)


def pytest_collection_modifyitems(config, items):
    """Longest files first: the emulated arm64 check, then files that train or run daemons, then the rest.

    `pytest -n auto --dist loadfile --no-loadscope-reorder` (the README's test command) hands whole
    files to the workers in this order, so the ten-minute arm64 check starts at once instead of last
    and no worker is left waiting for one long file at the end. Within a file the order is unchanged.
    """
    tier: dict[Path, int] = {}
    for item in items:
        rank = 0 if item.get_closest_marker("arm64") else 1 if item.get_closest_marker("slow") else 2
        tier[item.path] = min(rank, tier.get(item.path, 2))
    items.sort(key=lambda item: tier[item.path])  # stable: each file's tests keep their order
