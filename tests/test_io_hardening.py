"""Model files against a hostile reviewer: each class of problem of the hardening review,
tested at its mechanism (not only the one example that was reported).

1. Members read by another name: only ``<name>.npy`` members, each once, never
   overlapping, and the data read is the data whose header was checked.
2. Allocation before validation: building a model never allocates more than the
   file can back (checked in a child process under RLIMIT_AS), real files always fit,
   metric sizes are bounded before the metric exists, the budget stays in its thread.
3. Loading is linear in the number of layers.
4. Saving: destination checked before the work, mode kept, write-protected files
   refused, stale temporaries cleaned, every OSError names the path, bytes paths.
"""

from __future__ import annotations

import errno
import gc
import io
import json
import os
import re
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn import layers as L
from dnn.backend import random
from dnn.io import building, check_destination
from dnn.io.budget import AllocationBudget, AllocationRefused

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ helpers
def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _members(path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _write_zip(path, members) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for name, data in members:
                z.writestr(name, data)
    return Path(path)


def _meta_npy(meta) -> bytes:
    return _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))


def _file(path, arch, compile=None, arrays=(), ties=None) -> Path:
    """A crafted model file: metadata around ``arch`` plus ``arrays`` (name, ndarray)."""
    meta = {"format": "dnn", "format_version": 2, "kind": "model", "backend": "numpy",
            "dtype": "float32", "architecture": arch, "ties": ties or {}, "frozen": [],
            "compile": compile, "optimizer_state": {"iterations": 0, "lr": 0.1},
            "training": {"epoch": 0}, "rng": None}
    return _write_zip(path, [("__dnn__.npy", _meta_npy(meta))]
                      + [(f"{n}.npy", _npy(a)) for n, a in arrays])


def _dense(i, o):
    return {"type": "Dense", "config": {"in_features": i, "out_features": o}}


def _seq(layers, **config):
    return {"type": "Sequential", "config": {"layers": layers, **config}}


def _compiled(metrics):
    return {"loss": [{"type": "mse", "config": {}}], "loss_weights": [1.0],
            "optimizer": {"type": "sgd", "config": {"lr": 0.1}}, "metrics": [metrics]}


@pytest.fixture
def saved(tmp_path) -> Path:
    dnn.set_backend("numpy")
    dnn.manual_seed(0)
    model = dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3)])
    model.compile("SoftmaxCrossEntropy", "adam")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 3, 16), epochs=1,
              batch_size=8, verbose=0)
    path = tmp_path / "saved.dnn"
    model.save(path)
    return path


def _refused(path, pattern) -> str:
    with pytest.raises(dnn.SerializationError, match=pattern) as info:
        dnn.load_model(path)
    assert str(path) in str(info.value)
    with pytest.raises(dnn.SerializationError):  # weights-only loading reads the same way
        dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3)]).load_weights(path)
    return str(info.value)


# ------------------------------------------------------------------ 1. members by another name
def test_every_member_must_be_a_distinct_npy_array(saved, tmp_path):
    """For EVERY member of a real file: a suffix-less twin (which ``np.load(...)[name]``
    would read instead of the checked ``name.npy``) or a suffix-less rename is refused."""
    members = _members(saved)
    assert len(members) > 10
    for name, _data in members:
        base = name[: -len(".npy")]
        for twin in (b"raw bytes, not an array", _npy(np.full((4, 8), 7.0, np.float32))):
            path = _write_zip(tmp_path / "twin.dnn", [*members, (base, twin)])
            if name == "state/0.weight.npy":  # the attack: NumPy resolves the name to the twin
                with np.load(path) as npz:
                    assert not isinstance(npz[base], np.ndarray) or npz[base][0, 0] == 7.0
            _refused(path, rf"member named '{base}'.*every member of a model file is an array")
        renamed = [(base if n == name else n, d) for n, d in members]
        _refused(_write_zip(tmp_path / "renamed.dnn", renamed), "every member of a model file")


def test_duplicate_member_names_are_refused(saved, tmp_path):
    members = _members(saved)
    for name in ("__dnn__.npy", "state/0.bias.npy"):
        data = dict(members)[name]
        path = _write_zip(tmp_path / "dup.dnn", [*members, (name, data)])
        _refused(path, f"two members named '{name}'")


