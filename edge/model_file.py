"""Read the ser-edge metadata embedded in a .tflite file, without TensorFlow.

A .tflite file is a FlatBuffer (schema: tensorflow/lite/schema/schema.fbs).
We only need ``Model.metadata`` (name -> buffer index) and ``Model.buffers``,
so a few struct reads replace a generated schema module.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import read_regular_file

METADATA_NAME = "ser_edge"  # the entry our exporter writes
FORMAT = 1  # the layout of that entry ser-export writes; the only one this runtime reads
OUTPUT = "probabilities"  # what the one output tensor holds
CHECKSUM_KEY = "checksum"  # in the metadata: sha256 of the weights and of the rest of the metadata
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6  # field numbers in table Model
_METADATA_NAME, _METADATA_BUFFER = 0, 1  # table Metadata
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2  # table Buffer

# CPython's own sha256 (3.12+: _sha2, 3.11: _sha256), not hashlib's: `import hashlib` loads _hashlib and with it
# OpenSSL's libcrypto, about 3.5 MiB resident in the daemon for one checksum at load (benchmarks/memory_bench.py).
# The same digest; a few ms slower on a 0.3 MB model. hashlib only where neither module is built.
try:
    from _sha2 import sha256 as _sha256
except ImportError:
    try:
        from _sha256 import sha256 as _sha256
    except ImportError:
        from hashlib import sha256 as _sha256


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata that ``ser-export`` embedded in ``path``."""
    return parse_metadata(read_model_bytes(path), path)


def read_model_bytes(path: str | Path) -> bytes:
    """The whole model file, read once: the interpreter gets these bytes, never a mapping of the file."""
    return read_regular_file(path, "model file", MAX_MODEL_BYTES)


MAX_MODEL_BYTES = 64 * 1024 * 1024  # TPMNet files are < 1 MB; refuse to read a huge wrong file


def parse_metadata(data: bytes, path: str | Path) -> dict:
    """The ser-edge metadata of the model bytes ``data`` (``path`` only names it in errors)."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise SerEdgeError(f"{path}: not a TFLite model (no TFL3 identifier)")
    try:
        entries = metadata_entries(data)
    except (struct.error, IndexError) as error:
        raise SerEdgeError(f"{path}: corrupt TFLite model ({error})") from None
    if METADATA_NAME not in entries:
        raise SerEdgeError(f"{path}: model has no ser-edge metadata (labels, features); export it with ser-export")
    try:
        metadata = json.loads(entries[METADATA_NAME].decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise SerEdgeError(f"{path}: ser-edge metadata is not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise SerEdgeError(f"{path}: ser-edge metadata is not a JSON object")
    layout = metadata.get("format")
    if layout != FORMAT or isinstance(layout, bool):
        raise SerEdgeError(f"{path}: ser-edge metadata format {layout!r}, but this ser-edge reads format {FORMAT}; "
                           "export the model with this version's ser-export")
    return metadata


def check_bindings(metadata: dict, input_names: tuple[str, ...], path: str | Path) -> None:
    """The metadata's ``inputs`` must be the feature config's input names, its ``output`` class probabilities."""
    if metadata.get("inputs") != list(input_names):
        raise SerEdgeError(f"{path}: the metadata's inputs {metadata.get('inputs')!r} are not the feature "
                           f"config's input names {list(input_names)}")
    if metadata.get("output") != OUTPUT:
        raise SerEdgeError(f"{path}: the metadata's output is {metadata.get('output')!r}, not {OUTPUT!r}")


def checksums(data: bytes, metadata: dict) -> dict:
    """sha256 of the model's weights (every buffer but ours) and of the metadata without its checksum.

    The exporter stores this in the metadata; the runtime recomputes it, so a
    corrupted SD card or an edited feature number is caught at load.
    """
    weights = _sha256()
    model = _uoffset(data, 0)
    ours = {index for name, index in _metadata_buffer_indices(data, model).items() if name == METADATA_NAME}
    for index, table in enumerate(_vector_of_tables(data, model, _MODEL_BUFFERS)):
        if index in ours:
            continue
        content = _buffer_bytes(data, table)
        weights.update(struct.pack("<Q", len(content)))  # lengths keep buffer boundaries in the hash
        weights.update(content)
    rest = {key: value for key, value in metadata.items() if key != CHECKSUM_KEY}
    text = json.dumps(rest, sort_keys=True).encode()
    return {"algorithm": "sha256", "weights": weights.hexdigest(), "metadata": _sha256(text).hexdigest()}


def verify_checksums(data: bytes, metadata: dict, path: str | Path) -> bool:
    """Raise on a mismatch; False when the file predates checksums (nothing to verify)."""
    stored = metadata.get(CHECKSUM_KEY)
    if stored is None:
        return False
    if not isinstance(stored, dict) or stored.get("algorithm") != "sha256":
        raise SerEdgeError(f"{path}: unknown checksum in the metadata ({stored!r:.60})")
    try:
        actual = checksums(data, metadata)
    except (struct.error, IndexError) as error:
        raise SerEdgeError(f"{path}: corrupt TFLite model ({error})") from None
    for part in ("weights", "metadata"):
        if stored.get(part) != actual[part]:
            raise SerEdgeError(f"{path}: the model's {part} do not match the checksum stored at export: "
                               "the file is corrupt or was edited; copy it again")
    return True


def metadata_entries(data: bytes) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a .tflite flatbuffer: name -> bytes."""
    model = _uoffset(data, 0)
    buffers = _vector_of_tables(data, model, _MODEL_BUFFERS)
    entries = {}
    for table in _vector_of_tables(data, model, _MODEL_METADATA):
        name = _string(data, table, _METADATA_NAME)
        index = _scalar(data, table, _METADATA_BUFFER, "<I", 0)
        entries[name] = _buffer_bytes(data, buffers[index])
    return entries


