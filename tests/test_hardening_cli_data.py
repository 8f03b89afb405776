"""Hardening: untrusted data files, an unusable DNN_BACKEND, CLI arguments, the install story.

Each section is one class of problem and the tests that would have caught it:

- IDX files are read header first (never "inflate everything, then look"): a gzip bomb
  or a forged header costs a bounded amount of memory; downloads are bounded too.
- A DNN_BACKEND that cannot be used never breaks ``import dnn`` or the ``dnn`` command.
- Every CLI argument is checked before data is loaded or memory allocated.
- ``Linear`` (the identity) is not mistaken for PyTorch's ``nn.Linear``.
- Every install hint names a command that installs THIS project.
- Test order: a measurement never depends on what ran before it.

CLI tests run ``python -m dnn`` in a subprocess, as a user does.
"""

from __future__ import annotations

import http.server
import importlib.machinery
import io
import os
import re
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import types
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.datasets import DatasetError, load_mnist
from dnn.datasets import mnist as mnist_module
from dnn.datasets.download import fetch
from dnn.datasets.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx_images, read_idx_labels

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None, code: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m dnn ARGS`` (or ``python -c CODE ARGS``) in a fresh interpreter."""
    full_env = {**os.environ, "DNN_BACKEND": "numpy", "PYTHONPATH": str(REPO), **(env or {})}
    exe = [sys.executable, "-c", code] if code else [sys.executable, "-m", "dnn"]
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=REPO)


# ====================================================================== IDX files and downloads
def _header(magic: int, dims: tuple[int, ...]) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def _gzip_bomb(path: Path, header: bytes, zeros: int) -> None:
    """``header`` then ``zeros`` zero bytes, gzip-compressed in chunks (about 1000:1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    chunk = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(comp.compress(header))
        for _ in range(zeros // len(chunk)):
            f.write(comp.compress(chunk))
        f.write(comp.flush())


def _peak_while(fn) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as info:
            fn()
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


def test_forged_header_whose_size_product_overflows_is_refused():
    # 2**31 * 2**31 * 4 = 2**64 wraps to 0 in int64: the old check accepted an empty payload
    data = _header(IMAGES_MAGIC, (2**31, 2**31, 4))
    with pytest.raises(DatasetError, match=r"18,446,744,073,709,551,616 bytes, more than"):
        parse_idx(data, IMAGES_MAGIC, "forged")


def test_gzip_bomb_after_a_small_header_is_never_inflated(tmp_path):
    # 16 labels announced, then 64 MB of zeros (a 64 KB file): reading stops after 16 + 1 bytes
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    _gzip_bomb(path, _header(LABELS_MAGIC, (16,)) + bytes(16), 64 << 20)
    assert path.stat().st_size < 200_000
    peak, message = _peak_while(lambda: read_idx_labels(path))
    assert "trailing" in message and "size mismatch" in message and str(path) in message
    assert peak < 4 << 20, f"read {peak} bytes into memory: the bomb was inflated"


def test_header_announcing_more_than_max_bytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    _gzip_bomb(path, _header(IMAGES_MAGIC, (60000, 2000, 2000)), 8 << 20)  # "240 GB of pixels"
    peak, message = _peak_while(lambda: read_idx_images(path))
    assert "240,000,000,000 bytes" in message and "max_bytes" in message
    assert peak < 4 << 20


def test_image_shape_is_checked_before_the_pixels(tmp_path):
    data = _header(IMAGES_MAGIC, (2, 32, 32)) + bytes(2 * 32 * 32)
    with pytest.raises(DatasetError, match=r"shape \(2, 32, 32\); expected \(N, 28, 28\)"):
        parse_idx(data, IMAGES_MAGIC, "f", shape=(None, 28, 28))
    assert parse_idx(data, IMAGES_MAGIC, "f").shape == (2, 32, 32)


def test_loader_with_check_false_refuses_a_bomb(tmp_path):
    """check=False skips the SHA-256; the headers are cross-checked before any payload is read."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    _gzip_bomb(folder / mnist_module.FILES[0], _header(IMAGES_MAGIC, (5, 28, 28)) + bytes(5 * 784),
               32 << 20)
    _gzip_bomb(folder / mnist_module.FILES[1], _header(LABELS_MAGIC, (5,)) + bytes(5), 0)
    for name in mnist_module.FILES[2:]:
        (folder / name).write_bytes(b"")
    peak, message = _peak_while(lambda: load_mnist(tmp_path, download=False, check=False))
    assert "train split's headers announce 5 samples" in message and "60,000" in message
    assert mnist_module.FILES[0] in message and mnist_module.FILES[1] in message
    assert peak < 4 << 20


def _official_split(folder: Path, split: str, images: int, labels: int, bomb: int = 0) -> None:
    """Gzipped IDX files of ``split`` whose headers announce ``images``/``labels`` samples;
    the image stream really inflates ``bomb`` bytes of zeros after the header."""
    i = 0 if split == "train" else 2
    _gzip_bomb(folder / mnist_module.FILES[i], _header(IMAGES_MAGIC, (images, 28, 28)), bomb)
    _gzip_bomb(folder / mnist_module.FILES[i + 1], _header(LABELS_MAGIC, (labels,)), 0)


_RLIMIT_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (500 << 20, 500 << 20))
from dnn.datasets import DatasetError, load_fashion_mnist
from dnn.datasets.idx import read_idx_images
try:
    {call}
except DatasetError as exc:
    print("DatasetError:", exc)
except BaseException as exc:
    print("RAW", type(exc).__name__, exc)
"""


def _under_500mb(call: str) -> subprocess.CompletedProcess:
    return run(code=_RLIMIT_CHILD.format(call=call),
               env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def header_matching_bomb(tmp_path_factory):
    """A 0.76 MB folder whose train images announce (and inflate to) 1M 28x28 images."""
    home = tmp_path_factory.mktemp("bomb")
    folder = home / "fashion-mnist"
    folder.mkdir()
    _official_split(folder, "train", 1_000_000, 60000, bomb=784_000_000)
    _official_split(folder, "test", 10000, 10000)
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000
    return home


def test_header_matching_gzip_bomb_is_refused_from_the_headers(header_matching_bomb):
    home = header_matching_bomb
    peak, message = _peak_while(lambda: mnist_module.load_fashion_mnist(home, download=False,
                                                                         check=False))
    assert "1,000,000 images" in message and "60,000 labels" in message
    assert "train split" in message and peak < 4 << 20
    # the same under a 500 MB address-space limit, in a fresh interpreter
    result = _under_500mb(f"load_fashion_mnist({str(home)!r}, download=False, check=False)")
    assert result.stdout.startswith("DatasetError:"), result.stdout + result.stderr
    assert "1,000,000 images" in result.stdout


def test_official_counts_are_checked_before_the_payload(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    _official_split(folder, "train", 1_000_000, 1_000_000, bomb=8 << 20)  # consistent, not official
    _official_split(folder, "test", 10000, 10000)
    peak, message = _peak_while(lambda: mnist_module.load_fashion_mnist(tmp_path, download=False,
                                                                         check=False))
    assert "1,000,000 samples" in message and "fashion-mnist has 60,000" in message
    assert peak < 4 << 20


def test_memory_error_while_reading_names_the_file(header_matching_bomb):
    path = header_matching_bomb / "fashion-mnist" / mnist_module.FILES[0]
    result = _under_500mb(f"read_idx_images({str(path)!r})")
    assert result.stdout.startswith("DatasetError:"), result.stdout + result.stderr
    assert str(path) in result.stdout and "out of memory" in result.stdout
    assert "RAW" not in result.stdout and "Traceback" not in result.stderr


class _Endless(http.server.BaseHTTPRequestHandler):
    """Serves /big with a Content-Length of 100 and /stream without one, forever."""

    def do_GET(self):
        self.send_response(200)
        if self.path.endswith("big"):
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(bytes(100))
            return
        self.end_headers()
        try:
            for _ in range(64):  # 64 MB unless the client hangs up first
                self.wfile.write(bytes(1 << 20))
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def endless_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_downloads_are_bounded_by_the_known_size(endless_server, tmp_path):
    with pytest.raises(DatasetError) as info:
        fetch(tmp_path, "big", "0" * 64, [endless_server], progress=False, size=10)
    assert "announces 100 bytes" in str(info.value)
    with pytest.raises(DatasetError) as info:
        fetch(tmp_path, "stream", "0" * 64, [endless_server], progress=False, size=3 << 20)
    assert "sent more than the 3,145,728 bytes" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing saved, no temporary file left
    # the loader passes the official sizes
    assert mnist_module.SIZES["mnist"]["train-images-idx3-ubyte.gz"] == 9912422


# ====================================================================== DNN_BACKEND fallback
def test_bad_dnn_backend_does_not_break_import():
    result = run(code="import dnn; print(dnn.backend.name); print(dnn.backend.fallback)",
                 env={"DNN_BACKEND": "nope"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "numpy"
    assert "Traceback" not in result.stderr
    assert "BackendWarning" in result.stderr
    assert "DNN_BACKEND='nope'" in result.stderr and "unknown backend 'nope'" in result.stderr
    assert "falls back to numpy" in result.stderr


@pytest.mark.parametrize("args", [("--help",), ("info",), ("train", "spiral", "--epochs", "1",
                                                             "--backend", "numpy", "-q")],
                         ids=["help", "info", "train-backend-numpy"])
def test_bad_dnn_backend_and_the_cli(args):
    result = run(*args, env={"DNN_BACKEND": "nope"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warning = [line for line in result.stderr.splitlines() if "DNN_BACKEND" in line]
    assert len(warning) == 1 and warning[0].startswith("dnn: warning: DNN_BACKEND='nope'")
    if args[0] == "info":
        assert re.search(r"^backend\s+numpy \(fallback: DNN_BACKEND='nope'", result.stdout, re.M)


def _fake_cupy(folder: Path) -> Path:
    """A 'cupy' that imports fine but finds no CUDA driver, as on a machine without a GPU."""
    pkg = folder / "cupy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        __version__ = "13.9.9"

        class _Runtime:
            @staticmethod
            def getDeviceCount():
                raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is "
                                   "insufficient for CUDA runtime version")

        class cuda:
            runtime = _Runtime
    """))
    return folder


def test_cupy_without_a_gpu_says_so_instead_of_install_it(monkeypatch):
    # in sys.modules only for this test: a leftover fake "cupy" would break array_api_compat
    # (it looks cupy up in sys.modules) for every later test
    fake = types.ModuleType("cupy")
    fake.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    fake.__version__ = "13.9.9"

    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_driver))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    before = backend.name
    with pytest.raises(dnn.BackendError) as info:
        dnn.set_backend("cupy")
    message = str(info.value)
    assert "no usable CUDA GPU/driver" in message and "cudaErrorInsufficientDriver" in message
    assert "Reinstalling CuPy will not help" in message
    assert "pip install" not in message  # it is installed: the install hint would be wrong
    assert backend.name == before
    status = backend.status("cupy")
    assert status.installed and not status.usable and "no usable CUDA GPU/driver" in status.why


def test_installed_but_broken_backend_is_not_told_to_install(tmp_path, monkeypatch):
    (tmp_path / "brokenlib_for_dnn_tests.py").write_text("raise OSError('libcudart.so.12: cannot open')")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backend.BACKENDS, "fakebackend",
                        ("brokenlib_for_dnn_tests", "pip install brokenlib"))
    with pytest.raises(dnn.BackendError) as info:
        dnn.set_backend("fakebackend")
    assert "installed but importing brokenlib_for_dnn_tests failed" in str(info.value)
    assert "libcudart.so.12" in str(info.value)
    assert backend.status("fakebackend").installed


def test_info_reports_every_backend(tmp_path):
    result = run("info", env={"DNN_BACKEND": "cupy",
                              "PYTHONPATH": f"{_fake_cupy(tmp_path)}{os.pathsep}{REPO}"})
    assert result.returncode == 0, result.stderr
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.stdout.splitlines())
    assert rows["backend"].startswith("numpy (fallback: DNN_BACKEND='cupy' cannot be used")
    assert rows["backend: numpy"].startswith("usable (numpy ")
    assert rows["backend: cupy"].startswith("installed, not usable: ")
    assert "no usable CUDA GPU/driver" in rows["backend: cupy"]
    for name in ("torch", "array_api_strict"):
        assert rows[f"backend: {name}"].startswith(("usable", "not installed: install it with: pip"))


# ====================================================================== CLI arguments
@pytest.mark.parametrize(
    "args, where, message",
    [
        (("--lr", "nan"), "--lr", "expected a finite number > 0, got 'nan'"),
        (("--lr", "inf"), "--lr", "expected a finite number > 0, got 'inf'"),
        (("--seed", "-1"), "--seed", "expected an integer from 0 to 4294967295"),
        (("--model", "cnn"), "--model", "cnn does not fit spiral"),
        (("--model", "cnn", "--seed", "3"), "--model", "spiral: mlp, lstm; fashion-mnist: mlp, cnn, lstm"),
        (("--hidden", "10000000000"), "--hidden", "parameters and needs about"),
        (("--save", "no/such/dir/m.dnn"), "--save", "mkdir -p no/such/dir"),
        (("--save", "tests"), "--save", "directory"),
        (("--plot", "pyproject.toml"), "--plot", "is a file, not a folder"),
    ],
    ids=["lr-nan", "lr-inf", "seed-negative", "cnn-on-spiral", "models-by-data-set", "huge-hidden",
         "save-missing-folder", "save-to-a-folder", "plot-into-a-file"],
)
def test_bad_train_arguments_fail_before_any_work(args, where, message):
    result = run("train", "spiral", *args, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"argument {where}: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert result.stdout == ""  # nothing was loaded, built or trained


def test_plot_without_matplotlib_fails_up_front():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from dnn import cli; sys.exit(cli.main(sys.argv[1:]))")
    result = run("train", "spiral", "--plot", "plots", code=code)
    assert result.returncode == 2
    assert "argument --plot: needs matplotlib, which is not installed" in result.stderr
    assert 'pip install -e ".[plot]"' in result.stderr and result.stdout == ""


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"dnn {dnn.__version__}"


def test_piped_output_shows_one_line_per_epoch():
    result = run("train", "spiral", "--epochs", "3", "--hidden", "8")
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stdout.splitlines()
              if re.match(r"epoch \d/3 \([\d.]+s\): loss=", line)]
    assert len(epochs) == 3
    assert "\r" not in result.stdout + result.stderr  # no progress bar in a log
    quiet = run("train", "spiral", "--epochs", "3", "--hidden", "8", "-q")
    assert "epoch 1/3" not in quiet.stdout and "test accuracy" in quiet.stdout


def test_terminal_shows_a_progress_bar():
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    env = {**os.environ, "DNN_BACKEND": "numpy", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "dnn", "train", "spiral", "--epochs", "2"],
                            stdout=slave, stderr=slave, cwd=REPO, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    out = b"".join(chunks).decode(errors="replace")
    assert "it/s]" in out and "epoch 1/2:" in out  # tqdm's bar, then fit's epoch line


TINY_IMAGES = """
import dataclasses, sys
import numpy as np
from dnn import cli
def tiny(args):
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    return x, y, x[:16], y[:16]
cli.DATASETS["mnist"] = dataclasses.replace(cli.DATASETS["mnist"], load=tiny)
sys.exit(cli.main(sys.argv[1:]))
"""


def test_header_shows_the_architecture_really_built():
    result = run("train", "mnist", "--model", "cnn", "--hidden", "64", "--epochs", "1", "-q",
                 code=TINY_IMAGES)
    assert result.returncode == 0, result.stderr
    model_line = next(line for line in result.stdout.splitlines() if "model cnn" in line)
    assert "Conv2D(1→32, 3x3, padding 1)" in model_line and "Dense(3136→10)" in model_line
    assert "50,186 parameters" in model_line and "hidden" not in model_line
    assert "--model cnn uses nothing (a fixed architecture) of --hidden 64" in result.stderr
    lstm = run("train", "mnist", "--model", "lstm", "--hidden", "16", "--epochs", "1", "-q",
               code=TINY_IMAGES)
    assert lstm.returncode == 0, lstm.stderr
    assert "LSTM(28→16) → Dense(16→10)" in lstm.stdout


def test_history_to_pandas_without_pandas_names_the_extra(monkeypatch):
    history = dnn.History()
    history.append(0, {"loss": 1.0})
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ModuleNotFoundError) as info:
        history.to_pandas()
    message = str(info.value)
    assert "History.to_pandas needs pandas" in message
    assert "pip install pandas" in message and 'pip install -e ".[data]"' in message
    assert info.value.name == "pandas"


def test_plot_without_matplotlib_names_the_install(monkeypatch):
    from dnn import plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    history = dnn.History()
    history.append(0, {"loss": 1.0})
    with pytest.raises(ModuleNotFoundError) as info:
        plot.plot_history(history)
    assert "pip install matplotlib" in str(info.value) and 'pip install -e ".[plot]"' in str(info.value)


# ====================================================================== Linear vs Identity
def test_linear_with_sizes_points_to_dense():
    with pytest.raises(TypeError) as info:
        dnn.layers.Linear(784, 512)
    message = str(info.value)
    assert "Linear(784, 512)" in message and "dnn.layers.Dense(784, 512)" in message
    assert "transpose of nn.Linear.weight" in message
    with pytest.raises(TypeError, match="Dense"):
        dnn.layers.Linear(in_features=4, out_features=2)


def test_identity_and_the_old_name():
    layer = dnn.layers.Identity()
    x = dnn.to_device(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert dnn.to_numpy(layer.forward(x)).tolist() == dnn.to_numpy(x).tolist()
    assert dnn.layers.REGISTRY.name_of(dnn.layers.Identity) == "Identity"
    assert dnn.layers.REGISTRY.lookup("Linear") is dnn.layers.Identity
    assert type(dnn.layers.activation("identity")) is dnn.layers.Identity
    with pytest.warns(DeprecationWarning, match="now called dnn.layers.Identity"):
        old = dnn.layers.Linear()
    assert type(old) is dnn.layers.Identity and isinstance(old, dnn.layers.Linear)


def test_model_files_that_say_linear_still_load(tmp_path):
    model = dnn.Sequential([dnn.layers.Dense(3, 2), dnn.layers.Identity()])
    path = tmp_path / "new.dnn"
    model.save(path)
    legacy = tmp_path / "legacy.dnn"  # as written before the rename: the identity is "Linear"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(legacy, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "__dnn__.npy":
                meta = bytes(np.load(io.BytesIO(data))).replace(b'"type":"Identity"', b'"type":"Linear"')
                assert b'"Linear"' in meta
                buffer = io.BytesIO()
                np.save(buffer, np.frombuffer(meta, dtype=np.uint8))
                data = buffer.getvalue()
            dst.writestr(name, data)
    loaded = dnn.load_model(legacy)
    assert type(loaded.layers[1]) is dnn.layers.Identity
    x = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(dnn.to_numpy(loaded.predict(x)), dnn.to_numpy(model.predict(x)))


# ====================================================================== install story
def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = []
    for name in listed.stdout.splitlines():
        path = REPO / name
        if path.suffix in (".py", ".md", ".toml", ".txt", ".sh", ".cfg", ".ini", "") and path.is_file():
            files.append(path)
    return files


def test_no_hint_installs_the_unrelated_pypi_dnn():
    """``pip install dnn[...]`` fetches the unrelated PyPI project named dnn (0.7.5); hints name
    ``pip install -e ".[extra]"`` from a checkout or the library's own package. Tests may
    use such strings as data, so tests/ is left out."""
    pattern = re.compile("pip install " + r"""['"]?dnn\b""")
    bad = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
           for path in _tracked_text_files() if "tests" not in path.relative_to(REPO).parts
           for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
           if pattern.search(line)]
    assert not bad, "hints that would install the wrong project:\n" + "\n".join(bad)


def test_packaging_metadata():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] != "dnn"  # the PyPI name dnn belongs to another project
    classifiers = project["classifiers"]
    minimum = tuple(int(p) for p in re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups())
    versions = [c.rsplit(" ", 1)[1] for c in classifiers
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions and versions[0] == f"{minimum[0]}.{minimum[1]}"
    readme = (REPO / "README.md").read_text()
    assert f"Python {versions[0]} to {versions[-1]}" in readme
    assert any(req.startswith("torch") for req in project["optional-dependencies"]["test"])
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme


def test_readme_quick_start_and_ci_run_the_same_test_command():
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert len(blocks) == 2, "Quick start keeps exactly two commands: train, test"
    train, test = (block.strip() for block in blocks)
    assert "dnn train" in train and "pytest" in test and "\n" not in test
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in [line.strip() for line in ci], ".ci/run must run exactly README's test command"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    addopts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-ra" not in addopts.get("addopts", "").split()


def test_skipped_backends_are_summarised_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         f"{Path(__file__).name}::test_one_per_backend"],
        capture_output=True, text=True, cwd=REPO / "tests", timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-2000:]
    unusable = [n for n in ("array_api_strict", "torch", "cupy") if not backend.status(n).usable]
    summary = [line for line in result.stdout.splitlines() if line.startswith("skipped: ")]
    assert "SKIPPED [" not in result.stdout  # no -ra: not one line per skipped test
    if unusable:
        assert len(summary) == 1
        for name in unusable:
            assert f"backend {name} — " in summary[0]
    else:
        assert summary == []


def test_one_per_backend(backend_name):
    """Runs once per usable backend; the others skip (the summary test above counts them)."""
    assert backend.name == backend_name


# ====================================================================== test order
def test_memory_measurement_passes_in_a_fresh_interpreter():
    """The case that failed when tests/test_memory.py ran on its own (nothing warmed)."""
    pytest.importorskip("array_api_strict")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "tests/test_memory.py::test_layer_memory_within_theory[array_api_strict-LSTM 32->128 on 64x50x32]"],
        capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 passed" in result.stdout



# ====================================================================== names, nesting, CLI, checkpoints
@pytest.mark.parametrize("name, why", [
    ("a\x00b", "control/unprintable character '\\\\x00'"),
    ("a\nb", "control/unprintable character '\\\\n'"),
    ("x" * 70_000, "70,000 characters"),
    ("x" * 101, "101 characters"),
    ("a.b", "'.' and '/'"),
    ("", "empty"),
])
def test_layer_names_are_validated(name, why):
    with pytest.raises(ValueError, match=f"Dense: name must be.*{why}"):
        dnn.layers.Dense(2, 2, name=name)
    assert dnn.layers.Dense(2, 2, name="x" * 100).name == "x" * 100
    assert dnn.layers.Dense(2, 2, name="encoder 1").name == "encoder 1"


def test_bad_layer_name_in_a_file_is_refused(tmp_path):
    path = tmp_path / "m.dnn"
    inputs = dnn.Input((2,))
    dnn.Model(inputs, dnn.layers.Dense(2, 2, name="enc")(inputs)).save(path)
    with np.load(path) as f:
        members = {k: f[k] for k in f.files}
    meta = members["__dnn__"].tobytes().decode()
    assert meta.count('"enc"') == 2  # the layer list and the node
    members["__dnn__"] = np.frombuffer(meta.replace('"enc"', '"e\\u0000c"').encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)
    with pytest.raises(ValueError, match="control/unprintable"):
        dnn.load_model(path)


def test_saving_a_deeply_nested_model_is_a_serialization_error(tmp_path):
    model = dnn.Sequential([dnn.layers.Dense(2, 2)])
    for _ in range(sys.getrecursionlimit() // 4):
        model = dnn.Sequential([model])
    for save in (dnn.io.save_model, dnn.io.save_weights):
        path = tmp_path / f"{save.__name__}.dnn"
        with pytest.raises(dnn.SerializationError, match="nested too deeply to save") as info:
            save(model, path)
        assert str(path) in str(info.value)
        assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--save", "--plot"])
def test_empty_save_and_plot_are_refused(flag):
    result = run("train", "spiral", "--epochs", "1", flag, "", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"argument {flag}: expected" in result.stderr and "empty value" in result.stderr
    assert result.stdout == ""


def test_batch_larger_than_the_data_is_one_batch():
    result = run("train", "spiral", "--epochs", "1", "--batch-size", "100000000", "-q", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "batch 3000," in result.stdout


def test_memory_estimate_blames_the_batch_size(monkeypatch):
    from dnn import cli
    from dnn.cli import checks

    monkeypatch.setattr(checks, "memory_bytes", lambda: 100_000_000)
    parser = cli.build_parser()
    args = parser.parse_args(["train", "mnist", "--batch-size", "100000000"])
    with pytest.raises(SystemExit):
        checks.validate_train(args, parser)
    # the estimate used the 60,000 training images, not 100,000,000
    args = parser.parse_args(["train", "mnist", "--batch-size", "100000000"])
    errors = []
    monkeypatch.setattr(parser, "error", lambda message: errors.append(message) or sys.exit(2))
    with pytest.raises(SystemExit):
        checks.validate_train(args, parser)
    assert errors[0].startswith("argument --batch-size: --batch-size 100000000")
    assert "a batch of 60,000" in errors[0] and "such as 128" in errors[0]
    assert "--hidden" not in errors[0]


def test_broken_matplotlib_fails_up_front(tmp_path):
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "__init__.py").write_text("raise ImportError('broken build')\n")
    result = run("train", "spiral", "--plot", str(tmp_path / "plots"),
                 env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "argument --plot: needs matplotlib, which is installed but cannot be imported" in result.stderr
    assert "ImportError: broken build" in result.stderr and result.stdout == ""
    assert not (tmp_path / "plots").exists()


def _fit_with(path: str, **kw):
    model = dnn.Sequential([dnn.layers.Dense(3, 2)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32)
    ckpt = dnn.callbacks.ModelCheckpoint(path)
    model.fit(x, y, callbacks=[ckpt], verbose=0, **kw)
    return ckpt


@pytest.mark.parametrize("template, message", [
    ("{loss:d}.dnn", r"cannot fill in the path .*Unknown format code 'd'"),
    ("{}.dnn", r"positional field"),
    ("{0}.dnn", r"positional field"),
    ("{loss.dnn", r"not a valid format string"),
])
def test_checkpoint_format_errors_name_the_callback(tmp_path, template, message):
    path = str(tmp_path / template)
    with pytest.raises(ValueError, match=message) as info:
        _fit_with(path)
    assert str(info.value).startswith("ModelCheckpoint: ") and repr(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_check_creates_no_value_dependent_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = dnn.callbacks.ModelCheckpoint("out/{val_loss}/x.dnn")
    ckpt.set_params({"log_keys": ["loss", "val_loss"]})
    ckpt.on_train_begin()
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and list((tmp_path / "out").iterdir()) == []
    ckpt = dnn.callbacks.ModelCheckpoint("{val_loss}/x.dnn")
    ckpt.set_params({"log_keys": ["loss", "val_loss"]})
    ckpt.on_train_begin()
    assert not (tmp_path / "0.0").exists()
    # a fixed folder that cannot be written is still refused up front
    (tmp_path / "file").write_text("")
    ckpt = dnn.callbacks.ModelCheckpoint("file/{val_loss}/x.dnn")
    ckpt.set_params({"log_keys": ["loss", "val_loss"]})
    with pytest.raises(OSError):
        ckpt.on_train_begin()


@pytest.mark.parametrize("shape, error, message", [
    (784, TypeError, r"tuple that includes the batch axis, got the int 784; write \(1, 784\)"),
    ((784,), ValueError, r"includes the batch axis"),
    ("784", TypeError, r"got str"),
    ((1, -3), ValueError, r"positive ints"),
])
def test_summary_input_shape_must_be_a_tuple_with_the_batch_axis(shape, error, message):
    model = dnn.Sequential([dnn.layers.Dense(784, 10)])
    with pytest.raises(error, match=message):
        model.summary(shape)
    model.summary((1, 784))