def test_overlapping_members_are_refused(saved, tmp_path):
    """Two directory entries pointing into the same bytes (a zip-bomb trick that also
    lets one member's data pass for another's) are refused before anything is read."""
    members = _members(saved)
    data = bytearray(_write_zip(tmp_path / "plain.dnn", members).read_bytes())
    records = []
    at = data.find(b"PK\x01\x02")
    while at != -1:
        records.append(at)
        at = data.find(b"PK\x01\x02", at + 4)
    first_offset = struct.unpack_from("<I", data, records[0] + 42)[0]
    struct.pack_into("<I", data, records[1] + 42, first_offset)  # entry 2 -> entry 1's bytes
    path = tmp_path / "overlap.dnn"
    path.write_bytes(bytes(data))
    _refused(path, "overlaps")


def test_array_data_comes_from_the_member_whose_header_was_checked(saved, tmp_path):
    """A file that loads holds exactly the arrays its checked members hold."""
    model = dnn.load_model(saved)
    with zipfile.ZipFile(saved) as z:
        stored = np.load(io.BytesIO(z.read("state/0.weight.npy")))
    np.testing.assert_array_equal(backend.to_numpy(model.state_dict()["0.weight"]), stored)


# ------------------------------------------------------------------ 2. allocation before validation
_CHILD = textwrap.dedent("""
    import json, resource, sys
    import dnn

    def vm_bytes():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024

    limit = vm_bytes() + 200 * 2**20  # 200 MB on top of an interpreter that imported dnn
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {}
    for path in sys.argv[1:]:
        try:
            dnn.load_model(path)
            out[path] = "loaded"
        except dnn.SerializationError as exc:
            out[path] = "refused: " + str(exc)
        except BaseException as exc:
            out[path] = f"crashed: {type(exc).__name__}: {exc}"
    print(json.dumps(out))
""")

_BIG = [_dense(4096, 4096) for _ in range(24)]
CRAFTED = {
    # each integer is small, their product is not
    "dense-2**24x24": _seq([_dense(2**24, 24)]),
    "layernorm-cube": _seq([{"type": "LayerNorm", "config": {"normalized_shape": [4096] * 3}}]),
    # each layer is small, their sum is not
    "24-dense-4096": _seq(_BIG),
    "40-dense-2048": _seq([_dense(2048, 2048) for _ in range(40)]),
    # a layer spec nested under any key is built (before the constructor rejects the key)
    "nested-under-seed-key": _seq([_dense(2, 2)], seed_layers=[_dense(2**15, 2**15)]),
    "residual-block": _seq([{"type": "Residual", "config": {"block": _seq(_BIG)}}]),
    "embedding": _seq([{"type": "Embedding", "config": {"num_embeddings": 10**8, "dim": 64}}]),
    "lstm": _seq([{"type": "LSTM", "config": {"input_size": 8192, "hidden_size": 8192}}]),
    "batchnorm": _seq([{"type": "BatchNorm", "config": {"num_features": 10**9}}]),
    "conv": _seq([{"type": "Conv2D", "config": {"in_channels": 4096, "out_channels": 4096,
                                                "kernel_size": 9}}]),
    "graph-model": {"type": "Model", "config": {
        "layers": [{"name": "d", "layer": _dense(2**15, 2**15)}],
        "inputs": [{"shape": [2**15], "dtype": None, "name": None}],
        "nodes": [{"layer": "d", "inputs": [0], "list": False}], "outputs": [1],
        "multi_input": False, "multi_output": False}},
}


def _graph(layer, shape, dtype=None):
    """A one-node graph model: ``layer`` applied to one Input of ``shape``."""
    return {"type": "Model", "config": {
        "layers": [{"name": "l", "layer": layer}],
        "inputs": [{"shape": shape, "dtype": dtype, "name": None}],
        "nodes": [{"layer": "l", "inputs": [0], "list": False}], "outputs": [1],
        "multi_input": False, "multi_output": False}}


