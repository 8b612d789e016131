"""Search the converter's integer options for a TPMNet export that pays: faster than float32, >= 98 % agreement.

Issue 12 part 2. For one shipped model it converts float32 (the reference), then
int8 with float fallbacks chosen four ways (none; each of ser_edge.export.convert's
FLOAT_LAYER_REASONS parts; the ops the QuantizationDebugger measures as worst,
by RMSE over the int8 scale; everything except the weight-carrying ops), then
16x8 (int16 activations, int8 weights) as the converter chooses it (its
TFLITE_BUILTINS fallback is the only per-op choice 16x8 offers: the debugger's
denylists produce int8 models only). Every candidate runs with LiteRT on the model's held-out
validation files (the sidecar's list): top-1 agreement with float32, the
largest probability difference, and invoke latency (median of 60, one thread,
measured against float32 in the same run).

    python scripts/int8_search.py ravdess /path/to/ravdess --out benchmarks/results/int8-search-ravdess.md
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
WORST_COUNTS = (10, 25, 50, 100)
TIMED_RUNS = 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="shipped model name (models/shipped/NAME.keras)")
    parser.add_argument("data_dir", type=Path, help="the dataset's folder (its validation files are the held-out set)")
    parser.add_argument("--out", type=Path, required=True, help="Markdown report")
    args = parser.parse_args(argv)

    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    from ser_edge.edge.classifier import EmotionClassifier
    from ser_edge.export import convert as conversion
    from ser_edge.export.cli import real_features
    from ser_edge.export.keras_model import load_trained_model
    from ser_edge.export.metadata import build_metadata, embed

    trained = load_trained_model(REPO / "models" / "shipped" / f"{args.name}.keras")
    calibration, held_out, labels = real_features(trained, argparse.Namespace(
        dataset=args.name, calibration_data=args.data_dir, cache_dir=None, calibration_size=300))
    work = Path(tempfile.mkdtemp(prefix="int8-search-"))
    rows, reference = [], {}

    def evaluate(tag: str, flatbuffer: bytes) -> None:
        inventory = conversion.op_inventory(flatbuffer)
        path = work / "candidate.tflite"
        path.write_bytes(embed(flatbuffer, build_metadata(trained, {"quantization": "int8", "mode": tag, **inventory}, "search")))
        try:
            classifier = EmotionClassifier(path, threads=1)
            probabilities = np.stack([classifier.infer(matrix) for matrix in held_out])
        except Exception as error:  # a candidate the runtime refuses is a result too
            rows.append((tag, None, None, None, None, len(flatbuffer), str(error).replace(f"{path}: ", "").splitlines()[0][:160]))
            print(f"{tag}: does not run: {error}", file=sys.stderr, flush=True)
            return
        samples = []
        for matrix in np.resize(held_out, (TIMED_RUNS,) + held_out.shape[1:]):
            started = time.perf_counter()
            classifier.infer(matrix)
            samples.append((time.perf_counter() - started) * 1e3)
        reference.setdefault("probabilities", probabilities)
        agreement = float(np.mean(probabilities.argmax(1) == reference["probabilities"].argmax(1)))
        difference = float(np.abs(probabilities - reference["probabilities"]).max())
        accuracy = float(np.mean(probabilities.argmax(1) == labels))
        float_ops = sum(inventory["float_ops"].values())
        rows.append((tag, agreement, difference, accuracy, float(np.median(samples)), len(flatbuffer), f"{float_ops} float ops"))
        print(f"{tag}: agreement {100 * agreement:.2f} %, median {np.median(samples):.2f} ms", file=sys.stderr, flush=True)

    evaluate("float32 (reference)", conversion.convert(trained, "float32")[0])

    saved = tempfile.TemporaryDirectory(prefix="int8-search-saved-")
    conversion._save_batch_one(trained, saved.name)

    def converter(ops):
        result = tf.lite.TFLiteConverter.from_saved_model(saved.name, signature_keys=[conversion.SIGNATURE])
        result.target_spec.supported_ops = ops
        result.optimizations = [tf.lite.Optimize.DEFAULT]
        result.representative_dataset = conversion.representative_dataset(calibration, trained)
        return result

    int8_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    input_order: list[str] = []  # the debugger feeds inputs as a list in its interpreter's order

    def debug_samples():
        for sample in conversion.representative_dataset(calibration, trained)():
            yield [sample[name] for name in input_order]

    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter(int8_ops), debug_dataset=debug_samples)
    details = tf.lite.Interpreter(model_content=debugger.calibrated_model).get_input_details()
    input_order += [next(name for name in trained.features.input_names if name in detail["name"]) for detail in details]
    calibrated = flatbuffer_utils.read_model_from_bytearray(bytearray(debugger.calibrated_model))
    op_outputs = [subgraph.tensors[operator.outputs[0]].name.decode()
                  for subgraph in calibrated.subgraphs for operator in subgraph.operators]

    def with_float(nodes=(), op_types=()):
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(nodes), denylisted_ops=list(op_types), fully_quantize=True)
        return debugger.get_nondebug_quantized_model()

    evaluate("int8, no float fallback", with_float())
    parts = conversion._float_layer_names(trained.model)
    nodes_of = {part: [n for n in op_outputs if any(conversion._in_layer(n, layer) for layer in layers)]
                for part, layers in parts.items()}
    for part, nodes in nodes_of.items():
        evaluate(f"int8, float {part} ({len(nodes)} ops)", with_float(nodes))
    everything = [n for nodes in nodes_of.values() for n in nodes]
    evaluate(f"int8, float {' + '.join(nodes_of)} (shipped int8; {len(everything)} ops)", with_float(everything))

    # The debugger's per-op error: RMSE between float and int8 outputs, in units of the op's int8 scale.
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True)
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    statistics = sorted(csv.DictReader(dump), key=lambda row: -float(row.get("rmse/scale") or 0))
    for count in WORST_COUNTS:
        worst = [row["tensor_name"] for row in statistics[:count]]
        evaluate(f"int8, float for the {count} ops of largest rmse/scale", with_float(worst))
    all_types = sorted(set(conversion.op_inventory(debugger.calibrated_model)["ops"]) - set(WEIGHT_OPS)
                       - conversion.CONVERSION_OPS)
    evaluate(f"int8 only in {', '.join(WEIGHT_OPS)} (everything else float)", with_float(op_types=all_types))

    sixteen = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    evaluate("16x8 (int16 activations, int8 weights)", converter(sixteen).convert())
    # A per-op float fallback for 16x8 is not available: the QuantizationDebugger's denylists
    # produce int8 models only, so the candidate above is the converter's own 16x8 choice.

    write_report(args, rows, trained, len(held_out))
    return 0


def write_report(args, rows, trained, held_out_count) -> None:
    import platform

    from ser_edge.edge.litert import runtime_name

    lines = [f"# int8 search: {args.name}", "",
             f"`python scripts/int8_search.py {args.name} DATA_DIR --out {args.out}`; held-out set: the shipping "
             f"model's {held_out_count} validation utterances; latency: LiteRT invoke, one thread, median of "
             f"{TIMED_RUNS}, on {platform.machine()} with {runtime_name()}. Agreement and latency are against the "
             "float32 export in the same run.", "",
             "| candidate | top-1 agreement with float32 | max abs prob. difference | accuracy | invoke median | bytes | note |",
             "|---|---|---|---|---|---|---|"]
    for tag, agreement, difference, accuracy, median, size, note in rows:
        cell = (lambda v, f: "-" if v is None else f.format(v))
        lines.append(f"| {tag} | {cell(agreement and 100 * agreement, '{:.2f} %') if agreement is not None else '-'} | "
                     f"{cell(difference, '{:.3f}')} | {cell(accuracy and 100 * accuracy, '{:.1f} %') if accuracy is not None else '-'} | "
                     f"{cell(median, '{:.2f} ms')} | {size:,} | {note} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
