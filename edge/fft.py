"""The real FFT behind the STFT: the fastest of three that give the same numbers.

- ``pocketfft``: scipy's compiled pocketfft kernel, loaded on its own. It
  vectorises batches of transforms, which makes the whole MFCC more than
  twice as fast as with ``numpy.fft`` (``python -m ser_edge.benchmarks.frontend_bench``
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

import functools
import importlib.machinery
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ser_edge.edge.errors import SerEdgeError

BACKENDS = ("pocketfft", "scipy", "numpy")
RealFFT = Callable[[np.ndarray], np.ndarray]  # rfft along the last axis


@functools.cache  # loading and probing the extension is not free: once per process, not per switch
def backend(name: str) -> RealFFT:
    """A named backend, or a one-line error saying why it is not available here."""
    if name == "numpy":
        return lambda frames: np.fft.rfft(frames, axis=-1)
    if name == "scipy":
        try:
            from scipy import fft as scipy_fft
        except ImportError:
            raise SerEdgeError("FFT backend 'scipy' needs scipy installed") from None
        return lambda frames: scipy_fft.rfft(frames, axis=-1)
    if name == "pocketfft":
        return _pocketfft_rfft()
    raise SerEdgeError(f"unknown FFT backend {name!r}; use one of {', '.join(BACKENDS)}")


def best_available() -> tuple[str, RealFFT]:
    """The first backend of BACKENDS that works here (numpy always does)."""
    for name in BACKENDS:
        try:
            return name, backend(name)
        except SerEdgeError:
            continue
    raise AssertionError("unreachable: the numpy backend is always available")


def _pocketfft_rfft() -> RealFFT:
    module = _load_scipy_pocketfft()

    def rfft(frames: np.ndarray) -> np.ndarray:
        # r2c(array, axes, forward, normalisation (0: none, numpy's default), out, threads)
        return module.r2c(np.ascontiguousarray(frames), (frames.ndim - 1,), True, 0, None, 1)

    # A fixed, irregular probe: numpy.random would cost ~6 MiB of resident memory for this alone
    # (it imports hashlib and OpenSSL), and nothing else on the device path needs it.
    probe = np.sin(np.arange(3 * 64, dtype=np.float32).reshape(3, 64) ** 1.5 * 0.1)
    try:
        agrees = np.allclose(rfft(probe), np.fft.rfft(probe, axis=-1), rtol=1e-4, atol=1e-4)
    except Exception:  # an API change in a future scipy: keep to the public paths
        agrees = False
    if not agrees:
        raise SerEdgeError("FFT backend 'pocketfft': scipy's kernel does not match numpy.fft here")
    return rfft


def _load_scipy_pocketfft():
    """scipy's compiled pypocketfft module, loaded without importing the scipy package."""
    missing = SerEdgeError("FFT backend 'pocketfft' needs scipy's pocketfft extension, which was not found")
    try:
        spec = importlib.util.find_spec("scipy")  # locates the package without importing it
    except (ImportError, ValueError):
        raise missing from None
    if spec is None or not spec.submodule_search_locations:
        raise missing
    folder = Path(list(spec.submodule_search_locations)[0]) / "fft" / "_pocketfft"
    paths = [folder / f"pypocketfft{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise missing
    try:
        loader = importlib.machinery.ExtensionFileLoader("pypocketfft", str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader("pypocketfft", loader))
        loader.exec_module(module)
    except (ImportError, OSError):
        raise missing from None
    return module