# small layers whose activations are huge: loading runs no layer, so it allocates none of
# them (the files either load, weights missing aside, or are refused; never ~1 GiB)
ACTIVATIONS = {
    "huge-input": _seq([{"type": "ReLU", "config": {}}],
                       input={"shape": [2**20, 2**20], "dtype": None, "name": None}),
    "dense-wide-output": _graph(_dense(1, 1024), [262144, 1]),
    "conv-wide-output": _graph({"type": "Conv2D", "config": {
        "in_channels": 1, "out_channels": 256, "kernel_size": 1}}, [1, 1024, 1024]),
    "embedding-many-ids": _graph({"type": "Embedding", "config": {
        "num_embeddings": 1, "dim": 1024}}, [262144], "int64"),
    "sequential-dense-wide": _seq([_dense(1, 1024)],
                                  input={"shape": [262144, 1], "dtype": None, "name": None}),
}


def _load_in_child(paths, timeout=120) -> dict[str, str]:
    env = {**os.environ, "DNN_BACKEND": "numpy", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], capture_output=True,
                          text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_loading_never_computes_the_activations_a_file_describes(tmp_path):
    """Each file is a few KB; its layer's one-sample output would be ~1 GiB. Under a 200 MB
    limit, loading either refuses (SerializationError: here, the arrays are missing) or
    loads; it never runs out of memory."""
    paths = [_file(tmp_path / f"{name}.dnn", arch) for name, arch in ACTIVATIONS.items()]
    assert max(p.stat().st_size for p in paths) < 4096
    results = _load_in_child(paths)
    for path in paths:
        result = results[str(path)]
        assert result == "loaded" or result.startswith(f"refused: {path}: "), (path.name, result)
        assert "MemoryError" not in result and "budget" not in result, result
        assert "would allocate" not in result, result  # nothing was even attempted


def test_a_file_with_the_weights_of_a_wide_layer_loads_without_running_it(tmp_path, monkeypatch):
    """With its arrays present, a model whose activations are huge loads (and no layer runs)."""
    dnn.set_backend("numpy")
    path = _file(tmp_path / "wide.dnn", ACTIVATIONS["dense-wide-output"],
                 arrays=[("state/l.weight", np.ones((1, 1024), np.float32)),
                         ("state/l.bias", np.zeros(1024, np.float32))])
    monkeypatch.setattr(L.Dense, "forward_with", lambda *a, **k: pytest.fail("a layer ran"))
    model = dnn.load_model(path, compile=False)
    assert model.outputs[0].shape == (None, 262144, 1024)


@pytest.mark.parametrize("arch, pattern", [
    (_graph(_dense(3, 2), [4]), "expected input of shape"),
    (_graph({"type": "Conv2D", "config": {"in_channels": 3, "out_channels": 2,
                                          "kernel_size": 3}}, [2, 8, 8]), "input channels"),
    (_graph({"type": "Conv2D", "config": {"in_channels": 1, "out_channels": 2,
                                          "kernel_size": 5}}, [1, 2, 2]), "smaller than the kernel"),
    (_graph({"type": "MaxPool2D", "config": {"kernel_size": 2}}, [4]), "4-D input"),
    (_graph({"type": "Embedding", "config": {"num_embeddings": 4, "dim": 2}}, [3]), "integer"),
    (_graph({"type": "LayerNorm", "config": {"normalized_shape": [5]}}, [4]), "LayerNorm|shape"),
    (_graph({"type": "Reshape", "config": {"shape": [7]}}, [4]), "Reshape|reshape|shape"),
    (_graph({"type": "LSTM", "config": {"input_size": 3, "hidden_size": 2}}, [5, 4]), "time"),
    ({"type": "Model", "config": {
        "layers": [{"name": "a", "layer": {"type": "Add", "config": {}}}],
        "inputs": [{"shape": [3], "dtype": None, "name": None},
                   {"shape": [4], "dtype": None, "name": None}],
        "nodes": [{"layer": "a", "inputs": [0, 1], "list": True}], "outputs": [2],
        "multi_input": True, "multi_output": False}}, "same shape"),
])
def test_symbolic_loading_still_checks_every_connection(arch, pattern, tmp_path):
    """Shapes come from output_shape while loading; a wrong connection is still refused."""
    dnn.set_backend("numpy")
    with pytest.raises(dnn.SerializationError, match=pattern):
        dnn.load_model(_file(tmp_path / "bad.dnn", arch), compile=False)


