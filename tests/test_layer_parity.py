"""Generic cross-backend parity: every registered layer, loss and optimizer gives the same
numbers on NumPy and on every other installed backend (array_api_strict, torch, cupy).

For each case the layer is built on NumPy, its parameters and buffers are set to random
values, and that ``state_dict`` is loaded into the same layer built on the other backend.
Both then run the same forward (same input, same Dropout mask), the same backward (same
upstream gradient), and we compare the output, dL/dx, every parameter gradient and the state
after the step (BatchNorm's running statistics move in training mode).

Tolerances: float64 rtol 1e-9 (atol 1e-12); float32 rtol 1e-4 (atol 1e-5).

TF32: on a CUDA GPU, float32 matrix products may silently run in TF32 (10-bit mantissa) and
then miss rtol 1e-4. torch: the ``_no_tf32`` fixture below turns it off
(``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``).
CuPy: TF32 is used only when the environment variable ``CUPY_TF32=1`` is set (CuPy's default
is ``0``); the cupy cases fail loudly if it is set, and ``scripts/gpu_session.sh`` also sets
``NVIDIA_TF32_OVERRIDE=0`` for the parity runs, which turns TF32 off in cuBLAS/cuDNN for every
library in the process.

A layer type registered in ``dnn.layers.REGISTRY`` without an entry in ``LAYER_CASES`` fails
``test_every_registered_layer_has_parity_cases``: add a case when you add a layer. The same
holds for losses (``LOSS_CASES``) and optimizers (``OPTIMIZER_CASES``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    REGISTRY,
    RNN,
    Add,
    Average,
    AvgPool2D,
    BatchNorm,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    LayerNorm,
    LeakyReLU,
    LogSoftmax,
    MaxPool2D,
    Multiply,
    ReLU,
    Reshape,
    Residual,
    Sigmoid,
    Softmax,
    Softplus,
    Subtract,
    Tanh,
)
from dnn.parameter import Parameter
from tests.conftest import BACKEND_NAMES, backend_params

OTHER_BACKENDS = backend_params([n for n in BACKEND_NAMES if n != "numpy"])
DTYPES = ["float64", "float32"]
TOL = {"float64": {"rtol": 1e-9, "atol": 1e-12}, "float32": {"rtol": 1e-4, "atol": 1e-5}}


pytestmark = pytest.mark.usefixtures("no_tf32")


# ------------------------------------------------------------------------------ the table
def _normal(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.standard_normal(shape)


def _ids(*shape: int, high: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.integers(0, high, size=shape).astype(np.int64)


def _state(batch: int, hidden: int, parts: int) -> Callable[[np.random.Generator], dict[str, Any]]:
    """``initial_state``: one (B, H) array (RNN, GRU) or a pair (h0, c0) (LSTM)."""
    def make(rng: np.random.Generator) -> dict[str, Any]:
        arrays = tuple(0.5 * rng.standard_normal((batch, hidden)) for _ in range(parts))
        return {"initial_state": arrays[0] if parts == 1 else arrays}
    return make


def _mask(*shape: int, p: float) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    return lambda rng: {"mask": (rng.uniform(size=shape) > p).astype(np.float64)}


@dataclass
class Case:
    """One parity case: ``build()`` makes the layer on the active backend, ``make_input(rng)``
    the NumPy input, ``forward_kwargs(rng)`` extra NumPy keyword arguments of forward."""

    id: str
    build: Callable[[], Any]
    make_input: Callable[[np.random.Generator], np.ndarray]
    training: bool = True
    forward_kwargs: Callable[[np.random.Generator], dict[str, Any]] = field(
        default=lambda rng: {}
    )
    #: Embedding returns no input gradient
    has_input_grad: bool = True


def _pair(*shape: int) -> Callable[[np.random.Generator], tuple[np.ndarray, ...]]:
    return lambda rng: (rng.standard_normal(shape), rng.standard_normal(shape))


def _graph_model() -> Any:
    """Two inputs, a shared Dense applied to both, merged: a Model used as a layer."""
    a, b = dnn.Input((5,)), dnn.Input((5,))
    shared = Dense(5, 4)
    out = Dense(8, 3)(Concatenate()([Tanh()(shared(a)), shared(b)]))
    return dnn.Model([a, b], out)


def _dense_stack() -> Any:
    return dnn.Sequential([Dense(5, 7), Tanh(), Dense(7, 5)])


LAYER_CASES: dict[str, list[Case]] = {
    "Dense": [
        Case("dense", lambda: Dense(5, 4), _normal(6, 5)),
        Case("dense-nobias-3d", lambda: Dense(5, 4, bias=False), _normal(2, 3, 5)),
        Case("dense-l1-l2", lambda: Dense(5, 3, l1=0.01, l2=0.02), _normal(4, 5)),
    ],
    "ReLU": [Case("relu", ReLU, _normal(4, 6))],
    "Add": [Case("add", Add, _pair(4, 6))],
    "Subtract": [Case("subtract", Subtract, _pair(4, 6))],
    "Multiply": [Case("multiply", Multiply, _pair(4, 6))],
    "Average": [Case("average", Average, _pair(4, 6))],
    "Concatenate": [Case("concatenate", lambda: Concatenate(axis=1), _pair(2, 3, 4))],
    "Model": [Case("model-two-inputs-shared", _graph_model, _pair(4, 5))],
    "LeakyReLU": [Case("leaky-relu", lambda: LeakyReLU(0.1), _normal(4, 6))],
    "ELU": [Case("elu", lambda: ELU(0.7), _normal(4, 6))],
    "GELU": [
        Case("gelu", GELU, _normal(4, 6)),
        Case("gelu-exact", lambda: GELU(approximate="none"), lambda rng: 3.0 * rng.standard_normal((4, 6))),
    ],
    "SiLU": [Case("silu", dnn.layers.SiLU, _normal(4, 6))],
    "Mish": [Case("mish", dnn.layers.Mish, lambda rng: 8.0 * rng.standard_normal((4, 6)))],
    "PReLU": [
        Case("prelu-shared", dnn.layers.PReLU, _normal(4, 6)),
        Case("prelu-channels-4d-l2", lambda: dnn.layers.PReLU(3, l2=0.01), _normal(2, 3, 4, 4)),
    ],
    "GroupNorm": [
        Case("groupnorm-2d", lambda: dnn.layers.GroupNorm(2, 6), _normal(4, 6)),
        Case("groupnorm-4d-l1-l2", lambda: dnn.layers.GroupNorm(3, 6, l1=0.01, l2=0.02), _normal(2, 6, 3, 4)),
        Case("groupnorm-instance-3d", lambda: dnn.layers.GroupNorm(4, 4), _normal(2, 4, 5)),
    ],
    "Bidirectional": [
        Case("bidirectional-lstm-concat-seq",
             lambda: dnn.layers.Bidirectional(LSTM(3, 4, return_sequences=True)), _normal(2, 5, 3)),
        Case("bidirectional-gru-sum", lambda: dnn.layers.Bidirectional(GRU(3, 4), merge="sum"),
             _normal(2, 5, 3)),
        Case("bidirectional-rnn-mul-seq-l2",
             lambda: dnn.layers.Bidirectional(RNN(3, 4, return_sequences=True, l2=0.01), merge="mul"),
             _normal(2, 5, 3)),
        Case("bidirectional-lstm-ave", lambda: dnn.layers.Bidirectional(LSTM(3, 4), merge="ave"),
             _normal(2, 5, 3)),
    ],
    "Sigmoid": [Case("sigmoid", Sigmoid, _normal(4, 6))],
    "Tanh": [Case("tanh", Tanh, _normal(4, 6))],
    "Softmax": [
        Case("softmax", Softmax, _normal(4, 6)),
        Case("softmax-axis1-3d", lambda: Softmax(axis=1), _normal(2, 3, 4)),
    ],
    "LogSoftmax": [Case("log-softmax", LogSoftmax, _normal(4, 6))],
    "Softplus": [Case("softplus", Softplus, _normal(4, 6))],
    "Identity": [Case("identity", Identity, _normal(4, 6))],
    "Dropout": [
        Case("dropout-mask", lambda: Dropout(0.3), _normal(5, 6), forward_kwargs=_mask(5, 6, p=0.3)),
        Case("dropout-eval", lambda: Dropout(0.3), _normal(5, 6), training=False),
    ],
    "Conv2D": [
        Case("conv", lambda: Conv2D(2, 3, 3), _normal(2, 2, 6, 5)),
        Case("conv-stride2-pad1", lambda: Conv2D(2, 4, 3, stride=2, padding=1), _normal(2, 2, 7, 6)),
        Case("conv-1x2-nobias", lambda: Conv2D(3, 2, (1, 2), bias=False), _normal(2, 3, 4, 5)),
        Case("conv-dilation2-same-even", lambda: Conv2D(2, 3, (4, 3), padding="same", dilation=2),
             _normal(2, 2, 7, 6)),
        Case("conv-groups2-l1-l2", lambda: Conv2D(4, 6, 3, groups=2, stride=2, padding=1, l1=0.01,
                                                  l2=0.02), _normal(2, 4, 7, 6)),
        Case("conv-depthwise", lambda: Conv2D(3, 3, 3, groups=3, padding=1), _normal(2, 3, 6, 5)),
        Case("conv-depthwise-x2-stride2", lambda: Conv2D(3, 6, 3, groups=3, stride=2, padding="valid"),
             _normal(2, 3, 7, 6)),
    ],
    "MaxPool2D": [
        Case("maxpool", lambda: MaxPool2D(2), _normal(2, 3, 6, 4)),
        Case("maxpool-3-stride2-pad1", lambda: MaxPool2D(3, stride=2, padding=1), _normal(2, 2, 7, 7)),
    ],
    "AvgPool2D": [
        Case("avgpool", lambda: AvgPool2D(2), _normal(2, 3, 6, 4)),
        Case("avgpool-3-stride1-pad1", lambda: AvgPool2D(3, stride=1, padding=1), _normal(2, 2, 5, 5)),
    ],
    "GlobalAvgPool2D": [Case("global-avgpool", GlobalAvgPool2D, _normal(3, 4, 5, 3))],
    "GlobalMaxPool2D": [Case("global-maxpool", dnn.layers.GlobalMaxPool2D, _normal(3, 4, 5, 3))],
    "UpSampling2D": [
        Case("upsampling-2", dnn.layers.UpSampling2D, _normal(2, 3, 3, 4)),
        Case("upsampling-2x3", lambda: dnn.layers.UpSampling2D((2, 3)), _normal(2, 2, 3, 2)),
    ],
    "Conv1D": [
        Case("conv1d", lambda: dnn.layers.Conv1D(3, 4, 3), _normal(2, 3, 9)),
        Case("conv1d-stride2-dilation2-groups", lambda: dnn.layers.Conv1D(4, 6, 3, stride=2, padding=2,
                                                                          dilation=2, groups=2),
             _normal(2, 4, 11)),
        Case("conv1d-depthwise-same-l2", lambda: dnn.layers.Conv1D(4, 4, 4, padding="same", groups=4,
                                                                   l2=0.01), _normal(2, 4, 9)),
    ],
    "Conv2DTranspose": [
        Case("conv-transpose", lambda: dnn.layers.Conv2DTranspose(3, 2, 3), _normal(2, 3, 4, 4)),
        Case("conv-transpose-stride2-outpad", lambda: dnn.layers.Conv2DTranspose(
            3, 2, (3, 2), stride=2, padding=(1, 0), output_padding=1, l1=0.01), _normal(2, 3, 3, 4)),
        Case("conv-transpose-16-nobias", lambda: dnn.layers.Conv2DTranspose(2, 16, 2, stride=2, bias=False),
             _normal(2, 2, 3, 3)),
    ],
    "Flatten": [Case("flatten", Flatten, _normal(2, 3, 4, 2))],
    "Reshape": [Case("reshape", lambda: Reshape((4, -1)), _normal(3, 2, 6))],
    "BatchNorm": [
        Case("batchnorm-2d-train", lambda: BatchNorm(5), _normal(8, 5)),
        Case("batchnorm-2d-eval", lambda: BatchNorm(5), _normal(8, 5), training=False),
        Case("batchnorm-4d-train", lambda: BatchNorm(3, momentum=0.2), _normal(4, 3, 3, 5)),
        Case("batchnorm-4d-eval", lambda: BatchNorm(3), _normal(4, 3, 3, 5), training=False),
    ],
    "LayerNorm": [
        Case("layernorm", lambda: LayerNorm(6), _normal(4, 6)),
        Case("layernorm-2dims", lambda: LayerNorm((3, 4)), _normal(2, 5, 3, 4)),
    ],
    "Embedding": [
        Case("embedding", lambda: Embedding(7, 4), _ids(3, 5, high=7), has_input_grad=False),
    ],
    "Residual": [Case("residual", lambda: Residual(_dense_stack()), _normal(4, 5))],
    "Patches": [
        Case("patches", lambda: dnn.layers.Patches(2), _normal(2, 3, 4, 6)),
        Case("patches-3x2", lambda: dnn.layers.Patches((3, 2)), _normal(2, 2, 6, 4)),
    ],
    "SequenceAvgPool": [Case("sequence-avg-pool", dnn.layers.SequenceAvgPool, _normal(3, 5, 4))],
    "MultiHeadAttention": [
        Case("mha-self", lambda: dnn.layers.MultiHeadAttention(8, 2), _normal(2, 5, 8)),
        Case("mha-causal-mask-l1-l2",
             lambda: dnn.layers.MultiHeadAttention(8, 2, causal=True, l1=0.01, l2=0.02),
             _normal(2, 5, 8), forward_kwargs=lambda rng: {"mask": np.array(
                 [[True, True, True, False, False], [False, True, True, True, True]])}),
        Case("mha-cross-dropout-nobias",
             lambda: dnn.layers.MultiHeadAttention(8, 4, dropout=0.25, bias=False),
             lambda rng: tuple(rng.standard_normal((2, 5, 8)) for _ in range(3)),
             forward_kwargs=lambda rng: {"dropout_mask": _mask(2, 4, 5, 5, p=0.25)(rng)["mask"]}),
        Case("mha-eval", lambda: dnn.layers.MultiHeadAttention(8, 4, dropout=0.25),
             _normal(3, 4, 8), training=False),
    ],
    "PositionalEmbedding": [
        Case("positional-embedding", lambda: dnn.layers.PositionalEmbedding(7, 4, l2=0.01),
             _normal(3, 5, 4)),
    ],
    "SinusoidalPositionalEncoding": [
        Case("sinusoidal-odd-dim", lambda: dnn.layers.SinusoidalPositionalEncoding(5, max_len=9),
             _normal(3, 6, 5)),
    ],
    "RNN": [
        Case("rnn", lambda: RNN(3, 5), _normal(4, 6, 3)),
        Case("rnn-seq", lambda: RNN(3, 5, return_sequences=True), _normal(4, 6, 3)),
        Case("rnn-initial-state", lambda: RNN(3, 5), _normal(4, 6, 3), forward_kwargs=_state(4, 5, 1)),
    ],
    "LSTM": [
        Case("lstm", lambda: LSTM(3, 5), _normal(4, 6, 3)),
        Case("lstm-seq", lambda: LSTM(3, 5, return_sequences=True), _normal(4, 6, 3)),
        Case("lstm-l1-l2", lambda: LSTM(3, 5, l1=0.01, l2=0.02), _normal(4, 6, 3)),
        Case("lstm-initial-state", lambda: LSTM(3, 5, return_sequences=True), _normal(4, 6, 3),
             forward_kwargs=_state(4, 5, 2)),
    ],
    "GRU": [
        Case("gru", lambda: GRU(3, 5), _normal(4, 6, 3)),
        Case("gru-seq", lambda: GRU(3, 5, return_sequences=True), _normal(4, 6, 3)),
        Case("gru-initial-state", lambda: GRU(3, 5), _normal(4, 6, 3), forward_kwargs=_state(4, 5, 1)),
    ],
    "Sequential": [
        Case("sequential-mlp", _dense_stack, _normal(4, 5)),
        Case(
            "sequential-cnn",
            lambda: dnn.Sequential([Conv2D(1, 3, 3, padding=1), BatchNorm(3), ReLU(), MaxPool2D(2),
                                    Flatten(), Dense(12, 4), LogSoftmax()]),
            _normal(3, 1, 4, 4),
        ),
    ],
}

ALL_LAYER_CASES = [pytest.param(c, id=c.id) for cases in LAYER_CASES.values() for c in cases]


def test_every_registered_layer_has_parity_cases():
    missing = sorted(set(REGISTRY) - set(LAYER_CASES))
    assert not missing, (
        f"layer types {missing} are registered in dnn.layers.REGISTRY but have no parity case: "
        "add them to LAYER_CASES in tests/test_layer_parity.py"
    )
    unknown = sorted(set(LAYER_CASES) - set(REGISTRY))
    assert not unknown, f"LAYER_CASES names types that are not registered: {unknown}"


# ------------------------------------------------------------------------------ helpers
def _use(backend_name: str, dtype: str) -> None:
    dnn.set_backend(backend_name)
    dnn.set_default_dtype(dtype)
    dnn.manual_seed(0)


def _host(x: Any) -> np.ndarray:
    return np.array(backend.to_numpy(x), copy=True)


def _random_state(layer: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The layer's state with every entry replaced by random values (variances positive)."""
    state = {}
    for key, value in layer.state_dict().items():
        shape = tuple(value.shape)
        if key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, size=shape)
        else:
            state[key] = 0.5 * rng.standard_normal(shape)
    return state


