"""MaxPool2D, AvgPool2D and GlobalAvgPool2D on every installed backend:
float64 gradient checks, values and gradients against torch.nn.functional,
tie-breaking (one winner per window, as torch), shape errors and configs."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.layers import AvgPool2D, GlobalAvgPool2D, MaxPool2D

# (N, C, H, W, kernel, stride, padding)
CASES = [
    (2, 3, 4, 4, 2, None, 0),         # the common case: stride = kernel, tiles exactly
    (1, 2, 5, 7, 2, None, 0),         # odd sizes: the last row/column is dropped (floor)
    (2, 2, 7, 6, 3, 2, 1),            # overlapping windows with padding
    (2, 2, 6, 7, (2, 3), 1, (1, 1)),  # non-square, stride 1
    (1, 1, 9, 9, 3, 3, 0),
    (2, 2, 8, 8, 4, 2, 2),            # padding 2
    (1, 2, 7, 8, 2, 3, 0),            # stride > kernel: gaps
]


def _np(x):
    return backend.to_numpy(x)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _ids(case):
    return "-".join(map(str, case))


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_pool_gradcheck(float64, cls, case):
    n, c, h, w, k, s, p = case
    # distinct values far apart, so a finite-difference step never changes a window's argmax
    x = np.random.default_rng(1).permutation(n * c * h * w).reshape(n, c, h, w) * 0.01
    assert dnn.gradcheck(cls(k, s, p), x, h=1e-6) < 1e-6


@pytest.mark.parametrize("cls,name", [(MaxPool2D, "max_pool2d"), (AvgPool2D, "avg_pool2d")])
@pytest.mark.parametrize("case", [*CASES, (4, 16, 28, 28, 2, None, 0), (3, 5, 13, 11, 3, 2, 1)],
                         ids=_ids)
def test_pool_matches_torch(float64, cls, name, case):
    torch = pytest.importorskip("torch")
    n, c, h, w, k, s, p = case
    layer = cls(k, s, p)
    x = _rand(n, c, h, w)
    y = layer.forward(backend.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, name)(tx, k, s, p)
    assert tuple(y.shape) == tuple(ty.shape) == layer.output_shape((n, c, h, w))
    np.testing.assert_allclose(_np(y), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = _rand(*ty.shape, seed=2)
    dx = layer.backward(backend.asarray(g))
    ty.backward(torch.tensor(g))
    assert tuple(dx.shape) == (n, c, h, w)
    np.testing.assert_allclose(_np(dx), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", [(2, 2, 4, 4, 2, None, 0), (1, 1, 5, 5, 3, 1, 1), (1, 2, 6, 6, 3, 2, 0)],
                         ids=_ids)
def test_maxpool_ties_have_one_winner_as_torch(float64, case):
    """Equal values in a window: the gradient goes to one element (the first in row-major
    order), never split or duplicated — exactly where torch sends it."""
    torch = pytest.importorskip("torch")
    n, c, h, w, k, s, p = case
    x = np.zeros((n, c, h, w))  # every window is a tie
    x[..., 1:3, 1:3] = 2.0  # and a block of equal maxima
    layer = MaxPool2D(k, s, p)
    y = layer.forward(backend.asarray(x))
    g = np.ones(tuple(y.shape))
    dx = _np(layer.backward(backend.asarray(g)))
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, k, s, p).backward(torch.tensor(g))
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    assert dx.sum() == g.sum()  # each window's gradient delivered exactly once


def test_global_avg_pool(float64):
    torch = pytest.importorskip("torch")
    layer = GlobalAvgPool2D()
    x = _rand(3, 4, 5, 6)
    y = layer.forward(backend.asarray(x))
    assert tuple(y.shape) == (3, 4) == layer.output_shape((3, 4, 5, 6))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1)
    np.testing.assert_allclose(_np(y), ty.detach().numpy(), rtol=1e-12)
    g = _rand(3, 4, seed=1)
    dx = layer.backward(backend.asarray(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(_np(dx), tx.grad.numpy(), rtol=1e-12)
    assert dnn.gradcheck(GlobalAvgPool2D(), _rand(2, 3, 3, 4)) < 1e-6


def test_pool_keeps_float32(backend_name):
    x = backend.asarray(_rand(2, 3, 6, 6).astype(np.float32))
    for layer in (MaxPool2D(2), AvgPool2D(3, 1, 1), GlobalAvgPool2D()):
        y = layer(x)
        assert y.dtype == x.dtype
        dx = layer.backward(backend.xp.ones(tuple(y.shape), dtype=y.dtype))
        assert dx.dtype == x.dtype and tuple(dx.shape) == (2, 3, 6, 6)


def test_maxpool_output_is_not_a_view_of_the_input(backend_name):
    x = backend.asarray(_rand(1, 1, 3, 3).astype(np.float32))
    y = MaxPool2D(1)(x)
    y += 1.0
    np.testing.assert_array_equal(_np(x), _rand(1, 1, 3, 3).astype(np.float32))


def test_pool_shape_errors(backend_name):
    with pytest.raises(ShapeError, match=r"MaxPool2D.*4-D.*\(2, 8, 8\)"):
        MaxPool2D(2)(backend.xp.zeros((2, 8, 8)))
    with pytest.raises(ShapeError, match=r"AvgPool2D.*smaller than the kernel 3x3.*\(1, 1, 2, 5\)"):
        AvgPool2D(3)(backend.xp.zeros((1, 1, 2, 5)))
    with pytest.raises(ShapeError, match=r"GlobalAvgPool2D.*4-D"):
        GlobalAvgPool2D()(backend.xp.zeros((2, 8)))
    with pytest.raises(RuntimeError, match="before forward"):
        MaxPool2D(2).backward(backend.xp.zeros((1, 1, 2, 2)))


def test_pool_arguments_and_config():
    layer = MaxPool2D(3, 2, 1)
    assert layer.get_config() == {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1]}
    assert MaxPool2D(**layer.get_config()).get_config() == layer.get_config()
    assert AvgPool2D(2).stride == (2, 2)  # stride defaults to the kernel size
    assert AvgPool2D((2, 3)).output_shape((4, 5, 8, 9)) == (4, 5, 4, 3)
    assert GlobalAvgPool2D().get_config() == {}
    with pytest.raises(ValueError, match=r"MaxPool2D: padding must be at most half"):
        MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match=r"AvgPool2D: kernel_size"):
        AvgPool2D(0)
    with pytest.raises(ValueError, match=r"MaxPool2D: stride"):
        MaxPool2D(2, stride=(1, 0))
