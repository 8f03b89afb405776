"""Whole training steps agree across backends: an MLP (Adam), the reference CNN (SGD with
momentum) and an LSTM -> Dense (RMSprop), each started from the same weights on NumPy and on
every other installed backend, give the same loss at every step and the same parameters after
three ``Sequential.train_step`` calls (forward, loss, backward, optimizer step on the flat
parameter buffers). float64: rtol 1e-9; float32: rtol 1e-4.

On a CUDA GPU TF32 is turned off for torch here (the fixture below); CuPy leaves TF32 off
unless ``CUPY_TF32=1`` is set (see tests/test_layer_parity.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from dnn.optim import SGD, Adam, RMSprop
from tests.conftest import BACKEND_NAMES, backend_params

OTHER_BACKENDS = backend_params([n for n in BACKEND_NAMES if n != "numpy"])
TOL = {"float64": {"rtol": 1e-9, "atol": 1e-12}, "float32": {"rtol": 1e-4, "atol": 1e-5}}
STEPS = 3


pytestmark = pytest.mark.usefixtures("no_tf32")


def mlp() -> dnn.Sequential:
    return dnn.Sequential([Dense(12, 16), ReLU(), Dense(16, 16), Tanh(), Dense(16, 4)])


def cnn() -> dnn.Sequential:
    """The reference CNN at a small size: 1x8x8 input -> 16x2x2 -> 10 classes."""
    return dnn.Sequential([
        Conv2D(1, 8, 3, padding=1), ReLU(), MaxPool2D(2),
        Conv2D(8, 16, 3, padding=1), ReLU(), MaxPool2D(2),
        Flatten(), Dense(16 * 2 * 2, 10),
    ])


def lstm() -> dnn.Sequential:
    return dnn.Sequential([LSTM(5, 8), Dense(8, 3)])


#: name -> (build, optimizer, input shape, classes)
MODELS: dict[str, tuple[Callable[[], dnn.Sequential], Callable[[], Any], tuple[int, ...], int]] = {
    "mlp": (mlp, lambda: Adam(lr=0.01), (16, 12), 4),
    "cnn": (cnn, lambda: SGD(lr=0.05, momentum=0.9), (8, 1, 8, 8), 10),
    "lstm": (lstm, lambda: RMSprop(lr=0.01), (6, 7, 5), 3),
}


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    _, _, shape, classes = MODELS[name]
    rng = np.random.default_rng(2024)
    return rng.standard_normal(shape), rng.integers(0, classes, size=shape[0]).astype(np.int64)


def _initial_state(name: str, dtype: str) -> dict[str, np.ndarray]:
    """Weights drawn once on NumPy (with non-zero biases), as host arrays."""
    dnn.set_backend("numpy")
    dnn.set_default_dtype(dtype)
    dnn.manual_seed(0)
    model = MODELS[name][0]()
    rng = np.random.default_rng(5)
    state = {}
    for key, value in model.state_dict().items():
        arr = np.array(backend.to_numpy(value), dtype=np.float64)
        if key.endswith("bias"):
            arr = arr + 0.1 * rng.standard_normal(arr.shape)
        state[key] = arr
    return state


def _train(name: str, backend_name: str, dtype: str, state: dict[str, np.ndarray]):
    build, make_opt, _, _ = MODELS[name]
    dnn.set_backend(backend_name)
    dnn.set_default_dtype(dtype)
    dnn.manual_seed(0)
    model = build()
    model.load_state_dict(state)
    model.compile(loss="SoftmaxCrossEntropy", optimizer=make_opt())
    x, y = _data(name)
    x, y = dnn.to_device(x), dnn.to_device(y)
    losses = []
    for _ in range(STEPS):
        loss = model.train_step(x, y)
        # NumPy reductions give NumPy scalars; every other backend must stay on its own arrays
        assert backend_name == "numpy" or backend.is_array(loss), (
            f"train_step on {backend_name} returned {type(loss)}")
        losses.append(float(loss))
    params = {k: np.array(backend.to_numpy(v), copy=True) for k, v in model.state_dict().items()}
    return np.asarray(losses), params


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("other", OTHER_BACKENDS)
@pytest.mark.parametrize("name", list(MODELS))
def test_training_steps_agree_with_numpy(name: str, other: str, dtype: str):
    state = _initial_state(name, dtype)
    want_losses, want_params = _train(name, "numpy", dtype, state)
    got_losses, got_params = _train(name, other, dtype, state)
    tol = TOL[dtype]
    np.testing.assert_allclose(got_losses, want_losses, err_msg=f"{name}: losses per step", **tol)
    assert set(got_params) == set(want_params) == set(state)
    for key in state:
        assert got_params[key].dtype == np.dtype(dtype)
        np.testing.assert_allclose(got_params[key], want_params[key],
                                   err_msg=f"{name}: {key} after {STEPS} steps", **tol)
    # the steps really trained: parameters moved and the loss changed
    assert all(not np.allclose(want_params[k], state[k]) for k in state)
    assert want_losses[-1] != want_losses[0]
