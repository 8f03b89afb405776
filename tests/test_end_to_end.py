"""End to end: real training runs that must reach a known accuracy.

- spiral (NNFS, 3 classes, noise 0.2): a 2-64-64-3 ReLU network reaches
  >= 0.88 on freshly drawn held-out points (the Bayes limit is about 0.91:
  the angular noise of 0.5 rad makes neighbouring arms overlap). Fast.
- Fashion-MNIST: a 784-512-256-10 MLP with Adam (cosine-decayed learning
  rate, 6 epochs) reaches >= 0.88 test accuracy (marked slow); seconds per
  epoch are recorded next to an equivalent plain PyTorch CPU loop measured
  in the same process.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

import dnn
from dnn.datasets import load_fashion_mnist, spiral_data
from dnn.layers import Dense, ReLU


def mlp(widths: list[int]) -> dnn.Sequential:
    layers: list = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [Dense(fan_in, fan_out), ReLU()]
    return dnn.Sequential(layers[:-1])  # logits: no ReLU after the last Dense


@pytest.fixture
def one_torch_thread(backend_name):
    """Tiny matrices gain nothing from threads, and torch's spinning OpenMP pool
    slows ~50x on an oversubscribed CPU (parallel test runs): use one thread."""
    if backend_name != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_spiral_reaches_088_held_out(backend_name, one_torch_thread):
    if backend_name == "array_api_strict":
        pytest.skip("same code as numpy; too slow a training run for the strict namespace")
    x, y = spiral_data(1000, 3, noise=0.2, seed=0)
    x_test, y_test = spiral_data(1000, 3, noise=0.2, seed=10_000)
    model = mlp([2, 64, 64, 3])
    epochs, batch = 300, 64
    steps = epochs * -(-x.shape[0] // batch)
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(),
                  optimizer=dnn.optim.Adam(lr=dnn.optim.schedules.CosineDecay(0.01, steps, 0.0002)),
                  metrics=["accuracy"])
    before = model.evaluate(x_test, y_test)["accuracy"]
    history = model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, seed=0)
    result = model.evaluate(x_test, y_test)
    print(f"spiral [{backend_name}]: held-out accuracy {before:.3f} -> {result['accuracy']:.4f}, "
          f"train {history.history['accuracy'][-1]:.4f}")
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert result["accuracy"] >= 0.88


def _fashion(data_home) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    (x, y), (xt, yt) = load_fashion_mnist(data_home)
    scale = np.float32(1 / 255)
    return (x.reshape(-1, 784).astype(np.float32) * scale, y.astype(np.int64),
            xt.reshape(-1, 784).astype(np.float32) * scale, yt.astype(np.int64))


@pytest.mark.slow
def test_fashion_mnist_mlp_reaches_088(data_home, record_property):
    x, y, xt, yt = _fashion(data_home)
    dnn.manual_seed(0)
    model = mlp([784, 512, 256, 10])
    epochs, batch = 6, 128
    # cosine decay to 1e-5: the last epochs settle instead of bouncing around 0.88 (seeds 0, 1: 0.891, 0.889)
    schedule = dnn.optim.schedules.CosineDecay(1e-3, epochs * -(-x.shape[0] // batch), 1e-5)
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=schedule),
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, seed=0)
    dnn.synchronize()
    per_epoch = (time.perf_counter() - start) / epochs
    result = model.evaluate(xt, yt)
    record_property("seconds_per_epoch", round(per_epoch, 3))
    record_property("test_accuracy", round(result["accuracy"], 4))
    print(f"fashion-mnist 784-512-256-10 [{dnn.backend.name}]: test accuracy "
          f"{result['accuracy']:.4f} after {epochs} epochs, {per_epoch:.2f} s/epoch")
    assert history.history["accuracy"][-1] > history.history["accuracy"][0]
    assert result["accuracy"] >= 0.88


def _torch_epoch(torch, model, opt, x, y, batch_size: int, gen) -> float:
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.randperm(x.shape[0], generator=gen)
    start = time.perf_counter()
    total = 0.0
    for i in range(0, x.shape[0], batch_size):
        idx = order[i:i + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.detach() * idx.shape[0]
    float(total)
    return time.perf_counter() - start


@pytest.mark.slow
def test_fashion_mnist_epoch_time_vs_torch(data_home, record_property):
    """Seconds per epoch (784-512-256-10, batch 128, Adam) for dnn and plain PyTorch, same process.

    Recorded, not asserted against each other (the CPU is shared); the
    assertions check that both loops really trained.
    """
    torch = pytest.importorskip("torch")
    x, y, xt, yt = _fashion(data_home)
    dnn.manual_seed(0)
    model = mlp([784, 512, 256, 10])
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=1e-3),
                  metrics=["accuracy"])
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                 torch.nn.ReLU(), torch.nn.Linear(256, 10))
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    dnn_times, torch_times = [], []
    for epoch in range(2):  # interleaved, best of two: fair on a shared machine
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=128, verbose=0, seed=epoch)
        dnn.synchronize()
        dnn_times.append(time.perf_counter() - start)
        torch_times.append(_torch_epoch(torch, tmodel, topt, tx, ty, 128, gen))
    dnn_s, torch_s = min(dnn_times), min(torch_times)
    with torch.no_grad():
        torch_acc = float((tmodel(torch.from_numpy(xt)).argmax(1) == torch.from_numpy(yt)).double().mean())
    dnn_acc = model.evaluate(xt, yt)["accuracy"]
    record_property("dnn_seconds_per_epoch", round(dnn_s, 3))
    record_property("torch_seconds_per_epoch", round(torch_s, 3))
    print(f"seconds per epoch [{dnn.backend.name}]: dnn {dnn_s:.2f}, torch {torch_s:.2f} "
          f"(ratio {dnn_s / torch_s:.2f}); test accuracy after 2 epochs: dnn {dnn_acc:.4f}, "
          f"torch {torch_acc:.4f}")
    assert dnn_acc > 0.8 and torch_acc > 0.8