def _device(arr: Any) -> Any:
    """A NumPy input (or a tuple of them) on the active backend: floats take the default
    dtype, ints stay ints."""
    if isinstance(arr, tuple):
        return tuple(backend.asarray(a) for a in arr)
    return backend.asarray(arr)


def _run_layer(case: Case, backend_name: str, dtype: str, state: dict[str, np.ndarray],
               x: np.ndarray, kwargs: dict[str, Any], grad_out: np.ndarray | None) -> dict:
    _use(backend_name, dtype)
    layer = case.build()
    layer.load_state_dict(state)
    out = layer.forward(_device(x), training=case.training,
                        **{k: _device(v) for k, v in kwargs.items()})
    assert backend.is_array(out), f"{case.id}: the output is not a {backend_name} array"
    result: dict[str, Any] = {"out": _host(out)}
    if grad_out is None:  # the reference run on NumPy only learns the output's shape
        return result
    grad_x = layer.backward(_device(grad_out))
    if isinstance(grad_x, list):  # a layer with several inputs: one gradient each, stacked
        grad_x = backend.xp.stack(grad_x)
    result["grad_x"] = None if grad_x is None else _host(grad_x)
    result["grads"] = [(p.name, _host(p.grad)) for p in layer.parameters()]
    result["state"] = {k: _host(v) for k, v in layer.state_dict().items()}
    result["reg"] = float(layer.regularization_loss())
    return result


