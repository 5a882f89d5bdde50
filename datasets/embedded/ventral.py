"""The embedded ventral-stream data set: generated once, deterministically, into the cache.

``$NEUROZOO_CACHE/embedded/ventral-v<GENERATOR_VERSION>-seed<seed>/`` holds the stimulus set
(``stimulus_set.csv`` + ``stimulus_set/*.png``: 8 objects x 3 variation levels x 12 images, 64x64),
``expected.npz`` (the noiseless expected counts, see ``load_expected``), ``V4.nc`` and ``IT.nc`` (Brain-Score layout: presentations = 288 stimuli x 10 repetitions, 40 V4 and
60 IT neuroids, 19 bins of 10 ms from 70 to 260 ms, spike counts per bin, stored as int16 because
zlib level 9 on float64 counts costs ~10x more; ``load_ventral`` returns float64) and ``teacher.npz`` (the
teacher's calibrated gains), all pinned by the folder's manifest. Trial noise: counts ~
Poisson(lambda * g) with lambda the teacher's noiseless expected count and g = exp(N(0, 0.15^2)
) drawn per trial and neuroid (shared by its bins), so trials are over-dispersed like real spike counts.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from neurozoo.datasets.cache import building, cache_dir, locked, read_manifest, verify_pinned
from neurozoo.datasets.checksums import EMBEDDED_SHA256
from neurozoo.datasets.errors import DataError

GENERATOR_VERSION = 5  # bump whenever the stimuli, teacher or noise change (4: teacher run in float64; 5: the
# readout templates are computed in float64, so the same on every CPU: the counts are version 4's, the expected
# counts and gains move by at most one float32 step)
NOISE_STREAM = 4  # the trial noise's random stream, unchanged since version 4
DEFAULT_SEED = 0
N_REPETITIONS = 10
PER_OBJECT_LEVEL = 12
N_NEURONS = {"V4": 40, "IT": 60}
REGIONS = tuple(N_NEURONS)
STIMULUS_FILE = "stimulus_set.csv"
_lock = threading.Lock()
_teachers: Dict[int, object] = {}


def folder(seed: int = DEFAULT_SEED) -> Path:
    return cache_dir() / "embedded" / f"ventral-v{GENERATOR_VERSION}-seed{seed}"


def identifier(seed: int = DEFAULT_SEED) -> str:
    return f"ventral_embedded-v{GENERATOR_VERSION}-seed{seed}"


def _generate(target: Path, seed: int) -> None:
    import torch
    from PIL import Image

    from neurozoo.datasets.assembly import make_assembly, write_assembly
    from neurozoo.datasets.embedded.shapes import render_set
    from neurozoo.datasets.embedded.teacher_network import BIN_STARTS, STEP_MS, TRIAL_GAIN_SD, VentralTeacher, to_input
    from neurozoo.datasets.stimuli import make_stimulus_set, write_stimulus_set

    pixels, records = render_set(seed, PER_OBJECT_LEVEL)
    image_dir = target / Path(STIMULUS_FILE).stem
    image_dir.mkdir()
    for image, record in zip(pixels, records):
        Image.fromarray(image).save(image_dir / record["filename"])
    stimulus_set = make_stimulus_set(records, identifier(seed), image_dir=image_dir)
    write_stimulus_set(stimulus_set, target / STIMULUS_FILE)

    # The files are pinned by sha256 in code, so they must come out bit-identical on every machine: float32
    # convolutions differ in their last bits between CPUs (SIMD width, oneDNN kernels), so the teacher runs in
    # float64 and its results are rounded to float32, where a difference of 1e-16 almost never survives.
    teacher = VentralTeacher(seed, N_NEURONS).double()
    images = to_input(pixels).double()
    with torch.inference_mode():
        raw = teacher.readouts(images, REGIONS)
        teacher.calibrate_from(raw)
        expected = {region: value.float() for region, value in teacher.rates_from(raw).items()}
    np.savez(target / "teacher.npz", **{f"gain_{r}": getattr(teacher, f"gain_{r}").float().numpy() for r in REGIONS})
    np.savez_compressed(target / "expected.npz", **{r: expected[r].numpy() for r in REGIONS})

    ids = stimulus_set["stimulus_id"].to_numpy().astype(str)
    objects = stimulus_set["object_name"].to_numpy().astype(str)
    variation = stimulus_set["variation"].to_numpy().astype(str)
    starts = np.asarray(BIN_STARTS)
    rng = np.random.default_rng([seed, NOISE_STREAM])
    for region in REGIONS:
        lam = expected[region].double().numpy()  # (stimuli, neuroids, bins) expected counts per bin
        gain = np.exp(TRIAL_GAIN_SD * rng.standard_normal((N_REPETITIONS, 1, lam.shape[1], 1)))
        counts = rng.poisson(lam[None] * gain)  # (repetitions, stimuli, neuroids, bins)
        n = lam.shape[1]
        assembly = make_assembly(
            counts.reshape(-1, n, len(starts)).astype(np.int16),  # compact on disk
            presentation={"stimulus_id": np.tile(ids, N_REPETITIONS), "object_name": np.tile(objects, N_REPETITIONS),
                          "variation": np.tile(variation, N_REPETITIONS),
                          "repetition": np.repeat(np.arange(N_REPETITIONS), len(ids))},
            neuroid={"neuroid_id": [f"{region}_{i:03d}" for i in range(n)], "region": [region] * n},
            time_bin={"time_bin_start": starts, "time_bin_end": starts + STEP_MS},
            attrs={"stimulus_set_identifier": identifier(seed), "units": "spike count per bin",
                   "generator_version": GENERATOR_VERSION, "seed": seed,
                   "source": "neurozoo.datasets.embedded: teacher network responses with Poisson trial noise"})
        write_assembly(assembly, target / f"{region}.nc")


def ensure(seed: int = DEFAULT_SEED) -> Path:
    """Generate the data set for ``seed`` unless it is cached; verify the cached files either way."""
    target = folder(seed)
    # locked between processes too: a second process (a parallel test run's other worker, a second `zoo score`)
    # waits for the first's 10 s build and reads it, instead of building the same folder again (silently: a
    # command's stderr stays its own)
    with _lock, locked(target.parent / f".{target.name}.lock"):
        if not (target / "manifest.json").is_file():
            with building(target, {"generator_version": GENERATOR_VERSION, "seed": seed}) as tmp:
                _generate(tmp, seed)
    verify_pinned(target, EMBEDDED_SHA256)  # re-hashes every file against the manifest and the pin in code
    manifest = read_manifest(target)
    if manifest.get("generator_version") != GENERATOR_VERSION or manifest.get("seed") != seed:
        raise DataError(f"{target}/manifest.json: generated by version {manifest.get('generator_version')} "
                        f"seed {manifest.get('seed')}, expected {GENERATOR_VERSION} / {seed}; delete the folder")
    return target


def load_ventral(region: str = "IT", seed: int = DEFAULT_SEED, nan_policy: str = "raise") -> Tuple[object, object]:
    """(assembly (2880 presentations x neuroids x 19 bins), stimulus set) of the embedded V4 or IT data."""
    from neurozoo.datasets.assembly import load_assembly
    from neurozoo.datasets.stimuli import load_stimulus_set

    if region not in REGIONS:
        raise DataError(f"embedded ventral data: region must be one of {REGIONS}, got {region!r}")
    target = ensure(seed)
    stimulus_set = load_stimulus_set(target / STIMULUS_FILE, identifier=identifier(seed))
    assembly = load_assembly(target / f"{region}.nc", stimulus_set=stimulus_set, nan_policy=nan_policy)
    return assembly.astype(np.float64), stimulus_set


def load_expected(region: str = "IT", seed: int = DEFAULT_SEED):
    """The teacher's noiseless expected counts per bin, (presentation = each stimulus once, neuroid, time_bin).

    This is the known answer behind ``load_ventral``: the data are Poisson draws around it (times the trial gain).
    """
    import xarray as xr

    assembly, stimulus_set = load_ventral(region, seed)
    with np.load(ensure(seed) / "expected.npz") as arrays:
        values = arrays[region].astype(np.float64)
    first = assembly.isel(presentation=np.flatnonzero(assembly["repetition"].values == 0))
    position = {s: i for i, s in enumerate(stimulus_set["stimulus_id"])}
    rows = [position[s] for s in first["stimulus_id"].values]
    return xr.DataArray(values[rows], dims=first.dims, coords=first.drop_vars("repetition").coords,
                        attrs={**first.attrs, "units": "expected spike count per bin (noiseless)"})


def teacher(seed: int = DEFAULT_SEED):
    """The teacher that generated the data for ``seed`` (weights from the seed, gains from the cache); shared, frozen."""
    import torch

    from neurozoo.datasets.embedded.teacher_network import VentralTeacher

    with _lock:
        if seed in _teachers:
            return _teachers[seed]
    target = ensure(seed)
    model = VentralTeacher(seed, N_NEURONS)
    with np.load(target / "teacher.npz") as gains:
        for region in REGIONS:
            getattr(model, f"gain_{region}").copy_(torch.from_numpy(gains[f"gain_{region}"]))
    model.eval()
    with _lock:
        return _teachers.setdefault(seed, model)


def images(stimulus_set):
    """The teacher's input for a stimulus set's PNGs: ImageNet-normalised (N, 3, 64, 64) float32, in row order."""
    from PIL import Image

    from neurozoo.datasets.embedded.teacher_network import to_input

    pixels = []
    for path in stimulus_set.stimulus_paths():
        with Image.open(path) as image:
            pixels.append(np.asarray(image.convert("RGB")))
    return to_input(np.stack(pixels))
