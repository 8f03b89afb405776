"""The layer protocol every building block follows.

A layer maps ``x`` to ``y = f(x)`` and ``grad = dL/dy`` back to ``dL/dx``. A
subclass writes the math as two methods that share a per-call context
(PyTorch's ``ctx``):

- ``forward_with(ctx, x, training=...)`` computes y and stores on ``ctx`` what
  the backward needs (``ctx.x = x``);
- ``backward_with(ctx, grad)`` reads ``ctx``, hands each parameter gradient to
  ``p.add_grad(...)`` / ``p.add_grad_matmul(a, b)`` and returns dL/dx (or None
  when ``ctx.needs_input_grad`` is False, where it can skip that work).

Every application of a layer gets its own context, so one layer object can
be applied any number of times in a pass (shared layers, siamese towers); the
graph engine keeps the contexts, one per node. The public pair
``y = layer.forward(x)`` / ``dx = layer.backward(grad)`` is the standalone
idiom of the learning path: ``forward`` keeps its context as the layer's
latest, ``backward`` consumes it (a backward with no forward before it is an
error, raised here once for every layer) and is one backward pass of its
own: ``p.grad`` afterwards is the gradient of that pass.

Composites (``Sequential``, ``Model``, ``Residual``, user blocks) expose their
sub-layers through :meth:`Layer.named_children`; parameters, state dicts,
penalties and freezing are found by the one traversal written here.
Layers are registered by class name in :data:`REGISTRY` so that a model file
names them as plain strings and loading never imports names from a file.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.graph import is_symbolic, make_node
from dnn.parameter import Parameter, add_penalty_grads, backward_pass, penalty
from dnn.registry import Registry

#: layer type name -> class; the only way a model file can name a layer
REGISTRY = Registry("layer")


def check_penalties(layer: str, **values: Any) -> tuple[float, ...]:
    """The penalty coefficients as floats, each finite and >= 0:
    ``l1, l2 = check_penalties("Dense", l1=l1, l2=l2)``."""
    out = []
    for arg, value in values.items():
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise ValueError(f"{layer}: {arg} must be a finite number >= 0, got {value!r}")
        out.append(float(value))
    return tuple(out)


def check_flags(layer: str, **values: Any) -> tuple[bool, ...]:
    """Switches that must be True or False (a string such as "yes" would read as True):
    ``(bias,) = check_flags("Dense", bias=bias)``."""
    for arg, value in values.items():
        if not isinstance(value, bool):
            raise ValueError(f"{layer}: {arg} must be True or False, got {value!r}")
    return tuple(values.values())


def positive_ints(layer: str, **values: Any) -> tuple[int, ...]:
    """The given sizes as Python ints, each a positive integer (NumPy integers welcome,
    bools and floats refused): ``positive_ints("Dense", in_features=784, out_features=10)``."""
    out = []
    for arg, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{layer}: {arg} must be a positive int, got {value!r}")
        out.append(int(value))
    return tuple(out)


#: the longest layer name accepted (names become keys in model files)
MAX_NAME_LENGTH = 100


def _name_problem(name: object) -> str:
    """Why ``name`` cannot name a layer ("" if it can)."""
    if not isinstance(name, str):
        return f"a {type(name).__name__}, not a string"
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it has {len(name):,} characters"
    if "." in name or "/" in name:
        return "'.' and '/' separate the parts of parameter names"
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        return f"it contains the control/unprintable character {bad!r}"
    return ""


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer type loadable from model files by its name."""
    return REGISTRY.register(cls)


class Context:
    """What one application of a layer keeps for its backward.

    Layers set attributes freely (``ctx.x``, ``ctx.mask``). ``needs_input_grad``
    is False when nothing reads dL/dx (the model's data input), so a layer may
    skip computing it and return None.
    """

    needs_input_grad = True


