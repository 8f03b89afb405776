"""Model files: ``save_model``/``load_model`` (architecture + weights + training
state) and ``save_weights``/``load_weights`` (parameters and buffers only).

One file per model (suffix ``.dnn`` by convention): an uncompressed ``.npz`` zip
of NumPy arrays plus a JSON metadata member. Never pickle: layer, loss and
optimizer types resolve only through the library's registries, arrays are
read with ``allow_pickle=False`` after their headers are checked, and writes
are atomic (temporary file, fsync, rename). See :mod:`dnn.io.container` and
:mod:`dnn.io.model_io`.
"""

from dnn.io.container import Archive, atomic_write
from dnn.io.model_io import FORMAT, FORMAT_VERSION, load_model, load_weights, save_model, save_weights

__all__ = ["FORMAT", "FORMAT_VERSION", "Archive", "atomic_write", "load_model", "load_weights",
           "save_model", "save_weights"]
