"""Parameters and their flat buffers; weight initializers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dnn
from dnn import backend, init
from dnn.parameter import Parameter, flat_groups

SHAPES = [(3, 4), (4,), (2, 1, 3)]


def make_params(seed=0, shapes=SHAPES, dtype=None):
    rng = np.random.default_rng(seed)
    return [Parameter(dnn.to_device(rng.standard_normal(s), dtype=dtype), f"p{i}")
            for i, s in enumerate(shapes)]


def host(params):
    return [dnn.to_numpy(p.data).copy() for p in params]


# ------------------------------------------------------------------ Parameter


def test_parameter_basics(backend_name):
    p = Parameter(backend.xp.zeros((3, 2)), "weight")
    assert p.shape == (3, 2) and p.size == 6 and p.name == "weight"
    assert p.grad is None and p.group is None
    assert "weight" in repr(p) and "(3, 2)" in repr(p)
    g = backend.xp.ones((3, 2))
    p.grad = g
    assert p.grad is g  # not packed: plain assignment


# ------------------------------------------------------------------ flat buffers


def test_flat_groups_makes_data_and_grad_views(float64):
    params = make_params()
    before = host(params)
    grads = [np.full(s, float(i + 1)) for i, s in enumerate(SHAPES)]
    for p, g in zip(params, grads):
        p.grad = dnn.to_device(g)
    groups = flat_groups(params)
    assert len(groups) == 1
    group = groups[0]
    assert tuple(group.data.shape) == (12 + 4 + 6,)
    assert all(p.group is group for p in params)
    # values and gradients survive the packing, in order
    for p, b, g in zip(params, before, grads):
        np.testing.assert_array_equal(dnn.to_numpy(p.data), b)
        np.testing.assert_array_equal(dnn.to_numpy(p.grad), g)
        assert p.shape == b.shape
    np.testing.assert_array_equal(dnn.to_numpy(group.data), np.concatenate([b.ravel() for b in before]))
    # writing the flat buffer changes p.data and p.grad ...
    group.data[...] = backend.xp.arange(22, dtype=backend.xp.float64)
    group.grad[...] = -backend.xp.arange(22, dtype=backend.xp.float64)
    np.testing.assert_array_equal(dnn.to_numpy(params[1].data), [12, 13, 14, 15])
    np.testing.assert_array_equal(dnn.to_numpy(params[2].grad), -np.arange(16, 22).reshape(2, 1, 3))
    # ... and writing p.data in place changes the flat buffer
    params[0].data[...] = 7.0
    assert (dnn.to_numpy(group.data)[:12] == 7.0).all()
    assert dnn.to_numpy(group.data)[12] == 12.0


def test_grad_assignment_copies_into_the_view(float64):
    params = make_params()
    group = flat_groups(params)[0]
    view = params[1].grad
    params[1].grad = dnn.to_device(np.array([1.0, 2.0, 3.0, 4.0]))
    assert params[1].grad is view  # still the same view
    np.testing.assert_array_equal(dnn.to_numpy(group.grad)[12:16], [1, 2, 3, 4])
    params[1].grad += dnn.to_device(np.ones(4))  # in-place update through the property
    np.testing.assert_array_equal(dnn.to_numpy(group.grad)[12:16], [2, 3, 4, 5])
    assert not dnn.to_numpy(group.grad)[:12].any()  # neighbours untouched
    with pytest.raises(Exception):  # noqa: B017 -- a wrong shape must not pass silently
        params[1].grad = dnn.to_device(np.ones(5))


def test_grad_none_keeps_the_view(float64):
    """``p.grad = None`` (zero_grad-style) on a packed parameter zeroes its view."""
    params = make_params()
    group = flat_groups(params)[0]
    params[0].grad = dnn.to_device(np.ones((3, 4)))
    params[0].grad = None
    assert not dnn.to_numpy(group.grad).any()
    params[0].grad = dnn.to_device(np.full((3, 4), 2.0))
    np.testing.assert_array_equal(dnn.to_numpy(group.grad)[:12], 2.0)
    assert flat_groups(params)[0] is group


def test_flat_groups_is_idempotent(backend_name):
    params = make_params()
    groups = flat_groups(params)
    assert flat_groups(params) == groups
    assert flat_groups(list(reversed(params)))[0] is groups[0]


def test_regrouping_with_a_different_param_list(float64):
    a, b, c = make_params()
    values = host([a, b, c])
    (first,) = flat_groups([a, b])
    (second,) = flat_groups([b, c])  # b moves to a new group together with c
    assert second is not first
    assert b.group is second and c.group is second and a.group is first
    for p, v in zip((a, b, c), values):
        np.testing.assert_array_equal(dnn.to_numpy(p.data), v)
    second.data[...] = 5.0
    np.testing.assert_array_equal(dnn.to_numpy(b.data), np.full(4, 5.0))
    np.testing.assert_array_equal(dnn.to_numpy(a.data), values[0])  # a is not in the new buffer
    first.data[...] = -1.0
    np.testing.assert_array_equal(dnn.to_numpy(a.data), np.full((3, 4), -1.0))
    np.testing.assert_array_equal(dnn.to_numpy(b.data), np.full(4, 5.0))  # b left the old one
    (alone,) = flat_groups([a])  # a subset of a group is packed anew
    assert alone.params == [a] and tuple(alone.data.shape) == (12,)
    groups = flat_groups([a, b, c])  # exactly covered by [a] and [b, c]: nothing repacked
    assert groups == [alone, second]
    d = dnn.Parameter(backend.xp.zeros((2,), dtype=backend.xp.float64), "d")
    (everything,) = flat_groups([a, b, c, d])
    assert everything.params[:3] == [a, b, c]
    np.testing.assert_array_equal(dnn.to_numpy(everything.data)[12:16], 5.0)
    np.testing.assert_array_equal(dnn.to_numpy(a.data), np.full((3, 4), -1.0))


def test_a_shared_parameter_is_packed_once(float64):
    a, b, _ = make_params()
    (group,) = flat_groups([a, b, a])
    assert group.params == [a, b]
    assert tuple(group.data.shape) == (16,)
    c = dnn.Parameter(backend.xp.zeros((2,), dtype=backend.xp.float64), "c")
    (first,) = flat_groups([a, c])
    # [a, a] is not exactly covered by the group [a, c]: c must not be updated with a
    (again,) = flat_groups([a, a])
    assert again.params == [a] and again is not first


def test_mixed_dtypes_give_separate_groups(backend_name):
    xp = backend.xp
    p32 = make_params(dtype=xp.float32)
    p64 = make_params(seed=1, dtype=xp.float64)
    params = [p32[0], p64[0], p32[1], p64[1], p64[2]]
    groups = flat_groups(params)
    assert len(groups) == 2
    assert [g.data.dtype for g in groups] == [xp.float32, xp.float64]
    assert groups[0].params == [p32[0], p32[1]]
    assert groups[1].params == [p64[0], p64[1], p64[2]]
    for p in params:
        assert p.data.dtype == p.group.data.dtype == p.grad.dtype


def test_group_view_of_state_arrays(backend_name):
    params = make_params()
    group = flat_groups(params)[0]
    state = backend.xp.zeros_like(group.data)
    view = group.view(state, 2)
    assert tuple(view.shape) == (2, 1, 3)
    view[...] = 1.0
    assert dnn.to_numpy(state)[16:].all() and not dnn.to_numpy(state)[:16].any()


def test_layer_load_state_dict_keeps_the_views(float64):
    layer = dnn.layers.Dense(3, 2)
    group = flat_groups(layer.parameters())[0]
    w = np.arange(6.0).reshape(3, 2)
    layer.load_state_dict({"weight": w, "bias": np.array([7.0, 8.0])})
    assert layer.weight.group is group
    np.testing.assert_array_equal(dnn.to_numpy(group.data), [0, 1, 2, 3, 4, 5, 7, 8])
    state = layer.state_dict()
    np.testing.assert_array_equal(dnn.to_numpy(state["weight"]), w)


def test_optimizer_step_updates_packed_parameters_through_views(float64):
    params = make_params()
    before = host(params)
    for p in params:
        p.grad = dnn.to_device(np.ones(p.shape))
    dnn.optim.SGD(lr=0.5).step(params)
    for p, b in zip(params, before):
        np.testing.assert_allclose(dnn.to_numpy(p.data), b - 0.5, rtol=1e-15)
        assert p.group is not None


# ------------------------------------------------------------------ initializers

ALL_INITS = sorted(init.INITIALIZERS)


@pytest.mark.parametrize("name", ALL_INITS)
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 2), (6,)])
def test_initializer_shapes_and_dtypes(backend_name, name, shape):
    fn = init.get(name)
    out = fn(shape)
    assert tuple(out.shape) == shape and out.dtype == backend.xp.float32
    out64 = fn(shape, dtype=backend.xp.float64)
    assert out64.dtype == backend.xp.float64
    assert np.isfinite(dnn.to_numpy(out64)).all()
    dnn.set_default_dtype("float64")
    assert fn(shape).dtype == backend.xp.float64


def test_constant_initializers(backend_name):
    assert not dnn.to_numpy(init.zeros((3, 2))).any()
    assert (dnn.to_numpy(init.ones((3, 2))) == 1).all()


def test_fans():
    assert init.fans((784, 256)) == (784, 256)
    assert init.fans((16, 3, 5, 5)) == (75, 400)
    assert init.fans((10,)) == (10, 10)


BIG = (1000, 600)
FAN_IN, FAN_OUT = BIG


@pytest.mark.parametrize(
    ("name", "std", "bound"),
    [
        ("he_normal", math.sqrt(2 / FAN_IN), None),
        ("kaiming_normal", math.sqrt(2 / FAN_IN), None),
        ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
        ("glorot_normal", math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
        ("lecun_normal", math.sqrt(1 / FAN_IN), None),
        ("normal", 0.01, None),
        ("he_uniform", math.sqrt(6 / FAN_IN) / math.sqrt(3), math.sqrt(6 / FAN_IN)),
        ("xavier_uniform", math.sqrt(6 / (FAN_IN + FAN_OUT)) / math.sqrt(3),
         math.sqrt(6 / (FAN_IN + FAN_OUT))),
        ("lecun_uniform", 1 / math.sqrt(FAN_IN), math.sqrt(3 / FAN_IN)),
        ("uniform", 0.05 / math.sqrt(3), 0.05),
    ],
)
def test_initializer_statistics(backend_name, name, std, bound):
    w = dnn.to_numpy(init.get(name)(BIG, dtype=backend.xp.float64))
    assert abs(w.mean()) < 0.01 * std * 10
    assert w.std() == pytest.approx(std, rel=0.01)
    if bound is not None:
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound


def test_conv_kernel_fans_in_statistics(backend_name):
    w = dnn.to_numpy(init.he_normal((64, 32, 3, 3), dtype=backend.xp.float64))
    assert w.std() == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.02)


@pytest.mark.parametrize("shape", [(50, 50), (80, 30), (30, 80), (8, 4, 3, 3)])
def test_orthogonal(backend_name, shape):
    w = dnn.to_numpy(init.orthogonal(shape, dtype=backend.xp.float64))
    assert w.shape == shape
    m = w.reshape(shape[0], -1)
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-10)
    g2 = dnn.to_numpy(init.orthogonal((20, 20), dtype=backend.xp.float64, gain=2.0))
    np.testing.assert_allclose(g2.T @ g2, 4 * np.eye(20), atol=1e-10)


def test_initializers_are_reproducible(backend_name):
    for name in ("he_normal", "orthogonal", "xavier_uniform"):
        dnn.manual_seed(5)
        a = dnn.to_numpy(init.get(name)((6, 4))).copy()
        dnn.manual_seed(5)
        b = dnn.to_numpy(init.get(name)((6, 4))).copy()
        np.testing.assert_array_equal(a, b)


def test_unknown_initializer_lists_names():
    with pytest.raises(ValueError) as info:
        init.get("he_normall")
    message = str(info.value)
    assert "he_normall" in message
    for name in ("he_normal", "glorot_uniform", "orthogonal", "zeros", "lecun"):
        assert name in message


def test_initializer_by_callable():
    def custom(shape, dtype=None):
        return init.ones(shape, dtype)

    assert init.get(custom) is custom
    layer = dnn.layers.Dense(2, 3, init=custom)
    assert (dnn.to_numpy(layer.weight.data) == 1).all()
    # a model file rebuilds the layer with its default initializer, then loads the weights
    assert layer.get_config()["init"] == "glorot_uniform"
