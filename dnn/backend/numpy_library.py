"""NumPy: ufuncs with ``out=`` and its own clip/sign, SciPy's erf when SciPy is there,
a sorting scatter-add, and PCG64 for randomness (see :class:`ArrayLibrary`)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dnn.backend import random
from dnn.backend.library import INTO, ArrayLibrary


@functools.cache
def _scipy_erf() -> Any:
    """``scipy.special.erf``, or None when SciPy is not installed (it is not a dependency)."""
    try:
        from scipy import special
    except ImportError:
        return None
    return special.erf


class NumpyLibrary(ArrayLibrary):
    name = "numpy"
    generator_class = random.NumpyGenerator

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(x, dtype=dtype)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        return self.module.matmul(a, b, out=out)

    def elementwise_into(self, name: str, *args: Any, out: Any) -> Any:
        if name not in INTO:
            return super().elementwise_into(name, *args, out=out)  # raises, naming the choices
        return getattr(self.module, name)(*args, out=out)

    def clip(self, x: Any, low: float, high: float) -> Any:
        # array-api-compat's clip assigns through boolean masks: 4x np.clip on small arrays
        return self.module.clip(x, low, high)

    def sign(self, x: Any) -> Any:
        return self.module.sign(x)

    def erf(self, x: Any) -> Any:
        special_erf = _scipy_erf()
        return super().erf(x) if special_erf is None else special_erf(x)

    def take_along_last(self, x: Any, labels: Any) -> Any:
        return self.module.take_along_axis(x, labels[:, None], axis=1)[:, 0]

    def scatter_add_rows(self, num_rows: int, index: Any, values: Any) -> Any:
        """Sorts the indices, copies each id's first row and adds the repeats with one
        ``np.add.at`` on flat cells: 3-15x faster than ``np.add.at`` on rows or
        ``np.add.reduceat``, which are slow along axis 0."""
        out = np.zeros((int(num_rows), *values.shape[1:]), dtype=values.dtype)
        if index.shape[0] == 0:
            return out
        rows, table = values.reshape(index.shape[0], -1), out.reshape(int(num_rows), -1)
        order = np.argsort(index, kind="stable")
        ordered, rows = index[order], rows[order]
        first = np.empty(ordered.shape, dtype=bool)
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        table[ordered[first]] = rows[first]  # the first occurrence of each id: a plain copy
        if not first.all():  # repeats: one np.add.at on flat cells (its fast 1-D path)
            width = rows.shape[1]
            cells = ordered[~first][:, None] * width + np.arange(width)
            np.add.at(table.reshape(-1), cells.reshape(-1), rows[~first].reshape(-1))
        return out
