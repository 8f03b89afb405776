"""``save_model`` / ``load_model`` and ``save_weights`` / ``load_weights``.

What a model file holds (see :mod:`dnn.io.container` for the byte layout):

- metadata (JSON): format name and version, the dnn version that wrote it, the
  backend and floating dtype it was saved from, the architecture as a layer
  spec (a graph model: its layers by name, its nodes with the tensors they
  read, its outputs), ``ties`` (state keys whose parameter is the one at an
  earlier key: tied weights, stored once), ``frozen`` (keys of parameters with
  ``trainable = False``), and when the model was compiled: one loss per output,
  loss weights, optimizer (class + config, the lr schedule as a spec), one
  metric list per output, optimizer counters (``iterations``, ``lr``), the
  number of finished epochs and the random generator's state;
- arrays: ``state/<key>`` for every entry of ``model.state_dict()`` (parameters
  and buffers), ``optimizer/<i>.<name>`` for the optimizer's per-parameter
  state, ``rng/torch`` for a torch generator state.

Arrays are stored as NumPy arrays on the host, so a file saved from one
backend loads on any other. Loading builds the model from the architecture
(shared layers are one layer at several nodes again) within the memory the
file's arrays can back (:mod:`dnn.io.building`), re-ties tied parameters, then
checks every array against the shape and dtype the built model expects; the
work is linear in the number of layers and arrays. Format 1 files (Sequential,
one loss) still load. Saving checks the destination before encoding anything
(:func:`dnn.io.files.check_destination`) and writes atomically.
Resume: the generator state is attached to the loaded model, and
``fit(..., initial_epoch=k)`` with ``k > 0`` restores it before training (see
``Model.fit``); with the same backend the continued run is bitwise the
run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from dnn import backend
from dnn.backend import random
from dnn.errors import SerializationError
from dnn.io.building import build_model
from dnn.io.container import Archive, fail, write_archive
from dnn.io.files import check_destination
from dnn.io.sharing import load_state, ties, unique_state
from dnn.io.specs import SpecError, encode_layer, encode_loss, encode_metric, encode_optimizer

#: the model-file format this code writes; files with a larger version are refused
FORMAT = "dnn"
FORMAT_VERSION = 2


# ---------------------------------------------------------------------- saving
def save_model(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` (architecture, weights, compile settings, optimizer state,
    epoch counter, RNG state) to one file, atomically.

    The destination is checked before anything is encoded
    (:func:`dnn.io.check_destination`); every OSError names ``path``. In a data-parallel
    run only rank 0 writes (every rank holds the same weights)."""
    if not _writes_files():
        return
    path = check_destination(path)
    with _not_too_deep(path):
        _save_model(model, path)


def _writes_files() -> bool:
    """False on the ranks other than 0 of a data-parallel run."""
    from dnn import distributed

    return distributed.rank() == 0


def _save_model(model: Any, path: str) -> None:
    meta = _header("model")
    try:
        meta["architecture"] = encode_layer(model)
    except SpecError as exc:
        raise SerializationError(f"{os.fspath(path)}: cannot save: {exc}") from exc
    arrays = {f"state/{k}": _host(v) for k, v in unique_state(model).items()}
    meta["dtype"] = _float_dtype_name(arrays)
    meta["ties"] = ties(model)
    meta["frozen"] = [key for key, p in model.named_parameters() if not p.trainable]
    # every parameter's penalties, also those set on a Parameter after the layer was built
    meta["penalties"] = {key: [p.l1, p.l2] for key, p in model.named_parameters()
                         if p.l1 or p.l2}
    meta["compile"] = None
    opt = getattr(model, "optimizer", None)
    if opt is not None and getattr(model, "losses", None):
        loss_specs, opt_spec = [encode_loss(loss) for loss in model.losses], encode_optimizer(opt)
        if None not in loss_specs and opt_spec is not None:
            metrics = [[m for m in (encode_metric(m) for m in ms) if m is not None]
                       for ms in model.output_metrics]
            meta["compile"] = {"loss": loss_specs, "loss_weights": list(model.loss_weights),
                               "optimizer": opt_spec, "metrics": metrics}
            state = opt.state_dict(model.optimizer_parameters)
            meta["optimizer_state"] = {"iterations": int(state["iterations"]), "lr": float(state["lr"])}
            arrays.update({f"optimizer/{k}": _host(v) for k, v in state["arrays"].items()})
    meta["training"] = {"epoch": int(getattr(model, "epoch", 0) or 0)}
    rng = getattr(model, "rng_state", None) or random.get_state()
    if rng["kind"] == "torch":  # a byte string: an array, not JSON
        meta["rng"] = {"kind": "torch"}
        arrays["rng/torch"] = np.asarray(rng["state"], dtype=np.uint8)
    else:
        meta["rng"] = rng  # numpy: PCG64's state dict; counter: seed and counter
    write_archive(path, meta, arrays)