def _assert_close(got: Any, want: Any, dtype: str, what: str) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               err_msg=what, **TOL[dtype])


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("other", OTHER_BACKENDS)
@pytest.mark.parametrize("case", ALL_LAYER_CASES)
def test_layer_parity(case: Case, other: str, dtype: str):
    rng = np.random.default_rng(1234)
    _use("numpy", dtype)
    state = _random_state(case.build(), rng)
    x = case.make_input(rng)
    kwargs = case.forward_kwargs(rng)
    shape = _run_layer(case, "numpy", dtype, state, x, kwargs, None)["out"].shape
    grad_out = rng.standard_normal(shape)

    want = _run_layer(case, "numpy", dtype, state, x, kwargs, grad_out)
    got = _run_layer(case, other, dtype, state, x, kwargs, grad_out)

    assert got["out"].dtype == want["out"].dtype == np.dtype(dtype)
    _assert_close(got["out"], want["out"], dtype, f"{case.id}: forward output")
    if case.has_input_grad:
        assert got["grad_x"] is not None and want["grad_x"] is not None
        assert got["grad_x"].shape == np.shape(x)
        _assert_close(got["grad_x"], want["grad_x"], dtype, f"{case.id}: dL/dx")
    else:
        assert got["grad_x"] is None and want["grad_x"] is None
    assert [n for n, _ in got["grads"]] == [n for n, _ in want["grads"]]
    for (name, g), (_, w) in zip(got["grads"], want["grads"]):
        assert g.shape == w.shape
        _assert_close(g, w, dtype, f"{case.id}: gradient of {name}")
    assert set(got["state"]) == set(want["state"]) == set(state)
    for key in state:
        _assert_close(got["state"][key], want["state"][key], dtype, f"{case.id}: state {key}")
    _assert_close(got["reg"], want["reg"], dtype, f"{case.id}: regularization loss")
    # the comparison is not vacuous: the output depends on the input
    assert np.any(want["out"] != 0)


