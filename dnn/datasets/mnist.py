"""MNIST and Fashion-MNIST, loaded like ``keras.datasets``.

``load_fashion_mnist()`` and ``load_mnist()`` return
``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 28, 28) with pixel
values 0–255 and uint8 labels (N,) in 0–9 — 60,000 training and 10,000 test
samples. Scale the images yourself (``x / 255.0``) before training.

The four gzipped IDX files of each set are read from
``<data_home>/fashion-mnist/`` or ``<data_home>/mnist/`` where ``data_home`` is
the argument, else ``$DNN_DATA_HOME``, else ``~/.cache/dnn``. Missing files are
downloaded from the official sources; every file is verified against the
SHA-256 digests below before it is used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from dnn.datasets.download import data_home as _data_home
from dnn.datasets.download import fetch
from dnn.datasets.idx import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    DatasetError,
    read_idx_header,
    read_idx_images,
    read_idx_labels,
)

#: the four files of each data set, in the order train images, train labels, test images, test labels
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

SHA256: dict[str, dict[str, str]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
}

#: the size in bytes of each official file: a download that grows past it is cut off (before
#: its SHA-256 could even be checked), so a bad mirror cannot fill the disk
SIZES: dict[str, dict[str, int]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": 26421880, "train-labels-idx1-ubyte.gz": 29515,
        "t10k-images-idx3-ubyte.gz": 4422102, "t10k-labels-idx1-ubyte.gz": 5148,
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": 9912422, "train-labels-idx1-ubyte.gz": 28881,
        "t10k-images-idx3-ubyte.gz": 1648877, "t10k-labels-idx1-ubyte.gz": 4542,
    },
}

#: base URLs tried in order; the file name is appended
MIRRORS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
}

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))

Split = tuple[np.ndarray, np.ndarray]
#: what the image headers must say: any count of 28x28 images
IMAGE_SHAPE = (None, 28, 28)
#: the official number of samples in each split (both data sets)
COUNTS: dict[str, int] = {"train": 60000, "test": 10000}


def load_idx_dataset(
    name: str,
    data_home: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    check: bool = True,
) -> tuple[Split, Split]:
    """Load ``"fashion-mnist"`` or ``"mnist"`` as ``(x_train, y_train), (x_test, y_test)``.

    ``download=False`` never touches the network; ``mirrors`` overrides the
    base URLs; ``check=False`` skips the SHA-256 check of files already on disk
    (the IDX reader still refuses malformed files: it reads each header first
    and never inflates more than the 28x28 images the header announces).
    """
    if name not in SHA256:
        raise ValueError(f"unknown IDX data set {name!r}; valid names are {', '.join(SHA256)}")
    directory = _data_home(data_home) / name
    paths = [
        fetch(directory, filename, SHA256[name][filename],
              MIRRORS[name] if mirrors is None else mirrors,
              all_files=FILES, download_missing=download, progress=progress, check=check,
              size=SIZES[name][filename])
        for filename in FILES
    ]
    # headers first: every count is checked against the other file of its split and against
    # the official count before a single payload byte is inflated (a forged header that
    # matches its own gzip bomb is refused here, not after hundreds of MB were read)
    splits = (("train", paths[0], paths[1]), ("test", paths[2], paths[3]))
    for split, images_path, labels_path in splits:
        images_dims = read_idx_header(images_path, IMAGES_MAGIC)
        (n_labels,) = read_idx_header(labels_path, LABELS_MAGIC)
        if images_dims[1:] != (28, 28):
            raise DatasetError(f"{images_path}: the IDX header says images of shape {images_dims}; "
                               "expected (N, 28, 28)")
        if images_dims[0] != n_labels:
            raise DatasetError(
                f"{directory}: the {split} split's headers announce {images_dims[0]:,} images "
                f"({images_path.name}) but {n_labels:,} labels ({labels_path.name}); the files "
                "are corrupted or do not belong together"
            )
        if n_labels != COUNTS[split]:
            raise DatasetError(
                f"{directory}: the {split} split's headers announce {n_labels:,} samples "
                f"({images_path.name}, {labels_path.name}); {name} has {COUNTS[split]:,}: the "
                "files are corrupted or forged"
            )
    loaded = []
    for split, images_path, labels_path in splits:
        x = read_idx_images(images_path, shape=(COUNTS[split], 28, 28))
        y = read_idx_labels(labels_path, shape=(COUNTS[split],))
        if y.size and int(y.max()) > 9:
            raise DatasetError(f"{directory}: {split} labels must be 0-9, found {int(y.max())}")
        loaded.append((x, y))
    (x_train, y_train), (x_test, y_test) = loaded
    return (x_train, y_train), (x_test, y_test)


def load_fashion_mnist(data_home: str | os.PathLike | None = None, **kwargs) -> tuple[Split, Split]:
    """Fashion-MNIST (Zalando): 10 classes of clothing, see :data:`FASHION_MNIST_CLASSES`.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 (60000, 28, 28),
    (60000,), (10000, 28, 28), (10000,). Keyword arguments as in
    :func:`load_idx_dataset`.
    """
    return load_idx_dataset("fashion-mnist", data_home, **kwargs)


def load_mnist(data_home: str | os.PathLike | None = None, **kwargs) -> tuple[Split, Split]:
    """MNIST handwritten digits 0–9.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 (60000, 28, 28),
    (60000,), (10000, 28, 28), (10000,). Keyword arguments as in
    :func:`load_idx_dataset`.
    """
    return load_idx_dataset("mnist", data_home, **kwargs)
