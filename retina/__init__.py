"""Retina models (BN-CNN, LN, GLM), fitting to ganglion-cell recordings, attribution, in-silico phenomena."""
from neurozoo.datasets.registry import Registry

#: Registered retina models: name -> factory.
MODELS = Registry("retina model", entry_point_group="neurozoo.retina_models", builtin_modules=("neurozoo.retina.models",))


def list_models():
    return MODELS.names()


def create_model(name: str, **overrides):
    return MODELS.create(name, **overrides)