# ------------------------------------------------------------------------------ losses
def _probs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    z = rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _one_hot(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    return np.eye(c)[rng.integers(0, c, size=n)]


#: loss name -> [(id, build, make (y_pred, y_true))]
LOSS_CASES: dict[str, list[tuple[str, Callable[[], Any], Callable[[np.random.Generator], tuple]]]] = {
    "CategoricalCrossentropy": [
        ("cce-indices", dnn.losses.CategoricalCrossentropy,
         lambda rng: (_probs(rng, (6, 4)), rng.integers(0, 4, size=6).astype(np.int64))),
        ("cce-one-hot", dnn.losses.CategoricalCrossentropy,
         lambda rng: (_probs(rng, (6, 4)), _one_hot(rng, 6, 4))),
    ],
    "SoftmaxCrossEntropy": [
        ("sce-indices", dnn.losses.SoftmaxCrossEntropy,
         lambda rng: (3 * rng.standard_normal((6, 4)), rng.integers(0, 4, size=6).astype(np.int64))),
        ("sce-indices-per-position", dnn.losses.SoftmaxCrossEntropy,
         lambda rng: (3 * rng.standard_normal((3, 5, 4)), rng.integers(0, 4, size=(3, 5)).astype(np.int64))),
        ("sce-one-hot", dnn.losses.SoftmaxCrossEntropy,
         lambda rng: (3 * rng.standard_normal((6, 4)), _one_hot(rng, 6, 4))),
    ],
    "BinaryCrossentropy": [
        ("bce", dnn.losses.BinaryCrossentropy,
         lambda rng: (rng.uniform(0.05, 0.95, size=(6, 3)), (rng.uniform(size=(6, 3)) > 0.5) * 1.0)),
    ],
    "SigmoidBinaryCrossentropy": [
        ("sigmoid-bce", dnn.losses.SigmoidBinaryCrossentropy,
         lambda rng: (3 * rng.standard_normal((6, 3)), (rng.uniform(size=(6, 3)) > 0.5) * 1.0)),
    ],
    "MSE": [("mse", dnn.losses.MSE, lambda rng: (rng.standard_normal((5, 3)), rng.standard_normal((5, 3))))],
    "MAE": [("mae", dnn.losses.MAE, lambda rng: (rng.standard_normal((5, 3)), rng.standard_normal((5, 3))))],
    "Huber": [
        ("huber", dnn.losses.Huber,
         lambda rng: (rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))),
        ("huber-delta0.5", lambda: dnn.losses.Huber(delta=0.5),
         lambda rng: (rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))),
    ],
}

