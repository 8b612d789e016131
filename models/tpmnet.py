"""TPMNet, the thesis's "Pattern Learning Block" model, in Keras 3.

Parameter counts (tests assert all of them): 95,288 for 7 classes, 95,353 for
8, 95,093 for 4; ablations without DWSCNN 69,688, without CBAM 90,994,
without self-attention 95,160, without dynamic routing 70,712 (7 classes).

Our reading of the thesis (documented in models/README.md):
- two CNN branches (forward and time-reversed MFCCs), each Conv2D(64, 3) ->
  BatchNorm over the time rows (axis=1) -> ELU -> AvgPool 2 -> SpatialDropout;
- one CBAM instance, shared, after each branch and after the dilated CNN;
- parameter-free cross-attention: each flow gates the other with a sigmoid
  (f * sigmoid(b) + b * sigmoid(f)); cheap and integer-friendly;
- dilated Conv2D(64, 3, dilation 2) block, CBAM, then DWSCNN (depthwise 3x3 +
  pointwise 64 -> 384) whose map is spatially attended and cut into 64-d
  capsules (H x W x 6 of them);
- scaled dot-product self-attention over the capsules + residual + LayerNorm;
- dynamic routing (3 iterations) to 6 output capsules, GAP, Dense softmax.
The graph has no division at all (squash uses rsqrt, see ``squash``), so an
int8 conversion cannot divide by zero.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from edge.config import FeatureConfig
from models import ABLATIONS  # noqa: F401  (re-exported: models.tpmnet.ABLATIONS)

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
    """Conv2D(1, 7x7, no bias) + BatchNorm over [mean; max] of channels, sigmoid gate. 102 params."""

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.pool = ChannelPool()
        self.conv = layers.Conv2D(1, kernel_size, padding="same", use_bias=False)
        self.norm = layers.BatchNormalization()

    def build(self, input_shape):
        pooled = tuple(input_shape[:-1]) + (2,)
        self.conv.build(pooled)
        self.norm.build(tuple(input_shape[:-1]) + (1,))

    def call(self, x, training=None):
        gate = ops.sigmoid(self.norm(self.conv(self.pool(x)), training=training))
        return x * gate

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CBAM(layers.Layer):
    """Channel attention (shared MLP on avg- and max-pooled vectors) then spatial attention. 4,294 params for 64 channels."""

    def __init__(self, channels: int = 64, reduction: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.reduction = reduction
        self.hidden = layers.Dense(channels // reduction, activation="relu")
        self.expand = layers.Dense(channels)
        self.spatial = SpatialAttention()

    def build(self, input_shape):
        self.hidden.build((None, self.channels))
        self.expand.build((None, self.channels // self.reduction))
        self.spatial.build(input_shape)

    def call(self, x, training=None):
        average = ops.mean(x, axis=(1, 2))
        maximum = ops.max(x, axis=(1, 2))
        weights = ops.sigmoid(self.expand(self.hidden(average)) + self.expand(self.hidden(maximum)))
        x = x * weights[:, None, None, :]
        return self.spatial(x, training=training)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossGate(layers.Layer):
    """Parameter-free cross-attention: each time flow gates the other."""

    def call(self, inputs):
        forward, backward = inputs
        return forward * ops.sigmoid(backward) + backward * ops.sigmoid(forward)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ToCapsules(layers.Layer):
    """(B, H, W, k * dim) -> (B, H * W * k, dim)."""

    def __init__(self, dim: int = CAPSULE_DIM, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim

    def call(self, x):
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        return ops.reshape(x, (-1, height * width * (channels // self.dim), self.dim))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LearnedScale(layers.Layer):
    """x * s with one learned scalar: the self-attention ablation keeps only its scale."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones")

    def call(self, x):
        return x * self.scale


@keras.saving.register_keras_serializable(package=PACKAGE)
class DynamicRouting(layers.Layer):
    """Routing-by-agreement from N input capsules to ``num_capsules`` outputs.

    One transform per output capsule, shared across inputs: dim x dim x
    num_capsules weights (24,576 for 64 x 64 x 6).
    """

    def __init__(self, num_capsules: int = NUM_OUTPUT_CAPSULES, dim: int = CAPSULE_DIM,
                 iterations: int = ROUTING_ITERATIONS, **kwargs):
        super().__init__(**kwargs)
        self.num_capsules = num_capsules
        self.dim = dim
        self.iterations = iterations

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
            outputs = squash(ops.sum(coupling[..., None] * predictions, axis=1))  # (B, caps, dim)
            if iteration < self.iterations - 1:
                logits = logits + ops.sum(predictions * outputs[:, None, :, :], axis=-1)
        return outputs

    def get_config(self):
        return {**super().get_config(), "num_capsules": self.num_capsules, "dim": self.dim,
                "iterations": self.iterations}


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


def conv_block(x, *, dilation: int, dropout: float, name: str):
    """Conv2D(64, 3) -> BatchNorm over time rows (axis=1) -> ELU -> AvgPool 2 -> SpatialDropout."""
    x = layers.Conv2D(64, 3, dilation_rate=dilation, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=1, name=f"{name}_bn")(x)
    x = layers.ELU(name=f"{name}_elu")(x)
    x = layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    return layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(x)


def build_tpmnet(num_classes: int, *, features: FeatureConfig | None = None, ablate: tuple[str, ...] = (),
                 dropout: float = 0.2, name: str = "tpmnet") -> keras.Model:
    """The TPMNet Keras model with two named inputs (forward, backward MFCCs).

    ``ablate`` removes modules for the thesis's ablation study; names in
    ``ABLATIONS``.
    """
    unknown = set(ablate) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablation {sorted(unknown)}; choose from {ABLATIONS}")
    features = features or FeatureConfig()
    forward_name, backward_name = features.input_names
    forward_in = keras.Input(shape=features.input_shape, name=forward_name)
    backward_in = keras.Input(shape=features.input_shape, name=backward_name)

    cbam = (lambda x: x) if "cbam" in ablate else CBAM(name="cbam")
    forward = cbam(conv_block(forward_in, dilation=1, dropout=dropout, name="forward"))
    backward = cbam(conv_block(backward_in, dilation=1, dropout=dropout, name="backward"))
    x = CrossGate(name="cross_attention")([forward, backward])
    x = cbam(conv_block(x, dilation=2, dropout=dropout, name="dcnn"))

    if "dwscnn" not in ablate:
        x = layers.DepthwiseConv2D(3, name="dws_depthwise")(x)
        x = layers.Conv2D(NUM_OUTPUT_CAPSULES * CAPSULE_DIM, 1, name="dws_pointwise")(x)
    x = SpatialAttention(name="capsule_spatial_attention")(x)
    capsules = ToCapsules(name="capsules")(x)

    if "self_attention" in ablate:
        capsules = LearnedScale(name="capsule_scale")(capsules)
    else:
        attended = layers.Attention(use_scale=True, name="self_attention")([capsules, capsules])
        capsules = layers.LayerNormalization(name="attention_norm")(layers.Add()([capsules, attended]))

    if "dynamic_routing" not in ablate:
        capsules = DynamicRouting(name="dynamic_routing")(capsules)
    pooled = layers.GlobalAveragePooling1D(name="gap")(capsules)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(pooled)
    return keras.Model([forward_in, backward_in], outputs, name=name)
