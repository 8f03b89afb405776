"""Cross-entropy losses for classification, on probabilities or on logits.

With N samples, C classes, t the one-hot (or probability) targets, per-sample
losses lᵢ and their reduction L with weights wᵢ as in :mod:`dnn.losses.base`
(``"mean"``: L = (1/N) Σᵢ wᵢ·lᵢ; ``"sum"``: Σᵢ wᵢ·lᵢ; ``"none"``: wᵢ·lᵢ), and
cᵢ = dL/dlᵢ (wᵢ/N, wᵢ, or gᵢ·wᵢ with an upstream gradient g):

- CategoricalCrossentropy on probabilities p (clipped to [1e-7, 1 − 1e-7] as in
  the NNFS book):  lᵢ = −Σ_c t·log p,   dL/dp = −cᵢ·t / p.
- SoftmaxCrossEntropy on logits z (fused, stable):
  lᵢ = −Σ_c t·(z − logsumexp z),          dL/dz = cᵢ·(softmax(z) − t).
- BinaryCrossentropy on probabilities p, lᵢ the mean over the K elements of sample i:
  lᵢ = −(1/K) Σ_j t·log p + (1 − t)·log(1 − p),  dL/dp = cᵢ·(p − t) / (K·p·(1 − p)).
- SigmoidBinaryCrossentropy on logits z (stable):
  lᵢ = (1/K) Σ_j max(z, 0) − z·t + log(1 + e^−|z|),  dL/dz = cᵢ·(σ(z) − t) / K.

The categorical losses also read (N, ..., C) scores with the classes on the last axis
(per-token logits (N, T, C) of a language model, targets (N, T) class indices): each
position is a row as above and lᵢ is the mean over the sample's K = T positions, so
dL/dz = (cᵢ/K)·(softmax(z) − t) row by row (PyTorch's ``cross_entropy`` on the (N, C, T)
permutation, and Keras' sparse categorical cross-entropy, compute the same).

Unweighted with ``"mean"`` (the default) these are the means over the batch (over all
M = N·K positions or elements): cᵢ/K = 1/M, a Python number.

``label_smoothing=ε`` in [0, 1) replaces the targets before all of the above:
t ← t·(1 − ε) + ε/C for the categorical losses (PyTorch's ``cross_entropy(label_smoothing=ε)``
and Keras), t ← t·(1 − ε) + ε/2 for the binary ones (Keras); for class-index and
one-hot targets alike.

The probability losses take ``from_logits=`` as in Keras (default False, so the
Keras strings ``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``
and ``"binary_crossentropy"`` mean probabilities); ``from_logits=True`` computes
exactly the logits loss (the same function runs). Clipping logits to [ε, 1 − ε]
would train nothing while reporting a loss near 0, so ``fit``/``evaluate`` call
:meth:`check_predictions` on the first batch and refuse outputs that are not
probabilities, naming the loss to use.
"""

from __future__ import annotations

import math
from typing import Any

from dnn import backend
from dnn.losses.base import Loss, class_targets, numel, register, stats

_EPS = 1e-7
#: how far a probability may stray outside [0, 1] (rounding) before it counts as a logit
_RANGE_TOLERANCE = 1e-5


def _softmax_xent(loss: Loss, y_pred: Any, targets: Any) -> Any:
    xp = backend.xp
    shifted = y_pred - xp.max(y_pred, axis=-1, keepdims=True)
    exp = xp.exp(shifted)
    total = xp.sum(exp, axis=-1, keepdims=True)
    loss._cache = (exp / total, targets)
    log_probs = shifted - xp.log(total)
    return -loss._reduce_rows(targets * log_probs)


def _softmax_xent_gradient(loss: Loss) -> Any:
    probs, targets = loss._cache
    loss._cache = None
    return (probs - targets) * loss._scale(tuple(probs.shape), elementwise=False)


def _sigmoid_bce(loss: Loss, y_pred: Any, targets: Any) -> Any:
    xp = backend.xp
    loss._cache = (y_pred, targets)
    return loss._reduce_elements(
        xp.maximum(y_pred, 0.0) - y_pred * targets + xp.log1p(xp.exp(-xp.abs(y_pred))))


def _sigmoid_bce_gradient(loss: Loss) -> Any:
    logits, targets = loss._cache
    loss._cache = None
    sigmoid = 0.5 * (backend.xp.tanh(0.5 * logits) + 1.0)
    return (sigmoid - targets) * loss._scale(tuple(logits.shape), elementwise=True)


def _check_from_logits(loss: Loss, from_logits: Any) -> bool:
    if not isinstance(from_logits, bool):
        raise TypeError(f"{type(loss).__name__}: from_logits must be True or False, "
                        f"got {from_logits!r}")
    return from_logits


def _check_label_smoothing(loss: Loss, label_smoothing: Any) -> float:
    name = type(loss).__name__
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)):
        raise TypeError(f"{name}: label_smoothing must be a number in [0, 1), "
                        f"got {label_smoothing!r}")
    if not (math.isfinite(label_smoothing) and 0 <= label_smoothing < 1):
        raise ValueError(f"{name}: label_smoothing must be in [0, 1) (0: none; 1 would "
                         f"leave only the uniform target), got {label_smoothing!r}")
    return float(label_smoothing)


def _smooth(targets: Any, label_smoothing: float, classes: int) -> Any:
    """t·(1 − ε) + ε/classes (unchanged for ε = 0)."""
    if not label_smoothing:
        return targets
    return targets * (1.0 - label_smoothing) + label_smoothing / classes


