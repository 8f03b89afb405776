"""Model files for graph models: the graph (nodes and their inbound tensors) as JSON, shared
layers and tied parameters preserved, frozen flags kept; predictions bit-identical after
loading and an interrupted, resumed fit bitwise equal to the uninterrupted one."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import dnn
from dnn.layers import Add, Concatenate, Dense, ReLU, Subtract, Tanh
from tests.conftest import to_numpy


def _siamese() -> dnn.Model:
    tower_in = dnn.Input((4,), name="t")
    tower = dnn.Model(tower_in, Tanh()(Dense(4, 8, name="enc")(tower_in)))
    left, right = dnn.Input((4,), name="left"), dnn.Input((4,), name="right")
    diff = Subtract()([tower(left), tower(right)])
    shared = Dense(8, 8, name="shared")
    tied = Dense(8, 8, bias=False, name="tied")
    tied.weight = shared.weight
    h = Add()([shared(ReLU()(diff)), tied(shared(diff))])
    out = Dense(16, 3, name="head")(Concatenate()([h, diff]))
    return dnn.Model([left, right], out)


def _data(n: int = 48) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, 4)).astype(np.float32) for _ in range(2)], rng.integers(0, 3, n)


def test_graph_model_round_trip_keeps_sharing_ties_and_flags(backend_name, tmp_path):
    model = _siamese()
    model.get_layer("head").bias.trainable = False
    model.compile(loss="SoftmaxCrossEntropy", optimizer="adam", metrics=["accuracy"])
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1)
    path = tmp_path / "siamese.dnn"
    model.save(path)
    loaded = dnn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    shared, tied = loaded.get_layer("shared"), loaded.get_layer("tied")
    assert tied.weight is shared.weight  # tied again, not two copies
    tower = loaded.get_layer("model")
    assert sum(node.layer is tower for node in loaded._graph.nodes) == 2  # used twice
    assert sum(node.layer is shared for node in loaded._graph.nodes) == 2
    assert not loaded.get_layer("head").bias.trainable
    assert len(loaded.parameters()) == len(model.parameters())
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert "state/tied.weight.npy" not in names  # a tied array is stored once
    meta = json.loads(np.load(path)["__dnn__"].tobytes())
    assert meta["ties"] == {"tied.weight": "shared.weight"}
    assert meta["frozen"] == ["head.bias"]


def test_graph_model_resume_is_bitwise(backend_name, tmp_path):
    x, y = _data()
    dnn.manual_seed(5)
    full = _siamese()
    full.compile(loss="SoftmaxCrossEntropy", optimizer="adam")
    full.fit(x, y, epochs=4, batch_size=16, verbose=0, seed=2)
    dnn.manual_seed(5)
    first = _siamese()
    first.compile(loss="SoftmaxCrossEntropy", optimizer="adam")
    first.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=2)
    first.save(tmp_path / "half.dnn")
    resumed = dnn.load_model(tmp_path / "half.dnn")
    resumed.fit(x, y, epochs=4, batch_size=16, verbose=0, initial_epoch=resumed.epoch)
    for (key, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=key)


def test_multi_output_compile_round_trip(backend_name, tmp_path):
    inp = dnn.Input((4,), name="x")
    h = ReLU()(Dense(4, 8)(inp))
    model = dnn.Model(inp, [Dense(8, 3, name="cls")(h), Dense(8, 1, name="reg")(h)])
    model.compile(loss=["SoftmaxCrossEntropy", "mse"], optimizer="adam", loss_weights=[1.0, 0.25],
                  metrics={"cls": ["accuracy"], "reg": ["mae"]})
    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    y = [np.arange(32) % 3, x[:, :1]]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "multi.dnn")
    loaded = dnn.load_model(tmp_path / "multi.dnn")
    assert loaded.loss_weights == [1.0, 0.25]
    assert [m.name for m in loaded.metrics] == ["accuracy", "mae"]
    assert loaded.evaluate(x, y) == pytest.approx(model.evaluate(x, y), rel=1e-6)
    inference = dnn.load_model(tmp_path / "multi.dnn", compile=False)
    np.testing.assert_array_equal(inference.predict(x)[0], model.predict(x)[0])


def test_crafted_graph_is_refused(tmp_path):
    model = _siamese()
    path = tmp_path / "m.dnn"
    model.save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["__dnn__"].tobytes())
    meta["architecture"]["config"]["nodes"][0]["inputs"] = [99]
    arrays["__dnn__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(dnn.SerializationError, match="cannot build Model"):
        dnn.load_model(path)
