"""Where a training step's time goes: the shipped recipe's model, one thread, timed and profiled.

    python -m ser_edge.models.step_profile [--sidecar models/shipped/ravdess.json] [--batches 16 32 64 128]
        [--steps 10] [--threads 1] [--out FILE.md]

Training on this project's CPU is the long pole, so before buying epochs it
pays to know what one costs. This builds the model a shipped sidecar
describes (its reading, BatchNorm momentum, head: the parts that decide the
graph), compiles it as ``ser-train`` does, and on random inputs of the
right shape measures:
- milliseconds per utterance of a training step at each batch size (does a
  larger batch use the core better?);
- the same step XLA-compiled (``ser-train --jit-compile``);
- TensorFlow's profiler: self time per layer (forward and gradient ops
  together) and per op type.
Run it on a quiet machine: another process on the cores changes every figure.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ser_edge.edge import atomic, command
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.models import shipped_dir
from ser_edge.models.train import TrainSettings, build_model, compile_model

WARM_UP_STEPS = 3


def sidecar_settings(sidecar: Path) -> tuple[TrainSettings, int]:
    """The sidecar's training settings (what decides the graph among them) and its number of classes."""
    try:
        data = json.loads(sidecar.read_text())
        fields = {f.name for f in dataclasses.fields(TrainSettings)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data["settings"].items() if k in fields}
        return TrainSettings(**values), len(data["label_names"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SerEdgeError(f"{sidecar}: not a training sidecar ({error})") from None


def batch_of(size: int, classes: int, config: FeatureConfig, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    inputs = {name: rng.standard_normal((size, *config.input_shape)).astype(np.float32) for name in config.input_names}
    return inputs, np.eye(classes, dtype=np.float32)[rng.integers(0, classes, size)]


def ms_per_utterance(model, batch: tuple[dict, np.ndarray], steps: int) -> float:
    for _ in range(WARM_UP_STEPS):  # the first steps build the graph
        model.train_on_batch(*batch)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)
    return 1000 * (time.perf_counter() - started) / steps / len(batch[1])


def profiled_ops(model, batch: tuple[dict, np.ndarray], steps: int) -> list[dict]:
    """(operation name, type, self time in µs) of every op the profiler saw over ``steps`` steps."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            model.train_on_batch(*batch)
        tf.profiler.experimental.stop()
        traces = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        data, ok = plugin.xspace_to_tools_data(traces, "framework_op_stats", {})
    if not ok:
        raise SerEdgeError(f"this TensorFlow's profiler has no framework_op_stats tool ({data!r})")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    rows = [dict(zip(columns, [cell.get("v") if cell else None for cell in row["c"]])) for row in table["rows"]]
    return [{"operation": r["operation"], "type": r["type"], "self_us": r["total_self_time"]} for r in rows]


def layer_of(operation: str, op_type: str, layer_names: list[str]) -> str:
    """The model layer an op belongs to (its scope names it, with a suffix Keras adds), else what it is."""
    if op_type == "IDLE":
        return "(idle: the profiler's gaps between ops)"
    scope = re.search(r"tpmnet[^/]*/([^/]+)", operation)
    if scope:
        for name in layer_names:  # longest first: "forward_bn" before "forward"
            if scope.group(1) == name or re.fullmatch(rf"{re.escape(name)}_\d+", scope.group(1)):
                return name
    if re.match(r"(adam|Adam)|.*/(Assign|ReadVariable)", operation):
        return "(optimiser)"
    return "(gradient sums and the rest)"


def shares(ops: list[dict], key, steps: int) -> list[tuple[str, float, float]]:
    total = sum(op["self_us"] for op in ops) or 1.0
    sums = collections.Counter()
    for op in ops:
        sums[key(op)] += op["self_us"]
    return [(name, us / steps / 1000, 100 * us / total) for name, us in sums.most_common()]


def markdown(args, settings: TrainSettings, rows: list[tuple[str, float]], ops: list[dict], layers: list[str],
             threads: int, batch: int) -> str:
    import keras
    import tensorflow as tf

    from ser_edge.benchmarks.host import cpu_model

    sidecar = shown_path(args.sidecar)
    lines = ["# A training step, profiled", "",
             f"`python -m ser_edge.models.step_profile --sidecar {sidecar} --batches "
             f"{' '.join(map(str, args.batches))} --steps {args.steps} --threads {threads}` on {cpu_model()} "
             f"({platform.machine()}), TensorFlow {tf.__version__}, Keras {keras.__version__}, {threads} thread(s); "
             f"the model of `{sidecar}` (reading {settings.reading}, "
             f"{'with' if settings.dropout else 'no'} spatial dropout, BatchNorm momentum {settings.bn_momentum}), "
             "random inputs of its shape, Adam as `ser-train` compiles it.", "",
             "| step | ms per utterance |", "|---|---|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in rows]
    lines += ["", f"Profiler, batch {batch}, {args.steps} steps: self time per layer (forward and gradient ops "
              "together; ms per step).", "", "| layer | ms per step | share |", "|---|---|---|"]
    lines += [f"| {name} | {ms:.1f} | {pct:.1f} % |"
              for name, ms, pct in shares(ops, lambda op: layer_of(op["operation"], op["type"], layers), args.steps)]
    lines += ["", "Per op type (the first 12).", "", "| op type | ms per step | share |", "|---|---|---|"]
    lines += [f"| {name} | {ms:.1f} | {pct:.1f} % |"
              for name, ms, pct in shares(ops, lambda op: op["type"], args.steps)[:12]]
    return "\n".join(lines) + "\n"


def shown_path(path: Path) -> str:
    """Relative to the working folder where it lies below it: the page shows a command anyone can repeat."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def per_row_normalisation(batch: int, steps: int) -> list[tuple[str, float, float]]:
    """The first BatchNorm's forward and gradient work, as Keras does it (axis 1 of NHWC: generic reductions)
    and as TensorFlow's fused kernel would (the same tensor read as NCHW, time rows as its channels): (how,
    ms per step, largest relative difference of the output and gradients from Keras's)."""
    import keras
    import tensorflow as tf

    shape = (batch, 194, 37, 64)  # the first conv block's output for 3 s of audio
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(shape).astype(np.float32) * 3 + 1)
    weights = tf.constant(rng.standard_normal(shape).astype(np.float32))
    layer = keras.layers.BatchNormalization(axis=1, momentum=0.9)
    layer.build(shape)
    gamma, beta = layer.gamma, layer.beta

    def fused(inputs):
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(inputs, gamma, beta, epsilon=layer.epsilon, data_format="NCHW",
                                                   is_training=True)
        return y

    def step_of(forward):
        @tf.function
        def step(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                loss = tf.reduce_sum(forward(inputs) * weights)
            return tape.gradient(loss, [inputs, gamma, beta])
        return step

    results, reference = [], None
    for how, forward in (("Keras BatchNormalization(axis=1)", lambda t: layer(t, training=True)),
                         ("fused kernel, NCHW", fused)):
        step = step_of(forward)
        for _ in range(WARM_UP_STEPS):
            grads = step(x)
        started = time.perf_counter()
        for _ in range(steps):
            grads = step(x)
        ms = 1000 * (time.perf_counter() - started) / steps
        reference = reference or grads
        differs = max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a))) for a, b in zip(reference, grads))
        results.append((how, ms, differs))
    return results


