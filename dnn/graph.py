"""Graphs of layers: symbolic tensors, nodes, and the one engine that runs them.

Building (the functional API, as in Keras)::

    inp = dnn.Input(shape=(784,))        # a SymbolicTensor: no data, a shape and a dtype
    h = Dense(784, 64)(inp)              # calling a layer on it adds a Node, returns its output

A :class:`Node` is one application of a layer: the layer, the tensors it reads
and the tensors it makes. One layer object may stand at several nodes (shared
weights). A node's output shape is found by running the layer once on a probe
batch of one sample of zeros, so every layer's own shape checks report a wrong
connection at the moment it is made. Two exceptions run nothing: a model used
as a layer gives its outputs' shapes from its own graph (``symbolic_outputs``),
so nesting costs the node count, not a forward pass per level; and while a
model file is loaded (:func:`symbolic_shapes`) every node's shape comes from its
layer's ``output_shape`` (with the built-in layers' input checks made on shapes
alone), so a file cannot make loading compute the activations it describes.

Running (:class:`Graph`): forward visits the nodes in topological order, each
with a fresh per-call context; backward visits them in reverse, summing the
gradients of a tensor read by several nodes (fan-out). A node whose inputs
need no gradient and whose layer has no trainable parameter is skipped; a
layer whose input needs no gradient (the data) is told so through
``ctx.needs_input_grad`` and may skip computing it.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from collections.abc import Iterator
from typing import Any

from dnn import backend, parameter

#: set while a model file is loaded: nodes get their shapes from ``layer.output_shape``
#: alone, never from running the layer (a file must not make loading compute anything
#: as large as the activations it describes)
_symbolic_only: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dnn_graph_symbolic_only", default=False)


@contextlib.contextmanager
def symbolic_shapes() -> Iterator[None]:
    """While active (in this context), :func:`make_node` finds output shapes from the
    layers' ``output_shape`` (and a model's own outputs) without running any layer."""
    token = _symbolic_only.set(True)
    try:
        yield
    finally:
        _symbolic_only.reset(token)


class SymbolicTensor:
    """A tensor of a graph under construction: ``shape`` (``None`` for the batch axis;
    ``None`` altogether when unknown), ``dtype`` name (``None``: the default float),
    the producing ``node`` (``None`` for an :func:`Input`) and a ``name`` for inputs."""

    __slots__ = ("dtype", "name", "node", "shape")

    def __init__(self, shape: tuple[int | None, ...] | None, dtype: str | None = None,
                 node: Node | None = None, name: str | None = None) -> None:
        self.shape, self.dtype, self.node, self.name = shape, dtype, node, name

    def __repr__(self) -> str:
        source = f"input {self.name!r}" if self.node is None else self.node.layer.describe()
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype or 'float'} from {source}>"

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self!r} is symbolic: it holds no values. Build a dnn.Model(inputs, "
                        "outputs) from it and call model.predict(x) or model.forward(x) on arrays")


def Input(shape: tuple[int, ...] | list[int], dtype: str | None = None,
          name: str | None = None) -> SymbolicTensor:
    """A model input: ``shape`` without the batch axis; ``dtype`` ``"int64"`` for token ids
    (Embedding), else the default float; ``name`` keys dict inputs of ``fit``."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)) or any(
            not isinstance(d, numbers.Integral) or isinstance(d, bool) for d in shape):
        raise ValueError(f"Input: shape must be a tuple of ints (without the batch axis), "
                         f"got {shape!r}")
    dims = tuple(int(d) for d in shape)
    if any(d < 1 for d in dims):
        raise ValueError(f"Input: shape entries must be >= 1, got {shape!r}")
    if dtype is not None and dtype not in INPUT_DTYPES:
        raise ValueError(f"Input: dtype must be one of {', '.join(INPUT_DTYPES)} or None, got {dtype!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"Input: name must be a non-empty string, got {name!r}")
    return SymbolicTensor((None, *dims), dtype, None, name)


#: dtypes an Input may declare (None: the default float dtype)
INPUT_DTYPES = ("float32", "float64", "int32", "int64")


class Node:
    """One application of ``layer`` to ``inputs`` (a list; ``as_list``: the layer was
    called with a list, as merge layers are), making ``outputs``."""

    __slots__ = ("as_list", "inputs", "layer", "outputs")

    def __init__(self, layer: Any, inputs: list[SymbolicTensor], as_list: bool) -> None:
        self.layer, self.inputs, self.as_list = layer, inputs, as_list
        self.outputs: list[SymbolicTensor] = []

    def args(self, values: list[Any]) -> Any:
        """The layer's argument from the input values: a list, or the one value."""
        return values if self.as_list else values[0]


def is_symbolic(x: Any) -> bool:
    """True for a SymbolicTensor or a list/tuple holding one."""
    if isinstance(x, (list, tuple)):
        return any(isinstance(t, SymbolicTensor) for t in x)
    return isinstance(x, SymbolicTensor)


def make_node(layer: Any, x: Any) -> Any:
    """``layer(x)`` on symbolic tensors: add a node, return its output tensor(s)."""
    as_list = isinstance(x, (list, tuple))
    inputs = list(x) if as_list else [x]
    for i, t in enumerate(inputs):
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"{layer.describe()}: input {i} is a {type(t).__name__}; a layer "
                            "called on symbolic tensors needs all of its inputs symbolic")
    node = Node(layer, inputs, as_list)
    symbolic = getattr(layer, "symbolic_outputs", None)
    shapes = None
    if symbolic is not None and all(t.shape is not None for t in inputs):
        shapes = symbolic(inputs)  # a model: its outputs are known without running it
    if shapes is None:
        shapes = _from_output_shape(node) if _symbolic_only.get() else _probe(node)
    node.outputs = [SymbolicTensor(shape, dtype, node) for shape, dtype in shapes]
    return node.outputs if getattr(layer, "returns_list", False) else node.outputs[0]