def save_weights(model: Any, path: str | os.PathLike) -> None:
    """Write only ``model.state_dict()`` (parameters and buffers), atomically (the
    destination is checked first, as for :func:`save_model`)."""
    if not _writes_files():
        return
    path = check_destination(path)
    with _not_too_deep(path):
        _save_weights(model, path)


def _save_weights(model: Any, path: str) -> None:
    meta = _header("weights")
    try:
        meta["architecture"] = encode_layer(model)
    except SpecError:
        meta["architecture"] = None  # informative only; weights load by key and shape
    arrays = {f"state/{k}": _host(v) for k, v in unique_state(model).items()}
    meta["dtype"] = _float_dtype_name(arrays)
    meta["ties"] = ties(model)
    write_archive(path, meta, arrays)


@contextlib.contextmanager
def _not_too_deep(path: str) -> Iterator[None]:
    """Turn the RecursionError of walking a model nested hundreds of layers deep into a
    :class:`dnn.SerializationError` naming ``path`` (nothing has been written then)."""
    try:
        yield
    except RecursionError:
        raise SerializationError(
            f"{os.fspath(path)}: cannot save: the model is nested too deeply to save (Python's "
            "recursion limit was reached walking its layers); flatten the nesting, e.g. one "
            "Sequential holding the layers instead of Sequentials inside Sequentials"
        ) from None


def _header(kind: str) -> dict[str, Any]:
    import dnn

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "dnn_version": dnn.__version__,
            "kind": kind, "backend": backend.name}


def _host(arr: Any) -> np.ndarray:
    return np.ascontiguousarray(backend.to_numpy(arr))


def _float_dtype_name(arrays: dict[str, np.ndarray]) -> str:
    for arr in arrays.values():
        if arr.dtype.kind == "f":
            return arr.dtype.name
    return backend._default_dtype_name


