"""Losses: ``loss(y_pred, y_true)`` returns the mean loss; ``loss.backward()`` its gradient."""

from __future__ import annotations

from typing import Any

from dnn.losses.base import REGISTRY, Loss, class_targets
from dnn.losses.crossentropy import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SigmoidBinaryCrossentropy,
    SoftmaxCrossEntropy,
)
from dnn.losses.regression import MAE, MSE, Huber

ALIASES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": CategoricalCrossentropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "binary_crossentropy": BinaryCrossentropy,
    "sigmoid_binary_crossentropy": SigmoidBinaryCrossentropy,
    "mse": MSE, "mean_squared_error": MSE, "mae": MAE, "mean_absolute_error": MAE,
    "huber": Huber,
}


def get(loss: str | Loss) -> Loss:
    """A loss by name (``"mse"``, ``"SoftmaxCrossEntropy"``) or the loss itself."""
    if isinstance(loss, Loss):
        return loss
    cls: Any = REGISTRY.get(loss) or ALIASES.get(str(loss).lower())
    if cls is None:
        names = sorted(set(REGISTRY) | set(ALIASES))
        raise ValueError(f"unknown loss {loss!r}; valid names are {', '.join(names)}")
    return cls()


__all__ = [
    "MAE", "MSE", "REGISTRY", "BinaryCrossentropy", "CategoricalCrossentropy", "Huber", "Loss",
    "SigmoidBinaryCrossentropy", "SoftmaxCrossEntropy", "class_targets", "get",
]
