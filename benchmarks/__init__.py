"""Scoring harness: metrics, ceilings, activation extraction, benchmark registry, run records."""
from datasets.registry import Registry

#: Registered benchmarks: name -> factory returning a benchmark object.
BENCHMARKS = Registry("benchmark", entry_point_group="neurozoo.benchmarks",
                      builtin_modules=("benchmarks.retina", "benchmarks.osr", "benchmarks.phenomena"))


def list_benchmarks():
    return BENCHMARKS.names()


def load(name: str, **kwargs):
    return BENCHMARKS.create(name, **kwargs)


from benchmarks import registered as _registered  # noqa: E402  (after BENCHMARKS exists)

_registered.register(BENCHMARKS)