# ---------------------------------------------------------------------- loading
def load_model(path: str | os.PathLike, compile: bool = True) -> Any:
    """Rebuild a model saved with ``model.save(path)``, on the active backend.

    ``compile=False`` skips the loss/optimizer (for inference). Raises
    :class:`dnn.SerializationError` (naming the path and the problem) for a
    missing, truncated, corrupted, foreign or inconsistent file.
    """
    with Archive(path) as ar:
        meta = ar.meta
        _check_header(ar, kinds=("model",))
        arch = _field(ar, meta, "architecture", dict)
        dtype = _field(ar, meta, "dtype", str)
        if dtype not in ("float32", "float64"):
            raise fail(ar.path, f"metadata 'dtype' must be 'float32' or 'float64', got {dtype!r}")
        comp = meta.get("compile") if compile else None
        if comp is not None and not isinstance(comp, dict):
            raise fail(ar.path, f"metadata 'compile' must be an object or null, got {comp!r:.80}")
        model = build_model(ar, arch, dtype, comp)
        load_state(model, _read_state(ar, model, cast_floats=False))
        if comp is not None:
            _load_optimizer_state(ar, model)
        training = meta.get("training") or {}
        epoch = training.get("epoch", 0) if isinstance(training, dict) else None
        if not is_int(epoch) or epoch < 0:
            raise fail(ar.path, f"metadata training.epoch must be an int >= 0, got {epoch!r:.80}")
        model.epoch = epoch
        model.rng_state = _read_rng(ar)
        extra = ar.names - set(_expected_names(ar, model))
        if not compile:  # inference only: the training state in the file is not read
            extra = {n for n in extra if not n.startswith("optimizer/")}
        if extra:
            raise fail(ar.path, f"unexpected arrays in the file: {_listing(extra)}")
    return model


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Load parameters and buffers from a model or weights file into ``model``.

    Keys and shapes must match ``model.state_dict()``; float32/float64 are
    converted to the model's dtype, other dtype differences are refused.
    """
    with Archive(path) as ar:
        _check_header(ar, kinds=("model", "weights"))
        load_state(model, _read_state(ar, model, cast_floats=True))


def _check_header(ar: Archive, kinds: tuple[str, ...]) -> None:
    import dnn

    meta = ar.meta
    if meta.get("format") != FORMAT:
        raise fail(ar.path, f"not a dnn model file: metadata 'format' is {meta.get('format')!r:.80}, "
                            f"expected {FORMAT!r}")
    version = meta.get("format_version")
    if not is_int(version) or version < 1:
        raise fail(ar.path, f"metadata 'format_version' must be an int >= 1, got {version!r:.80}")
    if version > FORMAT_VERSION:
        raise fail(ar.path, f"the file has format version {version} (written by dnn "
                            f"{meta.get('dnn_version')!r:.40}); this dnn {dnn.__version__} reads "
                            f"format versions up to {FORMAT_VERSION}: upgrade dnn to load it")
    kind = meta.get("kind")
    if kind not in kinds:
        hint = (" (a weights-only file: build the model and call model.load_weights(path))"
                if kind == "weights" else "")
        raise fail(ar.path, f"file kind is {kind!r:.80}, expected {' or '.join(map(repr, kinds))}{hint}")


def _field(ar: Archive, meta: dict[str, Any], key: str, kind: type) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind):
        what = {dict: "object", str: "string"}.get(kind, kind.__name__)
        raise fail(ar.path, f"metadata {key!r} must be a JSON {what}, got {value!r:.80}")
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _np_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype matching a backend dtype (numpy, torch, array_api_strict, cupy)."""
    return np.dtype(str(dtype).rsplit(".", 1)[-1].strip("'>"))


def _layer_labels(model: Any) -> Any:
    """``label(key)``: how errors name the layer of state key ``key`` (``"layer 2 (Dense)
    weight"``); the children are looked up once, not once per key."""
    children = {name: child.describe() for name, child in model.named_children()}

    def label(key: str) -> str:
        head, _, rest = key.partition(".")
        return f"{children[head]} {rest}" if head in children and rest else key
    return label


def _read_state(ar: Archive, model: Any, cast_floats: bool) -> dict[str, np.ndarray]:
    """Every ``state/<key>`` array, checked against the shape and dtype ``model`` expects."""
    expected = {f"state/{k}": v for k, v in unique_state(model).items()}
    present = {n for n in ar.names if n.startswith("state/")}
    if missing := set(expected) - present:
        label = _layer_labels(model)
        raise fail(ar.path, "arrays missing for the architecture: " + _listing(
            missing, lambda n: f"{n} ({label(n[6:])})"))
    if unexpected := present - set(expected):
        raise fail(ar.path, f"arrays the architecture has no place for: {_listing(unexpected)}")
    label = _layer_labels(model)
    state: dict[str, np.ndarray] = {}
    for name, current in expected.items():
        key = name[len("state/"):]
        want = _np_dtype(current.dtype)
        arr = ar.array(name, shape=tuple(current.shape), dtype=None if cast_floats else want,
                       label=label(key))
        if arr.dtype != want:
            if not (cast_floats and arr.dtype.kind == "f" and want.kind == "f"):
                raise fail(ar.path, f"array {name!r} ({label(key)}) has dtype "
                                    f"{arr.dtype}, expected {want}")
            arr = arr.astype(want)
        state[key] = arr
    return state


