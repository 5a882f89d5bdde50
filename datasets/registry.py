"""One small name -> factory registry used by every package of the suite.

It lives in ``datasets`` because that is the bottom layer: every other package may import it.
Models (ConvRNN and retina), benchmarks and data sets each own one ``Registry`` instance.
Third-party packages and submissions add entries either with the ``register`` decorator or
through a Python entry point in the registry's group (loaded lazily on first lookup).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from neurozoo.datasets.errors import SpecError, UserFacingError, did_you_mean
from neurozoo.datasets.text_table import plural


class UnknownNameError(UserFacingError, KeyError):
    """Raised for a name that no registry entry has; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class DuplicateNameError(UserFacingError, ValueError):
    """A name registered twice: the message names both registrations, whichever came first (a built-in module is
    imported on the first lookup, so a third party's decorator may run before it)."""


class PluginLoadError(UserFacingError, ImportError):
    """An installed package's entry point whose module does not import (or lacks the named object): one line naming
    the entry, the entry point and the package, instead of the import's traceback from deep inside a command."""


def _refuse_unknown(name: str, kind: str, known, unknown_hint: Optional[Callable[[str], str]]) -> None:
    """The one refusal of a name not among ``known`` (names): ``unknown KIND 'name'``, the hint, the close names, every
    known name (:meth:`Registry.get`'s, and :func:`lookup`'s over several registries)."""
    if not isinstance(name, str):  # None failed in difflib ("'NoneType' object is not iterable")
        raise UnknownNameError(f"{kind} name: expected text, got {type(name).__name__} {name!r} "
                               f"(known: {', '.join(sorted(known)) or 'none'})")
    if name not in known:
        raise UnknownNameError(f"unknown {kind} {name!r}{unknown_hint(name) if unknown_hint else ''}"
                               f"{did_you_mean([name], known, n=3, show=str)} "
                               f"(known: {', '.join(sorted(known)) or 'none'})")


def lookup(name: str, registries: Sequence["Registry"], kind: str,
           unknown_hint: Optional[Callable[[str], str]] = None, also: Iterable[str] = ()) -> Optional["Registry"]:
    """The first of ``registries`` that has ``name``, else :meth:`Registry.get`'s refusal over all of them (``kind``
    and ``unknown_hint`` as a registry's): for a name that may be any of several registries' (``zoo run --models``, a
    ConvRNN or a retina model), which had its own copy of the check, another message and no hint for a spec path.
    ``also``: names known beside the registries' (``zoo dynamics``'s examples, a dict), listed and matched with
    theirs; None for one of them that no registry has."""
    known: Dict[str, Optional[Registry]] = {}
    for registry in registries:
        for entry_name in registry.names():
            known.setdefault(entry_name, registry)
    for other in also:
        known.setdefault(other, None)
    _refuse_unknown(name, kind, known, unknown_hint)
    return known[name]


@dataclass
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    tags: Dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        """The factory itself, an installed package's entry point imported (``PluginLoadError`` if it cannot be): what
        a caller inspects (signature, class attributes), where ``factory`` of a plugin is only the loader."""
        return self.factory.load() if isinstance(self.factory, _LazyEntryPoint) else self.factory


