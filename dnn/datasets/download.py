"""Fetching data set files: checksum-verified, atomic, with a progress bar.

:func:`fetch` returns the local path of a file, downloading it from the first
mirror that serves it when it is missing. Every file is checked against a
known SHA-256 digest, both after a download and when found on disk, so a
truncated or tampered file is never used. A download goes to a temporary
file in the destination folder and is moved into place with ``os.replace``
only once its digest matches, so an interrupted download leaves nothing
behind under the final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from dnn.datasets.idx import DatasetError

CHUNK = 1 << 20
DEFAULT_HOME = Path("~/.cache/dnn")


def data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Where data sets live: the argument, else ``$DNN_DATA_HOME``, else ``~/.cache/dnn``."""
    chosen = data_home if data_home is not None else os.environ.get("DNN_DATA_HOME") or DEFAULT_HOME
    return Path(chosen).expanduser().absolute()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, sha256: str) -> None:
    """Raise :class:`DatasetError` unless ``path`` has the SHA-256 digest ``sha256``."""
    actual = sha256_file(path)
    if actual != sha256:
        raise DatasetError(
            f"{path}: SHA-256 checksum mismatch (expected {sha256}, got {actual}); the file is "
            "corrupted, truncated or not the official one. Delete it to download it again, "
            "or replace it with the official file."
        )


def download(url: str, dest: Path, sha256: str, progress: bool = True, timeout: float = 60.0,
             size: int | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its SHA-256 digest.

    ``size`` (bytes), when known, bounds the download: a server that announces
    or sends more is cut off at once instead of filling the disk until the
    digest can be compared. Raises :class:`DatasetError` on a digest or size
    mismatch (nothing is written under ``dest``); network errors
    (``urllib.error.URLError``, ``OSError``) propagate to the caller.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            if size is not None and total is not None and total != size:
                raise DatasetError(f"{url}: the server announces {total:,} bytes, but the official "
                                   f"file has {size:,}; not downloaded")
            bar = _bar(total, dest.name, progress)
            received = 0
            try:
                while chunk := response.read(CHUNK):
                    received += len(chunk)
                    if size is not None and received > size:
                        raise DatasetError(f"{url}: the server sent more than the {size:,} bytes of "
                                           "the official file; download stopped, nothing saved")
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise DatasetError(
                f"{url}: SHA-256 checksum mismatch of the downloaded file (expected {sha256}, "
                f"got {actual}); it was not saved"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch(
    directory: Path,
    filename: str,
    sha256: str,
    mirrors: Sequence[str],
    all_files: Sequence[str] = (),
    download_missing: bool = True,
    progress: bool = True,
    check: bool = True,
    size: int | None = None,
) -> Path:
    """Path of ``directory/filename``: verified if present, else downloaded from ``mirrors``.

    ``mirrors`` are base URLs tried in order (``filename`` is appended). When
    no mirror delivers the file, the :class:`DatasetError` lists what each
    mirror answered and says where to put the files (``all_files``) by hand.
    ``size``, the file's size in bytes when known, bounds each download.
    """
    path = directory / filename
    if path.is_file():
        if check:
            verify(path, sha256)
        return path
    names = ", ".join(all_files or [filename])
    manual = (f"To install it by hand, put the files {names} into {directory}/ "
              "(or point DNN_DATA_HOME or data_home= at a folder that holds them).")
    if not download_missing:
        raise DatasetError(f"{path} not found and downloading is disabled. {manual}")
    failures = []
    offline = False
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            return download(url, path, sha256, progress=progress, size=size)
        except DatasetError as exc:
            failures.append(str(exc))
        except urllib.error.HTTPError as exc:  # the server answered, but not with the file
            failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError, ValueError) as exc:  # offline, refused, timeout
            offline = True
            failures.append(f"{url}: {type(exc).__name__}: {getattr(exc, 'reason', None) or exc}")
    tried = "\n  ".join(failures) or "(no mirrors given)"
    hint = " (are you offline?)" if offline else ""
    raise DatasetError(f"could not download {filename}{hint}. Tried:\n  {tried}\n{manual}")


class _NoBar:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _bar(total: int | None, desc: str, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"downloading {desc}", unit="B", unit_scale=True, unit_divisor=1024,
                leave=False)
