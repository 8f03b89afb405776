"""One object per array library: what the Array API standard lacks, done its way.

:class:`ArrayLibrary` is the portable implementation, written in the standard
alone (array-api-strict runs it as it is). A library's subclass
(:class:`~dnn.backend.numpy_library.NumpyLibrary`, ``CupyLibrary``,
``TorchLibrary``) overrides only what that library does faster or must do
differently — a ufunc with ``out=``, its own ``clip``, a scatter-add kernel, a
generator whose state can be saved — and each override has a parity test
against this base (tests/test_backend.py). ``dnn.backend.library`` is the
active library's object; nothing outside these classes asks which library is
active.

Methods, by concern:

- transfer: :meth:`asarray` (host data in), :meth:`to_numpy` (out), :meth:`is_array`,
  :meth:`in_host_memory`, :meth:`synchronize`, :meth:`device_name`, :meth:`memory_stats`;
- randomness: :meth:`generator` (a seeded generator of :mod:`dnn.backend.random`);
- in-place arithmetic for the optimizers: :meth:`matmul_into`, :meth:`elementwise_into`,
  :meth:`scratch_elements`;
- elementwise functions the standard lacks or gets slowly: :meth:`clip`, :meth:`sign`,
  :meth:`erf`;
- gathers and scatters: :meth:`take_along_last`, :meth:`scatter_add_rows`;
- sliding windows (the algorithms are in :mod:`dnn.backend.windows`; these are the parts
  a library does its own way): :meth:`channels_last`, :meth:`channels_last_copy`,
  :meth:`window_view`, :meth:`masked`, :meth:`depthwise` and its two gradients.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from dnn.backend import host_memory, ops, random, windows

#: elementwise functions :meth:`ArrayLibrary.elementwise_into` accepts (the same name in
#: numpy, cupy, torch and the Array API standard)
INTO = frozenset({"add", "subtract", "multiply", "divide", "sqrt", "maximum", "minimum", "abs"})


class ArrayLibrary:
    """The portable implementation: the Array API standard and nothing else."""

    #: the DNN_BACKEND name this class serves
    name = "array_api_strict"
    #: NCCL can reduce this library's arrays (CUDA device memory)
    supports_nccl = False
    #: arrays can be written in place through strided views and allocated with any memory
    #: layout (channels-last images, in-place adds into window slices)
    strided_writes = False
    #: ``matmul_into`` can write into a strided (non-contiguous) ``out``
    matmul_into_strided = False
    #: the most spare workspaces kept (one per convolution of a deep network)
    MAX_SPARES = 16
    #: the generator class of :mod:`dnn.backend.random` this library draws from
    generator_class: type = random.NumpyGenerator

    def __init__(self, module: ModuleType, xp: Any) -> None:
        self.module, self.xp = module, xp
        #: spare workspaces, oldest first, at most MAX_SPARES (see :meth:`take_workspace`)
        self._workspaces: list[Any] = []

    @classmethod
    def check_usable(cls, module: ModuleType) -> None:
        """Raise :class:`dnn.BackendError` if the imported library cannot run here."""

    @classmethod
    def namespace(cls, module: ModuleType) -> Any:
        """The library's Array API namespace: array-api-compat's wrapper of it (the base
        serves array-api-strict, which is the standard already)."""
        if cls is ArrayLibrary:
            return module
        import array_api_compat

        return array_api_compat.array_namespace(module.asarray([0.0]))

    # ------------------------------------------------------------ transfer
    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Host data (a NumPy array, Python numbers) or an array as this library's array."""
        if isinstance(x, np.ndarray) and x.ndim == 0:
            x = x.tolist()  # array-api-strict takes no 0-d NumPy array
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        """A host copy of ``x`` (no copy when it is a NumPy array already)."""
        return x if isinstance(x, np.ndarray) else np.asarray(x)

    def is_array(self, x: Any) -> bool:
        # array_api_strict does not export its Array class at the top level
        return type(x).__module__.startswith(self.module.__name__)

    def in_host_memory(self, x: Any) -> bool:
        """Whether reading ``x`` costs no device synchronisation."""
        return True

    def synchronize(self) -> None:
        """Wait for queued device work (nothing to wait for in host memory)."""

    def device_name(self) -> str:
        return "cpu"

    def memory_stats(self) -> dict[str, int]:
        """Bytes in use and peak on the device; empty where memory is the host's."""
        return {}

    # ------------------------------------------------------------ randomness
    def generator(self, seed: int | None) -> Any:
        """A new generator for this library's arrays (fresh entropy when ``seed`` is None)."""
        return self.generator_class(seed)

    # ------------------------------------------------------------ in-place arithmetic
    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        """``out[...] = a @ b`` (without a temporary where the library allows it)."""
        out[...] = a @ b
        return out

    def elementwise_into(self, name: str, *args: Any, out: Any) -> Any:
        """``out[...] = name(*args)`` (e.g. ``"multiply"``, ``"sqrt"``) with no temporary where
        the library allows it: optimizers update flat buffers in place with it. ``args`` are
        arrays or Python scalars; ``out`` may alias one of them."""
        if name not in INTO:
            raise ValueError(f"elementwise_into: unsupported function {name!r}; one of "
                             f"{sorted(INTO)}")
        out[...] = getattr(self.xp, name)(*args)
        return out

    def fused(self, name: str, dtype: Any) -> Any:
        """A fused one-pass kernel for arrays of ``dtype`` (:mod:`dnn.backend.kernels`: an
        optimizer update, max pooling, im2col/col2im, the LSTM cell), or None: the caller
        then takes its portable path (the optimizers update chunk by chunk with
        :meth:`elementwise_into`)."""
        return None

    def scratch_elements(self) -> int:
        """How many elements an in-place update processes at once: on the CPU a chunk whose
        arrays stay in a core's cache (256 KiB of float32 each: five of them fit in L2)."""
        return 1 << 16

    # ------------------------------------------------------------ workspaces
    def take_workspace(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """A spare array of exactly ``shape`` and ``dtype`` to overwrite (e.g. a convolution's
        im2col matrix, held from its forward to its backward), or None when there is none.
        Writing into a kept multi-megabyte array instead of a fresh one saves the page
        faults of a new allocation every step (19 % of the reference CNN's step)."""
        shape = tuple(shape)
        for i, spare in enumerate(self._workspaces):
            if tuple(spare.shape) == shape and spare.dtype == dtype:
                return self._workspaces.pop(i)
        return None

    def give_workspace(self, array: Any) -> None:
        """Keep ``array`` (no longer used by its owner) for the next :meth:`take_workspace`:
        where arrays can be written in place (the portable path makes new arrays anyway, so
        keeping one would only hold memory). At most :attr:`MAX_SPARES` are kept, the most
        recent ones: a model's convolutions each find theirs, while inputs of ever new sizes
        cannot pile spares up."""
        if self.strided_writes:
            self._workspaces.append(array)
            del self._workspaces[:-self.MAX_SPARES]

    def workspace_bytes(self) -> int:
        """Bytes held in spare workspaces."""
        return sum(int(a.nbytes) for a in self._workspaces)

    def release_workspaces(self) -> None:
        """Drop every spare workspace and give the host heap's free memory back to the
        system (``fit``, ``evaluate`` and ``predict`` do at their end: nothing is held at
        rest; :mod:`dnn.backend.host_memory`)."""
        self._workspaces.clear()
        host_memory.return_freed_pages()

    # ------------------------------------------------------------ elementwise functions
    def clip(self, x: Any, low: float, high: float) -> Any:
        """``min(max(x, low), high)`` elementwise for scalar bounds, in ``x``'s dtype."""
        return self.xp.clip(x, low, high)

    def sign(self, x: Any) -> Any:
        """−1, 0 or 1 elementwise."""
        return self.xp.sign(x)

    def erf(self, x: Any) -> Any:
        """The error function elementwise (the standard has none): Cody's rational
        approximation, :func:`dnn.backend.ops.erf_cody`, to float64 round-off."""
        return ops.erf_cody(x)

    # ------------------------------------------------------------ gathers and scatters
    def take_along_last(self, x: Any, labels: Any) -> Any:
        """``x[i, labels[i]]`` for each row i of a 2-D ``x`` (no integer-array indexing in the
        standard: a one-hot product)."""
        return self.xp.sum(x * ops.one_hot(labels, x.shape[1], x.dtype), axis=1)

    def scatter_add_rows(self, num_rows: int, index: Any, values: Any) -> Any:
        """``out[index[i], ...] += values[i, ...]`` into zeros of shape (num_rows, ...):
        repeated indices add up (the gradient of a row gather such as an embedding lookup).
        Portable: ``one_hot(index)ᵀ @ values``, O(M·num_rows·D), meant for tests."""
        xp = self.xp
        shape = (int(num_rows), *tuple(values.shape[1:]))
        width = 1
        for d in shape[1:]:
            width *= int(d)
        flat = xp.reshape(values, (values.shape[0], width))
        summed = ops.one_hot(index, shape[0], values.dtype).T @ flat
        return xp.reshape(summed, shape)

    # ------------------------------------------------------------ sliding windows
    def channels_last(self, shape: tuple[int, ...], dtype: Any, like: Any,
                      fill: float | None) -> Any:
        """An (N, C, H, W) array, uninitialised (``fill`` None) or filled, on ``like``'s
        device; with channels-last memory where the library allows it (portable: NCHW)."""
        if fill is None or fill == 0:
            return self.xp.zeros(shape, dtype=dtype)
        return self.xp.full(shape, fill, dtype=dtype)

    def channels_last_copy(self, x: Any) -> Any:
        """``x`` with its channels adjacent in memory where that speeds up the window
        gather (NumPy); ``x`` itself elsewhere."""
        return x

    def window_view(self, x: Any, shape: tuple[int, int, int, int], kernel: tuple[int, int],
                    stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
        """All windows of a padded (N, C, H, W) image as an (N, C, OH, OW, kh, kw) strided
        view without a copy (``shape`` is (N, C, OH, OW)); None where the library has no
        such views (the caller stacks the slices instead)."""
        return None

    def masked(self, mask: Any, x: Any) -> Any:
        """``x`` where ``mask`` is true, else 0, in ``x``'s dtype."""
        return self.xp.where(mask, x, self.xp.zeros((), dtype=x.dtype))

    def depthwise(self, xpad: Any, weight: Any, stride: tuple[int, int],
                  dilation: tuple[int, int]) -> Any:
        """:func:`dnn.backend.windows.depthwise` (portable: a loop over the kh·kw taps)."""
        return windows.depthwise_by_taps(xpad, weight, stride, dilation)

    def depthwise_weight_grad(self, xpad: Any, grad: Any, kernel: tuple[int, int],
                              stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
        """:func:`dnn.backend.windows.depthwise_weight_grad` (portable: one sum per tap)."""
        return windows.depthwise_weight_grad_by_taps(xpad, grad, kernel, stride, dilation)

    def depthwise_input_grad(self, grad: Any, weight: Any, input_shape: tuple[int, ...],
                             stride: tuple[int, int], padding: tuple[int, ...],
                             dilation: tuple[int, int]) -> Any:
        """:func:`dnn.backend.windows.depthwise_input_grad` (portable: kh·kw folded pieces)."""
        return windows.depthwise_input_grad_by_taps(grad, weight, input_shape, stride, padding,
                                                    dilation)
