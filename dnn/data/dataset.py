"""Datasets: where samples come from before a :class:`~dnn.data.DataLoader` batches them.

- **Map-style**: any object with ``__len__`` and ``__getitem__(i)`` returning one
  sample — a tuple ``(x, y)`` or ``(x, y, sample_weight)``, where ``x`` (and
  ``y``) may be an array, or a list/dict of arrays for a model with several
  inputs (outputs). :class:`ArrayDataset` is the one over arrays; it also
  answers a whole batch of indices at once (``gather``), which is what makes
  it fast: one fancy-index per array instead of one ``__getitem__`` per row.
  NumPy ``memmap`` arrays work unchanged, and only the rows of a batch are
  read from disk.
- **Iterable**: any other iterable (a generator, a file reader) yielding
  samples — or, with ``DataLoader(batch_size=None)``, whole batches.

A batch is the samples stacked along a new first axis (:func:`collate`),
keeping the structure of one sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj

from dnn.training import is_int


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or is_array_api_obj(value)


def _leaves(structure: Any) -> list[Any]:
    if isinstance(structure, dict):
        return [leaf for v in structure.values() for leaf in _leaves(v)]
    if isinstance(structure, (list, tuple)):
        return [leaf for v in structure for leaf in _leaves(v)]
    return [structure]


def map_structure(fn: Any, structure: Any) -> Any:
    """``fn`` applied to every array of a (nested) tuple/list/dict, keeping the structure."""
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, v) for v in structure)
    return fn(structure)


class ArrayDataset:
    """A map-style dataset over arrays with the same first axis: ``ArrayDataset(x, y)``,
    ``ArrayDataset(x, y, sample_weight)`` (or ``ArrayDataset(x)`` for prediction).

    Each argument is an array (NumPy, ``np.memmap``, or a backend array) or a list/dict
    of them (several model inputs/outputs). ``dataset[i]`` is one sample as a tuple;
    ``dataset.gather(indices)`` a whole batch, one fancy-index per array.
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("ArrayDataset: pass at least one array, e.g. ArrayDataset(x, y)")
        lengths = set()
        for i, part in enumerate(arrays):
            for leaf in _leaves(part):
                if not _is_array(leaf) or not getattr(leaf, "ndim", 0):
                    raise TypeError(
                        f"ArrayDataset: argument {i} must be an array with a sample axis (or a "
                        f"list/dict of them), got {type(leaf).__name__}"
                        + (f" of shape {tuple(leaf.shape)}" if hasattr(leaf, "shape") else ""))
                lengths.add(int(leaf.shape[0]))
        if len(lengths) != 1:
            raise ValueError(f"ArrayDataset: every array needs the same number of samples (first "
                             f"axis), got {sorted(lengths)}")
        self.arrays = arrays
        self._length = lengths.pop()

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int | slice) -> tuple[Any, ...]:
        if isinstance(index, slice):  # a batch of consecutive samples
            return self.gather(index)
        if not is_int(index):
            raise TypeError(f"ArrayDataset: index must be an int or a slice, got "
                            f"{type(index).__name__}")
        if not -self._length <= index < self._length:
            raise IndexError(f"ArrayDataset: index {index} out of range for {self._length} "
                             "samples")
        return tuple(map_structure(lambda a: a[index, ...], part) for part in self.arrays)

    def gather(self, indices: Any) -> tuple[Any, ...]:
        """The batch of the samples at ``indices`` (a 1-D integer array in the arrays'
        namespace, or a slice), each array indexed once."""
        if isinstance(indices, slice):
            return tuple(map_structure(lambda a: a[indices, ...], part) for part in self.arrays)
        return tuple(map_structure(lambda a: _take(a, indices), part) for part in self.arrays)

    def __repr__(self) -> str:
        shapes = map_structure(lambda a: tuple(a.shape), list(self.arrays))
        return f"ArrayDataset({', '.join(map(str, shapes))})"


def _take(array: Any, indices: Any) -> Any:
    if isinstance(array, np.ndarray):  # memmap included: reads only these rows
        from dnn import backend

        return array[indices if isinstance(indices, np.ndarray) else backend.to_numpy(indices)]
    xp = array_namespace(array)
    return xp.take(array, xp.asarray(indices, device=getattr(array, "device", None)), axis=0)


def is_map_style(dataset: Any) -> bool:
    """Indexable with a known length (arrays and lists of samples included)."""
    return hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__") and not isinstance(
        dataset, (str, bytes, dict))


def collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples of the same structure into one batch (on the host)."""
    first = samples[0]
    if isinstance(first, dict):
        return {k: collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(collate([s[i] for s in samples]) for i in range(len(first)))
    try:
        if _is_array(first) and not isinstance(first, np.ndarray):
            return array_namespace(first).stack(list(samples))
        return np.stack([np.asarray(s) for s in samples])
    except (ValueError, TypeError, RuntimeError) as exc:
        shapes = sorted({tuple(getattr(s, "shape", np.shape(s))) for s in samples})
        raise ValueError(f"collate: the samples of a batch cannot be stacked (their shapes: "
                         f"{shapes[:4]}{' ...' if len(shapes) > 4 else ''}); every sample must "
                         f"have the same structure and shapes ({exc})") from exc
