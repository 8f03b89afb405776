"""The layer protocol every building block follows.

A layer maps ``x`` to ``y = f(x)`` in :meth:`Layer.forward`, caching only what
its backward needs, and maps ``grad = dL/dy`` to ``dL/dx`` in
:meth:`Layer.backward`, setting ``p.grad = dL/dp`` for each of its parameters
(overwriting, never accumulating) and dropping its cache.

Layers are registered by class name in :data:`REGISTRY` so that a model file
names them as plain strings and loading never imports names from a file.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.parameter import Parameter

#: layer type name -> class; the only way a model file can name a layer
REGISTRY: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer type loadable from model files by its name."""
    REGISTRY[cls.__name__] = cls
    return cls


class Layer:
    """Base class: override ``forward`` and ``backward``; parameters are found by attribute."""

    #: parameter attribute names, in the stable order of ``parameters()``
    param_names: tuple[str, ...] = ()
    #: non-trainable state saved with the model (e.g. BatchNorm running stats)
    buffer_names: tuple[str, ...] = ()

    def forward(self, x: Any, *, training: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any, *, training: bool = False) -> Any:
        return self.forward(x, training=training)

    # ------------------------------------------------------------ parameters
    def parameters(self) -> list[Parameter]:
        """This layer's parameters in a stable order."""
        return [getattr(self, n) for n in self.param_names]

    def regularization_loss(self) -> Any:
        """Penalty this layer adds to the loss (l1/l2); 0.0 when it has none."""
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers by name (backend arrays, not copies)."""
        state = {n: getattr(self, n).data for n in self.param_names}
        state.update({n: getattr(self, n) for n in self.buffer_names})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy arrays (NumPy or backend) into this layer's parameters and buffers."""
        expected = set(self.param_names) | set(self.buffer_names)
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise KeyError(
                f"{self.describe()}.load_state_dict: missing keys {sorted(missing)}, "
                f"unexpected keys {sorted(unexpected)}"
            )
        for key in self.param_names + self.buffer_names:
            current = getattr(self, key).data if key in self.param_names else getattr(self, key)
            value = backend.asarray(state[key], dtype=current.dtype)
            if tuple(value.shape) != tuple(current.shape):
                raise ShapeError(
                    f"{self.describe()}.load_state_dict: {key!r} expected shape "
                    f"{tuple(current.shape)}, got {tuple(value.shape)}"
                )
            current[...] = value  # in place: keeps flat-buffer views valid

    # ------------------------------------------------------------ description
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-able values (used by model files)."""
        return {}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for an input shape (batch dimension included)."""
        return input_shape

    def describe(self) -> str:
        """How errors name this layer, e.g. ``Dense(784->10)`` or ``layer 2 (Dense)``."""
        return getattr(self, "_label", None) or type(self).__name__

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