ALL_LOSS_CASES = [pytest.param(c, id=c[0]) for cases in LOSS_CASES.values() for c in cases]


def test_every_registered_loss_has_parity_cases():
    missing = sorted(set(dnn.losses.REGISTRY) - set(LOSS_CASES))
    assert not missing, f"losses {missing} have no parity case: add them to LOSS_CASES"


def _run_loss(build, backend_name: str, dtype: str, y_pred: np.ndarray, y_true: np.ndarray):
    _use(backend_name, dtype)
    loss = build()
    value = loss(_device(y_pred), _device(y_true))
    return _host(value), _host(loss.backward())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("other", OTHER_BACKENDS)
@pytest.mark.parametrize("case", ALL_LOSS_CASES)
def test_loss_parity(case, other: str, dtype: str):
    case_id, build, make = case
    y_pred, y_true = make(np.random.default_rng(99))
    want_value, want_grad = _run_loss(build, "numpy", dtype, y_pred, y_true)
    got_value, got_grad = _run_loss(build, other, dtype, y_pred, y_true)
    assert got_value.shape == want_value.shape == ()
    assert got_grad.shape == want_grad.shape == y_pred.shape
    assert got_grad.dtype == np.dtype(dtype)
    _assert_close(got_value, want_value, dtype, f"{case_id}: loss value")
    _assert_close(got_grad, want_grad, dtype, f"{case_id}: dL/dy_pred")
    assert want_value > 0 and np.any(want_grad != 0)


