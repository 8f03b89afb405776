"""Data sets: NNFS generators, IDX parsing, checksums and the download path.

The download tests run a real HTTP server on 127.0.0.1 (``http.server`` in a
thread) that serves files from a temporary folder — no mocks, no internet.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dnn import datasets
from dnn.datasets import DatasetError, load_fashion_mnist, load_mnist
from dnn.datasets import mnist as mnist_module
from dnn.datasets.download import download, fetch, sha256_file
from dnn.datasets.idx import parse_idx, read_idx_images, read_idx_labels, write_idx

LABEL_FILE = "train-labels-idx1-ubyte.gz"


# --------------------------------------------------------------------------- synthetic
def test_spiral_data_shapes_dtypes_and_reproducibility():
    x, y = datasets.spiral_data(100, 3, seed=0)
    assert x.shape == (300, 2) and x.dtype == np.float32
    assert y.shape == (300,) and y.dtype == np.int64
    assert np.array_equal(np.bincount(y), [100, 100, 100])
    x2, _ = datasets.spiral_data(100, 3, seed=0)
    x3, _ = datasets.spiral_data(100, 3, seed=1)
    assert np.array_equal(x, x2)
    assert not np.array_equal(x, x3)


def test_spiral_data_geometry():
    x, _ = datasets.spiral_data(50, 2, noise=0.0, seed=0)
    radius = np.hypot(x[:, 0], x[:, 1])
    # radius runs linearly from 0 to 1 along each arm, independent of the noise
    assert np.allclose(radius[:50], np.linspace(0, 1, 50), atol=1e-6)
    assert np.allclose(radius[50:], np.linspace(0, 1, 50), atol=1e-6)
    # without noise, class 1 at parameter t is class 0 at t + 4: angle offset 2.5 * 4 = 10 rad
    angle0 = np.arctan2(x[1:50, 0], x[1:50, 1])
    angle1 = np.arctan2(x[51:, 0], x[51:, 1])
    assert np.allclose(np.cos(angle1 - angle0), np.cos(10.0), atol=1e-4)
    x_noisy, _ = datasets.spiral_data(50, 2, noise=0.2, seed=0)
    assert not np.allclose(x, x_noisy)


def test_vertical_and_sine_data():
    x, y = datasets.vertical_data(200, 3, seed=0)
    assert x.shape == (600, 2) and x.dtype == np.float32 and y.dtype == np.int64
    means = [x[y == c].mean(axis=0) for c in range(3)]
    for c, mean in enumerate(means):
        assert abs(mean[0] - c / 3) < 0.03 and abs(mean[1] - 0.5) < 0.03
    xs, ys = datasets.sine_data(1000)
    assert xs.shape == ys.shape == (1000, 1) and xs.dtype == ys.dtype == np.float32
    assert xs[0, 0] == 0.0 and xs[-1, 0] == pytest.approx(0.999)
    assert np.allclose(ys, np.sin(2 * np.pi * xs), atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_generators_reject_bad_counts(bad):
    with pytest.raises(ValueError, match="samples"):
        datasets.spiral_data(bad, 3)
    with pytest.raises(ValueError, match="classes"):
        datasets.vertical_data(10, bad)


# --------------------------------------------------------------------------- real files
@pytest.fixture
def real_home(data_home: Path) -> Path:
    return Path(data_home).resolve()


def test_load_fashion_mnist(real_home):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(real_home)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.array_equal(np.bincount(y_train), [6000] * 10)
    assert x_train.max() == 255 and x_train.min() == 0


def test_load_mnist_from_env(real_home, monkeypatch):
    monkeypatch.setenv("DNN_DATA_HOME", str(real_home))
    (x_train, y_train), (x_test, y_test) = load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("DNN_DATA_HOME", str(tmp_path / "env"))
    assert datasets.data_home() == tmp_path / "env"
    assert datasets.data_home(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("DNN_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.data_home() == tmp_path / "home" / ".cache" / "dnn"


def test_corrupted_file_is_refused(real_home, tmp_path):
    target = tmp_path / "fashion-mnist"
    target.mkdir()
    for name in mnist_module.FILES:
        shutil.copy(real_home / "fashion-mnist" / name, target / name)
    data = bytearray((target / LABEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (target / LABEL_FILE).write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        load_fashion_mnist(tmp_path, download=False)
    assert LABEL_FILE in str(info.value)
    # the refused file is left alone for the user to inspect, not silently replaced
    assert (target / LABEL_FILE).read_bytes() == bytes(data)


def test_missing_file_without_download_names_the_files(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    for name in mnist_module.FILES:
        assert name in message
    assert str(tmp_path / "mnist") in message


# --------------------------------------------------------------------------- IDX parsing
def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload


def test_parse_idx_roundtrip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    write_idx(tmp_path / "img.gz", images)
    write_idx(tmp_path / "lab", labels)
    assert np.array_equal(read_idx_images(tmp_path / "img.gz"), images)
    assert np.array_equal(read_idx_labels(tmp_path / "lab"), labels)


def test_bad_magic_is_refused(tmp_path):
    labels = _idx(2049, (3,), bytes([1, 2, 3]))
    with pytest.raises(DatasetError, match="bad IDX magic number 2049"):
        parse_idx(labels, 2051, "x")
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(labels)
    with pytest.raises(DatasetError, match="magic") as info:
        read_idx_images(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "data, match",
    [
        (_idx(2049, (4,), bytes([1, 2, 3])), "size mismatch"),  # truncated payload
        (_idx(2049, (2,), bytes([1, 2, 3])), "size mismatch"),  # trailing garbage
        (_idx(2051, (1, 2), b""), "header truncated"),  # only 2 of the 3 image dims
        (b"\x00\x00", "no header"),
    ],
    ids=["truncated", "trailing-bytes", "short-header", "no-header"],
)
def test_bad_sizes_are_refused(data, match):
    magic = 2051 if data[:4] == (2051).to_bytes(4, "big") else 2049
    with pytest.raises(DatasetError, match=match):
        parse_idx(data, magic, "f")


def test_not_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DatasetError, match="decompress"):
        read_idx_labels(path)


# --------------------------------------------------------------------------- downloads
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output clean
        pass


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str]]:
    """(folder, base URL): a real HTTP server on 127.0.0.1 serving that folder."""
    root = tmp_path / "server"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_download_verifies_and_writes_atomically(http_root, tmp_path, real_home):
    root, url = http_root
    shutil.copy(real_home / "mnist" / LABEL_FILE, root / LABEL_FILE)
    sha = mnist_module.SHA256["mnist"][LABEL_FILE]
    dest = tmp_path / "home" / "mnist" / LABEL_FILE
    download(url + LABEL_FILE, dest, sha, progress=True)
    assert sha256_file(dest) == sha
    assert read_idx_labels(dest)[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert sorted(p.name for p in dest.parent.iterdir()) == [LABEL_FILE]  # no temp files left


def test_download_wrong_checksum_saves_nothing(http_root, tmp_path):
    root, url = http_root
    (root / LABEL_FILE).write_bytes(gzip.compress(_idx(2049, (3,), bytes([1, 2, 3]))))
    dest = tmp_path / "home" / "mnist" / LABEL_FILE
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download(url + LABEL_FILE, dest, mnist_module.SHA256["mnist"][LABEL_FILE], progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # the temporary file was removed too


def test_full_download_through_the_loader(http_root, tmp_path, real_home):
    root, url = http_root
    for name in mnist_module.FILES:
        shutil.copy(real_home / "mnist" / name, root / name)
    home = tmp_path / "home"
    (x_train, y_train), (_, y_test) = load_mnist(home, mirrors=[url], progress=False)
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    for name in mnist_module.FILES:
        assert sha256_file(home / "mnist" / name) == mnist_module.SHA256["mnist"][name]
    # a second load reads the verified local copies and never needs the server
    shutil.rmtree(root)
    (x2, _), _ = load_mnist(home, mirrors=[_closed_port_url()], progress=False)
    assert np.array_equal(x2, x_train)


def test_bad_mirror_falls_through_to_the_next(http_root, tmp_path, real_home):
    root, url = http_root
    (root / "bad").mkdir()
    (root / "good").mkdir()
    (root / "bad" / LABEL_FILE).write_bytes(b"tampered")
    shutil.copy(real_home / "fashion-mnist" / LABEL_FILE, root / "good" / LABEL_FILE)
    sha = mnist_module.SHA256["fashion-mnist"][LABEL_FILE]
    path = fetch(tmp_path / "fm", LABEL_FILE, sha, [url + "missing", url + "bad", url + "good"],
                 progress=False)
    assert sha256_file(path) == sha


def test_all_mirrors_bad_reports_each(http_root, tmp_path):
    root, url = http_root
    (root / LABEL_FILE).write_bytes(b"tampered")
    with pytest.raises(DatasetError) as info:
        fetch(tmp_path / "fm", LABEL_FILE, "0" * 64, [url, url + "nowhere/"], progress=False)
    message = str(info.value)
    assert "checksum mismatch" in message and "404" in message
    assert not (tmp_path / "fm" / LABEL_FILE).exists()


def test_offline_error_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_fashion_mnist(tmp_path, mirrors=[_closed_port_url()], progress=False)
    message = str(info.value)
    assert "could not download" in message and "offline" in message
    assert "URLError" in message
    assert str(tmp_path / "fashion-mnist") in message
    for name in mnist_module.FILES:
        assert name in message
    assert "DNN_DATA_HOME" in message
    assert not any((tmp_path / "fashion-mnist").iterdir())


def test_checksums_match_the_shared_sums_file(real_home):
    sums = real_home / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip("no SHA256SUMS next to the datasets")
    listed = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())
    for name, files in mnist_module.SHA256.items():
        for filename, digest in files.items():
            assert listed[f"{name}/{filename}"] == digest
    # and sha256_file agrees with hashlib on a real file
    path = real_home / "mnist" / LABEL_FILE
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
