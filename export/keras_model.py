"""Load a trained TPMNet .keras file and its sidecar JSON, checking that it is one."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError


@dataclass
class TrainedModel:
    model: object  # keras.Model
    path: Path
    info: dict  # the sidecar written by ser-train (labels, features, figures)
    features: FeatureConfig
    label_names: tuple[str, ...]


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def load_trained_model(path: str | Path) -> TrainedModel:
    path = Path(path)
    if not path.is_file():
        raise SerEdgeError(f"{path}: no such model file")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise SerEdgeError(f"{path}: not a Keras model (.keras zip archive)")
    info_path = sidecar_path(path)
    if not info_path.is_file():
        raise SerEdgeError(f"{info_path}: missing; ser-train writes it beside the model (labels, features)")
    try:
        info = json.loads(info_path.read_text())
        features = FeatureConfig.from_dict(info["features"])
        label_names = tuple(info["label_names"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SerEdgeError(f"{info_path}: not a ser-train model description ({error})") from None

    import keras

    import ser_edge.models.tpmnet  # noqa: F401  registers the custom layers

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise SerEdgeError(f"{path}: cannot load Keras model ({str(error).splitlines()[0]})") from None
    check_architecture(model, features, label_names, path)
    return TrainedModel(model, path, info, features, label_names)


def check_architecture(model, features: FeatureConfig, label_names: tuple[str, ...], path: Path) -> None:
    """A TPMNet has two named inputs of the feature shape and a softmax over the labels."""
    names = tuple(tensor.name.split(":")[0] for tensor in model.inputs)
    if sorted(names) != sorted(features.input_names):
        raise SerEdgeError(f"{path}: inputs {names} are not a TPMNet's {features.input_names}")
    for tensor in model.inputs:
        if tuple(tensor.shape[1:]) != features.input_shape:
            raise SerEdgeError(f"{path}: input shape {tuple(tensor.shape[1:])} != {features.input_shape}")
    outputs = model.outputs[0].shape[-1]
    if outputs != len(label_names):
        raise SerEdgeError(f"{path}: model has {outputs} outputs but {len(label_names)} labels")
    if not any(layer.name == "dynamic_routing" or layer.name == "gap" for layer in model.layers):
        raise SerEdgeError(f"{path}: not a TPMNet (no capsule / GAP head)")
