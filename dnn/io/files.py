"""Where model files go: :func:`check_destination` and :func:`atomic_write`.

Saving behaves like ``open(path, "wb")`` as far as the user can tell, but never
leaves a half-written file behind:

- the destination is checked BEFORE any work (:func:`check_destination`, also
  public, so that a command line or a checkpoint callback can refuse a bad
  ``--save`` path before training): the path is not empty, does not name a
  directory, its directory exists and is writable, its name is not longer than
  the file system allows, and an existing file there is a regular file the
  user may write (a write-protected file is refused with PermissionError, as
  ``open`` would, instead of being silently replaced);
- the data goes to a hidden temporary file in the same directory
  (``.<name>.<12 hex digits>.tmp``, its ``<name>`` shortened when the whole
  would be too long), which is flushed, fsync'ed, given the mode of the file it
  replaces (a ``0600`` file stays ``0600``; a new file gets ``0666`` minus the
  umask, as with ``open``), and renamed over the target with :func:`os.replace`;
  a reader, or a crash, sees the old file or the new one, never half of one;
- a path that is a symbolic link is written through: the link stays and the
  file it points to is replaced (as ``open`` writes through links);
- every OSError names the path (``cannot write <path>: <reason>``), and bytes
  paths work as str paths do.

What is NOT preserved or cleaned up: the replaced file's owner, group, extended
attributes and hard links (the new file belongs to the user who saved, and
another hard link to the old file keeps the old content); a save killed
outright (SIGKILL, power loss) leaves its temporary file behind: the next save
of the same target removes such leftovers once they are more than an hour old
(:data:`STALE_SECONDS`), a target never saved again keeps them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from typing import IO, Any

#: temporary files of a target older than this (seconds) are leftovers of a killed save
STALE_SECONDS = 3600.0
_TMP_SUFFIX_BYTES = len(".") + 12 + len(".tmp")  # after the (possibly shortened) name
_TMP_PREFIX_BYTES = len(".")


def as_path(path: Any) -> str:
    """``path`` (str, bytes or os.PathLike) as a str, as ``open`` would accept it."""
    return os.fsdecode(os.fspath(path))


def _error(cls: type[OSError], code: int, path: str, why: str) -> OSError:
    return cls(code, f"cannot write {path}: {why}")


def named(exc: OSError, path: str) -> OSError:
    """The same OSError (same class and errno) with a message that names ``path``."""
    if (exc.strerror or "").startswith(f"cannot write {path}: "):
        return exc  # already names it
    why = exc.strerror or str(exc) or type(exc).__name__
    try:
        return type(exc)(exc.errno, f"cannot write {path}: {why}") if exc.errno is not None \
            else type(exc)(f"cannot write {path}: {why}")
    except Exception:  # an OSError subclass with another constructor
        return OSError(exc.errno, f"cannot write {path}: {why}")


def _writable(path: str) -> bool:
    effective = os.access in os.supports_effective_ids
    return os.access(path, os.W_OK, effective_ids=effective)


def _resolved(path: str) -> str:
    """The file a write to ``path`` lands in: the target of a symbolic link."""
    return os.path.realpath(path) if os.path.islink(path) else path


def _name_max(directory: str) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):  # Windows, or an exotic file system
        return 255


def check_destination(path: Any) -> str:
    """Raise the OSError ``open(path, "wb")`` would raise, naming the path, unless a
    model file can be saved at ``path``; return the path as a str.

    Checked: the path is not empty and does not name a directory; its directory
    exists, is a directory and is writable; the file name is not longer than the
    file system allows; an existing file there is a regular file the user may
    write. Nothing is created. Use it before long work whose result goes to
    ``path`` (training with ``--save``, a checkpoint callback).
    """
    try:
        path = as_path(path)
    except TypeError:
        raise TypeError(f"cannot write a model file to {path!r}: expected a str, bytes or "
                        f"os.PathLike path, got {type(path).__name__}") from None
    if not path:
        raise FileNotFoundError(errno.ENOENT, "cannot write '': the path is empty")
    try:
        target = _resolved(path)
        name = os.path.basename(target)
        if os.path.isdir(target) or name in ("", ".", ".."):
            raise _error(IsADirectoryError, errno.EISDIR, path, "it is a directory, not a file name")
        directory = os.path.dirname(os.path.abspath(target))
        if not os.path.exists(directory):
            raise _error(FileNotFoundError, errno.ENOENT, path, f"directory {directory} does not exist")
        if not os.path.isdir(directory):
            raise _error(NotADirectoryError, errno.ENOTDIR, path, f"{directory} is not a directory")
        limit = _name_max(directory)
        if len(os.fsencode(name)) > limit:
            raise _error(OSError, errno.ENAMETOOLONG, path, f"the file name is {len(os.fsencode(name))} "
                         f"bytes long, the file system allows at most {limit}")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise _error(PermissionError, errno.EACCES, path,
                         f"no permission to create files in directory {directory}")
        if os.path.lexists(target):
            mode = os.stat(target).st_mode
            if not stat.S_ISREG(mode):
                raise _error(OSError, errno.EINVAL, path, "it exists and is not a regular file")
            if not _writable(target):
                raise _error(PermissionError, errno.EACCES, path,
                             "the file exists and is write-protected (permission denied)")
    except OSError as exc:
        raise named(exc, path) from None
    return path


def _temp_prefix(name: str, directory: str) -> str:
    """``name``, shortened so that ``.<prefix>.<12 hex>.tmp`` fits the file system."""
    raw, room = os.fsencode(name), _name_max(directory) - _TMP_PREFIX_BYTES - _TMP_SUFFIX_BYTES
    return name if len(raw) <= room else os.fsdecode(raw[:max(room, 1)])


def _remove_stale_temporaries(directory: str, prefix: str) -> None:
    """Delete this target's temporary files left by saves killed more than STALE_SECONDS ago."""
    pattern = re.compile(r"\." + re.escape(prefix) + r"\.[0-9a-f]{12}\.tmp\Z")
    cutoff = time.time() - STALE_SECONDS
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if not pattern.match(entry.name):
                continue
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                    os.unlink(entry.path)


def atomic_write(path: Any, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it over ``path``.

    The destination is checked first (:func:`check_destination`). The temporary
    file is flushed and fsync'ed before the rename, takes the mode of the file
    it replaces, and is removed if anything fails (including KeyboardInterrupt);
    the directory is fsync'ed after the rename where the platform allows it.
    Every OSError names ``path``.
    """
    path = check_destination(path)
    target = _resolved(path)
    directory = os.path.dirname(os.path.abspath(target))
    prefix = _temp_prefix(os.path.basename(target), directory)
    _remove_stale_temporaries(directory, prefix)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: 0666 minus the umask, as for a plain open()
    except OSError as exc:
        raise named(exc, path) from None
    tmp = os.path.join(directory, f".{prefix}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:  # name the target, not the temporary file
        raise named(exc, path) from None
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise named(exc, path) from exc
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
