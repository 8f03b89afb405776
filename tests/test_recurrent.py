"""RNN, LSTM and GRU: gradient checks (input, parameters, initial state), parity with
torch.nn.RNN/LSTM/GRU, bad input, configuration, and an MNIST end-to-end run (slow)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.gradcheck import _numeric, _rel_error
from dnn.layers import GRU, LSTM, REGISTRY, RNN, Dense

TOL = 1e-6
#: central-difference step: the probe sum over many steps has entries of dL/dp near 1e-5,
#: where h = 1e-6 leaves float64 round-off of ~1e-6 relative; 1e-5 keeps both errors < 1e-7
H = 1e-5
CELLS = [RNN, LSTM, GRU]
ROOT = Path(__file__).resolve().parents[1]


def normal(shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def randomise(layer, seed=10, scale=0.5):
    """Non-zero biases (zeros would hide bias-gradient bugs) and moderate weights."""
    for i, p in enumerate(layer.parameters()):
        p.data[...] = dnn.to_device(normal(p.shape, seed=seed + i, scale=scale))


def initial_state(cls, batch, hidden, seed=20):
    h0 = normal((batch, hidden), seed=seed)
    if cls is LSTM:
        return (h0, normal((batch, hidden), seed=seed + 1))
    return h0


def state_to_device(state):
    if isinstance(state, tuple):
        return tuple(dnn.to_device(s) for s in state)
    return dnn.to_device(state)


# ------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_gradcheck(float64, cls, return_sequences):
    layer = cls(3, 4, return_sequences=return_sequences)
    randomise(layer)
    assert dnn.gradcheck(layer, normal((2, 5, 3)), h=H) < TOL


@pytest.mark.parametrize(("batch", "steps"), [(1, 4), (3, 1), (1, 1)])
@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_gradcheck_short_sequence_and_single_sample(float64, cls, batch, steps):
    for return_sequences in (False, True):
        layer = cls(2, 3, return_sequences=return_sequences)
        randomise(layer, seed=batch * 10 + steps)
        y = layer.forward(dnn.to_device(normal((batch, steps, 2))))
        want = (batch, steps, 3) if return_sequences else (batch, 3)
        assert tuple(y.shape) == want
        assert dnn.gradcheck(layer, normal((batch, steps, 2)), h=H) < TOL


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_gradcheck_with_initial_state(float64, cls, return_sequences):
    layer = cls(3, 4, return_sequences=return_sequences)
    randomise(layer)
    state = state_to_device(initial_state(cls, 2, 4))
    kwargs = {"initial_state": state}
    x = normal((2, 3, 3), seed=5)
    assert dnn.gradcheck(layer, x, forward_kwargs=kwargs, h=H) < TOL

    # the gradient with respect to the initial state, element by element
    xp = backend.xp
    x_dev = dnn.to_device(x)
    y = layer.forward(x_dev, initial_state=state)
    probe = dnn.to_device(normal(tuple(y.shape), seed=7))
    layer.backward(probe)
    grads = layer.grad_initial_state
    states, grads = (state, grads) if cls is LSTM else ((state,), (grads,))
    assert len(grads) == len(states)

    def objective():
        return float(xp.sum(layer.forward(x_dev, initial_state=state) * probe))

    for s, g in zip(states, grads):
        assert tuple(g.shape) == (2, 4)
        numeric = _numeric(objective, s, H)
        assert np.abs(numeric).max() > 1e-3  # the state does influence the output
        assert _rel_error(dnn.to_numpy(g), numeric) < TOL


def test_gradcheck_stacked_layers(float64):
    """A sequence output feeds the next recurrent layer (and a Dense acting per step)."""
    model = dnn.Sequential([LSTM(3, 5, return_sequences=True), GRU(5, 4, return_sequences=True),
                            Dense(4, 2), RNN(2, 3)])
    for layer in model.layers:
        randomise(layer, scale=0.6)
    assert model.output_shape((2, 4, 3)) == (2, 3)
    # entries of dL/dW of the first layer are ~1e-6 here: a larger step keeps round-off down
    assert dnn.gradcheck(model, normal((2, 4, 3)), h=1e-4) < TOL


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_zero_initial_state_is_the_default(float64, cls):
    layer = cls(3, 4, return_sequences=True)
    randomise(layer)
    x = dnn.to_device(normal((2, 3, 3)))
    zeros = np.zeros((2, 4))
    state = (zeros, zeros) if cls is LSTM else zeros
    y_default = dnn.to_numpy(layer.forward(x))
    y_zero = dnn.to_numpy(layer.forward(x, initial_state=state_to_device(state)))
    y_other = dnn.to_numpy(layer.forward(x, initial_state=state_to_device(initial_state(cls, 2, 4))))
    np.testing.assert_array_equal(y_default, y_zero)
    assert np.abs(y_default - y_other).max() > 1e-3


# ------------------------------------------------------------------ parity with PyTorch


def _torch_module(cls, layer):
    """A torch.nn.RNN/LSTM/GRU (batch_first, float64) holding our layer's weights."""
    torch = pytest.importorskip("torch")
    torch_cls = {RNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}[cls]
    module = torch_cls(layer.input_size, layer.hidden_size, batch_first=True).double()
    host = {k: dnn.to_numpy(v) for k, v in layer.state_dict().items()}
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(host["weight_ih"].T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(host["weight_hh"].T.copy()))
        if cls is GRU:
            module.bias_ih_l0.copy_(torch.from_numpy(host["bias_ih"]))
            module.bias_hh_l0.copy_(torch.from_numpy(host["bias_hh"]))
        else:  # ours is the sum of torch's two biases: split it unevenly
            module.bias_ih_l0.copy_(torch.from_numpy(0.3 * host["bias"]))
            module.bias_hh_l0.copy_(torch.from_numpy(0.7 * host["bias"]))
    return torch, module


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_matches_torch(float64, cls, return_sequences, with_state):
    batch, steps, n_in, hidden = 3, 6, 5, 4
    layer = cls(n_in, hidden, return_sequences=return_sequences)
    randomise(layer, scale=0.4)
    torch, module = _torch_module(cls, layer)
    x = normal((batch, steps, n_in), seed=1)
    state = initial_state(cls, batch, hidden) if with_state else None

    y = layer.forward(dnn.to_device(x), initial_state=state_to_device(state) if with_state else None)
    x_t = torch.tensor(x, requires_grad=True)
    if with_state:
        parts = state if cls is LSTM else (state,)
        state_t = tuple(torch.tensor(s[None], requires_grad=True) for s in parts)
        out, _ = module(x_t, state_t if cls is LSTM else state_t[0])
    else:
        out, _ = module(x_t)
    y_t = out if return_sequences else out[:, -1]
    np.testing.assert_allclose(dnn.to_numpy(y), y_t.detach().numpy(), rtol=0, atol=1e-6)

    g = normal(tuple(y_t.shape), seed=2)
    (y_t * torch.from_numpy(g)).sum().backward()
    dx = layer.backward(dnn.to_device(g))
    np.testing.assert_allclose(dnn.to_numpy(dx), x_t.grad.numpy(), rtol=0, atol=1e-6)
    grads = {p.name: dnn.to_numpy(p.grad) for p in layer.parameters()}
    np.testing.assert_allclose(grads["weight_ih"], module.weight_ih_l0.grad.numpy().T, atol=1e-6)
    np.testing.assert_allclose(grads["weight_hh"], module.weight_hh_l0.grad.numpy().T, atol=1e-6)
    if cls is GRU:
        np.testing.assert_allclose(grads["bias_ih"], module.bias_ih_l0.grad.numpy(), atol=1e-6)
        np.testing.assert_allclose(grads["bias_hh"], module.bias_hh_l0.grad.numpy(), atol=1e-6)
    else:  # d/d(b_ih + b_hh): torch gives the same gradient to both halves
        np.testing.assert_allclose(grads["bias"], module.bias_ih_l0.grad.numpy(), atol=1e-6)
    if with_state:
        ours = layer.grad_initial_state if cls is LSTM else (layer.grad_initial_state,)
        for mine, theirs in zip(ours, state_t):
            np.testing.assert_allclose(dnn.to_numpy(mine), theirs.grad.numpy()[0], atol=1e-6)


