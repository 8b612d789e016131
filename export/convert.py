"""Keras TPMNet -> .tflite at batch 1, builtin ops only, in four numeric variants."""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import Callable, Iterable

import numpy as np

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.features import model_inputs
from ser_edge.edge.registry import VARIANTS
from ser_edge.export.keras_model import TrainedModel

QUANTIZATIONS = VARIANTS  # every variant a shipped model comes in
OUTPUT_NAME = "probabilities"
SIGNATURE = "serving_default"
# Ops whose job is to move between float and int8 at the graph's edges.
CONVERSION_OPS = {"QUANTIZE", "DEQUANTIZE"}
# Parts of TPMNet that an int8 export keeps in float, and why. Chosen with TF's QuantizationDebugger
# on EMO-DB; the parity reports give the agreement that results (models/shipped/parity/*-int8.parity.md).
FLOAT_LAYER_REASONS = {
    "attention": "softmax over hundreds of capsules (756 in the authors' reading, 1,320 in ours): typical "
                 "weights are about 1/756 to 1/1320, under half the int8 "
                 "output step of 1/256, so they round to 0",
    "attention norm": "residual Add + LayerNorm right after the float attention: normalising the "
                      "capsules at one int8 scale loses their spread",
    "routing": "the squash sums squares of capsule votes, whose range is far wider than its inputs': "
               "at one int8 scale small |s|^2 round to 0 and rsqrt blows up",
    "time-row BatchNorm": "BatchNorm over time rows (axis=1) is a per-row multiplier that the "
                          "converter cannot fold into the conv; one int8 scale cannot hold all rows",
}


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
        # TFLITE_BUILTINS beside INT8: the layers kept in float (and ELU, which has no int8 kernel) need float kernels.
        converter = converter_for([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])
        flatbuffer, kept = _int8_with_float_layers(converter, trained.model)
        record["mode"] = "int8 with float " + ", ".join(kept) if kept else "int8 (full integer)"
        record["float_layers"] = {name: FLOAT_LAYER_REASONS[name] for name in kept}
    else:
        flatbuffer = _run(converter_for([tf.lite.OpsSet.TFLITE_BUILTINS]))
    record.update(op_inventory(flatbuffer))
    return flatbuffer, record


def _int8_with_float_layers(converter, model) -> tuple[bytes, list[str]]:
    """Calibrate once, then quantize everything but the layers in FLOAT_LAYER_REASONS.

    The QuantizationDebugger's denylist keeps the ops of those layers in float;
    its output is an ordinary (non-instrumented) model with int8 input and output.
    """
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True))
    except Exception as error:  # calibration runs the converter
        raise SerEdgeError(f"int8 calibration failed: {str(error).strip().splitlines()[0]}") from None
    calibrated = flatbuffer_utils.read_model_from_bytearray(bytearray(debugger.calibrated_model))
    outputs = [subgraph.tensors[operator.outputs[0]].name.decode()
               for subgraph in calibrated.subgraphs for operator in subgraph.operators]
    nodes, kept = [], []
    for part, layer_names in _float_layer_names(model).items():
        matched = [name for name in outputs if any(_in_layer(name, layer) for layer in layer_names)]
        if matched:
            nodes += matched
            kept.append(part)
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes, fully_quantize=True)
    return debugger.get_nondebug_quantized_model(), kept


def _float_layer_names(model) -> dict[str, list[str]]:
    """Keras layer names of each part in FLOAT_LAYER_REASONS, found by layer type (ablations lack some)."""
    import keras

    from ser_edge.models.tpmnet import DynamicRouting

    parts = {part: [] for part in FLOAT_LAYER_REASONS}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Attention):
            parts["attention"].append(layer.name)
        elif isinstance(layer, (keras.layers.Add, keras.layers.LayerNormalization)):
            parts["attention norm"].append(layer.name)  # the residual around the attention
        elif isinstance(layer, DynamicRouting):
            parts["routing"].append(layer.name)
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (1, [1]):
            parts["time-row BatchNorm"].append(layer.name)
    return parts


def _in_layer(tensor_name: str, layer_name: str) -> bool:
    """Whether a converted tensor comes from the layer: TF scopes read ".../<layer>_<n>/op" (fused ops join with ';')."""
    return any(scope == layer_name or scope.rsplit("_", 1)[0] == layer_name
               for part in tensor_name.split(";") for scope in part.split("/")[1:-1])


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
