"""The real FFT behind the STFT: the fastest of three that give the same numbers.

- ``pocketfft``: scipy's compiled pocketfft kernel, loaded on its own. It
  vectorises batches of transforms, which makes the whole MFCC about three
  times faster than with ``numpy.fft`` (``python -m benchmarks.frontend_bench``
  measures both). Importing ``scipy.fft`` to get it would also import
  scipy.special and OpenBLAS: about 20 MiB more resident memory (same
  benchmark) for nothing the device uses.
  The extension does not depend on the scipy package around it, so it is
  loaded straight from scipy's install folder, checked against numpy once,
  and skipped if anything about it differs (another scipy layout or API).
- ``scipy``: the public ``scipy.fft``, same kernel, heavier import.
- ``numpy``: ``numpy.fft``, always there; the fallback.

scipy is a dependency of ser-edge for this reason (the README gives the
measured figures); the code still runs without it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.errors import SerEdgeError

BACKENDS = ("pocketfft", "scipy", "numpy")
RealFFT = Callable[[np.ndarray], np.ndarray]  # rfft along the last axis


def numpy_rfft() -> RealFFT:
    return lambda frames: np.fft.rfft(frames, axis=-1)


def scipy_rfft() -> RealFFT:
    from scipy import fft as scipy_fft

    return lambda frames: scipy_fft.rfft(frames, axis=-1)


def pocketfft_rfft() -> RealFFT | None:
    """scipy's pocketfft extension without the scipy package, or None where that is not possible."""
    module = _load_scipy_pocketfft()
    if module is None:
        return None

    def rfft(frames: np.ndarray) -> np.ndarray:
        # r2c(array, axes, forward, normalisation (0: none, numpy's default), out, threads)
        return module.r2c(np.ascontiguousarray(frames), (frames.ndim - 1,), True, 0, None, 1)

    try:
        probe = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
        if not np.allclose(rfft(probe), np.fft.rfft(probe, axis=-1), rtol=1e-4, atol=1e-4):
            return None
    except Exception:  # an API change in a future scipy: keep to the public paths
        return None
    return rfft


def _load_scipy_pocketfft():
    try:
        spec = importlib.util.find_spec("scipy")  # locates the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "fft" / "_pocketfft"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"pypocketfft{suffix}"
        if path.is_file():
            break
    else:
        return None
    try:
        loader = importlib.machinery.ExtensionFileLoader("pypocketfft", str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader("pypocketfft", loader))
        loader.exec_module(module)
    except (ImportError, OSError):
        return None
    return module


def best_available() -> tuple[str, RealFFT]:
    """The first backend of BACKENDS that works here."""
    rfft = pocketfft_rfft()
    if rfft is not None:
        return "pocketfft", rfft
    try:
        return "scipy", scipy_rfft()
    except ImportError:
        return "numpy", numpy_rfft()


def backend(name: str) -> RealFFT:
    """A named backend, or a one-line error saying why it is not available."""
    if name == "numpy":
        return numpy_rfft()
    if name == "scipy":
        try:
            return scipy_rfft()
        except ImportError:
            raise SerEdgeError("FFT backend 'scipy' needs scipy installed") from None
    if name == "pocketfft":
        rfft = pocketfft_rfft()
        if rfft is None:
            raise SerEdgeError("FFT backend 'pocketfft' needs scipy's pocketfft extension, which was not found")
        return rfft
    raise SerEdgeError(f"unknown FFT backend {name!r}; use one of {', '.join(BACKENDS)}")
