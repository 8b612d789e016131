"""TPMNet's parameter counts (thesis Table 1 and ablations), named inputs, builtin-only ops, splits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="needs the train extra: pip install '.[train]'")

from ser_edge.edge.config import FeatureConfig  # noqa: E402
from ser_edge.models import READINGS  # noqa: E402
from ser_edge.models.splits import make_folds  # noqa: E402
from ser_edge.models.tpmnet import build_tpmnet, squash  # noqa: E402

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of `-m "not slow"`

CONFIG = FeatureConfig()


@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize("classes, params", [(7, 95_288), (8, 95_353), (4, 95_093)])
def test_total_parameters(reading, classes, params):
    assert build_tpmnet(classes, reading=reading).count_params() == params


@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize("ablate, params", [
    ("dwscnn", 69_688), ("cbam", 90_994), ("self_attention", 95_160), ("dynamic_routing", 70_712),
])
def test_ablation_parameters(reading, ablate, params):
    assert build_tpmnet(7, reading=reading, ablate=(ablate,)).count_params() == params


@pytest.mark.parametrize("reading", READINGS)
def test_training_knobs_add_no_parameter(reading):
    knobs = build_tpmnet(8, reading=reading, dropout=0.0, head_dropout=0.2, bn_momentum=0.9, head_scale=20.0)
    assert knobs.count_params() == 95_353


def test_authors_reading_modules():
    model = build_tpmnet(7, reading="authors")
    count = {layer.name: layer.count_params() for layer in model.layers}
    assert count["forward_conv"] + count["forward_bn"] == 1_416
    assert count["dcnn_conv"] + count["dcnn_bn"] == 37_300
    assert count["cbam"] == 4_294
    assert count["dws_depthwise"] + count["dws_pointwise"] == 25_600
    assert count["capsule_spatial_attention"] == 102
    assert count["attention"] == 1  # one scale, shared by the cross- and the self-attention
    assert count["attention_norm"] == 128
    assert count["dynamic_routing"] == 24_576
    layers = {layer.name: layer for layer in model.layers}
    # Dilation 2 in the depthwise conv: a 42 x 3 map, 756 capsules of 64 (not 1,320).
    assert tuple(layers["capsules"].output.shape[1:]) == (756, 64)
    assert tuple(layers["dws_depthwise"].output.shape[1:]) == (42, 3, 64)
    # The shared attention and the capsule gate are each one layer used twice.
    assert len(layers["attention"]._inbound_nodes) == 2
    assert len(layers["capsule_spatial_attention"]._inbound_nodes) == 2
    assert len(layers["cbam"]._inbound_nodes) == 3


def test_authors_routing_replaces_logits():
    from ser_edge.models.tpmnet import DynamicRouting

    rng = np.random.default_rng(3)
    u = rng.standard_normal((2, 30, 64)).astype("float32")
    layer = DynamicRouting(replace_logits=True)
    layer.build(u.shape)
    w = np.asarray(layer.transform)
    predictions = (u @ w).reshape(2, 30, 6, 64)
    logits = np.zeros((2, 30, 6))
    for iteration in range(3):
        coupling = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        s = (coupling[..., None] * predictions).sum(1)
        norm = np.linalg.norm(s, axis=-1, keepdims=True)
        v = s * norm / (1 + norm**2) if iteration == 2 else s / norm
        logits = (predictions * v[:, None]).sum(-1)  # replaced, not accumulated
    np.testing.assert_allclose(np.asarray(layer(u)), v, rtol=2e-3, atol=2e-5)


def test_module_parameters():
    model = build_tpmnet(7, reading="gate")
    count = {layer.name: layer.count_params() for layer in model.layers}
    assert count["forward_conv"] + count["forward_bn"] == 1_416
    assert count["backward_conv"] + count["backward_bn"] == 1_416
    assert count["dcnn_conv"] + count["dcnn_bn"] == 37_300
    assert count["cbam"] == 4_294
    assert count["capsule_spatial_attention"] == 102
    assert count["dws_depthwise"] + count["dws_pointwise"] == 25_600
    assert count["self_attention"] == 1
    assert count["attention_norm"] == 128
    assert count["dynamic_routing"] == 24_576
    assert count["emotion"] == 455
    # One CBAM instance, shared by the two branches and the DCNN.
    assert sum(1 for layer in model.layers if layer.name == "cbam") == 1


def test_named_inputs_and_output():
    model = build_tpmnet(8)
    assert [t.name.split(":")[0] for t in model.inputs] == list(CONFIG.input_names)
    assert all(tuple(t.shape[1:]) == CONFIG.input_shape for t in model.inputs)
    rng = np.random.default_rng(0)
    batch = {name: rng.standard_normal((2, *CONFIG.input_shape)).astype("float32") for name in CONFIG.input_names}
    probabilities = np.asarray(model(batch, training=False))
    assert probabilities.shape == (2, 8)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_squash_matches_its_definition():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((3, 6, 64)).astype("float32") * rng.uniform(0.01, 5, (3, 6, 1)).astype("float32")
    norm = np.linalg.norm(s, axis=-1, keepdims=True)
    expected = s * norm / (1 + norm**2)
    np.testing.assert_allclose(np.asarray(squash(s)), expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(squash(np.zeros((1, 6, 64), "float32")))))


@pytest.mark.parametrize("reading", READINGS)
def test_every_op_is_a_tflite_builtin(reading):
    # Parity of the converted model with Keras on real features: tests/test_train_export.py.
    import tensorflow as tf

    model = build_tpmnet(8, reading=reading, dropout=0.0, bn_momentum=0.9, head_scale=20.0)
    spec = [tf.TensorSpec((1, *CONFIG.input_shape), tf.float32, name=n) for n in CONFIG.input_names]
    function = tf.function(lambda f, b: model({"forward": f, "backward": b}, training=False), input_signature=spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no SELECT_TF_OPS: fails on Flex
    assert len(converter.convert()) > 0


@pytest.mark.parametrize("split", ["random", "speaker"])
def test_folds_never_leak_test_items(split):
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(7), 30)
    speakers = np.array([f"s{i % 10}" for i in range(labels.size)])
    rng.shuffle(speakers)
    folds = make_folds(labels, speakers, folds=5, split=split, seed=42)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested) == list(range(labels.size))  # every item tested exactly once
    for fold in folds:
        assert not set(fold.test) & set(fold.train)
        assert not set(fold.test) & set(fold.validation)
        assert not set(fold.train) & set(fold.validation)
        assert len(fold.train) + len(fold.validation) + len(fold.test) == labels.size
        if split == "speaker":
            test_speakers = set(speakers[fold.test])
            assert not test_speakers & set(speakers[fold.train]) and not test_speakers & set(speakers[fold.validation])
            assert not set(speakers[fold.validation]) & set(speakers[fold.train])
    assert make_folds(labels, speakers, folds=5, split=split, seed=42)[0].test.tolist() == folds[0].test.tolist()
