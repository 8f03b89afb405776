"""GroupNorm, SiLU, Mish, PReLU, exact GELU (and the backend's erf), Bidirectional, and l1/l2
on recurrent layers: float64 gradient checks, PyTorch oracles (float64, rtol 1e-8), bad
arguments and configuration round trips. Every test runs on every installed backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.backend import ops
from dnn.errors import ShapeError
from dnn.gradcheck import gradcheck
from dnn.io.specs import decode_layer, encode_layer
from dnn.layers import (
    GELU,
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Dense,
    GroupNorm,
    Mish,
    PReLU,
    SiLU,
    activation,
)

TOL = 1e-6
#: the PyTorch oracles: float64, relative 1e-8 (the absolute floor only matters for entries
#: that are ~0, e.g. GELU far left of 0, where torch's own 1 + erf(x/√2) cancels)
ORACLE = {"rtol": 1e-8, "atol": 1e-12}
#: central-difference step for recurrent layers (see tests/test_recurrent.py)
H = 1e-5
CELLS = [RNN, LSTM, GRU]


def normal(shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def _np(x):
    return np.asarray(backend.to_numpy(x), dtype=np.float64)


def randomise(layer, seed=10, scale=0.5):
    """Every parameter random (zeros and ones would hide bugs in their gradients)."""
    for i, p in enumerate(layer.parameters()):
        p.data[...] = backend.asarray(normal(p.shape, seed=seed + i, scale=scale), dtype=p.data.dtype)


def _torch():
    return pytest.importorskip("torch")


def _compare_module(torch, ours, module, x, grad, pairs):
    """Same x through ``ours`` and the torch ``module``; compare y, dL/dx and the parameter
    gradients of ``pairs`` [(our parameter, torch parameter, transform)]."""
    x_t = torch.tensor(x, requires_grad=True)
    y_t = module(x_t)
    y_t.backward(torch.from_numpy(grad))
    y = ours.forward(backend.asarray(x))
    dx = ours.backward(backend.asarray(grad))
    np.testing.assert_allclose(_np(y), y_t.detach().numpy(), **ORACLE)
    np.testing.assert_allclose(_np(dx), x_t.grad.numpy(), **ORACLE)
    for p, q, f in pairs:
        np.testing.assert_allclose(_np(p.grad), f(q.grad.numpy()), **ORACLE)


# ------------------------------------------------------------------ GroupNorm
GN_SHAPES = [(4, 6), (3, 6, 5), (2, 6, 3, 4)]


@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("shape", GN_SHAPES, ids=["NC", "NCL", "NCHW"])
def test_groupnorm_gradcheck(float64, shape, groups):
    gn = GroupNorm(groups, shape[1])
    randomise(gn)
    assert gradcheck(gn, normal(shape, seed=3, scale=2.0) + 1.0) < TOL
    assert gradcheck(gn, normal(shape, seed=4), training=True) < TOL


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("shape", GN_SHAPES, ids=["NC", "NCL", "NCHW"])
def test_groupnorm_matches_torch(float64, shape, groups):
    torch = _torch()
    gn = GroupNorm(groups, shape[1], eps=1e-4)
    randomise(gn)
    ref = torch.nn.GroupNorm(groups, shape[1], eps=1e-4, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(_np(gn.weight.data)))
        ref.bias.copy_(torch.from_numpy(_np(gn.bias.data)))
    same = lambda g: g  # noqa: E731
    _compare_module(torch, gn, ref, normal(shape, seed=1, scale=3.0) - 2.0, normal(shape, seed=2),
                    [(gn.weight, ref.weight, same), (gn.bias, ref.bias, same)])


def test_groupnorm_statistics_and_dtype(backend_name):
    """Fresh γ = 1, β = 0: each (sample, group) comes out with mean 0 and variance 1;
    float32 stays float32."""
    x = normal((3, 6, 4, 5), seed=8, scale=4.0) + 3.0
    y = GroupNorm(3, 6).forward(backend.asarray(x.astype(np.float32)))
    assert y.dtype == backend.xp.float32
    groups = _np(y).reshape(3, 3, -1)
    np.testing.assert_allclose(groups.mean(axis=2), 0.0, atol=1e-5)
    np.testing.assert_allclose(groups.var(axis=2), 1.0, atol=1e-3)


def test_groupnorm_bad_arguments_and_input(backend_name):
    for args, match in [((4, 6), "divisible"), ((0, 6), "num_groups"), ((2, 0), "num_channels"),
                        ((2.0, 6), "num_groups"), ((True, 6), "num_groups")]:
        with pytest.raises(ValueError, match=f"GroupNorm: .*{match}"):
            GroupNorm(*args)
    for eps in (0.0, -1e-5, float("inf"), "1e-5"):
        with pytest.raises(ValueError, match="GroupNorm: eps"):
            GroupNorm(2, 6, eps=eps)
    with pytest.raises(ValueError, match="GroupNorm: l2"):
        GroupNorm(2, 6, l2=-0.1)
    model = dnn.Sequential([GroupNorm(2, 6)])
    for shape in [(4, 5), (4,), (2, 4, 3)]:
        with pytest.raises(ShapeError, match=r"layer 0 \(GroupNorm\).*\(batch, 6, \.\.\.\)"):
            model.layers[0].forward(backend.asarray(np.zeros(shape, np.float32)))
    with pytest.raises(ShapeError, match="GroupNorm"):
        GroupNorm(2, 6).output_shape((4, 5, 3))
    assert GroupNorm(2, 6).output_shape((4, 6, 3)) == (4, 6, 3)


def test_groupnorm_penalty_and_config(float64):
    gn = GroupNorm(2, 4, eps=1e-3, l1=0.01, l2=0.02)
    randomise(gn)
    w = _np(gn.weight.data)
    assert float(gn.regularization_loss()) == pytest.approx(0.01 * np.abs(w).sum() + 0.02 * (w * w).sum())
    assert gradcheck(gn, normal((3, 4, 5), seed=1)) < TOL
    config = gn.get_config()
    assert config == {"num_groups": 2, "num_channels": 4, "eps": 1e-3, "l1": 0.01, "l2": 0.02}
    assert decode_layer(encode_layer(gn)).get_config() == config


# ------------------------------------------------------------------ activations
#: includes large |x| (Mish's softplus must not overflow, GELU's tails)
WIDE = np.concatenate([normal((3, 8), seed=5, scale=2.0).ravel(),
                       [-40.0, -25.0, -9.0, -6.5, 6.5, 9.0, 25.0, 40.0]]).reshape(4, 8)


@pytest.mark.parametrize("make", [SiLU, Mish, lambda: GELU("none"), lambda: GELU("tanh")],
                         ids=["silu", "mish", "gelu-none", "gelu-tanh"])
def test_activation_gradcheck(float64, make):
    assert gradcheck(make(), WIDE) < TOL
    assert gradcheck(make(), normal((3, 2, 5), seed=6)) < TOL


@pytest.mark.parametrize("name", ["silu", "mish", "gelu-none", "gelu-tanh"])
def test_activation_matches_torch(float64, name):
    torch = _torch()
    nn = torch.nn
    ours, ref = {"silu": (SiLU(), nn.SiLU()), "mish": (Mish(), nn.Mish()),
                 "gelu-none": (GELU(approximate="none"), nn.GELU(approximate="none")),
                 "gelu-tanh": (GELU(), nn.GELU(approximate="tanh"))}[name]
    x = np.concatenate([WIDE.ravel(), normal(40, seed=7, scale=3.0)])
    _compare_module(torch, ours, ref, x, normal(x.shape, seed=8), [])


def test_mish_and_silu_large_inputs_stay_finite(backend_name):
    """float32 at ±1e4: no overflow in softplus or the sigmoid, the right asymptotes."""
    x = backend.asarray(np.array([-1e4, -100.0, 100.0, 1e4], np.float32))
    for layer in (Mish(), SiLU()):
        y = layer.forward(x)
        dx = layer.backward(backend.xp.ones_like(x))
        np.testing.assert_allclose(_np(y), [0.0, 0.0, 100.0, 1e4], atol=1e-30)
        np.testing.assert_allclose(_np(dx), [0.0, 0.0, 1.0, 1.0], atol=1e-30)


@pytest.mark.parametrize("num, shape", [(1, (4, 6)), (1, (2, 3, 4)), (3, (4, 3)), (3, (2, 3, 5)),
                                        (3, (2, 3, 2, 4))],
                         ids=["shared-2d", "shared-3d", "channels-2d", "channels-3d", "channels-4d"])
def test_prelu_gradcheck_and_torch(float64, num, shape):
    layer = PReLU(num)
    layer.weight.data[...] = backend.asarray(normal((num,), seed=1, scale=0.3) + 0.2)
    x = normal(shape, seed=2)
    assert gradcheck(layer, x) < TOL
    torch = _torch()
    ref = torch.nn.PReLU(num, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(_np(layer.weight.data)))
    _compare_module(torch, layer, ref, x, normal(shape, seed=3), [(layer.weight, ref.weight, lambda g: g)])


def test_prelu_init_penalty_config_and_errors(float64):
    layer = PReLU(4, init=0.1, l2=0.5)
    np.testing.assert_array_equal(_np(layer.weight.data), [0.1] * 4)
    assert PReLU().weight.shape == (1,) and float(PReLU().weight.data[0]) == 0.25
    assert float(layer.regularization_loss()) == pytest.approx(0.5 * 4 * 0.01)
    assert gradcheck(layer, normal((3, 4, 2), seed=4)) < TOL
    config = layer.get_config()
    assert config == {"num_parameters": 4, "init": 0.1, "l1": 0.0, "l2": 0.5}
    assert decode_layer(encode_layer(layer)).get_config() == config
    for kwargs, match in [({"num_parameters": 0}, "num_parameters"), ({"init": "x"}, "init"),
                          ({"init": float("nan")}, "init"), ({"l1": -1.0}, "l1")]:
        with pytest.raises(ValueError, match=f"PReLU: {match}"):
            PReLU(**kwargs)
    with pytest.raises(ShapeError, match=r"PReLU.*\(batch, 4, \.\.\.\)"):
        layer.forward(backend.asarray(np.zeros((2, 3))))
    with pytest.raises(ShapeError, match="PReLU"):
        layer.output_shape((2, 5))
    frozen = PReLU(2)
    frozen.trainable = False
    frozen.forward(backend.asarray(normal((3, 2))))
    assert frozen.backward(backend.asarray(normal((3, 2)))) is not None
    assert frozen.weight.grad is None


def test_gelu_config_default_and_names(backend_name):
    assert GELU().approximate == "tanh" and GELU().get_config() == {"approximate": "tanh"}
    exact = decode_layer(encode_layer(GELU(approximate="none")))
    assert isinstance(exact, GELU) and exact.approximate == "none"
    assert decode_layer({"type": "GELU", "config": {}}).approximate == "tanh"  # old model files
    with pytest.raises(ValueError, match="GELU: approximate must be 'tanh' or 'none', got 'erf'"):
        GELU(approximate="erf")
    x = backend.asarray(np.array([-1.0, 0.5, 2.0]))
    # the two differ (by ~1e-4 at most, the tanh approximation's error)
    diff = np.abs(_np(GELU("none").forward(x)) - _np(GELU("tanh").forward(x)))
    assert 1e-6 < diff.max() < 1e-3
    assert isinstance(activation("silu"), SiLU) and isinstance(activation("swish"), SiLU)
    assert isinstance(activation("Mish"), Mish) and activation("prelu", num_parameters=3).num_parameters == 3
    assert activation("gelu", approximate="none").approximate == "none"


# ------------------------------------------------------------------ erf
#: a dense grid over where erf is not yet ±1 in float64, plus tiny and huge values
ERF_GRID = np.concatenate([np.linspace(-7.0, 7.0, 280_001), np.geomspace(1e-300, 0.5, 2000),
                           -np.geomspace(1e-300, 0.5, 2000), [1e10, -1e300]])


def _math_erf(x):
    return np.array([math.erf(v) for v in x])


def _relative(got, want):
    """max |got − want| / |want| (erf(0) = 0 counts absolutely)."""
    return float((np.abs(got - want) / np.maximum(np.abs(want), 1e-300)).max())


def test_erf_portable_path_matches_math_erf():
    """Cody's rational approximations, run in the Array API standard on NumPy: float64
    round-off (measured: max |error| 3.3e-16, max relative error 6.5e-16, 5 ulp)."""
    dnn.set_backend("numpy")
    want = _math_erf(ERF_GRID)
    got = ops.erf_cody(ERF_GRID)
    assert got.dtype == np.float64
    assert np.abs(got - want).max() < 5e-16
    assert _relative(got, want) < 1e-15
    special = ops.erf_cody(np.array([np.inf, -np.inf, np.nan, 0.0, 6.0, -26.0]))
    np.testing.assert_array_equal(special, [1.0, -1.0, np.nan, 0.0, 1.0, -1.0])


def test_erf_each_backend_matches_math_erf(float64):
    """``backend.library.erf`` on every backend (torch.special.erf, SciPy's on NumPy where installed,
    the portable path on array_api_strict), float64 and float32."""
    want = _math_erf(ERF_GRID)
    got = backend.to_numpy(backend.library.erf(backend.asarray(ERF_GRID)))
    assert _relative(got, want) < 1e-15
    x32 = backend.asarray(np.clip(ERF_GRID, -1e30, 1e30), dtype=backend.xp.float32)
    got32 = backend.library.erf(x32)
    assert got32.dtype == backend.xp.float32
    want32 = _math_erf(backend.to_numpy(x32).astype(np.float64))
    assert np.abs(backend.to_numpy(got32) - want32).max() < 3e-7
    portable32 = ops.erf_cody(x32)
    assert portable32.dtype == backend.xp.float32
    assert np.abs(backend.to_numpy(portable32) - want32).max() < 3e-7


def test_erf_numpy_without_scipy_uses_the_portable_path(monkeypatch):
    dnn.set_backend("numpy")
    x = ERF_GRID[::7]
    from dnn.backend import numpy_library

    monkeypatch.setattr(numpy_library, "_scipy_erf", lambda: None)
    np.testing.assert_array_equal(backend.library.erf(x), ops.erf_cody(x))
    monkeypatch.undo()
    special = pytest.importorskip("scipy.special")
    np.testing.assert_array_equal(backend.library.erf(x), special.erf(x))


# ------------------------------------------------------------------ Bidirectional
BIDI_CASES = ([(cls, "concat", seq) for cls in CELLS for seq in (False, True)]
              + [(cls, merge, seq) for cls, merge in [(GRU, "sum"), (LSTM, "mul"), (RNN, "ave")]
                 for seq in (False, True)])


@pytest.mark.parametrize("cls, merge, return_sequences", BIDI_CASES,
                         ids=[f"{c.__name__}-{m}-{'seq' if s else 'last'}" for c, m, s in BIDI_CASES])
def test_bidirectional_gradcheck(float64, cls, merge, return_sequences):
    layer = Bidirectional(cls(3, 3, return_sequences=return_sequences), merge=merge)
    randomise(layer)
    assert dnn.gradcheck(layer, normal((2, 4, 3), seed=1), h=H) < TOL


def _torch_bidirectional(torch, cls, layer):
    """torch.nn.RNN/LSTM/GRU(bidirectional=True) holding both directions' weights."""
    rnn = layer.forward_layer
    module = {RNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}[cls](
        rnn.input_size, rnn.hidden_size, batch_first=True, bidirectional=True).double()
    pairs = []
    for suffix, direction in (("_l0", layer.forward_layer), ("_l0_reverse", layer.backward_layer)):
        host = {k: _np(v) for k, v in direction.state_dict().items()}
        params = {n: p for n, p in direction.named_parameters()}
        with torch.no_grad():
            for ours in ("weight_ih", "weight_hh"):
                theirs = getattr(module, ours + suffix)
                theirs.copy_(torch.from_numpy(host[ours].T.copy()))
                pairs.append((params[ours], theirs, lambda g: g.T))
            if cls is GRU:
                for ours in ("bias_ih", "bias_hh"):
                    getattr(module, ours + suffix).copy_(torch.from_numpy(host[ours]))
                    pairs.append((params[ours], getattr(module, ours + suffix), lambda g: g))
            else:  # ours is the sum of torch's two biases
                getattr(module, "bias_ih" + suffix).copy_(torch.from_numpy(0.3 * host["bias"]))
                getattr(module, "bias_hh" + suffix).copy_(torch.from_numpy(0.7 * host["bias"]))
                pairs.append((params["bias"], getattr(module, "bias_ih" + suffix), lambda g: g))
    return module, pairs


