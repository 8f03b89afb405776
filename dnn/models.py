"""Classic single-neuron models: the perceptron and logistic regression.

:class:`Perceptron` — Rosenblatt's learning rule (1958), not gradient descent.
For each sample in turn, with labels t ∈ {0, 1} and ŷ = step(w·x + b):

    w ← w + lr·(t − ŷ)·x,    b ← b + lr·(t − ŷ)

Weights change only on mistakes. If the two classes are linearly separable
the rule stops making mistakes after finitely many updates (Novikoff's
theorem); otherwise it never settles, so :meth:`Perceptron.fit` stops after
``max_epochs``, keeps the weights with the fewest training errors (the
"pocket" variant) and reports ``converged=False`` with a warning.

:func:`logistic_regression` — the same neuron with a sigmoid instead of the
step, trained by gradient descent on the binary cross-entropy: a one-layer
network, ``Dense(in, 1) → Sigmoid``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from dnn import backend, losses, optim
from dnn.backend import random
from dnn.layers import Dense, Sigmoid
from dnn.model import Sequential


class ConvergenceWarning(UserWarning):
    """The perceptron did not separate the training data (it may not be separable)."""


@dataclass
class PerceptronResult:
    """``converged``: a whole epoch with no mistakes; ``epochs``: epochs run;
    ``errors``: training mistakes after each epoch (with that epoch's weights)."""

    converged: bool
    epochs: int
    errors: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.converged


class Perceptron:
    """A single threshold neuron trained with the perceptron rule.

    ``fit(x, y)`` takes (N, D) inputs and (N,) labels with two distinct values
    (0/1, −1/+1, or any two); ``predict`` returns labels in the same values.
    The per-sample rule is inherently sequential, so ``fit`` loops over the
    samples, but every update stays on the device; the host reads one number
    per epoch (the error count).
    """

    def __init__(self, in_features: int, lr: float = 1.0, max_epochs: int = 100,
                 shuffle: bool = True, seed: int | None = None) -> None:
        if not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"Perceptron: in_features must be a positive int, got {in_features!r}")
        if not lr > 0:
            raise ValueError(f"Perceptron: lr must be > 0, got {lr!r}")
        self.in_features, self.lr, self.max_epochs = in_features, float(lr), int(max_epochs)
        self.shuffle, self.seed = shuffle, seed
        xp = backend.xp
        self.weight = xp.zeros((in_features,), dtype=backend.default_dtype())
        self.bias = xp.zeros((), dtype=backend.default_dtype())
        self.classes: tuple[float, float] = (0.0, 1.0)
        self.converged = False
        self.epochs = 0

    def decision_function(self, x: Any) -> Any:
        """w·x + b for each row of x (positive: the second class)."""
        x = self._inputs(x)
        return x @ self.weight + self.bias

    def predict(self, x: Any) -> Any:
        """Labels (in the values ``fit`` saw) for each row of x."""
        xp = backend.xp
        positive = self.decision_function(x) > 0
        low, high = self.classes
        dtype = self.weight.dtype
        return xp.where(positive, xp.asarray(high, dtype=dtype), xp.asarray(low, dtype=dtype))

    def score(self, x: Any, y: Any) -> float:
        """Accuracy on (x, y)."""
        xp = backend.xp
        t = self._targets(backend.asarray(y))
        wrong = xp.sum(xp.astype((self.decision_function(x) > 0) != (t > 0.5), xp.int64))
        return 1.0 - int(wrong) / t.shape[0]

    def fit(self, x: Any, y: Any, max_epochs: int | None = None) -> PerceptronResult:
        """Train until an epoch makes no mistakes or ``max_epochs`` pass.

        Returns a :class:`PerceptronResult` (truthy when converged). When it
        does not converge, the weights with the fewest training errors are
        kept and a :class:`ConvergenceWarning` says so.
        """
        xp = backend.xp
        x = self._inputs(x)
        y = backend.asarray(y)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"Perceptron.fit: y must be ({x.shape[0]},) labels, got shape {tuple(y.shape)}")
        values = backend.to_numpy(xp.unique_values(y)).tolist()
        if len(values) > 2:
            raise ValueError(f"Perceptron.fit: expected two classes, got {len(values)} label values")
        self.classes = (float(values[0]), float(values[-1])) if len(values) == 2 else (
            (float(values[0]) - 1.0, float(values[0])))
        t = self._targets(y)
        if self.seed is not None:
            random.manual_seed(self.seed)
        rows = [x[i, ...] for i in range(x.shape[0])]
        targets = [t[i] for i in range(x.shape[0])]
        best_errors, best = None, (self.weight, self.bias)
        errors: list[int] = []
        self.converged = False
        epochs = max_epochs or self.max_epochs
        for _ in range(epochs):
            order = (backend.to_numpy(random.permutation(len(rows))).tolist() if self.shuffle
                     else range(len(rows)))
            for i in order:
                # (t − ŷ) is −1, 0 or +1: a mistake moves the boundary towards the sample
                step = (targets[i] - xp.astype(rows[i] @ self.weight + self.bias > 0, t.dtype)) * self.lr
                self.weight = self.weight + step * rows[i]
                self.bias = self.bias + step
            wrong = int(xp.sum(xp.astype((x @ self.weight + self.bias > 0) != (t > 0.5), xp.int64)))
            errors.append(wrong)
            if best_errors is None or wrong < best_errors:
                best_errors, best = wrong, (self.weight, self.bias)
            if wrong == 0:
                self.converged = True
                break
        self.epochs = len(errors)
        if not self.converged:
            self.weight, self.bias = best
            warnings.warn(
                f"Perceptron did not converge in {self.epochs} epochs: {errors[-1]} of {x.shape[0]} "
                f"training samples still misclassified; the data may not be linearly separable. "
                f"Kept the best weights seen ({best_errors} errors).",
                ConvergenceWarning, stacklevel=2,
            )
        return PerceptronResult(self.converged, self.epochs, errors)

    def _inputs(self, x: Any) -> Any:
        xp = backend.xp
        x = backend.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Perceptron: expected inputs of shape (N, {self.in_features}), "
                             f"got {tuple(x.shape)}")
        return x if x.dtype == self.weight.dtype else xp.astype(x, self.weight.dtype)

    def _targets(self, y: Any) -> Any:
        """Labels as 0./1. in the weights' dtype (1 for the larger class value)."""
        xp = backend.xp
        y = xp.astype(y, self.weight.dtype)
        return xp.astype(y == self.classes[1], self.weight.dtype)

    def __repr__(self) -> str:
        return (f"Perceptron(in_features={self.in_features}, lr={self.lr}, "
                f"converged={self.converged}, epochs={self.epochs})")


def logistic_regression(in_features: int, l2: float = 0.0, lr: float = 0.1,
                        optimizer: str | optim.Optimizer | None = None,
                        compile: bool = True) -> Sequential:
    """Logistic regression as a one-layer network: p = σ(x·w + b), ``Dense(in, 1) → Sigmoid``.

    Trained by gradient descent on the binary cross-entropy (its loss is
    convex, unlike a deeper network's). ``l2`` adds l2·Σw² to the loss.
    With ``compile=True`` (default) it comes compiled with
    ``BinaryCrossentropy``, ``optimizer`` (default ``SGD(lr)``) and the
    ``accuracy`` metric, ready for ``fit(x, y)`` with (N, 1) 0/1 targets.
    """
    model = Sequential([Dense(in_features, 1, init="zeros", l2=l2), Sigmoid()])
    if compile:
        model.compile(loss=losses.BinaryCrossentropy(),
                      optimizer=optimizer if optimizer is not None else optim.SGD(lr=lr),
                      metrics=["accuracy"])
    return model


__all__ = ["ConvergenceWarning", "Perceptron", "PerceptronResult", "logistic_regression"]
