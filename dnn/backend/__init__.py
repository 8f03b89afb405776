"""The one place that chooses and imports the array library.

Everything else in ``dnn`` reads the active namespace as ``backend.xp`` (an
``array_api_compat``-wrapped module written against the Array API standard)
and asks :data:`library`, the active library's object
(:class:`~dnn.backend.library.ArrayLibrary` and its NumPy, CuPy and torch
subclasses), for what the standard lacks: random generators, in-place
arithmetic, clip/sign/erf, scatter-add, device transfer and synchronisation.
Sliding windows live in :mod:`dnn.backend.windows`.

The backend is chosen by ``DNN_BACKEND`` at import time (``numpy`` by default)
and can be switched with :func:`set_backend` before models are built. A
``DNN_BACKEND`` that cannot be used (unknown name, library not installed, CuPy
without a GPU) never breaks ``import dnn``: the import falls back to numpy
with a :class:`BackendWarning` naming the variable and the reason, and
:data:`fallback` keeps that reason for ``dnn info``. :func:`status` tells,
for any backend, whether it is installed and usable here and why not.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from dnn.errors import BackendError

#: backend name -> (module to import, how to install it). The distribution on PyPI named
#: "dnn" is an unrelated project, so no hint asks pip for dnn[...]: each names the
#: library's own package, or the extra of a dnn checkout (quoted, so zsh accepts it).
BACKENDS: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "pip install numpy"),
    "cupy": ("cupy", "pip install cupy-cuda12x (CUDA 12; cupy-cuda13x for CUDA 13), or from a "
                     "dnn checkout: pip install -e \".[cupy]\" (\".[cupy13]\" for CUDA 13)"),
    "torch": ("torch", "pip install torch (CPU-only build: pip install torch --index-url "
                       "https://download.pytorch.org/whl/cpu), or from a dnn checkout: "
                       "pip install -e \".[torch]\""),
    "array_api_strict": ("array_api_strict", "pip install array-api-strict, or from a dnn "
                                             "checkout: pip install -e \".[strict]\""),
}
#: backend name -> "module:class" of its library object (dnn.backend.library.ArrayLibrary)
LIBRARIES: dict[str, str] = {
    "numpy": "dnn.backend.numpy_library:NumpyLibrary",
    "cupy": "dnn.backend.cupy_library:CupyLibrary",
    "torch": "dnn.backend.torch_library:TorchLibrary",
    "array_api_strict": "dnn.backend.library:ArrayLibrary",
}

#: the active backend's name, its raw module, its Array API namespace and its library object
name: str = "numpy"
module: ModuleType = np
xp: Any = None
library: Any = None
#: why the DNN_BACKEND asked for at import could not be used (None when it was, or when
#: set_backend has chosen a backend since)
fallback: str | None = None
#: the default floating dtype of the active namespace (float32 unless changed)
_default_dtype_name = "float32"


class BackendWarning(UserWarning):
    """``DNN_BACKEND`` names a backend that cannot be used here; dnn runs on numpy instead."""


class BackendStatus(NamedTuple):
    """What :func:`status` finds out about one backend."""

    name: str
    installed: bool
    usable: bool
    version: str | None
    why: str | None  # None when usable; else what is wrong and how to fix it

    def describe(self) -> str:
        if self.usable:
            return f"usable ({self.version})" if self.version else "usable"
        return ("installed, not usable: " if self.installed else "not installed: ") + str(self.why)


def _normalise(backend: str) -> str:
    if not isinstance(backend, str):
        raise ValueError(f"set_backend: expected a backend name (one of {', '.join(BACKENDS)}), "
                         f"got {backend!r}")
    backend = backend.strip().lower().replace("-", "_")
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}; valid names are {', '.join(BACKENDS)}"
        )
    return backend


def _load(backend: str) -> ModuleType:
    """Import ``backend``'s library and check it can run here; BackendError says why not."""
    mod_name, install = BACKENDS[backend]
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name != mod_name.split(".")[0]:  # the library is there, one of ITS imports is not
            raise BackendError(
                f"backend {backend!r} is installed but importing {mod_name} failed "
                f"({type(exc).__name__}: {exc}); repair or reinstall it: {install}"
            ) from exc
        raise BackendError(
            f"backend {backend!r} is not available ({type(exc).__name__}: {exc}); "
            f"install it with: {install}"
        ) from exc
    except Exception as exc:  # installed, but it fails while importing (a broken install)
        raise BackendError(
            f"backend {backend!r} is installed but importing {mod_name} failed "
            f"({type(exc).__name__}: {exc}); repair or reinstall it: {install}"
        ) from exc
    _library_class(backend).check_usable(mod)
    return mod


