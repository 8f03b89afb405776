"""benchmarks/gpu.py (issue #7's one-command GPU measurement) runs end to end on the CPU:
``--device cpu --quick`` times dnn on NumPy against torch CPU with tiny sizes, prints the
markdown tables and writes them with the JSON record under ``--out``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("mlp_b128", "mlp_b1024", "cnn", "lstm", "dense")


def test_gpu_benchmark_runs_on_the_cpu_and_writes_its_tables(tmp_path):
    pytest.importorskip("torch")
    env = {**os.environ, "DNN_BACKEND": "numpy", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "| benchmark | unit | dnn (ms) | torch (ms) | dnn/torch | target | meets |" in out
    assert "Peak memory of one training step" in out
    table = (tmp_path / "gpu_bench.md").read_text()
    assert table.strip() == out.strip()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "x |" in line]
    assert len(rows) == len(BENCHMARKS), table
    for target in ("<= 1.2x", "<= 2.0x", "<= 3.0x"):
        assert target in table

    record = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert record["info"]["device"] == "cpu" and record["info"]["dnn_backend"] == "numpy"
    assert record["info"]["torch_allow_tf32_matmul"] is False
    assert record["quick"] is True and record["repeats"] >= 5
    assert set(record["benchmarks"]) == set(BENCHMARKS)
    for name, bench in record["benchmarks"].items():
        assert len(bench["runs"]["dnn"]) == len(bench["runs"]["torch"]) == record["repeats"], name
        assert bench["dnn_s"] > 0 and bench["torch_s"] > 0, name
        assert bench["ratio"] == pytest.approx(bench["dnn_s"] / bench["torch_s"]), name
        assert bench["meets"] == (bench["ratio"] <= bench["target"]), name
        # on the CPU only dnn's NumPy allocations are traced: a step allocates something
        assert bench["memory"]["dnn"]["peak"] > 0, name
        assert bench["memory"]["ratio"] is None, name


def test_gpu_benchmark_rejects_fewer_than_five_repeats(tmp_path):
    pytest.importorskip("torch")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--quick", "--repeats", "3",
         "--out", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--repeats must be >= 5" in proc.stderr
    assert not (tmp_path / "gpu_bench.json").exists()


def test_gpu_benchmark_without_a_gpu_says_what_is_missing(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the error path cannot be reached here")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--out", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "--device cuda needs" in proc.stderr and "Traceback" not in proc.stderr