def _probe(node: Node) -> list[tuple[tuple[int | None, ...] | None, str | None]]:
    """Output (shape, dtype) pairs of the node, from one forward on a batch of one zero
    sample; unknown when an input shape is unknown."""
    from dnn.layers.base import Context

    if any(t.shape is None for t in node.inputs):
        return [(None, None)] * getattr(node.layer, "num_outputs", 1)
    xp = backend.xp
    values = [xp.zeros((1, *t.shape[1:]), dtype=dtype_of(t)) for t in node.inputs]
    y = node.layer.forward_with(Context(), node.args(values), training=False)
    ys = y if isinstance(y, (list, tuple)) else [y]
    return [((None, *tuple(v.shape)[1:]), _dtype_name(v.dtype)) for v in ys]


def _from_output_shape(node: Node) -> list[tuple[tuple[int | None, ...] | None, str | None]]:
    """Output (shape, dtype) pairs of the node from ``layer.output_shape`` alone (the
    inputs' shapes checked where the layer states what it accepts); nothing runs."""
    from dnn.errors import ShapeError

    layer = node.layer
    count = getattr(layer, "num_outputs", 1)
    if any(t.shape is None for t in node.inputs):
        return [(None, None)] * count
    shapes = [(1, *t.shape[1:]) for t in node.inputs]
    _check_inputs(layer, shapes, node.inputs)
    out = layer.output_shape(shapes if node.as_list else shapes[0])
    outs = list(out) if getattr(layer, "returns_list", False) else [out]
    result = []
    for shape in outs:
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ShapeError(f"{layer.describe()}: output_shape gave {shape!r}, not a shape") from None
        if not dims or any(d < 1 for d in dims[1:]):
            raise ShapeError(f"{layer.describe()}: inputs of shapes {[t.shape for t in node.inputs]} "
                             f"give an output of shape {(None, *dims[1:])}")
        result.append(((None, *dims[1:]), _output_dtype(layer, node.inputs)))
    if len(result) != count:
        raise ShapeError(f"{layer.describe()}: output_shape gave {len(result)} shapes for "
                         f"{count} outputs")
    return result


class _ShapeOnly:
    """What a layer's shape checks read of an array (shape, ndim, dtype), without data."""

    __slots__ = ("dtype", "ndim", "shape")

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape, self.ndim, self.dtype = shape, len(shape), dtype


