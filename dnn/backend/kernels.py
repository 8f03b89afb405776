"""Fused CPU kernels (optional: ``pip install -e ".[fast]"``, which installs Numba).

The hot elementwise work of a training step, written with NumPy ufuncs, is many
passes over memory, each a Python call. Compiled with Numba, each is ONE pass:

- :mod:`dnn.backend.numba_optim`: the Adam and SGD-momentum updates of the flat
  parameter buffers (bitwise the portable path's result);
- :mod:`dnn.backend.numba_pool`: MaxPool2D forward (maximum and arg-max together)
  and backward (each gradient routed to its arg-max), bitwise the portable result;
- :mod:`dnn.backend.numba_windows`: im2col (the windows as GEMM rows) and col2im (the
  scatter-add of a convolution's input gradient), bitwise the portable results;
- :mod:`dnn.backend.numba_activations`: ReLU's backward, g·[y > 0] in one pass;
- :mod:`dnn.backend.numba_lstm`, :mod:`dnn.backend.numba_gru`: the LSTM and GRU cells
  of one time step, forward and backward, in float32, equal to the portable path up to
  the rounding of their vectorisable tanh.

:func:`get` returns the kernel of that name, or None when Numba is not installed or
``DNN_FUSED=0``; the layers and optimizers then take their portable path, which the
tests compare with these. Kernels compile on first use (a second or two each) and are
cached next to their module. The ones with a ``prange`` loop (:func:`spread`) run
serially on the calling thread by default and over ``dnn.num_threads()`` cores when
more are set.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from dnn.backend import threads

_FLOATS = ("float32", "float64")
#: kernel name -> (the module of dnn.backend that defines it, the dtypes it serves)
KERNELS = {
    "adam": ("numba_optim", _FLOATS), "sgd_momentum": ("numba_optim", _FLOATS),
    "max_pool2d": ("numba_pool", _FLOATS), "max_pool2d_grad": ("numba_pool", _FLOATS),
    "im2col": ("numba_windows", _FLOATS), "col2im": ("numba_windows", _FLOATS),
    "relu_grad": ("numba_activations", _FLOATS),
    # float32 only: the cell's tanh is a float32 approximation
    "lstm_cell": ("numba_lstm", ("float32",)), "lstm_cell_grad": ("numba_lstm", ("float32",)),
    "gru_cell": ("numba_gru", ("float32",)), "gru_cell_grad": ("numba_gru", ("float32",)),
}


@functools.cache
def _module(name: str) -> types.ModuleType | None:
    try:
        import numba  # noqa: F401  (installed?)
    except ImportError:
        return None
    return importlib.import_module(f"dnn.backend.{name}")


#: parallel launches one at a time: Numba's work queue aborts the process on concurrent ones
_launch = threading.Lock()


def _choose_threading_layer(numba: Any) -> None:
    """Before dnn's first parallel launch (``dnn.set_num_threads(n > 1)``): Numba's work
    queue, unless a layer was chosen (``NUMBA_THREADING_LAYER``, ``numba.config``) or the
    pool already runs. Numba's default here, OpenMP, spins alongside PyTorch's OpenMP and
    the BLAS threads (reference CNN step, two BLAS threads, two kernel threads: 67.7 ms
    on OpenMP, 19.5 ms on the work queue). Nothing changes while dnn runs its serial
    builds (the default), so a program's own Numba code keeps Numba's choice."""
    from numba.np.ufunc import parallel

    if (numba.config.THREADING_LAYER == "default" and "NUMBA_THREADING_LAYER" not in os.environ
            and not parallel._is_initialized):
        numba.config.THREADING_LAYER = "workqueue"


def get(name: str, dtype: Any) -> Callable[..., Any] | None:
    """The fused kernel ``name`` (a key of :data:`KERNELS`) for arrays of ``dtype``, or None
    (not a dtype it serves — float16, integers —, no Numba, or ``DNN_FUSED=0``)."""
    if os.environ.get("DNN_FUSED", "1") == "0":
        return None
    return _lookup(name, dtype)


@functools.cache
def _lookup(name: str, dtype: Any) -> Callable[..., Any] | None:
    """:func:`get` once per (name, dtype): the layers ask on every call."""
    if name not in KERNELS:
        raise ValueError(f"dnn.backend.kernels: no kernel {name!r}; known: {sorted(KERNELS)}")
    module_name, dtypes = KERNELS[name]
    if np.dtype(dtype).name not in dtypes:
        return None
    module = _module(module_name)
    return None if module is None else getattr(module, name)


def spread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (whose outer loop is a ``numba.prange``) compiled twice: serially, for one
    thread — the default, ``dnn.num_threads() == 1`` — with no thread pool at all (the work
    stays on the caller's core and in its cache: Adam on the MLP's 535,818 parameters 0.29
    ms, against 0.45 ms handed to one pool thread), and in parallel over
    ``dnn.num_threads()`` pool threads when more are asked for."""
    import numba

    def build(suffix: str, **options: Any) -> Any:
        # a copy under its own name: Numba's on-disk cache is keyed by the function's name
        copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                                  fn.__defaults__, fn.__closure__)
        copy.__qualname__ = fn.__qualname__ + suffix
        return numba.njit(cache=True, error_model="numpy", **options)(copy)

    serial, parallel = build("_serial"), build("_parallel", parallel=True)

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        count = threads.num_threads()
        if count == 1:
            return serial(*args)
        with _launch:
            _choose_threading_layer(numba)
            count = min(count, numba.config.NUMBA_NUM_THREADS)
            if numba.get_num_threads() != count:
                numba.set_num_threads(count)
            return parallel(*args)

    return run
