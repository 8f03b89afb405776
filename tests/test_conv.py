"""Conv2D, Flatten/Reshape and the backend window ops (dnn.backend.windows).

Every layer test runs on each installed backend: float64 gradient checks,
values and gradients against torch.nn.functional.conv2d, shape errors, configs.
The slow test trains the Fashion-MNIST CNN of examples/11 to >= 0.91 accuracy.
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.backend import windows
from dnn.errors import ShapeError
from dnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Reshape

ROOT = Path(__file__).resolve().parents[1]

# (N, C, H, W, out, kernel, stride, padding)
GRAD_CASES = [
    (2, 2, 5, 5, 3, 3, 1, 0),
    (2, 2, 5, 6, 2, 3, 1, 1),
    (1, 3, 7, 5, 2, 3, 2, 1),          # batch of 1, odd sizes, stride 2
    (2, 1, 6, 7, 2, (2, 3), 1, 2),     # non-square kernel, padding 2
    (2, 2, 7, 6, 2, (3, 2), (2, 1), (1, 0)),  # everything per axis
    (3, 2, 4, 4, 3, 1, 1, 0),          # 1x1 kernel
    (2, 2, 6, 6, 2, 2, 2, 0),          # stride = kernel (windows tile the image)
    (1, 2, 7, 7, 2, 2, 3, 1),          # stride > kernel (gaps between windows)
]


def _np(x):
    return backend.to_numpy(x)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ------------------------------------------------------------------ the window ops
def _im2col_reference(x, kernel, stride, padding):
    """Explicit loops: row (n, p, q), column (i, j, c)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    cols = np.zeros((n, oh, ow, kh, kw, c))
    for p in range(oh):
        for q in range(ow):
            window = x[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw]  # (n, c, kh, kw)
            cols[:, p, q] = window.transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, kh * kw * c)


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_im2col_matches_loops_and_col2im_is_its_adjoint(float64, case):
    n, c, h, w, _, k, s, p = case
    kernel, stride, padding = _pair(k), _pair(s), _pair(p)
    x = _rand(n, c, h, w)
    cols = windows.im2col(backend.asarray(x), kernel, stride, padding)
    expected = _im2col_reference(x, kernel, stride, padding)
    assert tuple(cols.shape) == expected.shape
    np.testing.assert_allclose(_np(cols), expected, rtol=0, atol=0)
    # adjoint: <im2col(x), r> == <x, col2im(r)> for any r
    r = _rand(*expected.shape, seed=1)
    back = windows.col2im(backend.asarray(r), (n, c, h, w), kernel, stride, padding)
    assert tuple(back.shape) == (n, c, h, w)
    assert math.isclose(float(np.sum(expected * r)), float(np.sum(x * _np(back))), rel_tol=1e-10)
    # col2im_matmul(g, w2) == col2im(g @ w2)
    g, w2 = _rand(expected.shape[0], 3, seed=2), _rand(3, expected.shape[1], seed=3)
    fused = windows.col2im_matmul(backend.asarray(g), backend.asarray(w2), (n, c, h, w),
                                  kernel, stride, padding)
    plain = windows.col2im(backend.asarray(g @ w2), (n, c, h, w), kernel, stride, padding)
    np.testing.assert_allclose(_np(fused), _np(plain), rtol=1e-12, atol=1e-12)


