"""The optimizer protocol and the flat-buffer machinery every optimizer shares.

``opt.step(params)`` packs the parameters into one flat buffer per dtype (once;
see :mod:`dnn.parameter`), then calls :meth:`Optimizer.update` on the whole
flat data, gradient and state arrays. An update rule is thus written once, as
a few in-place vectorised operations, and runs at the speed of a single large
elementwise pass whatever the number of layers.

Gradient accumulation (``gradient_accumulation_steps=k``, the Keras 3 argument):
``step`` adds each call's gradients to a flat accumulator and updates only on
every k-th call, with the mean ḡ = (1/k)·Σ gⱼ — so k micro-batches of size b
give the update of one batch of size k·b (for losses that are batch means).
Clipping, the learning-rate schedule and ``iterations`` see updates, not calls.

Keras argument names: every optimizer also takes the names a Keras user types
(``learning_rate=`` for ``lr=``; ``beta_1=``, ``beta_2=``, ``epsilon=`` on the
Adam family; see each class's :attr:`Optimizer.keras_aliases`), translated once
at construction by :meth:`Optimizer.__init_subclass__`; ``opt.learning_rate``
reads and sets ``opt.lr``. ``get_config`` (model files) keeps the canonical names.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

from dnn import backend
from dnn.backend import threads
from dnn.parameter import FlatGroup, Parameter, flat_groups
from dnn.registry import Registry

Schedule = Callable[[int], float]

#: optimizer class name -> class (looked up case-insensitively: ``"adam"``), for model
#: files and ``compile(optimizer="...")``; filled by :func:`register`
OPTIMIZERS = Registry("optimizer")


def register(cls: type[Optimizer]) -> type[Optimizer]:
    """Class decorator: make an optimizer loadable from model files by its name."""
    return OPTIMIZERS.register(cls)


def check_number(owner: str, arg: str, value: Any, low: float | None = None,
                 high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number within the bounds (open or
    closed), else a ``ValueError`` that names ``owner``, ``arg``, the rule and the value."""
    if low is not None and high is not None:
        rule = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        rule = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        rule = "a finite number"
    number = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    ok = number is not None and math.isfinite(number) and (
        low is None or (number > low if low_open else number >= low)) and (
        high is None or (number < high if high_open else number <= high))
    if not ok:
        raise ValueError(f"{owner}: {arg} must be {rule}, got {value!r}")
    return number  # type: ignore[return-value]


def check_eps(owner: str, eps: Any) -> float:
    """``eps`` of an adaptive optimizer: a finite number > 0. It is added to sqrt(v) in the
    denominator, so with 0 a parameter whose gradient is 0 divides 0 by 0 (NaN); torch
    accepts 0, but the NaN then surfaces steps later with advice that does not fit."""
    number = None
    if isinstance(eps, numbers.Real) and not isinstance(eps, bool):
        number = float(eps)
    if number is None or not math.isfinite(number) or number <= 0:
        raise ValueError(
            f"{owner}: eps must be a finite number > 0 (it keeps the update's denominator "
            f"sqrt(v) + eps away from 0 where a gradient is 0), got {eps!r}; the usual value "
            "is 1e-8 (1e-7 in Keras)")
    return number


