"""Make ``import torchvision`` (and timm, which imports it) work on a CPU-only torch.

The torchvision 0.28.0 wheel on PyPI is a CUDA build. On a CPU-only torch its C extension
(``torchvision/_C.so``) cannot load, and ``import torchvision`` then dies with
"operator torchvision::nms does not exist": its fake-tensor registrations refer to operator
schemas that only the extension would have defined. When, and only when, the extension fails to
load, we define those schemas ourselves with ``torch.library`` so the import succeeds. Everything
this suite uses from torchvision (transforms, folder datasets, models) is pure Python; images are
decoded with PIL, never with torchvision.io's C decoders.

Import this module before the first import of torchvision or timm: ``import datasets.torchvision_compat``.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch

# Schemas of the operators torchvision registers Python-side fakes for at import time.
_MISSING_OPERATOR_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)

_library = None  # keeps the torch.library.Library alive for the life of the process
applied = False  # True when this module defined the schemas
extension_available = None  # whether torchvision's compiled operators loaded (None: not checked)


def extension_loads() -> bool:
    """True when torchvision's compiled operators can be loaded into this torch."""
    if _operator_exists("nms"):
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for name in os.listdir(folder):
            if name.startswith("_C") and name.endswith((".so", ".pyd")):
                try:
                    torch.ops.load_library(os.path.join(folder, name))
                    return True
                except (OSError, RuntimeError):
                    return False
    return False


def _operator_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def apply() -> bool:
    """Define the missing schemas if needed. Returns True when the shim was applied."""
    global _library, applied, extension_available
    if applied or "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return applied
    extension_available = extension_loads()
    if extension_available:
        return False
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _MISSING_OPERATOR_SCHEMAS:
        if not _operator_exists(schema.split("(")[0]):
            _library.define(schema)
    applied = True
    return True


apply()
