"""The model-file container: a zip of ``.npy`` arrays (NumPy's ``.npz``) plus JSON.

Layout of a ``.dnn`` file (a plain, uncompressed ``.npz``):

- ``__dnn__.npy``: the metadata, UTF-8 JSON stored as a 1-D ``uint8`` array;
- every other member: one numeric array ``<name>.npy`` (``state/0.weight.npy``,
  ``optimizer/3.exp_avg.npy``, ``rng/torch.npy``), whose name, shape and dtype
  are also implied by the metadata.

Writing is atomic (:func:`dnn.io.files.atomic_write`): the archive goes to a
temporary file in the target's directory, which is flushed, fsync'ed and then
renamed over the target, so a reader (or a crash) sees either the old file or
the new one, never half of one.

Reading never unpickles and reads exactly what it checked. The zip directory
is checked first: every member is named ``<name>.npy`` (a member under any
other name, e.g. a suffix-less ``state/0.weight`` that ``np.load(...)[name]``
would prefer, is refused), no name occurs twice, and no member overlaps
another. Each array's ``.npy`` header is then checked (dtype numeric, shape as
announced, byte count consistent with the zip entry and the file size) and its
data is read from the same open member right after its header, chunk by chunk,
with the zip CRC verified at the end. Every problem becomes
:class:`dnn.SerializationError` naming the path and what is wrong.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import zipfile
from typing import IO, Any, NamedTuple

import numpy as np

from dnn.errors import SerializationError
from dnn.io.files import as_path, atomic_write

#: name of the metadata member
META = "__dnn__"
#: largest metadata member accepted (bytes)
MAX_META_BYTES = 16 * 2**20
#: array kinds a model file may hold: bool, signed and unsigned integers, floats
NUMERIC_KINDS = "biuf"

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_SUFFIX = ".npy"
_LOCAL_HEADER_BYTES = 30  # fixed part of a zip local file header
_CHUNK = 1 << 20  # bytes read at a time
_MAX_HEADER_BYTES = 10_000  # NumPy's own limit on a .npy header


def fail(path: Any, problem: str) -> SerializationError:
    """The error every load problem becomes: the path, then what is wrong."""
    return SerializationError(f"{as_path(path)}: {problem}")


# --------------------------------------------------------------------- writing
def write_archive(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``meta`` (JSON) and ``arrays`` (NumPy, numeric) as one file."""
    try:
        text = json.dumps(meta, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise fail(path, f"cannot store the metadata as JSON: {exc}") from exc
    members: dict[str, np.ndarray] = {META: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    for name, arr in arrays.items():
        if name == META or arr.dtype.kind not in NUMERIC_KINDS:
            raise fail(path, f"cannot store array {name!r} of dtype {arr.dtype}; "
                             "model files hold numeric arrays only")
        members[name] = np.ascontiguousarray(arr)
    atomic_write(path, lambda f: np.savez(f, allow_pickle=False, **members))


# --------------------------------------------------------------------- reading
class Header(NamedTuple):
    """What an array member's ``.npy`` header announces."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int  # bytes of magic + header before the data
    nbytes: int  # bytes of data
    raw: bytes  # the magic and header as stored


class Archive:
    """A model file opened for safe reading: ``.meta`` (dict), ``.names`` (the array
    names), :meth:`header` and :meth:`array`.

    Use as a context manager. Construction checks that the file exists, is a
    zip archive whose members are all distinct, non-overlapping ``<name>.npy``
    entries, and holds a JSON-object metadata member; it raises
    :class:`SerializationError` otherwise.
    """

    def __init__(self, path: Any) -> None:
        self.path = as_path(path)
        self._file: IO[bytes] | None = None
        self._zip: zipfile.ZipFile | None = None
        self._headers: dict[str, Header] = {}
        try:
            self._file = open(self.path, "rb")
        except FileNotFoundError:
            raise fail(self.path, "no such file") from None
        except IsADirectoryError:
            raise fail(self.path, "is a directory, not a model file") from None
        except OSError as exc:
            raise fail(self.path, f"cannot be read ({exc.strerror or exc})") from exc
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        f = self._file
        assert f is not None
        try:
            self.size = os.fstat(f.fileno()).st_size
            head = f.read(4)
            f.seek(0)
        except OSError as exc:
            raise fail(self.path, f"cannot be read ({exc.strerror or exc})") from exc
        if self.size == 0:
            raise fail(self.path, "the file is empty (0 bytes)")
        if head not in _ZIP_MAGIC:
            raise fail(self.path, f"not a dnn model file: it starts with bytes {head!r}, a model "
                                  "file is a zip archive (starts with b'PK\\x03\\x04')")
        try:
            self._zip = zipfile.ZipFile(f)
        except Exception as exc:  # BadZipFile, OSError, EOFError, ...
            raise fail(self.path, "truncated or corrupted: the zip archive cannot be opened "
                                  f"({type(exc).__name__}: {exc})") from exc
        self._members = self._index(self._zip.infolist())
        self.names = set(self._members) - {META}
        if META not in self._members:
            raise fail(self.path, f"not a dnn model file: the archive has no {META!r} metadata "
                                  "member (a plain .npz file?)")
        self.meta = self._read_meta()

    def _index(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        """Array name -> zip entry, refusing any member that is not a distinct,
        non-overlapping ``<name>.npy`` (what is checked is what is read)."""
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if info.orig_filename != name or not name.endswith(_SUFFIX) or name == _SUFFIX:
                raise fail(self.path, f"the archive holds a member named {info.orig_filename!r}; "
                                      f"every member of a model file is an array '<name>{_SUFFIX}'")
            if name[:-len(_SUFFIX)] in members:
                raise fail(self.path, f"the archive holds two members named {name!r} "
                                      "(a crafted or damaged zip)")
            members[name[:-len(_SUFFIX)]] = info
        end = getattr(self._zip, "start_dir", self.size)  # where the central directory starts
        ordered = sorted(infos, key=lambda i: i.header_offset)
        for info, after in zip(ordered, [*ordered[1:], None]):
            stop = (info.header_offset + _LOCAL_HEADER_BYTES + len(info.orig_filename)
                    + info.compress_size)
            if stop > (end if after is None else after.header_offset):
                raise fail(self.path, f"member {info.filename!r} overlaps "
                                      f"{'the zip directory' if after is None else repr(after.filename)} "
                                      "(a crafted or damaged zip)")
        return members

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for handle in (self._zip, self._file):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._zip = self._file = None

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

    def header(self, name: str, label: str | None = None) -> Header:
        """The checked ``.npy`` header of array ``name`` (read once, then remembered).

        Raises SerializationError if the array is missing, not numeric (e.g. a
        pickled object array) or its size disagrees with its zip entry.
        """
        if name not in self._headers:
            info = self._info(name, label)
            with self._open_member(info, name, label) as f:
                self._read_header(f, info, name, label)
        return self._headers[name]

    def array(self, name: str, shape: tuple[int, ...] | None = None, dtype: Any = None,
              max_bytes: int | None = None, label: str | None = None) -> np.ndarray:
        """Read array ``name`` after checking its header (and ``shape``/``dtype`` if given).

        The data comes from the very zip member whose header was checked.
        Raises SerializationError if it is missing, not numeric, of another
        shape or dtype, larger than ``max_bytes``, or truncated/corrupted.
        """
        what = _what(name, label)
        info = self._info(name, label)
        with self._open_member(info, name, label) as f:
            h = self._read_header(f, info, name, label)
            if max_bytes is not None and h.nbytes > max_bytes:
                raise fail(self.path, f"{what} is {h.nbytes} bytes, more than the {max_bytes} allowed")
            if shape is not None and h.shape != tuple(shape):
                raise fail(self.path, f"{what} has shape {h.shape}, expected {tuple(shape)}")
            if dtype is not None and h.dtype.newbyteorder("=") != np.dtype(dtype):
                raise fail(self.path, f"{what} has dtype {h.dtype}, expected {np.dtype(dtype)}")
            try:
                arr = self._read_data(f, h)
            except SerializationError:
                raise
            except Exception as exc:  # BadZipFile (CRC), EOFError, OSError, ...
                raise fail(self.path, f"{what} is truncated or corrupted "
                                      f"({type(exc).__name__}: {exc})") from exc
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr

    def _info(self, name: str, label: str | None) -> zipfile.ZipInfo:
        info = self._members.get(name)
        if info is None:
            raise fail(self.path, f"{_what(name, label)} is missing from the file")
        return info

    @contextlib.contextmanager
    def _open_member(self, info: zipfile.ZipInfo, name: str, label: str | None) -> Any:
        assert self._zip is not None, "the archive is closed"
        try:
            f = self._zip.open(info)
        except Exception as exc:  # BadZipFile (bad local header), OSError, ...
            raise fail(self.path, f"{_what(name, label)} is truncated or corrupted "
                                  f"({type(exc).__name__}: {exc})") from exc
        with f:
            yield f

    def _read_header(self, f: IO[bytes], info: zipfile.ZipInfo, name: str,
                     label: str | None) -> Header:
        """Parse the ``.npy`` header at the start of member ``f`` (once per member: a
        header read before must come back byte for byte) and check it against the zip entry."""
        what = _what(name, label)
        known = self._headers.get(name)
        try:
            if known is not None:
                if f.read(known.offset) != known.raw:
                    raise ValueError("the header changed while the file was being read")
                return known
            magic = f.read(8)
            version = np.lib.format.read_magic(io.BytesIO(magic))
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy format version {version}")
            length = f.read(2 if version == (1, 0) else 4)
            text = f.read(min(int.from_bytes(length, "little"), _MAX_HEADER_BYTES + 1))
            parse = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = parse(io.BytesIO(length + text))
        except Exception as exc:
            raise fail(self.path, f"{what} is corrupted: its .npy header cannot be read "
                                  f"({type(exc).__name__}: {exc})") from exc
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in NUMERIC_KINDS:
            why = "a pickled Python object" if dtype.hasobject else "not a plain number type"
            raise fail(self.path, f"{what} has dtype {dtype} ({why}); model files "
                                  "hold numeric arrays only and are never unpickled")
        raw = magic + length + text
        nbytes = math.prod(shape) * dtype.itemsize
        stored = len(raw) + nbytes
        if (info.compress_type != zipfile.ZIP_STORED or info.file_size != stored
                or info.compress_size != stored or info.header_offset + stored > self.size):
            raise fail(self.path, f"{what} is truncated or corrupted: its header announces "
                                  f"shape {tuple(shape)} and dtype {dtype} ({stored} bytes "
                                  f"with the header), the zip entry holds {info.file_size} bytes")
        header = Header(tuple(shape), bool(fortran), dtype, len(raw), nbytes, raw)
        self._headers[name] = header
        return header

    def _read_data(self, f: IO[bytes], h: Header) -> np.ndarray:
        """The data right after the header ``f`` was positioned past, chunk by chunk (the
        zip CRC is checked when the last chunk is read)."""
        flat = np.empty(math.prod(h.shape), dtype=h.dtype)
        buf = flat.view(np.uint8)
        pos = 0
        while pos < h.nbytes:
            chunk = f.read(min(_CHUNK, h.nbytes - pos))
            if not chunk:
                raise EOFError(f"{h.nbytes - pos} bytes of data are missing")
            buf[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            pos += len(chunk)
        if f.read(1):
            raise ValueError("the member holds more data than its header announces")
        if h.fortran:
            return np.ascontiguousarray(flat.reshape(h.shape[::-1]).T)
        return flat.reshape(h.shape)


def _what(name: str, label: str | None) -> str:
    return f"array {name!r}" + (f" ({label})" if label else "")


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
