"""Retina models (BN-CNN, LN, GLM), fitting to ganglion-cell recordings, attribution, in-silico phenomena."""
import numbers

from neurozoo.datasets.registry import Registry

#: Registered retina models: name -> factory.
MODELS = Registry("retina model", entry_point_group="neurozoo.retina_models", builtin_modules=("neurozoo.retina.models",))


def list_models():
    return MODELS.names()


def create_model(name: str, **overrides):
    n_cells = overrides.get("n_cells", 1)
    if not (isinstance(n_cells, numbers.Integral) and n_cells >= 1):
        from neurozoo.datasets.errors import SpecError

        raise SpecError(f"n_cells must be an integer >= 1 (one output per ganglion cell); got {n_cells!r}")
    return MODELS.create(name, **overrides)
