"""One small name -> factory registry used by every package of the suite.

It lives in ``datasets`` because that is the bottom layer: every other package may import it.
Models (ConvRNN and retina), benchmarks and data sets each own one ``Registry`` instance.
Third-party packages and submissions add entries either with the ``register`` decorator or
through a Python entry point in the registry's group (loaded lazily on first lookup).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Dict, Iterator, List, Optional

from neurozoo.datasets.errors import UserFacingError, did_you_mean


class UnknownNameError(UserFacingError, KeyError):
    """Raised for a name that no registry entry has; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class PluginLoadError(UserFacingError, ImportError):
    """An installed package's entry point whose module does not import (or lacks the named object): one line naming
    the entry, the entry point and the package, instead of the import's traceback from deep inside a command."""


@dataclass
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    tags: Dict[str, Any] = field(default_factory=dict)


class Registry:
    """``builtin_modules`` are imported on the first lookup: modules whose import registers the
    package's own entries, kept out of the package import so that ``import retina`` stays light."""

    def __init__(self, kind: str, entry_point_group: Optional[str] = None, builtin_modules: tuple = ()):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtin_modules = tuple(builtin_modules)
        self._entries: Dict[str, Entry] = {}
        self._entry_points_loaded = False

    def register(self, name: Optional[str] = None, *, description: str = "", overwrite: bool = False, **tags):
        """Decorator: ``@REGISTRY.register("name", description=..., family=...)``."""

        def decorator(factory: Callable[..., Any]):
            key = name or factory.__name__
            if key in self._entries and not overwrite:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            doc = description or (factory.__doc__ or "").strip().splitlines()[0:1]
            doc = doc if isinstance(doc, str) else (doc[0] if doc else "")
            self._entries[key] = Entry(key, factory, doc, dict(tags))
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., Any], description: str = "", overwrite: bool = False, **tags):
        self.register(name, description=description, overwrite=overwrite, **tags)(factory)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for module in self.builtin_modules:
            importlib.import_module(module)
        if not self.entry_point_group:
            return
        for ep in entry_points(group=self.entry_point_group):
            if ep.name not in self._entries:
                self._entries[ep.name] = Entry(ep.name, _LazyEntryPoint(ep, self.kind), f"(plugin {ep.value})")

    def names(self) -> List[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def entries(self) -> List[Entry]:
        return [self._entries[n] for n in self.names()]

    def get(self, name: str) -> Entry:
        self._load_entry_points()
        if name not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean([name], self._entries, n=3, show=str)} (known: {', '.join(sorted(self._entries)) or 'none'})"
            )
        return self._entries[name]

    def create(self, name: str, /, **kwargs) -> Any:  # positional: a factory may take a "name" keyword
        return self.get(name).factory(**kwargs)

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


class _LazyEntryPoint:
    def __init__(self, ep, kind: str = "entry"):
        self.ep = ep
        self.kind = kind

    def __call__(self, **kwargs):
        try:
            factory = self.ep.load()
        except Exception as error:  # noqa: BLE001 -- any error while importing a third party's module
            package = getattr(getattr(self.ep, "dist", None), "name", None)
            raise PluginLoadError(
                f"plugin {self.kind} {self.ep.name!r} cannot be loaded: its entry point {self.ep.value} (group "
                f"{self.ep.group}{', package ' + package if package else ''}) raised {type(error).__name__}: {error}; "
                f"fix or reinstall {package or 'the package that registers it'}, or uninstall it") from error
        return factory(**kwargs)
