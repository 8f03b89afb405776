"""LSTM benchmarks, each next to PyTorch CPU (torch.nn.LSTM) on the same inputs in the same run.

    python -m pytest benchmarks/bench_lstm.py --benchmark-only --benchmark-group-by=group

- ``lstm_step``: one training step of an LSTM layer alone — forward over 50 steps,
  backward through time, SGD update — on a batch of 64 sequences of 32 features,
  hidden size 128; the upstream gradient is a fixed (64, 128) array on the last h.
- ``mnist_lstm_step``: one training step of examples/12_mnist_lstm.py's model,
  LSTM(28 -> 128) -> Dense(128 -> 10), softmax cross-entropy, Adam, on a batch of
  128 images read as 28 steps of 28 features.

Compare the ``dnn`` and ``torch`` rows of each group; the ratio dnn / torch is the
figure of merit (target: within 2x). Float32, on the active ``DNN_BACKEND``.
Both sides do the same matrix products (the recurrent one per step; the input
projection and the weight gradients as whole-sequence GEMMs), so on a CPU the
ratio is mostly the per-step elementwise gate math and the BLAS library.

Measured on the shared 2-core machine (NumPy 2.4 + OpenBLAS vs torch 2.13 + MKL),
with one BLAS/torch thread each (``OPENBLAS_NUM_THREADS=1``, ``torch.set_num_threads(1)``):
lstm_step 27.9 vs 25.5 ms min, 29.7 vs 26.9 ms median (ratio 1.10; 1.3 min and up to
1.6 median in busier runs); mnist_lstm_step 31.5 vs 24.7 ms min, 37.1 vs 37.2 ms median
(ratio 1.0-1.3). In CPU time the LSTM step is 28-29 ms vs 22 ms (GRU 23 vs 27 ms,
RNN 6 vs 10 ms, same sizes): GEMMs
at ~80 GFLOP/s take 19.5 ms (per-step forward 4.8, per-step backward 4.8,
dW_hh 5.3, dW_ih 1.7, dx 1.5, input projection 1.4), the per-step gate math
the rest (the one tanh over (B, 4H) is the largest piece). With the default
two OpenBLAS threads on a busy machine the small per-step products make the
threads wait for each other: steps become 2-40x slower and erratic on both sides
(one run: 2.08 s vs 2.09 s for lstm_step, 0.66 s vs 0.05 s for mnist_lstm_step);
set ``OPENBLAS_NUM_THREADS=1`` (and ``torch.set_num_threads(1)``) there.
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import LSTM, Dense

torch = pytest.importorskip("torch")

BATCH, STEPS, FEATURES, HIDDEN = 64, 50, 32, 128


def _sync(value):
    backend.synchronize()
    return value


@pytest.fixture(autouse=True)
def _float32():
    dnn.set_default_dtype("float32")
    dnn.manual_seed(0)
    torch.manual_seed(0)
    yield


# ----------------------------------------------------------------- one LSTM layer
@pytest.fixture(scope="module")
def sequences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, STEPS, FEATURES), dtype=np.float32)
    g = rng.standard_normal((BATCH, HIDDEN), dtype=np.float32)
    return x, g


GROUP = f"lstm_step batch {BATCH}, {STEPS} steps, {FEATURES} -> {HIDDEN}: forward+BPTT+SGD"


@pytest.mark.benchmark(group=GROUP)
def test_lstm_step_dnn(benchmark, sequences):
    layer = LSTM(FEATURES, HIDDEN)
    optimizer = dnn.optim.SGD(lr=0.01)
    params = layer.parameters()
    x, g = (backend.asarray(a) for a in sequences)

    def step():
        layer.forward(x, training=True)
        dx = layer.backward(g)
        optimizer.step(params)
        return _sync(dx)

    dx = benchmark(step)
    assert tuple(dx.shape) == (BATCH, STEPS, FEATURES)
    assert all(p.group is not None for p in params)  # the GEMMs wrote into the flat buffer


@pytest.mark.benchmark(group=GROUP)
def test_lstm_step_torch(benchmark, sequences):
    layer = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    x = torch.from_numpy(sequences[0]).requires_grad_(True)
    g = torch.from_numpy(sequences[1])

    def step():
        x.grad = None
        optimizer.zero_grad(set_to_none=True)
        out, _ = layer(x)
        out[:, -1].backward(g)
        optimizer.step()
        return x.grad

    dx = benchmark(step)
    assert tuple(dx.shape) == (BATCH, STEPS, FEATURES)


# ----------------------------------------------------------------- the MNIST model's step
@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return rng.random((128, 28, 28), dtype=np.float32), rng.integers(0, 10, size=128)


MNIST_GROUP = "mnist_lstm_step batch 128, 28 steps of 28: LSTM 128 -> Dense 10, Adam"


@pytest.mark.benchmark(group=MNIST_GROUP)
def test_mnist_lstm_step_dnn(benchmark, images):
    model = dnn.Sequential([LSTM(28, 128), Dense(128, 10)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=1e-3))
    x, y = backend.asarray(images[0]), backend.asarray(images[1])
    loss = benchmark(lambda: _sync(model.train_step(x, y)))
    assert np.isfinite(float(loss))


@pytest.mark.benchmark(group=MNIST_GROUP)
def test_mnist_lstm_step_torch(benchmark, images):
    lstm, head = torch.nn.LSTM(28, 128, batch_first=True), torch.nn.Linear(128, 10)
    params = [*lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(images[0]), torch.from_numpy(images[1])

    def step():
        optimizer.zero_grad(set_to_none=True)
        out, _ = lstm(x)
        loss = loss_fn(head(out[:, -1]), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    loss = benchmark(step)
    assert np.isfinite(float(loss))
