"""Every override of a library object agrees with the portable ArrayLibrary.

``dnn.backend.library`` is the active library's object (NumpyLibrary, TorchLibrary,
CupyLibrary; array-api-strict runs the base class itself). Each method a subclass
overrides is run here next to the base class's implementation on the same arrays of
the same backend: the results must match (exactly where the operation is exact).
Also: nothing outside dnn/backend asks which library is active.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dnn import backend
from dnn.backend.library import INTO, ArrayLibrary

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pair(float64):
    """(the active library object, the portable base on the same namespace)."""
    return backend.library, ArrayLibrary(backend.module, backend.xp)


def _a(x):
    return backend.asarray(np.asarray(x, dtype=np.float64))


def _h(x):
    return backend.to_numpy(x)


def _same(got, want, rtol=0.0):
    """Equal up to ``rtol`` of the array's largest magnitude (sums in another order)."""
    want = _h(want)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(_h(got), want, rtol=0.0, atol=rtol * scale)


def test_overrides_are_real(pair):
    """The test below is about something: a fast library overrides the window methods."""
    lib, _ = pair
    if type(lib) is not ArrayLibrary:
        assert type(lib).masked is not ArrayLibrary.masked


def test_arithmetic_and_elementwise(pair):
    lib, base = pair
    rng = np.random.default_rng(0)
    a, b = _a(rng.standard_normal((5, 4))), _a(rng.standard_normal((4, 3)))
    out1, out2 = _a(np.zeros((5, 3))), _a(np.zeros((5, 3)))
    _same(lib.matmul_into(a, b, out=out1), base.matmul_into(a, b, out=out2), rtol=1e-14)
    pos = _a(rng.random((6,)) + 0.5)
    for name in sorted(INTO):
        args = (pos,) if name in ("sqrt", "abs") else (pos, 1.7)
        r1, r2 = _a(np.zeros(6)), _a(np.zeros(6))
        _same(lib.elementwise_into(name, *args, out=r1), base.elementwise_into(name, *args, out=r2))
    x = _a([-3.0, -1e-9, -0.0, 0.0, 1e-9, 0.25, 0.5, 2.0])
    _same(lib.clip(x, -1e-7, 0.5), base.clip(x, -1e-7, 0.5))
    _same(lib.sign(x), base.sign(x))
    grid = _a(np.linspace(-7, 7, 2001))
    _same(lib.erf(grid), base.erf(grid), rtol=2e-15)
    with pytest.raises(ValueError, match="elementwise_into: unsupported function 'exp'"):
        lib.elementwise_into("exp", pos, out=r1)


def test_gathers_and_scatters(pair):
    lib, base = pair
    rng = np.random.default_rng(1)
    x = _a(rng.standard_normal((6, 5)))
    labels = backend.asarray(np.array([0, 4, 2, 2, 1, 3]), dtype=backend.xp.int64)
    _same(lib.take_along_last(x, labels), base.take_along_last(x, labels))
    values = _a(rng.standard_normal((6, 3)))
    _same(lib.scatter_add_rows(5, labels, values), base.scatter_add_rows(5, labels, values),
          rtol=1e-14)


@pytest.mark.parametrize("kernel, stride, dilation", [((3, 3), (1, 1), (1, 1)),
                                                      ((2, 3), (2, 1), (1, 2))])
def test_window_methods(pair, kernel, stride, dilation):
    lib, base = pair
    rng = np.random.default_rng(2)
    x = _a(rng.standard_normal((2, 3, 7, 8)))
    filled = lib.channels_last((2, 3, 4, 5), x.dtype, x, -1.5)
    _same(filled, base.channels_last((2, 3, 4, 5), x.dtype, x, -1.5))
    _same(lib.channels_last_copy(x), x)
    oh = (7 - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (8 - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    view = lib.window_view(x, (2, 3, oh, ow), kernel, stride, dilation)
    if view is not None:
        from dnn.backend import windows

        stacked = backend.xp.stack(windows.window_slices(x, kernel, stride, dilation), axis=4)
        _same(view, backend.xp.reshape(stacked, (2, 3, oh, ow, *kernel)))
    mask = x > 0
    _same(lib.masked(mask, x), base.masked(mask, x))


@pytest.mark.parametrize("m, stride, padding", [(1, (1, 1), (1, 1)), (2, (1, 1), (0, 2, 1, 0)),
                                                (1, (2, 2), (1, 1))])
def test_depthwise_methods(pair, m, stride, padding):
    lib, base = pair
    rng = np.random.default_rng(3)
    c, kernel, dilation = 3, (3, 2), (1, 2)
    x = _a(rng.standard_normal((2, c, 7, 8)))
    from dnn.backend import windows

    xpad = windows.pad2d(x, padding)
    weight = _a(rng.standard_normal((c, m, *kernel)))
    y = lib.depthwise(xpad, weight, stride, dilation)
    _same(y, base.depthwise(xpad, weight, stride, dilation), rtol=1e-13)
    g = _a(rng.standard_normal(tuple(y.shape)))
    _same(lib.depthwise_weight_grad(xpad, g, kernel, stride, dilation),
          base.depthwise_weight_grad(xpad, g, kernel, stride, dilation), rtol=1e-13)
    _same(lib.depthwise_input_grad(g, weight, tuple(x.shape), stride, padding, dilation),
          base.depthwise_input_grad(g, weight, tuple(x.shape), stride, padding, dilation),
          rtol=1e-13)


def test_transfer(pair):
    lib, _ = pair
    host = np.arange(6.0).reshape(2, 3)
    arr = lib.asarray(host)
    assert lib.is_array(arr) and not lib.is_array(host.tolist())
    np.testing.assert_array_equal(lib.to_numpy(arr), host)
    assert lib.in_host_memory(arr) == (lib.device_name() == "cpu")
    assert float(lib.asarray(np.array(2.5))) == 2.5  # a 0-d array


#: how code would ask which array library is active
_SWITCH = re.compile(r"""backend\.name\s*(==|!=|in\b)|\bname\s*==\s*["'](numpy|cupy|torch)""")


def test_no_library_switches_outside_the_backend():
    """The library objects are the one place that knows which library runs."""
    found = []
    for path in sorted((ROOT / "dnn").rglob("*.py")):
        if path.parent.name == "backend":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _SWITCH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "ask backend.library instead:\n" + "\n".join(found)
