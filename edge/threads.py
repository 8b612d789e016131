"""Native thread pools (BLAS, OpenMP) held to the count the user chose, whatever the environment says.

numpy's OpenBLAS starts one thread per core unless ``OPENBLAS_NUM_THREADS``
(or ``OMP_NUM_THREADS``) says otherwise, and on a Pi running other services
those threads fight the rest of the machine: the MFCC's matrix products get
several times slower under load. The device side therefore runs its BLAS
with exactly ``threads`` (1 by default, from the config file or ``--threads``),
the same count LiteRT gets.

Why threadpoolctl rather than setting ``OPENBLAS_NUM_THREADS`` before numpy
loads: an environment variable only works if it is set before the first
``import numpy`` anywhere in the process, and it is silently ignored
otherwise (a program that imports ``edge`` as a library, a test, a future
module that imports numpy early); the thread count also comes from the TOML
file, which is read after Python has started. threadpoolctl changes the
running library through its own API (``openblas_set_num_threads``, and the
OpenMP and MKL equivalents), works whatever was imported first, and can be
asked afterwards what the library really uses, which the tests do from
inside a real ``ser-edge`` process. It is a small pure-Python package.

Who calls :func:`limit`: ``EmotionClassifier`` once its model has loaded
(so whatever classifies, the exporter's threshold and the gain benchmark
included, computes MFCCs as the device does), and ``Judge`` again once the
Silero speech gate is there (it brings OpenMP, libgomp, after the model).
A pool loaded later than both would escape; tests/test_threads.py asks a
real process what every pool uses at each classification.
"""

from __future__ import annotations

from ser_edge.edge.errors import SerEdgeError


def limit(count: int) -> list[dict]:
    """Set every loaded BLAS and OpenMP pool to ``count`` threads; returns what each reports now."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SerEdgeError(f"threads must be a positive integer, got {count!r}")
    import numpy  # noqa: F401  (its BLAS must be loaded to be found)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise SerEdgeError("threadpoolctl is not installed: pip install threadpoolctl") from None
    threadpool_limits(limits=count)  # not a context manager: the limit holds for the rest of the process
    return pools()


def pools() -> list[dict]:
    """The native thread pools loaded in this process: library, API, version, threads."""
    from threadpoolctl import threadpool_info

    return [{"library": p.get("internal_api"), "api": p.get("user_api"), "version": p.get("version"),
             "threads": p.get("num_threads")} for p in threadpool_info()]


def describe(found: list[dict]) -> str:
    """"openblas 1" style summary for logs and reports."""
    return ", ".join(f"{p['library']} {p['threads']}" for p in found) or "no BLAS/OpenMP pool loaded"
