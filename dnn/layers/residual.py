"""Residual (skip) connection around any layer (He et al. 2016).

Forward:  y = x + F(x)             F = ``block``, any Layer whose output has the
                                   input's shape (e.g. a Sequential Dense-ReLU-Dense)
Backward: dL/dx = g + F.backward(g)        (the identity path passes g unchanged);
          the block sets its own parameters' gradients.

``parameters()`` are the block's; ``state_dict`` keys are the block's prefixed
with ``"block."`` (``"block.0.weight"`` for a Sequential block), so a model
holding a Residual at index 2 saves ``"2.block.0.weight"``. ``get_config()``
describes the block as ``{"type": name, "config": ...}`` — the nested format of
``Sequential.get_config`` — and the constructor accepts that dict, rebuilding
the block only from registered layer types (:func:`layer_from_spec`).
Residual itself caches nothing; the block caches what it needs.
"""

from __future__ import annotations

from typing import Any

from dnn.errors import ShapeError
from dnn.layers.base import REGISTRY, Layer, register
from dnn.parameter import Parameter


def layer_from_spec(spec: dict[str, Any]) -> Layer:
    """Build a layer from ``{"type": name, "config": {...}}`` using only :data:`REGISTRY`.

    Nested specs are rebuilt too: a ``"layers"`` list (Sequential) and, through
    Residual's own constructor, a ``"block"``. Never imports or evaluates anything
    named by the spec.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ValueError(f"layer spec must be a dict with a 'type' name, got {spec!r}")
    name = spec["type"]
    if name not in REGISTRY:
        raise ValueError(f"unknown layer type {name!r}; known types are {', '.join(sorted(REGISTRY))}")
    config = spec.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"layer spec {name!r}: 'config' must be a dict, got {type(config).__name__}")
    config = dict(config)
    if isinstance(config.get("layers"), list):
        config["layers"] = [layer_from_spec(s) if isinstance(s, dict) else s for s in config["layers"]]
    return REGISTRY[name](**config)


@register
class Residual(Layer):
    def __init__(self, block: Layer | dict[str, Any]) -> None:
        if isinstance(block, dict):
            block = layer_from_spec(block)
        if not isinstance(block, Layer):
            raise TypeError(f"Residual: block must be a dnn.layers.Layer, got {type(block).__name__}")
        self.block = block
        self._label_text: str | None = None
        self._label = None  # names the block's layers "Residual > block layer i (...)"

    # ``Sequential.add`` sets ``_label``; pass it on so errors inside the block name both
    @property
    def _label(self) -> str | None:
        return self._label_text

    @_label.setter
    def _label(self, text: str | None) -> None:
        self._label_text = text
        inner = getattr(self.block, "layers", None)
        prefix = f"{text} > " if text else "Residual > "
        if isinstance(inner, list):
            for i, layer in enumerate(inner):
                layer._label = f"{prefix}block layer {i} ({type(layer).__name__})"
        else:
            self.block._label = f"{prefix}block ({type(self.block).__name__})"

    @property
    def in_features(self) -> int | None:
        """The block's input width where it has one (lets ``summary`` guess the input shape)."""
        first = self.block
        while getattr(first, "layers", None):
            first = first.layers[0]
        return getattr(first, "in_features", None)

    def forward(self, x: Any, *, training: bool = False) -> Any:
        out = self.block.forward(x, training=training)
        if tuple(out.shape) != tuple(x.shape):
            raise ShapeError(
                f"{self.describe()}: the block must keep the input's shape {tuple(x.shape)}, "
                f"its output has shape {tuple(out.shape)}"
            )
        return x + out

    def backward(self, grad: Any) -> Any:
        grad_block = self.block.backward(grad)
        if grad_block is None:
            raise RuntimeError(
                f"{self.describe()}: the block {type(self.block).__name__} returns no input gradient"
            )
        return grad + grad_block

    def parameters(self) -> list[Parameter]:
        return self.block.parameters()

    def regularization_loss(self) -> Any:
        return self.block.regularization_loss()

    def state_dict(self) -> dict[str, Any]:
        return {f"block.{k}": v for k, v in self.block.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unexpected = [k for k in state if not k.startswith("block.")]
        if unexpected:
            raise KeyError(f"{self.describe()}.load_state_dict: unexpected keys {sorted(unexpected)}")
        self.block.load_state_dict({k[len("block."):]: v for k, v in state.items()})

    def get_config(self) -> dict[str, Any]:
        return {"block": {"type": type(self.block).__name__, "config": self.block.get_config()}}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = tuple(self.block.output_shape(tuple(input_shape)))
        if out != tuple(input_shape):
            raise ShapeError(
                f"{self.describe()}: the block must keep the input's shape {tuple(input_shape)}, "
                f"its output has shape {out}"
            )
        return tuple(input_shape)

    def __repr__(self) -> str:
        return f"Residual({self.block!r})"
