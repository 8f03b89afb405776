"""The Keras-style training API every model shares: ``compile``, ``fit``,
``evaluate``, ``predict``, and saving.

One training step: forward through the graph (training mode) → each output's
loss, weighted → backward through the graph in reverse, as ONE backward pass
(uses of a shared layer add up; the data input gets no gradient) → penalty
gradients → ``optimizer.step`` on the parameters that were trainable at
``compile``. Loss and metric totals stay on the device; the host reads them
every ``log_every`` steps and at the end of an epoch, so a GPU is never
stalled per batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dnn import backend, losses, optim, parameter
from dnn import metrics as metric_lib
from dnn.backend import random
from dnn.callbacks import Callback
from dnn.compile_checks import check_loss_weights, check_output_activations
from dnn.history import History
from dnn.layers.base import Layer
from dnn.optim.base import check_number
from dnn.parameter import Parameter, backward_pass, flat_groups
from dnn.training import (
    batches,
    check_counts,
    check_fit_args,
    check_fit_inputs,
    check_log_keys,
    check_predictions,
    compile_metrics,
    inputs_list,
    metric_log_names,
    per_output,
    progress,
    split_validation,
)


class Trainer:
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
        self._penalized: list[Layer] = []
        self._compiled_version = -1
        #: set by compile: the next train_step checks the outputs (check_predictions) once
        self._check_next_step = False
        self.stop_training = False
        #: epochs finished by fit (saved in model files; resume with initial_epoch=model.epoch)
        self.epoch = 0
        #: RNG state at the end of the last fit, or loaded from a file (for exact resume)
        self.rng_state: dict[str, Any] | None = None

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
        if self.optimizer_parameters:
            flat_groups(self.optimizer_parameters)
        self._compiled_version = parameter.trainable_version
        self._check_next_step = True
        #: the layers with a penalty of their own (l1/l2), each once
        self._penalized = [layer for layer in self.sublayers()
                           if type(layer).regularization_loss is not Layer.regularization_loss]

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
        loss = self._train_step(xs, ys, check)[0]
        self._check_next_step = False  # only once the check passed
        return loss

    def _train_step(self, xs: list[Any], ys: list[Any],
                    check: str | None = None) -> tuple[Any, list[Any]]:
        total, per_output, outs = self._forward_backward(xs, ys, training=True, check=check)
        self.optimizer.step(self.optimizer_parameters)
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
                          check: str | None = None) -> tuple[Any, list[Any], list[Any]]:
        outs, contexts = self._graph.forward(xs, training=training)
        if check:  # the first step of a fit call: outputs the losses cannot read
            check_predictions(self, outs, check)
        total, per_output, grads = self._losses_and_grads(outs, ys)
        with backward_pass() as pass_id:
            self._graph.backward(contexts, grads, needs_input_grad=False)
            for layer in self._penalized:
                layer.regularization_grads()
        for p in self.optimizer_parameters:
            p.clear_stale_grad(pass_id)
        return total + self._penalty(), per_output, outs

    def _penalty(self) -> Any:
        return sum((layer.regularization_loss() for layer in self._penalized), 0.0)

    def _losses_and_grads(self, outs: list[Any], ys: list[Any]) -> tuple[Any, list[Any], list[Any]]:
        """Σᵢ wᵢ·Lᵢ, each Lᵢ, and each wᵢ·dLᵢ/dŷᵢ (the loss's backward right after its forward)."""
        total: Any = 0.0
        per_output, grads = [], []
        for loss, weight, out, y in zip(self.losses, self.loss_weights, outs, ys):
            value = loss(out, y)
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
        y: Any,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Sequence[Callback] | Callback = (),
        verbose: int = 1,
        seed: int | None = None,
        initial_epoch: int = 0,
        log_every: int = 25,
    ) -> History:
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns a :class:`History`.

        ``x``/``y``: arrays, or lists/dicts of arrays for several inputs/outputs.
        ``validation_split`` holds out the last fraction of the data, as Keras does.
        ``seed`` seeds shuffling and dropout for a reproducible run. Resuming with
        ``initial_epoch > 0`` restores the random generator's state from the end of
        the previous fit (or from the loaded model file) instead of re-seeding, so
        an interrupted and resumed run equals the uninterrupted one. ``callbacks`` is a
        list of :class:`~dnn.callbacks.Callback` or a single one.
        """
        self._check_compiled("fit")
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, (list, tuple)):
            callbacks = list(callbacks)
        else:
            callbacks = [callbacks]  # one callback, as Keras users often pass it
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks[{i}] must be a dnn.callbacks.Callback, got "
                                f"{type(cb).__name__}; wrap a function in "
                                "dnn.callbacks.LambdaCallback(on_epoch_end=...)")
        check_counts(batch_size, epochs, validation_split, "fit")
        check_fit_args(initial_epoch=initial_epoch, log_every=log_every)
        xs, ys = check_fit_inputs(self, x, y)
        xs, ys, validation = split_validation(self, xs, ys, validation_split, validation_data)
        if initial_epoch > 0 and self.rng_state is not None:
            random.set_state(self.rng_state)
        elif seed is not None:
            random.manual_seed(seed)
        self.rng_state = None  # save() during fit reads the live generator
        history = History()
        self.stop_training = False
        steps = math.ceil(xs[0].shape[0] / batch_size)
        for cb in callbacks:
            cb.set_model(self)
            cb.set_params({"epochs": epochs, "steps": steps, "verbose": verbose,
                           "log_every": log_every,
                           "log_keys": self._log_keys(validation is not None)})
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            logs = self._run_epoch(xs, ys, batch_size, shuffle, epoch, epochs, steps, verbose,
                                   log_every, callbacks, epoch == initial_epoch)
            if validation is not None:
                val = self._evaluate(*validation, batch_size=max(batch_size, 256))
                logs.update({f"val_{k}": v for k, v in val.items() if isinstance(v, float)})
            history.append(epoch, logs)
            self.epoch = epoch + 1
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: "
                      + ", ".join(f"{k}={v:.4f}" for k, v in logs.items()))
            if self.stop_training:
                break
        self.rng_state = random.get_state()
        for cb in callbacks:
            cb.on_train_end(history.history)
        self.history = history
        return history

    def _run_epoch(self, xs: list[Any], ys: list[Any], batch_size: int, shuffle: bool,
                   epoch: int, epochs: int, steps: int, verbose: int, log_every: int,
                   callbacks: Sequence[Callback], first: bool) -> dict[str, float]:
        for metric in self.metrics:
            metric.reset()
        loss_sum: Any = 0.0
        output_sums: list[Any] = [0.0] * len(self.losses)
        seen = 0
        bar = progress(steps, f"epoch {epoch + 1}/{epochs}", verbose)
        n_in = len(xs)
        for step, batch in enumerate(batches(xs + ys, batch_size, shuffle)):
            size = batch[0].shape[0]
            # the first step of a fit call checks the outputs (e.g. logits given to a loss
            # on probabilities); the other steps read nothing back
            loss, per_output = self._train_step(batch[:n_in], batch[n_in:],
                                                "fit" if first and step == 0 else None)
            loss_sum = loss_sum + loss * size
            if len(per_output) > 1:
                output_sums = [s + v * size for s, v in zip(output_sums, per_output)]
            seen += size
            if callbacks:
                logs = {"loss": loss}
                for cb in callbacks:
                    cb.on_batch_end(step, logs)
            if (step + 1) % log_every == 0 or step + 1 == steps:
                mean_loss = float(loss_sum) / seen  # the one host sync per log_every steps
                if not math.isfinite(mean_loss) and not self.stop_training:
                    bar.close()
                    raise FloatingPointError(
                        f"fit: the loss became {mean_loss} in epoch {epoch + 1}, between steps "
                        f"{max(step + 2 - log_every, 1)} and {step + 1}; lower the learning "
                        "rate, clip gradients (clipnorm=) or check the inputs for NaN/Inf"
                    )
                bar.set_postfix(loss=f"{mean_loss:.4f}", **{
                    name: f"{m.result():.4f}" for name, m in self._metric_items() if m.scalar})
            bar.update(1)
            if self.stop_training:
                break
        bar.close()
        logs = {"loss": float(loss_sum) / max(seen, 1)}
        if len(self.losses) > 1:
            logs.update({f"{name}_loss": float(s) / max(seen, 1)
                         for name, s in zip(self.output_names, output_sums)})
        logs.update({name: m.result() for name, m in self._metric_items() if m.scalar})
        return logs

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, x: Any, y: Any, batch_size: int = 256) -> dict[str, float]:
        """Mean loss (and each output's, with several) and every compiled metric over
        (x, y), in eval mode."""
        self._check_compiled("evaluate")
        check_counts(batch_size, 1, 0.0, "evaluate")
        xs, ys = check_fit_inputs(self, x, y, where="evaluate")
        return self._evaluate(xs, ys, batch_size, check="evaluate")

    def _evaluate(self, xs: list[Any], ys: list[Any], batch_size: int,
                  check: str | None = None) -> dict[str, float]:
        for metric in self.metrics:
            metric.reset()
        sums: list[Any] = [0.0] * len(self.losses)
        n_in = len(xs)
        for batch in batches(xs + ys, batch_size, shuffle=False):
            outs, _ = self._graph.forward(batch[:n_in], training=False)  # contexts dropped
            if check:  # the first batch only: outputs the losses cannot read
                check_predictions(self, outs, check)
                check = None
            yb = batch[n_in:]
            size = batch[0].shape[0]
            sums = [s + loss(out, t) * size for s, loss, out, t in zip(sums, self.losses, outs, yb)]
            self._update_metrics(outs, yb)
        n = xs[0].shape[0]
        per_output = [float(s) / n for s in sums]
        total = sum(w * v for w, v in zip(self.loss_weights, per_output))
        results = {"loss": total + float(self._penalty())}
        if len(per_output) > 1:
            results.update({f"{name}_loss": v for name, v in zip(self.output_names, per_output)})
        results.update({name: m.result() for name, m in self._metric_items()})
        return results

    def predict(self, x: Any, batch_size: int = 256) -> Any:
        """Outputs for ``x`` in eval mode, in batches (a list with several outputs).
        NumPy in, NumPy out; backend in, backend out. Keeps no caches."""
        check_counts(batch_size, 1, 0.0, "predict")
        if not self._graph.nodes:
            raise ValueError("predict: the model has no layers")
        first = x if not isinstance(x, (list, tuple, dict)) else next(iter(
            x.values() if isinstance(x, dict) else x), None)
        host = not backend.is_array(first)
        xs = inputs_list(self, x, "predict")
        parts: list[list[Any]] = [[] for _ in self.outputs]
        for batch in batches(xs, batch_size, shuffle=False):
            outs, _ = self._graph.forward(batch, training=False)
            for part, out in zip(parts, outs):
                part.append(out)
        ys = [backend.xp.concat(p, axis=0) for p in parts]
        ys = [backend.to_numpy(v) for v in ys] if host else ys
        return ys if self._multi_out else ys[0]

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