def normalisation_markdown(args, rows: list[tuple[str, float, float]]) -> str:
    import tensorflow as tf

    from ser_edge.benchmarks.host import cpu_model

    return "\n".join([
        "# The per-row BatchNorm, two ways", "",
        f"`python -m ser_edge.models.step_profile --per-row-normalisation --batches {args.batches[0]} --steps "
        f"{args.steps} --threads {args.threads}` on {cpu_model()} ({platform.machine()}), TensorFlow "
        f"{tf.__version__}, {args.threads} thread(s): forward and gradients of the first conv block's BatchNorm "
        f"on a batch of {args.batches[0]}, random inputs.", "",
        "| how | ms per step | gradients: largest difference from Keras's, relative to their largest |", "|---|---|---|",
        *[f"| {how} | {ms:.1f} | {differs:.1e} |" for how, ms, differs in rows]]) + "\n"


def run(args) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.per_row_normalisation:
        text = normalisation_markdown(args, per_row_normalisation(args.batches[0], args.steps))
        print(text)
        if args.out:
            atomic.write_text(args.out, text)
        return
    settings, classes = sidecar_settings(args.sidecar)
    config = FeatureConfig()
    rng = np.random.default_rng(0)
    rows = []
    models = {}
    for jit in (False, True):
        models[jit] = build_model(dataclasses.replace(settings, jit_compile=jit), classes, config)
        compile_model(models[jit], dataclasses.replace(settings, jit_compile=jit))
    for size in args.batches:
        batch = batch_of(size, classes, config, rng)
        rows.append((f"batch {size}", ms_per_utterance(models[False], batch, args.steps)))
        print(f"{rows[-1][0]}: {rows[-1][1]:.1f} ms per utterance", file=sys.stderr)
    middle = args.batches[len(args.batches) // 2]
    batch = batch_of(middle, classes, config, rng)
    rows.append((f"batch {middle}, XLA (`--jit-compile`)", ms_per_utterance(models[True], batch, args.steps)))
    rows.append((f"batch {middle} again, without XLA", ms_per_utterance(models[False], batch, args.steps)))
    layers = sorted((layer.name for layer in models[False].layers), key=len, reverse=True)
    ops = profiled_ops(models[False], batch, args.steps)
    text = markdown(args, settings, rows, ops, layers, args.threads, middle)
    print(text)
    if args.out:
        atomic.write_text(args.out, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_edge.models.step_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sidecar", type=Path, default=shipped_dir() / "ravdess.json")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--per-row-normalisation", action="store_true",
                        help="only time the first BatchNorm as Keras computes it and as a fused kernel would "
                             "(the first --batches size)")
    args = parser.parse_args(argv)
    if min(args.batches) < 1 or args.steps < 1 or args.threads < 1:
        parser.error("batches, steps and threads must be positive")
    return command.run("step_profile", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
