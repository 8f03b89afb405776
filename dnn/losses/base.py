"""The loss protocol: ``loss(y_pred, y_true)`` -> mean loss (0-d array); ``loss.backward()`` -> dL/dy_pred."""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.registry import Registry

#: loss class name or alias (``"mse"``) -> class, for model files and ``compile(loss="...")``
REGISTRY = Registry("loss")


def register(cls: type[Loss] | None = None, *, aliases: tuple[str, ...] = ()) -> Any:
    """Class decorator (``@register`` or ``@register(aliases=("mse",))``): make a loss
    nameable by its class name (and aliases) in ``compile(loss=...)`` and model files."""
    return REGISTRY.register(cls, aliases=aliases)


class Loss:
    """Subclasses implement ``forward`` (returns the mean loss, caches what
    ``gradient`` needs) and ``gradient`` (returns dL/dy_pred of the mean)."""

    #: whether ``y_pred`` is read as logits (raw scores): metrics that threshold binary
    #: outputs (``"binary_accuracy"``) then use 0 instead of 0.5
    from_logits = False

    def __call__(self, y_pred: Any, y_true: Any) -> Any:
        y_true = backend.asarray(y_true) if not backend.is_array(y_true) else y_true
        return self.forward(y_pred, y_true)

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        raise NotImplementedError

    def backward(self) -> Any:
        """dL/dy_pred for the last call; frees the cache."""
        try:
            return self.gradient()
        except (TypeError, AttributeError) as exc:
            if getattr(self, "_cache", None) is not None:
                raise
            raise RuntimeError(
                f"{type(self).__name__}.backward called before a forward call "
                "(or twice for one forward): call loss(y_pred, y_true) first"
            ) from exc

    def gradient(self) -> Any:
        raise NotImplementedError

    def check_predictions(self, y_pred: Any) -> None:
        """Raise ``ValueError`` when ``y_pred`` cannot be what this loss reads (e.g. logits
        given to a loss on probabilities). ``fit`` and ``evaluate`` call it on the model's
        output for the first batch of each call only (it may read the device); the base
        class accepts everything."""

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _check_same_shape(self, y_pred: Any, y_true: Any) -> None:
        if tuple(y_pred.shape) != tuple(y_true.shape):
            raise ShapeError(
                f"{type(self).__name__}: y_true must have the shape of y_pred "
                f"{tuple(y_pred.shape)}, got {tuple(y_true.shape)}"
            )


def class_targets(loss: Loss, y_pred: Any, y_true: Any) -> Any:
    """Targets for a (N, C) prediction as float rows: one-hot from (N,) class indices,
    or the given (N, C) one-hot / probability rows."""
    xp = backend.xp
    if y_pred.ndim != 2:
        raise ShapeError(
            f"{type(loss).__name__}: expected predictions of shape (batch, classes), "
            f"got {tuple(y_pred.shape)}"
        )
    n, classes = y_pred.shape
    if y_true.ndim == 1 and y_true.shape[0] == n:
        if xp.isdtype(y_true.dtype, "real floating"):
            raise ShapeError(
                f"{type(loss).__name__}: class-index targets must be integers, "
                f"got dtype {y_true.dtype}"
            )
        from dnn.backend.ops import one_hot

        return one_hot(y_true, classes, y_pred.dtype)
    if tuple(y_true.shape) == (n, classes):
        return xp.astype(y_true, y_pred.dtype)
    raise ShapeError(
        f"{type(loss).__name__}: expected targets of shape ({n},) (class indices) or "
        f"({n}, {classes}) (one-hot), got {tuple(y_true.shape)}"
    )
