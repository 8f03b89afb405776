"""nox sessions: ``nox -s tests`` (one run per backend), ``lint``, ``bench``, ``train``.

    nox -l                                   # list sessions
    nox -s "tests(backend='torch')"          # one backend
    nox -s tests -- -m slow                  # extra pytest arguments after --

Datasets are read from $DNN_DATA_HOME (default here: ../shared/datasets next
to the checkout, else ~/.cache/dnn, where missing files are downloaded).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).resolve().parent
SHARED_DATA = ROOT.parent / "shared" / "datasets"
BACKEND_FILES = {"numpy": "numpy.txt", "array_api_strict": "strict.txt", "torch": "torch.txt"}


def _env(backend: str = "numpy") -> dict[str, str]:
    env = {"DNN_BACKEND": backend}
    if "DNN_DATA_HOME" in os.environ:
        env["DNN_DATA_HOME"] = os.environ["DNN_DATA_HOME"]
    elif SHARED_DATA.is_dir():
        env["DNN_DATA_HOME"] = str(SHARED_DATA)
    return env


@nox.session
@nox.parametrize("backend", list(BACKEND_FILES))
def tests(session: nox.Session, backend: str) -> None:
    """The test suite with DNN_BACKEND=<backend> (default: not slow)."""
    session.install("-e", ".[test]", "-r", f"backends/{BACKEND_FILES[backend]}")
    args = session.posargs or ["-m", "not slow"]
    session.run("python", "-m", "pytest", *args, env=_env(backend))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark (suites, cost model, memory, dnn vs PyTorch) -> BENCHMARKS.md.

    Arguments after -- go to ``python -m benchmarks`` (e.g. ``--quick``, ``--threads 1``,
    ``--skip suites``).
    """
    session.install("-e", ".[test]", "torch", "scikit-learn", "threadpoolctl", "pyinstrument")
    session.run("python", "-m", "benchmarks", *session.posargs, env=_env())


@nox.session
def train(session: nox.Session) -> None:
    """Train on the embedded spiral data (no download); `nox -s train -- fashion-mnist` for more."""
    session.install("-e", ".")
    args = session.posargs or ["spiral"]
    session.run("python", "-m", "dnn", "train", *args, env=_env())
