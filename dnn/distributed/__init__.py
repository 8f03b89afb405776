"""Data-parallel training across processes and machines: MPI, and NCCL on GPUs.

    mpiexec -n 4 python -m mpi4py train.py      # 4 ranks, one machine
    mpiexec -n 8 -f hosts python -m mpi4py train.py   # 8 ranks on the machines in `hosts`

In ``train.py``, ``dnn.distributed.init()`` before ``fit`` makes every
following ``fit``/``evaluate`` data parallel (see
:mod:`dnn.distributed.data_parallel`): ``batch_size`` stays the GLOBAL batch,
each rank computes its slice of it, and the gradients are averaged before
every optimizer step, so N ranks train the weights one process would. A plain
``python train.py`` is one rank: ``init()`` then changes nothing.

``python -m mpi4py`` (rather than ``python``) makes an uncaught exception on
one rank abort every rank instead of leaving the others waiting in a
collective; ``init()`` also installs an ``excepthook`` that does the same.

Needs ``mpi4py`` and an MPI library (``pip install mpi4py mpich``, or the
``mpi`` extra); with CuPy as the backend, ``init(backend="nccl")`` (the
default there) averages gradients on the GPUs with NCCL.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from dnn.distributed.comm import (
    Communicator,
    MPICommunicator,
    NCCLCommunicator,
    SingleProcess,
)

_comm: Communicator = SingleProcess()
_initialized = False

#: environment variables MPI launchers set to the number of ranks (MPICH/Hydra, Open MPI,
#: Slurm's PMI)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def init(backend: str = "auto") -> Communicator:
    """Join the ranks started by ``mpiexec`` (idempotent); returns the communicator.

    ``backend``: ``"mpi"`` (host arrays), ``"nccl"`` (CuPy arrays on the GPUs, one rank
    per GPU by local rank), or ``"auto"`` — NCCL when dnn runs on CuPy, else MPI. Run as
    one process, the communicator has size 1 and nothing changes.
    """
    global _comm, _initialized
    if backend not in ("auto", "mpi", "nccl"):
        raise ValueError(f"dnn.distributed.init: backend must be 'auto', 'mpi' or 'nccl', got "
                         f"{backend!r}")
    from dnn import backend as array_backend

    if backend == "nccl" and not array_backend.library.supports_nccl:
        raise ValueError("dnn.distributed.init: backend='nccl' averages CuPy arrays on GPUs, "
                         f"but dnn runs on {array_backend.name}; set DNN_BACKEND=cupy (or "
                         "dnn.set_backend('cupy')) first, or use backend='mpi'")
    if _initialized:
        if backend != "auto" and (backend == "nccl") != isinstance(_comm, NCCLCommunicator):
            raise ValueError(f"dnn.distributed.init: already initialised with {_comm.name}; "
                             f"it cannot switch to backend={backend!r}")
        return _comm
    try:
        import mpi4py  # noqa: F401
    except ImportError as exc:
        raise ModuleNotFoundError(
            "dnn.distributed.init needs mpi4py and an MPI library: pip install mpi4py mpich "
            "(or, in a dnn checkout, pip install -e \".[mpi]\")", name="mpi4py") from exc
    use_nccl = backend == "nccl" or (backend == "auto" and array_backend.library.supports_nccl)
    _comm = NCCLCommunicator() if use_nccl else MPICommunicator()
    _initialized = True
    if _comm.size > 1:
        _install_excepthook(_comm)
    return _comm


def is_initialized() -> bool:
    return _initialized


def communicator() -> Communicator:
    """The active communicator (a one-rank one before :func:`init`)."""
    return _comm


def rank() -> int:
    """This process's rank (0 without :func:`init`)."""
    return _comm.rank


def world_size() -> int:
    """The number of ranks (1 without :func:`init`)."""
    return _comm.size


def local_rank() -> int:
    """This process's rank among the ranks on its machine."""
    return _comm.local_rank


def barrier() -> None:
    """Wait until every rank gets here."""
    _comm.barrier()


def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process as one of several ranks."""
    for name in _SIZE_VARIABLES:
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


def _install_excepthook(comm: Communicator) -> None:
    """An uncaught exception on one rank ends every rank (MPI_Abort), not a hang."""
    previous = sys.excepthook

    def abort(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        try:
            sys.stderr.write(f"[rank {comm.rank}] ")
            previous(kind, value, tb)
            sys.stderr.flush()
        except Exception:
            traceback.print_exception(kind, value, tb)
        finally:
            comm.abort(1)

    sys.excepthook = abort


__all__ = [
    "Communicator", "MPICommunicator", "NCCLCommunicator", "SingleProcess", "barrier",
    "communicator", "init", "is_initialized", "launched_by_mpi", "local_rank", "rank",
    "world_size",
]
