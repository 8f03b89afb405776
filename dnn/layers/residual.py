"""Residual (skip) connection around any layer (He et al. 2016).

Forward:  y = x + F(x)             F = ``block``, any Layer whose output has the
                                   input's shape (e.g. a Sequential Dense-ReLU-Dense)
Backward: dL/dx = g + dL/dx of F at g      (the identity path passes g unchanged);
          the block adds its own parameters' gradients.

The block is the public attribute ``block``, so the base-class traversal finds
its parameters and state: ``state_dict`` keys are the block's prefixed with
``"block."`` (``"block.0.weight"`` for a Sequential block), and a model holding
a Residual at index 2 saves ``"2.block.0.weight"``. ``get_config()`` is
``{"block": <the block layer>}``, as ``Sequential.get_config`` holds its layers:
a model file stores the block as a nested ``{"type", "config"}`` spec, and the
loader rebuilds it (from registered layer types only) before calling the
constructor, which takes a Layer. Each application runs the block with a
context of its own, kept on Residual's context (``ctx.block_ctx``); Residual
itself keeps nothing else.
"""

from __future__ import annotations

from typing import Any

from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, register


@register
class Residual(Layer):
    def __init__(self, block: Layer) -> None:
        if not isinstance(block, Layer):
            raise TypeError(f"Residual: block must be a dnn.layers.Layer, got {type(block).__name__}")
        self.block = block
        self._label = None  # names the block's layers "Residual > block layer i (...)"

    # ``Sequential.add`` sets ``_label``; pass it on so errors inside the block name both
    @property
    def _label(self) -> str | None:
        return self._label_text

    @_label.setter
    def _label(self, text: str | None) -> None:
        self._label_text = text
        prefix = f"{text} > " if text else "Residual > "
        inner = getattr(self.block, "layers", None)
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

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        ctx.block_ctx = Context()
        out = self.block.forward_with(ctx.block_ctx, x, training=training)
        if tuple(out.shape) != tuple(x.shape):
            raise ShapeError(
                f"{self.describe()}: the block must keep the input's shape {tuple(x.shape)}, "
                f"its output has shape {tuple(out.shape)}"
            )
        return x + out

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        # the block always runs (its parameters need their gradients); it computes its
        # input gradient only when Residual's is needed
        ctx.block_ctx.needs_input_grad = ctx.needs_input_grad
        grad_block = self.block.backward_with(ctx.block_ctx, grad)
        if not ctx.needs_input_grad:
            return None
        if grad_block is None:
            raise RuntimeError(
                f"{self.describe()}: the block {type(self.block).__name__} returns no input gradient"
            )
        return grad + grad_block

    def get_config(self) -> dict[str, Any]:
        return {"block": self.block}

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
