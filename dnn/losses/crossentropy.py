"""Cross-entropy losses for classification, on probabilities or on logits.

With N samples, C classes, t the one-hot (or probability) targets:

- CategoricalCrossentropy on probabilities p (clipped to [1e-7, 1 − 1e-7] as in
  the NNFS book):  L = −(1/N) Σ t·log p,   dL/dp = −t / (N·p).
- SoftmaxCrossEntropy on logits z (fused, stable):
  L = −(1/N) Σ t·(z − logsumexp z),          dL/dz = (softmax(z) − t) / N.
- BinaryCrossentropy on probabilities p, mean over all M elements:
  L = −(1/M) Σ t·log p + (1 − t)·log(1 − p),  dL/dp = (p − t) / (M·p·(1 − p)).
- SigmoidBinaryCrossentropy on logits z (stable):
  L = (1/M) Σ max(z, 0) − z·t + log(1 + e^−|z|),  dL/dz = (σ(z) − t) / M.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.losses.base import Loss, class_targets, register

_EPS = 1e-7


@register(aliases=("categorical_crossentropy", "sparse_categorical_crossentropy"))
class CategoricalCrossentropy(Loss):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        targets = class_targets(self, y_pred, y_true)
        clipped = xp.clip(y_pred, _EPS, 1.0 - _EPS)
        self._cache = (clipped, targets)
        return -xp.sum(targets * xp.log(clipped)) / y_pred.shape[0]

    def gradient(self) -> Any:
        clipped, targets = self._cache
        self._cache = None
        return -targets / (clipped * clipped.shape[0])


@register(aliases=("softmax_cross_entropy",))
class SoftmaxCrossEntropy(Loss):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        targets = class_targets(self, y_pred, y_true)
        shifted = y_pred - xp.max(y_pred, axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = xp.sum(exp, axis=1, keepdims=True)
        self._cache = (exp / total, targets)
        log_probs = shifted - xp.log(total)
        return -xp.sum(targets * log_probs) / y_pred.shape[0]

    def gradient(self) -> Any:
        probs, targets = self._cache
        self._cache = None
        return (probs - targets) * (1.0 / probs.shape[0])


@register(aliases=("binary_crossentropy",))
class BinaryCrossentropy(Loss):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        self._check_same_shape(y_pred, y_true)
        targets = xp.astype(y_true, y_pred.dtype)
        clipped = xp.clip(y_pred, _EPS, 1.0 - _EPS)
        self._cache = (clipped, targets)
        return -xp.mean(targets * xp.log(clipped) + (1.0 - targets) * xp.log(1.0 - clipped))

    def gradient(self) -> Any:
        clipped, targets = self._cache
        self._cache = None
        return (clipped - targets) / (clipped * (1.0 - clipped) * _numel(clipped))


@register(aliases=("sigmoid_binary_crossentropy",))
class SigmoidBinaryCrossentropy(Loss):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        self._check_same_shape(y_pred, y_true)
        targets = xp.astype(y_true, y_pred.dtype)
        self._cache = (y_pred, targets)
        return xp.mean(
            xp.maximum(y_pred, 0.0) - y_pred * targets + xp.log1p(xp.exp(-xp.abs(y_pred)))
        )

    def gradient(self) -> Any:
        logits, targets = self._cache
        self._cache = None
        sigmoid = 0.5 * (backend.xp.tanh(0.5 * logits) + 1.0)
        return (sigmoid - targets) / _numel(logits)


def _numel(x: Any) -> int:
    n = 1
    for d in x.shape:
        n *= d
    return n
