"""Freezing (``trainable``) and gradient accumulation, on every backend.

- Frozen weights are bit-identical after ``fit``, get no gradient (a frozen first Dense
  skips its weight-gradient product) and no optimizer state; changing ``trainable``
  after ``compile`` is an error until the next ``compile``.
- ``gradient_accumulation_steps=4`` on micro-batches of 16 equals one batch of 64, step
  after step, for SGD (momentum) and Adam: rtol 1e-10 in float64, 1e-6 in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import Dense, ReLU, Tanh
from dnn.optim import SGD, Adam, AdamW
from tests.conftest import to_numpy


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.integers(0, 3, n)


def _mlp() -> dnn.Sequential:
    return dnn.Sequential([Dense(6, 8), Tanh(), Dense(8, 8), ReLU(), Dense(8, 3)])


def test_frozen_layer_unchanged_no_grad_no_state(backend_name):
    model = _mlp()
    frozen = model.layers[0]
    frozen.trainable = False
    before = {k: to_numpy(v).copy() for k, v in frozen.state_dict().items()}
    model.compile(loss="SoftmaxCrossEntropy", optimizer=AdamW(lr=0.05, weight_decay=0.1))
    x, y = _data()
    model.fit(x.astype(np.float32), y, epochs=2, batch_size=16, verbose=0)
    for key, value in frozen.state_dict().items():
        np.testing.assert_array_equal(to_numpy(value), before[key])
    assert frozen.weight.grad is None and frozen.bias.grad is None
    assert all(p.group is None for p in frozen.parameters())
    state = model.optimizer.state_dict(model.optimizer_parameters)
    assert len(model.optimizer_parameters) == 4  # the two trainable Dense layers
    assert len(state["arrays"]) == 4 * 2  # exp_avg and exp_avg_sq of those only
    assert not np.allclose(to_numpy(model.layers[2].weight.data),
                           to_numpy(_mlp().layers[2].weight.data))


def test_trainable_is_recursive_and_per_parameter(backend_name):
    model = _mlp()
    model.trainable = False
    assert not any(p.trainable for p in model.parameters())
    assert not model.layers[2].trainable
    model.trainable = True
    model.layers[2].bias.trainable = False
    model.compile(loss="SoftmaxCrossEntropy", optimizer=SGD(lr=0.1))
    assert model.layers[2].bias not in model.optimizer_parameters
    assert model.layers[2].weight in model.optimizer_parameters


def test_changing_trainable_after_compile_needs_a_compile(backend_name):
    model = _mlp()
    model.compile(loss="SoftmaxCrossEntropy", optimizer="adam")
    x, y = _data()
    model.layers[0].trainable = False
    with pytest.raises(RuntimeError, match=r"changed after compile\(\).*compile\(\.\.\.\) again"):
        model.fit(x, y, epochs=1, verbose=0)
    model.compile(loss="SoftmaxCrossEntropy", optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)


def test_frozen_first_dense_skips_weight_gradient(backend_name):
    first = Dense(6, 8)
    first.trainable = False
    model = dnn.Sequential([first, Tanh(), Dense(8, 3)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=SGD(lr=0.1))
    x, y = _data(8)
    model.train_step(backend.asarray(x.astype(np.float32)), backend.asarray(y))
    assert first.weight.grad is None  # the xᵀ·g product was never formed
    assert model.layers[2].weight.grad is not None


def _run(optimizer, k: int, micro: int, steps: int, dtype: str) -> list[np.ndarray]:
    dnn.set_default_dtype(dtype)
    dnn.manual_seed(3)
    model = _mlp()
    model.compile(loss="SoftmaxCrossEntropy", optimizer=optimizer)
    x, y = _data(micro * k * steps, seed=1)
    xb, yb = backend.asarray(x.astype(dtype)), backend.asarray(y)
    for i in range(0, x.shape[0], micro):
        model.train_step(xb[i:i + micro, ...], yb[i:i + micro])
    return [to_numpy(p.data).copy() for p in model.parameters()]


@pytest.mark.parametrize("make", [lambda k: SGD(lr=0.1, momentum=0.9, gradient_accumulation_steps=k),
                                  lambda k: Adam(lr=0.01, gradient_accumulation_steps=k)],
                         ids=["sgd_momentum", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_accumulation_equals_the_big_batch(backend_name, make, dtype):
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-6, 1e-6)
    accumulated = _run(make(4), k=4, micro=16, steps=3, dtype=dtype)
    big = _run(make(1), k=1, micro=64, steps=3, dtype=dtype)
    for a, b in zip(accumulated, big):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    one_step_less = _run(make(1), k=1, micro=64, steps=2, dtype=dtype)
    assert not all(np.allclose(a, b) for a, b in zip(accumulated, one_step_less))


def test_accumulation_counts_updates(backend_name):
    opt = SGD(lr=0.1, gradient_accumulation_steps=3)
    model = _mlp()
    model.compile(loss="SoftmaxCrossEntropy", optimizer=opt)
    x, y = _data(8)
    start = to_numpy(model.layers[0].weight.data).copy()
    for _ in range(2):
        model.train_step(backend.asarray(x.astype(np.float32)), backend.asarray(y))
        np.testing.assert_array_equal(to_numpy(model.layers[0].weight.data), start)
    model.train_step(backend.asarray(x.astype(np.float32)), backend.asarray(y))
    assert opt.iterations == 1
    assert not np.array_equal(to_numpy(model.layers[0].weight.data), start)
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be an int >= 1"):
        Adam(gradient_accumulation_steps=0)
