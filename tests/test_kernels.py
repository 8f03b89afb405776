"""The fused kernels of dnn.backend.kernels (Numba, the ``fast`` extra) against the portable
paths they replace, on NumPy (the library they serve): max pooling, im2col and col2im
give the same bits; the layers built on them (Conv2D, Conv1D, Conv2DTranspose,
MaxPool2D) give the same outputs and gradients up to the GEMMs' rounding; the LSTM cell
agrees up to the rounding of tanh.

The portable path is taken by switching the library's ``fused`` off (the state the
other backends, and a machine without Numba, are in).
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.backend import kernels, windows
from dnn.layers import GRU, LSTM, Conv1D, Conv2D, Conv2DTranspose, MaxPool2D
from dnn.layers.base import Context
from dnn.parameter import backward_pass


@pytest.fixture(autouse=True)
def _numpy_with_kernels():
    dnn.set_backend("numpy")
    if backend.library.fused("max_pool2d", "float32") is None:
        pytest.skip("no fused kernels here: Numba is not installed (pip install -e '.[fast]') "
                    "or DNN_FUSED=0")


def _portable(monkeypatch, fn):
    """``fn()`` with every fused kernel off."""
    with monkeypatch.context() as m:
        m.setattr(backend.library, "fused", lambda name, dtype: None)
        return fn()


def _channels_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _forward_backward(layer, x, grad, needs_input_grad=True):
    ctx = Context()
    ctx.needs_input_grad = needs_input_grad
    y = layer.forward_with(ctx, x, training=True)
    with backward_pass():
        dx = layer.backward_with(ctx, grad)
    params = [None if p.grad is None else np.array(p.grad) for p in layer.parameters()]
    return np.array(y), (None if dx is None else np.array(dx)), getattr(ctx, "index", None), params


POOLS = [  # kernel, stride, padding, input (N, C, H, W)
    (2, None, 0, (3, 5, 8, 8)),       # side by side, tiling the image
    (2, None, 0, (2, 4, 9, 7)),       # side by side, a last row and column left over
    (3, 2, 1, (2, 3, 9, 9)),          # overlapping, padded
    (3, 1, 0, (2, 2, 6, 7)),          # stride 1: every pixel in up to nine windows
    ((2, 3), (1, 2), (1, 0), (2, 3, 7, 8)),
    (1, None, 0, (2, 3, 4, 4)),
    (2, 3, 0, (2, 3, 8, 8)),          # gaps between windows
]


@pytest.mark.parametrize("kernel, stride, padding, shape", POOLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["nchw", "channels-last"])
def test_max_pool_gives_the_bits_of_the_portable_path(monkeypatch, kernel, stride, padding,
                                                      shape, dtype, layout):
    rng = np.random.default_rng(0)
    # few distinct values: many ties, whose first maximum must win in both
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    x = _channels_last(x) if layout == "channels-last" else x
    pool = MaxPool2D(kernel, stride, padding)
    out_shape = pool.output_shape(shape)
    grad = rng.standard_normal(out_shape).astype(dtype)
    grad = grad if layout == "channels-last" else _channels_last(grad)  # the other layout
    fused = _forward_backward(pool, x, grad)
    portable = _portable(monkeypatch, lambda: _forward_backward(pool, x, grad))
    for a, b in zip(fused[:3], portable[:3]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_max_pool_nan_and_infinities_as_the_portable_path(monkeypatch):
    x = np.array([[[[1.0, np.nan, 3.0, -np.inf], [np.nan, 0.0, -np.inf, -np.inf],
                    [np.inf, 2.0, 5.0, 5.0], [1.0, np.inf, 4.0, 5.0]]]], dtype=np.float32)
    pool = MaxPool2D(2)
    grad = np.ones((1, 1, 2, 2), dtype=np.float32)
    fused = _forward_backward(pool, x, grad)
    portable = _portable(monkeypatch, lambda: _forward_backward(pool, x, grad))
    for a, b in zip(fused[:3], portable[:3]):
        np.testing.assert_array_equal(a, b)


WINDOWS = [  # kernel, stride, padding (t, b, l, r), dilation, input (N, C, H, W)
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (2, 3, 7, 6)),
    ((3, 3), (2, 2), (0, 0, 0, 0), (1, 1), (2, 4, 9, 8)),
    ((2, 4), (1, 3), (0, 1, 2, 1), (1, 1), (3, 2, 6, 9)),
    ((3, 2), (1, 1), (2, 2, 1, 1), (2, 3), (2, 5, 8, 9)),
    ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), (2, 7, 3, 4)),
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (2, 17, 5, 6)),  # the compiled im2col's range
    ((3, 3), (2, 1), (1, 0, 0, 1), (1, 2), (2, 1, 7, 8)),   # one channel: NumPy's col2im
]


@pytest.mark.parametrize("kernel, stride, padding, dilation, shape", WINDOWS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_im2col_and_col2im_give_the_bits_of_the_portable_path(monkeypatch, kernel, stride,
                                                              padding, dilation, shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    _, oh, ow = windows._padded_geometry(shape, kernel, stride, padding, dilation)
    args = (kernel, stride, windows.sides(padding), (oh, ow), dilation)
    compiled_im2col, compiled_col2im = kernels.get("im2col", dtype), kernels.get("col2im", dtype)
    fused_cols = compiled_im2col(x, *args, None)
    portable_cols = _portable(monkeypatch, lambda: windows.im2col(x, kernel, stride, padding,
                                                                  dilation=dilation))
    np.testing.assert_array_equal(fused_cols, portable_cols)
    # a reused buffer is overwritten in place, padding zeros included
    spare = np.full(fused_cols.shape, 7.0, dtype=dtype)
    assert compiled_im2col(x, *args, spare) is spare
    np.testing.assert_array_equal(spare, portable_cols)
    cols = rng.standard_normal(fused_cols.shape).astype(dtype)
    fused_dx = compiled_col2im(cols, shape, *args)
    portable_dx = _portable(monkeypatch, lambda: windows.col2im(cols, shape, kernel, stride,
                                                                padding, dilation=dilation))
    assert fused_dx.shape == portable_dx.shape == shape
    np.testing.assert_array_equal(fused_dx, portable_dx)
    # the layers' entry points pick the compiled kernels where they are the faster ones
    np.testing.assert_array_equal(windows.im2col(x, kernel, stride, padding, dilation=dilation),
                                  portable_cols)
    np.testing.assert_array_equal(windows.col2im(cols, shape, kernel, stride, padding,
                                                 dilation=dilation), portable_dx)


CONVS = [
    lambda: Conv2D(3, 8, 3, padding=1),
    lambda: Conv2D(20, 6, 3, stride=2, padding=1),  # >= 16 channels: one GEMM + col2im
    lambda: Conv2D(4, 6, (2, 3), dilation=2, padding="same"),
    lambda: Conv2D(4, 6, 3, groups=2, padding=1),          # grouped: the portable path still
    lambda: Conv2DTranspose(5, 3, 3, stride=2, padding=1, output_padding=1),
]


@pytest.mark.parametrize("make", CONVS)
def test_convolutions_agree_with_the_portable_path(monkeypatch, make):
    dnn.set_default_dtype("float64")
    dnn.manual_seed(3)
    layer = make()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, layer.in_channels, 9, 10))
    grad = rng.standard_normal(layer.output_shape(x.shape))
    fused = _forward_backward(layer, x, grad)
    portable = _portable(monkeypatch, lambda: _forward_backward(layer, x, grad))
    np.testing.assert_allclose(fused[0], portable[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused[1], portable[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(fused[3], portable[3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_conv1d_agrees_with_the_portable_path(monkeypatch):
    dnn.set_default_dtype("float64")
    layer = Conv1D(4, 5, 5, padding=2)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 17))
    grad = rng.standard_normal((2, 5, 17))
    fused = _forward_backward(layer, x, grad)
    portable = _portable(monkeypatch, lambda: _forward_backward(layer, x, grad))
    for a, b in zip(fused[:2] + tuple(fused[3]), portable[:2] + tuple(portable[3])):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layouts", ["same", "channels-last y", "strided y", "mixed"])
def test_relu_backward_agrees_with_the_portable_path(monkeypatch, dtype, layouts):
    from dnn.layers import ReLU

    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, size=(3, 4, 5, 6)).astype(dtype)  # zeros: y = 0 gets no gradient
    grad = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    if layouts in ("channels-last y", "mixed"):
        x = _channels_last(x)
    if layouts == "strided y":
        x = np.concatenate([x, x], axis=3)[..., ::2]
    if layouts == "mixed":
        grad = np.asfortranarray(grad)
    relu = ReLU()

    def run():
        ctx = Context()
        relu.forward_with(ctx, x)
        return relu.backward_with(ctx, grad)

    fused, portable = run(), _portable(monkeypatch, run)
    np.testing.assert_array_equal(fused, portable)
    assert fused.dtype == portable.dtype == np.dtype(dtype)
    if layouts == "channels-last y":  # laid out as y
        assert fused.strides == relu.forward_with(Context(), x).strides


def test_an_unknown_kernel_is_named():
    with pytest.raises(ValueError, match=r"no kernel 'max_pool3d'.*known"):
        kernels.get("max_pool3d", "float32")


def test_dnn_fused_0_turns_every_kernel_off(monkeypatch):
    monkeypatch.setenv("DNN_FUSED", "0")
    assert all(kernels.get(name, "float32") is None for name in kernels.KERNELS)


def test_kernels_serve_only_their_dtypes():
    assert kernels.get("max_pool2d", "float64") is not None
    assert kernels.get("lstm_cell", "float64") is None  # its tanh is a float32 one
    assert all(kernels.get(name, dtype) is None for name in kernels.KERNELS
               for dtype in ("float16", "int32", "uint8"))


@pytest.mark.parametrize("dtype", ["float16", "int32"])
def test_max_pool_and_convolution_of_other_dtypes_take_the_portable_path(dtype):
    x = np.arange(2 * 3 * 6 * 6).reshape(2, 3, 6, 6).astype(dtype)
    y = MaxPool2D(2).forward_with(Context(), x)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, x.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)))
    cols = windows.im2col(x, (3, 3), (1, 1), (1, 1))
    assert cols.dtype == np.dtype(dtype) and cols.shape == (2 * 36, 27)


def test_the_cells_tanh_is_within_rounding_of_the_exact_one():
    from dnn.backend import numba_lstm

    x = np.concatenate([np.linspace(-12, 12, 1_200_001, dtype=np.float32),
                        np.random.default_rng(5).standard_normal(200_000).astype(np.float32) * 3])
    error = np.abs(numba_lstm.tanh(x).astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert error.max() < 4.5e-7  # float32's spacing near 1 is 6e-8 (measured: 3.95e-7)
    special = numba_lstm.tanh(np.array([np.nan, np.inf, -np.inf, 0.0, 1e-6, 30.0], np.float32))
    assert np.isnan(special[0])
    np.testing.assert_array_equal(special[1:], np.array([1, -1, 0, 1e-6, 1], np.float32))


def _assert_recurrent_paths_agree(monkeypatch, layer, x, state, grad):
    """Output, input gradient, parameter gradients and the initial state's gradient of
    ``layer`` agree, fused and portable, to float32 rounding (the cells' tanh)."""
    def run():
        ctx = Context()
        y = layer.forward_with(ctx, x, training=True, initial_state=state)
        with backward_pass():
            dx = layer.backward_with(ctx, grad)
        states = ctx.grad_initial_state
        return [np.array(y), np.array(dx), *[np.array(p.grad) for p in layer.parameters()],
                *[np.array(s) for s in (states if isinstance(states, tuple) else (states,))]]

    fused, portable = run(), _portable(monkeypatch, run)
    for a, b in zip(fused, portable, strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_the_fused_lstm_cell_agrees_with_the_portable_one(monkeypatch, return_sequences,
                                                           with_state):
    dnn.manual_seed(6)
    layer = LSTM(5, 7, return_sequences=return_sequences)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 9, 5)).astype(np.float32)
    state = tuple(rng.standard_normal((4, 7)).astype(np.float32) for _ in range(2)) \
        if with_state else None
    grad = rng.standard_normal((4, 9, 7) if return_sequences else (4, 7)).astype(np.float32)
    _assert_recurrent_paths_agree(monkeypatch, layer, x, state, grad)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_the_fused_gru_cell_agrees_with_the_portable_one(monkeypatch, return_sequences):
    dnn.manual_seed(8)
    layer = GRU(6, 5, return_sequences=return_sequences)
    for p in (layer.bias_ih, layer.bias_hh):  # non-zero biases: b_hn sits inside r ⊙ (…)
        p.data[...] = np.random.default_rng(9).standard_normal(p.data.shape)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 8, 6)).astype(np.float32)
    state = rng.standard_normal((3, 5)).astype(np.float32)
    grad = rng.standard_normal((3, 8, 5) if return_sequences else (3, 5)).astype(np.float32)
    _assert_recurrent_paths_agree(monkeypatch, layer, x, state, grad)


