"""The Keras-style training API every model shares: ``compile``, ``fit``, and saving
(``evaluate`` and ``predict`` come from :mod:`dnn.inference`).

One training step: forward through the graph (training mode) → each output's
loss, weighted → backward through the graph in reverse, as ONE backward pass
(uses of a shared layer add up; the data input gets no gradient) → penalty
gradients → ``optimizer.step`` on the parameters that were trainable at
``compile``. Loss and metric totals stay on the device; the host reads them
every ``log_every`` steps and at the end of an epoch, so a GPU is never
stalled per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dnn import backend, losses, optim, parameter
from dnn import metrics as metric_lib
from dnn.backend import host_memory, random
from dnn.callbacks import Callback
from dnn.callbacks.base import CallbackList
from dnn.callbacks.progress import NaNGuard, ProgbarLogger
from dnn.compile_checks import check_loss_weights, check_output_activations, check_reductions
from dnn.distributed.data_parallel import DataParallel, warn_if_alone
from dnn.feeding import Feed, is_stream, make_feed, validation_feed
from dnn.history import History
from dnn.inference import Inference, loss_value
from dnn.optim.base import check_number
from dnn.parameter import Parameter, add_penalty_grads, backward_pass, flat_groups, penalty
from dnn.training import (
    check_counts,
    check_fit_args,
    check_log_keys,
    check_predictions,
    compile_metrics,
    metric_log_names,
    per_output,
    resolve_verbose,
    split_validation,
)


def _callback_list(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list of Callback (one callback alone, as Keras users pass it)."""
    if callbacks is None:
        callbacks = []
    elif isinstance(callbacks, (list, tuple)):
        callbacks = list(callbacks)
    else:
        callbacks = [callbacks]
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks[{i}] must be a dnn.callbacks.Callback, got "
                            f"{type(cb).__name__}; wrap a function in "
                            "dnn.callbacks.LambdaCallback(on_epoch_end=...)")
    return callbacks


