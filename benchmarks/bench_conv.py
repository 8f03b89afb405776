"""Convolution benchmarks, each next to PyTorch CPU on the same inputs in the same run (float32).

    python -m pytest benchmarks/bench_conv.py --benchmark-only

- ``conv_layer``: one forward + backward of Conv2D(32 -> 64, 3x3, padding 1) on a
  64 x 32 x 28 x 28 batch;
- ``cnn_step``: one training step of the reference CNN on a 64 x 1 x 28 x 28 batch:
  conv3x3 1->32 pad 1, ReLU, maxpool 2, conv3x3 32->64 pad 1, ReLU, maxpool 2,
  flatten, dense 3136->10, softmax cross-entropy, SGD step;
- ``conv1d``: one forward + backward of Conv1D(64 -> 64, k 5, padding 2) on 32 x 64 x 256;
- ``depthwise``: one forward + backward of a depthwise Conv2D(64 -> 64, 3x3, padding 1,
  groups 64) on 32 x 64 x 28 x 28;
- ``mobilenet_block``: one forward + backward of a depthwise-separable block on
  32 x 64 x 28 x 28: depthwise 3x3 (no bias), BatchNorm, ReLU, pointwise 1x1 64 -> 128
  (no bias), BatchNorm, ReLU (training mode).

Compare the ``dnn`` and ``torch`` rows of each group (``--benchmark-group-by=group``);
the ratio dnn / torch is the figure of merit (target: the CNN step within 2x).
Runs on the active ``DNN_BACKEND`` (NumPy by default).

On a shared, busy machine wall-clock rounds swing by 10x (OpenBLAS and OpenMP
worker threads spin when the cores are oversubscribed). Comparable figures come
from one thread each and CPU time:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m pytest benchmarks/bench_conv.py \\
        --benchmark-only --benchmark-group-by=group --benchmark-timer=time.process_time

Measured (2026-11-24, 2-core x86-64 VM shared with other jobs, NumPy 2.4 + OpenBLAS
0.3.31 vs torch CPU, one thread each, min of >= 15 rounds):

    cnn_step     dnn 33.6 ms   torch 30.8 ms   ratio 1.09 (wall)   1.08 (CPU time)
    conv_layer   dnn 90.9 ms   torch 74.2 ms   ratio 1.23 (wall)   1.55 (CPU time)

Where the dnn CNN step goes (CPU ms): conv2 backward 14.1 (two GEMMs of 0.46 GFLOP
each; the input-gradient GEMM runs per kernel offset, fused with the col2im adds),
conv2 forward 7.8 (im2col gather + one GEMM), conv1 3.5 + 3.7, the two max-pools
2.0 + 3.4 and 1.0 + 2.6, the two ReLUs ~5, dense/loss/SGD < 1. With two threads the
wall-clock rounds on that busy VM were 5-10x slower for both libraries (spinning
BLAS/OpenMP workers), so no 2-thread ratio from it is meaningful.

Measured (2026-12-01, the same kind of VM, load average ~2 from other jobs, one thread each,
CPU time, min of the rounds, both libraries in the same run):

    cnn_step         dnn  37.1 ms   torch 25.8 ms   ratio 1.44
    conv_layer       dnn  73.4 ms   torch 50.5 ms   ratio 1.45
    conv1d           dnn  10.5 ms   torch  7.0 ms   ratio 1.49   (1.47-1.49 over runs)
    depthwise        dnn  18.3 ms   torch 13.1 ms   ratio 1.40   (1.19-1.43 over runs)
    mobilenet_block  dnn 107.0 ms   torch 48.6 ms   ratio 2.20   (1.58-2.21 over runs: torch's
                                                                   own time swings 40-71 ms)

The Conv2D fast path (groups 1, dilation 1) is unchanged by dilation/groups/"same": run
against the previous windows.py/conv.py, alternating processes, cnn_step medians 43.0-44.3
ms (new) vs 43.2-44.5 ms (old), conv_layer min 82.1 vs 81.0 ms.

Where the dnn MobileNet block goes (CPU ms, one thread): the two BatchNorms 55 (BN128 forward
18 + backward 21), the ReLUs 19 (the last ReLU's backward 15: the benchmark's upstream
gradient is NCHW-contiguous, the activation channels-last), the depthwise conv 19 (forward:
pad 0.9 + one einsum 5.4; backward: weight-gradient einsum 2.7 + input-gradient einsum 6),
the pointwise 1x1 conv 17 (three GEMMs of 0.4 GFLOP each). Without the BatchNorms the block
runs 1.40-1.71x torch. Depthwise alternatives measured on the same input: the kh·kw taps as
elementwise multiply-adds (the portable path) 50 ms, im2col + one batched GEMM per group
279 ms, against 21 ms for the einsum over the window view. Conv1D is GEMM-bound: its three
GEMMs take ~2.7 ms each, im2col 0.6 ms, the col2im fold 0.8 ms.
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import BatchNorm, Conv1D, Conv2D, Dense, Flatten, MaxPool2D, ReLU

torch = pytest.importorskip("torch")

BATCH = 64


def _sync(value):
    backend.synchronize()
    return value


@pytest.fixture(autouse=True)
def _float32():
    dnn.set_default_dtype("float32")
    dnn.manual_seed(0)
    yield


# ----------------------------------------------------------------- one layer
@pytest.fixture(scope="module")
def conv_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 32, 28, 28), dtype=np.float32)
    g = rng.standard_normal((BATCH, 64, 28, 28), dtype=np.float32)
    return x, g


@pytest.mark.benchmark(group="conv_layer 32->64 3x3 pad1 on 64x32x28x28, forward+backward")
def test_conv_layer_dnn(benchmark, conv_inputs):
    layer = Conv2D(32, 64, 3, padding=1)
    x, g = (backend.asarray(a) for a in conv_inputs)

    def step():
        layer.forward(x, training=True)
        return _sync(layer.backward(g))

    dx = benchmark(step)
    assert tuple(dx.shape) == (BATCH, 32, 28, 28)


@pytest.mark.benchmark(group="conv_layer 32->64 3x3 pad1 on 64x32x28x28, forward+backward")
def test_conv_layer_torch(benchmark, conv_inputs):
    layer = torch.nn.Conv2d(32, 64, 3, padding=1)
    x = torch.from_numpy(conv_inputs[0]).requires_grad_(True)
    g = torch.from_numpy(conv_inputs[1])

    def step():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer(x).backward(g)
        return x.grad

    dx = benchmark(step)
    assert tuple(dx.shape) == (BATCH, 32, 28, 28)


# ----------------------------------------------------------------- the reference CNN step
def reference_cnn() -> dnn.Sequential:
    """The benchmark CNN (also what ``examples/11_fashion_mnist_cnn.py`` trains)."""
    return dnn.Sequential([
        Conv2D(1, 32, 3, padding=1), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1), ReLU(), MaxPool2D(2),
        Flatten(), Dense(64 * 7 * 7, 10),
    ])


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=BATCH)
    return x, y


@pytest.mark.benchmark(group="cnn_step batch 64, 1x28x28 (conv32-pool-conv64-pool-dense, SGD)")
def test_cnn_step_dnn(benchmark, batch):
    model = reference_cnn()
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.SGD(lr=0.01))
    x, y = backend.asarray(batch[0]), backend.asarray(batch[1])
    loss = benchmark(lambda: _sync(model.train_step(x, y)))
    assert np.isfinite(float(loss))


@pytest.mark.benchmark(group="cnn_step batch 64, 1x28x28 (conv32-pool-conv64-pool-dense, SGD)")
def test_cnn_step_torch(benchmark, batch):
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.from_numpy(batch[0]), torch.from_numpy(batch[1])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    loss = benchmark(step)
    assert np.isfinite(float(loss.detach()))


# ----------------------------------------------------------------- Conv1D, depthwise, MobileNet block
def _inputs(x_shape, g_shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape, dtype=np.float32),
            rng.standard_normal(g_shape, dtype=np.float32))


def _dnn_step(benchmark, layer, arrays):
    """forward (training) + backward of a dnn layer or block, timed."""
    x, g = (backend.asarray(a) for a in arrays)

    def step():
        layer.forward(x, training=True)
        return _sync(layer.backward(g))

    dx = benchmark(step)
    assert tuple(dx.shape) == arrays[0].shape


def _torch_step(benchmark, module, arrays):
    """forward (training) + backward of a torch module, timed."""
    x = torch.from_numpy(arrays[0]).requires_grad_(True)
    g = torch.from_numpy(arrays[1])
    module.train()

    def step():
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).backward(g)
        return x.grad

    dx = benchmark(step)
    assert tuple(dx.shape) == arrays[0].shape


CONV1D = "conv1d 64->64 k5 pad2 on 32x64x256, forward+backward"
DEPTHWISE = "depthwise 3x3 pad1 groups64 on 32x64x28x28, forward+backward"
MOBILENET = "mobilenet_block dw3x3-BN-ReLU-pw1x1(64->128)-BN-ReLU on 32x64x28x28, forward+backward"


@pytest.fixture(scope="module")
def conv1d_inputs():
    return _inputs((32, 64, 256), (32, 64, 256), seed=2)


@pytest.fixture(scope="module")
def depthwise_inputs():
    return _inputs((32, 64, 28, 28), (32, 64, 28, 28), seed=3)


@pytest.fixture(scope="module")
def block_inputs():
    return _inputs((32, 64, 28, 28), (32, 128, 28, 28), seed=4)


@pytest.mark.benchmark(group=CONV1D)
def test_conv1d_dnn(benchmark, conv1d_inputs):
    _dnn_step(benchmark, Conv1D(64, 64, 5, padding=2), conv1d_inputs)


@pytest.mark.benchmark(group=CONV1D)
def test_conv1d_torch(benchmark, conv1d_inputs):
    _torch_step(benchmark, torch.nn.Conv1d(64, 64, 5, padding=2), conv1d_inputs)


@pytest.mark.benchmark(group=DEPTHWISE)
def test_depthwise_dnn(benchmark, depthwise_inputs):
    _dnn_step(benchmark, Conv2D(64, 64, 3, padding=1, groups=64), depthwise_inputs)


@pytest.mark.benchmark(group=DEPTHWISE)
def test_depthwise_torch(benchmark, depthwise_inputs):
    _torch_step(benchmark, torch.nn.Conv2d(64, 64, 3, padding=1, groups=64), depthwise_inputs)


@pytest.mark.benchmark(group=MOBILENET)
def test_mobilenet_block_dnn(benchmark, block_inputs):
    block = dnn.Sequential([
        Conv2D(64, 64, 3, padding=1, groups=64, bias=False), BatchNorm(64), ReLU(),
        Conv2D(64, 128, 1, bias=False), BatchNorm(128), ReLU(),
    ])
    _dnn_step(benchmark, block, block_inputs)


@pytest.mark.benchmark(group=MOBILENET)
def test_mobilenet_block_torch(benchmark, block_inputs):
    nn = torch.nn
    block = nn.Sequential(
        nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
    )
    _torch_step(benchmark, block, block_inputs)
