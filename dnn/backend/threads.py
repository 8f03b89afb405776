"""Elementwise work on every CPU core: independent tasks on a pool of threads.

The matrix products already run on all the cores the BLAS library uses; the
elementwise passes around them (the optimizer's update of the flat parameter
buffer, above all) ran on one. NumPy releases the GIL inside its ufuncs, so
cache-sized chunks of a flat buffer, updated in place on a few Python threads,
run in parallel with no copy and no compiled extension. :func:`run` executes a
list of such tasks: the calling thread takes the first, the pool the rest.

``dnn.set_num_threads(n)`` sets how many threads take part (as
``torch.set_num_threads``), here and in the fused kernels of
:mod:`dnn.backend.kernels`. The default is ONE: measured on a 2-core machine
(the MLP 784-512-256-10 epoch, 2 BLAS threads), a second elementwise thread
made the epoch slower, not faster — 1038 ms against 965 ms with the fused Adam
kernel, 3079 ms with Numba's OpenMP layer (dnn now uses Numba's work queue), and
no gain for the NumPy chunks (0.96 against 0.88 ms per update) — because the BLAS
library's worker threads keep spinning on the cores between the matrix products
(an Adam kernel right after a GEMM: 0.35 ms on two threads, 0.33 ms on one, 0.15 ms
on two with no GEMM before it). Where cores are plentiful,
``dnn.set_num_threads(n)`` spreads the updates over n of them. One thread means no
pool at all: the tasks run in order on the caller, and the kernels run their
serial build.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_threads = 1
_pool: ThreadPoolExecutor | None = None


def num_threads() -> int:
    """How many threads elementwise work is spread over (1 unless set)."""
    return _threads


def set_num_threads(threads: int) -> None:
    """Spread elementwise work over ``threads`` threads (1: none besides the caller)."""
    global _threads, _pool
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"set_num_threads: threads must be an int >= 1, got {threads!r}")
    _threads = threads
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


def run(tasks: list[Callable[[], Any]]) -> None:
    """Run the independent ``tasks``: on the calling thread and ``num_threads() - 1`` pool
    threads; returns when all are done (an exception in one is raised here)."""
    global _pool
    if len(tasks) <= 1 or num_threads() == 1:
        for task in tasks:
            task()
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(num_threads() - 1, thread_name_prefix="dnn-elementwise")
    futures = [_pool.submit(task) for task in tasks[1:]]
    try:
        tasks[0]()
    finally:
        for future in futures:
            future.result()
