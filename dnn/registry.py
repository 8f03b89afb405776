"""Registries: the one way a string (from user code or a model file) names a class.

Each kind of component — layers, losses, optimizers, metrics, schedules — has
one :class:`Registry`. A class is registered under its canonical name (its
class name, unless given) plus any aliases (``"mse"``, ``"sparse_categorical_
crossentropy"``); look-ups accept either, aliases case-insensitively. A model
file names classes only by these strings, so loading one can never make
Python import, evaluate or unpickle anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Registry:
    """Canonical names and aliases -> classes, for one ``kind`` ("layer", "loss", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}
        self._aliases: dict[str, str] = {}

    def register(self, cls: type | None = None, *, name: str | None = None,
                 aliases: tuple[str, ...] = ()) -> Any:
        """Class decorator (``@registry.register`` or ``@registry.register(aliases=(...))``)."""

        def add(cls: type) -> type:
            canonical = name or cls.__name__
            self._classes[canonical] = cls
            for alias in aliases:
                self._aliases[alias.lower()] = canonical
            return cls

        return add(cls) if cls is not None else add

    def add_alias(self, alias: str, canonical: str) -> None:
        if canonical not in self._classes:
            raise KeyError(f"{self.kind} registry: no class named {canonical!r}")
        self._aliases[alias.lower()] = canonical

    def lookup(self, name: str) -> type | None:
        """The class registered under ``name`` (canonical, or an alias in any case), or None."""
        if not isinstance(name, str):
            return None
        if name in self._classes:
            return self._classes[name]
        canonical = self._aliases.get(name.lower())
        if canonical is None:  # "adam" for "Adam": canonical names are case-insensitive too
            canonical = next((k for k in self._classes if k.lower() == name.lower()), None)
        return self._classes.get(canonical) if canonical else None

    def get(self, name: str) -> type:
        """Like :meth:`lookup`, but an unknown name raises ValueError listing the valid names."""
        cls = self.lookup(name)
        if cls is None:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names are {', '.join(self.names())}")
        return cls

    def name_of(self, cls: type) -> str | None:
        """The canonical name ``cls`` is registered under (None if it is not registered)."""
        return next((k for k, v in self._classes.items() if v is cls), None)

    def names(self) -> list[str]:
        """Canonical names and aliases, sorted."""
        return sorted(set(self._classes) | set(self._aliases))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._classes

    def __getitem__(self, name: str) -> type:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def items(self) -> list[tuple[str, type]]:
        return list(self._classes.items())
