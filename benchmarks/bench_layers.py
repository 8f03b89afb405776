"""Per-layer suites: forward, and forward + backward, of every layer kind on every
installed backend (float32), with ``dnn.synchronize()`` around each timed call.

    python -m pytest benchmarks/bench_layers.py --benchmark-only \\
        --benchmark-json=benchmarks/results/layers.json
    python -m pytest benchmarks/bench_layers.py --benchmark-only --benchmark-compare

Groups are named ``<layer> <pass>`` so ``--benchmark-group-by=group`` puts the
backends of one layer side by side. A layer class that ``dnn.layers`` does not
have (yet) is skipped by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dnn
from benchmarks.common import installed_backends, layer_available
from dnn import backend

BATCH = 256


def _dense():
    return dnn.layers.Dense(512, 512)


#: name -> (class name that must exist, factory, input shape, what it is)
LAYERS: dict[str, tuple[str, Callable[[], Any], tuple[int, ...]]] = {
    "Dense 512->512": ("Dense", _dense, (BATCH, 512)),
    **{
        f"{act} 256x1024": (act, (lambda a=act: getattr(dnn.layers, a)()), (BATCH, 1024))
        for act in ("ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax",
                    "LogSoftmax", "Softplus")
    },
    "Conv2D 16->32 3x3 pad1 on 32x16x28x28": (
        "Conv2D", lambda: dnn.layers.Conv2D(16, 32, 3, padding=1), (32, 16, 28, 28)),
    "MaxPool2D 2 on 32x32x28x28": ("MaxPool2D", lambda: dnn.layers.MaxPool2D(2), (32, 32, 28, 28)),
    "AvgPool2D 2 on 32x32x28x28": ("AvgPool2D", lambda: dnn.layers.AvgPool2D(2), (32, 32, 28, 28)),
    "BatchNorm 512 on 256x512": ("BatchNorm", lambda: dnn.layers.BatchNorm(512), (BATCH, 512)),
    "BatchNorm 32 on 32x32x28x28": ("BatchNorm", lambda: dnn.layers.BatchNorm(32), (32, 32, 28, 28)),
    "LayerNorm 512 on 256x512": ("LayerNorm", lambda: dnn.layers.LayerNorm(512), (BATCH, 512)),
    "LSTM 32->128, 64x50 steps": ("LSTM", lambda: dnn.layers.LSTM(32, 128), (64, 50, 32)),
    "GRU 32->128, 64x50 steps": ("GRU", lambda: dnn.layers.GRU(32, 128), (64, 50, 32)),
}

#: the array-api-strict namespace is a correctness reference, far slower: keep its suites small
STRICT_SKIP = {"LSTM 32->128, 64x50 steps", "GRU 32->128, 64x50 steps",
               "Conv2D 16->32 3x3 pad1 on 32x16x28x28"}


@pytest.fixture(params=installed_backends())
def bk(request):
    """Each installed backend in turn, float32, seed 0."""
    dnn.set_backend(request.param)
    dnn.set_default_dtype("float32")
    dnn.manual_seed(0)
    yield request.param
    dnn.set_backend("numpy")


def _make(name: str, bk: str):
    cls_name, factory, shape = LAYERS[name]
    if not layer_available(cls_name):
        pytest.skip(f"dnn.layers has no {cls_name} yet")
    if bk == "array_api_strict" and name in STRICT_SKIP:
        pytest.skip("array-api-strict is a correctness reference; too slow for this size")
    layer = factory()
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal(shape, dtype=np.float32))
    y = layer.forward(x, training=True)
    g = backend.asarray(rng.standard_normal(tuple(y.shape), dtype=np.float32))
    layer.backward(g)
    return layer, x, g


def _sync(value: Any) -> Any:
    backend.synchronize()
    return value


@pytest.mark.parametrize("name", list(LAYERS))
def test_forward(benchmark, bk, name):
    layer, x, _ = _make(name, bk)
    benchmark.group = f"{name} forward"
    benchmark.extra_info.update(backend=bk, layer=name, pass_="forward")
    y = benchmark(lambda: _sync(layer.forward(x, training=False)))
    assert y.shape[0] == x.shape[0]


@pytest.mark.parametrize("name", list(LAYERS))
def test_forward_backward(benchmark, bk, name):
    layer, x, g = _make(name, bk)
    benchmark.group = f"{name} forward+backward"
    benchmark.extra_info.update(backend=bk, layer=name, pass_="forward+backward")

    def step():
        layer.forward(x, training=True)
        return _sync(layer.backward(g))

    dx = benchmark(step)
    assert tuple(dx.shape) == tuple(x.shape)


@pytest.mark.parametrize("classes", [10, 1000])
def test_softmax_cross_entropy(benchmark, bk, classes):
    rng = np.random.default_rng(0)
    logits = backend.asarray(rng.standard_normal((BATCH, classes), dtype=np.float32))
    labels = backend.asarray(rng.integers(0, classes, BATCH))
    loss = dnn.losses.SoftmaxCrossEntropy()
    benchmark.group = f"SoftmaxCrossEntropy 256x{classes} forward+backward"
    benchmark.extra_info.update(backend=bk, layer=f"SoftmaxCrossEntropy {classes}")

    def step():
        loss(logits, labels)
        return _sync(loss.backward())

    grad = benchmark(step)
    assert tuple(grad.shape) == (BATCH, classes)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_optimizer_step(benchmark, bk, opt_name):
    """One optimizer step over the parameters of the 784-512-256-10 MLP (535,818 floats)."""
    layers = [dnn.layers.Dense(784, 512), dnn.layers.Dense(512, 256), dnn.layers.Dense(256, 10)]
    params = [p for layer in layers for p in layer.parameters()]
    for p in params:
        p.grad = p.data * 1e-3
    opt = getattr(dnn.optim, opt_name)(lr=1e-3)
    benchmark.group = f"{opt_name} step, 535,818 parameters"
    benchmark.extra_info.update(backend=bk, layer=f"{opt_name} step")
    benchmark(lambda: _sync(opt.step(params)))
    assert opt.iterations > 0
