"""Losses: ``loss(y_pred, y_true)`` returns the mean loss; ``loss.backward()`` its gradient."""

from __future__ import annotations

from dnn.losses.base import REGISTRY, Loss, class_targets
from dnn.losses.crossentropy import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SigmoidBinaryCrossentropy,
    SoftmaxCrossEntropy,
)
from dnn.losses.regression import MAE, MSE, Huber


def get(loss: str | Loss) -> Loss:
    """A loss by name (``"mse"``, ``"SoftmaxCrossEntropy"``) or the loss itself."""
    if isinstance(loss, Loss):
        return loss
    return REGISTRY.get(loss)()


__all__ = [
    "MAE", "MSE", "REGISTRY", "BinaryCrossentropy", "CategoricalCrossentropy", "Huber", "Loss",
    "SigmoidBinaryCrossentropy", "SoftmaxCrossEntropy", "class_targets", "get",
]
