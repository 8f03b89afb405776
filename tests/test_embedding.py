"""Embedding and the scatter-add of rows: gradients (repeated ids), torch parity, errors, training."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.gradcheck import gradcheck
from dnn.layers import Dense, Embedding


def _np(x):
    return backend.to_numpy(x)


def _ids(values):
    return backend.asarray(np.asarray(values, dtype=np.int64))


def test_scatter_add_rows_matches_add_at(backend_name):
    rng = np.random.default_rng(0)
    index = rng.integers(0, 9, 40)
    index[:5] = 3  # certainly repeated
    values = rng.standard_normal((40, 6)).astype(np.float32)
    out = backend.library.scatter_add_rows(9, _ids(index), backend.asarray(values))
    expected = np.zeros((9, 6), np.float32)
    np.add.at(expected, index, values)
    assert tuple(out.shape) == (9, 6)
    assert out.dtype == backend.xp.float32
    np.testing.assert_allclose(_np(out), expected, rtol=1e-5, atol=1e-5)
    unused = np.setdiff1d(np.arange(9), index)
    assert np.all(_np(out)[unused] == 0)


def test_scatter_add_rows_empty_index(backend_name):
    values = backend.asarray(np.zeros((0, 4), np.float32))
    out = backend.library.scatter_add_rows(5, _ids(np.zeros((0,), np.int64)), values)
    np.testing.assert_array_equal(_np(out), np.zeros((5, 4), np.float32))


@pytest.mark.parametrize("ids", [[[1, 2, 1], [6, 1, 0]], [4, 4, 4, 0], [[[2]], [[5]]]],
                         ids=["2d-repeats", "1d-all-same", "3d"])
def test_embedding_gradcheck(float64, ids):
    assert gradcheck(Embedding(7, 3), np.asarray(ids)) < 1e-6


def test_embedding_forward_and_weight_gradient(float64):
    emb = Embedding(5, 4)
    ids = np.array([[0, 3, 3], [3, 1, 4]])
    weight = _np(emb.weight.data)
    y = emb.forward(_ids(ids), training=True)
    assert tuple(y.shape) == (2, 3, 4)
    np.testing.assert_array_equal(_np(y), weight[ids])
    g = np.random.default_rng(1).standard_normal((2, 3, 4))
    assert emb.backward(backend.asarray(g)) is None  # ids have no gradient
    expected = np.zeros((5, 4))
    np.add.at(expected, ids.reshape(-1), g.reshape(-1, 4))
    np.testing.assert_allclose(_np(emb.weight.grad), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(emb.weight.grad)[3], g[0, 1] + g[0, 2] + g[1, 0], rtol=1e-12)
    assert np.all(_np(emb.weight.grad)[2] == 0)


def test_embedding_gradient_overwrites(backend_name):
    emb = Embedding(4, 2)
    g = backend.asarray(np.ones((2, 2), np.float32))
    for _ in range(2):
        emb.forward(_ids([1, 1]), training=True)
        emb.backward(g)
    np.testing.assert_array_equal(_np(emb.weight.grad)[1], [2.0, 2.0])  # not 4: no accumulation


def test_embedding_init_is_standard_normal(backend_name):
    w = _np(Embedding(1000, 20).weight.data)
    assert w.shape == (1000, 20)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02


def test_embedding_matches_torch(float64):
    torch = pytest.importorskip("torch")
    emb = Embedding(10, 6)
    ref = torch.nn.Embedding(10, 6, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(_np(emb.weight.data).copy()))
    ids = np.random.default_rng(2).integers(0, 10, (4, 7))
    g = np.random.default_rng(3).standard_normal((4, 7, 6))
    yt = ref(torch.from_numpy(ids))
    yt.backward(torch.from_numpy(g))
    y = emb.forward(_ids(ids), training=True)
    emb.backward(backend.asarray(g))
    np.testing.assert_allclose(_np(y), yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(emb.weight.grad), ref.weight.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_embedding_errors(backend_name):
    emb = Embedding(5, 3)
    with pytest.raises(ShapeError, match=r"Embedding.*integer.*float32"):
        emb.forward(backend.asarray(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"\[0, 5\).*from 0 to 5"):
        emb.forward(_ids([0, 5]))
    with pytest.raises(ValueError, match=r"from -1 to 2"):
        emb.forward(_ids([[2, -1]]))
    emb.forward(_ids([[1, 2]]), training=True)
    with pytest.raises(ShapeError, match=r"\(1, 2, 3\)"):
        emb.backward(backend.asarray(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="dim"):
        Embedding(5, 0)
    assert emb.get_config() == {"num_embeddings": 5, "dim": 3, "l1": 0.0, "l2": 0.0}
    assert emb.output_shape((8, 12)) == (8, 12, 3)
    assert Embedding.input_dtype == "int64"


def test_embedding_small_integer_dtypes(backend_name):
    emb = Embedding(6, 2)
    y = emb.forward(backend.asarray(np.array([5, 0, 5], dtype=np.int32)))
    np.testing.assert_array_equal(_np(y), _np(emb.weight.data)[[5, 0, 5]])


def test_embedding_trains_in_fit_with_integer_ids(backend_name):
    """fit keeps integer ids integer for a model that starts with an Embedding."""
    ids = np.tile(np.arange(12), 20)
    labels = ids % 3
    model = dnn.Sequential([Embedding(12, 8), Dense(8, 3)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.05), metrics=["accuracy"])
    history = model.fit(ids, labels, epochs=8, batch_size=24, verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["accuracy"][-1] > 0.95


def test_embedding_model_file_roundtrip(backend_name, tmp_path):
    if not hasattr(dnn, "load_model"):
        pytest.skip("dnn.load_model is not available")
    model = dnn.Sequential([Embedding(6, 3), Dense(3, 2)])
    path = tmp_path / "embedding.dnn"
    model.save(str(path))
    loaded = dnn.load_model(str(path))
    ids = np.array([[0, 5], [2, 2]])
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


@pytest.mark.parametrize("num_rows, m, repeats", [(50, 30, False), (3, 40, True)],
                         ids=["mostly-unique", "heavy-repeats"])
def test_scatter_add_rows_trailing_dims(backend_name, num_rows, m, repeats):
    rng = np.random.default_rng(4)
    index = rng.integers(0, num_rows, m) if repeats else rng.permutation(num_rows)[:m]
    values = rng.standard_normal((m, 2, 3)).astype(np.float32)
    out = backend.library.scatter_add_rows(num_rows, _ids(index), backend.asarray(values))
    expected = np.zeros((num_rows, 2, 3), np.float32)
    np.add.at(expected, index, values)
    np.testing.assert_allclose(_np(out), expected, rtol=1e-5, atol=1e-5)


def test_an_id_check_on_a_device_array_is_deferred_to_the_loop(monkeypatch):
    """What happens on a GPU (where a read would stall the device): the forward leaves a
    device-side flag, and fit raises at its next verify point with the same message. On
    NumPy, standing in for the device here, ``take`` accepts id -1 as CuPy's wraps any id."""
    from dnn.backend import deferred

    dnn.set_backend("numpy")
    monkeypatch.setattr(backend.library, "in_host_memory", lambda x: False)
    emb = Embedding(5, 3)
    emb.forward(_ids([[1, -1]]))  # no error yet: nothing was read
    with pytest.raises(ValueError, match=r"Embedding: ids must be in \[0, 5\)"):
        deferred.raise_pending()
    deferred.raise_pending()  # the flag was read and cleared
    model = dnn.Sequential([Embedding(5, 2), dnn.layers.Flatten(), dnn.layers.Dense(4, 2)])
    model.compile("SoftmaxCrossEntropy", "sgd")
    x = np.array([[0, 1], [2, 3], [4, -1]] * 4)
    y = np.zeros(12, dtype=np.int64)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 5\)"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 5\)"):
        model.predict(x)
