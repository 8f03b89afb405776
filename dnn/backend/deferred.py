"""Checks of device values that never stall the device.

``bool(xp.any(bad))`` reads the device: on a GPU every such read waits for all queued
work, so a check in every forward pass (Embedding's id range) would synchronise every
step. :func:`check` therefore raises at once only where a read is free (arrays in host
memory); for a device array it keeps a device-side flag instead, OR-ed with the earlier
flags of the same check, and :func:`raise_pending` reads every flag in one transfer. The
training loop calls it where it reads the device anyway (``Feed.verify``: every
``log_every`` steps and at the end of ``fit``/``evaluate``/``predict``), so a bad value
stops the run within those steps with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dnn import backend

#: message -> device-side boolean flag (any bad value seen since the last read)
_pending: dict[str, Any] = {}


def check(bad: Any, message: str, detail: Callable[[], str] | None = None) -> None:
    """Raise ``ValueError(message)`` if any element of the boolean array ``bad`` is True:
    now for a host array (with ``detail()`` appended, which may read values), at the next
    :func:`raise_pending` for a device array."""
    xp = backend.xp
    if backend.library.in_host_memory(bad):
        if bool(xp.any(bad)):
            raise ValueError(message + (detail() if detail else ""))
        return
    hit = xp.any(bad)
    _pending[message] = hit if message not in _pending else _pending[message] | hit


def raise_pending(note: str = "") -> None:
    """Read every pending flag (one transfer) and raise for the first one that is set, its
    message followed by ``note`` (e.g. which call found it)."""
    if not _pending:
        return
    messages = list(_pending)
    found = backend.to_numpy(backend.xp.stack([_pending[m] for m in messages]))
    _pending.clear()
    for message, hit in zip(messages, found):
        if hit:
            raise ValueError(message + note)
