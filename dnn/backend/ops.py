"""Array operations the Array API standard lacks, one small function each.

Each has a fast path for the namespaces that offer one (NumPy, CuPy, PyTorch)
and a portable path written in the standard, which array-api-strict runs.
"""

from __future__ import annotations

from typing import Any

from dnn import backend


def matmul_into(a: Any, b: Any, out: Any) -> Any:
    """``out[...] = a @ b`` without a temporary where the backend allows it."""
    if backend.name in ("numpy", "cupy", "torch"):
        return backend.module.matmul(a, b, out=out)
    out[...] = a @ b
    return out


#: elementwise functions :func:`elementwise_into` accepts (the same name in numpy, cupy, torch
#: and the Array API standard)
_INTO = frozenset({"add", "subtract", "multiply", "divide", "sqrt", "maximum", "minimum", "abs"})


def elementwise_into(name: str, *args: Any, out: Any) -> Any:
    """``out[...] = name(*args)`` (e.g. ``"multiply"``, ``"sqrt"``) with no temporary array
    where the backend allows it: optimizers use it to update flat buffers in place.

    ``args`` are arrays or Python scalars; ``out`` may alias one of them.
    """
    if name not in _INTO:
        raise ValueError(f"elementwise_into: unsupported function {name!r}; one of {sorted(_INTO)}")
    if backend.name in ("numpy", "cupy", "torch"):
        return getattr(backend.module, name)(*args, out=out)
    out[...] = getattr(backend.xp, name)(*args)
    return out


def scratch_elements() -> int:
    """How many elements an in-place update should process at once: on the CPU a
    chunk of the flat buffer that stays in cache (and a small scratch array);
    on a GPU the whole buffer (fewer kernel launches)."""
    if backend.name == "cupy" or (backend.name == "torch" and backend.module.cuda.is_available()):
        return 1 << 62
    return 1 << 20


def class_indices(labels: Any) -> Any:
    """Integer labels as int64 (int32 and int64 pass unchanged): comparisons with class
    numbers must not happen in the labels' own dtype, where a uint8 label set with more
    than 256 classes (or int8 with more than 128) would wrap around."""
    xp = backend.xp
    if labels.dtype in (xp.int32, xp.int64):
        return labels
    if not xp.isdtype(labels.dtype, ("integral", "bool")):
        raise TypeError(f"class labels must be integers, got dtype {labels.dtype}")
    return xp.astype(labels, xp.int64)


def one_hot(labels: Any, num_classes: int, dtype: Any = None) -> Any:
    """(N,) integer labels -> (N, num_classes) rows of 0/1 in ``dtype``.

    The comparison runs in int64 (int32 where the labels are int32 and the classes fit),
    never in a narrow label dtype: ``arange(300, dtype=uint8)`` would wrap, so that class 3
    would also mark column 259.
    """
    xp = backend.xp
    labels = class_indices(labels)
    if labels.dtype == xp.int32 and num_classes > 2**31 - 1:
        labels = xp.astype(labels, xp.int64)
    classes = xp.arange(num_classes, dtype=labels.dtype)
    return xp.astype(labels[:, None] == classes, dtype or backend.default_dtype())


def take_along_last(x: Any, labels: Any) -> Any:
    """``x[i, labels[i]]`` for each row i of a 2-D ``x`` (no integer-array indexing)."""
    xp = backend.xp
    if backend.name in ("numpy", "cupy"):
        return backend.module.take_along_axis(x, labels[:, None], axis=1)[:, 0]
    return xp.sum(x * one_hot(labels, x.shape[1], x.dtype), axis=1)


def scatter_add_rows(num_rows: int, index: Any, values: Any) -> Any:
    """``out[index[i], :] += values[i, :]`` into a zero ``(num_rows, D)`` array.

    ``index`` is (M,) integers in [0, num_rows), ``values`` is (M, D); repeated
    indices add up (the gradient of a row gather such as an embedding lookup).
    NumPy sorts the indices, copies each id's first row and adds the repeats with
    one ``np.add.at`` on flat cells (3-15x faster than ``np.add.at`` on rows or
    ``np.add.reduceat``, which are slow along axis 0), CuPy uses
    ``cupyx.scatter_add`` (atomic adds on the device), PyTorch ``index_add_``; the
    portable path is ``one_hot(index)ᵀ @ values``, which costs O(M·num_rows·D) and
    is meant for array-api-strict tests.
    """
    num_rows = int(num_rows)
    shape = (num_rows, *tuple(values.shape[1:]))
    mod = backend.module
    if backend.name == "numpy":
        out = mod.zeros(shape, dtype=values.dtype)
        if index.shape[0] == 0:
            return out
        rows, table = values.reshape(index.shape[0], -1), out.reshape(num_rows, -1)
        order = mod.argsort(index, kind="stable")
        ordered, rows = index[order], rows[order]
        first = mod.empty(ordered.shape, dtype=bool)
        first[0] = True
        mod.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        table[ordered[first]] = rows[first]  # the first occurrence of each id: a plain copy
        if not first.all():  # repeats: one np.add.at on flat cells (its fast 1-D path)
            width = rows.shape[1]
            cells = ordered[~first][:, None] * width + mod.arange(width)
            mod.add.at(table.reshape(-1), cells.reshape(-1), rows[~first].reshape(-1))
        return out
    if backend.name == "cupy":
        import cupyx

        out = mod.zeros(shape, dtype=values.dtype)
        cupyx.scatter_add(out, index, values)
        return out
    if backend.name == "torch":
        out = mod.zeros(shape, dtype=values.dtype, device=values.device)
        return out.index_add_(0, index, values)
    width = 1
    for d in shape[1:]:
        width *= int(d)
    flat = backend.xp.reshape(values, (values.shape[0], width))
    summed = one_hot(index, num_rows, values.dtype).T @ flat
    return backend.xp.reshape(summed, shape)
