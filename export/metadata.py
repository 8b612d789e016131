"""Embed ser-edge's JSON metadata in a .tflite flatbuffer (Model.metadata + a buffer).

The device reads it back with ``ser_edge.edge.model_file.read_metadata`` (no TensorFlow).
"""

from __future__ import annotations

import json

import numpy as np

from ser_edge.edge.model_file import CHECKSUM_KEY, FORMAT, METADATA_NAME, OUTPUT, checksums


def embed(flatbuffer: bytes, metadata: dict) -> bytes:
    """The flatbuffer with ``metadata`` and its checksums (weights, metadata) embedded.

    Embedded twice from the same input: the first result is what the runtime will
    hash (every buffer but ours), the second carries that hash. Buffers other than
    ours are identical in both, so the runtime recomputes exactly this value.
    """
    metadata = json.loads(json.dumps(metadata))  # the form the runtime will parse
    metadata.pop(CHECKSUM_KEY, None)
    unsigned = _embed(flatbuffer, metadata)
    return _embed(flatbuffer, {**metadata, CHECKSUM_KEY: checksums(unsigned, metadata)})


def _embed(flatbuffer: bytes, metadata: dict) -> bytes:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    for previous in model.metadata or []:  # re-embedding: empty the old entry's buffer, or it lingers unreferenced
        if previous.name == METADATA_NAME.encode():
            model.buffers[previous.buffer].data = None
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def build_metadata(trained, record: dict, source_sha256: str) -> dict:
    """Everything the runtime needs, and what a person asks of a model file."""
    info = trained.info
    cross_validation = info.get("cross_validation") or {}
    return {
        "format": FORMAT,
        "dataset": info.get("dataset"),
        "label_names": list(trained.label_names),
        "features": trained.features.to_dict(),
        "inputs": list(trained.features.input_names),
        "output": OUTPUT,
        "quantization": record["quantization"],
        "conversion_mode": record["mode"],
        "float_ops": record.get("float_ops", {}),
        "float_layers": sorted(record.get("float_layers", {})),
        "source_model": {"file": trained.path.name, "sha256": source_sha256},
        "training": {
            "best_epoch": info.get("best_epoch"),
            "validation_accuracy": info.get("best_val_accuracy"),
            "train_size": info.get("train_size"),
            "settings": info.get("settings"),
            "cross_validation_war": cross_validation.get("war"),
            "cross_validation_uar": cross_validation.get("uar"),
            "figures": info.get("figures"),
        },
    }
