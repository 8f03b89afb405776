"""Communicators: how ranks exchange arrays. The only module that imports ``mpi4py``.

A communicator joins ``size`` processes (ranks); every collective must be
called by every rank, in the same order, with arrays of the same shape:

- ``allreduce_(a)``: a ← Σ_ranks a, in place (gradient buffers, loss sums);
- ``broadcast_(a, root)``: a ← a on ``root``, in place (initial weights);
- ``allgather_object(obj)`` / ``broadcast_object(obj, root)``: small Python
  values (model signatures, optimizer state, seeds), in memory between ranks;
- ``barrier()``, ``abort(code)``.

Three implementations: :class:`SingleProcess` (size 1, every call a no-op: a
plain ``python train.py``), :class:`MPICommunicator` (MPI through mpi4py, on
host arrays: NumPy, and torch CPU tensors through a NumPy view of their memory;
other backends go through a host copy) and :class:`NCCLCommunicator` (CuPy
arrays on the GPU through ``cupy.cuda.nccl``; MPI only broadcasts its unique id
and carries the Python objects).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnn import backend


class Communicator:
    """The interface; :class:`SingleProcess` is the one-rank implementation."""

    rank = 0
    size = 1
    #: the rank's index among the ranks of its machine (which GPU it uses)
    local_rank = 0
    name = "single process"

    def allreduce_(self, array: Any) -> Any:
        return array

    def broadcast_(self, array: Any, root: int = 0) -> Any:
        return array

    def allgather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return obj

    def barrier(self) -> None: ...

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcess(Communicator):
    """One rank: nothing to exchange."""


class MPICommunicator(Communicator):
    """MPI (mpi4py) between processes, on host memory."""

    name = "MPI"

    def __init__(self, comm: Any = None) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank = local.Get_rank()
        local.Free()

    def allreduce_(self, array: Any) -> Any:
        host, write_back = _host_view(array)
        self.comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        write_back(host)
        return array

    def broadcast_(self, array: Any, root: int = 0) -> Any:
        host, write_back = _host_view(array)
        self.comm.Bcast(host, root=root)
        write_back(host)
        return array

    def allgather_object(self, obj: Any) -> list[Any]:
        return self.comm.allgather(obj)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


class NCCLCommunicator(MPICommunicator):
    """NCCL between GPUs (CuPy arrays stay on the device); MPI for start-up and objects.
    Each rank uses the GPU of its local rank (``local_rank % device count``)."""

    name = "NCCL"

    def __init__(self, comm: Any = None) -> None:
        super().__init__(comm)
        import cupy
        from cupy.cuda import nccl

        cupy.cuda.Device(self.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self._nccl = nccl
        self._cupy = cupy
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def _dtype(self, array: Any) -> int:
        codes = {"float16": self._nccl.NCCL_FLOAT16, "float32": self._nccl.NCCL_FLOAT32,
                 "float64": self._nccl.NCCL_FLOAT64, "int32": self._nccl.NCCL_INT32,
                 "int64": self._nccl.NCCL_INT64}
        try:
            return codes[str(array.dtype)]
        except KeyError:
            raise TypeError(f"NCCLCommunicator: no NCCL type for dtype {array.dtype}") from None

    def allreduce_(self, array: Any) -> Any:
        if not isinstance(array, self._cupy.ndarray):
            return super().allreduce_(array)
        stream = self._cupy.cuda.get_current_stream().ptr
        self.nccl_comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._dtype(array),
                                 self._nccl.NCCL_SUM, stream)
        return array

    def broadcast_(self, array: Any, root: int = 0) -> Any:
        if not isinstance(array, self._cupy.ndarray):
            return super().broadcast_(array, root)
        stream = self._cupy.cuda.get_current_stream().ptr
        self.nccl_comm.bcast(array.data.ptr, array.size, self._dtype(array), root, stream)
        return array


def _host_view(array: Any) -> tuple[np.ndarray, Any]:
    """A contiguous NumPy array with ``array``'s values, and how to write it back: the
    array itself (NumPy), a view of the same memory (torch CPU), else a copy."""
    if isinstance(array, np.ndarray) and array.flags.c_contiguous:
        return array, lambda host: None
    numpy_view = getattr(array, "numpy", None)
    if callable(numpy_view) and getattr(getattr(array, "device", None), "type", "") == "cpu" \
            and array.is_contiguous():
        return numpy_view(), lambda host: None
    host = np.ascontiguousarray(backend.to_numpy(array))

    def write_back(values: np.ndarray) -> None:
        array[...] = backend.asarray(values, dtype=array.dtype)

    return host, write_back
