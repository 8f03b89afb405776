"""Shared fixtures: every test that takes ``backend_name`` runs once per installed backend.

A backend that is not usable here (not installed, CuPy without a GPU) turns its tests
into skips; instead of one ``-ra`` line per skipped test, the session ends with one
summary line per reason (:func:`pytest_terminal_summary`).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path

import pytest

import dnn
from dnn import backend

BACKEND_NAMES = ["numpy", "array_api_strict", "torch", "cupy"]
DATA_HOME = Path(
    os.environ.get("DNN_DATA_HOME", Path(__file__).resolve().parents[2] / "shared" / "datasets")
).resolve()
# absolute, so subprocesses started in other directories (examples, CLI) find the data too
os.environ["DNN_DATA_HOME"] = str(DATA_HOME)


#: how a skip for an unusable backend starts (the terminal summary groups them by it)
BACKEND_SKIP = "backend not usable here: "


@functools.cache
def _why_missing(name: str) -> str | None:
    if name == "numpy":
        return None
    status = backend.status(name)  # installed? usable (a GPU for cupy)? the fix if not
    return None if status.usable else f"{BACKEND_SKIP}{name} — {status.describe()}"


def backend_params(names: list[str] = BACKEND_NAMES) -> list:
    """pytest params for the given backends, skipped with the reason where missing."""
    params = []
    for name in names:
        why = _why_missing(name)
        marks = [pytest.mark.skip(reason=why)] if why else []
        params.append(pytest.param(name, id=name, marks=marks))
    return params


_DEFAULT = backend.name  # $DNN_BACKEND, or numpy when it could not be used (dnn warned)


@pytest.fixture(autouse=True)
def _restore_backend():
    """Every test starts on the session's backend, float32, seed 0."""
    dnn.set_backend(_DEFAULT)
    dnn.set_default_dtype("float32")
    dnn.manual_seed(0)
    yield
    dnn.set_backend(_DEFAULT)
    dnn.set_default_dtype("float32")


@pytest.fixture(params=backend_params())
def backend_name(request) -> str:
    """Switch to each installed backend in turn (float32, seed 0)."""
    dnn.set_backend(request.param)
    dnn.manual_seed(0)
    return request.param


@pytest.fixture
def float64(backend_name) -> str:
    """Each installed backend in float64 (for gradient checks and parity)."""
    dnn.set_default_dtype("float64")
    return backend_name


@pytest.fixture
def data_home() -> Path:
    """Where the real Fashion-MNIST / MNIST files are (../shared/datasets)."""
    if not (DATA_HOME / "fashion-mnist").is_dir():
        pytest.skip(f"datasets not found in {DATA_HOME} (set DNN_DATA_HOME)")
    return DATA_HOME


def to_numpy(x):
    return backend.to_numpy(x)


@pytest.fixture
def no_tf32():
    """Full float32 precision on CUDA for parity tests: TF32 off in torch, and CuPy must not
    have it on (CUPY_TF32 is off by default)."""
    if os.environ.get("CUPY_TF32", "0") not in ("", "0"):
        pytest.fail("CUPY_TF32 is set: CuPy float32 matrix products would run in TF32; unset it")
    try:
        import torch
    except ImportError:
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line for all the skips: per unusable backend (with the reason and the fix),
    plus a count of the other skips (``pytest -rs`` lists each)."""
    reports = terminalreporter.stats.get("skipped", [])
    if not reports:
        return
    backends: Counter[str] = Counter()
    others = 0
    for report in reports:
        longrepr = report.longrepr
        reason = str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)
        if BACKEND_SKIP in reason:
            backends[reason.split(BACKEND_SKIP, 1)[1]] += 1
        else:
            others += 1
    parts = [f"backend {why} [{count} tests]" for why, count in sorted(backends.items())]
    if others:
        parts.append(f"{others} other skips (pytest -rs lists them)")
    terminalreporter.write_line("skipped: " + "; ".join(parts))
