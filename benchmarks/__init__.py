"""Scoring harness: metrics, ceilings, activation extraction, benchmark registry, run records."""
from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.registry import Registry

def _data_set_hint(name: str) -> str:
    """A data set's name given as a benchmark (`zoo data list` shows both kinds of names): say which it is."""
    from neurozoo.datasets import DATASETS

    if name not in DATASETS:
        return ""
    return f": that is a data set (zoo data list; neurozoo.datasets.load({name!r})), not a benchmark"


#: Registered benchmarks: name -> factory returning a benchmark object.
BENCHMARKS = Registry("benchmark", entry_point_group="neurozoo.benchmarks",
                      builtin_modules=("neurozoo.benchmarks.retina", "neurozoo.benchmarks.osr", "neurozoo.benchmarks.phenomena"),
                      unknown_hint=_data_set_hint)


def list_benchmarks():
    return BENCHMARKS.names()


def load(name: str, **kwargs):
    benchmark = BENCHMARKS.create(name, **kwargs)
    missing = [field for field, ok in (("identifier", isinstance(getattr(benchmark, "identifier", None), str)),
                                       ("score", callable(getattr(benchmark, "score", None)))) if not ok]
    if missing:  # a plugin's factory: the command failed with an AttributeError traceback
        raise SpecError(f"benchmark {name!r}: its factory {BENCHMARKS.origin(name)} returned a "
                        f"{type(benchmark).__name__} without {' and '.join(missing)} (a benchmark has an identifier "
                        "and score(model, ...): e.g. benchmarks.neural.NeuralBenchmark)")
    return benchmark


from neurozoo.benchmarks import registered as _registered  # noqa: E402  (after BENCHMARKS exists)

_registered.register(BENCHMARKS)
