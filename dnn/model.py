"""``Sequential``: a stack of layers that is itself a layer, and the Keras-style
training API (``compile``, ``fit``, ``evaluate``, ``predict``, ``summary``).

One training step is forward → loss → loss.backward → backward through the
layers in reverse → ``optimizer.step``. Loss and metric totals stay on the
device; the host reads them every ``log_every`` steps and at the end of an
epoch, so a GPU is never stalled per batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dnn import backend, losses, optim
from dnn import metrics as metric_lib
from dnn.backend import random
from dnn.callbacks import Callback
from dnn.history import History
from dnn.layers.base import Layer, register
from dnn.parameter import Parameter, flat_groups
from dnn.training import (
    batches,
    check_fit_args,
    check_fit_inputs,
    check_predict_inputs,
    check_validation_data,
    progress,
)


@register
class Sequential(Layer):
    """Layers applied in order: y = f_L(…f_2(f_1(x))); backward runs them in reverse."""

    def __init__(self, layers: Sequence[Layer] = ()) -> None:
        self.layers: list[Layer] = []
        for layer in layers:
            self.add(layer)
        self.loss: losses.Loss | None = None
        self.optimizer: optim.Optimizer | None = None
        self.metrics: list[metric_lib.Metric] = []
        self.stop_training = False
        self._input_shape: tuple[int, ...] | None = None
        #: epochs finished by fit (saved in model files; resume with initial_epoch=model.epoch)
        self.epoch = 0
        #: RNG state at the end of the last fit, or loaded from a file (for exact resume)
        self._rng_state: dict[str, Any] | None = None

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential: layer {len(self.layers)} must be a dnn.layers.Layer, "
                f"got {type(layer).__name__}"
            )
        layer._label = f"layer {len(self.layers)} ({type(layer).__name__})"
        self.layers.append(layer)

    # ------------------------------------------------------------- layer protocol
    def forward(self, x: Any, *, training: bool = False) -> Any:
        self._input_shape = tuple(x.shape)
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad: Any) -> Any:
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def _backward_for_step(self, grad: Any) -> None:
        """``backward`` for a training step: the gradient w.r.t. the data is never used,
        so a first layer that can (``skips_input_grad``, e.g. Dense) skips computing it —
        for an MLP on images that is a quarter of the matrix products."""
        first = self.layers[0] if self.layers else None
        for layer in reversed(self.layers[1:]):
            grad = layer.backward(grad)
        if first is not None:
            if getattr(first, "skips_input_grad", False):
                first.backward(grad, input_grad=False)
            else:
                first.backward(grad)

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def regularization_loss(self) -> Any:
        return sum((layer.regularization_loss() for layer in self.layers), 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {
            f"{i}.{key}": value
            for i, layer in enumerate(self.layers)
            for key, value in layer.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, layer in enumerate(self.layers):
            prefix = f"{i}."
            layer.load_state_dict(
                {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            )
        known = {f"{i}.{k}" for i, layer in enumerate(self.layers) for k in layer.state_dict()}
        if unexpected := set(state) - known:
            raise KeyError(f"Sequential.load_state_dict: unexpected keys {sorted(unexpected)}")

    def get_config(self) -> dict[str, Any]:
        return {"layers": [{"type": type(lay).__name__, "config": lay.get_config()}
                           for lay in self.layers]}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    # ------------------------------------------------------------- training API
    def compile(
        self,
        loss: str | losses.Loss = "SoftmaxCrossEntropy",
        optimizer: str | optim.Optimizer = "adam",
        metrics: Sequence[str | metric_lib.Metric] = (),
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        """Choose the loss, optimizer and metrics; packs parameters into flat buffers.

        ``clipnorm`` / ``clipvalue`` set the optimizer's gradient clipping (global
        norm / per element), as the optimizer arguments of the same names do.
        """
        self.loss = losses.get(loss)
        self.optimizer = optim.get(optimizer)
        for arg, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
            if value is not None:
                if not value > 0:
                    raise ValueError(f"compile: {arg} must be > 0, got {value!r}")
                setattr(self.optimizer, arg, float(value))
        self.metrics = [metric_lib.get(m) for m in metrics]
        self._params = self.parameters()
        if self._params:
            flat_groups(self._params)

    def train_step(self, x: Any, y: Any) -> Any:
        """One optimizer step on a batch; returns the loss (a 0-d device array)."""
        self._check_compiled("train_step")
        y_pred = self.forward(x, training=True)
        loss = self.loss(y_pred, y)
        self._backward_for_step(self.loss.backward())
        penalty = self.regularization_loss()
        self.optimizer.step(self._params)
        for metric in self.metrics:
            metric.update(y_pred, y)
        return loss + penalty

    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Sequence[Callback] = (),
        verbose: int = 1,
        seed: int | None = None,
        initial_epoch: int = 0,
        log_every: int = 25,
    ) -> History:
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns a :class:`History`.

        ``validation_split`` holds out the last fraction of (x, y), as Keras does.
        ``seed`` seeds shuffling and dropout for a reproducible run. Resuming with
        ``initial_epoch > 0`` restores the random generator's state from the end of
        the previous fit (or from the loaded model file) instead of re-seeding, so
        an interrupted and resumed run equals the uninterrupted one.
        """
        self._check_compiled("fit")
        check_fit_args(initial_epoch=initial_epoch, log_every=log_every)
        x, y = check_fit_inputs(self, x, y, batch_size, epochs, validation_split)
        if validation_split:
            split = x.shape[0] - math.ceil(x.shape[0] * validation_split)
            validation_data = (x[split:, ...], y[split:, ...])
            x, y = x[:split, ...], y[:split, ...]
        if validation_data is not None:
            validation_data = check_validation_data(self, validation_data, batch_size)
        if initial_epoch > 0 and self._rng_state is not None:
            random.set_state(self._rng_state)
        elif seed is not None:
            random.manual_seed(seed)
        self._rng_state = None  # save() during fit reads the live generator
        history = History()
        self.stop_training = False
        steps = math.ceil(x.shape[0] / batch_size)
        for cb in callbacks:
            cb.set_model(self)
            cb.set_params({"epochs": epochs, "steps": steps, "verbose": verbose,
                           "log_every": log_every})
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            logs = self._run_epoch(x, y, batch_size, shuffle, epoch, epochs, steps, verbose,
                                   log_every, callbacks)
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
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
        self._rng_state = random.get_state()
        for cb in callbacks:
            cb.on_train_end(history.history)
        self.history = history
        return history

    def _run_epoch(self, x: Any, y: Any, batch_size: int, shuffle: bool, epoch: int,
                   epochs: int, steps: int, verbose: int, log_every: int,
                   callbacks: Sequence[Callback]) -> dict[str, float]:
        for metric in self.metrics:
            metric.reset()
        loss_sum: Any = 0.0
        seen = 0
        bar = progress(steps, f"epoch {epoch + 1}/{epochs}", verbose)
        for step, (xb, yb) in enumerate(batches(x, y, batch_size, shuffle)):
            loss = self.train_step(xb, yb)
            loss_sum = loss_sum + loss * xb.shape[0]
            seen += xb.shape[0]
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
                bar.set_postfix(loss=f"{mean_loss:.4f}",
                                **{m.name: f"{m.result():.4f}" for m in self.metrics if m.scalar})
            bar.update(1)
            if self.stop_training:
                break
        bar.close()
        logs = {"loss": float(loss_sum) / max(seen, 1)}
        logs.update({m.name: m.result() for m in self.metrics if m.scalar})
        return logs

    def evaluate(self, x: Any, y: Any, batch_size: int = 256) -> dict[str, float]:
        """Mean loss and each compiled metric over (x, y), in eval mode."""
        self._check_compiled("evaluate")
        x, y = check_fit_inputs(self, x, y, batch_size, 1, 0.0, where="evaluate")
        for metric in self.metrics:
            metric.reset()
        loss_sum: Any = 0.0
        for xb, yb in batches(x, y, batch_size, shuffle=False):
            y_pred = self.forward(xb, training=False)
            loss_sum = loss_sum + self.loss(y_pred, yb) * xb.shape[0]
            for metric in self.metrics:
                metric.update(y_pred, yb)
        penalty = self.regularization_loss()
        results = {"loss": float(loss_sum) / x.shape[0] + float(penalty)}
        results.update({m.name: m.result() for m in self.metrics})
        return results

    def predict(self, x: Any, batch_size: int = 256) -> Any:
        """Outputs for ``x`` in eval mode, in batches. NumPy in, NumPy out; backend in, backend out."""
        host = not backend.is_array(x)
        x_dev = check_predict_inputs(self, x, batch_size)
        outputs = [self.forward(xb, training=False)
                   for xb, _ in batches(x_dev, x_dev, batch_size, shuffle=False)]
        y = backend.xp.concat(outputs, axis=0)
        return backend.to_numpy(y) if host else y

    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of layers, output shapes and parameter counts (also printed)."""
        shape = input_shape or self._input_shape or _guess_input_shape(self.layers)
        rows = [("#", "layer", "output shape", "params")]
        for i, layer in enumerate(self.layers):
            shape = layer.output_shape(shape) if shape is not None else None
            shown = "?" if shape is None else str((None, *shape[1:]))
            rows.append((str(i), type(layer).__name__, shown, f"{sum(p.size for p in layer.parameters()):,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        total = sum(p.size for p in self.parameters())
        lines.append(f"total parameters: {total:,}")
        text = "\n".join(lines)
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
        """Load parameters and buffers saved by ``save_weights`` or ``save`` (keys and shapes must match)."""
        from dnn.io import load_weights

        load_weights(self, path)

    # ------------------------------------------------------------- helpers
    def _check_compiled(self, what: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"Sequential.{what}: call model.compile(loss=..., optimizer=...) first")


def _guess_input_shape(layers: list[Layer]) -> tuple[int, ...] | None:
    first = layers[0] if layers else None
    features = getattr(first, "in_features", None)
    return (1, features) if features else None

