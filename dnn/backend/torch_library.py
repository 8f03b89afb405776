"""PyTorch: tensors on the CPU or a CUDA device, ``out=`` variants, ``clamp``,
``torch.special.erf``, ``index_add_`` and ``torch.Generator`` (see :class:`ArrayLibrary`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dnn.backend import random
from dnn.backend.library import INTO, ArrayLibrary


class TorchLibrary(ArrayLibrary):
    name = "torch"
    generator_class = random.TorchGenerator
    strided_writes = True

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        if isinstance(x, np.ndarray):
            x = np.asarray(x, order="C")  # ascontiguousarray would make 0-d arrays 1-d
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x if isinstance(x, np.ndarray) else x.detach().cpu().numpy()

    def is_array(self, x: Any) -> bool:
        return isinstance(x, self.module.Tensor)

    def in_host_memory(self, x: Any) -> bool:
        return not isinstance(x, self.module.Tensor) or x.device.type == "cpu"

    def synchronize(self) -> None:
        if self.module.cuda.is_available():
            self.module.cuda.synchronize()

    def device_name(self) -> str:
        return str(self.module.empty(0).device)

    def memory_stats(self) -> dict[str, int]:
        if not self.module.cuda.is_available():
            return {}
        return {"used_bytes": self.module.cuda.memory_allocated(),
                "peak_bytes": self.module.cuda.max_memory_allocated()}

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        return self.module.matmul(a, b, out=out)

    def elementwise_into(self, name: str, *args: Any, out: Any) -> Any:
        if name not in INTO:
            return super().elementwise_into(name, *args, out=out)
        if name in ("maximum", "minimum"):  # torch's take tensors only, not Python numbers
            args = tuple(a if isinstance(a, self.module.Tensor) else
                         self.module.as_tensor(a, dtype=out.dtype, device=out.device) for a in args)
        return getattr(self.module, name)(*args, out=out)

    def scratch_elements(self) -> int:
        # on a GPU the whole buffer at once: fewer kernel launches
        return 1 << 62 if self.module.cuda.is_available() else super().scratch_elements()

    def clip(self, x: Any, low: float, high: float) -> Any:
        return self.module.clamp(x, low, high)

    def sign(self, x: Any) -> Any:
        return self.module.sign(x)

    def erf(self, x: Any) -> Any:
        return self.module.special.erf(x)

    def scatter_add_rows(self, num_rows: int, index: Any, values: Any) -> Any:
        out = self.module.zeros((int(num_rows), *values.shape[1:]), dtype=values.dtype,
                                device=values.device)
        return out.index_add_(0, index, values)

    def channels_last(self, shape: tuple[int, ...], dtype: Any, like: Any,
                      fill: float | None) -> Any:
        n, c, h, w = shape
        make = self.module.empty if fill is None else self.module.zeros
        out = make((n, h, w, c), dtype=dtype, device=like.device)
        if fill:
            out.fill_(fill)
        return out.permute(0, 3, 1, 2)

    def window_view(self, x: Any, shape: tuple[int, int, int, int], kernel: tuple[int, int],
                    stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        if dilation == (1, 1):
            return x.unfold(2, kh, sh).unfold(3, kw, sw)
        rows = x.unfold(2, dh * (kh - 1) + 1, sh)[..., ::dh]  # (N, C, OH, W, kh)
        return rows.unfold(3, dw * (kw - 1) + 1, sw)[..., ::dw]

    def masked(self, mask: Any, x: Any) -> Any:
        return x * mask  # branch-free: where runs several times slower on random masks