def _built_symbolically(model, x):
    """A model rebuilt from its config while loading gives the shapes the probe gives."""
    from dnn.graph import symbolic_shapes

    with symbolic_shapes():
        rebuilt = type(model).from_config(model.get_config())
    assert [t.shape for t in rebuilt.outputs] == [t.shape for t in model.outputs]
    assert [t.dtype for t in rebuilt.outputs] == [t.dtype for t in model.outputs]
    for a, b in zip(rebuilt._graph.nodes, model._graph.nodes):
        assert [(t.shape, t.dtype) for t in a.outputs] == [(t.shape, t.dtype) for t in b.outputs], \
            a.layer.describe()
    ys = model.predict(x)
    for y, t in zip(ys if isinstance(ys, list) else [ys], model.outputs):
        assert tuple(y.shape[1:]) == t.shape[1:]


def test_every_built_in_layer_has_the_graph_shape_its_forward_gives():
    dnn.set_backend("numpy")
    img = dnn.Input((3, 8, 8))
    h = L.Conv2D(3, 4, 3, padding=1)(img)
    h = L.BatchNorm(4)(h)
    h = L.MaxPool2D(2)(h)
    h = L.AvgPool2D(2, stride=1)(h)
    g = L.GlobalAvgPool2D()(h)
    f = L.Flatten()(h)
    r = L.Reshape((4, -1))(f)
    r = L.LayerNorm(r.shape[-1])(r)
    s = L.LSTM(r.shape[-1], 5, return_sequences=True)(r)
    s = L.GRU(5, 6)(s)
    s2 = L.RNN(r.shape[-1], 6)(r)
    acts = [L.ReLU(), L.LeakyReLU(), L.ELU(), L.GELU(), L.Sigmoid(), L.Tanh(), L.Softmax(),
            L.LogSoftmax(), L.Softplus(), L.Identity(), L.Dropout(0.5)]
    a = L.Dense(4, 6)(g)
    for act in acts:
        a = act(a)
    res = L.Residual(L.Dense(6, 6))(a)
    merged = [L.Add()([s, s2]), L.Subtract()([s, a]), L.Multiply()([s, res]), L.Average()([s, a])]
    out = L.Concatenate()([*merged, L.Dense(f.shape[-1], 3)(f)])
    model = dnn.Model(img, [out, g])
    _built_symbolically(model, np.zeros((2, 3, 8, 8), np.float32))

    ids = dnn.Input((7,), dtype="int64")
    e = L.Embedding(10, 4)(ids)
    x = dnn.Input((7, 4))
    inner = dnn.Model(x, L.Dense(4, 2)(x))
    model = dnn.Model(ids, L.Flatten()(inner(e)))
    _built_symbolically(model, np.zeros((2, 7), np.int64))


def _nested(depth, fan_out):
    x = dnn.Input((2,))
    model = dnn.Model(x, L.Dense(2, 2)(x))
    for _ in range(depth):
        x = h = dnn.Input((2,))
        for _ in range(fan_out):
            h = model(h)
        model = dnn.Model(x, h)
    return model


def test_nested_shared_models_cost_their_node_count(tmp_path, monkeypatch):
    """Each level applies the one below three times: 3**14 forward passes if calling a
    model on symbolic tensors ran it; building, saving and loading run none."""
    dnn.set_backend("numpy")
    calls = []
    original = dnn.Model.forward_with
    monkeypatch.setattr(dnn.Model, "forward_with",
                        lambda self, *a, **k: (calls.append(1), original(self, *a, **k))[1])
    start = time.perf_counter()
    model = _nested(14, 3)
    path = tmp_path / "nested.dnn"
    model.save(path)
    assert path.stat().st_size < 64 * 1024
    loaded = dnn.load_model(path, compile=False)
    assert time.perf_counter() - start < 10
    assert calls == []
    assert loaded.outputs[0].shape == (None, 2)
    small = _nested(3, 2)
    x = np.ones((3, 2), np.float32)
    small.save(tmp_path / "small.dnn")
    np.testing.assert_allclose(dnn.load_model(tmp_path / "small.dnn", compile=False).predict(x),
                               small.predict(x), rtol=1e-6)


