"""Checksums stored at export (export/metadata.embed) and verified at load (ser_edge.edge.model_file).

The shipped models predate checksums; re-embedding their own metadata with the
exporter's ``embed`` gives the file a new export would produce.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="embedding metadata needs the train extra: pip install '.[train]'")

from ser_edge.edge import model_file  # noqa: E402
from ser_edge.edge.classifier import EmotionClassifier  # noqa: E402
from ser_edge.edge.config import FeatureConfig  # noqa: E402
from ser_edge.edge.errors import SerEdgeError  # noqa: E402
from ser_edge.edge.model_file import read_metadata  # noqa: E402
from ser_edge.export.metadata import _embed, embed  # noqa: E402
from tests.daemon_tools import SER_EDGE, assert_one_clear_error  # noqa: E402
from tests.fixtures import model_path  # noqa: E402


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> Path:
    source = model_path()
    path = tmp_path_factory.mktemp("signed") / "signed.tflite"
    path.write_bytes(embed(source.read_bytes(), read_metadata(source)))
    return path


def weight_ranges(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every buffer but the ser-edge metadata: where the weights are."""
    root = model_file._uoffset(data, 0)
    ours = model_file._metadata_buffer_indices(data, root)[model_file.METADATA_NAME]
    ranges = []
    for index, table in enumerate(model_file._vector_of_tables(data, root, model_file._MODEL_BUFFERS)):
        start = model_file._field_target(data, table, model_file._BUFFER_DATA)
        if index != ours and start is not None:
            (length,) = np.frombuffer(data, dtype="<u4", count=1, offset=start)
            if length:
                ranges.append((start + 4, start + 4 + int(length)))
    return ranges


def test_a_signed_model_loads_verified_and_answers_like_the_original(signed, tmp_path, rng):
    original, checked = EmotionClassifier(model_path()), EmotionClassifier(signed)
    assert checked.checksum_verified
    # A file exported before checksums (metadata without one) still loads, unverified.
    metadata = {k: v for k, v in read_metadata(signed).items() if k != "checksum"}
    older = tmp_path / "older.tflite"
    older.write_bytes(_embed(signed.read_bytes(), metadata))
    assert not EmotionClassifier(older).checksum_verified
    stored = read_metadata(signed)["checksum"]
    assert stored == model_file.checksums(signed.read_bytes(), read_metadata(signed))
    signal = (0.1 * rng.standard_normal(50_000)).astype(np.float32)
    assert checked.classify(signal).probabilities == original.classify(signal).probabilities


def test_flipped_weight_bytes_are_caught(signed, tmp_path, rng):
    """A corrupted SD card: 5 % of the weight bytes flipped still loads and answers without the checksum."""
    data = bytearray(signed.read_bytes())
    positions = np.concatenate([np.arange(a, b) for a, b in weight_ranges(bytes(data))])
    assert positions.size > 95_000  # TPMNet's weights (at least a byte for each of its parameters), not a stray buffer
    for position in rng.choice(positions, size=positions.size // 20, replace=False):
        data[position] ^= 0xFF
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(SerEdgeError, match="weights do not match the checksum stored at export"):
        EmotionClassifier(corrupt)
    done = subprocess.run([*SER_EDGE, "classify", "--model", str(corrupt), str(signed)], capture_output=True,
                          text=True, timeout=120)
    assert_one_clear_error(done, "the file is corrupt or was edited")


@pytest.mark.parametrize("old, new", [
    (f'"sample_rate": {FeatureConfig().sample_rate}'.encode(), b'"sample_rate": 16000'),
    (b'"fmax": null', b'"fmax": 8000'),
    (b'"n_fft": 2048', b'"n_fft": 1024'),
    (b'"top_db": 80.0', b'"top_db": 60.0'),
])
def test_edited_feature_numbers_are_caught(signed, tmp_path, old, new):
    """Values the tensor shapes cannot reveal: without the checksum they silently change every result."""
    data = signed.read_bytes()
    assert data.count(old) == 1
    edited = tmp_path / "edited.tflite"
    edited.write_bytes(data.replace(old, new))
    with pytest.raises(SerEdgeError, match="metadata do not match the checksum stored at export"):
        EmotionClassifier(edited)
