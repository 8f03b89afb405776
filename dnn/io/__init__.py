"""Model files: ``save_model``/``load_model`` (architecture + weights + training
state) and ``save_weights``/``load_weights`` (parameters and buffers only).

One file per model (suffix ``.dnn`` by convention): an uncompressed ``.npz`` zip
of NumPy arrays plus a JSON metadata member. Never pickle: layer, loss and
optimizer types resolve only through the library's registries, every member
must be a ``<name>.npy`` array whose header is checked before its data is read
from that same member, a model is built only within the memory its file can
back (:mod:`dnn.io.building`), and writes are atomic (temporary file, fsync,
rename) after the destination was checked (:func:`check_destination`). See
:mod:`dnn.io.container`, :mod:`dnn.io.files` and :mod:`dnn.io.model_io`.
"""

from dnn.io.container import Archive
from dnn.io.files import atomic_write, check_destination
from dnn.io.model_io import FORMAT, FORMAT_VERSION, load_model, load_weights, save_model, save_weights

__all__ = ["FORMAT", "FORMAT_VERSION", "Archive", "atomic_write", "check_destination", "load_model",
           "load_weights", "save_model", "save_weights"]