def test_float64_lstms_keep_the_portable_cell(monkeypatch):
    from dnn.backend import numba_lstm

    calls = []
    monkeypatch.setattr(numba_lstm, "_cell", lambda *args: calls.append(args[0].dtype))
    for dtype in ("float64", "float32"):
        dnn.set_default_dtype(dtype)
        LSTM(3, 4).forward_with(Context(), np.ones((2, 3, 3), dtype=dtype), training=True)
    assert calls == [np.float32] * 3  # the float32 sequence's three steps, nothing in float64


# ---------------------------------------------------------------- found by an outside trial
def test_a_pool_gradient_of_the_wrong_shape_is_refused_on_both_paths(monkeypatch):
    from dnn.errors import ShapeError

    x = np.random.default_rng(12).standard_normal((4, 3, 6, 6)).astype(np.float32)
    for run in (lambda f: f(), lambda f: _portable(monkeypatch, f)):
        for pool in (MaxPool2D(2), dnn.layers.AvgPool2D(2)):
            def wrong(pool=pool):
                ctx = Context()
                pool.forward_with(ctx, x)
                return pool.backward_with(ctx, np.ones((1, 3, 3, 3), np.float32))
            with pytest.raises(ShapeError, match=r"Pool2D.*backward.*\(4, 3, 3, 3\).*\(1, 3, 3, 3\)"):
                run(wrong)


