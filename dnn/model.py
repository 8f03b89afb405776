"""Models: a graph of layers that is itself a layer, with the Keras training API.

``Model(inputs, outputs)`` takes symbolic tensors (the functional API:
:func:`dnn.Input`, layers called on them); ``Sequential(layers)`` is the chain
case of the same class. Both run on one engine (:class:`dnn.graph.Graph`):
forward through the nodes in topological order, backward in reverse, one
context per node, so a layer used at several nodes (shared weights) gets the
sum of its gradients. A model is a layer, so it can stand at a node of
another model. The training API (``compile``, ``fit``, ``evaluate``,
``predict``) is :class:`dnn.fitting.Trainer`'s, the same for both.

State-dict keys: the layers' names in a graph model (``"dense_1.weight"``:
a name given with ``name=``, else the class name in snake case with a
counter, unique within the model), the layer index in a ``Sequential``
(``"0.weight"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dnn.errors import ShapeError
from dnn.fitting import Trainer
from dnn.graph import Graph, Input, SymbolicTensor, make_node
from dnn.layers.base import Context, Layer, register

__all__ = ["Input", "Model", "Sequential"]


def _snake(name: str) -> str:
    """``Conv2D`` -> ``conv2d``, ``BatchNorm`` -> ``batch_norm``, ``LSTM`` -> ``lstm``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@register
