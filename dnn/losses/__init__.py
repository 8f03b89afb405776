"""Losses: ``loss(y_pred, y_true, sample_weight=None)`` returns the loss reduced as the
loss's ``reduction`` says (``"mean"``: Σᵢ wᵢ·lᵢ / N, the default; ``"sum"``; ``"none"``:
the (N,) vector wᵢ·lᵢ); ``loss.backward()`` its gradient (see :mod:`dnn.losses.base`)."""

from __future__ import annotations

from dnn.losses.base import REDUCTIONS, REGISTRY, Loss, class_targets, sample_weights
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
    "MAE", "MSE", "REDUCTIONS", "REGISTRY", "BinaryCrossentropy", "CategoricalCrossentropy",
    "Huber", "Loss", "SigmoidBinaryCrossentropy", "SoftmaxCrossEntropy", "class_targets", "get",
    "sample_weights",
]
