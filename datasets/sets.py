"""The registered data sets (``datasets.DATASETS``): each factory loads lazily and returns a ``Recording``.

Importing this module is cheap: loaders (xarray, scipy, torch for the embedded teacher) are imported
only when a data set is created.
"""
from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

from neurozoo.datasets.registry import forwards_keywords


class Recording(NamedTuple):
    """What a data set loads to: unpacks as ``assembly, stimulus_set = DATASETS.create(name)``."""

    assembly: Any  # xarray.DataArray (presentation, neuroid, time_bin)
    stimulus_set: Any  # datasets.stimuli.StimulusSet


def register(registry) -> None:
    # each loader passes its keywords on to the converter's function, whose signature the registry checks them against
    def ventral(region):
        def target():
            from neurozoo.datasets.embedded import load_ventral

            return partial(load_ventral, region)

        @forwards_keywords(target)
        def load(**kwargs):
            return Recording(*target()(**kwargs))
        return load

    def cowley(session):
        def target():
            from neurozoo.datasets.converters.cowley_v4 import load_cowley_v4

            return partial(load_cowley_v4, session)

        @forwards_keywords(target)
        def load(**kwargs):
            return target()(**kwargs)
        return load

    def allen_target():
        from neurozoo.datasets.converters.allen_v1 import load_allen_v1

        return load_allen_v1

    @forwards_keywords(allen_target)
    def allen(**kwargs):
        return allen_target()(**kwargs)

    def zhang_target():
        from neurozoo.datasets.converters.zhang_desimone_it import load_zhang_desimone_it

        return load_zhang_desimone_it

    @forwards_keywords(zhang_target)
    def zhang(**kwargs):
        return zhang_target()(**kwargs)

    for region, neurons in (("V4", "V4"), ("IT", "IT")):
        registry.add(f"ventral_embedded.{region}", ventral(region), family="ventral_embedded", region=region,
                     description=f"embedded default: rendered objects (V0/V3/V6), teacher-network {neurons} responses, "
                                 "10 ms bins 70-260 ms, generated locally")
    registry.add("cowley2023.v4_210325", cowley("210325"), family="cowley2023", region="V4",
                 description="macaque V4, 640 grey object renderings on natural backgrounds (Bashivan et al. 2019's set) "
                             "x 6-10 repeats, one 100 ms window (Cowley et al. 2023)")
    registry.add("cowley2023.v4_190923", cowley("190923"), family="cowley2023", region="V4",
                 description="macaque V4, 1200 natural colour photographs, repeat means only (Cowley et al. 2023)")
    registry.add("zhang_desimone2011.it", zhang, family="zhang_desimone2011", region="IT",
                 description="macaque IT, 7 objects x 3 positions, spike counts in 10 ms bins 70-260 ms (Zhang et al. 2011)")
    registry.add("allen_bo.v1_natural_scenes", allen, family="allen_bo", region="V1",
                 description="mouse V1 (Allen Brain Observatory), 118 natural scenes 31x31 grey, 212 neurons, "
                             "trial averages, published split train 100 / test 18")