def _metadata_buffer_indices(data: bytes, model: int) -> dict[str, int]:
    return {_string(data, table, _METADATA_NAME): _scalar(data, table, _METADATA_BUFFER, "<I", 0)
            for table in _vector_of_tables(data, model, _MODEL_METADATA)}


def _buffer_bytes(data: bytes, table: int) -> bytes:
    offset = _scalar(data, table, _BUFFER_OFFSET, "<Q", 0)
    if offset > 1:  # large models keep buffer data after the flatbuffer
        return data[offset : offset + _scalar(data, table, _BUFFER_SIZE, "<Q", 0)]
    start = _field_target(data, table, _BUFFER_DATA)
    if start is None:
        return b""
    (length,) = struct.unpack_from("<I", data, start)
    return data[start + 4 : start + 4 + length]


def _uoffset(data: bytes, position: int) -> int:
    return position + struct.unpack_from("<I", data, position)[0]


def _field_position(data: bytes, table: int, field: int) -> int | None:
    vtable = table - struct.unpack_from("<i", data, table)[0]
    vtable_size = struct.unpack_from("<H", data, vtable)[0]
    slot = 4 + 2 * field
    if slot >= vtable_size:
        return None
    offset = struct.unpack_from("<H", data, vtable + slot)[0]
    return table + offset if offset else None


def _field_target(data: bytes, table: int, field: int) -> int | None:
    position = _field_position(data, table, field)
    return None if position is None else _uoffset(data, position)


def _scalar(data: bytes, table: int, field: int, fmt: str, default):
    position = _field_position(data, table, field)
    return default if position is None else struct.unpack_from(fmt, data, position)[0]


def _string(data: bytes, table: int, field: int) -> str:
    start = _field_target(data, table, field)
    if start is None:
        return ""
    (length,) = struct.unpack_from("<I", data, start)
    return data[start + 4 : start + 4 + length].decode("utf-8", "replace")


def _vector_of_tables(data: bytes, table: int, field: int) -> list[int]:
    start = _field_target(data, table, field)
    if start is None:
        return []
    (length,) = struct.unpack_from("<I", data, start)
    return [_uoffset(data, start + 4 + 4 * i) for i in range(length)]
