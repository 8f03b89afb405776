"""CuPy: arrays in CUDA device memory, ufuncs with ``out=``, its own clip/sign (the
portable ones sync through boolean masks), ``cupyx.scatter_add``, SciPy-style erf, and
the counter-based generator, whose state can be saved (see :class:`~dnn.backend.library.ArrayLibrary`)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from dnn.backend import random
from dnn.backend.strided_library import StridedLibrary
from dnn.errors import BackendError


def _no_gpu(module: ModuleType, exc: BaseException | None) -> str:
    cause = f" ({type(exc).__name__}: {exc})" if exc is not None else " (0 devices)"
    return (f"CuPy {getattr(module, '__version__', '')} is installed, but no usable CUDA GPU/driver "
            f"was found{cause}. Reinstalling CuPy will not help: check that `nvidia-smi` lists a "
            "GPU, that the NVIDIA driver is loaded, and that the CuPy wheel matches the driver's "
            "CUDA version (cupy-cuda12x for CUDA 12, cupy-cuda13x for CUDA 13); or use another "
            "backend (numpy, torch)")


class CupyLibrary(StridedLibrary):
    name = "cupy"
    supports_nccl = True
    # cupy.random.Generator's state lives in device memory CuPy cannot read back, and
    # re-seeding one allocates ~13 MB of curand states: (seed, counter) instead
    generator_class = random.CounterGenerator

    @classmethod
    def check_usable(cls, module: ModuleType) -> None:
        try:
            count = module.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver/runtime errors: installed, but no GPU here
            raise BackendError(f"backend 'cupy' cannot be used: {_no_gpu(module, exc)}") from exc
        if not count:
            raise BackendError(f"backend 'cupy' cannot be used: {_no_gpu(module, None)}")

    def to_numpy(self, x: Any) -> np.ndarray:
        return x if isinstance(x, np.ndarray) else self.module.asnumpy(x)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, self.module.ndarray)

    def in_host_memory(self, x: Any) -> bool:
        return not isinstance(x, self.module.ndarray)

    def synchronize(self) -> None:
        self.module.cuda.get_current_stream().synchronize()

    def device_name(self) -> str:
        dev = self.module.cuda.Device()
        props = self.module.cuda.runtime.getDeviceProperties(dev.id)
        return f"cuda:{dev.id} ({props['name'].decode()})"

    def memory_stats(self) -> dict[str, int]:
        pool = self.module.get_default_memory_pool()
        return {"used_bytes": pool.used_bytes(), "total_bytes": pool.total_bytes()}

    def scratch_elements(self) -> int:
        return 1 << 62  # the whole buffer at once: fewer kernel launches

    def erf(self, x: Any) -> Any:
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)

    def scatter_add_rows(self, num_rows: int, index: Any, values: Any) -> Any:
        import cupyx

        out = self.module.zeros((int(num_rows), *values.shape[1:]), dtype=values.dtype)
        cupyx.scatter_add(out, index, values)
        return out
