"""Conv2D's dilation/groups/"same" padding, Conv1D, Conv2DTranspose, UpSampling2D and
GlobalMaxPool2D on every installed backend.

- float64 gradient checks (< 1e-6) over strides, paddings ("same" with odd and even
  kernels, "valid"), dilation 2, groups 2, depthwise (with a channel multiplier), output
  padding, non-square shapes, no bias, and l1/l2 penalties;
- PyTorch oracles in float64, rtol 1e-8: forward, input gradient, weight and bias
  gradients against torch.nn.Conv1d / Conv2d / ConvTranspose2d / Upsample(nearest) /
  AdaptiveMaxPool2d(1) with the same weights;
- errors for bad arguments and inputs (naming the layer and the argument), configs that
  rebuild the same layer, float32 kept, functional graphs and a few training steps.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.layers import (
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    GlobalMaxPool2D,
    ReLU,
    UpSampling2D,
)

RTOL, ATOL = 1e-8, 1e-12


def _np(x):
    return backend.to_numpy(x)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _id(case):
    name, kwargs, shape = case
    args = ",".join(f"{k}={v}".replace(" ", "") for k, v in kwargs.items()
                    if k not in ("in_channels", "out_channels"))
    return f"{name}({kwargs['in_channels']}-{kwargs['out_channels']},{args})x{'x'.join(map(str, shape))}"


def _c2(cin, cout, k, **kw):
    return dict(in_channels=cin, out_channels=cout, kernel_size=k, **kw)


LAYERS = {"Conv1D": Conv1D, "Conv2D": Conv2D, "Conv2DTranspose": Conv2DTranspose}

# (layer, keyword arguments, input shape); the same arguments build the torch module
CONV_CASES = [
    ("Conv2D", _c2(2, 3, 3, dilation=2, padding=1), (2, 2, 7, 6)),
    ("Conv2D", _c2(2, 3, (3, 2), stride=2, dilation=(2, 1), padding=(2, 0)), (2, 2, 8, 7)),
    ("Conv2D", _c2(4, 6, 3, groups=2, padding=1), (2, 4, 5, 5)),
    ("Conv2D", _c2(4, 4, 2, groups=2, stride=2, dilation=2), (2, 4, 7, 7)),
    ("Conv2D", _c2(3, 3, 3, groups=3, padding=1), (2, 3, 5, 6)),                 # depthwise
    ("Conv2D", _c2(3, 6, 3, groups=3, stride=2, padding=1, bias=False), (2, 3, 7, 6)),  # multiplier 2
    ("Conv2D", _c2(3, 3, 3, groups=3, padding="same", dilation=2), (2, 3, 6, 7)),
    ("Conv2D", _c2(3, 6, (2, 3), groups=3, padding="same"), (2, 3, 5, 6)),        # even kernel
    ("Conv2D", _c2(3, 3, 3, groups=3, padding=(3, 2)), (1, 3, 4, 5)),             # padding > reach
    ("Conv2D", _c2(2, 3, 3, padding="same"), (2, 2, 5, 4)),
    ("Conv2D", _c2(2, 3, (4, 2), padding="same"), (2, 2, 5, 6)),                 # even kernel
    ("Conv2D", _c2(2, 3, 2, padding="same", dilation=(1, 3)), (2, 2, 5, 7)),
    ("Conv2D", _c2(2, 3, 3, padding="valid"), (2, 2, 5, 4)),
    ("Conv1D", _c2(3, 4, 3), (2, 3, 9)),
    ("Conv1D", _c2(3, 4, 5, stride=2, padding=2), (2, 3, 11)),
    ("Conv1D", _c2(3, 4, 4, padding="same", dilation=2), (2, 3, 10)),
    ("Conv1D", _c2(4, 6, 3, groups=2, padding=1), (2, 4, 8)),
    ("Conv1D", _c2(4, 8, 3, groups=4, stride=2), (2, 4, 9)),                      # depthwise
    ("Conv1D", _c2(3, 2, 3, padding="valid", bias=False), (3, 3, 6)),
    ("Conv2DTranspose", _c2(3, 2, 3), (2, 3, 4, 4)),
    ("Conv2DTranspose", _c2(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 4, 3)),
    ("Conv2DTranspose", _c2(2, 3, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
     (2, 2, 3, 4)),
    ("Conv2DTranspose", _c2(2, 2, 2, stride=2, bias=False), (2, 2, 3, 3)),          # tiles the output
    ("Conv2DTranspose", _c2(2, 16, 3, stride=2, padding=1), (1, 2, 3, 3)),         # fused fold
]

# larger channel counts (the fused col2im GEMM path, wider groups) for the oracle only
ORACLE_ONLY = [
    ("Conv2D", _c2(20, 6, 3, dilation=2, padding="same"), (2, 20, 7, 6)),
    ("Conv2D", _c2(32, 16, 3, groups=4, stride=2, padding=1), (2, 32, 6, 7)),
    ("Conv2D", _c2(16, 16, 3, groups=16, padding=1), (3, 16, 8, 8)),
    ("Conv2D", _c2(16, 32, 5, groups=16, padding="same", dilation=2), (2, 16, 9, 8)),
    ("Conv1D", _c2(20, 8, 3, dilation=2, padding=2), (2, 20, 15)),
    ("Conv1D", _c2(16, 16, 5, groups=16, padding="same"), (2, 16, 12)),
    ("Conv2DTranspose", _c2(20, 18, 4, stride=2, padding=1), (2, 20, 5, 4)),
]


def _build(name, kwargs):
    return LAYERS[name](**kwargs)


def _with_bias(layer, seed=5):
    if layer.bias is not None:
        layer.bias.data[...] = backend.asarray(_rand(*layer.bias.shape, seed=seed))
    return layer


# ------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("case", CONV_CASES, ids=_id)
def test_conv_gradcheck(float64, case):
    name, kwargs, shape = case
    layer = _with_bias(_build(name, kwargs))
    assert dnn.gradcheck(layer, _rand(*shape)) < 1e-6


@pytest.mark.parametrize("name,kwargs,shape", [
    ("Conv2D", _c2(2, 3, 3, padding="same", l1=0.05, l2=0.1), (2, 2, 4, 5)),
    ("Conv2D", _c2(3, 3, 3, groups=3, l1=0.05, l2=0.1), (2, 3, 5, 5)),
    ("Conv1D", _c2(2, 4, 3, groups=2, l1=0.05, l2=0.1), (2, 2, 7)),
    ("Conv2DTranspose", _c2(2, 3, 3, stride=2, l1=0.05, l2=0.1), (2, 2, 3, 3)),
], ids=["conv2d", "depthwise", "conv1d", "transpose"])
def test_conv_penalties_gradcheck_and_value(float64, name, kwargs, shape):
    layer = _with_bias(_build(name, kwargs))
    w = _np(layer.weight.data)
    assert (layer.weight.l1, layer.weight.l2) == (0.05, 0.1)
    assert layer.bias is None or (layer.bias.l1, layer.bias.l2) == (0.0, 0.0)  # the weight only
    expected = 0.05 * np.abs(w).sum() + 0.1 * (w * w).sum()
    assert float(layer.regularization_loss()) == pytest.approx(expected, rel=1e-12)
    assert dnn.gradcheck(layer, _rand(*shape)) < 1e-6


@pytest.mark.parametrize("scale,shape", [(2, (2, 3, 3, 4)), ((2, 3), (1, 2, 4, 3)), ((1, 1), (2, 2, 3, 3)),
                                         ((3, 1), (2, 1, 2, 5))])
def test_upsampling_gradcheck(float64, scale, shape):
    assert dnn.gradcheck(UpSampling2D(scale), _rand(*shape)) < 1e-6


def test_global_max_pool_gradcheck(float64):
    # distinct values far apart: a finite-difference step never changes the arg-max
    x = np.random.default_rng(1).permutation(2 * 3 * 4 * 5).reshape(2, 3, 4, 5) * 0.01
    assert dnn.gradcheck(GlobalMaxPool2D(), x, h=1e-6) < 1e-6


# ------------------------------------------------------------------ PyTorch oracles
def _torch_module(torch, name, kwargs):
    kw = {k: v for k, v in kwargs.items() if k not in ("l1", "l2")}
    cls = {"Conv1D": torch.nn.Conv1d, "Conv2D": torch.nn.Conv2d,
           "Conv2DTranspose": torch.nn.ConvTranspose2d}[name]
    with warnings.catch_warnings():  # torch: "same" with an even kernel pads a copy (a note)
        warnings.simplefilter("ignore", UserWarning)
        return cls(**kw).double()


def _compare(got, want, what):
    np.testing.assert_allclose(_np(got), want.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)


def _oracle(torch, layer, module, x, seed=0):
    """Same weights in both; forward, dL/dx and every parameter gradient compared."""
    rng = np.random.default_rng(seed)
    state = {k: rng.standard_normal(tuple(v.shape)) for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)
    with torch.no_grad():
        for k, v in state.items():
            getattr(module, k).copy_(torch.tensor(v))
    y = layer.forward(backend.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ty = module(tx)
    assert tuple(y.shape) == tuple(ty.shape) == tuple(layer.output_shape(x.shape))
    _compare(y, ty, "forward")
    g = rng.standard_normal(tuple(ty.shape))
    dx = layer.backward(backend.asarray(g))
    ty.backward(torch.tensor(g))
    _compare(dx, tx.grad, "dL/dx")
    for k in state:
        _compare(getattr(layer, k).grad, getattr(module, k).grad, f"dL/d{k}")
    return state, g


@pytest.mark.parametrize("case", CONV_CASES + ORACLE_ONLY, ids=_id)
def test_conv_matches_torch(float64, case):
    torch = pytest.importorskip("torch")
    name, kwargs, shape = case
    _oracle(torch, _build(name, kwargs), _torch_module(torch, name, kwargs), _rand(*shape, seed=3))


def test_conv_penalty_gradient_matches_torch_plus_penalty(float64):
    """dL/dW = the torch gradient + l1·sign(W) + 2·l2·W (the bias is not penalised)."""
    torch = pytest.importorskip("torch")
    kwargs = _c2(4, 8, 3, groups=4, padding="same", l1=0.03, l2=0.2)
    layer = Conv2D(**kwargs)
    module = _torch_module(torch, "Conv2D", kwargs)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((8, 1, 3, 3)), rng.standard_normal(8)
    layer.load_state_dict({"weight": w, "bias": b})
    with torch.no_grad():
        module.weight.copy_(torch.tensor(w))
        module.bias.copy_(torch.tensor(b))
    x = _rand(2, 4, 5, 5, seed=1)
    y = layer.forward(backend.asarray(x))
    g = _rand(*y.shape, seed=2)
    layer.backward(backend.asarray(g))
    module(torch.tensor(x)).backward(torch.tensor(g))
    want = module.weight.grad.numpy() + 0.03 * np.sign(w) + 0.4 * w
    np.testing.assert_allclose(_np(layer.weight.grad), want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(_np(layer.bias.grad), module.bias.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("scale,shape", [(2, (2, 3, 4, 5)), ((2, 3), (2, 2, 3, 4)), (3, (1, 2, 5, 2)),
                                         ((1, 1), (2, 2, 3, 3))])
def test_upsampling_matches_torch(float64, scale, shape):
    torch = pytest.importorskip("torch")
    layer = UpSampling2D(scale)
    factor = tuple(float(s) for s in layer.scale)
    _oracle(torch, layer, torch.nn.Upsample(scale_factor=factor, mode="nearest"), _rand(*shape))


class _TorchGlobalMax:
    """AdaptiveMaxPool2d(1) flattened to (N, C): one winner per map, as our layer."""

    def __init__(self, torch):
        self.pool = torch.nn.AdaptiveMaxPool2d(1)

    def __call__(self, x):
        return self.pool(x).flatten(1)


def test_global_max_pool_matches_torch(float64):
    torch = pytest.importorskip("torch")
    layer = GlobalMaxPool2D()
    x = _rand(3, 4, 5, 6)
    _oracle(torch, layer, _TorchGlobalMax(torch), x)
    amax = torch.tensor(x).amax(dim=(2, 3))  # the same values as torch's amax
    np.testing.assert_allclose(_np(layer.forward(backend.asarray(x))), amax.numpy(), rtol=0)


def test_global_max_pool_ties_have_one_winner_as_adaptive_max_pool(float64):
    """Tied maxima: the whole gradient goes to the first one in row-major order, exactly where
    AdaptiveMaxPool2d(1) sends it (torch.amax would split it evenly among the ties)."""
    torch = pytest.importorskip("torch")
    x = np.zeros((2, 3, 4, 4))
    x[..., 1:3, 2:4] = 2.0  # four equal maxima per map
    x[1, 2] = -1.0  # a map that is all ties
    layer = GlobalMaxPool2D()
    layer.forward(backend.asarray(x))
    g = _rand(2, 3, seed=1)
    dx = _np(layer.backward(backend.asarray(g)))
    tx = torch.tensor(x, requires_grad=True)
    _TorchGlobalMax(torch)(tx).backward(torch.tensor(g))
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    assert dx[0, 0, 1, 2] == g[0, 0] and dx[1, 2, 0, 0] == g[1, 2]
    np.testing.assert_allclose(dx.sum(axis=(2, 3)), g, rtol=1e-15)  # delivered exactly once


# ------------------------------------------------------------------ paths that skip work
@pytest.mark.parametrize("name,kwargs,shape", [
    ("Conv2D", _c2(3, 6, 3, groups=3, padding=1), (2, 3, 5, 5)),
    ("Conv2D", _c2(4, 6, 3, groups=2, stride=2), (2, 4, 7, 6)),
    ("Conv2DTranspose", _c2(3, 4, 3, stride=2), (2, 3, 3, 4)),
], ids=["depthwise", "grouped", "transpose"])
def test_frozen_weight_and_no_input_gradient(float64, name, kwargs, shape):
    """A frozen weight gets no gradient (and dL/dx is unchanged); a layer on the data input
    returns no dL/dx, in a model that still trains its weights."""
    layer = _with_bias(_build(name, kwargs))
    x = backend.asarray(_rand(*shape))
    g = backend.asarray(_rand(*layer.output_shape(shape), seed=1))
    layer.weight.trainable = False
    layer.forward(x)
    dx_frozen = _np(layer.backward(g))
    assert layer.weight.grad is None and layer.bias.grad is not None
    layer.weight.trainable = True
    layer.forward(x)
    np.testing.assert_allclose(_np(layer.backward(g)), dx_frozen, rtol=1e-12)
    assert layer.weight.grad is not None
    model = dnn.Sequential([layer, Flatten(), Dense(int(np.prod(layer.output_shape(shape)[1:])), 2)])
    model.compile(loss="mse", optimizer=dnn.optim.SGD(lr=0.1))
    before = _np(layer.weight.data).copy()
    model.train_step(x, backend.asarray(_rand(shape[0], 2, seed=2)))
    assert not np.allclose(_np(layer.weight.data), before)


# ------------------------------------------------------------------ arguments and errors
@pytest.mark.parametrize("cls,kwargs,match", [
    (Conv2D, _c2(4, 6, 3, groups=3), r"Conv2D: in_channels must be divisible by groups=3, got in_channels=4"),
    (Conv2D, _c2(4, 6, 3, groups=4), r"Conv2D: out_channels must be divisible by groups=4, got out_chan"),
    (Conv2D, _c2(4, 4, 3, groups=0), r"Conv2D: groups must be a positive int, got 0"),
    (Conv2D, _c2(4, 4, 3, dilation=0), r"Conv2D: dilation must be int\(s\) >= 1, got 0"),
    (Conv2D, _c2(4, 4, 3, dilation=(1, 2, 3)), r"Conv2D: dilation must be an int or 2 ints"),
    (Conv2D, _c2(4, 4, 3, padding="full"), r"Conv2D: padding must be 'same', 'valid' or int"),
    (Conv2D, _c2(4, 4, 3, padding="same", stride=2), r"Conv2D: padding='same' needs stride 1"),
    (Conv2D, _c2(4, 4, 3, padding=(1, -1)), r"Conv2D: padding must be int\(s\) >= 0"),
    (Conv2D, _c2(4, 4, 3, l1=-0.1), r"Conv2D: l1 must be a finite number >= 0"),
    (Conv2D, _c2(4, 4, 3, l2=float("nan")), r"Conv2D: l2 must be a finite number >= 0"),
    (Conv1D, _c2(4, 4, (3, 3)), r"Conv1D: kernel_size must be an int, got \(3, 3\)"),
    (Conv1D, _c2(4, 6, 3, groups=4), r"Conv1D: out_channels must be divisible by groups=4"),
    (Conv1D, _c2(4, 4, 3, padding="same", stride=2), r"Conv1D: padding='same' needs stride 1"),
    (Conv1D, _c2(4, 4, 3, dilation=0), r"Conv1D: dilation must be int\(s\) >= 1"),
    (Conv2DTranspose, _c2(2, 2, 3, stride=2, output_padding=2),
     r"Conv2DTranspose: output_padding must be smaller than stride in each axis"),
    (Conv2DTranspose, _c2(2, 2, 3, output_padding=1), r"Conv2DTranspose: output_padding must be smaller"),
    (Conv2DTranspose, _c2(2, 2, 3, output_padding=-1), r"Conv2DTranspose: output_padding must be int"),
    (Conv2DTranspose, _c2(2, 2, 3, padding="same"), r"Conv2DTranspose: padding must be int\(s\) >= 0"),
    (Conv2DTranspose, _c2(2, 2, 0), r"Conv2DTranspose: kernel_size must be int\(s\) >= 1"),
    (Conv2DTranspose, _c2(2, 2, 3, l1=-1), r"Conv2DTranspose: l1 must be a finite number >= 0"),
])
def test_bad_arguments_name_the_layer_and_argument(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_upsampling_arguments():
    with pytest.raises(ValueError, match=r"UpSampling2D: scale must be int\(s\) >= 1, got 0"):
        UpSampling2D(0)
    with pytest.raises(ValueError, match=r"UpSampling2D: scale must be an int or 2 ints, got 1.5"):
        UpSampling2D(1.5)
    with pytest.raises(ValueError, match=r"UpSampling2D: mode must be one of \['nearest'\].*'bilinear'"):
        UpSampling2D(2, mode="bilinear")


def test_shape_errors(backend_name):
    zeros = backend.xp.zeros
    with pytest.raises(ShapeError, match=r"Conv1D: expected a 3-D input \(batch, 4, length\)"):
        Conv1D(4, 2, 3)(zeros((2, 4, 8, 8)))
    with pytest.raises(ShapeError, match=r"Conv1D: expected 4 input channels \(axis 1 of NCL\), got 3"):
        Conv1D(4, 2, 3)(zeros((2, 3, 8)))
    with pytest.raises(ShapeError, match=r"Conv1D.*\(4\) is smaller than the kernel 3 \(dilation 2: it spa"):
        Conv1D(4, 2, 3, dilation=2)(zeros((2, 4, 4)))
    with pytest.raises(ShapeError, match=r"Conv2D.*\(4x7\) is smaller than the kernel 3x3 \(dilation 2x1"):
        Conv2D(1, 2, 3, dilation=(2, 1))(zeros((1, 1, 4, 7)))
    Conv2D(1, 2, 3, dilation=2, padding="same")(zeros((1, 1, 2, 2)))  # "same" pads enough
    with pytest.raises(ShapeError, match=r"Conv2D: expected 4 input channels \(axis 1 of NCHW\), got 3"):
        Conv2D(4, 4, 3, groups=4)(zeros((1, 3, 5, 5)))
    with pytest.raises(ShapeError, match=r"Conv2DTranspose: expected a 4-D input"):
        Conv2DTranspose(2, 2, 3)(zeros((2, 2, 5)))
    with pytest.raises(ShapeError, match=r"Conv2DTranspose: input shape \(1, 2, 1, 1\) gives an empty"):
        Conv2DTranspose(2, 2, 1, padding=1)(zeros((1, 2, 1, 1)))
    with pytest.raises(ShapeError, match=r"UpSampling2D.*4-D"):
        UpSampling2D()(zeros((2, 3, 4)))
    with pytest.raises(ShapeError, match=r"GlobalMaxPool2D.*4-D"):
        GlobalMaxPool2D()(zeros((2, 3)))


# ------------------------------------------------------------------ configs and shapes
CONFIG_LAYERS = [
    Conv2D(3, 6, (3, 5), stride=(1, 2), padding="valid", dilation=(2, 1), groups=3, bias=False,
           init="he_normal", l1=0.01, l2=0.02),
    Conv2D(4, 4, 3, padding="same", groups=4),
    Conv1D(4, 8, 5, stride=2, padding=2, dilation=3, groups=2, l2=0.5),
    Conv1D(2, 3, 4, padding="same"),
    Conv2DTranspose(3, 2, (3, 4), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), l1=0.1),
    UpSampling2D((2, 3)),
    GlobalMaxPool2D(),
]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = type(layer)(**config)
    assert rebuilt.get_config() == config
    assert [tuple(p.shape) for p in rebuilt.parameters()] == [tuple(p.shape) for p in layer.parameters()]
    assert [(p.l1, p.l2) for p in rebuilt.parameters()] == [(p.l1, p.l2) for p in layer.parameters()]


def test_configs_and_weight_layouts():
    assert CONFIG_LAYERS[0].get_config() == {
        "in_channels": 3, "out_channels": 6, "kernel_size": [3, 5], "stride": [1, 2],
        "padding": "valid", "dilation": [2, 1], "groups": 3, "bias": False, "init": "he_normal",
        "l1": 0.01, "l2": 0.02}
    assert tuple(CONFIG_LAYERS[0].weight.shape) == (6, 1, 3, 5)
    assert CONFIG_LAYERS[2].get_config() == {
        "in_channels": 4, "out_channels": 8, "kernel_size": [5], "stride": [2], "padding": [2],
        "dilation": [3], "groups": 2, "bias": True, "init": "he_uniform", "l1": 0.0, "l2": 0.5}
    assert tuple(CONFIG_LAYERS[2].weight.shape) == (8, 2, 5)
    # (30 + 2 + 2 - 3·4 - 1) // 2 + 1 = 11
    assert Conv1D(**CONFIG_LAYERS[2].get_config()).output_shape((7, 4, 30)) == (7, 8, 11)
    assert CONFIG_LAYERS[4].get_config() == {
        "in_channels": 3, "out_channels": 2, "kernel_size": [3, 4], "stride": [2, 3],
        "padding": [1, 0], "bias": True, "init": "he_uniform", "l1": 0.1, "l2": 0.0,
        "output_padding": [1, 2]}
    assert tuple(CONFIG_LAYERS[4].weight.shape) == (3, 2, 3, 4)  # (in, out, kh, kw)
    assert CONFIG_LAYERS[4].output_shape((5, 3, 4, 6)) == (5, 2, 8, 21)  # (6 - 1)·3 - 0 + 4 + 2
    assert UpSampling2D((2, 3)).get_config() == {"scale": [2, 3], "mode": "nearest"}
    assert UpSampling2D(2).output_shape((1, 3, 4, 5)) == (1, 3, 8, 10)
    assert GlobalMaxPool2D().output_shape((2, 3, 4, 5)) == (2, 3)
    # "same": output size = input size, the odd extra padding after (torch's choice)
    same = Conv2D(2, 2, (4, 3), padding="same", dilation=(1, 2))
    assert same.pads == (1, 2, 2, 2)
    assert same.output_shape((1, 2, 9, 8)) == (1, 2, 9, 8)


# ------------------------------------------------------------------ dtype, graphs, training
def test_float32_stays_float32(backend_name):
    cases = [(Conv2D(3, 6, 3, groups=3, padding="same"), (2, 3, 5, 5)),
             (Conv2D(4, 4, 3, groups=2, dilation=2), (2, 4, 6, 6)),
             (Conv1D(3, 4, 3, padding=1), (2, 3, 7)),
             (Conv2DTranspose(3, 2, 3, stride=2), (2, 3, 3, 3)),
             (UpSampling2D(2), (2, 3, 3, 3)), (GlobalMaxPool2D(), (2, 3, 3, 3))]
    for layer, shape in cases:
        x = backend.asarray(_rand(*shape).astype(np.float32))
        y = layer(x)
        assert y.dtype == x.dtype and tuple(y.shape) == layer.output_shape(shape)
        dx = layer.backward(backend.xp.ones(tuple(y.shape), dtype=y.dtype))
        assert dx.dtype == x.dtype and tuple(dx.shape) == shape


def test_upsampling_output_is_never_a_view_of_the_input(backend_name):
    x = backend.asarray(_rand(1, 2, 2, 3).astype(np.float32))
    for scale in (1, (1, 2), 2):
        y = UpSampling2D(scale)(x)
        y += 1.0
        np.testing.assert_array_equal(_np(x), _rand(1, 2, 2, 3).astype(np.float32))


def test_functional_graph_shapes():
    seq = dnn.Input((4, 16))
    h = Conv1D(4, 8, 3, padding="same")(seq)
    h = Conv1D(8, 8, 5, groups=8, stride=2, padding=2)(h)
    assert h.shape == (None, 8, 8)
    img = dnn.Input((3, 8, 8))
    z = Conv2D(3, 3, 3, padding="same", groups=3)(img)
    z = Conv2DTranspose(3, 2, 2, stride=2)(z)
    z = UpSampling2D(2)(z)
    assert z.shape == (None, 2, 32, 32)
    assert GlobalMaxPool2D()(z).shape == (None, 2)
    with pytest.raises(ShapeError, match=r"Conv1D.*expected 5 input channels"):
        Conv1D(5, 2, 3)(seq)


def test_models_with_the_new_layers_learn(backend_name):
    """A depthwise-separable encoder with a transposed-conv/upsampling decoder and a Conv1D
    classifier both lower their loss in a few Adam steps; a GlobalMaxPool2D head predicts."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 2, 8, 8)).astype(np.float32)
    image_model = dnn.Sequential([
        Conv2D(2, 2, 3, padding="same", groups=2), Conv2D(2, 4, 1), ReLU(),
        Conv2D(4, 4, 3, stride=2, padding=1), ReLU(),
        Conv2DTranspose(4, 4, 3, stride=2, padding=1, output_padding=1), ReLU(),
        UpSampling2D(1), Conv2D(4, 2, 3, padding="same"),
    ])
    seq = rng.normal(size=(32, 3, 12)).astype(np.float32)
    labels = (seq[:, 0].mean(axis=1) > 0).astype(np.int64)
    seq_model = dnn.Sequential([Conv1D(3, 8, 3, padding="same", dilation=2), ReLU(), Flatten(),
                                Dense(8 * 12, 2)])
    for model, data, target, loss in ((image_model, x, x, "mse"),
                                      (seq_model, seq, labels, "SoftmaxCrossEntropy")):
        model.compile(loss=loss, optimizer=dnn.optim.Adam(lr=0.01))
        history = model.fit(data, target, epochs=6, batch_size=8, verbose=0, seed=0)
        assert history.history["loss"][-1] < history.history["loss"][0]
    head = dnn.Sequential([Conv2D(2, 4, 3, groups=2), GlobalMaxPool2D(), Dense(4, 2)])
    head.compile(loss="mse", optimizer="sgd")
    assert tuple(_np(head.predict(x)).shape) == (16, 2)


def test_the_im2col_workspace_is_reused_between_steps_and_released_after_fit(backend_name):
    """A convolution hands its im2col matrix to the library after backward; the next
    forward writes into it; fit releases every spare when it ends (nothing held at rest)."""
    backend.library.release_workspaces()
    layer = Conv2D(2, 3, 3, padding=1)
    x = backend.asarray(np.random.default_rng(0).standard_normal((2, 2, 5, 5)))
    y = layer.forward(x, training=True)
    layer.backward(backend.xp.ones_like(y))
    held = backend.library.workspace_bytes()
    im2col_bytes = 2 * 5 * 5 * 9 * 2 * 4  # (N·OH·OW, kh·kw·C) float32
    assert held == (im2col_bytes if backend.library.strided_writes else 0)
    layer.forward(x, training=True)
    assert backend.library.workspace_bytes() == 0  # the forward took it
    layer.backward(backend.xp.ones_like(y))
    model = dnn.Sequential([Conv2D(1, 2, 3), Flatten(), Dense(2 * 4 * 4, 2)])
    model.compile("SoftmaxCrossEntropy", "sgd")
    model.fit(np.zeros((4, 1, 6, 6), np.float32), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    assert backend.library.workspace_bytes() == 0