def test_a_nested_model_checks_the_shapes_it_is_called_on():
    dnn.set_backend("numpy")
    x = dnn.Input((3,))
    inner = dnn.Model(x, L.Dense(3, 2)(x))
    with pytest.raises(dnn.errors.ShapeError, match=r"input 0 must have shape \(None, 3\)"):
        inner(dnn.Input((4,)))
    with pytest.raises(TypeError, match="expected 1 input"):
        inner([dnn.Input((3,)), dnn.Input((3,))])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_crafted_small_files_never_allocate_what_they_cannot_back(tmp_path):
    """Every crafted file is at most a few KB; loading each one in a process limited to
    200 MB more than it started with raises SerializationError (not MemoryError)."""
    paths = [_file(tmp_path / f"{name}.dnn", arch) for name, arch in CRAFTED.items()]
    ties = {f"{i}.weight": "0.weight" for i in range(1, 24)}  # tied layers: credit is capped
    paths.append(_file(tmp_path / "ties.dnn", _seq(_BIG), ties=ties,
                       arrays=[("state/0.weight", np.zeros((2, 2), np.float32))]))
    paths.append(_file(tmp_path / "metric.dnn", _seq([_dense(2, 2)]),
                       compile=_compiled([{"type": "confusion_matrix", "config": {"num_classes": 10**7}}]),
                       arrays=[("state/0.weight", np.zeros((2, 2), np.float32)),
                               ("state/0.bias", np.zeros(2, np.float32))]))
    assert max(p.stat().st_size for p in paths) < 4096
    env = {**os.environ, "DNN_BACKEND": "numpy", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in paths:
        assert results[str(path)].startswith(f"refused: {path}: "), (path.name, results[str(path)])
        assert "MemoryError" not in results[str(path)], results[str(path)]
    assert time.perf_counter() - start < 60


def test_refusals_name_the_layer_and_the_sizes(tmp_path):
    message = _refused(_file(tmp_path / "m.dnn", CRAFTED["24-dense-4096"]),
                       "larger than anything this .*-byte file can back")
    assert "architecture.layers[0] (Dense)" in message
    assert "67,108,864 bytes" in message  # the weight it would have drawn


def test_metric_sizes_are_bounded_before_the_metric_is_built(tmp_path, monkeypatch):
    from dnn.metrics.classification import ConfusionMatrix

    built = []
    original = ConfusionMatrix.__init__
    monkeypatch.setattr(ConfusionMatrix, "__init__",
                        lambda self, *a, **k: (built.append(k), original(self, *a, **k))[1])
    arrays = [("state/0.weight", np.zeros((4, 3), np.float32)), ("state/0.bias", np.zeros(3, np.float32))]
    for metric in ({"type": "confusion_matrix", "config": {"num_classes": 10**7}},
                   {"type": "f1", "config": {"average": "macro", "num_classes": 10**6}}):
        path = _file(tmp_path / "m.dnn", _seq([_dense(4, 3)]), compile=_compiled([metric]), arrays=arrays)
        _refused(path, r"compile\.metrics\[0\]\[0\]\.config\.num_classes = \d+ is larger")
    assert built == []  # refused before construction
    good = _file(tmp_path / "ok.dnn", _seq([_dense(4, 3)]), arrays=arrays, compile=_compiled(
        [{"type": "confusion_matrix", "config": {"num_classes": 3}}]))
    model = dnn.load_model(good)
    assert model.output_metrics[0][0].num_classes == 3


def _tight_models():
    inp = dnn.Input((6,))
    shared = L.Dense(6, 6, bias=False, name="shared")
    tied = L.Dense(6, 6, bias=False, name="tied")
    tied.weight = shared.weight
    graph = dnn.Model(inp, L.Add()([shared(inp), tied(L.ReLU()(inp))]))
    return {
        "dense": dnn.Sequential([L.Dense(300, 200), L.ReLU(), L.Dense(200, 10)]),
        "norms": dnn.Sequential([L.Dense(30, 20), L.BatchNorm(20), L.LayerNorm(20)]),
        "recurrent": dnn.Sequential([L.LSTM(12, 16, return_sequences=True), L.GRU(16, 8)]),
        "conv": dnn.Sequential([dnn.Input((2, 12, 12)), L.Conv2D(2, 16, 3), L.ReLU(),
                                L.MaxPool2D(2), L.Flatten(), L.Dense(16 * 5 * 5, 4)]),
        "embedding": dnn.Sequential([L.Embedding(500, 32)]),
        "residual": dnn.Sequential([L.Residual(dnn.Sequential([L.Dense(40, 40), L.ReLU()]))]),
        "graph-with-ties": graph,
    }


@pytest.mark.parametrize("name", sorted(_tight_models()))
def test_real_files_fit_the_budget_their_arrays_give(name, backend_name, tmp_path, monkeypatch):
    """The budget counts what layers really allocate: with only 16 KB of slack every
    real (uncompiled) file still loads, tied parameters included."""
    monkeypatch.setattr(building, "SLACK_BYTES", 16 * 1024)
    dnn.manual_seed(0)
    model = _tight_models()[name]
    model.save(tmp_path / "m.dnn")
    loaded = dnn.load_model(tmp_path / "m.dnn")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(loaded.state_dict()[key]), backend.to_numpy(value))


