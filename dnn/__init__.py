"""dnn — a deep learning framework written from first principles.

Every layer, loss and optimizer is plain array math with an explicit forward
and backward pass, written once against the array namespace ``dnn.backend.xp``
(NumPy, CuPy, PyTorch or array-api-strict, chosen by ``DNN_BACKEND``).
"""

from dnn import backend, callbacks, data, datasets, distributed, init, layers, losses, metrics, optim
from dnn.backend import set_backend, set_default_dtype, synchronize, to_device, to_numpy
from dnn.backend.random import manual_seed
from dnn.backend.threads import num_threads, set_num_threads
from dnn.errors import BackendError, SerializationError, ShapeError
from dnn.gradcheck import gradcheck
from dnn.graph import Input
from dnn.history import History
from dnn.io import load_model
from dnn.model import Model, Sequential
from dnn.parameter import Parameter

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "History",
    "Input",
    "Model",
    "Parameter",
    "Sequential",
    "SerializationError",
    "ShapeError",
    "backend",
    "callbacks",
    "data",
    "datasets",
    "distributed",
    "gradcheck",
    "init",
    "layers",
    "load_model",
    "losses",
    "manual_seed",
    "metrics",
    "num_threads",
    "optim",
    "set_backend",
    "set_default_dtype",
    "set_num_threads",
    "synchronize",
    "to_device",
    "to_numpy",
]


def __getattr__(name: str):  # PEP 562: submodules that load on first use
    """``dnn.callbacks``, ``dnn.models``, ``dnn.plot`` and ``dnn.transformer`` are imported
    when first touched."""
    if name in ("callbacks", "models", "plot", "transformer"):
        import importlib

        return importlib.import_module(f"dnn.{name}")
    raise AttributeError(f"module 'dnn' has no attribute {name!r}")
