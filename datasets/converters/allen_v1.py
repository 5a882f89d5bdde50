"""Allen Brain Observatory mouse V1 responses to natural scenes -> assembly + stimulus set.

Files as prepared in GitHub psailamul/Allen_Brain_Observatory (its Allen_data_170513/readme.txt: experiment
container 511510667, Cux2-CreERT2 VISp at 275 um, GCaMP6f; each response the mean of 50 repeats):
``all_input_scenes_118_961.npy`` (the 118 natural scenes, greyscale 0..255, each 31x31 flattened row-major to
961), ``Allen_{train,test}_input.npy`` (100 and 18 of those scenes, in the order of their responses) and
``Allen_{train,test}_output.npy`` ((scenes, 212 neurons), trial-averaged responses; the source states no unit,
values stay as published).

Scene ``k`` is row ``k`` of ``all_input_scenes_118_961.npy``; each train/test input row is matched to it
exactly (every scene is distinct), so each presentation knows its scene and its published ``split``
("train"/"test"). Presentations keep the published order, train then test. The data are trial averages:
one presentation per scene (``repetition`` 0, attribute ``repeat_averaged = 1``), so no split-half
ceiling can be computed. One time bin [0, 250) ms: the Allen natural scenes were each shown for 250 ms;
the averaging window of the preparation is not part of the files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from neurozoo.datasets import Recording
from neurozoo.datasets.converters import ASSEMBLY_FILE, STIMULUS_FILE, load_converted
from neurozoo.datasets.errors import DataError

CONVERTER_VERSION = 1
NAME = "allen_bo.v1_natural_scenes"
SIDE = 31
N_SCENES = 118
WINDOW_MS = (0, 250)
OBJECT_NAME = "unlabelled"
SCENES_FILE = "all_input_scenes_118_961.npy"


def stimulus_id(scene: int) -> str:
    return f"allen_bo_scene{scene:03d}"


def _load(files: Dict[str, Path], name: str, shape) -> np.ndarray:
    array = np.load(files[name])
    if array.ndim != len(shape) or any(s is not None and a != s for a, s in zip(array.shape, shape)):
        expected = ", ".join("n" if s is None else str(s) for s in shape)
        raise DataError(f"{files[name]}: expected shape ({expected}), got {array.shape}")
    return array


def scene_indices(scenes: np.ndarray, inputs: np.ndarray, path) -> np.ndarray:
    """Row of ``scenes`` equal to each row of ``inputs`` (exact match, exactly one)."""
    matches = (inputs[:, None, :] == scenes[None, :, :]).all(axis=2)
    counts = matches.sum(axis=1)
    if (counts != 1).any():
        row = int(np.flatnonzero(counts != 1)[0])
        raise DataError(f"{path}: input row {row} matches {int(counts[row])} scenes of {SCENES_FILE} (expected 1)")
    return matches.argmax(axis=1)


def _convert(files: Dict[str, Path], folder: Path) -> None:
    from PIL import Image

    from neurozoo.datasets.assembly import make_assembly, write_assembly
    from neurozoo.datasets.stimuli import make_stimulus_set, write_stimulus_set

    scenes = _load(files, SCENES_FILE, (N_SCENES, SIDE * SIDE))
    if not (np.all(scenes == np.round(scenes)) and scenes.min() >= 0 and scenes.max() <= 255):
        raise DataError(f"{files[SCENES_FILE]}: expected integer grey levels 0..255")
    parts, outputs = {}, {}
    for split in ("train", "test"):
        inputs = _load(files, f"Allen_{split}_input.npy", (None, SIDE * SIDE))
        outputs[split] = _load(files, f"Allen_{split}_output.npy", (len(inputs), None))
        parts[split] = scene_indices(scenes, inputs, files[f"Allen_{split}_input.npy"])
    if outputs["train"].shape[1] != outputs["test"].shape[1]:
        raise DataError(f"{files['Allen_test_output.npy']}: {outputs['test'].shape[1]} neurons, "
                        f"train has {outputs['train'].shape[1]}")
    if np.intersect1d(parts["train"], parts["test"]).size:
        raise DataError(f"{files['Allen_test_input.npy']}: test scenes also in the training set")

    image_dir = folder / Path(STIMULUS_FILE).stem
    image_dir.mkdir(parents=True, exist_ok=True)
    filenames = [f"scene{k:03d}.png" for k in range(N_SCENES)]
    for k, filename in enumerate(filenames):
        Image.fromarray(scenes[k].reshape(SIDE, SIDE).astype(np.uint8), mode="L").save(image_dir / filename)
    split_of = np.array(["unused"] * N_SCENES, dtype=object)
    for split, index in parts.items():
        split_of[index] = split
    stimulus_set = make_stimulus_set({"stimulus_id": [stimulus_id(k) for k in range(N_SCENES)], "filename": filenames,
                                      "object_name": [OBJECT_NAME] * N_SCENES, "image_index": np.arange(N_SCENES),
                                      "split": split_of.astype(str)}, NAME, image_dir=image_dir)
    write_stimulus_set(stimulus_set, folder / STIMULUS_FILE)

    index = np.concatenate([parts["train"], parts["test"]])
    values = np.concatenate([outputs["train"], outputs["test"]])[:, :, None]
    n_neurons = values.shape[1]
    assembly = make_assembly(
        values,
        presentation={"stimulus_id": [stimulus_id(k) for k in index], "object_name": [OBJECT_NAME] * len(index),
                      "repetition": np.zeros(len(index)), "image_index": index,
                      "split": ["train"] * len(parts["train"]) + ["test"] * len(parts["test"])},
        neuroid={"neuroid_id": [f"allen_v1_n{u:03d}" for u in range(n_neurons)], "region": ["V1"] * n_neurons},
        time_bin={"time_bin_start": [WINDOW_MS[0]], "time_bin_end": [WINDOW_MS[1]]},
        attrs={"stimulus_set_identifier": NAME, "units": "trial-averaged response as published (unit not stated)",
               "repeat_averaged": 1, "species": "mouse",
               "source": "Allen Brain Observatory natural scenes, github.com/psailamul/Allen_Brain_Observatory"})
    write_assembly(assembly, folder / ASSEMBLY_FILE)


def load_allen_v1(nan_policy: str = "raise") -> Recording:
    """(assembly, stimulus set), converted once into the cache."""
    return load_converted(NAME, CONVERTER_VERSION, _convert, nan_policy=nan_policy)
