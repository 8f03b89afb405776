"""Backend selection, default dtype, seeded RNG, device transfer and the ops the standard lacks."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.backend import ops, random
from dnn.layers import Dropout

# ------------------------------------------------------------------ selection


def test_unknown_backend_is_a_value_error_naming_it_and_the_valid_names():
    with pytest.raises(ValueError) as info:
        dnn.set_backend("tensorflow")
    message = str(info.value)
    assert "tensorflow" in message
    for valid in ("numpy", "cupy", "torch", "array_api_strict"):
        assert valid in message
    assert not isinstance(info.value, ImportError)


def test_unknown_backend_leaves_the_active_backend_unchanged():
    before = backend.name
    with pytest.raises(ValueError):
        dnn.set_backend("nonsense")
    assert backend.name == before


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="cupy is installed here")
def test_known_but_missing_backend_cupy_is_a_backend_error_with_the_pip_install():
    before = backend.name
    with pytest.raises(dnn.BackendError) as info:
        dnn.set_backend("cupy")
    message = str(info.value)
    assert "cupy" in message
    # the hint installs CuPy itself or the extra of a checkout, never the unrelated PyPI "dnn"
    assert "pip install cupy-cuda12x" in message and 'pip install -e ".[cupy]"' in message
    assert not isinstance(info.value, ImportError)
    assert backend.name == before


def test_known_but_missing_backend_never_leaks_import_error(monkeypatch):
    monkeypatch.setitem(backend.BACKENDS, "fakebackend",
                        ("no_such_module_for_dnn_tests", "pip install dnn[fake]"))
    with pytest.raises(dnn.BackendError) as info:
        dnn.set_backend("fakebackend")
    assert not isinstance(info.value, ImportError)
    assert "fakebackend" in str(info.value)
    assert "pip install dnn[fake]" in str(info.value)


def test_backend_names_are_normalised(backend_name):
    dnn.set_backend(f"  {backend_name.upper().replace('_', '-')} ")
    assert backend.name == backend_name


def test_set_backend_switches_the_namespace(backend_name):
    assert backend.name == backend_name
    x = backend.xp.ones((2, 3))
    assert backend.is_array(x)
    assert tuple(x.shape) == (2, 3)
    assert isinstance(backend.device_name(), str)
    assert isinstance(backend.memory_stats(), dict)
    backend.synchronize()  # a no-op on the CPU, must not fail


# ------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("spec", ["float32", "float64"])
def test_set_default_dtype_by_name(backend_name, spec):
    dnn.set_default_dtype(spec)
    expected = getattr(backend.xp, spec)
    assert backend.default_dtype() == expected
    assert dnn.init.he_normal((3, 4)).dtype == expected
    assert dnn.layers.Dense(3, 2).weight.data.dtype == expected
    assert backend.asarray(np.ones((2, 2), dtype=np.float64)).dtype == expected
    assert random.uniform((5,)).dtype == expected


@pytest.mark.parametrize("spec", ["float32", "float64"])
def test_set_default_dtype_accepts_dtype_objects(backend_name, spec):
    objects = [np.dtype(spec), getattr(np, spec), getattr(backend.xp, spec)]
    if importlib.util.find_spec("torch") is not None:
        import torch

        objects.append(getattr(torch, spec))
    other = "float64" if spec == "float32" else "float32"
    for obj in objects:
        dnn.set_default_dtype(other)
        dnn.set_default_dtype(obj)
        assert backend.default_dtype() == getattr(backend.xp, spec), obj


@pytest.mark.parametrize("bad", ["int32", "float16", "double precision", None, 3, np.int64])
def test_bad_default_dtype_is_a_clear_error(backend_name, bad):
    dnn.set_default_dtype("float64")
    with pytest.raises(ValueError) as info:
        dnn.set_default_dtype(bad)
    message = str(info.value)
    assert "float32" in message and "float64" in message
    assert repr(bad) in message
    assert backend.default_dtype() == backend.xp.float64  # unchanged


# ------------------------------------------------------------------ seeded RNG


def _draws():
    weight = dnn.to_numpy(dnn.init.he_normal((8, 5))).copy()
    x = backend.xp.ones((6, 7), dtype=backend.default_dtype())
    dropped = dnn.to_numpy(Dropout(0.5).forward(x, training=True)).copy()
    perm = dnn.to_numpy(random.permutation(20)).copy()
    uni = dnn.to_numpy(random.uniform((4,))).copy()
    return weight, dropped, perm, uni


def test_manual_seed_makes_init_dropout_and_permutation_reproducible(backend_name):
    dnn.manual_seed(1234)
    first = _draws()
    dnn.manual_seed(1234)
    second = _draws()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    dnn.manual_seed(4321)
    third = _draws()
    for a, b in zip(first, third):
        assert not np.array_equal(a, b)


def test_consecutive_draws_differ(backend_name):
    dnn.manual_seed(0)
    a, b = dnn.to_numpy(random.normal((50,))).copy(), dnn.to_numpy(random.normal((50,))).copy()
    assert not np.array_equal(a, b)


def test_permutation_is_a_permutation(backend_name):
    perm = dnn.to_numpy(random.permutation(50))
    assert sorted(perm.tolist()) == list(range(50))
    assert perm.tolist() != list(range(50))


def test_rng_state_round_trip(backend_name):
    dnn.manual_seed(7)
    random.normal((3,))
    state = random.get_state()
    a = dnn.to_numpy(random.normal((10,))).copy()
    random.normal((10,))
    random.set_state(state)
    b = dnn.to_numpy(random.normal((10,))).copy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_random_distributions(backend_name, dtype_name):
    dtype = getattr(backend.xp, dtype_name)
    u = random.uniform((20000,), -2.0, 3.0, dtype=dtype)
    n = random.normal((20000,), 1.5, 0.5, dtype=dtype)
    m = random.bernoulli((20000,), 0.3, dtype=dtype)
    assert u.dtype == dtype and n.dtype == dtype and m.dtype == dtype
    u, n, m = dnn.to_numpy(u), dnn.to_numpy(n), dnn.to_numpy(m)
    assert u.min() >= -2.0 and u.max() <= 3.0
    assert abs(u.mean() - 0.5) < 0.05
    assert abs(n.mean() - 1.5) < 0.02 and abs(n.std() - 0.5) < 0.02
    assert set(np.unique(m).tolist()) == {0.0, 1.0}
    assert abs(m.mean() - 0.3) < 0.02


# ------------------------------------------------------------------ transfer


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.bool_])
def test_to_device_to_numpy_round_trip(float64, dtype):
    host = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    dev = dnn.to_device(host)
    assert backend.is_array(dev)
    back = dnn.to_numpy(dev)
    assert isinstance(back, np.ndarray)
    assert back.shape == host.shape
    np.testing.assert_array_equal(back, host)
    if np.dtype(dtype).kind == "f":
        assert back.dtype == np.float64  # floats take the default dtype
    else:
        assert back.dtype == host.dtype  # integers and booleans keep theirs


def test_to_device_converts_floats_to_the_default_dtype(backend_name):
    dev = dnn.to_device(np.array([0.1, 0.2], dtype=np.float64))
    assert dev.dtype == backend.xp.float32
    np.testing.assert_allclose(dnn.to_numpy(dev), [0.1, 0.2], rtol=1e-6)
    dev64 = dnn.to_device(np.array([0.1, 0.2], dtype=np.float32), dtype=backend.xp.float64)
    assert dev64.dtype == backend.xp.float64


def test_to_device_handles_non_contiguous_and_scalar_arrays(float64):
    host = np.arange(12.0).reshape(3, 4).T
    np.testing.assert_array_equal(dnn.to_numpy(dnn.to_device(host)), host)
    scalar = dnn.to_device(np.float64(2.5) * np.ones(()))
    assert tuple(scalar.shape) == ()
    assert float(scalar) == 2.5


def test_to_numpy_of_a_numpy_array_is_itself():
    host = np.ones(3)
    assert dnn.to_numpy(host) is host


# ------------------------------------------------------------------ ops


def test_one_hot(backend_name):
    labels = dnn.to_device(np.array([0, 2, 1, 2], dtype=np.int64))
    out = ops.one_hot(labels, 3)
    assert out.dtype == backend.default_dtype()
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(dnn.to_numpy(out), expected)
    out64 = ops.one_hot(labels, 5, backend.xp.float64)
    assert out64.dtype == backend.xp.float64
    assert dnn.to_numpy(out64).shape == (4, 5)
    np.testing.assert_array_equal(dnn.to_numpy(out64)[:, :3], expected)
    assert not dnn.to_numpy(out64)[:, 3:].any()


def test_one_hot_int32_labels(backend_name):
    labels = dnn.to_device(np.array([1, 0], dtype=np.int32))
    np.testing.assert_array_equal(dnn.to_numpy(ops.one_hot(labels, 2)), [[0, 1], [1, 0]])


def test_take_along_last(float64):
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((6, 5))
    labels_host = np.array([4, 0, 3, 3, 1, 2], dtype=np.int64)
    out = backend.library.take_along_last(dnn.to_device(x_host), dnn.to_device(labels_host))
    assert tuple(out.shape) == (6,)
    np.testing.assert_allclose(dnn.to_numpy(out), x_host[np.arange(6), labels_host], rtol=1e-15)


def test_matmul_into_writes_into_a_view(float64):
    xp = backend.xp
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    flat = xp.zeros((10,), dtype=xp.float64)
    out = xp.reshape(flat[2:8], (3, 2))
    backend.library.matmul_into(dnn.to_device(a), dnn.to_device(b), out=out)
    got = dnn.to_numpy(flat)
    np.testing.assert_allclose(got[2:8].reshape(3, 2), a @ b, rtol=1e-12)
    assert got[0] == got[1] == got[8] == got[9] == 0.0


def test_is_array_recognises_only_the_active_backend(backend_name):
    assert backend.is_array(backend.xp.zeros((2,)))
    assert not backend.is_array(3.0)
    assert not backend.is_array([1.0, 2.0])
    assert backend.is_array(np.zeros(2)) == (backend_name == "numpy")


@pytest.mark.parametrize("spec", ["float32", "float64"])
def test_python_floats_take_the_default_dtype(backend_name, spec):
    dnn.set_default_dtype(spec)
    want = getattr(backend.xp, spec)
    assert dnn.to_device([0.1, 0.2]).dtype == want
    assert dnn.to_device([[1.0], [2.0]]).dtype == want
    assert dnn.to_device(0.5).dtype == want
    assert dnn.to_device([1, 2]).dtype == backend.xp.int64
    assert dnn.to_device([True, False]).dtype == backend.xp.bool
    np.testing.assert_allclose(dnn.to_numpy(dnn.to_device([0.25, 0.5])), [0.25, 0.5])


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_clip_and_sign_match_the_portable_functions(backend_name, dtype_name):
    """The libraries' own clip and sign must equal the standard's."""

    xp = backend.xp
    values = np.array([-3.0, -1e-9, -0.0, 0.0, 1e-9, 0.25, 0.5, 2.0, 7.5])
    x = backend.asarray(values, dtype=getattr(xp, dtype_name))
    clipped = backend.library.clip(x, -1e-7, 0.5)
    assert clipped.dtype == x.dtype
    np.testing.assert_array_equal(backend.to_numpy(clipped),
                                  backend.to_numpy(xp.clip(x, -1e-7, 0.5)))
    signs = backend.library.sign(x)
    assert signs.dtype == x.dtype
    np.testing.assert_array_equal(backend.to_numpy(signs), backend.to_numpy(xp.sign(x)))
