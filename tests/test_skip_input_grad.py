"""A layer whose input needs no gradient (``ctx.needs_input_grad`` False: the data) may
skip dL/dx; its parameter gradients must not change."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import Conv2D, Dense, ReLU
from dnn.layers.base import Context
from dnn.parameter import backward_pass

CASES = {
    "dense": (lambda: Dense(6, 4), (5, 6)),
    "conv2d": (lambda: Conv2D(3, 4, 3, padding=1), (2, 3, 5, 5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_without_input_grad_sets_the_same_parameter_grads(float64, name):
    make, shape = CASES[name]
    layer = make()
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal(shape))
    y = layer.forward(x, training=True)
    grad = backend.asarray(rng.standard_normal(tuple(y.shape)))
    assert layer.backward(grad) is not None
    full = [backend.to_numpy(p.grad).copy() for p in layer.parameters()]
    ctx = Context()
    layer.forward_with(ctx, x, training=True)
    ctx.needs_input_grad = False
    with backward_pass():
        assert layer.backward_with(ctx, grad) is None
    for expected, p in zip(full, layer.parameters(), strict=True):
        np.testing.assert_array_equal(backend.to_numpy(p.grad), expected)


def test_train_step_skips_only_the_first_layers_input_grad(float64):
    """A CNN's train_step gives the gradients of a full backward pass."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 6, 6))
    y = rng.integers(0, 3, size=4)
    model = dnn.Sequential([Conv2D(1, 2, 3, padding=1), ReLU(), dnn.layers.Flatten(), Dense(72, 3)])
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.SGD(lr=1e-12))
    xd, yd = backend.asarray(x), backend.asarray(y)
    out = model.forward(xd, training=True)
    model.loss(out, yd)
    model.backward(model.loss.backward())
    expected = [backend.to_numpy(p.grad).copy() for p in model.parameters()]
    model.train_step(xd, yd)  # gradients are taken before the (negligible) step
    for want, p in zip(expected, model.parameters(), strict=True):
        np.testing.assert_allclose(backend.to_numpy(p.grad), want, rtol=1e-12, atol=1e-15)