# ------------------------------------------------------------------------------ optimizers
#: optimizer name -> [(id, kwargs)]; several configurations exercise each branch of the rule
OPTIMIZER_CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "SGD": [
        ("sgd", {"lr": 0.1}),
        ("sgd-momentum", {"lr": 0.1, "momentum": 0.9}),
        ("sgd-nesterov-wd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ],
    "Adagrad": [("adagrad", {"lr": 0.1}), ("adagrad-decay-wd", {"lr": 0.1, "lr_decay": 0.01,
                                                                  "weight_decay": 0.01})],
    "RMSprop": [("rmsprop", {"lr": 0.01}), ("rmsprop-momentum-wd", {"lr": 0.01, "momentum": 0.9,
                                                                      "weight_decay": 0.01})],
    "Adam": [("adam", {"lr": 0.01}), ("adam-wd", {"lr": 0.01, "weight_decay": 0.01})],
    "AdamW": [("adamw", {"lr": 0.01})],
    "NAdam": [("nadam", {"lr": 0.01}), ("nadam-wd", {"lr": 0.01, "weight_decay": 0.01})],
}

ALL_OPTIMIZER_CASES = [pytest.param((name, cid, kw), id=cid)
                       for name, cases in OPTIMIZER_CASES.items() for cid, kw in cases]
OPT_SHAPES = [(4, 3), (3,), (2, 2, 3)]
OPT_STEPS = 4


def test_every_optimizer_has_parity_cases():
    missing = sorted(set(dnn.optim.OPTIMIZERS) - set(OPTIMIZER_CASES))
    assert not missing, f"optimizers {missing} have no parity case: add them to OPTIMIZER_CASES"


def _run_optimizer(name: str, kwargs: dict, backend_name: str, dtype: str,
                   start: list[np.ndarray], grads: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    _use(backend_name, dtype)
    params = [Parameter(_device(a), f"p{i}") for i, a in enumerate(start)]
    opt = dnn.optim.OPTIMIZERS[name](**kwargs)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = _device(g)
        opt.step(params)
        trajectory.append([_host(p.data) for p in params])
    return trajectory


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("other", OTHER_BACKENDS)
@pytest.mark.parametrize("case", ALL_OPTIMIZER_CASES)
def test_optimizer_parity(case, other: str, dtype: str):
    name, case_id, kwargs = case
    rng = np.random.default_rng(7)
    start = [rng.standard_normal(s) for s in OPT_SHAPES]
    grads = [[rng.standard_normal(s) for s in OPT_SHAPES] for _ in range(OPT_STEPS)]
    want = _run_optimizer(name, kwargs, "numpy", dtype, start, grads)
    got = _run_optimizer(name, kwargs, other, dtype, start, grads)
    for step, (g_params, w_params) in enumerate(zip(got, want)):
        for i, (g, w) in enumerate(zip(g_params, w_params)):
            assert g.dtype == np.dtype(dtype)
            _assert_close(g, w, dtype, f"{case_id}: parameter {i} after step {step + 1}")
    # the steps moved the parameters
    assert not np.allclose(want[-1][0], start[0])