class Layer:
    """Base class: override ``forward_with`` and ``backward_with``; parameters are
    the attributes named in ``param_names``, sub-layers those of ``named_children``."""

    #: parameter attribute names, in the stable order of ``parameters()``
    param_names: tuple[str, ...] = ()
    #: non-trainable state saved with the model (e.g. BatchNorm running stats)
    buffer_names: tuple[str, ...] = ()
    #: the layer's name in a model (``Dense(..., name="encoder")``; else the model names it)
    name: str | None = None
    _trainable = True
    _latest: Context | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every layer's constructor accepts ``name=`` (as in Keras) on top of its own arguments."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_takes_name", False):
            return

        @functools.wraps(init)
        def __init__(self: Layer, *args: Any, name: str | None = None, **kw: Any) -> None:
            init(self, *args, **kw)
            Layer.__init__(self, name=name)

        __init__._takes_name = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None:
            problem = _name_problem(name)
            if problem:
                shown = repr(name) if not isinstance(name, str) or len(name) <= 60 \
                    else f"{name[:40]!r}... ({len(name):,} characters)"
                raise ValueError(f"{type(self).__name__}: name must be a non-empty string of at "
                                 f"most {MAX_NAME_LENGTH} printable characters without '.' or "
                                 f"'/'; got {shown}: {problem}")
            self.name = name

    # ------------------------------------------------------------ the math (subclasses)
    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        """y = f(x); store on ``ctx`` what ``backward_with`` needs."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward_with")

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        """dL/dx from dL/dy = ``grad`` and ``ctx``; parameter gradients via ``p.add_grad``."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward_with")

    # ------------------------------------------------------------ the standalone idiom
    def forward(self, x: Any, *, training: bool = False, **kwargs: Any) -> Any:
        """y = f(x); the call's context becomes the layer's latest (for :meth:`backward`)."""
        ctx = Context()
        y = self.forward_with(ctx, x, training=training, **kwargs)
        self._latest = ctx
        return y

    def backward(self, grad: Any) -> Any:
        """dL/dx for the latest :meth:`forward`; sets ``p.grad`` for this layer's parameters
        (the gradient of this backward pass; several uses inside it add up)."""
        ctx, self._latest = self._latest, None
        if ctx is None:
            raise RuntimeError(f"{self.describe()}.backward called before forward "
                               "(each backward needs a forward of its own)")
        with backward_pass() as pass_id:
            grad_in = self.backward_with(ctx, grad)
            self.regularization_grads()
        for p in self.parameters():
            p.clear_stale_grad(pass_id)
        return grad_in

    def __call__(self, x: Any, *, training: bool = False, **kwargs: Any) -> Any:
        """On arrays: ``forward``. On symbolic tensors (``dnn.Input``): a node of a graph."""
        if is_symbolic(x):
            if kwargs or training:
                raise TypeError(f"{self.describe()}: a call on symbolic tensors takes no "
                                f"training= or other keyword arguments, got {sorted(kwargs)}")
            return make_node(self, x)
        return self.forward(x, training=training, **kwargs)

    # ------------------------------------------------------------ traversal
    def named_children(self) -> list[tuple[str, Layer]]:
        """Direct sub-layers with their state-dict prefixes: by default every public
        attribute that is a Layer (``Residual.block`` -> ``"block"``)."""
        return [(k, v) for k, v in vars(self).items()
                if isinstance(v, Layer) and not k.startswith("_")]

    def sublayers(self) -> list[Layer]:
        """Every layer below this one (depth first), each once."""
        found: dict[int, Layer] = {}
        for _, child in self.named_children():
            for layer in (child, *child.sublayers()):
                found.setdefault(id(layer), layer)
        return list(found.values())

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """(state-dict key, parameter) pairs; a shared or tied parameter under every key."""
        own = [(n, p) for n in self.param_names if (p := getattr(self, n)) is not None]
        return own + [(f"{prefix}.{key}", p) for prefix, child in self.named_children()
                      for key, p in child.named_parameters()]

    def parameters(self) -> list[Parameter]:
        """This layer's parameters and its sub-layers', in a stable order, each once."""
        return list({id(p): p for _, p in self.named_parameters()}.values())

    def regularization_loss(self) -> Any:
        """The l1/l2 penalty of this layer's parameters and its sub-layers' (each parameter
        once, see :func:`dnn.parameter.penalty`); 0.0 when none has one."""
        return penalty(self.parameters())

    def regularization_grads(self) -> None:
        """Add the gradient of :meth:`regularization_loss` to the parameters: once per
        backward pass (a penalty belongs to the weights, not to each use of them)."""
        add_penalty_grads(self.parameters())

    @property
    def trainable(self) -> bool:
        """False freezes every parameter of the layer and of its sub-layers."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for p in self.parameters():
            p.trainable = bool(value)
        for child in self.sublayers():
            child._trainable = bool(value)

    def set_parameter(self, key: str, param: Parameter) -> None:
        """Put ``param`` at state-dict ``key`` (``"dense_1.weight"``): ties two layers
        when ``param`` already belongs to another one."""
        head, _, rest = key.partition(".")
        if rest:
            children = dict(self.named_children())
            if head not in children:
                raise KeyError(f"{self.describe()}: no sub-layer {head!r} for key {key!r}")
            children[head].set_parameter(rest, param)
            return
        current = getattr(self, head, None) if head in self.param_names else None
        if not isinstance(current, Parameter):
            raise KeyError(f"{self.describe()}: no parameter {head!r}")
        if tuple(current.shape) != tuple(param.shape):
            raise ShapeError(f"{self.describe()}: cannot put a parameter of shape {param.shape} "
                             f"at {head!r}, which has shape {current.shape}")
        setattr(self, head, param)

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers by key (backend arrays, not copies); sub-layers' keys
        are prefixed with the child's name (``"block.0.weight"``)."""
        state = {n: p.data for n, p in self.named_parameters() if "." not in n}
        state.update({n: getattr(self, n) for n in self.buffer_names})
        for prefix, child in self.named_children():
            state.update({f"{prefix}.{k}": v for k, v in child.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy arrays (NumPy or backend) into this layer's parameters and buffers."""
        current = self.state_dict()
        missing, unexpected = set(current) - set(state), set(state) - set(current)
        if missing or unexpected:
            raise KeyError(
                f"{self.describe()}.load_state_dict: missing keys {sorted(missing)}, "
                f"unexpected keys {sorted(unexpected)}"
            )
        for key, target in current.items():
            value = backend.asarray(state[key], dtype=target.dtype)
            if tuple(value.shape) != tuple(target.shape):
                raise ShapeError(
                    f"{self.describe()}.load_state_dict: {key!r} expected shape "
                    f"{tuple(target.shape)}, got {tuple(value.shape)}"
                )
            target[...] = value  # in place: keeps flat-buffer views valid

    # ------------------------------------------------------------ description
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-able values (used by model files)."""
        return {}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for an input shape (batch dimension included)."""
        return input_shape

    def describe(self) -> str:
        """How errors name this layer, e.g. ``layer 2 (Dense)`` or ``dense_1 (Dense)``."""
        label = getattr(self, "_label", None)
        if label:
            return label
        return f"{self.name} ({type(self).__name__})" if self.name else type(self).__name__

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
