"""Elementwise work on several threads (dnn.backend.threads) and the optimizers that use it.

A flat buffer larger than one chunk is updated chunk by chunk, the chunks shared out
over the threads: the result must be bitwise the one of a single thread (each element
sees the same operations in the same order), on every backend.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.backend import threads
from dnn.parameter import Parameter


@pytest.fixture(autouse=True)
def _restore_threads():
    before = threads.num_threads()
    yield
    threads.set_num_threads(before)


def _train(name: str, kwargs: dict, n_threads: int, steps: int = 4) -> np.ndarray:
    threads.set_num_threads(n_threads)
    rng = np.random.default_rng(0)
    size = 3 * backend.library.scratch_elements() + 123  # several chunks and a ragged last one
    param = Parameter(backend.asarray(rng.standard_normal(size)), "w")
    opt = getattr(dnn.optim, name)(**kwargs)
    for step in range(steps):
        param.grad = backend.asarray(np.random.default_rng(step + 1).standard_normal(size))
        opt.step([param])
    return backend.to_numpy(param.data).copy()


@pytest.mark.parametrize("name, kwargs", [
    ("Adam", {"lr": 0.01}), ("AdamW", {"lr": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}), ("SGD", {"lr": 0.1}),
    ("NAdam", {"lr": 0.01}), ("RMSprop", {"lr": 0.01, "momentum": 0.9}), ("RMSprop", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
])
def test_several_threads_give_the_bitwise_result_of_one(backend_name, name, kwargs):
    one = _train(name, kwargs, 1)
    np.testing.assert_array_equal(_train(name, kwargs, 3), one)
    np.testing.assert_array_equal(_train(name, kwargs, 2), one)


def test_the_tasks_run_on_several_threads_and_errors_surface():
    threads.set_num_threads(3)
    seen, barrier = set(), threading.Barrier(3, timeout=10)

    def task():
        seen.add(threading.get_ident())
        barrier.wait()  # only passes if three threads run at once

    threads.run([task, task, task])
    assert len(seen) == 3

    def bad():
        raise RuntimeError("chunk failed")

    with pytest.raises(RuntimeError, match="chunk failed"):
        threads.run([lambda: None, bad])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_bad_counts(bad):
    with pytest.raises(ValueError, match="set_num_threads: threads must be an int >= 1"):
        dnn.set_num_threads(bad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, kwargs", [
    ("Adam", {"lr": 0.01}), ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}), ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "dampening": 0.3}),
])
def test_the_fused_kernels_match_the_chunked_path(name, kwargs, dtype, monkeypatch):
    """dnn.backend.kernels (Numba, the fast extra) against the portable chunked update."""
    dnn.set_backend("numpy")
    if backend.library.fused("adam", "float32") is None:
        pytest.skip("no fused kernels here: Numba is not installed (pip install -e '.[fast]')")
    dnn.set_default_dtype(dtype)
    fused = [_train(name, kwargs, n) for n in (1, 2)]
    monkeypatch.setattr(backend.library, "fused", lambda name, dtype: None)
    chunked = _train(name, kwargs, 2)
    for result in fused:
        np.testing.assert_array_equal(result, chunked)
