"""Reader for the IDX format that MNIST and Fashion-MNIST are published in.

An IDX file is a big-endian header — a 4-byte magic number, then one 4-byte
size per dimension — followed by the raw values in row-major order. The
unsigned-byte files used here have magic 2051 (0x00000803, 3-D images:
count, rows, columns) and 2049 (0x00000801, 1-D labels: count). Files may be
gzip-compressed (the usual ``*.gz`` distribution form).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


class DatasetError(RuntimeError):
    """A data set file is missing, corrupted, malformed or could not be downloaded."""


def _read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot decompress/read the file ({type(exc).__name__}: {exc})") from exc


def parse_idx(data: bytes, expected_magic: int, source: str = "<bytes>") -> np.ndarray:
    """The uint8 array stored in IDX ``data``; checks the magic number and the size.

    ``expected_magic`` is 2051 (images, 3-D) or 2049 (labels, 1-D).
    """
    ndim = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}.get(expected_magic)
    if ndim is None:
        raise ValueError(f"parse_idx: expected_magic must be {IMAGES_MAGIC} or {LABELS_MAGIC}, "
                         f"got {expected_magic!r}")
    kind = "images" if ndim == 3 else "labels"
    if len(data) < 4:
        raise DatasetError(f"{source}: not an IDX file: only {len(data)} bytes, no header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DatasetError(
            f"{source}: bad IDX magic number {magic} (0x{magic:08x}); expected {expected_magic} "
            f"(0x{expected_magic:08x}) for unsigned-byte {kind}. Is this the right file?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{source}: IDX header truncated: {len(data)} bytes, expected at least {header}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise DatasetError(
            f"{source}: IDX size mismatch: the header says {kind} of shape {shape}, i.e. "
            f"{expected} bytes, but the file holds {len(data)} bytes (truncated or corrupted)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Images (N, rows, cols) uint8 from an IDX file (gzip if it ends in .gz)."""
    return parse_idx(_read_bytes(path), IMAGES_MAGIC, str(path))


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Labels (N,) uint8 from an IDX file (gzip if it ends in .gz)."""
    return parse_idx(_read_bytes(path), LABELS_MAGIC, str(path))


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
