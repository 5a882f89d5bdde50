"""Cowley, Stan, Pillow & Smith (2023) macaque V4 responses to images -> assembly + stimulus set.

Sessions (files as published in cowleygroup/V4_compact_models, data_V4_responses/):

- ``210325``: ``images_210325.zip`` (640 JPEGs ``image0001.jpg``..: the image set of Bashivan et al. 2019,
  per the data table of data_V4_responses/readme.txt -- grey renderings of objects on natural backgrounds in
  a round aperture, in blocks by object: the first ones a bear) and ``responses_210325_raw.npy``
  (50 units x 640 images x 10 repeats, spike counts, NaN where an image had fewer repeats).
  Presentations are (image, repeat) pairs; a repeat that is NaN for every unit was never shown and
  is dropped, so images keep 6 to 10 presentations (``repetition`` is the repeat's index in the raw
  array). Any NaN left (a unit missing on a shown repeat) goes through ``nan_policy``.
- ``190923``: ``images_190923.zip`` (1200 JPEGs, natural colour photographs) and ``responses_190923_repeat_averaged.npy``
  (33 units x 1200 images): one presentation per image with ``repetition`` 0 and the attribute
  ``repeat_averaged = 1``; split-half ceilings cannot be computed from it.

Image ``k`` (0-based) of the response arrays is ``image{k+1:04d}.jpg`` (the source's readme: images[i] and
responses_raw[:, i, :] correspond; its classes/class_neural_data.py reads the zip at indices 1..n, "zip files
start at 1"). The recordings give one
100 ms spike-count window after stimulus onset; we label it with one time bin [70, 170) ms, the
usual V4 response window (the exact window of the source is not part of the files). Values stay
spike counts (attribute ``units``). The files carry no object labels (210325's blocks are not
labelled, and their length is not stated): ``object_name`` is ``"unlabelled"`` for all, so a split
stratified on it is a plain shuffle split.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict

import numpy as np

from neurozoo.datasets import Recording
from neurozoo.datasets.converters import ASSEMBLY_FILE, STIMULUS_FILE, load_converted
from neurozoo.datasets.errors import DataError

CONVERTER_VERSION = 1
WINDOW_MS = (70, 170)
SESSIONS = {"210325": "cowley2023.v4_210325", "190923": "cowley2023.v4_190923"}
OBJECT_NAME = "unlabelled"


def stimulus_id(session: str, index: int) -> str:
    return f"cowley2023_{session}_{index + 1:04d}"


def _extract_images(zip_path: Path, folder: Path, n_images: int) -> list:
    """Extract ``image0001.jpg``.. (wherever they sit in the archive) flat into ``folder``; returns file names."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        members = {Path(m).name: m for m in archive.namelist() if m.lower().endswith(".jpg")}
        names = [f"image{k + 1:04d}.jpg" for k in range(n_images)]
        missing = [n for n in names if n not in members]
        if missing or len(members) != n_images:
            raise DataError(f"{zip_path}: expected {n_images} images image0001.jpg.., found {len(members)}"
                            f"{'; missing ' + ', '.join(missing[:3]) if missing else ''}")
        for name in names:
            (folder / name).write_bytes(archive.read(members[name]))
    return names


def _convert(session: str, files: Dict[str, Path], folder: Path) -> None:
    from neurozoo.datasets.assembly import make_assembly, write_assembly
    from neurozoo.datasets.stimuli import make_stimulus_set, write_stimulus_set

    name = SESSIONS[session]
    averaged = session != "210325"
    response_file = files[f"responses_{session}_{'repeat_averaged' if averaged else 'raw'}.npy"]
    responses = np.load(response_file)
    if responses.ndim != (2 if averaged else 3):
        raise DataError(f"{response_file}: expected {'(units, images)' if averaged else '(units, images, repeats)'}, "
                        f"got shape {responses.shape}")
    if averaged:
        responses = responses[:, :, None]
    n_units, n_images, n_repeats = responses.shape
    image_dir = folder / Path(STIMULUS_FILE).stem
    filenames = _extract_images(files[f"images_{session}.zip"], image_dir, n_images)
    ids = [stimulus_id(session, k) for k in range(n_images)]
    stimulus_set = make_stimulus_set({"stimulus_id": ids, "filename": filenames, "object_name": [OBJECT_NAME] * n_images,
                                      "image_index": np.arange(n_images), "session": [session] * n_images},
                                     name, image_dir=image_dir)
    write_stimulus_set(stimulus_set, folder / STIMULUS_FILE)

    shown = ~np.isnan(responses).all(axis=0)  # (images, repeats): a repeat with no unit recorded was not shown
    image, repeat = np.nonzero(shown)  # image-major order, repeats ascending
    values = responses[:, image, repeat].T[:, :, None]  # (presentation, unit, 1)
    assembly = make_assembly(
        values,
        presentation={"stimulus_id": np.asarray(ids)[image], "object_name": [OBJECT_NAME] * len(image),
                      "repetition": repeat, "image_index": image},
        neuroid={"neuroid_id": [f"{session}_unit{u:02d}" for u in range(n_units)], "region": ["V4"] * n_units,
                 "session": [session] * n_units},
        time_bin={"time_bin_start": [WINDOW_MS[0]], "time_bin_end": [WINDOW_MS[1]]},
        attrs={"stimulus_set_identifier": name, "units": "spike count per window",
               "repeat_averaged": int(averaged), "source": "Cowley et al. 2023, cowleygroup/V4_compact_models"})
    write_assembly(assembly, folder / ASSEMBLY_FILE)


def load_cowley_v4(session: str = "210325", nan_policy: str = "raise") -> Recording:
    """(assembly, stimulus set) of one session, converted once into the cache."""
    if session not in SESSIONS:
        raise DataError(f"Cowley 2023 V4: unknown session {session!r} (known: {', '.join(SESSIONS)})")
    return load_converted(SESSIONS[session], CONVERTER_VERSION,
                          lambda files, folder: _convert(session, files, folder), nan_policy=nan_policy)