class Trainer(Inference):
    """Mixed into :class:`dnn.Model`; relies on its graph, inputs and outputs."""

    def __init__(self) -> None:
        #: the loss (a list of them, one per output, for a model with several outputs)
        self.loss: Any = None
        self.losses: list[losses.Loss] = []
        self.loss_weights: list[float] = []
        self.optimizer: optim.Optimizer | None = None
        #: compiled metrics, one list per output
        self.output_metrics: list[list[metric_lib.Metric]] = []
        #: the parameters the optimizer updates: the trainable ones at ``compile``
        self.optimizer_parameters: list[Parameter] = []
        self._frozen_at_compile: list[Parameter] = []
        self._penalized: list[Parameter] = []
        self._compiled_version = -1
        #: set by compile: the next train_step checks the outputs (check_predictions) once
        self._check_next_step = False
        self.stop_training = False
        #: epochs finished by fit (saved in model files; resume with initial_epoch=model.epoch)
        self.epoch = 0
        #: RNG state at the end of the last fit, or loaded from a file (for exact resume)
        self.rng_state: dict[str, Any] | None = None
        #: the data-parallel side of the running fit/evaluate (None in one process)
        self._parallel: DataParallel | None = None
        self._batch_losses = False
        self._flat_groups: list[Any] = []

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        loss: Any = "SoftmaxCrossEntropy",
        optimizer: str | optim.Optimizer = "adam",
        metrics: Any = (),
        loss_weights: Sequence[float] | dict[str, float] | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        """Choose the loss(es), optimizer and metrics; freeze the set of trainable parameters.

        With several outputs, ``loss``, ``loss_weights`` and ``metrics`` may be lists
        (one entry per output) or dicts keyed by output name; one loss or a flat
        metric list applies to every output. ``clipnorm`` / ``clipvalue`` set the
        optimizer's gradient clipping. Changing ``trainable`` afterwards takes effect
        at the next ``compile``.
        """
        names = self.output_names
        self.losses = [losses.get(v) for v in per_output(loss, names, "loss")]
        self.loss = self.losses[0] if len(names) == 1 else list(self.losses)
        check_reductions(self.losses, names)
        weights = [1.0] * len(names) if loss_weights is None else per_output(
            loss_weights, names, "loss_weights", broadcast=False)
        self.loss_weights = check_loss_weights(weights, names)
        check_output_activations(self, names)
        self.optimizer = optim.get(optimizer)
        for arg, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
            if value is not None:
                setattr(self.optimizer, arg, check_number("compile", arg, value, 0.0, low_open=True))
        self.output_metrics = compile_metrics(metrics, names, self.losses)
        check_log_keys(names, self._metric_items())
        params = self.parameters()
        self.optimizer_parameters = [p for p in params if p.trainable]
        self._frozen_at_compile = [p for p in params if not p.trainable]
        for p in self._frozen_at_compile:
            p.ungroup()  # no flat-buffer slot, no optimizer state for a frozen weight
        self._flat_groups = flat_groups(self.optimizer_parameters) if \
            self.optimizer_parameters else []
        self._compiled_version = parameter.trainable_version
        self._check_next_step = True
        #: the parameters with an l1/l2 penalty, each once
        self._penalized = [p for p in params if p.l1 or p.l2]

    @property
    def metrics(self) -> list[metric_lib.Metric]:
        """Every compiled metric (of every output); settable for a one-output model."""
        return [m for ms in self.output_metrics for m in ms]

    @metrics.setter
    def metrics(self, metrics: Sequence[Any]) -> None:
        output_metrics = compile_metrics(metrics, self.output_names, self.losses)
        check_log_keys(self.output_names, metric_log_names(self.output_names, output_metrics))
        self.output_metrics = output_metrics

    def _log_keys(self, validation: bool) -> list[str]:
        """The keys of the epoch logs ``fit`` will produce (callbacks check against them)."""
        keys = ["loss"]
        if len(self.losses) > 1:
            keys += [f"{name}_loss" for name in self.output_names]
        keys += [name for name, m in self._metric_items() if m.scalar]
        return keys + ([f"val_{k}" for k in keys] if validation else [])

    def _metric_items(self) -> list[tuple[str, metric_lib.Metric]]:
        """(log name, metric): ``accuracy``, or ``<output>_accuracy`` with several outputs;
        metrics named alike get distinct keys (``accuracy``, ``accuracy_1``)."""
        return metric_log_names(self.output_names, self.output_metrics)

    def _check_compiled(self, what: str) -> None:
        if self.optimizer is None or not self.losses:
            raise RuntimeError(f"{type(self).__name__}.{what}: call model.compile(loss=..., "
                               "optimizer=...) first")
        if not self._graph.nodes:
            raise ValueError(f"{what}: the model has no layers")
        if parameter.trainable_version == self._compiled_version:
            return  # no parameter's ``trainable`` changed since compile
        changed = [p for p in self.optimizer_parameters if not p.trainable]
        changed += [p for p in self._frozen_at_compile if p.trainable]
        if changed and what in ("fit", "train_step"):
            raise RuntimeError(
                f"{type(self).__name__}.{what}: 'trainable' of {len(changed)} parameter(s) "
                f"(e.g. {changed[0].name!r}) changed after compile(); call model.compile(...) "
                "again for the change to take effect")

    # ------------------------------------------------------------------ one step
    def train_step(self, x: Any, y: Any) -> Any:
        """One optimizer step on a batch (backend arrays, or lists of them for several
        inputs/outputs); returns the loss (a 0-d device array). The first call after
        ``compile`` checks the outputs as ``fit`` does on its first batch (logits given to
        a loss on probabilities, for one, are refused)."""
        self._check_compiled("train_step")
        xs = list(x) if self._multi_in else [x]
        ys = list(y) if self._multi_out else [y]
        check = "train_step" if self._check_next_step else None
        loss = self._train_step(xs, ys, check=check, checked=False)[0]
        self._check_next_step = False  # only once the check passed
        return loss

    def _train_step(self, xs: list[Any], ys: list[Any], ws: list[Any] | None = None,
                    check: str | None = None, batch: int = 0,
                    checked: bool = True) -> tuple[Any, list[Any]]:
        """One step on this process's rows of a global batch of ``batch`` samples (with
        data parallelism; else all of it): forward, backward, the gradients averaged over
        the ranks, the optimizer step. ``checked``: the targets were checked where they
        came in (fit's feed), so the losses need not check them again."""
        host_memory.keep_freed_pages()  # from the first training step on (once)
        local = int(xs[0].shape[0])
        if local:
            total, per_output, outs = self._forward_backward(xs, ys, training=True,
                                                             check=check, ws=ws, checked=checked)
        else:  # a rank whose slice of the global batch is empty still joins the average
            total, per_output, outs = 0.0, [0.0] * len(self.losses), None
        if self._parallel is not None:
            self._parallel.average_gradients(self._flat_groups, local, batch or local)
        self.optimizer.step(self.optimizer_parameters)
        if outs is not None:
            self._update_metrics(outs, ys)
        return total, per_output

    def compute_gradients(self, xs: list[Any], ys: list[Any], backward: bool = True) -> Any:
        """The training loss (Σᵢ wᵢ·Lᵢ + penalties) on one batch (lists of backend arrays,
        one per input/output) in eval mode, and with ``backward`` every trainable
        parameter's ``grad`` — a training step without the optimizer (gradient checks)."""
        if not backward:
            outs, _ = self._graph.forward(xs, training=False)
            return self._losses_and_grads(outs, ys)[0] + self._penalty()
        return self._forward_backward(xs, ys, training=False)[0]

    def _forward_backward(self, xs: list[Any], ys: list[Any], training: bool,
                          check: str | None = None, ws: list[Any] | None = None,
                          checked: bool = True) -> tuple[Any, list[Any], list[Any]]:
        outs, contexts = self._graph.forward(xs, training=training)
        if check:  # the first step of a fit call: outputs the losses cannot read
            check_predictions(self, outs, check)
        total, per_output, grads = self._losses_and_grads(outs, ys, ws, checked)
        with backward_pass() as pass_id:
            self._graph.backward(contexts, grads, needs_input_grad=False)
            add_penalty_grads(self._penalized)
        for p in self.optimizer_parameters:
            p.clear_stale_grad(pass_id)
        return total + self._penalty(), per_output, outs

    def _penalty(self) -> Any:
        return penalty(self._penalized)

    def _losses_and_grads(self, outs: list[Any], ys: list[Any], ws: list[Any] | None = None,
                          checked: bool = True) -> tuple[Any, list[Any], list[Any]]:
        """Σᵢ wᵢ·Lᵢ, each Lᵢ, and each wᵢ·dLᵢ/dŷᵢ (the loss's backward right after its
        forward); ``ws``: per-sample weights, one array per output (or None); ``checked``:
        whether the targets and weights were checked already."""
        total: Any = 0.0
        per_output, grads = [], []
        for i, (loss, weight, out, y) in enumerate(zip(self.losses, self.loss_weights, outs, ys)):
            value = loss_value(loss, out, y, None if ws is None else ws[i], checked)
            grad = loss.backward()
            per_output.append(value)
            total = total + (value if weight == 1.0 else weight * value)
            grads.append(grad if weight == 1.0 else weight * grad)
        return total, per_output, grads

    def _update_metrics(self, outs: list[Any], ys: list[Any]) -> None:
        for ms, out, y in zip(self.output_metrics, outs, ys):
            for metric in ms:
                metric.update(out, y)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: Any,
        y: Any = None,
        epochs: int = 1,
        batch_size: int | None = None,
        validation_data: Any = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Sequence[Callback] | Callback = (),
        verbose: int = 1,
        seed: int | None = None,
        initial_epoch: int = 0,
        log_every: int = 25,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
    ) -> History:
        """Train for ``epochs`` passes over the data in mini-batches; returns a :class:`History`.

        The data: arrays ``x``, ``y`` (lists or dicts of arrays for several inputs/outputs;
        ``batch_size`` 32 unless given), or a :class:`~dnn.data.DataLoader`, or any iterable
        of batches ``(x, y)`` / ``(x, y, sample_weight)`` as ``x`` alone (``y=None``; a
        generator that never ends needs ``steps_per_epoch``). ``sample_weight`` (one weight
        per sample) and ``class_weight`` ({class: weight}) scale each sample's loss.
        ``validation_split`` holds out the last fraction of array data, as Keras does;
        ``validation_data`` is ``(x, y)``, ``(x, y, sample_weight)``, a DataLoader or an
        iterable (``validation_steps`` batches of it, or all). ``seed`` seeds shuffling and
        dropout for a reproducible run. Resuming with ``initial_epoch > 0`` restores the
        random generator's state from the end of the previous fit (or from the loaded model
        file) instead of re-seeding, so an interrupted and resumed run equals the
        uninterrupted one. ``verbose``: 0 silent, 1 a progress bar and a line per epoch, 2
        the line only; ``"auto"``: 1 on a terminal, else 2. ``callbacks``: a list of
        :class:`~dnn.callbacks.Callback` or one.
        """
        self._check_compiled("fit")
        verbose = resolve_verbose(verbose)
        callbacks = _callback_list(callbacks)
        check_counts(batch_size, epochs, validation_split, "fit")
        check_fit_args(initial_epoch=initial_epoch, log_every=log_every, verbose=verbose,
                       steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
        if validation_split and (is_stream(x, y) or sample_weight is not None):
            raise ValueError("fit: validation_split works on x, y arrays (without sample_weight); "
                             "with a DataLoader, a generator or sample weights pass "
                             "validation_data= instead")
        if validation_split:
            x, y, validation_data = split_validation(self, x, y, validation_split,
                                                     validation_data)
        parallel = DataParallel.of(self)
        data_seed = None
        warn_if_alone("fit")
        if parallel is not None:  # every rank: the same model, rank 0's weights
            parallel.start("fit")
            data_seed = parallel.shared_seed(seed)
            verbose = verbose if parallel.rank == 0 else 0
            callbacks = [cb for cb in callbacks if parallel.rank == 0 or not cb.rank_zero_only]
        feed = make_feed(self, x, y, sample_weight, batch_size=batch_size, shuffle=shuffle,
                         steps=steps_per_epoch, where="fit", class_weight=class_weight,
                         seed=data_seed)
        validation = None if validation_data is None else validation_feed(
            self, validation_data, max(batch_size or 32, 256), validation_steps)
        if parallel is not None:
            parallel.check_data(feed, "fit", epochs=epochs, initial_epoch=initial_epoch,
                                log_every=log_every, validation=validation is not None)
            if validation is not None:
                parallel.check_data(validation, "fit: validation_data")
        elif initial_epoch > 0 and self.rng_state is not None:
            random.set_state(self.rng_state)
        elif seed is not None:
            random.manual_seed(seed)
        self.rng_state = None  # save() during fit reads the live generator
        history, progbar = History(), ProgbarLogger(verbose)
        params = {"epochs": epochs, "steps": feed.steps, "verbose": verbose,
                  "log_every": log_every, "log_keys": self._log_keys(validation is not None)}
        hooks = CallbackList([history, *callbacks, progbar, NaNGuard()], self, params)
        # with data parallelism a callback that reads each batch's loss gets the global
        # batch's: decided alike on every rank (the bar only counts batches)
        self._batch_losses = parallel is not None and parallel.any_rank(
            any(not isinstance(cb, ProgbarLogger) for cb in hooks.batch_listeners))
        self.stop_training = False
        self._parallel = parallel
        hooks.train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                if parallel is not None:  # this rank's own Dropout draws for this epoch
                    random.manual_seed(parallel.rank_seed(data_seed, epoch))
                hooks.epoch_begin(epoch)
                logs = self._run_epoch(feed, epoch, log_every, hooks, epoch == initial_epoch)
                if parallel is not None:
                    parallel.average_buffers()
                if validation is not None:
                    val = self._evaluate(validation)
                    logs.update({f"val_{k}": v for k, v in val.items() if isinstance(v, float)})
                self.epoch = epoch + 1
                hooks.epoch_end(epoch, logs)
                if self.stop_training:
                    break
        finally:
            self._parallel = None
            progbar.close()
            feed.close()
            if validation is not None:
                validation.close()
            backend.library.release_workspaces()  # nothing held at rest between fits
        self.rng_state = random.get_state()
        hooks.train_end(history.history)
        self.history = history
        if parallel is not None:  # files rank 0 wrote (checkpoints) exist when fit returns
            parallel.comm.barrier()
        return history

    def _run_epoch(self, feed: Feed, epoch: int, log_every: int, hooks: CallbackList,
                   first: bool) -> dict[str, float]:
        for metric in self.metrics:
            metric.reset()
        loss_sum: Any = 0.0
        output_sums: list[Any] = [0.0] * len(self.losses)
        seen = checked = 0
        step = -1
        steps = feed.steps
        batches = feed.epoch(epoch)
        if self._parallel is not None and not feed.loader.map_style:
            batches = self._parallel.agreed(batches, f"fit: epoch {epoch + 1}")
        try:
            for step, (xs, ys, ws) in enumerate(batches):
                batch = int(xs[0].shape[0])
                if self._parallel is not None:  # this rank's rows of the global batch
                    xs, ys, ws, batch = self._parallel.slice(xs, ys, ws)
                size = xs[0].shape[0]
                if hooks.wants_batches:
                    hooks.batch_begin(step, {"size": size})
                # the first step of a fit call checks the outputs (e.g. logits given to a loss
                # on probabilities); the other steps read nothing back
                loss, per_output = self._train_step(xs, ys, ws,
                                                    "fit" if first and step == 0 else None, batch)
                loss_sum = loss_sum + loss * size
                if len(per_output) > 1:
                    output_sums = [s + v * size for s, v in zip(output_sums, per_output)]
                seen += size
                if hooks.wants_batches:
                    if self._batch_losses:  # the global batch's loss on every rank
                        loss = self._parallel.sums([loss * size])[0] / batch
                    hooks.batch_end(step, {"loss": loss, "size": size})
                if (step + 1) % log_every == 0 or step + 1 == steps:
                    # the one host sync per log_every steps
                    feed.verify(f"steps {checked + 1}-{step + 1} of epoch {epoch + 1}")
                    checked = step + 1
                    hooks.log(step, self._running_logs(loss_sum, output_sums, seen, final=False))
                if self.stop_training:
                    break
        finally:
            batches.close()
        if step < 0:
            raise ValueError(f"fit: epoch {epoch + 1} got no batches from the data (an empty "
                             "dataset, or a generator that was used up: pass steps_per_epoch= "
                             "or a DataLoader, which can be read again every epoch)")
        feed.verify(f"steps {checked + 1}-{step + 1} of epoch {epoch + 1}")
        return self._running_logs(loss_sum, output_sums, seen, final=True)

    def _running_logs(self, loss_sum: Any, output_sums: list[Any], seen: int,
                      final: bool) -> dict[str, float]:
        """The epoch's means so far as floats (loss, each output's loss, scalar metrics) —
        over every rank's samples with data parallelism."""
        with self._global(self.metrics):
            if self._parallel is not None:
                loss_sum, seen, *output_sums = self._parallel.sums([loss_sum, seen, *output_sums])
            logs = {"loss": float(loss_sum) / seen}
            if len(self.losses) > 1 and final:
                logs.update({f"{name}_loss": float(s) / seen
                             for name, s in zip(self.output_names, output_sums)})
            logs.update({name: m.result() for name, m in self._metric_items() if m.scalar})
        return logs

    def find_lr(self, x: Any, y: Any = None, **kwargs: Any) -> Any:
        """The learning-rate range test (:func:`dnn.callbacks.find_lr`): trains briefly with a
        rising rate, restores the model, and returns the :class:`~dnn.callbacks.LRFinder`
        (``.suggestion()``, ``.plot()``)."""
        from dnn.callbacks.lr_finder import find_lr

        return find_lr(self, x, y, **kwargs)

    # ------------------------------------------------------------------ files
    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of layers, output shapes, parameter counts and inbound layers (printed).

        ``input_shape`` (batch axis included, e.g. ``(1, 1, 28, 28)``) is needed only by a
        Sequential built without a ``dnn.Input`` whose first layer has no ``in_features``."""
        from dnn.summary import summarize

        text = summarize(self, input_shape)
        print(text)
        return text

    def save(self, path: str) -> None:
        """Write the model (architecture, weights, optimizer state) to one file."""
        from dnn.io import save_model

        save_model(self, path)

    def save_weights(self, path: str) -> None:
        """Write only the parameters and buffers (``state_dict()``) to one file."""
        from dnn.io import save_weights

        save_weights(self, path)

    def load_weights(self, path: str) -> None:
        """Load parameters and buffers saved by ``save_weights`` or ``save``."""
        from dnn.io import load_weights

        load_weights(self, path)

