"""Data parallelism: N ranks train the weights one process would, N times as fast.

Every rank holds the whole model and reads the same GLOBAL batches (the same
data, the same shuffled order); rank r keeps rows [⌊rB/N⌋, ⌊(r+1)B/N⌋) of a
global batch of B samples, so the n_r of the ranks add up to B (a rank may
get none). With the loss a mean over the batch, L = (1/B) Σᵢ lᵢ, the gradient

    ∇L = (1/B) Σᵢ ∇lᵢ = Σ_r (n_r / B) · g_r,     g_r = (1/n_r) Σ_{i ∈ r} ∇lᵢ

so each rank scales its gradient by n_r / B and ONE allreduce (a sum) per
flat dtype buffer gives every rank ∇L exactly — uneven and empty slices
included — before the optimizer step (clipping then sees the averaged
gradient). Penalty gradients, added in full on every rank with data, come
out once because Σ_r n_r / B = 1.

- **Start.** Every rank sends its model's signature (keys, shapes, dtypes): a
  difference is an error on every rank. Parameters and buffers are then
  broadcast from rank 0, and so is the optimizer state when rank 0 has one (a
  resumed model), with its iteration count and learning rate.
- **Randomness.** The data order comes from a seed every rank shares (rank
  0's, broadcast); the model's own draws (Dropout) from a per-rank stream, so
  the ranks drop different units.
- **Logs.** Loss sums, sample counts and the metrics' additive state
  (:attr:`dnn.metrics.Metric.additive`; ``extremes`` by min/max) are combined
  over the ranks before they are read, so every rank logs the numbers one process would, and decisions
  taken on them (the NaN check, early stopping) are the same everywhere.
- **Buffers.** BatchNorm's running statistics, which each rank updates from
  its own slice, are averaged at the end of every epoch (SyncBatchNorm, which
  would normalise with the statistics of the global batch, is future work).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from dnn import backend
from dnn.distributed.comm import Communicator


def warn_if_alone(where: str) -> None:
    """An MPI launcher started several processes but this one never joined them: each
    would train alone, on all the data, and print its own numbers."""
    from dnn import distributed

    if not distributed.is_initialized() and distributed.launched_by_mpi():
        warnings.warn(f"{where}: this process is one of several started by mpiexec, but "
                      "dnn.distributed.init() was not called, so every rank trains alone; call "
                      "it before fit for data-parallel training", RuntimeWarning, stacklevel=3)


class DataParallel:
    """The data-parallel side of one ``fit``/``evaluate`` call on ``comm``'s ranks."""

    def __init__(self, model: Any, comm: Communicator) -> None:
        self.model = model
        self.comm = comm

    @classmethod
    def of(cls, model: Any) -> DataParallel | None:
        """For the active communicator; None in a single process (nothing changes)."""
        from dnn import distributed

        comm = distributed.communicator()
        return None if comm.size == 1 else cls(model, comm)

    @property
    def rank(self) -> int:
        return self.comm.rank

    # ------------------------------------------------------------ start
    def start(self, where: str) -> None:
        """Same model on every rank (else an error on every rank), then rank 0's state."""
        self.check_same_model(where)
        for value in self.model.state_dict().values():
            self.comm.broadcast_(value)
        optimizer = self.model.optimizer
        params = self.model.optimizer_parameters
        state = None
        if self.rank == 0 and optimizer is not None and optimizer.iterations > 0:
            state = optimizer.state_dict(params)
            state = {**state, "arrays": {k: backend.to_numpy(v).copy()
                                         for k, v in state["arrays"].items()}}
        state = self.comm.broadcast_object(state)
        if state is not None and self.rank != 0:
            optimizer.load_state_dict(params, state)

    def check_same_model(self, where: str) -> None:
        """Every rank holds the same model, trains the same parameters with the same
        optimizer settings and losses; else an error on every rank (a difference would
        let the ranks drift apart silently, or mismatch the collectives)."""
        model = self.model
        signature = [(key, tuple(int(d) for d in value.shape), str(value.dtype))
                     for key, value in model.state_dict().items()]
        signature.append(("trainable", tuple(n for n, p in model.named_parameters()
                                             if p in model.optimizer_parameters)))
        signature.append(("architecture", _architecture(model)))
        signature.append(("optimizer", f"{model.optimizer!r}"))
        signature.append(("losses", f"{model.losses!r} weighted {model.loss_weights}"))
        signatures = self.comm.allgather_object(signature)
        for other, theirs in enumerate(signatures):
            if theirs != signatures[0]:
                raise ValueError(f"{where}: the model on rank {other} differs from rank 0's: "
                                 f"{_first_difference(signatures[0], theirs, other)}; every "
                                 "rank must build and compile the same model")
        for loss in model.losses:
            if getattr(loss, "reduction", "mean") != "mean":
                raise ValueError(f"{where}: data-parallel training averages per-rank gradients "
                                 f"of mean losses; {loss!r} sums over the batch: use "
                                 "reduction='mean' (scale the learning rate instead)")

    def shared_seed(self, seed: int | None) -> int:
        """One data-order seed for every rank: ``seed``, or one rank 0 draws."""
        if seed is None and self.rank == 0:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.comm.broadcast_object(seed))

    def rank_seed(self, seed: int, epoch: int) -> int:
        """This rank's seed for the model's own draws (Dropout) in ``epoch``: different on
        every rank, and a function of the epoch, so a resumed fit draws what the
        uninterrupted one drew."""
        return int(np.random.SeedSequence([seed, self.rank, epoch]).generate_state(1)[0])

    def check_data(self, feed: Any, where: str, **settings: Any) -> None:
        """Every rank reads the same global batches with the same settings (``settings``:
        epochs, batch size, ...): a shuffled DataLoader needs a seed (else each rank would
        draw its own order), and the ranks must agree on the data's length, order and a
        fingerprint of its first and last rows, and on the settings — else an error on
        every rank rather than a hang or ranks training on different data."""
        loader = feed.loader
        problem = None
        if loader.shuffle and loader.seed is None:
            problem = ("a DataLoader with shuffle=True and no seed: each rank would draw its "
                       "own order; give it seed= (the same on every rank)")
        facts = {"batches per epoch": feed.steps, "batch size": loader.batch_size,
                 "shuffle": loader.shuffle, "seed": loader.seed,
                 "samples": len(loader.dataset) if loader.map_style else None,
                 "data fingerprint": _fingerprint(loader.dataset), **settings}
        everyone = self.comm.allgather_object((facts, problem))
        problems = [p for _, p in everyone if p]
        if problems:
            raise ValueError(f"{where}: data-parallel {where.split(':')[0]} reads {problems[0]}")
        for other, (theirs, _) in enumerate(everyone):
            for key in facts:
                if theirs[key] != everyone[0][0][key]:
                    raise ValueError(
                        f"{where}: rank {other} has {key} {theirs[key]!r} where rank 0 has "
                        f"{everyone[0][0][key]!r}; every rank must read the same data (the "
                        "global batches, each keeping its slice) with the same arguments")

    def agreed(self, batches: Iterator[Any], where: str) -> Iterator[Any]:
        """The batches of a stream of unknown length, each only once every rank has one
        (one small allreduce per step): a rank that runs out early is an error on every
        rank, not a hang."""
        try:
            while True:
                batch = next(batches, None)
                have = self.sums([batch is not None])[0]
                if have == 0:
                    return
                if have != self.comm.size:
                    raise ValueError(f"{where}: {self.comm.size - int(have)} of "
                                     f"{self.comm.size} ranks ran out of data before the "
                                     "others; every rank must read the same number of global "
                                     "batches")
                yield batch
        finally:
            batches.close()  # type: ignore[attr-defined]

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on some rank (the same answer on every rank)."""
        return self.sums([bool(flag)])[0] > 0

    # ------------------------------------------------------------ steps
    def slice(self, xs: list[Any], ys: list[Any],
              ws: list[Any] | None) -> tuple[list[Any], list[Any], list[Any] | None, int]:
        """This rank's rows of a global batch, and the global batch size B."""
        total = int(xs[0].shape[0])
        start = self.rank * total // self.comm.size
        stop = (self.rank + 1) * total // self.comm.size

        def part(arrays: list[Any] | None) -> Any:
            return None if arrays is None else [a[start:stop, ...] for a in arrays]

        return part(xs), part(ys), part(ws), total

    def average_gradients(self, groups: list[Any], local: int, total: int) -> None:
        """Each flat gradient buffer ← Σ_r (n_r / B) · g_r: one allreduce per buffer."""
        for group in groups:
            if local == 0:
                group.grad[...] = 0
            elif local != total:
                group.grad *= local / total
            self.comm.allreduce_(group.grad)

    def sums(self, values: list[Any]) -> list[float]:
        """Σ over the ranks of each value (device scalars or numbers), as floats."""
        host = np.array([float(v) for v in values], dtype=np.float64)
        self.comm.allreduce_(host)
        return [float(v) for v in host]

    @contextmanager
    def global_metrics(self, metrics: list[Any]) -> Iterator[None]:
        """Within the block, each metric holds the sum of every rank's state (its
        ``additive`` attributes); its own state is put back afterwards."""
        saved = [{name: getattr(m, name) for name in (*m.additive, *m.extremes)}
                 for m in metrics]
        local = [{name: _to_host(value) for name, value in state.items()} for state in saved]
        gathered = self.comm.allgather_object(local)
        try:
            for i, metric in enumerate(metrics):
                for name in metric.additive:
                    setattr(metric, name, _add([ranks[i][name] for ranks in gathered]))
                for name, how in metric.extremes.items():
                    setattr(metric, name, _extreme([ranks[i][name] for ranks in gathered], how))
            yield
        finally:
            for metric, state in zip(metrics, saved):
                for name, value in state.items():
                    setattr(metric, name, value)

    def average_buffers(self) -> None:
        """Floating buffers (BatchNorm's running statistics) ← their mean over the ranks."""
        xp = backend.xp
        names = {n for n, _ in self.model.named_parameters()}
        for key, value in self.model.state_dict().items():
            if key not in names and xp.isdtype(value.dtype, "real floating"):
                self.comm.allreduce_(value)
                value *= 1.0 / self.comm.size