def test_the_budget_applies_to_the_loading_thread_only():
    xp, draws = backend.xp, (random.uniform, random.normal, random.permutation)
    seen = {}

    def other_thread():
        seen["zeros"] = backend.xp.zeros((1000,)).shape
        seen["uniform"] = random.uniform((1000,)).shape

    with AllocationBudget(100, "a test budget"):
        with pytest.raises(AllocationRefused, match="a test budget"):
            backend.xp.zeros((1000,))
        with pytest.raises(AllocationRefused):
            random.uniform((1000,))
        backend.xp.zeros((4,))  # within the budget
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert seen == {"zeros": (1000,), "uniform": (1000,)}
    assert backend.xp is xp and (random.uniform, random.normal, random.permutation) == draws


def test_a_refused_load_leaves_the_backend_as_it_was(tmp_path):
    xp, uniform = backend.xp, random.uniform
    _refused(_file(tmp_path / "m.dnn", CRAFTED["dense-2**24x24"]), "refusing to build")
    assert backend.xp is xp and random.uniform is uniform
    assert backend.xp.zeros((3,)).shape == (3,)


# ------------------------------------------------------------------ 3. linear loading
def _load_seconds(path, repeats=3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dnn.load_model(path, compile=False)
        best = min(best, time.perf_counter() - start)
    return best


def test_loading_time_is_linear_in_the_number_of_layers(tmp_path):
    dnn.set_backend("numpy")
    times = {}
    for n in (300, 1200):
        path = tmp_path / f"{n}.dnn"
        dnn.Sequential([L.Dense(2, 2) for _ in range(n)]).save(path)
        times[n] = _load_seconds(path)
    # 4x the layers: about 4x the time (it was 16x: a per-key scan of all layers)
    assert times[1200] < 8 * times[300] + 0.05, times


def test_loading_a_named_functional_chain_is_linear(tmp_path):
    """Naming the layers of a graph model checked each name against all earlier ones."""
    dnn.set_backend("numpy")
    times = {}
    for n in (1500, 6000):
        x = h = dnn.Input((2,))
        for i in range(n):
            h = L.ReLU(name=f"relu_{i}")(h)
        path = tmp_path / f"{n}.dnn"
        dnn.Model(x, h).save(path)
        gc.collect()
        gc.disable()  # collections of the many small objects are noise here, not the code
        try:
            times[n] = _load_seconds(path, repeats=3)
        finally:
            gc.enable()
    assert times[6000] < 8 * times[1500] + 0.05, times


# ------------------------------------------------------------------ 4. saving
def _small():
    return dnn.Sequential([L.Dense(2, 2)])


def test_the_destination_is_checked_before_any_work(tmp_path, monkeypatch):
    import dnn.io.model_io as model_io

    encoded = []
    monkeypatch.setattr(model_io, "encode_layer", lambda m: encoded.append(m) or {})
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    long_name = "m" * 300 + ".dnn"
    cases = [("", FileNotFoundError, "cannot write '': the path is empty"),
             (tmp_path / "dir", IsADirectoryError, "is a directory"),
             (str(tmp_path / "dir") + os.sep, IsADirectoryError, "is a directory"),
             (tmp_path / "no" / "such" / "m.dnn", FileNotFoundError, "does not exist"),
             (tmp_path / "file" / "m.dnn", NotADirectoryError, "is not a directory"),
             (tmp_path / long_name, OSError, "file name is 304 bytes long")]
    for path, error, why in cases:
        for save in (model_io.save_model, model_io.save_weights, check_destination):
            with pytest.raises(error) as info:
                save(_small(), path) if save is not check_destination else save(path)
            assert f"cannot write {os.fsdecode(path) or repr('')}: " in str(info.value)
            assert why in str(info.value)
    assert encoded == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]  # nothing written
    assert list((tmp_path / "dir").iterdir()) == []


