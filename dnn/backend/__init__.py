"""The one place that chooses and imports the array library.

Everything else in ``dnn`` reads the active namespace as ``backend.xp`` (an
``array_api_compat``-wrapped module written against the Array API standard)
and calls the small helpers below for what the standard lacks: random
numbers (:mod:`dnn.backend.random`), sliding windows and scatter-add
(:mod:`dnn.backend.ops`), device transfer and synchronisation.

The backend is chosen by ``DNN_BACKEND`` at import time (``numpy`` by default)
and can be switched with :func:`set_backend` before models are built.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import numpy as np

from dnn.errors import BackendError

#: backend name -> (module to import, pip extra that provides it)
BACKENDS: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "pip install numpy"),
    "cupy": ("cupy", "pip install dnn[cupy]  (a CUDA build, e.g. cupy-cuda12x)"),
    "torch": ("torch", "pip install dnn[torch]"),
    "array_api_strict": ("array_api_strict", "pip install dnn[strict]"),
}

#: the active backend's name, its raw module and its Array API namespace
name: str = "numpy"
module: ModuleType = np
xp: Any = None
#: the default floating dtype of the active namespace (float32 unless changed)
_default_dtype_name = "float32"


def _compat_namespace(backend: str, mod: ModuleType) -> Any:
    if backend == "array_api_strict":
        return mod  # already the standard, nothing to wrap
    import array_api_compat

    return array_api_compat.array_namespace(mod.asarray([0.0]))


def set_backend(backend: str) -> None:
    """Switch the array library, e.g. ``set_backend("cupy")``.

    Raises ``ValueError`` for an unknown name and :class:`dnn.BackendError`
    (with the ``pip install`` that provides it) for a known but missing one.
    Build models after switching: parameters live on the backend they were
    created on.
    """
    global name, module, xp
    backend = backend.strip().lower().replace("-", "_")
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}; valid names are {', '.join(BACKENDS)}"
        )
    mod_name, install = BACKENDS[backend]
    try:
        mod = importlib.import_module(mod_name)
        if backend == "cupy":
            mod.cuda.runtime.getDeviceCount()  # fails without a usable GPU
    except Exception as exc:  # ImportError, CUDA errors: both mean "not usable"
        raise BackendError(
            f"backend {backend!r} is not available ({type(exc).__name__}: {exc}); "
            f"install it with: {install}"
        ) from exc
    name, module, xp = backend, mod, _compat_namespace(backend, mod)
    from dnn.backend import random as _random

    _random.reset()


def set_default_dtype(dtype: Any) -> None:
    """Set the floating dtype new parameters and data use: "float32" or "float64"."""
    global _default_dtype_name
    dtype_name = getattr(dtype, "name", None) or str(dtype)
    dtype_name = dtype_name.replace("torch.", "").rsplit(".", 1)[-1].strip("'>")
    if dtype_name not in ("float32", "float64"):
        raise ValueError(
            f"set_default_dtype: expected 'float32' or 'float64', got {dtype!r}"
        )
    _default_dtype_name = dtype_name


def default_dtype() -> Any:
    """The active namespace's default floating dtype object."""
    return getattr(xp, _default_dtype_name)


def asarray(x: Any, dtype: Any = None) -> Any:
    """Any array (NumPy, backend, nested lists) as an array of the active backend.

    Floating NumPy arrays and Python floats (or lists of them) take the default dtype
    unless ``dtype`` is given; integers and booleans keep theirs."""
    if isinstance(x, (list, tuple, float, int)):
        try:
            x = np.asarray(x)  # every backend then sees the same dtype rule
        except (TypeError, ValueError):  # e.g. a list of device arrays
            pass
    if dtype is None and isinstance(x, np.ndarray) and x.dtype.kind == "f":
        dtype = default_dtype()
    if name == "torch" and isinstance(x, np.ndarray):
        x = np.asarray(x, order="C")  # ascontiguousarray would make 0-d arrays 1-d
    if name == "array_api_strict" and isinstance(x, np.ndarray):
        x = x.tolist() if x.ndim == 0 else x
    return xp.asarray(x, dtype=dtype)


to_device = asarray


def to_numpy(x: Any) -> np.ndarray:
    """Copy a backend array to host memory as a NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    if name == "cupy":
        return module.asnumpy(x)
    if name == "torch":
        return x.detach().cpu().numpy()
    return np.asarray(x)


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of the active backend."""
    if name == "numpy":
        return isinstance(x, np.ndarray)
    if name == "cupy":
        return isinstance(x, module.ndarray)
    if name == "torch":
        return isinstance(x, module.Tensor)
    # array_api_strict does not export its Array class at the top level
    return type(x).__module__.startswith("array_api_strict")


def synchronize() -> None:
    """Wait for queued device work (a no-op on the CPU); call it around GPU timings."""
    if name == "cupy":
        module.cuda.get_current_stream().synchronize()
    elif name == "torch" and module.cuda.is_available():
        module.cuda.synchronize()


def device_name() -> str:
    """A short description of where arrays of the active backend live."""
    if name == "cupy":
        dev = module.cuda.Device()
        props = module.cuda.runtime.getDeviceProperties(dev.id)
        return f"cuda:{dev.id} ({props['name'].decode()})"
    if name == "torch":
        return str(module.empty(0).device)
    return "cpu"


def memory_stats() -> dict[str, int]:
    """Bytes in use and peak on the device (CuPy memory pool, torch CUDA); empty on CPU."""
    if name == "cupy":
        pool = module.get_default_memory_pool()
        return {"used_bytes": pool.used_bytes(), "total_bytes": pool.total_bytes()}
    if name == "torch" and module.cuda.is_available():
        return {
            "used_bytes": module.cuda.memory_allocated(),
            "peak_bytes": module.cuda.max_memory_allocated(),
        }
    return {}


def _initial_backend() -> str:
    return os.environ.get("DNN_BACKEND", "numpy") or "numpy"


set_backend(_initial_backend())
