"""Package attributes imported on first use (PEP 562), so that importing a package's light submodule -- its
``cli``, which ``zoo`` imports to build its parser -- does not import torch and the models behind the package's
public names."""
from __future__ import annotations

import importlib
from typing import Callable, Dict, Iterable, List, Tuple


def lazy_exports(package: str, exports: Dict[str, Iterable[str]]) -> Tuple[Callable, Callable, List[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package`` exporting the names of each submodule in
    ``exports`` (``{"neurozoo.x.models": ("create_model", ...)}``)."""
    owner = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in owner:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(owner[name]), name)
        setattr(importlib.import_module(package), name, value)  # later lookups skip this function
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(owner))

    return __getattr__, __dir__, list(owner)


def lazy_factory(module: str, name: str) -> Callable:
    """A registry factory calling ``module.name``, imported on its first call: a package registers its models by
    name and description without importing their modules (torch), so that ``zoo list`` lists them without it."""
    from neurozoo.datasets.registry import forwards_keywords

    def target():
        return getattr(importlib.import_module(module), name)

    @forwards_keywords(target)  # the registry checks the keywords against the imported factory's
    def create(**overrides):
        return target()(**overrides)

    create.__name__ = create.__qualname__ = name
    create.__module__ = module  # where it comes from, as a registry's duplicate-name error names it
    return create
