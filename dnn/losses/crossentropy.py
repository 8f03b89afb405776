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

The probability losses take ``from_logits=`` as in Keras (default False, so the
Keras strings ``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``
and ``"binary_crossentropy"`` mean probabilities); ``from_logits=True`` computes
exactly the logits loss (the same function runs). Clipping logits to [ε, 1 − ε]
would train nothing while reporting a loss near 0, so ``fit``/``evaluate`` call
:meth:`check_predictions` on the first batch and refuse outputs that are not
probabilities, naming the loss to use.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.losses.base import Loss, class_targets, register

_EPS = 1e-7
#: how far a probability may stray outside [0, 1] (rounding) before it counts as a logit
_RANGE_TOLERANCE = 1e-5


def _softmax_xent(loss: Loss, y_pred: Any, targets: Any) -> Any:
    xp = backend.xp
    shifted = y_pred - xp.max(y_pred, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = xp.sum(exp, axis=1, keepdims=True)
    loss._cache = (exp / total, targets)
    log_probs = shifted - xp.log(total)
    return -xp.sum(targets * log_probs) / y_pred.shape[0]


def _softmax_xent_gradient(loss: Loss) -> Any:
    probs, targets = loss._cache
    loss._cache = None
    return (probs - targets) * (1.0 / probs.shape[0])


def _sigmoid_bce(loss: Loss, y_pred: Any, targets: Any) -> Any:
    xp = backend.xp
    loss._cache = (y_pred, targets)
    return xp.mean(xp.maximum(y_pred, 0.0) - y_pred * targets + xp.log1p(xp.exp(-xp.abs(y_pred))))


def _sigmoid_bce_gradient(loss: Loss) -> Any:
    logits, targets = loss._cache
    loss._cache = None
    sigmoid = 0.5 * (backend.xp.tanh(0.5 * logits) + 1.0)
    return (sigmoid - targets) / _numel(logits)


def _check_from_logits(loss: Loss, from_logits: Any) -> bool:
    if not isinstance(from_logits, bool):
        raise TypeError(f"{type(loss).__name__}: from_logits must be True or False, "
                        f"got {from_logits!r}")
    return from_logits


def _stats(*values: Any) -> list[float]:
    """Several 0-d device values read to the host with one transfer."""
    xp = backend.xp
    stacked = xp.stack([xp.astype(v, xp.float64) for v in values])
    return [float(v) for v in backend.to_numpy(stacked)]


class _ProbabilityLoss(Loss):
    """A loss on probabilities that can also read logits (``from_logits=True``)."""

    _logits_loss = ""  # the name of the equivalent loss on logits, for messages

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = _check_from_logits(self, from_logits)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits}

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
    :class:`SoftmaxCrossEntropy`); targets are (N,) class indices or (N, C) rows."""

    _logits_loss = "SoftmaxCrossEntropy"

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        targets = class_targets(self, y_pred, y_true)
        if self.from_logits:
            return _softmax_xent(self, y_pred, targets)
        clipped = xp.clip(y_pred, _EPS, 1.0 - _EPS)
        self._cache = (clipped, targets)
        return -xp.sum(targets * xp.log(clipped)) / y_pred.shape[0]

    def gradient(self) -> Any:
        if self.from_logits:
            return _softmax_xent_gradient(self)
        clipped, targets = self._cache
        self._cache = None
        return -targets / (clipped * clipped.shape[0])

    def check_predictions(self, y_pred: Any) -> None:
        """Probabilities: every value in [0, 1] and every row summing to 1 (one host read)."""
        if self.from_logits or y_pred.ndim != 2 or y_pred.shape[0] == 0:
            return
        xp = backend.xp
        classes = int(y_pred.shape[1])
        sums = xp.sum(y_pred, axis=1)
        low, high, off = _stats(xp.min(y_pred), xp.max(y_pred), xp.max(xp.abs(sums - 1.0)))
        if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
            self._refuse(f"has values from {low:.4g} to {high:.4g}, outside [0, 1]",
                         "a Softmax layer")
        # float32 rounding of a softmax row's sum grows with the number of classes
        if not off <= 1e-3 * max(1.0, classes / 1000):
            self._refuse(f"has rows that do not sum to 1 (off by up to {off:.4g})",
                         "a Softmax layer")


@register(aliases=("softmax_cross_entropy",))
class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits), fused and stable: the recommended pairing for a
    model that ends in a plain Dense."""

    from_logits = True

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        return _softmax_xent(self, y_pred, class_targets(self, y_pred, y_true))

    def gradient(self) -> Any:
        return _softmax_xent_gradient(self)


@register(aliases=("binary_crossentropy",))
class BinaryCrossentropy(_ProbabilityLoss):
    """Binary cross-entropy of probabilities, the mean over all elements
    (``from_logits=True``: of logits, exactly as :class:`SigmoidBinaryCrossentropy`)."""

    _logits_loss = "SigmoidBinaryCrossentropy"

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        self._check_same_shape(y_pred, y_true)
        targets = xp.astype(y_true, y_pred.dtype)
        if self.from_logits:
            return _sigmoid_bce(self, y_pred, targets)
        clipped = xp.clip(y_pred, _EPS, 1.0 - _EPS)
        self._cache = (clipped, targets)
        return -xp.mean(targets * xp.log(clipped) + (1.0 - targets) * xp.log(1.0 - clipped))

    def gradient(self) -> Any:
        if self.from_logits:
            return _sigmoid_bce_gradient(self)
        clipped, targets = self._cache
        self._cache = None
        return (clipped - targets) / (clipped * (1.0 - clipped) * _numel(clipped))

    def check_predictions(self, y_pred: Any) -> None:
        """Probabilities: every value in [0, 1] (one host read)."""
        if self.from_logits or _numel(y_pred) == 0:
            return
        xp = backend.xp
        low, high = _stats(xp.min(y_pred), xp.max(y_pred))
        if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
            self._refuse(f"has values from {low:.4g} to {high:.4g}, outside [0, 1]",
                         "a Sigmoid layer")


@register(aliases=("sigmoid_binary_crossentropy",))
class SigmoidBinaryCrossentropy(Loss):
    """Binary cross-entropy of sigmoid(logits), stable (no overflow for large |z|)."""

    from_logits = True

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        self._check_same_shape(y_pred, y_true)
        return _sigmoid_bce(self, y_pred, xp.astype(y_true, y_pred.dtype))

    def gradient(self) -> Any:
        return _sigmoid_bce_gradient(self)


def _numel(x: Any) -> int:
    n = 1
    for d in x.shape:
        n *= d
    return n
