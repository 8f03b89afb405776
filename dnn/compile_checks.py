"""Checks ``compile`` makes on its arguments against the model: loss weights, and a
loss on logits after an output layer that already applies softmax/sigmoid."""

from __future__ import annotations

from typing import Any

from dnn.optim.base import check_number


def check_loss_weights(weights: list[Any], names: list[str]) -> list[float]:
    """Finite numbers >= 0, at least one > 0: a negative weight is gradient ascent on that
    loss, NaN/inf poison every step, and all zeros train nothing."""
    label = (lambda i: "loss_weights") if len(names) == 1 else (
        lambda i: f"loss_weights[{names[i]!r}]")
    values = [check_number("compile", label(i), w, 0.0) for i, w in enumerate(weights)]
    if values and not any(v > 0 for v in values):
        raise ValueError(f"compile: at least one of loss_weights must be > 0, got {weights!r} "
                         "(with every weight 0 nothing is trained)")
    return values


def check_reductions(losses: list[Any], names: list[str]) -> None:
    """``fit`` minimises one number per batch: a loss with ``reduction="none"`` (a vector
    per sample) is for use outside ``fit``."""
    for name, loss in zip(names, losses):
        if getattr(loss, "reduction", "mean") == "none":
            label = "" if len(names) == 1 else f" (output {name!r})"
            raise ValueError(
                f"compile: {type(loss).__name__}(reduction='none'){label} returns one loss per "
                "sample, but training needs one number per batch; use reduction='mean' (the "
                "default) or 'sum', and pass per-sample weights to fit(sample_weight=...)")


def _output_layer(tensor: Any) -> Any:
    """The layer that produces a model output (looking into a nested one-output model)."""
    layer = getattr(getattr(tensor, "node", None), "layer", None)
    while layer is not None and isinstance(getattr(layer, "outputs", None), list) \
            and len(layer.outputs) == 1 and hasattr(layer.outputs[0], "node"):
        inner = getattr(layer.outputs[0].node, "layer", None) if layer.outputs[0].node else None
        if inner is None or inner is layer:
            break
        layer = inner
    return layer


def check_output_activations(model: Any, names: list[str]) -> None:
    """A loss on logits after a Softmax/Sigmoid output layer applies the activation twice
    (softmax of probabilities): it trains, slowly and to a wrong optimum, with no error.
    Refuse the pairing at compile, naming the loss to use instead."""
    from dnn.layers import Sigmoid, Softmax

    try:
        outputs = list(model.outputs)
    except Exception:  # a model with no layers yet: fit reports it
        return
    for i, (tensor, loss) in enumerate(zip(outputs, model.losses)):
        if not getattr(loss, "from_logits", False):
            continue
        layer = _output_layer(tensor)
        for activation, prob_loss in ((Softmax, "CategoricalCrossentropy"),
                                      (Sigmoid, "BinaryCrossentropy")):
            if isinstance(layer, activation):
                where = "" if len(names) == 1 else f"output {names[i]!r}: "
                raise ValueError(
                    f"compile: {where}{loss!r} reads the output as logits (raw scores) and "
                    f"applies {activation.__name__.lower()} itself, but the model already ends "
                    f"in a {activation.__name__} layer, so it would be applied twice. Use "
                    f"{prob_loss}(from_logits=False) (the loss on probabilities) or drop the "
                    f"final {activation.__name__} layer and keep {loss!r}")
