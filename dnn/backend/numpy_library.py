"""NumPy: ufuncs with ``out=`` and its own clip/sign, SciPy's erf when SciPy is there,
a sorting scatter-add, PCG64 for randomness, strided window views, and the depthwise
convolution as einsums over them (see :class:`ArrayLibrary`).

Depthwise on NumPy: the taps are contracted by one einsum over the window view with
the channels innermost (contiguous in channels-last memory, where its SIMD loop runs
several times faster than a loop over the taps: 21.5 ms against 50 ms for the taps
and 279 ms for im2col with a batched GEMM per group, 3x3 on 32x64x28x28).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dnn.backend import random, windows
from dnn.backend.strided_library import StridedLibrary

_ONE = (1, 1)


@functools.cache
def _scipy_erf() -> Any:
    """``scipy.special.erf``, or None when SciPy is not installed (it is not a dependency)."""
    try:
        from scipy import special
    except ImportError:
        return None
    return special.erf


class NumpyLibrary(StridedLibrary):
    name = "numpy"
    generator_class = random.NumpyGenerator
    matmul_into_strided = True

    def is_array(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def fused(self, name: str, dtype: Any) -> Any:
        from dnn.backend import kernels  # Numba, when installed (the fast extra)

        return kernels.get(name, dtype)

    def erf(self, x: Any) -> Any:
        special_erf = _scipy_erf()
        return super().erf(x) if special_erf is None else special_erf(x)

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

    # ------------------------------------------------------------ windows
    def channels_last_copy(self, x: Any) -> Any:
        if x.shape[1] == 1 or x.strides[1] == x.itemsize:
            return x
        out = self.channels_last(tuple(x.shape), x.dtype, x, None)
        out[...] = x
        return out

    def _taps(self, x: Any, kernel: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int]) -> Any:
        """The window view of a padded (N, C, H, W) image as (N, OH, OW, kh, kw, C),
        channels innermost in memory."""
        view = windows.window_view(self.channels_last_copy(x), kernel, stride, dilation)
        return np.transpose(view, (0, 2, 3, 4, 5, 1))

    def depthwise(self, xpad: Any, weight: Any, stride: tuple[int, int],
                  dilation: tuple[int, int]) -> Any:
        c, m, kh, kw = weight.shape
        n = xpad.shape[0]
        taps = self._taps(xpad, (kh, kw), stride, dilation)  # (N, OH, OW, kh, kw, C)
        oh, ow = taps.shape[1], taps.shape[2]
        # einsum needs a contiguous kernel: 5.4 ms instead of 25 ms on a strided one
        w_last = np.ascontiguousarray(np.transpose(weight, (1, 2, 3, 0)))  # (m, kh, kw, C)
        out = np.empty((n, oh, ow, c, m), dtype=xpad.dtype)
        for k in range(m):
            np.einsum("npqijc,ijc->npqc", taps, w_last[k], out=out[..., k])
        return np.transpose(out.reshape(n, oh, ow, c * m), (0, 3, 1, 2))

    def depthwise_weight_grad(self, xpad: Any, grad: Any, kernel: tuple[int, int],
                              stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
        n, c = xpad.shape[0], xpad.shape[1]
        kh, kw = kernel
        m = grad.shape[1] // c
        oh, ow = grad.shape[2], grad.shape[3]
        taps = self._taps(xpad, kernel, stride, dilation)  # (N, OH, OW, kh, kw, C)
        g = np.transpose(self.channels_last_copy(grad), (0, 2, 3, 1)).reshape(n, oh, ow, c, m)
        dw = np.empty((m, kh, kw, c), dtype=grad.dtype)
        for k in range(m):
            np.einsum("npqijc,npqc->ijc", taps, g[..., k], out=dw[k])
        return np.transpose(dw, (3, 0, 1, 2))

    def depthwise_input_grad(self, grad: Any, weight: Any, input_shape: tuple[int, ...],
                             stride: tuple[int, int], padding: tuple[int, ...],
                             dilation: tuple[int, int]) -> Any:
        """With stride 1 (and padding within the window's reach d·(k − 1), e.g. "same")
        one einsum: dL/dx is the correlation of the gradient, padded by d·(k − 1) − padding,
        with the flipped kernel. Otherwise the portable fold of the taps."""
        c, m, kh, kw = weight.shape
        n, _, h, w = input_shape
        top, bottom, left, right = windows.sides(padding)
        reach_h, reach_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
        if stride != _ONE or max(top, bottom) > reach_h or max(left, right) > reach_w:
            return super().depthwise_input_grad(grad, weight, input_shape, stride, padding,
                                                dilation)
        gpad = windows.pad2d(grad, (reach_h - top, reach_h - bottom, reach_w - left,
                                    reach_w - right))
        taps = self._taps(gpad, (kh, kw), _ONE, dilation).reshape(n, h, w, kh, kw, c, m)
        flipped = np.ascontiguousarray(np.transpose(weight[:, :, ::-1, ::-1], (1, 2, 3, 0)))
        dx = np.empty((n, h, w, c), dtype=grad.dtype)
        np.einsum("npqijc,ijc->npqc", taps[..., 0], flipped[0], out=dx)
        for k in range(1, m):
            dx += np.einsum("npqijc,ijc->npqc", taps[..., k], flipped[k])
        return np.transpose(dx, (0, 3, 1, 2))