def _optimizer_expected(model: Any) -> dict[str, Any]:
    first: dict[int, tuple[int, Any]] = {}
    for i, p in enumerate(model.optimizer_parameters):
        first.setdefault(id(p), (i, p))  # a shared parameter is named by its first index
    return {f"optimizer/{i}.{name}": p for i, p in first.values()
            for name in model.optimizer.state_names}


def _expected_names(ar: Archive, model: Any) -> list[str]:
    names = [f"state/{k}" for k in unique_state(model)]
    if model.optimizer is not None:
        names += list(_optimizer_expected(model))
    if isinstance(ar.meta.get("rng"), dict) and ar.meta["rng"].get("kind") == "torch":
        names.append("rng/torch")
    return names


def _load_optimizer_state(ar: Archive, model: Any) -> None:
    counters = ar.meta.get("optimizer_state")
    if not isinstance(counters, dict):
        raise fail(ar.path, f"metadata 'optimizer_state' must be an object, got {counters!r:.80}")
    iterations, lr = counters.get("iterations"), counters.get("lr")
    if not is_int(iterations) or iterations < 0:
        raise fail(ar.path, f"optimizer_state.iterations must be an int >= 0, got {iterations!r:.80}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not (math.isfinite(lr) and lr > 0):
        raise fail(ar.path, f"optimizer_state.lr must be a finite number > 0, got {lr!r:.80}")
    expected = _optimizer_expected(model)
    present = {n for n in ar.names if n.startswith("optimizer/")}
    if unexpected := present - set(expected):
        raise fail(ar.path, "optimizer arrays the optimizer has no place for: "
                            f"{_listing(unexpected)}")
    # a model that never stepped may have no optimizer arrays; one that did has them all
    if (present or iterations > 0) and (missing := set(expected) - present):
        raise fail(ar.path, f"optimizer arrays missing: {_listing(missing)}")
    arrays = {}
    for name in sorted(present):
        param = expected[name]
        arrays[name[len("optimizer/"):]] = ar.array(
            name, shape=param.shape, dtype=_np_dtype(param.data.dtype), label="optimizer state")
    model.optimizer.load_state_dict(model.optimizer_parameters,
                                    {"iterations": iterations, "lr": float(lr), "arrays": arrays})


def _read_rng(ar: Archive) -> dict[str, Any] | None:
    """The saved generator state, checked (``random.set_state`` applies it only to a
    generator of the same kind, i.e. on a backend that draws the same way)."""
    rng = ar.meta.get("rng")
    if rng is None:
        return None
    kinds = tuple(random.GENERATOR_KINDS)
    if not isinstance(rng, dict) or rng.get("kind") not in kinds:
        raise fail(ar.path, f"metadata 'rng' must be null or an object with kind "
                            f"{' or '.join(map(repr, kinds))}, got {rng!r:.80}")
    if rng["kind"] == "torch":
        arr = ar.array("rng/torch", dtype=np.uint8, label="torch generator state")
        if arr.ndim != 1:
            raise fail(ar.path, f"array 'rng/torch' must be 1-D, got shape {arr.shape}")
        rng = {"kind": "torch", "state": arr}
    try:
        random.GENERATOR_KINDS[rng["kind"]].check_state(rng)
    except Exception as exc:
        raise fail(ar.path, f"the {rng['kind']} generator state is invalid "
                            f"({type(exc).__name__}: {exc})") from exc
    return rng


def _listing(names: Any, show: Any = str, limit: int = 8) -> str:
    names = sorted(names)
    shown = ", ".join(show(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
