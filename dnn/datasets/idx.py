"""Reader for the IDX format that MNIST and Fashion-MNIST are published in.

An IDX file is a big-endian header — a 4-byte magic number, then one 4-byte
size per dimension — followed by the raw values in row-major order. The
unsigned-byte files used here have magic 2051 (0x00000803, 3-D images:
count, rows, columns) and 2049 (0x00000801, 1-D labels: count). Files may be
gzip-compressed (the usual ``*.gz`` distribution form).

The reader never trusts the file: it reads the header first (from the gzip
stream, without decompressing the rest), computes the payload size with
Python integers (no overflow), refuses sizes above ``max_bytes`` before
allocating anything, then reads exactly that many bytes in chunks and checks
that nothing follows. A gzip bomb or a forged header therefore costs at most
``max_bytes`` of memory, never "everything the stream inflates to".
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
#: the largest payload a reader accepts by default (MNIST's training images are 47 MB)
MAX_BYTES = 1 << 30
_CHUNK = 1 << 20


class DatasetError(RuntimeError):
    """A data set file is missing, corrupted, malformed or could not be downloaded."""


def _kind(expected_magic: int) -> tuple[int, str]:
    ndim = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}.get(expected_magic)
    if ndim is None:
        raise ValueError(f"expected_magic must be {IMAGES_MAGIC} (images) or {LABELS_MAGIC} "
                         f"(labels), got {expected_magic!r}")
    return ndim, "images" if ndim == 3 else "labels"


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts, left = [], n
    while left > 0:
        part = f.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_idx_stream(f: BinaryIO, expected_magic: int, source: str = "<stream>", *,
                    shape: Sequence[int | None] | None = None,
                    max_bytes: int = MAX_BYTES) -> np.ndarray:
    """The uint8 array stored in the IDX stream ``f`` (already decompressed, e.g. a GzipFile).

    Checks, in this order and before reading the payload: the magic number,
    a complete header, ``shape`` (``None`` entries match any size) and
    ``prod(dims) <= max_bytes``. Then reads exactly ``prod(dims)`` bytes and
    refuses a stream that is shorter or has anything after them.
    """
    ndim, kind = _kind(expected_magic)
    dims = _read_header(f, ndim, kind, expected_magic, source)
    header = 4 + 4 * ndim
    if shape is not None and (len(shape) != ndim or any(
            want is not None and want != got for want, got in zip(shape, dims))):
        wanted = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise DatasetError(f"{source}: the IDX header says {kind} of shape {dims}; expected {wanted}")
    size = 1
    for d in dims:  # Python ints: (2**31, 2**31, 4) is 2**64, not 0
        size *= d
    if size > max_bytes:
        raise DatasetError(
            f"{source}: the IDX header says {kind} of shape {dims}, i.e. {size:,} bytes, more than "
            f"the {max_bytes:,} bytes this reader accepts (max_bytes=); the header is corrupted "
            "or forged, or pass a larger max_bytes for a genuinely larger file"
        )
    try:
        out = np.empty(size, dtype=np.uint8)  # pages are committed only as they are written
        view, filled = memoryview(out), 0
        while filled < size:
            n = f.readinto(view[filled: filled + _CHUNK])
            if not n:
                break
            filled += n
    except MemoryError as exc:
        raise DatasetError(
            f"{source}: out of memory reading {kind} of shape {dims} ({size:,} bytes) as the IDX "
            "header announces; the header is corrupted or forged, or free some memory"
        ) from exc
    if filled < size:
        raise DatasetError(
            f"{source}: IDX size mismatch: the header says {kind} of shape {dims}, i.e. "
            f"{header + size} bytes, but the data holds only {header + filled} bytes (truncated "
            "or corrupted)"
        )
    if f.read(1):
        raise DatasetError(
            f"{source}: IDX size mismatch: the header says {kind} of shape {dims}, i.e. "
            f"{header + size} bytes, but more data follows (trailing bytes: not the file the "
            "header describes)"
        )
    return out.reshape(dims)


def _read_header(f: BinaryIO, ndim: int, kind: str, expected_magic: int,
                 source: str) -> tuple[int, ...]:
    """The dimensions in the header of IDX stream ``f`` (magic number checked)."""
    head = _read_exactly(f, 4)
    if len(head) < 4:
        raise DatasetError(f"{source}: not an IDX file: only {len(head)} bytes, no header")
    magic = int.from_bytes(head, "big")
    if magic != expected_magic:
        raise DatasetError(
            f"{source}: bad IDX magic number {magic} (0x{magic:08x}); expected {expected_magic} "
            f"(0x{expected_magic:08x}) for unsigned-byte {kind}. Is this the right file?"
        )
    header = 4 + 4 * ndim
    dims_bytes = _read_exactly(f, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DatasetError(f"{source}: IDX header truncated: {4 + len(dims_bytes)} bytes, "
                           f"expected at least {header}")
    return tuple(int.from_bytes(dims_bytes[4 * i: 4 * i + 4], "big") for i in range(ndim))


def parse_idx(data: bytes, expected_magic: int, source: str = "<bytes>", *,
              shape: Sequence[int | None] | None = None, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """The uint8 array stored in IDX ``data``; checks the magic number and the size.

    ``expected_magic`` is 2051 (images, 3-D) or 2049 (labels, 1-D).
    """
    return read_idx_stream(io.BytesIO(data), expected_magic, source, shape=shape, max_bytes=max_bytes)


def read_idx(path: str | os.PathLike, expected_magic: int, *,
             shape: Sequence[int | None] | None = None, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file (gzip-decompressed on the fly if it ends in ``.gz``); see
    :func:`read_idx_stream` for the checks."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
            with stream:
                return read_idx_stream(stream, expected_magic, str(path), shape=shape,
                                       max_bytes=max_bytes)
    except FileNotFoundError:
        raise
    except MemoryError as exc:
        raise DatasetError(f"{path}: out of memory while reading the file (MemoryError: {exc}); "
                           "the file is corrupted or forged, or free some memory") from exc
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot decompress/read the file ({type(exc).__name__}: {exc})") from exc


def read_idx_header(path: str | os.PathLike, expected_magic: int) -> tuple[int, ...]:
    """The dimensions announced by the header of an IDX file, without reading its payload.

    Checks the magic number and that the header is complete; decompresses only
    the first few bytes of a ``.gz`` file."""
    ndim, kind = _kind(expected_magic)
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
            with stream:
                return _read_header(stream, ndim, kind, expected_magic, str(path))
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot decompress/read the file ({type(exc).__name__}: {exc})") from exc


def read_idx_images(path: str | os.PathLike, *, shape: Sequence[int | None] | None = None,
                    max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Images (N, rows, cols) uint8 from an IDX file (gzip if it ends in .gz).

    ``shape=(None, 28, 28)`` refuses other image sizes before reading the pixels."""
    return read_idx(path, IMAGES_MAGIC, shape=shape, max_bytes=max_bytes)


def read_idx_labels(path: str | os.PathLike, *, shape: Sequence[int | None] | None = None,
                    max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Labels (N,) uint8 from an IDX file (gzip if it ends in .gz)."""
    return read_idx(path, LABELS_MAGIC, shape=shape, max_bytes=max_bytes)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a 1-D (labels) or 3-D (images) uint8 array as IDX, gzipped if ``path`` ends in .gz."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(
            f"write_idx: expected a uint8 array with 1 or 3 dims, got {array.dtype} {array.shape}"
        )
    magic = LABELS_MAGIC if array.ndim == 1 else IMAGES_MAGIC
    data = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data += array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
