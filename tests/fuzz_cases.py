"""Seeded fuzz cases over audio headers and model files, run in a child process by tests/test_fuzz.py.

A child, so that a crash (SIGSEGV, SIGBUS) or a hang in a native library is
seen as such rather than taking pytest down. Each case must end in a result or
a SerEdgeError; anything else prints the case and exits 1.

    python -m tests.fuzz_cases --seed 1 --cases 200 --model edge/shipped/ravdess-dynamic.tflite
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import soundfile

from ser_edge.edge import audio
from ser_edge.edge.classifier import EmotionClassifier
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.model_file import METADATA_NAME, metadata_entries

HEADER_FIELDS = {  # offset, struct format of the canonical 44-byte PCM WAV header
    "riff_size": (4, "<I"), "fmt_size": (16, "<I"), "format": (20, "<H"), "channels": (22, "<H"),
    "rate": (24, "<I"), "byte_rate": (28, "<I"), "block_align": (32, "<H"), "bits": (34, "<H"),
    "data_size": (40, "<I"),
}
EXTREMES = (0, 1, 2, 3, 7, 8, 255, 1000, 22050, 65535, 2**31 - 1, 2**31, 2**32 - 1)
JSON_VALUES = (None, True, False, 0, -1, 1, 3, 2**63, -(2**63), 1e308, -1e-308, 0.5, "x", "", [], [1, 2], {},
               {"a": 1})


def base_wav(rng: np.random.Generator, subtype: str) -> bytes:
    buffer = io.BytesIO()
    signal = (0.3 * rng.standard_normal(8000)).clip(-1, 1).astype(np.float32)
    soundfile.write(buffer, signal, 16000, format="WAV", subtype=subtype)
    return buffer.getvalue()


def fuzz_wav(rng: np.random.Generator) -> bytes:
    data = bytearray(base_wav(rng, str(rng.choice(["PCM_16", "PCM_24", "FLOAT", "PCM_U8"]))))
    for _ in range(int(rng.integers(1, 4))):
        move = rng.integers(4)
        offset, fmt = HEADER_FIELDS[str(rng.choice(list(HEADER_FIELDS)))]
        if move == 0 and len(data) >= offset + struct.calcsize(fmt):  # an extreme value in a header field
            limit = 2 ** (8 * struct.calcsize(fmt))
            struct.pack_into(fmt, data, offset, int(rng.choice(EXTREMES)) % limit)
        elif move == 1 and data:  # random bytes anywhere in the first 64
            data[int(rng.integers(min(64, len(data))))] = int(rng.integers(256))
        elif move == 2 and data:  # truncated
            del data[int(rng.integers(0, len(data))):]
        elif len(data) > 48:  # samples of any magnitude, for float files
            position = int(rng.integers(44, max(45, len(data) - 4)))
            data[position : position + 4] = struct.pack("<f", float(rng.choice([1e6, -1e30, 3.0, np.nan])))
    return bytes(data)


def fuzz_model(rng: np.random.Generator, model: bytes) -> bytes:
    data = bytearray(model)
    move = rng.integers(3)
    if move == 0:  # one metadata value replaced, written in place (same length: pad or cut the JSON)
        text = metadata_entries(model)[METADATA_NAME]
        start = model.find(text)
        metadata = json.loads(text)
        section = metadata["features"] if rng.random() < 0.7 else metadata
        key = str(rng.choice(sorted(section)))
        section[key] = JSON_VALUES[int(rng.integers(len(JSON_VALUES)))]
        new = json.dumps(metadata, sort_keys=True).encode()[: len(text)].ljust(len(text))
        data[start : start + len(text)] = new
    elif move == 1:  # flipped bytes in the flatbuffer's tables (not the weights)
        for _ in range(int(rng.integers(1, 8))):
            region = int(rng.integers(0, 2))
            position = int(rng.integers(0, 512)) if region == 0 else len(data) - 1 - int(rng.integers(0, 4096))
            data[position] ^= 1 << int(rng.integers(8))
    else:  # truncated
        del data[int(rng.integers(0, len(data))):]
    return bytes(data)


def run_case(kind: str, path: Path, signal: np.ndarray) -> str:
    try:
        if kind == "wav":
            decoded = audio.load(path, FeatureConfig().sample_rate)
            assert decoded.dtype == np.float32 and np.isfinite(decoded).all()
            return "ok"
        prediction = EmotionClassifier(path).classify(signal)
        assert all(np.isfinite(list(prediction.probabilities.values())))
        return "ok"
    except SerEdgeError as error:
        message = str(error)
        assert message and "\n" not in message
        return "error"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--model", type=Path, required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    model = args.model.read_bytes()
    signal = (0.1 * rng.standard_normal(30_000)).astype(np.float32)
    counts = {"ok": 0, "error": 0}
    with tempfile.TemporaryDirectory() as folder:
        for case in range(args.cases):
            kind = "wav" if case % 3 else "model"
            path = Path(folder) / ("case.wav" if kind == "wav" else "case.tflite")
            path.write_bytes(fuzz_wav(rng) if kind == "wav" else fuzz_model(rng, model))
            print(f"case {case} {kind}", flush=True)  # the last line names the case if we crash or hang
            try:
                counts[run_case(kind, path, signal)] += 1
            except Exception:  # anything but SerEdgeError is a bug: show it and the input
                traceback.print_exc()
                keep = Path(tempfile.gettempdir()) / f"fuzz-seed{args.seed}-case{case}{path.suffix}"
                keep.write_bytes(path.read_bytes())
                print(f"FAILED case {case}: input kept in {keep}", flush=True)
                return 1
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