def _architecture(model: Any) -> str:
    """The model's layers and their settings as model files write them."""
    try:
        from dnn.io.specs import encode_layer

        return json.dumps(encode_layer(model), sort_keys=True, default=str)
    except Exception:  # a layer model files cannot describe: its class names at least
        return " ".join(type(layer).__name__ for layer in model.sublayers())


def _first_difference(mine: list[Any], theirs: list[Any], rank: int) -> str:
    for a, b in zip(mine, theirs):
        if a != b:
            if a[0] in ("optimizer", "losses"):
                return f"the {a[0]} are {b[1]} on rank {rank} but {a[1]} on rank 0"
            if a[0] == "trainable":
                return (f"it trains the parameters {list(b[1])} where rank 0 trains "
                        f"{list(a[1])}")
            if a[0] == "architecture":
                return "its layers or their settings differ (compare model.summary())"
            if a[0] != b[0]:
                return f"it has {b[0]!r} where rank 0 has {a[0]!r}"
            return (f"{a[0]!r} has shape {b[1]} and dtype {b[2]} on rank {rank}, shape {a[1]} "
                    f"and dtype {a[2]} on rank 0")
    return f"it has {len(theirs) - 1} arrays, rank 0 {len(mine) - 1}"


def _fingerprint(dataset: Any) -> Any:
    """Length and float64 sums of the first and last 64 rows of each array of an
    ArrayDataset (None for other datasets): cheap, and different for different data."""
    arrays = getattr(dataset, "arrays", None)
    if arrays is None:
        return None
    from dnn.data.dataset import _leaves

    sums = []
    for leaf in _leaves(list(arrays)):
        host = backend.to_numpy(leaf) if not isinstance(leaf, np.ndarray) else leaf
        ends = np.concatenate([np.asarray(host[:64]).ravel(), np.asarray(host[-64:]).ravel()])
        sums.append(round(float(np.sum(ends.astype(np.float64))), 6))
    return (len(dataset), tuple(sums))


def _to_host(value: Any) -> Any:
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, tuple):
        return tuple(_to_host(v) for v in value)
    return backend.to_numpy(value).copy()


def _extreme(values: list[Any], how: str) -> Any:
    """The min or max over the ranks that saw data, on the backend (None if none did)."""
    present = [np.asarray(v) for v in values if v is not None]
    if not present:
        return None
    value = np.asarray((np.min if how == "min" else np.max)(present))
    return backend.asarray(value, dtype=getattr(backend.xp, str(value.dtype)))


def _add(values: list[Any]) -> Any:
    """The sum of the ranks' values of one additive attribute, on the backend (None: a
    rank that saw no data)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if isinstance(present[0], tuple):
        return tuple(_add([v[k] for v in present]) for k in range(len(present[0])))
    if all(isinstance(v, (int, float)) for v in present):
        return sum(present)
    total = np.asarray(sum(np.asarray(v) for v in present))
    return backend.asarray(total, dtype=getattr(backend.xp, str(total.dtype)))
