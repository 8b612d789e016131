"""Keras TPMNet -> .tflite at batch 1, builtin ops only, in four numeric variants."""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import Callable, Iterable

import numpy as np

from edge.errors import SerEdgeError
from edge.features import model_inputs
from export.keras_model import TrainedModel

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
OUTPUT_NAME = "probabilities"
SIGNATURE = "serving_default"
# Ops whose job is to move between float and int8 at the graph's edges.
CONVERSION_OPS = {"QUANTIZE", "DEQUANTIZE"}


def convert(trained: TrainedModel, quantization: str, calibration: np.ndarray | None = None) -> tuple[bytes, dict]:
    """Return the .tflite flatbuffer and a conversion record (mode, float ops left).

    ``calibration`` holds real (n, frames, n_mfcc) features; int8 needs it.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise SerEdgeError(f"unknown quantization {quantization!r}; choose from {', '.join(QUANTIZATIONS)}")
    if quantization == "int8" and (calibration is None or len(calibration) == 0):
        raise SerEdgeError("int8 needs real calibration features: pass --calibration-data DIR --dataset NAME")

    saved_model = tempfile.TemporaryDirectory(prefix="ser-export-")
    _save_batch_one(trained, saved_model.name)
    record = {"quantization": quantization, "mode": quantization}

    def converter_for(supported_ops) -> "tf.lite.TFLiteConverter":
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model.name, signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = supported_ops
        if quantization != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            converter.representative_dataset = representative_dataset(calibration, trained)
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter

    if quantization == "int8":
        try:
            flatbuffer = _run(converter_for([tf.lite.OpsSet.TFLITE_BUILTINS_INT8]))
            record["mode"] = "int8 (full integer)"
        except SerEdgeError as strict_failure:
            # Some op has no int8 kernel: keep it in float and say which.
            flatbuffer = _run(converter_for([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]))
            record["mode"] = "int8 with float fallback"
            record["strict_int8_error"] = str(strict_failure)
    else:
        flatbuffer = _run(converter_for([tf.lite.OpsSet.TFLITE_BUILTINS]))
    record.update(op_inventory(flatbuffer))
    return flatbuffer, record


def _save_batch_one(trained: TrainedModel, directory: str) -> None:
    """A SavedModel whose one signature takes named batch-1 inputs.

    Going through a SavedModel (not a bare concrete function) keeps the
    signature, which int8 calibration needs, and freezes the weights.
    """
    import tensorflow as tf

    features = trained.features
    forward_name, backward_name = features.input_names
    shape = (1,) + features.input_shape
    model = trained.model

    def serve(forward, backward):
        return {OUTPUT_NAME: model({forward_name: forward, backward_name: backward}, training=False)}

    # Keras's ExportArchive tracks the Keras variables so the converter can freeze them.
    # Named arguments become the signature's input names: bind by name, never by position.
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=serve,
                         input_signature=[tf.TensorSpec(shape, tf.float32, name=forward_name),
                                          tf.TensorSpec(shape, tf.float32, name=backward_name)])
    archive.write_out(directory, verbose=False)


def representative_dataset(calibration: np.ndarray, trained: TrainedModel) -> Callable[[], Iterable[dict]]:
    def samples():
        for matrix in calibration:
            inputs = model_inputs(matrix, trained.features)
            yield {name: value for name, value in inputs.items()}

    return samples


def _run(converter) -> bytes:
    try:
        return converter.convert()
    except Exception as error:  # the converter raises ConverterError and friends
        text = str(error)
        ops = sorted({line.split("'")[1] for line in text.splitlines() if "op '" in line or "Op '" in line})
        named = f" (ops: {', '.join(ops)})" if ops else ""
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        raise SerEdgeError(f"TFLite conversion with builtin ops failed{named}: {first}") from None


def op_inventory(flatbuffer: bytes) -> dict:
    """Count operators, and list those that compute in float inside the graph."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    code_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    counts, float_ops = Counter(), Counter()
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            code = model.operatorCodes[operator.opcodeIndex]
            name = code_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            counts[name] += 1
            tensors = [subgraph.tensors[i] for i in list(operator.inputs) + list(operator.outputs) if i >= 0]
            computes_in_float = any(t.type == schema.TensorType.FLOAT32 and not _is_constant(model, t)
                                    for t in tensors)
            if computes_in_float and name not in CONVERSION_OPS:
                float_ops[name] += 1
    return {"ops": dict(sorted(counts.items())), "float_ops": dict(sorted(float_ops.items()))}


def _is_constant(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer]
    return buffer.data is not None and len(buffer.data) > 0