class Registry:
    """``builtin_modules`` are imported on the first lookup: modules whose import registers the
    package's own entries, kept out of the package import so that ``import retina`` stays light."""

    def __init__(self, kind: str, entry_point_group: Optional[str] = None, builtin_modules: tuple = (),
                 unknown_hint: Optional[Callable[[str], str]] = None, keywords: str = "argument"):
        self.kind = kind
        self.keywords = keywords  # what its factories' keywords are called in its errors (a ConvRNN's: "override")
        self.unknown_hint = unknown_hint  # name -> "" or "; ..." added to the error for an unknown name
        self.entry_point_group = entry_point_group
        self.builtin_modules = tuple(builtin_modules)
        self._entries: Dict[str, Entry] = {}
        self._entry_points_loaded = False

    def register(self, name: Optional[str] = None, *, description: str = "", overwrite: bool = False, **tags):
        """Decorator: ``@REGISTRY.register("name", description=..., family=...)``."""

        def decorator(factory: Callable[..., Any]):
            key = name or factory.__name__
            if key in self._entries and not overwrite:
                raise DuplicateNameError(
                    f"{self.kind} {key!r} is already registered by {_origin(self._entries[key].factory)}; "
                    f"{_origin(factory)} cannot register it again: choose another name (or overwrite=True)")
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
            if ep.name in self._entries:  # a built-in or an earlier plugin keeps the name; say so, break no command
                warnings.warn(f"plugin {self.kind} {ep.name!r} (entry point {ep.value} in group {ep.group}"
                              f"{_package(ep)}) is ignored: the name is already registered by "
                              f"{_origin(self._entries[ep.name].factory)}; rename it in its package's entry points",
                              stacklevel=2)
                continue
            self._entries[ep.name] = Entry(ep.name, _LazyEntryPoint(ep, self.kind), f"(plugin {ep.value})")

    def names(self) -> List[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def entries(self) -> List[Entry]:
        return [self._entries[n] for n in self.names()]

    def get(self, name: str) -> Entry:
        self._load_entry_points()
        _refuse_unknown(name, self.kind, self._entries, self.unknown_hint)
        return self._entries[name]

    def origin(self, name: str) -> str:
        """Where ``name``'s factory comes from (``module.function``, or an installed package's entry point), for an
        error about what it built."""
        return _origin(self.get(name).factory)

    def create(self, name: str, /, **kwargs) -> Any:  # positional: a factory may take a "name" keyword
        entry = self.get(name)
        self._check_arguments(entry, kwargs)
        return entry.factory(**kwargs)

    def _check_arguments(self, entry: Entry, kwargs: Dict[str, Any]) -> None:
        """``SpecError`` for a keyword the factory does not take, naming the entry and those it takes: it was the
        factory's TypeError (``register.<locals>.cowley() got an unexpected keyword argument 'bogus'``, naming
        neither the benchmark nor what it takes). A factory taking ``**kwargs`` is read through to the callable it
        passes them on to when it says which (:func:`forwards_keywords`); one that does not say checks its own."""
        valid = accepted_keywords(entry.resolve())
        if valid is None:
            return
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise SpecError(f"{self.kind} {entry.name!r}: unknown {plural(len(unknown), self.keywords)} {unknown}"
                            f"{did_you_mean(unknown, valid, show=str)}; it takes: {', '.join(valid) or 'none'}")

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def forwards_keywords(target: Callable[[], Callable[..., Any]]):
    """Decorator: the factory passes its ``**kwargs`` on to ``target()`` (a function returning the callable, so that
    a module may be imported only when a model is made; a ``functools.partial`` where the factory binds some of its
    arguments), whose signature then says which keywords the registry accepts: a wrapper's ``**kwargs`` hid them,
    and ``create_model('ln', bogus=1)`` was the model class's TypeError."""

    def mark(factory: Callable[..., Any]) -> Callable[..., Any]:
        factory.forwards_keywords_to = target
        return factory

    return mark


def accepted_keywords(factory: Callable[..., Any]) -> Optional[List[str]]:
    """The keyword arguments ``factory`` takes, read through the ``**kwargs`` of each factory marked with
    :func:`forwards_keywords`; ``None`` when any is taken (``**kwargs`` not marked) or there is no signature to read
    (a builtin answers for itself)."""
    names: List[str] = []
    for factory in forwarding_chain(factory):
        try:
            parameters = list(inspect.signature(factory).parameters.values())
        except (TypeError, ValueError):
            return None
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names
    return None  # a **kwargs not marked with forwards_keywords (or a chain too long)


def forwarding_chain(factory: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``factory``, then each factory it passes its keywords on to (:func:`forwards_keywords`), at most 16: a loop of
    marks would not end."""
    for _ in range(16):
        yield factory
        target = getattr(factory, "forwards_keywords_to", None)
        if target is None:
            return
        factory = target()


_LOADED_PLUGINS: Dict[str, str] = {}


def loaded_plugins() -> Dict[str, str]:
    """The installed packages' entries this process has used, ``{"group:name": "package version"}``: a record's
    provenance, since the suite's code version does not cover a plugin's code."""
    return dict(sorted(_LOADED_PLUGINS.items()))


class _LazyEntryPoint:
    def __init__(self, ep, kind: str = "entry"):
        self.ep = ep
        self.kind = kind

    def load(self) -> Callable[..., Any]:
        try:
            factory = self.ep.load()
        except Exception as error:  # noqa: BLE001 -- any error while importing a third party's module
            package = getattr(getattr(self.ep, "dist", None), "name", None)
            raise PluginLoadError(
                f"plugin {self.kind} {self.ep.name!r} cannot be loaded: its entry point {self.ep.value} (group "
                f"{self.ep.group}{_package(self.ep)}) raised {type(error).__name__}: {error}; "
                f"fix or reinstall {package or 'the package that registers it'}, or uninstall it") from error
        dist = getattr(self.ep, "dist", None)
        _LOADED_PLUGINS[f"{self.ep.group}:{self.ep.name}"] = \
            f"{dist.name} {dist.version}" if dist is not None else self.ep.value
        return factory

    def __call__(self, **kwargs):
        return self.load()(**kwargs)


def _package(ep) -> str:
    package = getattr(getattr(ep, "dist", None), "name", None)
    return f", package {package}" if package else ""


def _origin(factory) -> str:
    """Where a factory comes from, for an error: ``module.name``, or an installed package's entry point."""
    if isinstance(factory, _LazyEntryPoint):
        return f"entry point {factory.ep.value} (group {factory.ep.group}{_package(factory.ep)})"
    while isinstance(factory, functools.partial):
        factory = factory.func
    module = getattr(factory, "__module__", None) or "?"
    name = getattr(factory, "__qualname__", None)
    return f"{module}.{name}" if name else module
