"""16 — Data-parallel training: one model, several processes, the same weights.

    mpiexec -n 2 python -m mpi4py examples/16_fashion_mnist_data_parallel.py
    python examples/16_fashion_mnist_data_parallel.py          # one process: the reference

Every process (a *rank*) holds the whole model and reads the same global
batches; rank r keeps its share of each batch's rows, computes the gradient of
its share, and ONE allreduce per gradient buffer sums the shares weighted by
their sizes (n_r / B): every rank then holds the gradient of the whole batch,
takes the same optimizer step, and keeps the same weights. So N ranks train
exactly what one process trains at the same global ``batch_size`` — only
faster, when the batch is large enough that computing beats talking. Compare
the printed losses of a 1-process and a 2-process run: they agree to float
rounding.

What the script does beyond a plain fit: ``dnn.distributed.init()`` (a world
of one when not started by ``mpiexec``), and printing/saving on rank 0 only —
``fit`` itself already shows its progress and writes checkpoints on rank 0.

``python -m mpi4py`` turns an exception on one rank into the end of all of
them (a plain ``python`` rank that raises would leave the others waiting).
Several machines: ``mpiexec -n 8 -f hosts python -m mpi4py ...`` with the
host names in ``hosts``; several GPUs: ``DNN_BACKEND=cupy``, one rank per GPU
(NCCL averages the gradients on the devices).

``--small`` trains on 3,000 images for 1 epoch (seconds). Writes
out/16_data_parallel.dnn (rank 0 writes it; ``--out`` sets the folder).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dnn
from dnn.datasets import load_fashion_mnist
from dnn.layers import Dense, ReLU


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256, help="the GLOBAL batch")
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--out", default="out", help="folder for the saved model (default: out)")
    args = parser.parse_args(argv)

    comm = dnn.distributed.init()           # the ranks mpiexec started, or just this one
    report = print if comm.rank == 0 else (lambda *a, **k: None)

    (x, y), (x_test, y_test) = load_fashion_mnist(args.data_home)
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
    epochs = args.epochs
    if args.small:
        x, y, x_test, y_test, epochs = x[:3000], y[:3000], x_test[:1000], y_test[:1000], 1

    dnn.manual_seed(comm.rank)              # different on purpose: rank 0's weights win
    model = dnn.Sequential([Dense(784, 256), ReLU(), Dense(256, 128), ReLU(), Dense(128, 10)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(learning_rate=1e-3),
                  metrics=["accuracy"])
    report(f"{comm.size} rank(s), {comm.name}; global batch {args.batch_size}, "
           f"{args.batch_size // comm.size} rows per rank")
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=args.batch_size, seed=0,
                        verbose=2)          # prints on rank 0 only
    seconds = time.perf_counter() - start
    result = model.evaluate(x_test, y_test)  # each rank its share, reduced
    out = Path(args.out)
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    model.save(out / "16_data_parallel.dnn")  # written by rank 0 only
    report(f"{len(x) * epochs / seconds:,.0f} samples/s over {seconds:.1f} s; "
           f"test accuracy {result['accuracy']:.4f}, losses per epoch "
           + ", ".join(f"{v:.6f}" for v in history.history["loss"]))
    return result


if __name__ == "__main__":
    main()