def test_the_kernels_refuse_arrays_they_would_read_past():
    from dnn.backend import numba_activations, numba_pool, numba_windows

    x = np.zeros((2, 3, 4, 4), np.float32)
    _, index = numba_pool.max_pool2d(x, (2, 2), (2, 2), (0, 0), (2, 2))
    with pytest.raises(ValueError, match="max_pool2d_grad"):
        numba_pool.max_pool2d_grad(np.zeros((1, 3, 2, 2), np.float32), index, x.shape, (2, 2),
                                   (2, 2), (0, 0))
    with pytest.raises(ValueError, match="col2im: expected"):
        numba_windows.col2im(np.zeros((5, 27), np.float32), (2, 3, 4, 4), (3, 3), (1, 1),
                             (1, 1, 1, 1), (4, 4), (1, 1))
    with pytest.raises(ValueError, match="relu_grad"):
        numba_activations.relu_grad(np.zeros((2, 3)), np.zeros((1, 3)))


def test_a_pool_gradient_in_another_dtype_takes_the_portable_backward(monkeypatch):
    x = np.random.default_rng(13).standard_normal((2, 3, 4, 4)).astype(np.float32)
    grad = np.random.default_rng(14).standard_normal((2, 3, 2, 2)).astype(np.float16)
    pool = MaxPool2D(2)

    def run():
        ctx = Context()
        pool.forward_with(ctx, x)
        return pool.backward_with(ctx, grad)

    fused, portable = run(), _portable(monkeypatch, run)
    assert fused.dtype == portable.dtype == np.float16
    np.testing.assert_array_equal(fused, portable)


