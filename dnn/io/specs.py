"""JSON specs of layers, losses, optimizers, schedules and metrics, and back.

A spec is ``{"type": <registered name>, "config": <constructor arguments>}``.
Saving stores the canonical name a class is registered under; loading resolves
``type`` ONLY through the :class:`~dnn.registry.Registry` of its kind
(:data:`dnn.layers.base.REGISTRY`, :data:`dnn.losses.REGISTRY`,
:data:`dnn.optim.OPTIMIZERS`, :data:`dnn.optim.schedules.SCHEDULES`,
:data:`dnn.metrics.METRICS`), which accepts a canonical name or an alias: a
file can name a class that is already registered, never make Python import,
evaluate or unpickle anything.

Nested layers (``Sequential(layers=[...])``, ``Residual(block)``) are specs
inside a config: a config value that is a layer becomes its spec on saving, and
a ``{"type", "config"}`` object inside a layer config becomes a layer again on
loading. A layer class may define ``from_config(config)`` (a classmethod) when
its constructor does not take its config as keyword arguments.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

from dnn import losses, optim
from dnn import metrics as metric_lib
from dnn.errors import SerializationError
from dnn.layers.base import REGISTRY, Layer
from dnn.optim import schedules
from dnn.registry import Registry

_SCALARS = (str, int, float, bool, type(None))


class SpecError(SerializationError):
    """A spec that cannot be encoded or built; the caller adds the file path."""


# ------------------------------------------------------------------ encoding
def encode_layer(layer: Layer, where: str = "model") -> dict[str, Any]:
    """``{"type", "config"}`` for a registered layer (nested layers become specs)."""
    _check_registered(layer, where)
    spec = {"type": REGISTRY.name_of(type(layer)),
            "config": _encode_value(layer.get_config(), f"{where} {layer.describe()}")}
    _check_spec_types(spec, where)
    return spec


def _check_registered(layer: Layer, where: str) -> None:
    """The layer and every layer it holds (``layers``, ``block``, ...) must be registered."""
    cls = type(layer)
    if REGISTRY.name_of(cls) is None:
        raise SpecError(
            f"{where}: layer {layer.describe()} of class {cls.__module__}.{cls.__name__} is not "
            "registered; decorate the class with @dnn.layers.register so files can name it"
        )
    for value in vars(layer).values():
        children = value if isinstance(value, (list, tuple)) else [value]
        for child in children:
            if isinstance(child, Layer):
                _check_registered(child, where)


def _check_spec_types(value: Any, where: str) -> None:
    """Every nested ``{"type", "config"}`` in a config must name a registered layer."""
    if isinstance(value, dict):
        if set(value) == {"type", "config"} and value["type"] not in REGISTRY:
            raise SpecError(f"{where}: the config names layer type {value['type']!r}, which is not "
                            "registered (decorate it with @dnn.layers.register)")
        for v in value.values():
            _check_spec_types(v, where)
    elif isinstance(value, list):
        for v in value:
            _check_spec_types(v, where)


def _encode_value(value: Any, where: str) -> Any:
    if isinstance(value, Layer):
        return encode_layer(value, where)
    if isinstance(value, schedules.Schedule):
        return encode_schedule(value, where)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SpecError(f"{where}: config keys must be strings, got {k!r}")
            out[k] = _encode_value(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, where) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # NumPy / 0-d scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{where}: config value {value!r} is not finite; JSON cannot store it")
    if isinstance(value, _SCALARS):
        return value
    raise SpecError(
        f"{where}: config value of type {type(value).__name__} cannot be stored in a model file "
        "(only numbers, strings, booleans, None, lists, dicts and layers)"
    )


def encode_schedule(schedule: Any, where: str = "optimizer") -> dict[str, Any]:
    name = schedules.SCHEDULES.name_of(type(schedule))
    if name is None:
        raise SpecError(f"{where}: schedule {type(schedule).__name__} is not registered; decorate "
                        "the class with @dnn.optim.schedules.register so files can name it")
    return {"type": name, "config": _encode_value(schedule.get_config(), f"{where} {name}")}


def encode_loss(loss: Any) -> dict[str, Any] | None:
    name = losses.REGISTRY.name_of(type(loss))
    if name is None:
        warnings.warn(f"save: loss {type(loss).__name__} is not registered in dnn.losses.REGISTRY; "
                      "the file keeps the weights but not the compiled loss/optimizer", stacklevel=4)
        return None
    return {"type": name, "config": _encode_value(loss.get_config(), f"loss {name}")}


def encode_optimizer(opt: Any) -> dict[str, Any] | None:
    name = optim.OPTIMIZERS.name_of(type(opt))
    if name is None:
        warnings.warn(f"save: optimizer {type(opt).__name__} is not in dnn.optim.OPTIMIZERS; the "
                      "file keeps the weights but not the compiled loss/optimizer", stacklevel=4)
        return None
    config = dict(opt.get_config())
    for arg in ("clipnorm", "clipvalue"):  # set by the constructor or compile(clipnorm=)
        if getattr(opt, arg, None) is not None:
            config[arg] = float(getattr(opt, arg))
    if opt.schedule is not None:
        if isinstance(opt.schedule, schedules.Schedule):
            config["lr"] = encode_schedule(opt.schedule, f"optimizer {name}")
        else:
            warnings.warn(f"save: the learning-rate schedule {opt.schedule!r} is not a "
                          "dnn.optim.schedules.Schedule; the file stores the current lr "
                          f"{opt.lr} as a constant", stacklevel=4)
    return {"type": name, "config": _encode_value(config, f"optimizer {name}")}


def encode_metric(metric: Any) -> dict[str, Any] | None:
    name = metric_lib.METRICS.name_of(type(metric))  # "accuracy", as files have always stored
    if name is None:
        warnings.warn(f"save: metric {type(metric).__name__} is not in dnn.metrics.METRICS and "
                      "is left out of the file", stacklevel=4)
        return None
    return {"type": name, "config": _encode_value(_metric_config(metric), f"metric {name}")}


def _metric_config(metric: Any) -> dict[str, Any]:
    """Constructor arguments of a metric: ``get_config()``, else the attributes named like
    the constructor's parameters — kept only if they rebuild the metric."""
    if hasattr(metric, "get_config"):
        return dict(metric.get_config())
    try:
        names = list(inspect.signature(type(metric).__init__).parameters)[1:]
    except (TypeError, ValueError):
        return {}
    config = {n: getattr(metric, n) for n in names
              if isinstance(getattr(metric, n, None), _SCALARS)}
    try:
        type(metric)(**config)
    except Exception:
        return {}
    return config