def status(backend: str) -> BackendStatus:
    """Whether ``backend`` is installed and usable here (and why not), without switching to it."""
    backend = _normalise(backend)
    mod_name, install = BACKENDS[backend]
    if importlib.util.find_spec(mod_name) is None:
        return BackendStatus(backend, False, False, None, f"install it with: {install}")
    try:
        mod = _load(backend)
    except BackendError as exc:
        return BackendStatus(backend, True, False, None, str(exc))
    version = getattr(mod, "__version__", None)
    return BackendStatus(backend, True, True, f"{mod_name} {version}" if version else None, None)


def set_backend(backend: str) -> None:
    """Switch the array library, e.g. ``set_backend("cupy")``.

    Raises ``ValueError`` for an unknown name and :class:`dnn.BackendError`
    for a known one that cannot be used here: not installed (it names the
    ``pip install`` that provides it) or, for CuPy, no usable GPU/driver.
    Build models after switching: parameters live on the backend they were
    created on.
    """
    global name, module, xp, fallback, library
    backend = _normalise(backend)
    mod = _load(backend)
    cls = _library_class(backend)
    namespace = cls.namespace(mod)
    name, module, xp, library = backend, mod, namespace, cls(mod, namespace)
    fallback = None
    from dnn.backend import random as _random

    _random.reset()


def _library_class(backend: str) -> type:
    """The :class:`~dnn.backend.library.ArrayLibrary` subclass of ``backend``."""
    module_name, class_name = LIBRARIES[backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)


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
    return library.asarray(x, dtype)


to_device = asarray


def to_numpy(x: Any) -> np.ndarray:
    """Copy a backend array to host memory as a NumPy array."""
    return library.to_numpy(x)


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of the active backend."""
    return library.is_array(x)


def synchronize() -> None:
    """Wait for queued device work (a no-op on the CPU); call it around GPU timings."""
    library.synchronize()


def device_name() -> str:
    """A short description of where arrays of the active backend live."""
    return library.device_name()


def memory_stats() -> dict[str, int]:
    """Bytes in use and peak on the device (CuPy memory pool, torch CUDA); empty on CPU."""
    return library.memory_stats()


def _external_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside the dnn package
    (warnings skips importlib's frames itself, so they are not counted)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None:
        filename = frame.f_code.co_filename
        internal = "importlib" in filename and "_bootstrap" in filename
        if not internal:
            if not os.path.abspath(filename).startswith(package):
                return level
            level += 1
        frame = frame.f_back
    return level


def _is_the_dnn_command() -> bool:
    """Whether this process is the ``dnn`` command (``python -m dnn`` or the console script),
    which reports the fallback itself as one ``dnn: warning:`` line."""
    orig = list(getattr(sys, "orig_argv", ()))
    if "-m" in orig[:-1] and orig[orig.index("-m") + 1] in ("dnn", "dnn.cli", "dnn.__main__"):
        return True
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script in ("dnn", "dnn.exe", "dnn-script.py")


#: the fallback message the dnn command still has to print (set instead of a warning there)
cli_notice: str | None = None


def _initial_backend() -> None:
    """Select ``$DNN_BACKEND`` at import; when it cannot be used, warn and run on numpy."""
    global fallback, cli_notice
    requested = os.environ.get("DNN_BACKEND", "")
    if not requested.strip():
        set_backend("numpy")
        return
    try:
        set_backend(requested)
    except (ValueError, BackendError) as exc:
        set_backend("numpy")
        fallback = f"DNN_BACKEND={requested!r} cannot be used: {exc}"
        message = (f"{fallback}. dnn falls back to numpy; set DNN_BACKEND to a usable backend "
                   "(or unset it) to silence this warning")
        if _is_the_dnn_command():
            cli_notice = message
        else:
            warnings.warn(message, BackendWarning, stacklevel=_external_stacklevel())


_initial_backend()