def _check_inputs(layer: Any, shapes: list[tuple[int, ...]], inputs: list[SymbolicTensor]) -> None:
    """The input checks the built-in layers make in ``forward``, on shapes alone."""
    from dnn.errors import ShapeError
    from dnn.layers.conv import check_nchw
    from dnn.layers.merge import _Merge

    shape = shapes[0]
    if isinstance(layer, _Merge):
        layer._check([_ShapeOnly(s, dtype_of(t)) for s, t in zip(shapes, inputs)])
        return
    if getattr(layer, "accepts_list", False) and len(shapes) > 1:
        return  # one call on a list (attention's [q, k, v, mask]): its output_shape checks it
    if len(shapes) != 1:
        raise TypeError(f"{layer.describe()}: expected one input, got a list of {len(shapes)}")
    in_features = getattr(layer, "in_features", None)
    if isinstance(in_features, int) and (len(shape) < 2 or shape[-1] != in_features):
        raise ShapeError(f"{layer.describe()}: expected input of shape (batch, {in_features}), "
                         f"got {(None, *shape[1:])}")
    kernel = getattr(layer, "kernel_size", None)
    if kernel is not None:
        check_nchw(layer, _ShapeOnly(shape, None), getattr(layer, "in_channels", None),
                   tuple(kernel), tuple(getattr(layer, "padding", (0, 0))))
    if type(layer).__name__ == "GlobalAvgPool2D":
        check_nchw(layer, _ShapeOnly(shape, None), None, (1, 1), (0, 0))
    if getattr(layer, "input_dtype", None) == "int64" and inputs[0].dtype not in ("int32", "int64"):
        raise ShapeError(f"{layer.describe()}: expected an integer input of token ids, got "
                         f"dtype {inputs[0].dtype or 'float'}")


def _output_dtype(layer: Any, inputs: list[SymbolicTensor]) -> str | None:
    """The dtype a layer's output has without running it: layers that only move values
    (reshape, dropout, identity) keep their input's; every other one computes in the
    default float dtype."""
    from dnn.layers.activations import Identity
    from dnn.layers.dropout import Dropout
    from dnn.layers.reshape import _ShapeOnly as Reshaping

    if isinstance(layer, (Identity, Dropout, Reshaping)):
        return inputs[0].dtype
    return None


def dtype_of(t: SymbolicTensor) -> Any:
    """The backend dtype a symbolic tensor stands for."""
    return backend.default_dtype() if t.dtype is None else getattr(backend.xp, t.dtype)


def _dtype_name(dtype: Any) -> str | None:
    name = str(dtype).rsplit(".", 1)[-1].strip("'>")
    return None if name == backend._default_dtype_name else name


