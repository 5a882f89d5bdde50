"""Built-in retina models; importing this package registers them in ``retina.MODELS``."""
import importlib

for _name in ("bncnn", "ln", "glm", "subunits"):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _error:  # a model module not written yet must not break the others
        if _error.name != f"{__name__}.{_name}":
            raise
del _name