class _CrossEntropy(Loss):
    """A cross-entropy: ``label_smoothing`` and ``reduction``."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.label_smoothing = _check_label_smoothing(self, label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing, **super().get_config()}


class _ProbabilityLoss(_CrossEntropy):
    """A loss on probabilities that can also read logits (``from_logits=True``)."""

    _logits_loss = ""  # the name of the equivalent loss on logits, for messages

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 reduction: str = "mean") -> None:
        super().__init__(label_smoothing, reduction)
        self.from_logits = _check_from_logits(self, from_logits)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, **super().get_config()}

    def _refuse(self, what: str, fix: str) -> None:
        name = type(self).__name__
        raise ValueError(
            f"{name}(from_logits=False) reads y_pred as probabilities, but the model's output "
            f"on the first batch {what}: it looks like logits (raw scores), which this loss "
            f"would clip to [{_EPS:g}, 1 - {_EPS:g}] and train nothing. Use "
            f"{name}(from_logits=True) or {self._logits_loss} (the stable loss on logits), "
            f"or end the model with {fix}"
        )


@register(aliases=("categorical_crossentropy", "sparse_categorical_crossentropy"))
class CategoricalCrossentropy(_ProbabilityLoss):
    """Cross-entropy of (N, C) probability rows (``from_logits=True``: of logits, exactly as
    :class:`SoftmaxCrossEntropy`); targets are (N,) class indices or (N, C) rows. (N, ..., C)
    predictions take (N, ...) indices or (N, ..., C) rows, one row per position."""

    _logits_loss = "SoftmaxCrossEntropy"

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        targets = _smooth(class_targets(self, y_pred, y_true), self.label_smoothing, y_pred.shape[-1])
        if self.from_logits:
            return _softmax_xent(self, y_pred, targets)
        clipped = xp.clip(y_pred, _EPS, 1.0 - _EPS)
        self._cache = (clipped, targets)
        return -self._reduce_rows(targets * xp.log(clipped))

    def gradient(self) -> Any:
        if self.from_logits:
            return _softmax_xent_gradient(self)
        clipped, targets = self._cache
        self._cache = None
        return targets / clipped * -self._scale(tuple(clipped.shape), elementwise=False)

    def check_predictions(self, y_pred: Any) -> None:
        """Probabilities: every value in [0, 1] and every row summing to 1 (one host read)."""
        if self.from_logits or y_pred.ndim < 2 or numel(tuple(y_pred.shape)) == 0:
            return
        xp = backend.xp
        classes = int(y_pred.shape[-1])
        sums = xp.sum(y_pred, axis=-1)
        low, high, off = stats(xp.min(y_pred), xp.max(y_pred), xp.max(xp.abs(sums - 1.0)))
        if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
            self._refuse(f"has values from {low:.4g} to {high:.4g}, outside [0, 1]",
                         "a Softmax layer")
        # float32 rounding of a softmax row's sum grows with the number of classes
        if not off <= 1e-3 * max(1.0, classes / 1000):
            self._refuse(f"has rows that do not sum to 1 (off by up to {off:.4g})",
                         "a Softmax layer")


@register(aliases=("softmax_cross_entropy",))
class SoftmaxCrossEntropy(_CrossEntropy):
    """Cross-entropy of softmax(logits), fused and stable: the recommended pairing for a
    model that ends in a plain Dense. Logits (N, C) take (N,) class indices or (N, C) rows;
    per-position logits (N, ..., C) take (N, ...) indices or (N, ..., C) rows, and the loss
    of a sample is the mean over its positions."""

    from_logits = True

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        targets = class_targets(self, y_pred, y_true)
        return _softmax_xent(self, y_pred, _smooth(targets, self.label_smoothing, y_pred.shape[-1]))

    def gradient(self) -> Any:
        return _softmax_xent_gradient(self)


@register(aliases=("binary_crossentropy",))
class BinaryCrossentropy(_ProbabilityLoss):
    """Binary cross-entropy of probabilities, per sample the mean over its elements
    (``from_logits=True``: of logits, exactly as :class:`SigmoidBinaryCrossentropy`)."""

    _logits_loss = "SigmoidBinaryCrossentropy"

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        self._check_same_shape(y_pred, y_true)
        targets = _smooth(xp.astype(y_true, y_pred.dtype), self.label_smoothing, 2)
        if self.from_logits:
            return _sigmoid_bce(self, y_pred, targets)
        clipped = xp.clip(y_pred, _EPS, 1.0 - _EPS)
        self._cache = (clipped, targets)
        return -self._reduce_elements(targets * xp.log(clipped) + (1.0 - targets) * xp.log(1.0 - clipped))

    def gradient(self) -> Any:
        if self.from_logits:
            return _sigmoid_bce_gradient(self)
        clipped, targets = self._cache
        self._cache = None
        scale = self._scale(tuple(clipped.shape), elementwise=True)
        return (clipped - targets) / (clipped * (1.0 - clipped)) * scale

    def check_predictions(self, y_pred: Any) -> None:
        """Probabilities: every value in [0, 1] (one host read)."""
        if self.from_logits or numel(tuple(y_pred.shape)) == 0:
            return
        xp = backend.xp
        low, high = stats(xp.min(y_pred), xp.max(y_pred))
        if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
            self._refuse(f"has values from {low:.4g} to {high:.4g}, outside [0, 1]",
                         "a Sigmoid layer")


@register(aliases=("sigmoid_binary_crossentropy",))
class SigmoidBinaryCrossentropy(_CrossEntropy):
    """Binary cross-entropy of sigmoid(logits), stable (no overflow for large |z|)."""

    from_logits = True

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        self._check_same_shape(y_pred, y_true)
        return _sigmoid_bce(self, y_pred, _smooth(xp.astype(y_true, y_pred.dtype),
                                                  self.label_smoothing, 2))

    def gradient(self) -> Any:
        return _sigmoid_bce_gradient(self)
