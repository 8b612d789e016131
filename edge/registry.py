"""Shipped models by name: ``ravdess`` (English, the default) and ``emodb`` (German).

Every entry point resolves ``--model`` here, so names map to files in one place.
"""

from __future__ import annotations

from pathlib import Path

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import check_regular_file, exists

DEFAULT_MODEL = "ravdess"
DEFAULT_VARIANT = "dynamic"  # fastest measured at 100 % agreement: see README
SHIPPED = ("ravdess", "emodb")
# Every variant ser-export writes and a shipped model comes in, with what it stores (ser-edge info shows it).
VARIANT_KINDS = {
    "float32": "float32 weights and activations",
    "float16": "float16 weights, float32 arithmetic",
    "dynamic": "int8 weights, float activations",
    "int8": "int8 weights and activations",
}
VARIANTS = tuple(VARIANT_KINDS)
# The thesis's Raspberry Pi figure, mean seconds per utterance at batch 1 (Section 4-5).
THESIS_PI_SECONDS = {"emodb": 1.42, "ravdess": 1.35, "iemocap": 1.22}
THESIS_PI_MEAN_SECONDS = 1.33


def shipped_dir() -> Path:
    """The device's own model files: every variant's .tflite, and parity/ (what ser-edge info reads).

    Beside this module, where pip puts package data: ``importlib.resources`` would say the same for an
    installed package, importing typing, zipfile and its readers in the daemon to do so.
    """
    return Path(__file__).parent / "shipped"


def resolve_model(name_or_path: str | Path = DEFAULT_MODEL, variant: str = DEFAULT_VARIANT) -> Path:
    """A shipped model name (``ravdess``, ``emodb``, or ``ravdess-int8``) or a path to a .tflite."""
    text = str(name_or_path)
    name, _, explicit_variant = text.partition("-")
    if name in SHIPPED and (not explicit_variant or explicit_variant in VARIANTS):
        path = shipped_dir() / f"{name}-{explicit_variant or variant}.tflite"
        if not path.is_file():
            raise SerEdgeError(f"shipped model {path.name} is missing from {path.parent}; reinstall ser-edge")
        return path
    path = Path(text)
    if path.suffix == ".tflite" or exists(path):
        check_regular_file(path, "model file")  # says why: missing, permission denied, a directory
        return path
    raise SerEdgeError(f"unknown model {text!r}: use {model_choices()} or a path to a .tflite file")


def model_choices() -> str:
    """The shipped names and their variants, for help texts and errors."""
    return ", ".join(f"{n}[-{'|'.join(VARIANTS)}]" for n in SHIPPED)


def thesis_seconds(dataset: str | None) -> float:
    """The thesis's Raspberry Pi seconds per utterance for ``dataset`` (mean 1.33 s if unknown)."""
    return THESIS_PI_SECONDS.get(dataset or "", THESIS_PI_MEAN_SECONDS)
