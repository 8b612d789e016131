"""The authors' loss: margin loss (m+ 0.9, m- 0.1, weight 0.5) + 0.392 x MSE, on the softmax output."""

from __future__ import annotations

import keras
from keras import ops

MARGIN_POSITIVE = 0.9
MARGIN_NEGATIVE = 0.1
NEGATIVE_WEIGHT = 0.5
MSE_WEIGHT = 0.392


@keras.saving.register_keras_serializable(package="ser_edge")
class MarginMSELoss(keras.losses.Loss):
    """Capsule margin loss (Sabour et al.) + a weighted MSE, both on probabilities; labels one-hot."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "margin_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        classes = ops.shape(y_true)[-1]
        target = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(classes, y_true.dtype)
        present = ops.square(ops.relu(MARGIN_POSITIVE - y_pred))
        absent = ops.square(ops.relu(y_pred - MARGIN_NEGATIVE))
        margin = ops.sum(target * present + NEGATIVE_WEIGHT * (1.0 - target) * absent, axis=-1)
        return margin + MSE_WEIGHT * ops.mean(ops.square(target - y_pred), axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def margin_mse_loss(label_smoothing: float) -> MarginMSELoss:
    return MarginMSELoss(label_smoothing=label_smoothing)
