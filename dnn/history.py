"""What ``fit`` returns: per-epoch logs as a dict of lists."""

from __future__ import annotations

from typing import Any

from dnn.callbacks.base import Callback


class History(Callback):
    """Records every epoch's logs (the first callback of every ``fit``)."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.append(epoch, logs or {})

    def to_pandas(self) -> Any:
        """The history as a DataFrame indexed by epoch (needs pandas: the ``data`` extra)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ModuleNotFoundError(
                "History.to_pandas needs pandas, which is not installed; install it with "
                "`pip install pandas` (or, in a dnn checkout, `pip install -e \".[data]\"`, the "
                "data extra). Without pandas, History.history is the same data as a dict of lists.",
                name="pandas",
            ) from exc

        return pd.DataFrame(self.history, index=pd.Index(self.epoch, name="epoch"))

    def plot(self, path: str | None = None) -> Any:
        """Training curves (loss and metrics per epoch); saved to ``path`` if given."""
        from dnn.plot import plot_history

        return plot_history(self, path)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"
