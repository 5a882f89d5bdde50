"""Scoring harness: metrics, ceilings, activation extraction, benchmark registry, run records."""
from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.registry import Registry

#: Endings of a data file given where a benchmark's name goes (deep-retina HDF5, a netCDF NeuroidAssembly).
DATA_FILE_SUFFIXES = (".nc", ".h5", ".hdf5")


def _data_set_hint(name: str) -> str:
    """A data set's name given as a benchmark (`zoo data list` shows both kinds of names): say which it is. A file's
    path given as one (`zoo score MODEL FILE.nc`): say where a file of one's own goes (README's "Your own recording as
    a benchmark" and "Your own recordings")."""
    from pathlib import Path

    from neurozoo.datasets import DATASETS

    if name in DATASETS:
        return f": that is a data set (zoo data list; neurozoo.datasets.load({name!r})), not a benchmark"
    if not (name.lower().endswith(DATA_FILE_SUFFIXES) or Path(name).is_file()):
        return ""
    retina = f"a deep-retina HDF5 recording is scored with zoo score MODEL retina_h5.heldout --data {name}"
    assembly = ("a NeuroidAssembly file of your own (.nc) is scored in Python as README's \"Your own recordings\" "
                "(under Data sets) shows, or registered as a benchmark (\"Extending the suite\")")
    ways = (retina if name.lower().endswith((".h5", ".hdf5")) else assembly if name.lower().endswith(".nc")
            else f"{retina}; {assembly}")
    return f": that is a file, not a benchmark; zoo score and zoo run take a registered benchmark's name: {ways}"


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
