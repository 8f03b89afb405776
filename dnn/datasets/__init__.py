"""Data sets: the NNFS book's synthetic generators, MNIST / Fashion-MNIST, and the Python
standard library's source as character-level text (:mod:`dnn.datasets.stdlib_text`).

All loaders return host NumPy arrays; ``fit`` moves them to the backend.
"""

from dnn.datasets.download import data_home
from dnn.datasets.idx import DatasetError, read_idx_images, read_idx_labels, write_idx
from dnn.datasets.mnist import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
)
from dnn.datasets.stdlib_text import TextCorpus, load_stdlib_text
from dnn.datasets.synthetic import sine_data, spiral_data, vertical_data

__all__ = [
    "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "DatasetError", "data_home", "load_fashion_mnist",
    "load_idx_dataset", "load_mnist", "read_idx_images", "read_idx_labels", "sine_data",
    "spiral_data", "vertical_data", "write_idx",
]
__all__ += ["TextCorpus", "load_stdlib_text"]
