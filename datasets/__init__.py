"""Data formats, the registry of data files, and the embedded default data.

Bottom layer of the suite: imports nothing from the other packages.
"""
from neurozoo.datasets.registry import Registry, UnknownNameError
from neurozoo.datasets.errors import DataError, SpecError, UserFacingError

#: Registered data sets: name -> loader. ``zoo list`` and ``zoo data`` read this.
DATASETS = Registry("data set", entry_point_group="neurozoo.datasets")

from neurozoo.datasets.sets import Recording, register as _register_data_sets  # noqa: E402  (light: no loader imports)

_register_data_sets(DATASETS)



def load(name: str, **kwargs) -> Recording:
    """``DATASETS.create(name)``, checked: a data set of one's own (an entry point) whose factory returns something
    else was an AttributeError deep inside a benchmark."""
    recording = DATASETS.create(name, **kwargs)
    if not isinstance(recording, Recording):
        raise SpecError(f"data set {name!r}: its factory {DATASETS.origin(name)} returned a {type(recording).__name__}, "
                        "not a datasets.Recording(assembly, stimulus_set)")
    return recording


__all__ = ["Registry", "UnknownNameError", "DataError", "SpecError", "UserFacingError", "DATASETS", "Recording", "load"]
