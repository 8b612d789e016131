"""TPMNet, the thesis's "Pattern Learning Block" model, in Keras 3, in two readings.

Parameter counts (tests assert all of them, for both readings): 95,288 for 7
classes, 95,353 for 8, 95,093 for 4; ablations without DWSCNN 69,688, without
CBAM 90,994, without self-attention 95,160, without dynamic routing 70,712
(7 classes).

``reading="authors"`` (the shipped one) follows the structure of the thesis
authors' published notebooks (../shared/spec/tpmnet.md):
- two CNN branches (forward and reversed MFCCs): Conv2D(64, 3) -> BatchNorm
  over the time rows (axis=1) -> ELU -> AvgPool 2 -> SpatialDropout;
- one shared CBAM used as a residual, x + CBAM(x), after each branch and after
  the dilated block; its spatial gate is conv 7x7 -> BN -> ReLU -> sigmoid;
- cross-attention: one Keras ``Attention(use_scale=True)``, forward flow as
  query, backward flow as key and value, along the coefficient axis within
  each time row (what TF 2.10's Attention did on 4-D maps; Keras 3 wants
  rank 3, so each time row becomes a batch item), added to the forward flow;
  the same layer (its one scale) serves the self-attention below;
- dilated block, residual CBAM, primary capsules from DepthwiseConv2D(3,
  dilation 2) + Conv2D(384, 1): a 42 x 3 map, 756 capsules of 64, squashed;
- a spatial gate on the capsule grid as a residual, self-attention ->
  LayerNorm -> multiplied by its input, the same gate's residual again;
- routing to 6 capsules with one transform shared by all inputs; agreement
  logits replaced (not accumulated) each iteration, intermediate outputs
  L2-normalised, squash after the last iteration only;
- GAP over the 6 output capsules -> Dropout -> Dense softmax.

``reading="gate"`` is this project's first reading (1,320 capsules, a
parameter-free sigmoid cross gate, CBAM as a gate, accumulated routing);
kept as a named variant so the two can be compared (models/README.md).

The graph has no division (``squash`` and ``l2_normalize`` use rsqrt), so an
int8 conversion cannot divide by zero.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from ser_edge.edge.config import FeatureConfig
from ser_edge.models import ABLATIONS, READINGS

PACKAGE = "ser_edge"
NUM_OUTPUT_CAPSULES = 6
CAPSULE_DIM = 64
ROUTING_ITERATIONS = 3
SQUASH_EPSILON = 1e-7


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelPool(layers.Layer):
    """[mean; max] over channels: (B, H, W, C) -> (B, H, W, 2)."""

    def call(self, x):
        return ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpatialAttention(layers.Layer):
    """Conv2D(1, 7x7, no bias) + BatchNorm over [mean; max] of channels, sigmoid gate. 102 params.

    ``relu`` puts a ReLU between the BatchNorm and the sigmoid, as the authors
    do (the gate then lies in [0.5, 1)).
    """

    def __init__(self, kernel_size: int = 7, relu: bool = False, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.relu = relu
        self.momentum = momentum
        self.pool = ChannelPool()
        self.conv = layers.Conv2D(1, kernel_size, padding="same", use_bias=False)
        self.norm = layers.BatchNormalization(momentum=momentum)

    def build(self, input_shape):
        pooled = tuple(input_shape[:-1]) + (2,)
        self.conv.build(pooled)
        self.norm.build(tuple(input_shape[:-1]) + (1,))

    def gate(self, x, training=None):
        logits = self.norm(self.conv(self.pool(x)), training=training)
        return ops.sigmoid(ops.relu(logits) if self.relu else logits)

    def call(self, x, training=None):
        return x * self.gate(x, training=training)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "relu": self.relu,
                "momentum": self.momentum}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CBAM(layers.Layer):
    """Channel attention (shared MLP on avg- and max-pooled vectors) then spatial attention. 4,294 params for 64 channels.

    ``residual`` returns x + CBAM(x) (the authors' use) instead of CBAM(x).
    """

    def __init__(self, channels: int = 64, reduction: int = 2, residual: bool = False, relu_gate: bool = False,
                 momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.reduction = reduction
        self.residual = residual
        self.relu_gate = relu_gate
        self.momentum = momentum
        self.hidden = layers.Dense(channels // reduction, activation="relu")
        self.expand = layers.Dense(channels)
        self.spatial = SpatialAttention(relu=relu_gate, momentum=momentum)

    def build(self, input_shape):
        self.hidden.build((None, self.channels))
        self.expand.build((None, self.channels // self.reduction))
        self.spatial.build(input_shape)

    def call(self, x, training=None):
        average = ops.mean(x, axis=(1, 2))
        maximum = ops.max(x, axis=(1, 2))
        weights = ops.sigmoid(self.expand(self.hidden(average)) + self.expand(self.hidden(maximum)))
        attended = self.spatial(x * weights[:, None, None, :], training=training)
        return x + attended if self.residual else attended

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "reduction": self.reduction,
                "residual": self.residual, "relu_gate": self.relu_gate, "momentum": self.momentum}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossGate(layers.Layer):
    """Parameter-free cross-attention of the "gate" reading: each time flow gates the other."""

    def call(self, inputs):
        forward, backward = inputs
        return forward * ops.sigmoid(backward) + backward * ops.sigmoid(forward)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RowsToBatch(layers.Layer):
    """(B, H, W, C) -> (B * H, W, C): each time row becomes a sequence of W coefficient vectors."""

    def call(self, x):
        return ops.reshape(x, (-1, x.shape[2], x.shape[3]))

    def compute_output_shape(self, input_shape):
        batch, rows = input_shape[0], input_shape[1]
        return (None if batch is None else batch * rows,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchToRows(layers.Layer):
    """(B * H, W, C) -> (B, H, W, C), the inverse of ``RowsToBatch``."""

    def __init__(self, rows: int, **kwargs):
        super().__init__(**kwargs)
        self.rows = rows

    def call(self, x):
        return ops.reshape(x, (-1, self.rows, x.shape[1], x.shape[2]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.rows
        return (batch, self.rows) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "rows": self.rows}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ToCapsules(layers.Layer):
    """(B, H, W, k * dim) -> (B, H * W * k, dim); ``squash`` applies the capsule non-linearity."""

    def __init__(self, dim: int = CAPSULE_DIM, squash: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.squash = squash

    def call(self, x):
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        capsules = ops.reshape(x, (-1, height * width * (channels // self.dim), self.dim))
        return squash(capsules) if self.squash else capsules

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "squash": self.squash}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CapsuleSpatialGate(layers.Layer):
    """Residual spatial gate over the capsule grid: u + u * gate. 102 params.

    Each capsule is summarised by [mean; max] of its values; the summaries lie
    on the (rows, columns x capsules per position) grid the capsules were cut
    from, and a 7x7 conv + BN + ReLU + sigmoid (CBAM's spatial gate) weighs
    each position.
    """

    def __init__(self, rows: int, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.rows = rows
        self.momentum = momentum
        self.conv = layers.Conv2D(1, 7, padding="same", use_bias=False)
        self.norm = layers.BatchNormalization(momentum=momentum)

    def build(self, input_shape):
        columns = input_shape[1] // self.rows
        self.conv.build((None, self.rows, columns, 2))
        self.norm.build((None, self.rows, columns, 1))

    def call(self, u, training=None):
        count = u.shape[1]
        pooled = ops.stack([ops.mean(u, axis=-1), ops.max(u, axis=-1)], axis=-1)  # (B, N, 2)
        grid = ops.reshape(pooled, (-1, self.rows, count // self.rows, 2))
        gate = ops.sigmoid(ops.relu(self.norm(self.conv(grid), training=training)))
        return u + u * ops.reshape(gate, (-1, count, 1))

    def get_config(self):
        return {**super().get_config(), "rows": self.rows, "momentum": self.momentum}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LearnedScale(layers.Layer):
    """x * s with one learned scalar: the "gate" reading's self-attention ablation keeps only its scale."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones")

    def call(self, x):
        return x * self.scale


@keras.saving.register_keras_serializable(package=PACKAGE)
class DynamicRouting(layers.Layer):
    """Routing-by-agreement from N input capsules to ``num_capsules`` outputs.

    One transform per output capsule, shared across inputs: dim x dim x
    num_capsules weights (24,576 for 64 x 64 x 6). ``replace_logits`` is the
    authors' variant: agreement logits replaced each iteration, intermediate
    outputs L2-normalised, squash only after the last iteration; without it,
    Sabour et al.'s accumulated logits with a squash every iteration.
    """

    def __init__(self, num_capsules: int = NUM_OUTPUT_CAPSULES, dim: int = CAPSULE_DIM,
                 iterations: int = ROUTING_ITERATIONS, replace_logits: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_capsules = num_capsules
        self.dim = dim
        self.iterations = iterations
        self.replace_logits = replace_logits

    def build(self, input_shape):
        self.transform = self.add_weight(
            name="transform", shape=(input_shape[-1], self.num_capsules * self.dim), initializer="glorot_uniform"
        )

    def call(self, u):
        count = u.shape[1]
        predictions = ops.reshape(ops.matmul(u, self.transform), (-1, count, self.num_capsules, self.dim))
        logits = ops.zeros_like(predictions[..., 0])  # (B, N, num_capsules)
        for iteration in range(self.iterations):
            coupling = ops.softmax(logits, axis=-1)
            weighted = ops.sum(coupling[..., None] * predictions, axis=1)  # (B, caps, dim)
            last = iteration == self.iterations - 1
            if self.replace_logits:
                outputs = squash(weighted) if last else l2_normalize(weighted)
            else:
                outputs = squash(weighted)
            if not last:
                agreement = ops.sum(predictions * outputs[:, None, :, :], axis=-1)
                logits = agreement if self.replace_logits else logits + agreement
        return outputs

    def get_config(self):
        return {**super().get_config(), "num_capsules": self.num_capsules, "dim": self.dim,
                "iterations": self.iterations, "replace_logits": self.replace_logits}


def squash(s):
    """s * |s| / (1 + |s|^2), the capsule non-linearity, written for int8.

    No DIV and no SQRT: a quantized divisor can round to zero (int8 DIV then
    fails at run time) and SQRT has no int8 kernel. |s| = |s|^2 * rsqrt(|s|^2 + eps)
    and 1 / (1 + |s|^2) = rsqrt(1 + |s|^2)^2 give the same function.
    """
    squared = ops.sum(s * s, axis=-1, keepdims=True)
    norm = squared * ops.rsqrt(squared + SQUASH_EPSILON)
    shrink = ops.rsqrt(1.0 + squared)
    return s * norm * (shrink * shrink)


def l2_normalize(s):
    """s / |s| along the last axis, without DIV (see ``squash``)."""
    return s * ops.rsqrt(ops.sum(s * s, axis=-1, keepdims=True) + SQUASH_EPSILON)


def conv_block(x, *, dilation: int, dropout: float, momentum: float, name: str):
    """Conv2D(64, 3) -> BatchNorm over time rows (axis=1) -> ELU -> AvgPool 2 -> SpatialDropout."""
    x = layers.Conv2D(64, 3, dilation_rate=dilation, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=1, momentum=momentum, name=f"{name}_bn")(x)
    x = layers.ELU(name=f"{name}_elu")(x)
    x = layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    if dropout:
        x = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(x)
    return x


def build_tpmnet(num_classes: int, *, features: FeatureConfig | None = None, ablate: tuple[str, ...] = (),
                 reading: str = "authors", dropout: float = 0.2, head_dropout: float = 0.0,
                 bn_momentum: float = 0.99, head_scale: float = 1.0, name: str = "tpmnet") -> keras.Model:
    """The TPMNet Keras model with two named inputs (forward, backward MFCCs).

    ``ablate`` removes modules for the thesis's ablation study (names in
    ``ABLATIONS``); ``reading`` picks the structure (``READINGS``). The
    training knobs (``dropout`` of the conv blocks, ``head_dropout``,
    ``bn_momentum``, ``head_scale``: a constant on the head's input) add no
    parameter.
    """
    unknown = set(ablate) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablation {sorted(unknown)}; choose from {ABLATIONS}")
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}; choose from {READINGS}")
    features = features or FeatureConfig()
    forward_name, backward_name = features.input_names
    forward_in = keras.Input(shape=features.input_shape, name=forward_name)
    backward_in = keras.Input(shape=features.input_shape, name=backward_name)
    build = _authors_body if reading == "authors" else _gate_body
    pooled = build(forward_in, backward_in, ablate=ablate, dropout=dropout, momentum=bn_momentum)
    if head_dropout:
        pooled = layers.Dropout(head_dropout, name="head_dropout")(pooled)
    if head_scale != 1.0:
        pooled = layers.Rescaling(head_scale, name="head_scale")(pooled)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(pooled)
    return keras.Model([forward_in, backward_in], outputs, name=name)


def _authors_body(forward_in, backward_in, *, ablate, dropout, momentum):
    def cbam(x):
        return x if "cbam" in ablate else shared_cbam(x)

    shared_cbam = CBAM(residual=True, relu_gate=True, momentum=momentum, name="cbam")
    attention = layers.Attention(use_scale=True, name="attention")  # one scale, two uses
    forward = cbam(conv_block(forward_in, dilation=1, dropout=dropout, momentum=momentum, name="forward"))
    backward = cbam(conv_block(backward_in, dilation=1, dropout=dropout, momentum=momentum, name="backward"))
    rows = forward.shape[1]
    cross = attention([RowsToBatch(name="forward_rows")(forward), RowsToBatch(name="backward_rows")(backward)])
    x = layers.Add(name="cross_attention")([forward, BatchToRows(rows, name="cross_rows")(cross)])
    x = cbam(conv_block(x, dilation=2, dropout=dropout, momentum=momentum, name="dcnn"))

    if "dwscnn" not in ablate:
        x = layers.DepthwiseConv2D(3, dilation_rate=2, name="dws_depthwise")(x)
        x = layers.Conv2D(NUM_OUTPUT_CAPSULES * CAPSULE_DIM, 1, name="dws_pointwise")(x)
    grid_rows = x.shape[1]
    capsules = ToCapsules(squash=True, name="capsules")(x)
    gate = CapsuleSpatialGate(grid_rows, momentum=momentum, name="capsule_spatial_attention")
    capsules = gate(capsules)
    if "self_attention" not in ablate:
        attended = layers.LayerNormalization(name="attention_norm")(attention([capsules, capsules]))
        capsules = gate(layers.Multiply(name="attention_gate")([capsules, attended]))
    if "dynamic_routing" not in ablate:
        capsules = DynamicRouting(replace_logits=True, name="dynamic_routing")(capsules)
    return layers.GlobalAveragePooling1D(name="gap")(capsules)


def _gate_body(forward_in, backward_in, *, ablate, dropout, momentum):
    cbam = (lambda x: x) if "cbam" in ablate else CBAM(momentum=momentum, name="cbam")
    forward = cbam(conv_block(forward_in, dilation=1, dropout=dropout, momentum=momentum, name="forward"))
    backward = cbam(conv_block(backward_in, dilation=1, dropout=dropout, momentum=momentum, name="backward"))
    x = CrossGate(name="cross_attention")([forward, backward])
    x = cbam(conv_block(x, dilation=2, dropout=dropout, momentum=momentum, name="dcnn"))

    if "dwscnn" not in ablate:
        x = layers.DepthwiseConv2D(3, name="dws_depthwise")(x)
        x = layers.Conv2D(NUM_OUTPUT_CAPSULES * CAPSULE_DIM, 1, name="dws_pointwise")(x)
    x = SpatialAttention(momentum=momentum, name="capsule_spatial_attention")(x)
    capsules = ToCapsules(name="capsules")(x)

    if "self_attention" in ablate:
        capsules = LearnedScale(name="capsule_scale")(capsules)
    else:
        attended = layers.Attention(use_scale=True, name="self_attention")([capsules, capsules])
        capsules = layers.LayerNormalization(name="attention_norm")(layers.Add()([capsules, attended]))

    if "dynamic_routing" not in ablate:
        capsules = DynamicRouting(name="dynamic_routing")(capsules)
    return layers.GlobalAveragePooling1D(name="gap")(capsules)
