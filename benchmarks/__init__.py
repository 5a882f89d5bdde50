"""Scoring harness: metrics, ceilings, activation extraction, benchmark registry, run records."""
from neurozoo.datasets.registry import Registry

#: Registered benchmarks: name -> factory returning a benchmark object.
BENCHMARKS = Registry("benchmark", entry_point_group="neurozoo.benchmarks",
                      builtin_modules=("neurozoo.benchmarks.retina", "neurozoo.benchmarks.osr", "neurozoo.benchmarks.phenomena"))


def list_benchmarks():
    return BENCHMARKS.names()


def load(name: str, **kwargs):
    return BENCHMARKS.create(name, **kwargs)


from neurozoo.benchmarks import registered as _registered  # noqa: E402  (after BENCHMARKS exists)

_registered.register(BENCHMARKS)