@pytest.mark.parametrize("merge", ["concat", "sum"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_bidirectional_matches_torch(float64, cls, return_sequences, merge):
    torch = _torch()
    batch, steps, n_in, hidden = 3, 5, 4, 3
    layer = Bidirectional(cls(n_in, hidden, return_sequences=return_sequences), merge=merge)
    randomise(layer, scale=0.4)
    module, pairs = _torch_bidirectional(torch, cls, layer)

    def reference(x_t):
        out, state = module(x_t)
        h_n = state[0] if cls is LSTM else state
        if return_sequences:
            f, b = out[..., :hidden], out[..., hidden:]
        else:  # the forward's last state and the backward's state after reading x[0]
            f, b = h_n[0], h_n[1]
            torch.testing.assert_close(f, out[:, -1, :hidden], rtol=0, atol=0)
            torch.testing.assert_close(b, out[:, 0, hidden:], rtol=0, atol=0)
        return torch.cat([f, b], dim=-1) if merge == "concat" else f + b

    x = normal((batch, steps, n_in), seed=1)
    out_shape = (batch, steps) if return_sequences else (batch,)
    out_shape += (2 * hidden if merge == "concat" else hidden,)
    assert layer.output_shape(x.shape) == out_shape
    _compare_module(torch, layer, reference, x, normal(out_shape, seed=2), pairs)
    assert len(pairs) == len(layer.parameters())  # every parameter gradient was compared


def test_bidirectional_layers_state_and_config(backend_name, tmp_path):
    rnn = LSTM(3, 4, return_sequences=True, unit_forget_bias=False, l2=0.01)
    layer = Bidirectional(rnn, merge="sum")
    assert layer.forward_layer is rnn and type(layer.backward_layer) is LSTM
    assert layer.backward_layer.get_config() == rnn.get_config()
    assert [k for k, _ in layer.named_children()] == ["forward", "backward"]
    keys = sorted(layer.state_dict())
    names = ("weight_ih", "weight_hh", "bias")
    assert keys == sorted(f"{d}.{n}" for d in ("forward", "backward") for n in names)
    fwd, bwd = layer.forward_layer.weight_ih.data, layer.backward_layer.weight_ih.data
    assert not np.array_equal(_np(fwd), _np(bwd))  # independent weights
    assert len(layer.parameters()) == 6
    # both directions carry the wrapped layer's penalty
    w = [_np(p.data) for n, p in layer.named_parameters() if "weight" in n]
    assert len(w) == 4
    assert float(layer.regularization_loss()) == pytest.approx(0.01 * sum((a * a).sum() for a in w))
    assert layer.get_config() == {"rnn": rnn, "merge": "sum"}
    # through a model file: the nested spec, both directions' weights
    model = dnn.Sequential([layer, Dense(4, 2)])
    x = backend.asarray(normal((2, 5, 3)).astype(np.float32))
    model.save(tmp_path / "bidi.dnn")
    loaded = dnn.load_model(tmp_path / "bidi.dnn")
    assert encode_layer(loaded) == encode_layer(model)
    assert isinstance(loaded.layers[0], Bidirectional) and loaded.layers[0].merge == "sum"
    np.testing.assert_array_equal(_np(loaded.predict(x)), _np(model.predict(x)))
    spec = encode_layer(layer)
    assert spec["config"]["rnn"]["type"] == "LSTM" and spec["config"]["merge"] == "sum"


def test_bidirectional_errors(backend_name):
    with pytest.raises(TypeError, match=r"Bidirectional: rnn must be a recurrent layer.*Dense"):
        Bidirectional(Dense(3, 4))
    with pytest.raises(ValueError, match="Bidirectional: merge must be one of concat, sum, mul, ave"):
        Bidirectional(GRU(3, 4), merge="max")
    model = dnn.Sequential([Bidirectional(GRU(3, 4))])
    layer = model.layers[0]
    with pytest.raises(ShapeError, match=r"layer 0 \(Bidirectional\) > forward \(GRU\).*\(batch, time, 3\)"):
        layer.forward(backend.asarray(np.zeros((2, 5, 2), np.float32)))
    layer.forward(backend.asarray(np.zeros((2, 5, 3), np.float32)))
    with pytest.raises(ShapeError, match=r"layer 0 \(Bidirectional\)\.backward: .*\(2, 8\), got \(2, 4\)"):
        layer.backward(backend.asarray(np.zeros((2, 4), np.float32)))
    assert layer.output_shape((2, 5, 3)) == (2, 8)


def test_bidirectional_reads_the_start_of_the_sequence(backend_name):
    """The sign of x[0] after 20 steps of noise: the backward direction reads x[0] last,
    so a Bidirectional RNN learns it in a few epochs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 20, 1)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    model = dnn.Sequential([Bidirectional(RNN(1, 8)), Dense(16, 2)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.02), metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0, seed=0)
    assert model.evaluate(x, y)["accuracy"] > 0.95


# ------------------------------------------------------------------ penalties on recurrent layers
@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_recurrent_l1_l2(float64, cls):
    layer = cls(3, 4, return_sequences=True, l1=0.03, l2=0.05)
    randomise(layer)
    assert dnn.gradcheck(layer, normal((2, 4, 3), seed=1), h=H) < TOL
    weights = [_np(layer.weight_ih.data), _np(layer.weight_hh.data)]
    want = sum(0.03 * np.abs(w).sum() + 0.05 * (w * w).sum() for w in weights)  # not the biases
    assert float(layer.regularization_loss()) == pytest.approx(want, rel=1e-12)
    # the penalty's gradient is added once, on the weights only
    plain = cls(3, 4, return_sequences=True)
    plain.load_state_dict(layer.state_dict())
    x, g = backend.asarray(normal((2, 4, 3), seed=1)), backend.asarray(normal((2, 4, 4), seed=2))
    for m in (layer, plain):
        m.forward(x)
        m.backward(g)
    for (name, p), (_, q) in zip(layer.named_parameters(), plain.named_parameters()):
        w = _np(p.data)
        extra = 0.03 * np.sign(w) + 0.1 * w if name.startswith("weight") else 0.0
        np.testing.assert_allclose(_np(p.grad), _np(q.grad) + extra, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.__name__)
def test_recurrent_penalty_config_and_old_files(backend_name, cls):
    layer = cls(3, 4, l1=0.01, l2=0.02)
    config = layer.get_config()
    assert config["l1"] == 0.01 and config["l2"] == 0.02
    assert decode_layer(encode_layer(layer)).get_config() == config
    old = {k: v for k, v in config.items() if k not in ("l1", "l2")}  # a file from before
    rebuilt = decode_layer({"type": cls.__name__, "config": old})
    assert rebuilt.l1 == rebuilt.l2 == 0.0 and float(rebuilt.regularization_loss()) == 0.0
    for kwargs in ({"l1": -0.1}, {"l2": float("nan")}, {"l2": "0.1"}):
        with pytest.raises(ValueError, match=f"{cls.__name__}: l[12] must be a finite number >= 0"):
            cls(3, 4, **kwargs)