def test_lstm_matches_torch_in_float32(backend_name):
    """The default dtype: same numbers as torch up to float32 rounding."""
    layer = LSTM(8, 16, return_sequences=True)
    torch, module = _torch_module(LSTM, layer)
    module = module.float()
    x = normal((4, 10, 8), seed=3).astype(np.float32)
    y = layer.forward(dnn.to_device(x))
    assert y.dtype == backend.xp.float32
    with torch.no_grad():
        y_t, _ = module(torch.from_numpy(x))
    np.testing.assert_allclose(dnn.to_numpy(y), y_t.numpy(), atol=1e-5)


# ------------------------------------------------------------------ flat buffers and training


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_grads_land_in_flat_buffers(float64, cls):
    """After compile the weights are views of one flat buffer; the GEMMs write into them."""
    x, y = dnn.to_device(normal((4, 5, 3), seed=1)), dnn.to_device(np.array([0, 1, 2, 1]))
    layer = cls(3, 6)
    randomise(layer)
    reference = cls(3, 6)
    reference.load_state_dict(layer.state_dict())
    model = dnn.Sequential([layer, Dense(6, 3)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.SGD(lr=0.1))
    assert all(p.group is not None for p in layer.parameters())
    out = model.forward(x, training=True)
    g = dnn.to_device(normal(tuple(out.shape), seed=4))
    model.backward(g)
    reference.forward(x)
    reference.backward(g @ model.layers[1].weight.data.T)
    for p, q in zip(layer.parameters(), reference.parameters()):
        assert q.group is None
        np.testing.assert_allclose(dnn.to_numpy(p.grad), dnn.to_numpy(q.grad), atol=1e-12)
    before = [dnn.to_numpy(p.data).copy() for p in layer.parameters()]
    model.train_step(x, y)
    assert all(np.abs(dnn.to_numpy(p.data) - b).max() > 0 for p, b in zip(layer.parameters(), before))


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_learns_a_sequence_task(backend_name, cls):
    """Which half of the sequence holds the larger sum: needs memory across steps."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8, 2)).astype(np.float32)
    y = (x[:, :4, 0].sum(1) > x[:, 4:, 0].sum(1)).astype(np.int64)
    model = dnn.Sequential([cls(2, 16), Dense(16, 2)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.02), metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0, seed=0)
    assert model.evaluate(x, y)["accuracy"] > 0.9


# ------------------------------------------------------------------ configuration and errors


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_shapes_config_and_registry(backend_name, cls):
    k = {RNN: 1, LSTM: 4, GRU: 3}[cls]
    layer = cls(5, 7, return_sequences=True)
    assert REGISTRY[cls.__name__] is cls
    shapes = {p.name: p.shape for p in layer.parameters()}
    assert shapes["weight_ih"] == (5, k * 7) and shapes["weight_hh"] == (7, k * 7)
    if cls is GRU:
        assert shapes["bias_ih"] == shapes["bias_hh"] == (3 * 7,)
    else:
        assert shapes["bias"] == (k * 7,)
    assert layer.output_shape((2, 9, 5)) == (2, 9, 7)
    assert cls(5, 7).output_shape((2, 9, 5)) == (2, 7)
    config = layer.get_config()
    assert config["input_size"] == 5 and config["hidden_size"] == 7 and config["return_sequences"]
    clone = cls(**config)
    assert clone.get_config() == config
    y = layer.forward(dnn.to_device(normal((2, 9, 5)).astype(np.float32)))
    assert tuple(y.shape) == (2, 9, 7) and y.dtype == backend.xp.float32


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_initialisation(backend_name, cls):
    k = {RNN: 1, LSTM: 4, GRU: 3}[cls]
    hidden = 6
    layer = cls(4, hidden)
    w_hh = dnn.to_numpy(layer.weight_hh.data).astype(np.float64)
    for j in range(k):  # each gate's recurrent block is orthogonal
        block = w_hh[:, j * hidden:(j + 1) * hidden]
        np.testing.assert_allclose(block.T @ block, np.eye(hidden), atol=1e-5)
    limit = np.sqrt(6.0 / (4 + k * hidden))
    w_ih = dnn.to_numpy(layer.weight_ih.data)
    assert np.abs(w_ih).max() <= limit and np.abs(w_ih).max() > limit / 2
    if cls is LSTM:
        bias = dnn.to_numpy(layer.bias.data)
        np.testing.assert_array_equal(bias[hidden:2 * hidden], 1.0)
        np.testing.assert_array_equal(np.delete(bias, np.s_[hidden:2 * hidden]), 0.0)
        assert not dnn.to_numpy(LSTM(4, hidden, unit_forget_bias=False).bias.data).any()
    else:
        for p in layer.parameters()[2:]:
            assert not np.any(dnn.to_numpy(p.data))


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_bad_input_names_the_layer(backend_name, cls):
    layer = cls(3, 4)
    model = dnn.Sequential([layer])
    for shape in [(2, 3), (2, 5, 4), (2, 5, 3, 1)]:
        with pytest.raises(ShapeError, match=r"layer 0 \(" + cls.__name__ + r"\).*\(batch, time, 3\)"):
            layer.forward(dnn.to_device(np.zeros(shape, np.float32)))
    with pytest.raises(ShapeError, match="no time steps"):
        layer.forward(dnn.to_device(np.zeros((2, 0, 3), np.float32)))
    x = dnn.to_device(np.zeros((2, 5, 3), np.float32))
    bad = np.zeros((3, 4), np.float32)
    with pytest.raises(ShapeError, match=r"initial state of shape \(2, 4\)"):
        layer.forward(x, initial_state=(bad, bad) if cls is LSTM else bad)
    if cls is LSTM:
        with pytest.raises(ShapeError, match=r"pair \(h0, c0\)"):
            layer.forward(x, initial_state=np.zeros((2, 4), np.float32))
    layer.forward(x)
    with pytest.raises(ShapeError, match=r"backward: expected a gradient of shape \(2, 4\)"):
        layer.backward(dnn.to_device(np.zeros((2, 5, 4), np.float32)))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(dnn.to_device(np.zeros((2, 4), np.float32)))
    with pytest.raises(ShapeError, match="time"):
        layer.output_shape((2, 3))
    assert model.layers[0] is layer
    for args in [(0, 4), (3, -1), (3.0, 4), (True, 4)]:
        with pytest.raises(ValueError, match=cls.__name__):
            cls(*args)


def test_backward_drops_the_cache(backend_name):
    layer = LSTM(3, 4, return_sequences=True)
    layer.forward(dnn.to_device(np.ones((2, 5, 3), np.float32)))
    assert layer._latest is not None
    layer.backward(dnn.to_device(np.ones((2, 5, 4), np.float32)))
    assert layer._latest is None


def test_cli_lstm_model(capsys):
    """``dnn train <data> --model lstm``: rows (or features) as time steps, LSTM then Dense."""
    from dnn import cli

    assert "lstm" in cli.MODELS and cli.MODELS["lstm"].layout == "sequence"
    assert cli.main(["train", "spiral", "--model", "lstm", "--epochs", "1", "--hidden", "8"]) == 0
    assert "training lstm on spiral" in capsys.readouterr().out
    model = cli.build_lstm((28, 28), 10, cli.build_parser().parse_args(["train", "mnist"]))
    assert [type(layer).__name__ for layer in model.layers] == ["LSTM", "Dense"]
    assert model.layers[0].hidden_size == 128 and model.output_shape((5, 28, 28)) == (5, 10)


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_mnist_lstm_reaches_97_percent(data_home, tmp_path):
    """examples/12_mnist_lstm.py on NumPy: rows of an image as 28 steps of 28 features, all
    60,000 training images, 3 epochs of Adam with clipnorm (98.0-98.1 % test accuracy).

    It runs in a subprocess with single-threaded BLAS unless the caller set the thread
    count: every step is a chain of small (batch, 128) @ (128, 512) products, and on the
    shared 2-core machine two OpenBLAS threads waiting for each other made a step 10-30x
    slower than one thread. About 52 s of CPU time; 95-460 s wall at load averages of 6-12.
    """
    env = {**os.environ, "DNN_DATA_HOME": str(data_home)}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    script = ROOT / "examples" / "12_mnist_lstm.py"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(script), "--backend", "numpy", "--verbose", "0",
                             "--out", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", result.stdout).group(1))
    print(f"MNIST LSTM: test accuracy {accuracy:.4f} in {elapsed:.0f} s")
    assert accuracy >= 0.97
