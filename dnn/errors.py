"""Exceptions that ``dnn`` raises for problems the user can fix."""


class BackendError(RuntimeError):
    """A known backend cannot be used here (not installed, no GPU)."""


class SerializationError(ValueError):
    """A model file is truncated, corrupted, foreign or does not fit the model."""


class ShapeError(ValueError):
    """An array given to a layer, loss or model has the wrong shape or dtype."""