def test_check_destination_accepts_what_open_accepts(tmp_path):
    assert check_destination(tmp_path / "new.dnn") == str(tmp_path / "new.dnn")
    assert check_destination(os.fsencode(tmp_path / "new.dnn")) == str(tmp_path / "new.dnn")
    assert not (tmp_path / "new.dnn").exists()  # nothing created
    with pytest.raises(TypeError, match=r"expected a str, bytes or os\.PathLike"):
        check_destination(42)


def test_long_names_that_the_file_system_allows_save_and_load(tmp_path):
    path = tmp_path / ("m" * 251 + ".dnn")  # 255 bytes: the temporary's name is shortened
    _small().save(path)
    dnn.load_model(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_bytes_paths_save_and_load(tmp_path):
    path = os.fsencode(tmp_path / "m.dnn")
    model = _small()
    model.save(path)
    model.save_weights(os.fsencode(tmp_path / "w.dnn"))
    dnn.load_model(path)
    model.load_weights(os.fsencode(tmp_path / "w.dnn"))


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_saving_over_a_file_keeps_its_mode(mode, tmp_path):
    path = tmp_path / "m.dnn"
    _small().save(path)
    path.chmod(mode)
    _small().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    new = tmp_path / "new.dnn"
    umask = os.umask(0o022)
    try:
        _small().save(new)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644  # a new file: 0666 minus the umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_write_protected_file_is_refused_as_open_would(tmp_path, monkeypatch):
    import dnn.io.files as files

    path = tmp_path / "m.dnn"
    _small().save(path)
    before = path.read_bytes()
    path.chmod(0o444)
    try:
        with open(path, "ab"):
            can_write = True  # root: open() would write, so does save (and keeps 0444)
    except PermissionError:
        can_write = False
    if can_write:
        dnn.Sequential([L.Dense(3, 3)]).save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
        path.chmod(0o644)
        path.write_bytes(before)
        path.chmod(0o444)
        real_access = os.access  # and as a user who may not write it:
        monkeypatch.setattr(files.os, "access", lambda p, m, **k: (
            False if os.fspath(p) == str(path) and m & os.W_OK else real_access(p, m, **k)))
    with pytest.raises(PermissionError, match=f"cannot write {re.escape(str(path))}: .*write-protected"):
        dnn.Sequential([L.Dense(3, 3)]).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dnn"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_target_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    why = "it exists and is not a regular file"
    with pytest.raises(OSError, match=f"cannot write {re.escape(str(fifo))}: {why}"):
        _small().save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_saving_through_a_symbolic_link_keeps_the_link(tmp_path):
    (tmp_path / "runs").mkdir()
    real, link = tmp_path / "runs" / "m.dnn", tmp_path / "latest.dnn"
    _small().save(real)
    link.symlink_to(real)
    model = dnn.Sequential([L.Dense(3, 3)])
    model.save(link)
    assert link.is_symlink() and dnn.load_model(real).layers[0].in_features == 3


def test_stale_temporaries_of_the_target_are_removed(tmp_path):
    path = tmp_path / "m.dnn"
    old = time.time() - 2 * 3600
    stale = tmp_path / ".m.dnn.0123456789ab.tmp"
    fresh = tmp_path / ".m.dnn.ba9876543210.tmp"  # a save running right now
    other = tmp_path / ".other.dnn.0123456789ab.tmp"  # another target's
    unrelated = tmp_path / ".m.dnn.notes.tmp"
    for p in (stale, fresh, other, unrelated):
        p.write_bytes(b"partial")
    for p in (stale, other, unrelated):
        os.utime(p, (old, old))
    _small().save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, fresh.name, other.name, unrelated.name])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EFBIG])
def test_write_errors_name_the_path(code, saved, monkeypatch):
    import dnn.io.container as container

    before = saved.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(container.np, "savez", failing_savez)
    with pytest.raises(OSError, match=re.escape(f"cannot write {saved}: {os.strerror(code)}")) as info:
        _small().save(saved)
    assert info.value.errno == code
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]
