"""The model-file container: a zip of ``.npy`` arrays (NumPy's ``.npz``) plus JSON.

Layout of a ``.dnn`` file (a plain, uncompressed ``.npz``):

- ``__dnn__``: the metadata, UTF-8 JSON stored as a 1-D ``uint8`` array;
- every other member: one numeric array (``state/0.weight``, ``optimizer/3.exp_avg``,
  ``rng/torch``), whose name, shape and dtype are also listed in the metadata.

Writing is atomic: the archive goes to a temporary file in the target's
directory, which is flushed, fsync'ed and then renamed over the target with
:func:`os.replace`, so a reader (or a crash) sees either the old file or the
new one, never half of one. Reading never unpickles: the archive is opened with
``np.load(allow_pickle=False)``, every array's ``.npy`` header is checked (dtype
numeric, shape as announced, byte count consistent with the zip entry and the
file size) before a byte of it is read, and the zip CRC of each member is
verified as it is read. Every problem becomes :class:`dnn.SerializationError`
naming the path and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from dnn.errors import SerializationError

#: name of the metadata member
META = "__dnn__"
#: largest metadata member accepted (bytes)
MAX_META_BYTES = 16 * 2**20
#: array kinds a model file may hold: bool, signed and unsigned integers, floats
NUMERIC_KINDS = "biuf"

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def fail(path: Any, problem: str) -> SerializationError:
    """The error every load problem becomes: the path, then what is wrong."""
    return SerializationError(f"{os.fspath(path)}: {problem}")


# --------------------------------------------------------------------- writing
def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it over ``path``.

    The temporary file is flushed and fsync'ed before the rename and removed if
    anything fails (including KeyboardInterrupt); the directory is fsync'ed after
    the rename where the platform allows it. A process killed outright (SIGKILL)
    may leave a hidden ``.<name>.<random>.tmp`` file behind, never a damaged target.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open()
    except OSError as exc:  # name the target, not the temporary file
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows: directories cannot be opened for fsync
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_archive(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``meta`` (JSON) and ``arrays`` (NumPy, numeric) as one file."""
    try:
        text = json.dumps(meta, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{os.fspath(path)}: cannot store the metadata as JSON: {exc}") from exc
    members: dict[str, np.ndarray] = {META: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    for name, arr in arrays.items():
        if name == META or arr.dtype.kind not in NUMERIC_KINDS:
            raise SerializationError(
                f"{os.fspath(path)}: cannot store array {name!r} of dtype {arr.dtype}; "
                "model files hold numeric arrays only"
            )
        members[name] = np.ascontiguousarray(arr)
    atomic_write(path, lambda f: np.savez(f, allow_pickle=False, **members))


# --------------------------------------------------------------------- reading
class Archive:
    """A model file opened for safe reading: ``.meta`` (dict) and :meth:`array`.

    Use as a context manager. Construction checks that the file exists, is a
    zip archive, and holds a JSON-object metadata member; it raises
    :class:`SerializationError` otherwise.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._npz: Any = None
        try:
            with open(self.path, "rb") as f:
                head = f.read(4)
                f.seek(0, os.SEEK_END)
                self.size = f.tell()
        except FileNotFoundError:
            raise fail(self.path, "no such file") from None
        except IsADirectoryError:
            raise fail(self.path, "is a directory, not a model file") from None
        except OSError as exc:
            raise fail(self.path, f"cannot be read ({exc.strerror or exc})") from exc
        if self.size == 0:
            raise fail(self.path, "the file is empty (0 bytes)")
        if head not in _ZIP_MAGIC:
            raise fail(self.path, f"not a dnn model file: it starts with bytes {head!r}, a model "
                                  "file is a zip archive (starts with b'PK\\x03\\x04')")
        try:
            self._npz = np.load(self.path, allow_pickle=False)
        except Exception as exc:  # BadZipFile, OSError, EOFError, ...
            raise fail(self.path, "truncated or corrupted: the zip archive cannot be opened "
                                  f"({type(exc).__name__}: {exc})") from exc
        try:
            if not isinstance(self._npz, np.lib.npyio.NpzFile):
                raise fail(self.path, "not a zip archive of arrays")
            self._members = {info.filename: info for info in self._npz.zip.infolist()}
            self.names = {n[:-4] for n in self._members if n.endswith(".npy")} - {META}
            if META not in self._npz.files:
                raise fail(self.path, f"not a dnn model file: the archive has no {META!r} metadata "
                                      "member (a plain .npz file?)")
            self.meta = self._read_meta()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._npz is not None:
            with contextlib.suppress(Exception):
                self._npz.close()
            self._npz = None

    def _read_meta(self) -> dict[str, Any]:
        raw = self.array(META, max_bytes=MAX_META_BYTES)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise fail(self.path, f"metadata member {META!r} must be a 1-D uint8 array, "
                                  f"got dtype {raw.dtype} and shape {raw.shape}")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_no_constants)
        except UnicodeDecodeError as exc:
            raise fail(self.path, f"metadata is not UTF-8 text ({exc})") from exc
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise fail(self.path, f"metadata is not valid JSON ({type(exc).__name__}: {exc})") from exc
        if not isinstance(meta, dict):
            raise fail(self.path, f"metadata must be a JSON object, got a JSON {_json_kind(meta)}")
        return meta

    def array(self, name: str, shape: tuple[int, ...] | None = None, dtype: Any = None,
              max_bytes: int | None = None, label: str | None = None) -> np.ndarray:
        """Read array ``name`` after checking its header (and ``shape``/``dtype`` if given).

        Raises SerializationError if it is missing, not numeric (e.g. a pickled
        object array), of another shape or dtype, or truncated/corrupted.
        """
        what = f"array {name!r}" + (f" ({label})" if label else "")
        member = name + ".npy"
        info = self._members.get(member)
        if info is None:
            raise fail(self.path, f"{what} is missing from the file")
        try:
            with self._npz.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    got_shape, _fortran, got_dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    got_shape, _fortran, got_dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                header_bytes = f.tell()
        except SerializationError:
            raise
        except Exception as exc:
            raise fail(self.path, f"{what} is corrupted: its .npy header cannot be read "
                                  f"({type(exc).__name__}: {exc})") from exc
        if got_dtype.hasobject or got_dtype.fields is not None or got_dtype.kind not in NUMERIC_KINDS:
            why = "a pickled Python object" if got_dtype.hasobject else "not a plain number type"
            raise fail(self.path, f"{what} has dtype {got_dtype} ({why}); model files "
                                  "hold numeric arrays only and are never unpickled")
        nbytes = math.prod(got_shape) * got_dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise fail(self.path, f"{what} is {nbytes} bytes, more than the {max_bytes} allowed")
        stored = header_bytes + nbytes
        if (info.compress_type != zipfile.ZIP_STORED or info.file_size != stored
                or info.compress_size != stored or info.header_offset + stored > self.size):
            raise fail(self.path, f"{what} is truncated or corrupted: its header announces "
                                  f"shape {tuple(got_shape)} and dtype {got_dtype} ({stored} bytes "
                                  f"with the header), the zip entry holds {info.file_size} bytes")
        if shape is not None and tuple(got_shape) != tuple(shape):
            raise fail(self.path, f"{what} has shape {tuple(got_shape)}, expected {tuple(shape)}")
        if dtype is not None and got_dtype.newbyteorder("=") != np.dtype(dtype):
            raise fail(self.path, f"{what} has dtype {got_dtype}, expected {np.dtype(dtype)}")
        try:
            arr = self._npz[name]
        except Exception as exc:  # BadZipFile (CRC), EOFError, ValueError, ...
            raise fail(self.path, f"{what} is truncated or corrupted "
                                  f"({type(exc).__name__}: {exc})") from exc
        if tuple(arr.shape) != tuple(got_shape) or arr.dtype != got_dtype:
            raise fail(self.path, f"{what} changed while being read")
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
