"""What NumPy and CuPy share (CuPy copies NumPy's API): ufuncs with ``out=``, their own
clip and sign, ``take_along_axis``, channels-last allocations and ``as_strided`` window
views (see :class:`~dnn.backend.library.ArrayLibrary`)."""

from __future__ import annotations

from typing import Any

from dnn.backend.library import INTO, ArrayLibrary


class StridedLibrary(ArrayLibrary):
    """What NumPy and CuPy share: ufuncs with ``out=``, their own clip and sign,
    ``take_along_axis``, channels-last allocations and ``as_strided`` window views."""

    strided_writes = True

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(x, dtype=dtype)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        return self.module.matmul(a, b, out=out)

    def elementwise_into(self, name: str, *args: Any, out: Any) -> Any:
        if name not in INTO:
            return super().elementwise_into(name, *args, out=out)  # raises, naming the choices
        return getattr(self.module, name)(*args, out=out)

    def clip(self, x: Any, low: float, high: float) -> Any:
        # array-api-compat's clip assigns through boolean masks: 4x np.clip on small arrays,
        # a host synchronisation per call on CuPy
        return self.module.clip(x, low, high)

    def sign(self, x: Any) -> Any:
        return self.module.sign(x)

    def take_along_last(self, x: Any, labels: Any) -> Any:
        return self.module.take_along_axis(x, labels[:, None], axis=1)[:, 0]

    def channels_last(self, shape: tuple[int, ...], dtype: Any, like: Any,
                      fill: float | None) -> Any:
        n, c, h, w = shape
        mod = self.module
        if fill is None:
            out = mod.empty((n, h, w, c), dtype=dtype)
        elif fill == 0:
            out = mod.zeros((n, h, w, c), dtype=dtype)
        else:
            out = mod.full((n, h, w, c), fill, dtype=dtype)
        return out.transpose(0, 3, 1, 2)

    def window_view(self, x: Any, shape: tuple[int, int, int, int], kernel: tuple[int, int],
                    stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
        s0, s1, s2, s3 = x.strides
        return self.module.lib.stride_tricks.as_strided(
            x, shape=(*shape, *kernel),
            strides=(s0, s1, s2 * stride[0], s3 * stride[1], s2 * dilation[0], s3 * dilation[1]))

    def masked(self, mask: Any, x: Any) -> Any:
        # the branch-free product: where branches per element and, on the random masks of
        # ReLU and max pooling, runs several times slower
        return x * mask
