"""The command line, run as a user runs it: ``python -m dnn`` in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnn import cli

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            exe: list[str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DNN_BACKEND": "numpy", **(env or {})}
    return subprocess.run([*(exe or [sys.executable, "-m", "dnn"]), *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=REPO)


def accuracy_in(output: str) -> float:
    match = re.search(r"test accuracy: ([0-9.]+)", output)
    assert match, f"no 'test accuracy' line in:\n{output}"
    return float(match.group(1))


def test_train_spiral_default():
    result = run_cli("train", "spiral")
    assert result.returncode == 0, result.stderr
    assert "backend numpy" in result.stdout
    assert accuracy_in(result.stdout) >= 0.88


def test_train_spiral_options_and_seed_reproducible():
    args = ("train", "spiral", "--epochs", "3", "--hidden", "16", "--batch-size", "256",
            "--lr", "0.02", "--seed", "3")
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "hidden 16" in first.stdout and "epochs 3" in first.stdout and "batch 256" in first.stdout
    assert accuracy_in(first.stdout) == accuracy_in(second.stdout)


def test_train_spiral_on_array_api_strict():
    pytest.importorskip("array_api_strict")
    result = run_cli("train", "spiral", "--epochs", "2", "--backend", "array_api_strict")
    assert result.returncode == 0, result.stderr
    assert "backend array_api_strict" in result.stdout
    assert 0.0 <= accuracy_in(result.stdout) <= 1.0


def test_train_mnist_reads_the_data_home(data_home):
    result = run_cli("train", "mnist", "--epochs", "1", "--hidden", "32",
                     "--data-home", str(Path(data_home).resolve()))
    assert result.returncode == 0, result.stderr
    assert "60000 training / 10000 held-out" in result.stdout
    assert accuracy_in(result.stdout) > 0.85


def test_missing_data_without_network_is_a_clear_error(tmp_path):
    # a mirror on a closed local port stands in for "offline"; nothing leaves the machine
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import sys; from dnn import cli; from dnn.datasets import mnist;"
        f"mnist.MIRRORS['fashion-mnist'] = ('http://127.0.0.1:{port}/',);"
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    result = run_cli("train", "fashion-mnist", "--data-home", str(tmp_path),
                     exe=[sys.executable, "-c", code])
    assert result.returncode == 1
    assert "dnn: error: could not download" in result.stderr
    assert "train-images-idx3-ubyte.gz" in result.stderr
    assert str(tmp_path / "fashion-mnist") in result.stderr
    assert "Traceback" not in result.stderr


def test_save_writes_a_loadable_model(tmp_path):
    pytest.importorskip("dnn.io")
    import dnn

    path = tmp_path / "spiral.dnn"
    result = run_cli("train", "spiral", "--epochs", "2", "--save", str(path))
    assert result.returncode == 0, result.stderr
    assert path.is_file() and f"saved the model to {path}" in result.stdout
    model = dnn.load_model(str(path))
    x, _ = dnn.datasets.spiral_data(5, 3, seed=0)
    assert np.asarray(model.predict(x)).shape == (15, 3)


def test_info():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    lines = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.stdout.splitlines())
    assert lines["backend"] == "numpy"
    assert lines["device"] == "cpu"
    assert lines["numpy"] == np.__version__
    assert "array-api-compat" in lines and "torch" in lines


def test_info_other_backend():
    pytest.importorskip("array_api_strict")
    result = run_cli("info", "--backend", "array_api_strict")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^backend\s+array_api_strict$", result.stdout, re.M)


@pytest.mark.parametrize(
    "args, code, message",
    [
        ((), 2, "required: COMMAND"),
        (("train",), 2, "required: dataset"),
        (("train", "cifar"), 2, "invalid choice: 'cifar'"),
        (("train", "spiral", "--model", "transformer"), 2, "invalid choice: 'transformer'"),
        (("train", "spiral", "--hidden", "64,x"), 2, "comma-separated layer widths"),
        (("train", "spiral", "--epochs", "0"), 2, "must be > 0"),
        (("train", "spiral", "--lr", "fast"), 2, "expected a float"),
        (("train", "spiral", "--backend", "nope"), 1, "unknown backend 'nope'; valid names are"),
        (("frobnicate",), 2, "invalid choice: 'frobnicate'"),
    ],
    ids=["no-command", "no-dataset", "bad-dataset", "bad-model", "bad-hidden", "zero-epochs",
         "bad-lr", "bad-backend", "bad-command"],
)
def test_bad_arguments(args, code, message):
    result = run_cli(*args, timeout=60)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_console_script():
    exe = shutil.which("dnn")
    if exe is None:
        pytest.skip("the dnn console script is not on PATH (pip install -e .)")
    result = run_cli("info", exe=[exe])
    assert result.returncode == 0, result.stderr
    assert re.search(r"^backend\s+numpy$", result.stdout, re.M)


def test_model_registry_is_extensible(monkeypatch, capsys):
    """Later issues add `--model cnn|lstm` as one MODELS entry; the parser picks it up."""
    built = {}

    def build_tiny(sample_shape, classes, args):
        built["shape"], built["classes"] = sample_shape, classes
        return cli.build_mlp(sample_shape, classes, args)

    monkeypatch.setitem(cli.MODELS, "tiny", cli.ModelSpec(build_tiny, "flat", "test model"))
    assert cli.main(["train", "spiral", "--model", "tiny", "--epochs", "1", "--hidden", "8"]) == 0
    assert built == {"shape": (2,), "classes": 3}
    assert "training tiny on spiral" in capsys.readouterr().out


# ------------------------------------------------------------------ Transformers (issue #13)
def test_train_mnist_vision_transformer(data_home):
    result = run_cli("train", "mnist", "--model", "vit", "--epochs", "1", "--hidden", "32",
                     "--data-home", str(Path(data_home).resolve()),
                     env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "training vit on mnist" in result.stdout and "Patches → Dense(49→32)" in result.stdout
    assert accuracy_in(result.stdout) > 0.75  # one epoch of a width-32 ViT: 0.83 measured


def _small_text(monkeypatch):
    """dnn train stdlib-text on 100,000 characters (the real loader, a smaller cap)."""
    from dnn.cli import catalog

    monkeypatch.setattr(catalog, "TEXT_CHARS", 100_000)


def test_train_stdlib_text_char_transformer(monkeypatch, capsys, tmp_path):
    """Per-position logits (N, T, 97), no accuracy: the test loss beside the unigram baseline;
    the saved model loads and predicts logits for every position."""
    import dnn

    _small_text(monkeypatch)
    path = tmp_path / "lm.dnn"
    assert cli.main(["train", "stdlib-text", "--model", "char-transformer", "--hidden", "16",
                     "--progress", "none", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "training char-transformer on stdlib-text" in out and "Embedding → PositionalEmbedding" in out
    match = re.search(r"test loss: ([0-9.]+) \(baseline ([0-9.]+)\)", out)
    assert match, out
    loss, baseline = float(match.group(1)), float(match.group(2))
    assert 2.8 < baseline < 3.6 and loss < np.log(97)      # better than a uniform guess already
    model = dnn.load_model(str(path))
    ids = np.zeros((2, 64), np.int64)
    assert np.asarray(model.predict(ids)).shape == (2, 64, 97)


def test_transformer_models_fit_only_their_data():
    result = run_cli("train", "stdlib-text", "--model", "mlp", timeout=60)  # mlp reads no text
    assert result.returncode == 2
    assert "mlp does not fit stdlib-text" in result.stderr and "char-transformer" in result.stderr
    result = run_cli("train", "spiral", "--model", "vit", timeout=60)
    assert result.returncode == 2 and "vit does not fit spiral" in result.stderr


@pytest.mark.parametrize("model, dataset, hidden", [
    ("vit", "mnist", None), ("vit", "fashion-mnist", (30,)),
    ("char-transformer", "stdlib-text", None), ("char-transformer", "stdlib-text", (20,)),
])
def test_transformer_parameter_counts(model, dataset, hidden):
    """The count made before anything is built (the memory check) matches the model built."""
    import argparse

    from dnn.cli import catalog

    spec, model_spec = catalog.DATASETS[dataset], catalog.MODELS[model]
    args = argparse.Namespace(dataset=dataset, hidden=hidden or spec.hidden,
                              hidden_given=hidden is not None)
    shape = catalog._sample_shape(spec.sample_shape, model_spec.layout)
    built = model_spec.build(shape, spec.classes, args)
    assert model_spec.count_params(shape, spec.classes, args) == sum(p.size for p in built.parameters())
