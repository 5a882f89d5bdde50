"""The stimulus class of a deep-retina HDF5 recording: white noise or natural scenes.

The deep-retina files carry no attribute for it: an experiment's folder holds one file per stimulus class, named by
it, ``<experiment>/whitenoise.h5`` and ``<experiment>/naturalscene.h5``, and the loaders find a recording by that name
(baccuslab/deep-retina ``deepretina/experiments.py``, ``loadexpt``, line 206 at commit 064d631:
``os.path.join(..., expt, filename + '.h5')``, ``filename`` "e.g. 'whitenoise' or 'naturalscene'" (line 183);
baccuslab/torch-deep-retina ``torchdeepretina/datas.py``, ``_loadexpt_h5``, line 114 at commit 000dfeb, whose
``loadexpt`` opens the same folder's ``'whitenoise'`` file for the white-noise STA, line 71). The Baccus lab's later
release (Maheswaranathan et al. 2023, ``ganglion_cell_data/15-10-07/naturalscene.h5``) keeps the names. neurozoo's
embedded recordings say it in their ``kind`` attribute under any file name (``datasets.synthetic_retina
.generate_recording``, with ``source`` naming the generator). A file named otherwise has no known class unless told
(``zoo score ... --stimulus-class``): it is ``unknown``, never guessed from the pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

#: the deep-retina files' stimulus classes, each the name of its file in an experiment's folder
STIMULUS_CLASSES = ("whitenoise", "naturalscene")
UNKNOWN = "unknown"
#: the ``source`` attribute of neurozoo's embedded recordings, whose ``kind`` attribute is their class
EMBEDDED_SOURCE = "neurozoo embedded ground-truth retina"
#: an embedded recording's kind that is not its stimulus class: the object-motion circuit's (datasets.oms_retina)
EMBEDDED_CLASSES = {"oms-whitenoise": "whitenoise", "oms-naturalscene": "naturalscene"}
#: what the class of a file is read from, said in messages
CONVENTION = "named whitenoise.h5 or naturalscene.h5 (deep-retina's <experiment>/<class>.h5)"


@dataclass(frozen=True)
class StimulusClass:
    name: str  # one of STIMULUS_CLASSES, or UNKNOWN
    known_from: Optional[str] = None  # how it is known, for the record and messages; None when unknown

    @property
    def known(self) -> bool:
        return self.name != UNKNOWN


def checked_stimulus_class(value, where: str = "--stimulus-class") -> str:
    """``value`` if it is a stimulus class, else a :class:`UserFacingError` naming ``where``, the value and the
    classes."""
    if value in STIMULUS_CLASSES:
        return value
    from neurozoo.datasets.errors import UserFacingError, did_you_mean

    raise UserFacingError(f"{where} {value!r}: expected {' or '.join(STIMULUS_CLASSES)}, the stimulus classes of the "
                          f"deep-retina files (whitenoise.h5, naturalscene.h5)"
                          + did_you_mean([str(value)], STIMULUS_CLASSES))


def class_by_file_name(path) -> Optional[str]:
    """The class that ``path``'s name gives by the deep-retina convention (``whitenoise.h5``, ``naturalscene.h5``), or
    None."""
    name = Path(path).name
    return next((kind for kind in STIMULUS_CLASSES if name == f"{kind}.h5"), None)


def class_by_attribute(attrs: Mapping) -> Optional[str]:
    """The class that a neurozoo embedded recording's ``kind`` attribute gives (``attrs``: the file's root
    attributes), or None for any other file."""
    if str(attrs.get("source", "")) != EMBEDDED_SOURCE:
        return None
    kind = str(attrs.get("kind", ""))
    kind = EMBEDDED_CLASSES.get(kind, kind)
    return kind if kind in STIMULUS_CLASSES else None


def recording_stimulus_class(path, attrs: Optional[Mapping] = None, given: Optional[str] = None) -> StimulusClass:
    """The stimulus class of the recording ``path`` (root attributes ``attrs``, read here when not given; a file that
    is not there or cannot be read has its name alone): ``given`` (``--stimulus-class``) where given, else the
    embedded recording's ``kind`` attribute, else the file's name, else unknown. An attribute and a name that
    disagree are refused, naming both (``given`` settles it)."""
    by_name = class_by_file_name(path)
    by_attribute = class_by_attribute(_root_attributes(path) if attrs is None else attrs)
    if given is not None:
        given = checked_stimulus_class(given)
        said = by_attribute or by_name
        contrary = (f"; the file's {'kind attribute' if by_attribute else 'name'} says {said}"
                    if said and said != given else "")
        return StimulusClass(given, f"--stimulus-class{contrary}")
    if by_attribute and by_name and by_attribute != by_name:
        from neurozoo.datasets.errors import DataError

        raise DataError(f"{path}: attribute kind says {by_attribute} (a neurozoo embedded recording), but the file's "
                        f"name says {by_name} (deep-retina's <experiment>/<class>.h5): the stimulus class is not "
                        "known; --stimulus-class names the one it holds")
    if by_attribute:
        return StimulusClass(by_attribute, "attribute kind (a neurozoo embedded recording)")
    if by_name:
        return StimulusClass(by_name, f"file name {Path(path).name} (deep-retina's <experiment>/<class>.h5)")
    return StimulusClass(UNKNOWN)


def experiment_stimulus_class(path, given: Optional[str] = None, cells=None) -> StimulusClass:
    """:func:`recording_stimulus_class` of an experiment file read (and checked) by
    :func:`datasets.retina_h5.checked_experiment`, whose read is cached: the file is not opened again for it.
    ``cells``: the cells fitted (``zoo fit --cells``), the only ones checked."""
    from neurozoo.datasets.retina_h5 import checked_experiment

    if given is not None:
        checked_stimulus_class(given)  # before the file is read
    return recording_stimulus_class(path, attrs=checked_experiment(path, cells=cells)[0].attrs, given=given)


def _root_attributes(path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return dict(f.attrs)
    except OSError:  # not there (a fit's recording moved since), or not HDF5: its name alone says
        return {}