def check_count(owner: str, arg: str, value: Any, low: int) -> int:
    """``value`` as an int if it is a whole number >= ``low`` (an int, a NumPy integer or
    an integral float such as 1000.0), else a ``ValueError`` naming ``owner`` and ``arg``."""
    whole = isinstance(value, numbers.Integral) or (
        isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < low:
        raise ValueError(f"{owner}: {arg} must be a whole number >= {low}, got {value!r}")
    return int(value)


#: a Keras argument name's canonical counterpart: an argument, or (argument, i) for
#: element i of a pair (``beta_1`` is ``betas[0]``)
KerasAlias = str | tuple[str, int]


def _init_default(cls: type, arg: str) -> Any:
    """The default of ``arg`` in the nearest ``__init__`` along ``cls``'s MRO that has one."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        parameter = inspect.signature(init).parameters.get(arg) if init is not None else None
        if parameter is not None and parameter.default is not parameter.empty:
            return parameter.default
    raise TypeError(f"{cls.__name__}: {arg} has no default to complete")


def _canonical_kwargs(cls: type[Optimizer], positional: list[str],
                      kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with every Keras name in ``cls.keras_aliases`` replaced by its canonical
    argument (``positional``: the arguments already given by position). An argument given
    under both names is a ``TypeError``."""
    given = set(positional) | set(kwargs)
    out = {k: v for k, v in kwargs.items() if k not in cls.keras_aliases}
    pairs: dict[str, list[Any]] = {}
    for alias, target in cls.keras_aliases.items():
        if alias not in kwargs:
            continue
        arg, index = (target, None) if isinstance(target, str) else target
        if arg in given:
            what = arg if index is None else f"{arg}[{index}]"
            raise TypeError(f"{cls.__name__}: got both {arg}= and {alias}= (the Keras name of "
                            f"{what}); pass one of them")
        if index is None:
            out[arg] = kwargs[alias]
        else:
            pairs.setdefault(arg, list(_init_default(cls, arg)))[index] = kwargs[alias]
    out.update({arg: tuple(values) for arg, values in pairs.items()})
    return out


def _accepting_keras_names(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` that first translates Keras argument names (signature unchanged for
    ``inspect``: the wrapper is ``functools.wraps``'d)."""
    names = [p.name for p in inspect.signature(init).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]  # without self

    @functools.wraps(init)
    def wrapper(self: Optimizer, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        _check_known(cls, kwargs)
        aliased = {alias: target for alias, target in cls.keras_aliases.items() if alias in kwargs}
        if aliased:
            kwargs = _canonical_kwargs(cls, names[: len(args)], kwargs)
        try:
            init(self, *args, **kwargs)
        except (TypeError, ValueError) as exc:  # say which name the user typed
            for alias, target in aliased.items():
                arg = target if isinstance(target, str) else target[0]
                if any(f" {arg}{end}" in str(exc) for end in (" ", "=", "[")):
                    raise type(exc)(f"{exc} (given as {alias}=)") from None
            raise

    return wrapper


def _check_known(cls: type[Optimizer], kwargs: dict[str, Any]) -> None:
    """Refuse a keyword no ``__init__`` of the class (nor a Keras alias) takes, naming the
    class and the closest valid name."""
    known = set(cls.keras_aliases)
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__ and klass is not object:
            known |= {p.name for p in inspect.signature(klass.__dict__["__init__"]).parameters
                      .values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]}=?" if close else ""
        raise TypeError(f"{cls.__name__}: unknown argument {unknown[0]}={kwargs[unknown[0]]!r}"
                        f"{hint} (it takes {', '.join(sorted(known))})")


class Optimizer:
    #: names of the per-element state arrays the update rule keeps
    state_names: tuple[str, ...] = ()
    #: Keras argument names accepted as aliases (``Adam(learning_rate=1e-3, beta_1=0.8)``);
    #: a subclass lists its own, its parents' are merged in by ``__init_subclass__``
    keras_aliases: ClassVar[dict[str, KerasAlias]] = {
        "learning_rate": "lr", "global_clipnorm": "clipnorm"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Merge the parents' :attr:`keras_aliases` and make the class's own ``__init__``
        accept them."""
        super().__init_subclass__(**kwargs)
        merged: dict[str, KerasAlias] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("keras_aliases", {}))
        cls.keras_aliases = merged
        if "__init__" in cls.__dict__:
            cls.__init__ = _accepting_keras_names(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(
        self,
        lr: float | Schedule,
        weight_decay: float = 0.0,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        gradient_accumulation_steps: int = 1,
    ) -> None:
        k = gradient_accumulation_steps
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"{type(self).__name__}: gradient_accumulation_steps must be an "
                             f"int >= 1, got {k!r}")
        name = type(self).__name__
        if not callable(lr):
            lr = check_number(name, "lr", lr, 0.0, low_open=True)
        weight_decay = check_number(name, "weight_decay", weight_decay, 0.0)
        for arg, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
            if value is not None:
                check_number(name, arg, value, 0.0, low_open=True)
        #: number of steps taken so far (t in the formulas is iterations after the step)
        self.iterations = 0
        self.schedule: Schedule | None = lr if callable(lr) else None
        self.lr = self._checked_lr(self.schedule(0)) if self.schedule else lr
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue = clipnorm, clipvalue
        self.gradient_accumulation_steps = k
        self._states: dict[int, dict[str, Any]] = {}
        self._accumulated = 0  # calls of step since the last update

    @property
    def learning_rate(self) -> float:
        """Keras's name for :attr:`lr`: the rate of the next update (settable; a per-step
        schedule recomputes it before every update)."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.lr = value

    def step(self, params: list[Parameter]) -> None:
        """Update every parameter in place from its ``.grad`` (every k-th call with the
        mean of the last k gradients, when accumulating)."""
        groups = flat_groups(params)
        if self.gradient_accumulation_steps > 1 and not self._accumulate(groups):
            return
        # a Python float whatever was set (an int, a NumPy scalar): every update path then
        # rounds it the same way
        self.lr = self._checked_lr(self.schedule(self.iterations) if self.schedule is not None
                                   else self.lr)
        self.iterations += 1
        if self.clipvalue is not None or self.clipnorm is not None:
            self._clip([g.grad for g in groups])
        for group in groups:
            self.update(group.data, group.grad, self._state(group))

    def _checked_lr(self, lr: Any) -> float:
        """The learning rate of the next update (from the schedule, a callback or set by
        hand): a finite number >= 0. Zero is allowed (a warm-up starting at 0, a cosine
        decay ending at 0); a negative rate would climb the loss and NaN/inf would
        destroy every weight, so they stop training here, before the update."""
        try:
            value = float(lr)
        except (TypeError, ValueError):
            value = math.nan
        if value >= 0.0 and value != math.inf:
            return value
        source = (f"the schedule {self.schedule!r} returned" if self.schedule is not None
                  else "the optimizer's lr (set by hand or by a callback) is")
        raise ValueError(
            f"{type(self).__name__}: {source} lr={lr!r} for step {self.iterations + 1}; a "
            "learning rate must be a finite number >= 0 (a negative one makes gradient "
            "ascent): check the schedule's arguments (e.g. a positive initial lr, min_lr >= 0)"
        )

    def _accumulate(self, groups: list[FlatGroup]) -> bool:
        """Add the gradients to each group's accumulator; on the k-th call put their mean
        in the gradient buffers, clear the accumulators and return True."""
        k = self.gradient_accumulation_steps
        self._accumulated += 1
        for group in groups:
            state = self._state(group)
            total = state.get("_grad_sum")
            if total is None or total.shape != group.grad.shape:
                total = state["_grad_sum"] = backend.xp.zeros_like(group.grad)
            total += group.grad
            if self._accumulated == k:
                group.grad[...] = total * (1.0 / k)
                total[...] = 0.0
        if self._accumulated < k:
            return False
        self._accumulated = 0
        return True

    def update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        """Update the flat ``param`` in place; ``state`` holds this group's flat state."""
        raise NotImplementedError

    def _state(self, group: FlatGroup) -> dict[str, Any]:
        state = self._states.get(id(group))
        if state is None or state.get("_group") is not group:
            xp = backend.xp
            state = {name: xp.zeros_like(group.data) for name in self.state_names}
            self._carry_over(group, state)
            state["_group"] = group
            self._states[id(group)] = state
        return state

    def _carry_over(self, group: FlatGroup, state: dict[str, Any]) -> None:
        """Parameters repacked into a new group (a changed parameter list) keep their
        state; states of groups no parameter lives in any more are dropped."""
        for old in list(self._states.values()):
            old_group: FlatGroup = old["_group"]
            for j, p in enumerate(group.params):
                k = next((i for i, q in enumerate(old_group.params) if q is p), None)
                if k is not None:
                    for name in self.state_names:
                        if name in old:
                            group.view(state[name], j)[...] = old_group.view(old[name], k)
            if not any(p.group is old_group for p in old_group.params):
                del self._states[id(old_group)]

    @staticmethod
    def _for_chunks(state: dict[str, Any], update: Callable[..., None], *flats: Any,
                    scratches: int = 1) -> None:
        """``update(*chunks, *scratch)`` over matching slices of the flat arrays, with
        ``scratches`` scratch arrays of their length, for in-place updates with no temporaries
        (:meth:`dnn.backend.library.ArrayLibrary.elementwise_into`). On the CPU a slice is a cache-sized
        chunk of the buffer (so the scratch stays small and hot) and the chunks are shared
        out over the elementwise threads (:mod:`dnn.backend.threads`), each taking a
        contiguous run of them with a scratch row of its own; on a GPU it is the whole
        buffer."""
        n = flats[0].shape[0]
        size = min(n, backend.library.scratch_elements())
        starts = list(range(0, n, size))
        workers = min(threads.num_threads(), len(starts))
        scratch = state.get("_scratch")
        if scratch is None or tuple(scratch.shape) != (workers, scratches, size) or \
                scratch.dtype != flats[0].dtype:
            scratch = state["_scratch"] = backend.xp.empty((workers, scratches, size),
                                                           dtype=flats[0].dtype)

        def run(worker: int) -> None:
            tmps = [scratch[worker, j, :] for j in range(scratches)]
            for start in starts[worker * len(starts) // workers:
                                (worker + 1) * len(starts) // workers]:
                stop = min(start + size, n)
                update(*(f[start:stop] for f in flats), *(t[: stop - start] for t in tmps))

        threads.run([functools.partial(run, w) for w in range(workers)])

    def _clip(self, grads: list[Any]) -> None:
        xp = backend.xp
        if self.clipvalue is not None:
            for g in grads:
                g[...] = backend.library.clip(g, -self.clipvalue, self.clipvalue)
        if self.clipnorm is not None:  # global norm over all parameters, as torch's clip_grad_norm_
            norm = xp.sqrt(sum(xp.sum(g * g) for g in grads))
            scale = xp.minimum(self.clipnorm / (norm + 1e-6), 1.0)
            for g in grads:
                g *= xp.astype(scale, g.dtype)

    # ---------------------------------------------------------------- state
    def state_dict(self, params: list[Parameter]) -> dict[str, Any]:
        """Counters and per-parameter state slices (``"3.exp_avg"``: state of params[3])."""
        arrays: dict[str, Any] = {}
        index: dict[int, int] = {}
        for i, p in enumerate(params):
            index.setdefault(id(p), i)  # a shared parameter is named by its first index
        for state in self._states.values():
            group: FlatGroup = state["_group"]
            for j, p in enumerate(group.params):
                if id(p) in index:
                    for name in self.state_names:
                        arrays[f"{index[id(p)]}.{name}"] = group.view(state[name], j)
        return {"iterations": self.iterations, "lr": self.lr, "arrays": arrays}

    def load_state_dict(self, params: list[Parameter], state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, for the same parameter list; state that
        it does not hold (a parameter never stepped) starts from zeros, as in a new optimizer."""
        self.iterations = int(state["iterations"])
        self.lr = float(state["lr"])
        arrays = state["arrays"]
        index: dict[int, int] = {}
        for k, q in enumerate(params):
            index.setdefault(id(q), k)  # a shared parameter is named by its first index
        for group in flat_groups(params):
            flat_state = self._state(group)
            for j, p in enumerate(group.params):
                i = index[id(p)]
                for name in self.state_names:
                    key = f"{i}.{name}"
                    view = group.view(flat_state[name], j)
                    if key in arrays:
                        view[...] = backend.asarray(arrays[key], dtype=group.data.dtype)
                    else:
                        view[...] = 0.0

    def get_config(self) -> dict[str, Any]:
        config = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.gradient_accumulation_steps > 1:
            config["gradient_accumulation_steps"] = self.gradient_accumulation_steps
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