class Graph:
    """The nodes between ``inputs`` and ``outputs``, in topological order."""

    def __init__(self, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor],
                 where: str = "Model") -> None:
        for kind, tensors in (("inputs", inputs), ("outputs", outputs)):
            for i, t in enumerate(tensors):
                if not isinstance(t, SymbolicTensor):
                    raise TypeError(
                        f"{where}: {kind}[{i}] must be a symbolic tensor (from dnn.Input or a "
                        f"layer called on one), got {type(t).__name__}; to run a model on "
                        "arrays, build it first and call model.predict(x)")
        for i, t in enumerate(inputs):
            if t.node is not None:
                raise ValueError(f"{where}: inputs[{i}] is the output of "
                                 f"{t.node.layer.describe()}, not a dnn.Input")
        if len({id(t) for t in inputs}) != len(inputs):
            raise ValueError(f"{where}: the same Input is listed twice in inputs")
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.nodes = self._sort(where)
        self._plan_cache: dict[bool, tuple[int, list[Any]]] = {}
        used = {t for n in self.nodes for t in n.inputs} | set(self.outputs)
        for i, t in enumerate(self.inputs):
            if t not in used:
                raise ValueError(f"{where}: inputs[{i}] ({t!r}) is not connected to the outputs")

    def _sort(self, where: str) -> list[Node]:
        """Depth-first topological sort from the outputs back to the inputs."""
        order: list[Node] = []
        state: dict[int, int] = {}  # 1: on the current path, 2: done
        known_inputs = {id(t) for t in self.inputs}
        for out in self.outputs:
            stack: list[tuple[SymbolicTensor, bool]] = [(out, False)]
            while stack:
                t, leaving = stack.pop()
                node = t.node
                if node is None:
                    if id(t) not in known_inputs:
                        raise ValueError(
                            f"{where}: the outputs depend on {t!r}, which is not among the "
                            "model's inputs; pass it in inputs=[...]")
                    continue
                if leaving:
                    state[id(node)] = 2
                    order.append(node)
                    continue
                if state.get(id(node)) == 2:
                    continue
                if state.get(id(node)) == 1:
                    raise ValueError(f"{where}: the graph has a cycle through "
                                     f"{node.layer.describe()}; a model must be acyclic")
                state[id(node)] = 1
                stack.append((t, True))
                stack.extend((s, False) for s in reversed(node.inputs))
        return order

    def layers(self) -> list[Any]:
        """Each layer once, in the order of its first node."""
        return list({id(n.layer): n.layer for n in self.nodes}.values())

    # ------------------------------------------------------------------ running
    def forward(self, values: list[Any], training: bool) -> tuple[list[Any], list[Any]]:
        """Output values and the per-node contexts, from one value per input."""
        from dnn.layers.base import Context

        env = dict(zip(self.inputs, values))  # tensor -> value (tensors hash by identity)
        contexts = []
        for node in self.nodes:
            ctx = Context()
            y = node.layer.forward_with(ctx, node.args([env[t] for t in node.inputs]),
                                        training=training)
            if len(node.outputs) == 1:
                env[node.outputs[0]] = y
            else:
                env.update(zip(node.outputs, y))
            contexts.append(ctx)
        return [env[t] for t in self.outputs], contexts

    def backward(self, contexts: list[Any], grads: list[Any], needs_input_grad: bool) -> list[Any]:
        """Gradients w.r.t. the inputs (None where not needed) from one per output
        (None: that output does not reach the loss). Parameters get theirs on the way."""
        env: dict[SymbolicTensor, Any] = {}
        for t, g in zip(self.outputs, grads):
            if g is not None:
                _accumulate(env, t, g)
        plan = self._plan(needs_input_grad)
        for node, ctx, (run, wanted) in zip(reversed(self.nodes), reversed(contexts), plan):
            outs = [env.pop(t, None) for t in node.outputs]
            if not run or all(g is None for g in outs):
                continue
            if len(outs) > 1:
                outs = _fill_zeros(outs, node.outputs)
            ctx.needs_input_grad = bool(wanted)
            g_in = node.layer.backward_with(ctx, outs[0] if len(outs) == 1 else outs)
            if wanted:
                for t, g in zip(wanted, g_in if node.as_list else [g_in]):
                    if g is not None and t is not None:
                        _accumulate(env, t, g)
        return [env.get(t) for t in self.inputs]

    def _plan(self, needs_input_grad: bool) -> list[tuple[bool, list[Any]]]:
        """Per node, in backward order: (run its backward?, its inputs whose gradient is
        needed, None in place of the others; empty when none is). Inputs need a gradient
        when asked, outputs of trainable layers and everything downstream of either do;
        a node runs when one of its inputs needs a gradient or its layer has a trainable
        parameter. Cached until some parameter's ``trainable`` changes."""
        version, plan = self._plan_cache.get(needs_input_grad, (-1, []))
        if version == parameter.trainable_version:
            return plan
        needs = set(self.inputs) if needs_input_grad else set()
        plan = []
        for node in self.nodes:
            trainable = any(p.trainable for p in node.layer.parameters())
            wanted = [t if t in needs else None for t in node.inputs]
            wanted = wanted if any(t is not None for t in wanted) else []
            plan.append((trainable or bool(wanted), wanted))
            if trainable or wanted:
                needs.update(node.outputs)
        plan.reverse()
        self._plan_cache[needs_input_grad] = (parameter.trainable_version, plan)
        return plan


def _accumulate(env: dict[SymbolicTensor, Any], t: SymbolicTensor, g: Any) -> None:
    """Fan-out: the gradient of a tensor read by several nodes is the sum."""
    env[t] = g if t not in env else env[t] + g


def _fill_zeros(grads: list[Any], tensors: list[SymbolicTensor]) -> list[Any]:
    """A multi-output layer gets zeros for the outputs no gradient reached."""
    like = next(g for g in grads if g is not None)
    xp = backend.xp
    return [g if g is not None else xp.zeros((like.shape[0], *t.shape[1:]), dtype=like.dtype)
            for g, t in zip(grads, tensors)]

