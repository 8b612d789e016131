"""Shared fixtures: a seeded random generator, the shared datasets, the FFT backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge import features, fft

REPO_ROOT = Path(__file__).resolve().parents[1]
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