class Model(Trainer, Layer):
    """``Model(inputs, outputs)``: the layers between symbolic ``inputs`` (a ``dnn.Input``
    or a list of them) and ``outputs`` (a tensor or a list), as one layer."""

    #: a chain of layers keyed by position (Sequential), not a graph keyed by names
    is_chain = False

    def __init__(self, inputs: Any, outputs: Any) -> None:
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        ins = list(inputs) if self._multi_in else [inputs]
        outs = list(outputs) if self._multi_out else [outputs]
        self._set_graph(Graph(ins, outs, where=type(self).__name__))
        Trainer.__init__(self)

    def _set_graph(self, graph: Graph) -> None:
        self._graph = graph
        self._names = self._name_layers(graph.layers())

    def _name_layers(self, layers: list[Layer]) -> dict[int, str]:
        """A unique name per layer: its own ``name``, else snake-case class + counter."""
        names: dict[int, str] = {}
        taken = {layer.name for layer in layers if layer.name}
        counters: dict[str, int] = {}
        seen: set[str] = set()  # the names given so far (a set: linear in the layer count)
        for layer in layers:
            name = layer.name
            if name is None:
                base = _snake(type(layer).__name__)
                while True:
                    k = counters.get(base, 0)
                    counters[base] = k + 1
                    name = base if k == 0 else f"{base}_{k}"
                    if name not in taken:
                        break
                taken.add(name)
            elif name in seen:
                raise ValueError(f"{type(self).__name__}: two different layers are named "
                                 f"{name!r}; layer names must be unique within a model")
            names[id(layer)] = name
            seen.add(name)
            if not getattr(layer, "_label", None) or layer.name is None:
                layer._label = f"{name} ({type(layer).__name__})"
        return names

    # ------------------------------------------------------------- structure
    @property
    def layers(self) -> list[Layer]:
        """Each layer once, in the order of its first use."""
        return self._graph.layers()

    @property
    def inputs(self) -> list[SymbolicTensor]:
        return self._graph.inputs

    @property
    def outputs(self) -> list[SymbolicTensor]:
        return self._graph.outputs

    @property
    def input_names(self) -> list[str]:
        return [t.name or f"input_{i}" for i, t in enumerate(self.inputs)]

    @property
    def output_names(self) -> list[str]:
        return [self._names[id(t.node.layer)] if t.node is not None else f"output_{i}"
                for i, t in enumerate(self.outputs)]

    @property
    def input_dtypes(self) -> list[str | None]:
        return [t.dtype for t in self.inputs]

    @property
    def returns_list(self) -> bool:
        """A model with several outputs returns a list (as a layer in another model too)."""
        return self._multi_out

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_layer(self, name: str) -> Layer:
        """The layer called ``name`` in this model."""
        for layer in self.layers:
            if self._names[id(layer)] == name:
                return layer
        raise KeyError(f"{type(self).__name__}: no layer named {name!r}; layers are "
                       f"{[self._names[id(la)] for la in self.layers]}")

    def named_children(self) -> list[tuple[str, Layer]]:
        return [(self._names[id(layer)], layer) for layer in self.layers]

    # ------------------------------------------------------------- layer protocol
    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xs = self._as_inputs(x)
        outs, ctx.contexts = self._graph.forward(xs, training)
        return outs if self._multi_out else outs[0]

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        grads = list(grad) if self._multi_out else [grad]
        ins = self._graph.backward(ctx.contexts, grads, ctx.needs_input_grad)
        if not ctx.needs_input_grad:
            return None
        return ins if self._multi_in else ins[0]

    def _as_inputs(self, x: Any) -> list[Any]:
        if not self._multi_in:
            return [x]
        if not isinstance(x, (list, tuple)) or len(x) != len(self.inputs):
            given = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
            raise TypeError(f"{self.describe()}: expected a list of {len(self.inputs)} inputs "
                            f"({', '.join(self.input_names)}), got {given}")
        return list(x)

    def output_shape(self, input_shape: Any) -> Any:
        shapes = [(None, *t.shape[1:]) if t.shape is not None else None for t in self.outputs]
        if any(s is None for s in shapes):
            raise ValueError(f"{self.describe()}: output shapes are unknown")
        batch = (input_shape[0] if not self._multi_in else input_shape[0][0]) if input_shape else None
        shapes = [(batch, *s[1:]) for s in shapes]
        return shapes if self._multi_out else shapes[0]

    def symbolic_outputs(self, inputs: list[SymbolicTensor]
                         ) -> list[tuple[tuple[int | None, ...] | None, str | None]] | None:
        """The (shape, dtype) of each output when this model is applied to the symbolic
        ``inputs`` (checked against its own Inputs), without running it: a model nested
        in another costs its node count, not a forward pass. None when its own shapes
        are unknown (a Sequential without an Input)."""
        own = self.inputs
        if not own or any(t.shape is None for t in own) or any(t.shape is None for t in self.outputs):
            return None
        if len(inputs) != len(own):
            raise TypeError(f"{self.describe()}: expected {len(own)} input(s) "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        for i, (given, mine) in enumerate(zip(inputs, own)):
            if given.shape is not None and tuple(given.shape[1:]) != tuple(mine.shape[1:]):
                raise ShapeError(f"{self.describe()}: input {i} must have shape "
                                 f"{(None, *mine.shape[1:])}, got {(None, *given.shape[1:])}")
        return [((None, *t.shape[1:]), t.dtype) for t in self.outputs]

    def output_shape_at(self, index: int, xs: list[Any]) -> tuple[Any, ...] | None:
        """Shape of output ``index`` (batch axis first) for inputs like ``xs`` (None if unknown)."""
        shape = self.outputs[index].shape
        return None if shape is None else tuple(shape)

    def output_width(self, index: int, xs: list[Any]) -> int | None:
        """Size of the last axis of output ``index`` for inputs like ``xs`` (None if unknown)."""
        shape = self.output_shape_at(index, xs)
        return None if shape is None or len(shape) < 2 else shape[-1]

    # ------------------------------------------------------------- description
    def get_config(self) -> dict[str, Any]:
        """The graph as JSON-able values: layers by name, nodes with the tensors they
        read (tensor k: the k-th input, then each node's outputs in order), outputs."""
        index: dict[int, int] = {id(t): k for k, t in enumerate(self.inputs)}
        nodes = []
        for node in self._graph.nodes:
            nodes.append({"layer": self._names[id(node.layer)],
                          "inputs": [index[id(t)] for t in node.inputs], "list": node.as_list})
            for t in node.outputs:
                index[id(t)] = len(index)
        return {
            "layers": [{"name": self._names[id(la)], "layer": la} for la in self.layers],
            "inputs": [{"shape": list(t.shape[1:]), "dtype": t.dtype, "name": t.name}
                       for t in self.inputs],
            "nodes": nodes,
            "outputs": [index[id(t)] for t in self.outputs],
            "multi_input": self._multi_in, "multi_output": self._multi_out,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Rebuild the graph that :meth:`get_config` described (layers already built)."""
        layers = {}
        for entry in config["layers"]:
            layer = entry["layer"]
            if not isinstance(layer, Layer):
                raise ValueError(f"layer {entry.get('name')!r} is not a layer")
            Layer.__init__(layer, name=entry["name"])  # checks the name
            layers[entry["name"]] = layer
        tensors = [Input(i["shape"], dtype=i.get("dtype"), name=i.get("name"))
                   for i in config["inputs"]]
        inputs = list(tensors)
        for k, node in enumerate(config["nodes"]):
            if node["layer"] not in layers:
                raise ValueError(f"node {k} names layer {node['layer']!r}, which is not listed")
            bad = [i for i in node["inputs"] if not isinstance(i, int) or not 0 <= i < len(tensors)]
            if bad or not node["inputs"]:
                raise ValueError(f"node {k} reads tensors {node['inputs']}; only tensors "
                                 f"0..{len(tensors) - 1} exist before it")
            args = [tensors[i] for i in node["inputs"]]
            out = make_node(layers[node["layer"]], args if node["list"] else args[0])
            tensors.extend(out if isinstance(out, list) else [out])
        if not all(isinstance(i, int) and 0 <= i < len(tensors) for i in config["outputs"]):
            raise ValueError(f"outputs {config['outputs']} name tensors that do not exist")
        outputs = [tensors[i] for i in config["outputs"]]
        return cls(inputs if config["multi_input"] else inputs[0],
                   outputs if config["multi_output"] else outputs[0])


@register
class Sequential(Model):
    """Layers applied in order: y = f_L(…f_2(f_1(x))); backward runs them in reverse.

    ``Sequential([dnn.Input((784,)), Dense(784, 10)])`` fixes the input shape (and dtype)
    up front; without an Input, shapes are found when data arrives.
    """

    is_chain = True

    def __init__(self, layers: Sequence[Layer | SymbolicTensor] = ()) -> None:
        layers = list(layers)
        self._multi_in = self._multi_out = False
        self._input: SymbolicTensor | None = None
        if layers and isinstance(layers[0], SymbolicTensor):
            self._input = layers.pop(0)
            if self._input.node is not None:
                raise ValueError("Sequential: the first item may be a dnn.Input, not the output "
                                 f"of {self._input.node.layer.describe()}")
        self.layers_list: list[Layer] = []
        self._output = self._input
        Trainer.__init__(self)
        ends = [self._input] if self._input is not None else []  # no layers yet: an empty graph
        self._set_graph(Graph(ends, ends, where="Sequential"))
        for layer in layers:
            self._append(layer)
        if layers:
            self._graph = Graph([self._input], [self._output], where="Sequential")

    def add(self, layer: Layer) -> None:
        """Append a layer to the chain."""
        self._append(layer)
        self._graph = Graph([self._input], [self._output], where="Sequential")

    def _append(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential: layer {len(self.layers_list)} must be a dnn.layers.Layer, "
                f"got {type(layer).__name__}"
            )
        if self._input is None:  # shapes unknown until data arrives; the dtype the layer reads
            self._input = self._output = SymbolicTensor(None, getattr(layer, "input_dtype", None))
        layer._label = f"layer {len(self.layers_list)} ({type(layer).__name__})"
        self.layers_list.append(layer)
        self._output = make_node(layer, self._output)

    @property
    def layers(self) -> list[Layer]:
        return self.layers_list

    def named_children(self) -> list[tuple[str, Layer]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers_list)]

    @property
    def output_names(self) -> list[str]:
        return ["output"]

    def get_layer(self, name: str) -> Layer:
        return self.layers_list[int(name)]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers_list:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def output_shape_at(self, index: int, xs: list[Any]) -> tuple[Any, ...] | None:
        try:
            return tuple(self.output_shape((1, *tuple(xs[0].shape[1:]))))
        except Exception:  # a layer without output_shape: unknown
            return None

    def output_width(self, index: int, xs: list[Any]) -> int | None:
        shape = self.output_shape_at(index, xs)
        return shape[-1] if shape is not None and len(shape) >= 2 else None

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"layers": list(self.layers_list)}
        if self._input is not None and self._input.shape is not None:
            config["input"] = {"shape": list(self._input.shape[1:]), "dtype": self._input.dtype,
                               "name": self._input.name}
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        items: list[Any] = []
        if config.get("input") is not None:
            spec = config["input"]
            items.append(Input(spec["shape"], dtype=spec.get("dtype"), name=spec.get("name")))
        return cls(items + list(config["layers"]))