def _dilated_reference(x, kernel, stride, pads, dilation):
    """Explicit loops: windows (n, p, q, i, j, c) of x padded by (top, bottom, left, right)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    top, bottom, left, right = pads
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, h, w = x.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, oh, ow, kh, kw, c))
    for p in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    out[:, p, q, i, j] = x[:, :, p * sh + i * dh, q * sw + j * dw]
    return out


# (N, C, H, W, kernel, stride, (top, bottom, left, right), dilation, groups)
WINDOW_CASES = [
    (2, 4, 7, 6, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
    (2, 4, 8, 7, (3, 2), (2, 1), (1, 2, 0, 1), (1, 3), 2),   # uneven padding ("same", even kernel)
    (1, 6, 9, 9, (2, 2), (2, 3), (0, 1, 1, 0), (3, 2), 3),
    (2, 3, 5, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3),   # one channel per group (depthwise)
    (2, 2, 6, 6, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 2),   # tiling windows, grouped
]


@pytest.mark.parametrize("case", WINDOW_CASES, ids=lambda c: "-".join(map(str, c[4:])))
def test_im2col_dilation_groups_uneven_padding_and_adjoints(float64, case):
    n, c, h, w, kernel, stride, pads, dilation, groups = case
    x = _rand(n, c, h, w)
    ref = _dilated_reference(x, kernel, stride, pads, dilation)  # (n, oh, ow, kh, kw, c)
    _, oh, ow, kh, kw, _ = ref.shape
    cg = c // groups
    cols = windows.im2col(backend.asarray(x), kernel, stride, pads, dilation=dilation, groups=groups)
    expected = ref.reshape(n, oh, ow, kh, kw, groups, cg).transpose(5, 0, 1, 2, 3, 4, 6)
    expected = expected.reshape(groups, n * oh * ow, kh * kw * cg)
    if groups == 1:
        expected = expected[0]
    np.testing.assert_array_equal(_np(cols), expected)
    assert windows.out_size(h, kh, stride[0], pads[:2], dilation[0]) == oh
    assert windows.out_size(w, kw, stride[1], pads[2:], dilation[1]) == ow
    r = _rand(*expected.shape, seed=1)
    back = windows.col2im(backend.asarray(r), (n, c, h, w), kernel, stride, pads,
                          dilation=dilation, groups=groups)
    assert math.isclose(float(np.sum(expected * r)), float(np.sum(x * _np(back))), rel_tol=1e-10)
    # the fused fold agrees with col2im(g @ w2) (per group: g's columns in `groups` blocks)
    rows = n * oh * ow
    g, w2 = _rand(rows, 3 * groups, seed=2), _rand(groups, 3, kh * kw * cg, seed=3)
    product = np.einsum("rgo,gok->grk", g.reshape(rows, groups, 3), w2)
    fused = windows.col2im_matmul(backend.asarray(g), backend.asarray(w2[0] if groups == 1 else w2),
                                  (n, c, h, w), kernel, stride, pads, dilation=dilation, groups=groups)
    plain = windows.col2im(backend.asarray(product[0] if groups == 1 else product), (n, c, h, w),
                           kernel, stride, pads, dilation=dilation, groups=groups)
    np.testing.assert_allclose(_np(fused), _np(plain), rtol=1e-12, atol=1e-12)
    # pad2d / crop2d with four sides
    padded = windows.pad2d(backend.asarray(x), pads, value=-3.0)
    assert tuple(padded.shape) == (n, c, h + pads[0] + pads[1], w + pads[2] + pads[3])
    np.testing.assert_array_equal(_np(windows.crop2d(padded, pads)), x)


@pytest.mark.parametrize("case", [
    ((2, 3, 7, 6), 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),   # stride 1: NumPy's flipped correlation
    ((2, 3, 7, 6), 2, (3, 2), (1, 1), (1, 1, 0, 1), (2, 2)),   # multiplier 2, uneven padding
    ((2, 2, 8, 7), 1, (3, 3), (2, 3), (1, 0, 2, 2), (1, 2)),   # strided: the tap fold
    ((1, 2, 4, 5), 3, (2, 2), (1, 1), (3, 2, 0, 0), (1, 1)),   # padding beyond the window's reach
], ids=["s1", "m2-uneven", "strided", "wide-pad"])
def test_depthwise_ops_match_loops_and_are_adjoint(float64, case):
    (n, c, h, w), m, kernel, stride, pads, dilation = case
    x, weight = _rand(n, c, h, w), _rand(c, m, *kernel, seed=1)
    taps = _dilated_reference(x, kernel, stride, pads, dilation)  # (n, oh, ow, kh, kw, c)
    expected = np.einsum("npqijc,ckij->nckpq", taps, weight).reshape(n, c * m, *taps.shape[1:3])
    xpad = windows.pad2d(backend.asarray(x), pads)
    y = windows.depthwise(xpad, backend.asarray(weight), stride, dilation)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-12, atol=1e-12)
    g = _rand(*expected.shape, seed=2)
    dw = windows.depthwise_weight_grad(xpad, backend.asarray(g), kernel, stride, dilation)
    g5 = g.reshape(n, c, m, *g.shape[2:])
    np.testing.assert_allclose(_np(dw), np.einsum("npqijc,nckpq->ckij", taps, g5), rtol=1e-12)
    dx = windows.depthwise_input_grad(backend.asarray(g), backend.asarray(weight), (n, c, h, w),
                                      stride, pads, dilation)
    assert tuple(dx.shape) == (n, c, h, w)  # <depthwise(x), g> = <x, dL/dx>
    assert math.isclose(float(np.sum(expected * g)), float(np.sum(x * _np(dx))), rel_tol=1e-10)


@pytest.mark.parametrize("kernel,stride", [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((2, 2), (3, 3)),
                                           ((3, 3), (2, 2)), ((1, 1), (1, 1))])
def test_window_view_slices_and_fold(float64, kernel, stride):
    x = _rand(2, 3, 7, 8)
    xa = backend.asarray(x)
    view = _np(windows.window_view(xa, kernel, stride))
    ref = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    np.testing.assert_array_equal(view, ref)
    pieces = windows.window_slices(xa, kernel, stride)
    assert len(pieces) == kernel[0] * kernel[1]
    for t, piece in enumerate(pieces):
        np.testing.assert_array_equal(_np(piece), ref[..., t // kernel[1], t % kernel[1]])
    # fold_slices is the adjoint of window_slices (overlapping, tiling and gapped windows)
    rs = [_rand(*ref.shape[:4], seed=10 + t) for t in range(len(pieces))]
    folded = _np(windows.fold_slices((backend.asarray(r) for r in rs), x.shape, kernel, stride,
                                     like=xa))
    lhs = sum(float(np.sum(ref[..., t // kernel[1], t % kernel[1]] * r)) for t, r in enumerate(rs))
    assert math.isclose(lhs, float(np.sum(x * folded)), rel_tol=1e-10)


def test_pad_crop_and_masked(backend_name):
    x = backend.asarray(_rand(2, 3, 4, 5).astype(np.float32))
    padded = windows.pad2d(x, (1, 2), value=-7.0)
    assert tuple(padded.shape) == (2, 3, 6, 9)
    p = _np(padded)
    assert np.all(p[:, :, 0, :] == -7.0) and np.all(p[:, :, :, -2:] == -7.0)
    np.testing.assert_array_equal(_np(windows.crop2d(padded, (1, 2))), _np(x))
    assert windows.pad2d(x, (0, 0)) is x
    mask = x > 0
    out = windows.masked(mask, x)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(_np(out), np.where(_np(x) > 0, _np(x), 0))
    assert windows.out_size(28, 3, 1, 1) == 28 and windows.out_size(7, 3, 2, 1) == 4


# ------------------------------------------------------------------ Conv2D
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: "-".join(map(str, c)))
def test_conv2d_gradcheck(float64, case):
    n, c, h, w, out, k, s, p = case
    layer = Conv2D(c, out, k, stride=s, padding=p)
    layer.bias.data[...] = backend.asarray(_rand(out, seed=5))
    assert dnn.gradcheck(layer, _rand(n, c, h, w)) < 1e-6


def test_conv2d_gradcheck_no_bias(float64):
    layer = Conv2D(2, 3, 3, padding=1, bias=False)
    assert layer.parameters() == [layer.weight]
    assert dnn.gradcheck(layer, _rand(2, 2, 4, 5)) < 1e-6


@pytest.mark.parametrize("case", [*GRAD_CASES, (4, 8, 12, 10, 16, 3, 1, 1), (3, 5, 13, 11, 7, 5, 2, 2),
                                  (2, 16, 6, 5, 4, 3, 1, 1), (2, 20, 7, 7, 3, (3, 2), 2, (1, 0))],
                         ids=lambda c: "-".join(map(str, c)))
def test_conv2d_matches_torch(float64, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n, c, h, w, out, k, s, p = case
    layer = Conv2D(c, out, k, stride=s, padding=p)
    weight, bias = _rand(out, c, *_pair(k), seed=1), _rand(out, seed=2)
    layer.load_state_dict({"weight": weight, "bias": bias})
    x = _rand(n, c, h, w, seed=3)
    y = layer.forward(backend.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(weight, requires_grad=True)
    tb = torch.tensor(bias, requires_grad=True)
    ty = F.conv2d(tx, tw, tb, stride=s, padding=p)
    assert tuple(y.shape) == tuple(ty.shape) == layer.output_shape((n, c, h, w))
    np.testing.assert_allclose(_np(y), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = _rand(*ty.shape, seed=4)
    dx = layer.backward(backend.asarray(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(_np(dx), tx.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(layer.weight.grad), tw.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(layer.bias.grad), tb.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_conv2d_grads_land_in_flat_buffers(backend_name):
    """Inside a compiled model the parameters are views of one flat buffer; backward
    must write the gradients there (a step then moves the weights)."""
    model = dnn.Sequential([Conv2D(2, 3, 3, padding=1), Flatten(), Dense(3 * 4 * 4, 2)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.SGD(lr=0.1))
    conv = model.layers[0]
    before = _np(conv.weight.data).copy()
    x = backend.asarray(_rand(4, 2, 4, 4).astype(np.float32))
    y = backend.asarray(np.array([0, 1, 1, 0]))
    model.train_step(x, y)
    assert conv.weight.group is not None
    assert float(np.abs(_np(conv.weight.grad)).sum()) > 0
    assert not np.allclose(_np(conv.weight.data), before)


def test_conv2d_float32_output_dtype_and_layout(backend_name):
    layer = Conv2D(3, 4, 3, padding=1)
    x = backend.asarray(_rand(2, 3, 5, 5).astype(np.float32))
    y = layer(x)
    assert y.dtype == x.dtype == layer.weight.data.dtype
    dx = layer.backward(backend.xp.ones(tuple(y.shape), dtype=y.dtype))
    assert tuple(dx.shape) == (2, 3, 5, 5) and dx.dtype == x.dtype


def test_conv2d_shape_errors(backend_name):
    layer = Conv2D(3, 4, 3)
    with pytest.raises(ShapeError, match=r"Conv2D.*4-D.*\(2, 3, 8\)"):
        layer(backend.xp.zeros((2, 3, 8)))
    with pytest.raises(ShapeError, match=r"Conv2D.*expected 3 input channels.*got 1"):
        layer(backend.xp.zeros((2, 1, 8, 8)))
    with pytest.raises(ShapeError, match=r"smaller than the kernel 3x3"):
        layer(backend.xp.zeros((2, 3, 2, 8)))
    model = dnn.Sequential([Conv2D(1, 2, 3), ReLU()])
    with pytest.raises(ShapeError, match=r"layer 0 \(Conv2D\).*expected 1 input channels.*got 3"):
        model.forward(backend.xp.zeros((1, 3, 5, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        Conv2D(1, 1, 1).backward(backend.xp.zeros((1, 1, 2, 2)))


@pytest.mark.parametrize("bad", [
    {"in_channels": 0}, {"out_channels": -1}, {"kernel_size": 0}, {"kernel_size": (3,)},
    {"stride": 0}, {"padding": -1}, {"kernel_size": 2.5},
])
def test_conv2d_bad_arguments(bad):
    args = {"in_channels": 1, "out_channels": 2, "kernel_size": 3, **bad}
    with pytest.raises(ValueError, match="Conv2D"):
        Conv2D(**args)


def test_conv2d_config_shapes_and_init():
    layer = Conv2D(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), bias=False, init="he_normal")
    config = layer.get_config()
    assert config == {"in_channels": 3, "out_channels": 8, "kernel_size": [3, 5], "stride": [2, 1],
                      "padding": [1, 2], "dilation": [1, 1], "groups": 1, "bias": False,
                      "init": "he_normal", "l1": 0.0, "l2": 0.0}
    assert Conv2D(**config).get_config() == config
    assert layer.output_shape((4, 3, 9, 10)) == (4, 8, 5, 10)
    assert tuple(layer.weight.data.shape) == (8, 3, 3, 5)
    default = Conv2D(16, 32, 3)
    bound = math.sqrt(6.0 / (16 * 9))  # he_uniform on fan_in = in·kh·kw
    w = _np(default.weight.data)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.all(_np(default.bias.data) == 0)


# ------------------------------------------------------------------ Flatten and Reshape
def test_flatten_and_reshape(backend_name):
    x = backend.asarray(_rand(2, 3, 4, 5).astype(np.float32))
    flat = Flatten()
    y = flat(x)
    assert tuple(y.shape) == (2, 60) == flat.output_shape((2, 3, 4, 5))
    np.testing.assert_array_equal(_np(y), _np(x).reshape(2, 60))  # C order, as torch
    back = flat.backward(y)
    assert tuple(back.shape) == (2, 3, 4, 5)
    np.testing.assert_array_equal(_np(back), _np(x))
    reshape = Reshape((5, -1))
    z = reshape(y)
    assert tuple(z.shape) == (2, 5, 12) == reshape.output_shape((2, 60))
    assert tuple(reshape.backward(z).shape) == (2, 60)
    assert Reshape(**reshape.get_config()).shape == (5, -1)
    with pytest.raises(ShapeError, match=r"Reshape.*\(2, 60\).*\(batch, 7, -1\)"):
        Reshape((7, -1))(y)
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))


def test_flatten_gradcheck(float64):
    assert dnn.gradcheck(Flatten(), _rand(2, 2, 3, 3)) < 1e-6
    assert dnn.gradcheck(Reshape((3, 6)), _rand(2, 2, 3, 3)) < 1e-6


# ------------------------------------------------------------------ in a model
def test_small_cnn_learns(backend_name):
    """Two bright-quadrant classes: a tiny CNN fits them in a few Adam steps."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.normal(0, 0.1, (64, 1, 8, 8)).astype(np.float32)
    x[y == 0, :, :4, :4] += 1.0
    x[y == 1, :, 4:, 4:] += 1.0
    model = dnn.Sequential([Conv2D(1, 4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(64, 2)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.01), metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert model.evaluate(x, y)["accuracy"] > 0.95


@pytest.mark.slow
def test_fashion_mnist_cnn_reaches_91_percent(data_home, monkeypatch, capsys, tmp_path):
    """The example CNN (float32, Adam, 4 epochs) on the full Fashion-MNIST: >= 0.91 test
    accuracy. One BLAS thread: on a shared 2-core machine OpenBLAS's spinning worker
    threads make every GEMM several times slower once the cores are oversubscribed."""
    monkeypatch.setenv("DNN_DATA_HOME", str(data_home))
    spec = importlib.util.spec_from_file_location("example11", ROOT / "examples" / "11_fashion_mnist_cnn.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    start = time.perf_counter()
    pytest.importorskip("threadpoolctl")
    result = example.main(["--verbose", "0", "--blas-threads", "1", "--out", str(tmp_path)])
    elapsed = time.perf_counter() - start
    print(f"Fashion-MNIST CNN: test accuracy {result['accuracy']:.4f} in {elapsed:.0f} s")
    assert result["accuracy"] >= 0.91


def test_cnn_saves_and_loads(tmp_path):
    """Conv, pooling and shape layers rebuild from a model file with identical outputs."""
    from dnn.layers import AvgPool2D, GlobalAvgPool2D

    model = dnn.Sequential([
        Conv2D(2, 4, (3, 2), stride=(1, 2), padding=(1, 0)), ReLU(), MaxPool2D(2, padding=1),
        Conv2D(4, 6, 1, bias=False), AvgPool2D(2, 1), Reshape((6, -1)), Flatten(),
    ])
    head = dnn.Sequential([Conv2D(2, 3, 3), GlobalAvgPool2D(), Dense(3, 2)])
    x = _rand(3, 2, 9, 10).astype(np.float32)
    for net in (model, head):
        net.compile(loss="MSE", optimizer="sgd")
        path = tmp_path / f"{id(net)}.dnn"
        net.save(str(path))
        loaded = dnn.load_model(str(path))
        assert [type(a) for a in loaded.layers] == [type(b) for b in net.layers]
        np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


def test_conv2d_workspace_never_aliases_inputs_or_outputs(backend_name):
    """The im2col buffer is reused by the next forward: that must not touch an earlier
    input or output (a 1x1 kernel's windows are the input itself)."""
    layer = Conv2D(3, 2, 1)
    x1 = backend.asarray(_rand(2, 3, 4, 4).astype(np.float32))
    x2 = backend.asarray(_rand(2, 3, 4, 4, seed=1).astype(np.float32))
    x1_copy = _np(x1).copy()
    y1 = layer(x1)
    y1_copy = _np(y1).copy()
    layer(x2)
    np.testing.assert_array_equal(_np(x1), x1_copy)
    np.testing.assert_array_equal(_np(y1), y1_copy)
    # backward uses the latest forward: the weight gradient of x2
    g = backend.xp.ones((2, 2, 4, 4), dtype=x1.dtype)
    layer.backward(g)
    expected = _np(x2).sum(axis=(0, 2, 3))  # dL/dW[o, c] = Σ x2[n, c, h, w] for every o
    np.testing.assert_allclose(_np(layer.weight.grad)[:, :, 0, 0], np.stack([expected] * 2), rtol=1e-5)
