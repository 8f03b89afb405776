"""The generator classes of dnn.backend.random, in particular the portable counter-based one.

CuPy draws from :class:`CounterGenerator` (its own generator's state cannot be read
back). The class is written in ``xp`` alone, so it runs here on every backend whose
uint64 arithmetic is complete (numpy, array_api_strict, cupy; torch has no uint64
``arange`` and keeps its own ``torch.Generator``): its stream is checked against a
pure-Python SplitMix64, its distributions, its (seed, counter) state, and an exact
resume from a model file with it as the shared generator.
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn import layers as L
from dnn.backend import random
from dnn.backend.random import CounterGenerator
from tests.conftest import backend_params

MASK = (1 << 64) - 1


def splitmix64(seed: int, n: int) -> list[int]:
    """The reference: Vigna's splitmix64.c, one value at a time in Python ints."""
    out, state = [], seed
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


@pytest.fixture(params=backend_params(["numpy", "array_api_strict", "cupy"]))
def portable(request):
    """The backends the counter-based generator runs on."""
    dnn.set_backend(request.param)
    return request.param


def _host(x):
    return backend.to_numpy(x)


@pytest.mark.parametrize("seed", [0, 1234567, MASK])
def test_the_stream_is_splitmix64_and_continues_across_draws(portable, seed):
    gen = CounterGenerator(seed)
    first, second = _host(gen.bits(3)), _host(gen.bits(5))
    assert [int(v) for v in first] + [int(v) for v in second] == splitmix64(seed, 8)
    assert gen.get_state() == {"kind": "counter", "seed": seed, "counter": 8}


def test_state_round_trip_repeats_the_draws(portable):
    gen = CounterGenerator(7)
    gen.normal((4,), 0.0, 1.0, backend.xp.float64)
    state = gen.get_state()
    a = _host(gen.uniform((6,), -1.0, 2.0, backend.xp.float32))
    other = CounterGenerator(None)
    other.set_state(state)
    np.testing.assert_array_equal(_host(other.uniform((6,), -1.0, 2.0, backend.xp.float32)), a)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_distributions(portable, dtype_name):
    xp, gen = backend.xp, CounterGenerator(3)
    dtype = getattr(xp, dtype_name)
    u, n = _host(gen.random((40000,), dtype)), _host(gen.normal((40000,), 1.5, 0.5, dtype))
    assert str(u.dtype) == dtype_name and str(n.dtype) == dtype_name
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert abs(n.mean() - 1.5) < 0.01 and abs(n.std() - 0.5) < 0.01
    # a normal's tails: P(|z| > 2) = 0.0455
    assert abs(np.mean(np.abs(n - 1.5) > 1.0) - 0.0455) < 0.005
    ints = _host(gen.integers(-3, 4, (7000,)))
    assert ints.min() == -3 and ints.max() == 3
    assert np.all(np.abs(np.bincount(ints + 3) - 1000) < 150)
    perm = _host(gen.permutation(100))
    assert sorted(perm.tolist()) == list(range(100)) and perm.tolist() != list(range(100))


@pytest.mark.parametrize("bad", [{"seed": -1, "counter": 0}, {"seed": 1 << 64, "counter": 0},
                                 {"seed": 1, "counter": "3"}, {"seed": True, "counter": 0}])
def test_a_bad_counter_state_is_refused(bad):
    with pytest.raises(ValueError, match=r"(seed|counter) must be an int"):
        CounterGenerator(0).set_state({"kind": "counter", **bad})


def test_dropout_masks_are_drawn_in_their_own_dtype(backend_name):
    mask = random.bernoulli((20000,), 0.7, dtype=backend.xp.float32)
    assert mask.dtype == backend.xp.float32
    assert abs(float(np.mean(_host(mask))) - 0.7) < 0.015


def test_a_state_of_another_kind_leaves_the_generator_alone(backend_name):
    dnn.manual_seed(5)
    expected = _host(random.normal((4,)))
    dnn.manual_seed(5)
    random.set_state({"kind": "not-this-one"})
    np.testing.assert_array_equal(_host(random.normal((4,))), expected)


def _fit(model, x, y, epochs, initial_epoch=0):
    return model.fit(x, y, batch_size=16, epochs=epochs, initial_epoch=initial_epoch, seed=0,
                     verbose=0)


def test_exact_resume_from_a_file_with_the_counter_generator(portable, monkeypatch, tmp_path):
    """What a CuPy run does: the shared generator is counter-based, saved as (seed, counter)."""
    monkeypatch.setattr(backend.library, "generator_class", CounterGenerator)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def build():
        dnn.manual_seed(11)
        model = dnn.Sequential([L.Dense(5, 8), L.ReLU(), L.Dropout(0.4), L.Dense(8, 2)])
        model.compile("SoftmaxCrossEntropy", "adam")
        return model

    full = build()
    losses = _fit(full, x, y, 6).history["loss"]
    half = build()
    _fit(half, x, y, 3)
    half.save(tmp_path / "half.dnn")
    dnn.manual_seed(99)  # the process draws something else in between
    random.normal((10,))
    resumed = dnn.load_model(tmp_path / "half.dnn")
    assert resumed.rng_state["kind"] == "counter" and resumed.rng_state["counter"] > 0
    rest = _fit(resumed, x, y, 6, initial_epoch=3).history["loss"]
    assert rest == losses[3:]
    for a, b in zip(full.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(_host(a.data), _host(b.data))
