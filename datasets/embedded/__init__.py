"""Embedded default data: generated locally and deterministically, never downloaded.

``load_ventral(region)`` -> (assembly, stimulus set) of the ventral-stream benchmark (rendered objects at
MajajHong-like variation levels, V4 and IT responses of a hidden teacher network in 10 ms bins);
``teacher()`` -> that teacher (a torch module: ``responses``, ``features``, ConvRNN-style ``forward``).
Importing this package is cheap; torch is imported when data are generated or the teacher is built.
"""
from neurozoo.datasets.embedded.ventral import GENERATOR_VERSION, REGIONS, images, load_expected, load_ventral, teacher

__all__ = ["GENERATOR_VERSION", "REGIONS", "images", "load_expected", "load_ventral", "teacher"]
