"""Retina models (BN-CNN, LN, GLM), fitting to ganglion-cell recordings, attribution, in-silico phenomena."""
import numbers

from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.registry import Registry

#: Registered retina models: name -> factory.
MODELS = Registry("retina model", entry_point_group="neurozoo.retina_models", builtin_modules=("neurozoo.retina.models",))


def list_models():
    return MODELS.names()


def create_model(name: str, **overrides):
    n_cells = overrides.get("n_cells", 1)
    if not (isinstance(n_cells, numbers.Integral) and n_cells >= 1):
        raise SpecError(f"n_cells must be an integer >= 1 (one output per ganglion cell); got {n_cells!r}")
    model = MODELS.create(name, **overrides)
    from torch import nn

    if not isinstance(model, nn.Module):  # a plugin's factory: the fit failed deep inside
        raise SpecError(f"retina model {name!r}: its factory {MODELS.origin(name)} returned a {type(model).__name__}, "
                        "not an nn.Module mapping stimulus windows (batch, 40, 50, 50) to rates (batch, n_cells)")
    return model
