"""Evaluation and prediction: the model in eval mode over any data, in batches.

``evaluate`` runs the compiled losses and metrics over arrays, a DataLoader or an
iterable of batches (as ``fit`` reads them); with data parallelism each rank
takes its rows of every global batch and the sums are combined over the ranks,
so every rank returns what one process would. ``predict`` returns the outputs
(NumPy in, NumPy out). Both keep no caches: the contexts of the forward passes
are dropped at once.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dnn import backend, losses
from dnn.distributed.data_parallel import DataParallel
from dnn.feeding import Feed, is_stream, make_feed
from dnn.training import check_counts, check_fit_args, check_predictions, progress, resolve_verbose


def loss_value(loss: losses.Loss, out: Any, y: Any, weight: Any, checked: bool = True) -> Any:
    """The loss of one batch; ``checked``: its labels and weights were checked where they
    came in (fit and evaluate check data once), so the loss skips its own checks."""
    return loss(out, y, sample_weight=weight, check=not checked)


def _first_array(x: Any) -> Any:
    if isinstance(x, dict):
        return next(iter(x.values()), None)
    if isinstance(x, (list, tuple)):
        return x[0] if x else None
    return x


class Inference:
    """Mixed into :class:`dnn.fitting.Trainer`; relies on its graph, losses and metrics."""

    def _global(self, metrics: list[Any]) -> Any:
        """A context in which the metrics hold every rank's counts (nothing to do in one
        process)."""
        if self._parallel is None:
            return contextlib.nullcontext()
        return self._parallel.global_metrics(metrics)

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, x: Any, y: Any = None, batch_size: int | None = None, *,
                 sample_weight: Any = None, steps: int | None = None, verbose: int = 0,
                 return_dict: bool = True) -> dict[str, float] | list[float] | float:
        """Mean loss (and each output's, with several) and every compiled metric over the
        data (arrays, a DataLoader or an iterable of batches, as ``fit`` takes them), in
        eval mode. ``return_dict=False`` gives Keras' list ``[loss, metric, ...]`` (the loss
        alone as a float when there are no metrics); ``verbose=1`` shows a progress bar (0 and
        2: none)."""
        self._check_compiled("evaluate")
        if not isinstance(return_dict, bool):
            raise TypeError(f"evaluate: return_dict must be True or False, got {return_dict!r}")
        verbose = resolve_verbose(verbose)
        check_counts(batch_size, 1, 0.0, "evaluate")
        check_fit_args(verbose=verbose, steps=steps, where="evaluate")
        feed = make_feed(self, x, y, sample_weight, steps=steps, where="evaluate",
                         batch_size=batch_size if is_stream(x, y) else batch_size or 256)
        outer, self._parallel = self._parallel, DataParallel.of(self)  # fit may be running
        try:
            if self._parallel is not None:
                self._parallel.check_data(feed, "evaluate")
            results = self._evaluate(feed, check="evaluate",
                                     verbose=verbose if self._parallel is None
                                     or self._parallel.rank == 0 else 0)
        finally:
            self._parallel = outer
            feed.close()
        if return_dict:
            return results
        values = list(results.values())
        return values[0] if len(values) == 1 else values

    def _evaluate(self, feed: Feed, check: str | None = None,
                  verbose: int = 0) -> dict[str, float]:
        for metric in self.metrics:
            metric.reset()
        sums: list[Any] = [0.0] * len(self.losses)
        seen = 0
        bar = progress(feed.steps, "evaluate", verbose)
        batches = 0
        stream = feed.once()
        if self._parallel is not None and not feed.loader.map_style:
            stream = self._parallel.agreed(stream, feed.where)
        try:
            for xs, ys, ws in stream:
                batches += 1
                bar.update(1)
                if self._parallel is not None:  # this rank's rows of the global batch
                    xs, ys, ws, _ = self._parallel.slice(xs, ys, ws)
                    if xs[0].shape[0] == 0:
                        continue
                outs, _ = self._graph.forward(xs, training=False)  # contexts dropped
                if check:  # the first batch only: outputs the losses cannot read
                    check_predictions(self, outs, check)
                    check = None
                size = xs[0].shape[0]
                ws = ws or [None] * len(outs)
                sums = [s + loss_value(loss, out, t, w) * size
                        for s, loss, out, t, w in zip(sums, self.losses, outs, ys, ws)]
                self._update_metrics(outs, ys)
                seen += size
        finally:
            bar.close()
        if batches == 0:
            raise ValueError(f"{feed.where}: the data gave no batches (an empty dataset, or a "
                             "generator that was used up)")
        feed.verify("its batches")
        backend.library.release_workspaces()
        with self._global(self.metrics):
            if self._parallel is not None:
                seen, *sums = self._parallel.sums([seen, *sums])
            per_output = [float(s) / seen for s in sums]
            total = sum(w * v for w, v in zip(self.loss_weights, per_output))
            results = {"loss": total + float(self._penalty())}
            if len(per_output) > 1:
                results.update({f"{name}_loss": v
                                for name, v in zip(self.output_names, per_output)})
            results.update({name: m.result() for name, m in self._metric_items()})
        return results

    def predict(self, x: Any, batch_size: int | None = None, *, steps: int | None = None,
                verbose: int = 0) -> Any:
        """Outputs for ``x`` (arrays, a DataLoader, or an iterable of batches ``x`` or
        ``(x, ...)``) in eval mode, in batches (a list with several outputs). NumPy in,
        NumPy out; backend in, backend out (a DataLoader or iterable: NumPy out). Keeps no
        caches. ``verbose=1`` shows a progress bar (0 and 2: none)."""
        verbose = resolve_verbose(verbose)
        check_counts(batch_size, 1, 0.0, "predict")
        check_fit_args(verbose=verbose, steps=steps, where="predict")
        if not self._graph.nodes:
            raise ValueError("predict: the model has no layers")
        stream = is_stream(x, None)
        host = stream or not backend.is_array(_first_array(x))
        feed = make_feed(self, x, batch_size=batch_size if stream else (batch_size or 256),
                         steps=steps, where="predict", targets=False)
        parts: list[list[Any]] = [[] for _ in self.outputs]
        bar = progress(feed.steps, "predict", verbose)
        try:
            for xs, _, _ in feed.once():
                outs, _ = self._graph.forward(xs, training=False)
                for part, out in zip(parts, outs):
                    part.append(out)
                bar.update(1)
        finally:
            bar.close()
            feed.close()
        if not parts[0]:
            raise ValueError("predict: the data gave no batches")
        feed.verify("its batches")
        backend.library.release_workspaces()
        ys = [backend.xp.concat(p, axis=0) for p in parts]
        ys = [backend.to_numpy(v) for v in ys] if host else ys
        return ys if self._multi_out else ys[0]