def test_a_float64_convolution_of_float32_data_keeps_float64_gradients(monkeypatch):
    dnn.set_default_dtype("float64")
    layer = Conv2D(20, 4, 3, padding=1)  # >= 16 channels: the one-GEMM input gradient
    x = np.random.default_rng(15).standard_normal((2, 20, 5, 5)).astype(np.float32)
    grad = np.random.default_rng(16).standard_normal((2, 4, 5, 5))
    fused = _forward_backward(layer, x, grad)
    portable = _portable(monkeypatch, lambda: _forward_backward(layer, x, grad))
    assert fused[1].dtype == portable[1].dtype == np.float64
    np.testing.assert_allclose(fused[1], portable[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lr", [3, np.int64(3), np.array(0.5), np.float32(0.25)])
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_a_learning_rate_set_by_hand_updates_alike_on_both_paths(monkeypatch, name, lr):
    from dnn.parameter import Parameter

    def train():
        rng = np.random.default_rng(17)
        param = Parameter(rng.standard_normal(1000).astype(np.float32), "w")
        opt = getattr(dnn.optim, name)(**({"momentum": 0.9} if name == "SGD" else {}))
        opt.lr = lr
        for step in range(3):
            param.grad = np.random.default_rng(step).standard_normal(1000).astype(np.float32)
            opt.step([param])
        return np.array(param.data)

    np.testing.assert_array_equal(train(), _portable(monkeypatch, train))


def test_parallel_kernels_called_from_several_threads_at_once(monkeypatch):
    import threading

    from dnn.backend import threads

    monkeypatch.setattr(threads, "_threads", 2)  # dnn.set_num_threads(2), restored after
    x = np.random.default_rng(18).standard_normal((8, 16, 12, 12)).astype(np.float32)
    pool = MaxPool2D(2)
    expected = _forward_backward(pool, x, np.ones((8, 16, 6, 6), np.float32))[1]
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(_forward_backward(pool, x, np.ones((8, 16, 6, 6), np.float32))[1])
        except Exception as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and len(results) == 80
    assert all(np.array_equal(r, expected) for r in results)


def test_importing_dnn_leaves_the_allocator_alone_until_a_training_step(tmp_path):
    import subprocess
    import sys

    script = (
        "import numpy as np, dnn\n"
        "from dnn.backend import host_memory\n"
        "assert not host_memory._kept, 'import changed malloc'\n"
        "m = dnn.Sequential([dnn.layers.Dense(3, 2)])\n"
        "m.compile(loss='mse', optimizer='sgd')\n"
        "m.train_step(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32))\n"
        "print(host_memory._kept == (host_memory._glibc() is not None))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "DNN_BACKEND": "numpy"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
