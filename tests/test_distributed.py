"""Data-parallel fit under ``mpiexec``: K ranks train the weights one process trains.

Each test launches ``mpiexec -n K python -m mpi4py tests/mpi/data_parallel_run.py`` in a
subprocess (one BLAS thread per rank, a timeout) and compares what rank 0 wrote with a
single-process run in this process. 50 samples at a global batch of 8 leave a last batch
of 2, so with 3 ranks one rank's slice is empty and still joins the allreduce.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dnn
from tests.conftest import backend_params

SCRIPT = Path(__file__).parent / "mpi" / "data_parallel_run.py"
_spec = importlib.util.spec_from_file_location("data_parallel_run", SCRIPT)
run_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_module)


def _mpi_missing() -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install mpi4py mpich, or the mpi extra)"
    if shutil.which("mpiexec") is None:
        return "no mpiexec on PATH (pip install mpich, or an MPI library)"
    return None


pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))]


def launch(ranks: int, mode: str, backend_name: str, dtype: str, out: Path,
           timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    command = ["mpiexec", "-n", str(ranks), sys.executable, "-m", "mpi4py", str(SCRIPT), mode,
               backend_name, dtype, str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


TOLERANCES = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 1e-5, "atol": 1e-6}}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("backend_name", backend_params(["numpy", "torch"]))
def test_ranks_train_the_weights_one_process_trains(tmp_path, backend_name, ranks, dtype):
    out = tmp_path / "rank0.npz"
    result = launch(ranks, "plain", backend_name, dtype, out)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["size"] == ranks and report["identical"], "ranks ended with different bits"
    expected_weights, expected_history = run_module.reference("plain", backend_name, dtype)
    got = np.load(out)
    for key, value in expected_weights.items():
        np.testing.assert_allclose(got[key], value, **TOLERANCES[dtype], err_msg=key)
    for key, values in expected_history.items():  # loss, accuracy, val_*: reduced over ranks
        np.testing.assert_allclose(report["history"][key], values, rtol=1e-6 if dtype ==
                                   "float64" else 1e-4, err_msg=key)


@pytest.mark.parametrize("mode", ["clip", "batchnorm"])
def test_clipping_sees_the_averaged_gradient_and_batchnorm_trains(tmp_path, mode):
    """clipnorm acts on the averaged gradient (the single-process one), so clipped runs
    still agree; BatchNorm's running statistics are averaged each epoch (so they differ
    from one process's: only the trained weights are compared, loosely)."""
    out = tmp_path / "rank0.npz"
    result = launch(2, mode, "numpy", "float64", out)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["identical"]
    expected, _ = run_module.reference(mode, "numpy", "float64")
    got = np.load(out)
    if mode == "clip":
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-12, err_msg=key)
    else:  # batch statistics of a slice are not those of the global batch
        assert set(got.files) == set(expected)
        assert all(np.all(np.isfinite(got[k])) for k in got.files)


def test_resume_from_a_checkpoint_on_two_ranks_equals_the_uninterrupted_run(tmp_path):
    out = tmp_path / "rank0.npz"
    result = launch(2, "resume", "numpy", "float64", out)
    assert result.returncode == 0, result.stdout + result.stderr
    dnn.set_backend("numpy")
    dnn.set_default_dtype("float64")
    model = run_module.build(100, "resume")
    run_module.train(model, "resume", epochs=run_module.EPOCHS + 1)
    got = np.load(out)
    for key, value in run_module.weights(model).items():
        np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-12, err_msg=key)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rank0.ckpt.dnn", "rank0.json", "rank0.npz"]  # one checkpoint file, written by rank 0