# ------------------------------------------------------------------ decoding
def _spec_parts(spec: Any, where: str, kind: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise SpecError(f"{where}: a {kind} must be a JSON object with keys 'type' and 'config', "
                        f"got {_short(spec)}")
    name, config = spec["type"], spec["config"]
    if not isinstance(name, str):
        raise SpecError(f"{where}: {kind} type must be a string, got {_short(name)}")
    if not isinstance(config, dict):
        raise SpecError(f"{where}: config of {kind} {name!r} must be a JSON object, got {_short(config)}")
    return name, config


def _lookup(registry: Registry, name: str, where: str, kind: str) -> type:
    """The class a file names (canonical name or alias), found only in ``registry`` (a file
    never makes us import a name)."""
    cls = registry.lookup(name)
    if cls is None:
        raise SpecError(f"{where}: unknown {kind} {name!r}; known: {', '.join(registry.names())}")
    return cls


def decode_layer(spec: Any, where: str = "architecture") -> Layer:
    """Build a layer from its spec, resolving every type through the layer REGISTRY only."""
    name, config = _spec_parts(spec, where, "layer")
    cls = _lookup(REGISTRY, name, where, "layer type")
    kwargs = {k: _decode_value(v, f"{where}.{k}") for k, v in config.items()}
    try:
        from_config = getattr(cls, "from_config", None)
        layer = from_config(kwargs) if callable(from_config) else cls(**kwargs)
    except SerializationError as exc:
        if getattr(exc, "unlocated", False):  # refused while building this very layer: say where
            exc.args, exc.unlocated = (f"{where} ({name}): {exc}",), False
        raise
    except Exception as exc:  # TypeError (unknown argument), ValueError (bad value), ...
        raise SpecError(f"{where}: cannot build {name} from config {_short(config)} "
                        f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(layer, Layer):
        raise SpecError(f"{where}: {name}.from_config returned {type(layer).__name__}, not a layer")
    return layer


def _decode_value(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"type", "config"}:
            return decode_layer(value, where)
        return {k: _decode_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def decode_schedule(spec: Any, where: str) -> Any:
    name, config = _spec_parts(spec, where, "schedule")
    cls = _lookup(schedules.SCHEDULES, name, where, "schedule type")
    kwargs = {k: decode_schedule(v, f"{where}.{k}") if isinstance(v, dict) else v
              for k, v in config.items()}
    return _construct(cls, kwargs, where)


def decode_loss(spec: Any) -> Any:
    name, config = _spec_parts(spec, "compile.loss", "loss")
    cls = _lookup(losses.REGISTRY, name, "compile.loss", "loss")
    return _construct(cls, config, "compile.loss")


def decode_optimizer(spec: Any) -> Any:
    name, config = _spec_parts(spec, "compile.optimizer", "optimizer")
    cls = _lookup(optim.OPTIMIZERS, name, "compile.optimizer", "optimizer")
    config = dict(config)
    if isinstance(config.get("lr"), dict):
        config["lr"] = decode_schedule(config["lr"], "compile.optimizer.lr")
    return _construct(cls, config, "compile.optimizer")


def decode_metric(spec: Any) -> Any:
    name, config = _spec_parts(spec, "compile.metrics", "metric")
    cls = _lookup(metric_lib.METRICS, name, "compile.metrics", "metric")
    return _construct(cls, config, f"compile.metrics {name}")


def _construct(cls: type, kwargs: dict[str, Any], where: str) -> Any:
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise SpecError(f"{where}: cannot build {cls.__name__} from config {_short(kwargs)} "
                        f"({type(exc).__name__}: {exc})") from exc


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
