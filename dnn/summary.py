"""``model.summary()``: one row per node — layer, output shape, parameters, inbound layers.

A layer used at several nodes counts its parameters once (its later rows say
``shared``); a parameter tied to two layers counts once in the totals.
"""

from __future__ import annotations

import numbers
from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.graph import SymbolicTensor, dtype_of
from dnn.layers.base import Context


def summarize(model: Any, input_shape: tuple[int, ...] | None = None) -> str:
    """The summary table of ``model`` as text."""
    _check_input_shape(input_shape)
    sequential = getattr(model, "is_chain", False)
    names = {id(layer): name for name, layer in model.named_children()}
    shapes = _output_shapes(model, input_shape)
    header = ("layer (type)", "output shape", "params") + (() if sequential else ("connected to",))
    rows = [header]
    counted: set[int] = set()
    for node, shape in zip(model._graph.nodes, shapes):
        layer = node.layer
        if id(layer) in counted:
            params = "shared"
        else:
            counted.add(id(layer))
            params = f"{sum(p.size for p in layer.parameters()):,}"
        label = f"{names.get(id(layer), '?')} ({type(layer).__name__})"
        shown = "?" if shape is None else str(shape)
        row = (label, shown, params)
        if not sequential:
            row += (", ".join(_source(model, t, names) for t in node.inputs),)
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    params = model.parameters()
    trainable = sum(p.size for p in params if p.trainable)
    total = sum(p.size for p in params)
    lines.append(f"total parameters: {total:,} (trainable: {trainable:,}, "
                 f"non-trainable: {total - trainable:,})")
    return "\n".join(lines)


def _check_input_shape(input_shape: Any) -> None:
    """Refuse an ``input_shape`` that is not a tuple with the batch axis, e.g. ``784``."""
    if input_shape is None:
        return
    example = "e.g. summary(input_shape=(1, 784)) or (1, 1, 28, 28) for images"
    if isinstance(input_shape, numbers.Integral):
        raise TypeError(f"summary: input_shape must be a tuple that includes the batch axis, "
                        f"got the int {input_shape!r}; write (1, {input_shape}) ({example})")
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"summary: input_shape must be a tuple that includes the batch axis "
                        f"({example}), got {type(input_shape).__name__} {input_shape!r}")
    sizes = list(input_shape)
    if len(sizes) < 2 or not all(
            (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0)
            or (i == 0 and n is None) for i, n in enumerate(sizes)):
        raise ValueError(f"summary: input_shape must be a tuple of positive ints that includes "
                         f"the batch axis ({example}), got {tuple(sizes)!r}")


def _source(model: Any, tensor: Any, names: dict[int, str]) -> str:
    if tensor.node is None:
        index = next(i for i, t in enumerate(model.inputs) if t is tensor)
        return model.input_names[index]
    return names.get(id(tensor.node.layer), "?")


def _output_shapes(model: Any, input_shape: tuple[int, ...] | None) -> list[Any]:
    """Each node's output shape with the batch axis as None: the graph's own shapes, else
    (a Sequential built without an Input) those of one forward pass of a zero sample of
    ``input_shape`` (batch axis included), or of the first layer's ``in_features``."""
    nodes = model._graph.nodes
    if all(n.outputs[0].shape is not None for n in nodes):
        return [n.outputs[0].shape if len(n.outputs) == 1 else [t.shape for t in n.outputs]
                for n in nodes]
    shape = input_shape or _guess_input_shape(model.layers)
    if shape is None:
        return [None] * len(nodes)
    dtype = model.input_dtypes[0] if model.inputs else None
    value = backend.xp.zeros((1, *tuple(shape)[1:]), dtype=dtype_of(SymbolicTensor(None, dtype)))
    shapes = []
    for node in nodes:
        try:
            value = node.layer.forward_with(Context(), value, training=False)
        except ShapeError as exc:
            raise ShapeError(f"summary(input_shape={tuple(shape)}): {exc} (input_shape "
                             "includes the batch axis, e.g. (1, 1, 28, 28))") from exc
        shapes.append((None, *tuple(value.shape)[1:]))
    return shapes


def _guess_input_shape(layers: list[Any]) -> tuple[int, ...] | None:
    first = layers[0] if layers else None
    while first is not None and getattr(first, "layers", None):
        first = first.layers[0]
    features = getattr(first, "in_features", None)
    return (1, features) if features else None