@pytest.mark.parametrize(("mode", "message"), [
    ("mismatch", "fit: the model on rank 1 differs from rank 0's"),
    ("mismatch-lr", "fit: the model on rank 1 differs from rank 0's: the optimizer are Adam("),
    ("mismatch-epochs", "fit: rank 1 has epochs 4 where rank 0 has 3"),
    ("stream-short", "fit: epoch 1: 1 of 2 ranks ran out of data before the others"),
    ("sum", "averages per-rank gradients of mean losses"),
])
def test_what_differs_between_ranks_is_refused_on_every_rank(tmp_path, mode, message):
    """A difference that would hang the job or let the ranks drift apart is an error on
    every rank, within the timeout."""
    result = launch(2, mode, "numpy", "float64", tmp_path / "out.npz", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        assert f"rank {rank} refused: " in result.stdout and message in result.stdout, \
            result.stdout


@pytest.mark.parametrize("mode", ["evalcb-dropout", "f1"])
def test_evaluate_inside_fit_and_set_metrics_keep_the_ranks_together(tmp_path, mode):
    """evaluate called by a callback during fit leaves fit data parallel (with Dropout the
    ranks would drift apart otherwise); F1 reduces its confusion matrix, empty slices
    included (3 ranks, a last batch of 2)."""
    out = tmp_path / "rank0.npz"
    result = launch(3, mode, "numpy", "float64", out)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["identical"]
    if mode == "f1":
        _, expected = run_module.reference(mode, "numpy", "float64")
        for key in ("f1", "val_f1", "loss"):
            np.testing.assert_allclose(report["history"][key], expected[key], rtol=1e-9)


def test_a_plain_fit_reduces_nothing_per_step_but_the_gradient(tmp_path):
    result = launch(2, "count", "numpy", "float64", tmp_path / "out.npz")
    assert result.returncode == 0, result.stdout + result.stderr
    calls, steps = (int(w) for w in result.stdout.split()[1::2])
    assert calls <= steps + 3, result.stdout  # one per step (one flat buffer) + the logs


def test_a_rank_that_raises_ends_the_job(tmp_path):
    start = time.monotonic()
    result = launch(2, "raise", "numpy", "float64", tmp_path / "out.npz", timeout=90)
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    assert time.monotonic() - start < 60


def test_one_process_without_mpiexec_changes_nothing():
    dnn.distributed.init()  # a world of one: fit as usual
    assert dnn.distributed.world_size() == 1 and dnn.distributed.rank() == 0
    weights, _ = run_module.reference("plain", "numpy", "float64")
    again, _ = run_module.reference("plain", "numpy", "float64")
    for key in weights:
        np.testing.assert_array_equal(weights[key], again[key])


def _mpi_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                PYTHONPATH=str(Path(__file__).resolve().parents[1]))


def _epoch_lines(text: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("epoch ")]


def test_the_cli_under_mpiexec_trains_what_one_process_trains(tmp_path):
    command = [sys.executable, "-m", "dnn", "train", "spiral", "--epochs", "3", "--hidden", "16"]
    alone = subprocess.run(command, capture_output=True, text=True, timeout=120,
                           env=_mpi_env(), cwd=tmp_path)
    ranks = subprocess.run(["mpiexec", "-n", "2", sys.executable, "-m", "mpi4py", *command[1:]],
                           capture_output=True, text=True, timeout=120, env=_mpi_env(),
                           cwd=tmp_path)
    assert alone.returncode == 0 and ranks.returncode == 0, ranks.stdout + ranks.stderr
    assert "data parallel on 2 ranks" in ranks.stdout
    assert _epoch_lines(ranks.stdout) == _epoch_lines(alone.stdout)  # printed once, rank 0
    assert len(_epoch_lines(ranks.stdout)) == 3


@pytest.mark.skipif(not (Path(os.environ.get("DNN_DATA_HOME", "")) / "fashion-mnist").is_dir(),
                    reason="Fashion-MNIST is not in $DNN_DATA_HOME")
def test_the_data_parallel_example_matches_one_process(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / \
        "16_fashion_mnist_data_parallel.py"
    alone = subprocess.run([sys.executable, str(example), "--small", "--out",
                            str(tmp_path / "alone")], capture_output=True, text=True,
                           timeout=300, env=_mpi_env())
    ranks = subprocess.run(["mpiexec", "-n", "2", sys.executable, "-m", "mpi4py", str(example),
                            "--small", "--out", str(tmp_path / "ranks")], capture_output=True,
                           text=True, timeout=300, env=_mpi_env())
    assert alone.returncode == 0 and ranks.returncode == 0, ranks.stdout + ranks.stderr
    losses = [line.rsplit("losses per epoch ", 1)[1] for out in (alone, ranks)
              for line in out.stdout.splitlines() if "losses per epoch" in line]
    assert len(losses) == 2 and losses[0] == losses[1]
    assert "2 rank(s), MPI" in ranks.stdout
    assert [p.name for p in (tmp_path / "ranks").iterdir()] == ["16_data_parallel.dnn"]
