"""One data-parallel run, launched by tests/test_distributed.py under ``mpiexec``.

    mpiexec -n K python -m mpi4py tests/mpi/data_parallel_run.py MODE BACKEND DTYPE OUT

Every rank builds the model from a seed of its own (so only the broadcast makes them
equal), trains it with ``fit`` at a global batch of 8 on 50 samples (the last batch has
2 samples: with 3 ranks one slice is empty), and rank 0 writes what the test compares
with a single process: the weights, the history, and whether every rank ended with the
same bits. The same functions build the single-process reference (``reference``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import dnn
from dnn.layers import BatchNorm, Dense, Dropout, ReLU

N, FEATURES, CLASSES, BATCH, EPOCHS = 50, 6, 3, 8, 3


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, FEATURES))
    y = (np.abs(x[:, 0]) * 2 + x[:, 1] > 1).astype(np.int64) + (x[:, 2] > 1)
    return x, y


def build(seed: int, mode: str) -> dnn.Sequential:
    dnn.manual_seed(seed)
    layers = [Dense(FEATURES, 16)]
    if "batchnorm" in mode:
        layers.append(BatchNorm(16))
    layers += [ReLU()]
    if "dropout" in mode:
        layers.append(Dropout(0.3))
    layers += [Dense(16, CLASSES)]
    model = dnn.Sequential(layers)
    clip = {"clipnorm": 0.05} if "clip" in mode else {}
    loss = dnn.losses.SoftmaxCrossEntropy(reduction="sum" if mode == "sum" else "mean")
    model.compile(loss=loss, optimizer=dnn.optim.Adam(lr=0.01),
                  metrics=["accuracy", "f1"] if "f1" in mode else ["accuracy"], **clip)
    return model


def weights(model: dnn.Sequential) -> dict[str, np.ndarray]:
    return {k: dnn.backend.to_numpy(v).astype(np.float64) for k, v in model.state_dict().items()}


def train(model: dnn.Sequential, mode: str, epochs: int = EPOCHS, initial_epoch: int = 0,
          callbacks: list | None = None) -> dict[str, list[float]]:
    x, y = data()
    if "batchnorm" in mode:  # BatchNorm needs 2+ samples per rank: 48 = 6 batches of 2 x 4
        x, y = x[:48], y[:48]
    history = model.fit(x, y, epochs=epochs, batch_size=BATCH, seed=5, verbose=0,
                        validation_data=(x[:20], y[:20]), initial_epoch=initial_epoch,
                        callbacks=callbacks or [])
    return history.history


def _train_with_lr(lr: float) -> None:
    model = build(100, "")
    model.optimizer.lr = lr
    train(model, "")


def _batches(count: int):
    x, y = data()
    for i in range(count):
        yield x[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4]


def reference(mode: str, backend_name: str, dtype: str) -> tuple[dict, dict]:
    """What one process trains (rank 0's initial weights)."""
    dnn.set_backend(backend_name)
    dnn.set_default_dtype(dtype)
    model = build(100, mode)
    history = train(model, mode)
    return weights(model), history


def main() -> None:
    mode, backend_name, dtype, out = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    dnn.set_backend(backend_name)
    dnn.set_default_dtype(dtype)
    comm = dnn.distributed.init()
    rank = comm.rank
    refused = {  # mode -> what differs between the ranks (each must be refused everywhere)
        "mismatch": lambda: train(build(100, "batchnorm" if rank == 1 else ""), mode),
        "mismatch-lr": lambda: _train_with_lr(0.01 * (1 + rank)),
        "mismatch-epochs": lambda: train(build(100, ""), mode, epochs=EPOCHS + rank),
        "stream-short": lambda: build(100, "").fit(_batches(10 - 2 * rank), verbose=0),
        "sum": lambda: train(build(100, "sum"), mode),
    }
    if mode in refused:
        try:
            refused[mode]()
        except ValueError as exc:
            print(f"rank {rank} refused: {exc}", flush=True)
            return
        raise SystemExit(f"rank {rank}: {mode} was not refused")
    if mode == "count":  # allreduces per step without batch listeners: the gradient's only
        model = build(100, "")
        calls = [0]
        allreduce = comm.allreduce_

        def counted(array):
            calls[0] += 1
            return allreduce(array)

        comm.allreduce_ = counted
        x, y = data()
        model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, log_every=1000)
        if rank == 0:
            print(f"allreduces {calls[0]} steps {-(-N // BATCH)}", flush=True)
        return
    if mode == "raise":
        if rank == 1:
            raise RuntimeError("rank 1 fails on purpose")
        model = build(100, "")
        train(model, mode, epochs=10_000)  # rank 0 would wait forever without the abort
        return
    if mode.startswith("resume"):
        ckpt = out.with_suffix(".ckpt.dnn")
        model = build(100 + rank, mode)
        saver = dnn.callbacks.ModelCheckpoint(str(ckpt), save_best_only=False)
        train(model, mode, epochs=2, callbacks=[saver])  # fit returns once the file is there
        model = dnn.load_model(str(ckpt))
        history = train(model, mode, epochs=EPOCHS + 1, initial_epoch=model.epoch)
    else:
        model = build(100 + rank, mode)
        evaluate = dnn.callbacks.LambdaCallback(  # a collective inside fit, on every rank
            on_epoch_end=lambda epoch, logs: model.evaluate(*data()))
        history = train(model, mode, callbacks=[evaluate] if "evalcb" in mode else [])
    mine = weights(model)
    everyone = comm.allgather_object(mine)
    identical = all(all(np.array_equal(w[k], mine[k]) for k in mine) for w in everyone)
    if rank == 0:
        np.savez(out, **mine)
        out.with_suffix(".json").write_text(json.dumps({"history": history,
                                                        "identical": identical,
                                                        "size": comm.size}))


if __name__ == "__main__":
    main()
