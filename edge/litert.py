"""The one place that imports a TFLite interpreter.

``ai_edge_litert`` (LiteRT, maintained, numpy 2, aarch64 wheels) first; the
frozen ``tflite_runtime`` 2.14 only where it is all that is installed.
"""

from __future__ import annotations

from ser_edge.edge.errors import SerEdgeError

INSTALL_HINT = "pip install ai-edge-litert  (or, on old systems, tflite-runtime with numpy<2)"


def interpreter_class():
    """The Interpreter class of whichever runtime is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise SerEdgeError(f"no TFLite runtime is installed: {INSTALL_HINT}") from None
    return Interpreter


def runtime_name() -> str:
    """"ai-edge-litert X.Y.Z" or "tflite-runtime X.Y.Z", for reports."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("ai-edge-litert", "tflite-runtime"):
        try:
            return f"{distribution} {version(distribution)}"
        except PackageNotFoundError:
            continue
    return "unknown"
