"""Ganglion-cell recordings in the deep-retina HDF5 layout (McIntosh et al. 2016; REFERENCE.md section 4).

Layout (``T`` frames of 10 ms, ``C`` cells)::

    train/stimulus                   (T, 50, 50)
    train/time                       (T,)
    train/response/firing_rate_5ms   (C, T)   also _10ms, _20ms: binned spikes smoothed by a Gaussian of
                                             that sd, in spikes/s (``firing_rates``)
    train/response/binned            (C, T)   spike counts per frame
    test/...                         the same, responses averaged over repeats
    test/repeats/cellNN              (n_repeats, T_test)  per-trial firing_rate_10ms (spikes/s, not counts)
      or test/repeats/firing_rate_10ms (n_repeats, C, T_test)  the same, all cells in one dataset (the Baccus
                                     lab's files of Maheswaranathan et al. 2023); preferred where both are present
    spikes/cellNN                    (n_spikes,)          spike times (s) of the training recording

Read as the original loaders read it (``loadexpt``: deepretina/experiments.py, torchdeepretina/datas.py): of
``response/`` only the keys above (other datasets or groups there are passed over, named in ``Recording.unread``,
and read only where ``Recording.response`` asks for one by name); ``time`` may be a row or column, (1, T) or (T, 1)
(they read its size only), and is read as its T frame times.

``write_experiment`` writes it, ``read_experiment`` validates every dataset (shape, matching ``T``, NaNs,
repeats present for every cell and for no other, rates and counts in one unit) and raises ``DataError`` naming the
file, the dataset path and the expected shape; ``checked_experiment`` also the two splits together (the same cells,
none silent through ``train/`` that responds in ``test/``). The stimulus stays on disk until ``Recording.stimulus`` is read.

``StimulusWindows`` is the torch Dataset of 40-frame windows: item ``i`` is the window ending at frame
``t = targets[i]`` (frames ``t-39 .. t``, oldest first) and the responses at frame ``t`` -- the target
sits at the window's last frame. ``target_lag=1`` gives deep-retina's alignment instead (``loadexpt``,
deepretina/experiments.py; torchdeepretina/datas.py): the window holds frames ``t-40 .. t-1``, strictly
before the target frame ``t``. Windows are slices of the one movie tensor; only a batch is ever
copied. ``split_blocks`` gives the train/validation split for early stopping: the recording is cut into
``n_blocks`` contiguous blocks and the last ``val_fraction`` of each block is validation; targets whose
window would reach back across a train/validation boundary are dropped, so no stimulus frame
is seen by both sides (a validation block of B frames scores B - 39). A block whose validation or training part is
shorter than the window (none of it scored), or fewer than ``MIN_VALIDATION_FRAMES`` validation frames in all, is an
error.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from neurozoo.datasets.cache import remove_dead_temporaries
from neurozoo.datasets.cell_names import cell_name  # noqa: F401 (re-exported)
from neurozoo.datasets.errors import DataError
from neurozoo.datasets.json_files import written_whole
from neurozoo.datasets.text_table import counted

FRAME_SIZE = 50
N_FRAMES = 40  # window length: 400 ms of history at 100 Hz
FRAME_S = 0.01  # one frame: 10 ms (``time`` in s); the windows, the models' filters and the rates in Hz assume it
RESPONSE_KEYS = ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms", "binned")
SMOOTHING_MS = {"firing_rate_5ms": 5.0, "firing_rate_10ms": 10.0, "firing_rate_20ms": 20.0}


def _cell_order(names) -> list:
    return sorted(names, key=lambda n: (len(n), n))


# ---- writing --------------------------------------------------------------------------------------
#: how ``firing_rates`` smooths: "deep-retina" (default) the original's rule, "centered" the deviation kept for the
#: embedded recordings (README, data sets: deviations)
SMOOTHING_RULES = ("deep-retina", "centered")


def firing_rates(binned: np.ndarray, frame_ms: float = 10.0, rule: str = "deep-retina") -> Dict[str, np.ndarray]:
    """Smoothed firing rates (spikes/s) from counts per frame, one per deep-retina key, along the last axis.

    The key names the Gaussian's sd in ms (``firing_rate_10ms``: sd 10 ms = ``10 / frame_ms`` frames); the counts are
    divided by the frame length in s, and the edges are padded with zeros. The loaders of the original only read
    these datasets (deep-retina deepretina/preprocessing.py ``loadexpt``; torch-deep-retina torchdeepretina/datas.py
    lines 102-103 at 000dfeb); the lab's smoothing is ``estfr`` (baccuslab/pyret pyret/spiketools.py lines 109-141 at
    07421d2, default sd 0.01 s = the 10 ms key; vendored as torchdeepretina/pyret_func.py lines 4-30 at b0d88c4).
    ``rule``:

    * ``"deep-retina"`` (default): ``estfr``'s rule. The Gaussian is sampled at ``tau = -5 sd + k * dt`` for every
      ``tau < 5 sd`` (pyret line 135; an ``arange`` in seconds), normalised to sum 1 (line 137) and convolved
      (``mode='full'``) from tap ``floor(n_taps / 2)`` on (pyret_func.py line 27; pyret's ``np.round`` there, line
      138, is the same for the 5, 10 and 20 taps of these keys at 10 ms frames). At 10 and 20 ms a spike is spread
      over frames -5..+4 (-10..+9) sd-steps around its own, centred; at 5 ms the 5 taps fall on half frames
      (-25, -15, -5, 5, 15 ms), so a spike's rate is split evenly between its frame and the next: that rate peaks
      half a frame late.
    * ``"centered"``: ``scipy.ndimage.gaussian_filter1d`` with sd ``ms / frame_ms`` frames (taps to 4 sd), centred on
      every frame whatever its width. Within 1e-4 of the original at 10 and 20 ms; at 5 ms it keeps a spike's rate
      in its own frame. The embedded recordings (circuit version 4) were written with it.
    """
    binned = np.asarray(binned, np.float32)
    hz = binned * (1000.0 / frame_ms)
    if rule == "centered":
        from scipy.ndimage import gaussian_filter1d

        return {key: gaussian_filter1d(hz, ms / frame_ms, axis=-1, mode="constant").astype(np.float32)
                for key, ms in SMOOTHING_MS.items()}
    if rule != "deep-retina":
        raise ValueError(f"rule must be one of {', '.join(SMOOTHING_RULES)}, not {rule!r}")
    from scipy.signal import convolve

    dt, out = frame_ms / 1000.0, {}
    for key, ms in SMOOTHING_MS.items():
        sd = ms / 1000.0
        tau = np.arange(-5 * sd, 5 * sd, dt)  # in seconds, as estfr builds it: its float arange fixes the taps
        taps = np.exp(-0.5 * (tau / sd) ** 2)
        taps = (taps / taps.sum()).reshape((1,) * (hz.ndim - 1) + (-1,))
        first = len(tau) // 2
        full = convolve(hz.astype(np.float64), taps, mode="full", method="direct")
        out[key] = full[..., first:first + hz.shape[-1]].astype(np.float32)
    return out


def write_experiment(path, train: Mapping, test: Mapping, spikes: Optional[Mapping[str, np.ndarray]] = None,
                     attrs: Optional[Mapping] = None, compression: Optional[str] = None) -> Path:
    """Write a recording. ``train``/``test``: ``stimulus``, ``time``, ``response`` (dict key -> (C, T)); ``test``
    also ``repeats`` (dict cellNN -> (n_repeats, T), or ``firing_rate_10ms`` -> (n_repeats, C, T)). Extra response
    keys are written as given (and read back only by name: ``Recording.unread``).

    The file is written whole or not at all, and only as :func:`checked_experiment` reads it: the temporary is read
    back with the reader's own checks (both splits, the training movie too) before it is renamed into place, and a
    ``DataError`` names ``path``, the dataset and the shape expected. A stimulus of other frames than its time, a
    response of another length, NaN in a movie or a response, other cells in test than in train: each was written
    without a word, and refused only by the first fit that read it; a missing ``stimulus`` or ``time`` failed with a
    KeyError naming no split."""
    path = Path(path)
    for split, group in (("train", train), ("test", test)):
        missing = [key for key in ("stimulus", "time", "response") if key not in group]
        if missing or not isinstance(group["response"], Mapping):
            raise DataError(f"{path}: {split}: expected a mapping of stimulus (T, {FRAME_SIZE}, {FRAME_SIZE}), time "
                            f"(T,) and response (a mapping of key -> (cells, T)); "
                            + (f"{', '.join(missing)} missing" if missing
                               else f"response is a {type(group['response']).__name__}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary is this writer's own (host, pid and its number in the process): two processes generating one
    # recording at once (a cold cache) each write theirs and rename it into place, where one shared ``<name>.tmp``
    # failed the second on HDF5's file lock; those of writers killed meanwhile go (and the mkstemp names of before)
    remove_dead_temporaries(path.parent, f"{path.name}.tmp*")
    remove_dead_temporaries(path.parent, f".{path.name}.*.tmp*")
    with written_whole(path) as tmp:
        _write_groups(tmp, train, test, spikes, attrs, compression)
        _check_written(tmp, path)
    return path


def _check_written(tmp: Path, path: Path) -> None:
    """The reader's checks (:func:`checked_experiment`, the training movie included) on the written temporary, its
    messages naming ``path``; the reader's warnings are left to the reader (given when the file is read)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train, test = (_read_split.__wrapped__(str(tmp), None, split, split == "test") for split in ("train", "test"))
            train.stimulus  # noqa: B018 (read and checked to be finite)
        _check_splits_agree(tmp, train, test, writing=True)
    except DataError as error:
        raise DataError(str(error).replace(str(tmp), str(path))) from None


def _write_groups(tmp, train: Mapping, test: Mapping, spikes, attrs, compression) -> None:
    import h5py

    with h5py.File(tmp, "w") as f:
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        for split, group in (("train", train), ("test", test)):
            g = f.create_group(split)
            g.create_dataset("stimulus", data=group["stimulus"], compression=compression)
            g.create_dataset("time", data=np.asarray(group["time"], np.float64))
            r = g.create_group("response")
            for key, value in group["response"].items():
                r.create_dataset(key, data=value, compression=compression)
            if "repeats" in group:
                rep = g.create_group("repeats")
                for cell, value in group["repeats"].items():
                    rep.create_dataset(cell, data=value, compression=compression)
        if spikes is not None:
            s = f.create_group("spikes")
            for cell, times in spikes.items():
                s.create_dataset(cell, data=np.asarray(times, np.float64))


# ---- reading --------------------------------------------------------------------------------------
@dataclass
class Recording:
    """One split (train or test) of an experiment file. Arrays are numpy; ``stimulus`` is read on access."""

    path: Path
    split: str
    cells: list
    time: np.ndarray
    responses: Dict[str, np.ndarray]
    repeats: Optional[np.ndarray] = None  # (C, n_repeats, T)
    attrs: dict = field(default_factory=dict)
    _stimulus: Optional[np.ndarray] = None
    #: the datasets of ``{split}/response`` other than :data:`RESPONSE_KEYS`, not read: the original loaders read
    #: only ``firing_rate_10ms`` and ``binned`` there and pass over the rest (:func:`read_experiment`); one is read,
    #: with the checks of the others, when :meth:`response` asks for it by name
    unread: Tuple[str, ...] = ()
    #: the file's cells this Recording holds, as indices into the file's (``read_experiment(..., cells=...)``), in
    #: file order; None: all of them
    selection: Optional[Tuple[int, ...]] = None
    #: how many cells the file holds (those of ``selection`` among them)
    file_cells: Optional[int] = None

    @property
    def n_frames(self) -> int:
        return len(self.time)

    @property
    def stimulus(self) -> np.ndarray:
        if self._stimulus is None:
            import h5py

            with h5py.File(self.path, "r") as f:
                self._stimulus = _checked_stimulus(self.path, self.split, f[f"{self.split}/stimulus"])
        return self._stimulus

    def __repr__(self) -> str:  # the dataclass's printed every array whole: pages of numbers in a notebook
        shapes = ", ".join(f"{key} {value.shape}" for key, value in sorted(self.responses.items()))
        repeats = "none" if self.repeats is None else f"{self.repeats.shape} (cells, repeats, T)"
        unread = f"; not read: {', '.join(self.unread)}" if self.unread else ""
        return (f"Recording({str(self.path)!r}, split={self.split!r}, {len(self.cells)} cells, {self.n_frames} frames; "
                f"responses: {shapes}; repeats: {repeats}{unread})")

    def response(self, key: str = "firing_rate_10ms") -> np.ndarray:
        if key not in self.responses and key in self.unread:  # another key of the file's, asked for by name
            import h5py

            with h5py.File(self.path, "r") as f:
                if self.selection is None:
                    self.responses[key] = _read_response(self.path, f, self.split, key, self.n_frames, len(self.cells))
                else:  # the file's cells, then the selection's (the key's own count checked against the file's)
                    self.responses[key] = _read_response(self.path, f, self.split, key, self.n_frames,
                                                         self.file_cells)[list(self.selection)]
        if key not in self.responses:
            units = "spike counts per frame" if key == "binned" else "spikes/s"
            hint = ""
            if key == "firing_rate_10ms" and "binned" in self.responses:
                hint = (f"; from the counts store firing_rates({self.split}/response/binned)['firing_rate_10ms'] "
                        "(neurozoo.datasets.retina_h5) as it")
            _fail(self.path, f"{self.split}/response/{key}", f"missing; expected shape ({len(self.cells)}, "
                  f"{self.n_frames}) (cells, T) in {units} ({self.split}/response holds: "
                  f"{', '.join(sorted({*self.responses, *self.unread}))}){hint}")
        return self.responses[key]


def _fail(path, dataset, message):
    raise DataError(f"{path}: dataset {dataset}: {message}")


def _read(path, dataset, stored, dtype=None, part: Optional[slice] = None) -> np.ndarray:
    """``stored`` (an HDF5 dataset, or an array), or ``stored[part]``, read as an array; a ``DataError`` naming
    ``dataset`` where HDF5 cannot read it: a file whose header is whole but whose data is damaged (a compressed chunk
    that no longer decompresses) failed in h5py's OSError traceback, naming no file or dataset."""
    try:
        return np.asarray(stored if part is None else stored[part], dtype)
    except OSError as error:
        _fail(path, dataset, f"cannot be read, the file is damaged (HDF5: {error}); copy or export the recording again")


def _checked_stimulus(path, split: str, stored) -> np.ndarray:
    """The stimulus dataset ``stored`` read as float32, refused unless finite, and warned of if far from zero mean."""
    stimulus, stored_uint8 = _read(path, f"{split}/stimulus", stored, np.float32), stored.dtype == np.uint8
    _check_finite(path, f"{split}/stimulus", stimulus, ("frame", "row", "column"),
                  f"finite intensities, shape (T, {FRAME_SIZE}, {FRAME_SIZE})")
    if not stored_uint8:  # a uint8 stimulus is warned of when the file is read
        _warn_of_an_offset_stimulus(path, split, stimulus)
    return stimulus


#: largest |mean| of a stimulus, in its sd, that is taken for zero-mean (z-scored natural scenes: 0 over the split)
MAX_STIMULUS_OFFSET = 0.25


#: largest ratio of the test stimulus's sd to the training stimulus's (or the reverse) taken for one contrast
MAX_CONTRAST_RATIO = 1.5


def _stimulus_statistics(stimulus, path=None, dataset=None) -> Tuple[float, float]:
    """``(mean, sd)`` of a stimulus (an array, or the HDF5 dataset ``dataset`` of ``path`` read in part), measured on
    about 2000 frames spread over it."""
    sample = _read(path, dataset, stimulus, np.float64, slice(None, None, max(1, len(stimulus) // 2000)))
    return float(sample.mean()), float(sample.std())


def _warn_of_an_offset_stimulus(path, split: str, stimulus: np.ndarray) -> None:
    """A warning where ``stimulus`` is far from zero mean (0/1 noise, intensities in [0, 1]): the zero stimulus is
    the probes' grey and the attribution's baseline, which are then no stimulus of the recording's (measured on
    about 2000 frames spread over the split)."""
    mean, sd = _stimulus_statistics(stimulus)
    if abs(mean) > MAX_STIMULUS_OFFSET * sd:
        import warnings

        warnings.warn(f"{path}: {split}/stimulus has mean {mean:.3g} and sd {sd:.3g}, not zero mean; it is used as "
                      "stored, while the zero stimulus is the grey of zoo probe (flashes and gratings around it) and "
                      "the baseline of the attribution, and deep-retina z-scores it on load: z-score it first (zero "
                      "mean, unit variance) to fit and probe as they did", stacklevel=4)


def _check_finite(path, dataset, data: np.ndarray, axes: Sequence[str], expected: str) -> None:
    """A ``DataError`` naming ``dataset``, how many of its values are NaN or inf and where the first one is (its index
    from 0, and by ``axes``: a cell by its name, cell01 for index 0), unless all are finite."""
    bad = ~np.isfinite(data)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), data.shape)
        where = ", ".join(cell_name(int(i)) if axis == "cell" else f"{axis} {int(i)}" for axis, i in zip(axes, first))
        _fail(path, dataset, f"contains {counted(int(bad.sum()), 'NaN/inf value')}, the first at index "
              f"{tuple(int(i) for i in first)} ({where}); expected {expected}")


def _missing(path, f, name, expected):
    """A ``DataError`` for the absent ``name``: what it should hold and what its group holds instead."""
    parent = name.rsplit("/", 1)[0] if "/" in name else "/"
    found = ", ".join(sorted(f[parent].keys())) if parent in f else f"nothing ({parent} missing too)"
    _fail(path, name, f"missing; expected {expected} ({parent} holds: {found or 'nothing'})")


def _numeric(path, f, name, shape):
    """``f[name]`` if it is a dataset of numbers, else a ``DataError`` naming it and its expected shape."""
    import h5py

    node = f[name]
    if not isinstance(node, h5py.Dataset):
        _fail(path, name, f"is a group, expected a dataset of shape {shape}")
    if node.dtype.kind not in "biuf":
        _fail(path, name, f"holds {node.dtype} values, expected numbers, shape {shape}")
    return node


def _group(path, f, name, holds):
    """``f[name]`` if it is a group, else a ``DataError`` saying what the group holds in this layout."""
    import h5py

    node = f[name]
    if not isinstance(node, h5py.Group):
        _fail(path, name, f"is a dataset of shape {node.shape}, expected a group holding {holds}")
    return node


def _check_frame_rate(path, where: str, time: np.ndarray, attrs) -> None:
    """``DataError`` unless the frames of ``time`` (s) are :data:`FRAME_S` apart (median step, within 2%: frame times
    measured on a rig jitter) and the file's ``frame_rate_hz`` attribute, where it has one, says 100 Hz: a recording
    at another rate read as 10 ms frames gives windows of another length and rates off by the ratio, silently."""
    resample = f"resample the recording to {FRAME_S * 1000:g} ms frames first"
    rate = attrs.get("frame_rate_hz")
    if rate is not None:
        rate = np.asarray(rate).ravel()
        if rate.dtype.kind not in "iuf" or len(rate) != 1 or not np.isclose(rate[0], 1 / FRAME_S, rtol=0.02):
            raise DataError(f"{path}: attribute frame_rate_hz is {rate.tolist()}; expected {1 / FRAME_S:g} "
                            f"({FRAME_S * 1000:g} ms frames): {resample}")
    finite = bool(np.all(np.isfinite(time)))
    step = float(np.median(np.diff(time)))
    if finite and np.isclose(step, FRAME_S, rtol=0.02):
        return
    fix = "times in ms? store them in s" if np.isclose(step, FRAME_S * 1000, rtol=0.02) else resample
    found = f"median step of {len(time)} times{'' if finite else ', some not finite'}"
    _fail(path, where, f"frames {step:g} s apart ({found}); expected {FRAME_S:g} s ({1 / FRAME_S:g} Hz frames: 0, "
                       f"{FRAME_S:g}, {2 * FRAME_S:g}, ... s): {fix}")


def _check_repeat_units(path, split: str, responses: Mapping[str, np.ndarray], repeats: np.ndarray) -> None:
    """The repeats are per-trial ``firing_rate_10ms`` (spikes/s): held-out FEVE compares them with a prediction in
    spikes/s. A file storing each trial's spike counts per frame (``binned``) instead read as is and gave FEVE in the
    thousands below 0, the fitted model blamed; their mean over trials and cells must be that of the split's
    response, in spikes/s, within a factor of 2."""
    if "firing_rate_10ms" in responses:
        key, reference = "firing_rate_10ms", float(responses["firing_rate_10ms"].mean())
    else:  # counts per 10 ms frame -> spikes/s, as the fit reads them
        key, reference = "binned", float(responses["binned"].mean()) / FRAME_S
    mean = float(repeats.mean())
    if reference > 0 and not 0.5 <= mean / reference <= 2.0:
        counts = abs(np.log(mean / reference / 0.01)) < np.log(2)
        hint = (" (they look like spike counts per 10 ms frame: store each trial's firing_rates(counts)"
                "['firing_rate_10ms'], neurozoo.datasets.retina_h5)") if counts else ""
        _fail(path, f"{split}/repeats", f"mean {mean:.4g} over trials and cells, but {split}/response/{key} means "
              f"{reference:.4g} spikes/s: the repeats must be per-trial firing_rate_10ms in spikes/s, whose mean over "
              f"trials is {split}/response/firing_rate_10ms{hint}")


#: the least correlation of a cell's ``response/firing_rate_10ms`` with the mean of its repeats taken for the same cell
MIN_RESPONSE_REPEATS_R = 0.9


def _warn_of_repeats_unlike_the_response(path, split: str, responses: Mapping[str, np.ndarray], repeats: np.ndarray,
                                         cells: Sequence[str]) -> None:
    """A warning where a cell's ``{split}/response/firing_rate_10ms`` (deep-retina's held-out target: ``loadexpt``,
    torch-deep-retina's ``test_model``) does not follow the mean of its repeats (the target here): the repeats are
    then another cell's (an order of their own), or another recording's, and every held-out number is of the wrong
    cell, silently."""
    if "firing_rate_10ms" not in responses:
        return
    mean = repeats.mean(1).astype(np.float64)
    response = responses["firing_rate_10ms"].astype(np.float64)
    mean, response = mean - mean.mean(-1, keepdims=True), response - response.mean(-1, keepdims=True)
    norms = np.sqrt((response ** 2).sum(-1))[:, None] * np.sqrt((mean ** 2).sum(-1))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(norms > 0, response @ mean.T / norms, np.nan)  # (response's cell, repeats' cell)
    own = np.diag(r)
    bad = [i for i in range(len(cells)) if np.isfinite(own[i]) and own[i] < MIN_RESPONSE_REPEATS_R]
    if bad:
        import warnings

        shown = ", ".join(f"{cells[i]} r {own[i]:.2f} (best with the repeats of {cells[int(np.nanargmax(r[i]))]}, "
                          f"r {np.nanmax(r[i]):.2f})" for i in bad[:4]) + (" ..." if len(bad) > 4 else "")
        warnings.warn(f"{path}: {split}/response/firing_rate_10ms does not follow the mean of {split}/repeats for "
                      f"{len(bad)} of {len(cells)} cells ({shown}): the held-out metrics score the repeats, so if "
                      "they are stored in another cell order, or are another recording's, every cell is scored "
                      "against another cell's responses; store the repeats in the order of the response's rows",
                      stacklevel=4)


def _read_repeats(path, f, split: str, cells: Sequence[str], T: int) -> np.ndarray:
    """The split's repeated trials as ``(cells, n_repeats, T)``, from either layout of the group ``{split}/repeats``:

    * ``firing_rate_10ms`` ``(n_repeats, cells, T)``, one dataset for all cells (the Baccus lab's files of
      Maheswaranathan et al. 2023, read so by openretina's ``load_test_repeats_for_session``); preferred where
      present, as openretina prefers the dataset named by its response key over per-cell ones;
    * ``cellNN`` ``(n_repeats, T)``, one dataset per cell (McIntosh et al. 2016's files, deep-retina's notebooks).

    A group holding only other per-trial keys (``binned``, ``firing_rate_5ms``, ``firing_rate_20ms``) is refused by
    name: no loader of the original converts them, and held-out FEVE needs each trial's ``firing_rate_10ms``."""
    n_cells, group = len(cells), f"{split}/repeats"
    present = list(_group(path, f, group, f"firing_rate_10ms (n_repeats, {n_cells}, {T}) or one dataset "
                                         f"(n_repeats, {T}) per cell: cell01, cell02, ...").keys())
    if "firing_rate_10ms" in present:
        where = f"{group}/firing_rate_10ms"
        expected = f"(n_repeats >= 2, {n_cells}, {T}) (trials, cells, T matching {split}/response)"
        data = _read(path, where, _numeric(path, f, where, expected), np.float32)
        if data.ndim != 3 or data.shape[1:] != (n_cells, T) or data.shape[0] < 2:
            hint = ""
            if data.ndim == 3 and data.shape[0] == n_cells and data.shape[2] == T and data.shape[1] >= 2:
                hint = f": cells first? store it as (n_repeats, cells, T), ({data.shape[1]}, {n_cells}, {T})"
            _fail(path, where, f"expected shape {expected}, got {data.shape}{hint}")
        _check_finite(path, where, data, ("trial", "cell", "frame"), f"finite rates, shape {expected}")
        return np.ascontiguousarray(data.transpose(1, 0, 2))
    per_cell = _cell_order(name for name in present if name.startswith("cell"))
    if not per_cell and present:
        _fail(path, group, f"holds {', '.join(sorted(present))} but neither firing_rate_10ms (n_repeats, {n_cells}, "
              f"{T}) nor cell01..cell{n_cells:02d} (n_repeats, {T}): held-out metrics need each trial's "
              f"firing_rate_10ms in spikes/s; from counts per frame store firing_rates(binned)['firing_rate_10ms'] "
              f"(neurozoo.datasets.retina_h5) as {group}/firing_rate_10ms")
    missing = [c for c in cells if c not in per_cell]
    extra = [name for name in per_cell if name not in cells and re.fullmatch(r"cell\d+", name)]
    if extra and not missing:  # cells of the repeats' own, passed over: the others then need not be the response's
        _fail(path, f"{group}/{extra[0]}", f"a cell {split}/response does not have ({counted(n_cells, 'cell')}, {cells[0]}{'..' + cells[-1] if n_cells > 1 else ''}); expected repeats of the response's cells only, "
              f"cellNN (n_repeats, {T}) each (a cell dropped from the response alone, or repeats of another recording?)")
    if missing:
        _fail(path, f"{group}/{missing[0]}", f"missing (repeats needed for all {n_cells} cells, as cellNN "
              f"(n_repeats, {T}) or one {group}/firing_rate_10ms (n_repeats, {n_cells}, {T}); found "
              f"{', '.join(per_cell) or 'none'})")
    arrays = []
    for c in cells:
        where = f"{group}/{c}"
        data = _read(path, where, _numeric(path, f, where, f"(n_repeats, {T})"), np.float32)
        if data.ndim != 2 or data.shape[1] != T or data.shape[0] < 2:
            hint = ""
            if data.ndim == 2 and data.shape[0] == T and data.shape[1] >= 2:  # (T, n_repeats), MATLAB's or Keras's
                hint = f": frames on the first axis; store it transposed, as ({data.shape[1]}, {T})"
            _fail(path, where, f"expected shape (n_repeats >= 2, {T}), got {data.shape}{hint}")
        if arrays and data.shape != arrays[0].shape:
            _fail(path, where, f"expected shape {arrays[0].shape} like {group}/{cells[0]}, got {data.shape}")
        _check_finite(path, where, data, ("trial", "frame"), f"finite rates, shape (n_repeats, {T})")
        arrays.append(data)
    return np.stack(arrays)


def selected_cells(spec, names: Sequence[str], where: str = "cells") -> Tuple[int, ...]:
    """The indices (into ``names``, a file's cells in file order) that ``spec`` selects, sorted: a comma-separated text
    (``"0,2,5"``, ``"cell01,cell03"``, both mixed) or a sequence of indices and names. Refused with a
    :class:`~neurozoo.datasets.errors.SpecError` naming ``where`` (``zoo fit``: ``--cells``), the bad item and the
    valid range and names: an empty selection, an item that is neither an index in range nor one of the names, a cell
    given twice (by index or name)."""
    from neurozoo.datasets.errors import SpecError, did_you_mean

    n = len(names)
    valid = (f"the file's {counted(n, 'cell')}: indices 0..{n - 1} or names "
             f"{names[0]}{'..' + names[-1] if n > 1 else ''}")
    items = ([item.strip() for item in spec.split(",")] if isinstance(spec, str) else
             [spec] if isinstance(spec, (int, np.integer)) else list(spec))
    if not items or any(isinstance(item, str) and not item for item in items):
        raise SpecError(f"{where}: an empty item in {spec!r} (expected comma-separated cells, at least one: {valid})")
    chosen, given = [], {}
    for item in items:
        if isinstance(item, str) and item in names:
            index = names.index(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) or \
                isinstance(item, str) and re.fullmatch(r"\d+", item):
            index = int(item)
            if index >= n:
                raise SpecError(f"{where}: cell index {item} is out of range ({valid})")
        else:
            raise SpecError(f"{where}: {item!r} is not a cell of the file{did_you_mean([str(item)], names)} ({valid})")
        if index in given:
            raise SpecError(f"{where}: {names[index]} given twice ({given[index]!r} and {item!r}); expected each cell "
                            f"once ({valid})")
        given[index] = item
        chosen.append(index)
    return tuple(sorted(chosen))


def _selected(recording: Recording, selection: Tuple[int, ...]) -> Recording:
    """``recording`` (all the file's cells) narrowed to the cells ``selection`` (indices, file order): its responses,
    repeats and names."""
    index = list(selection)
    return replace(recording, cells=[recording.cells[i] for i in index],
                   responses={key: data[index] for key, data in recording.responses.items()},
                   repeats=None if recording.repeats is None else recording.repeats[index], selection=selection)


def narrowed(recording: Recording, cells) -> Recording:
    """``recording`` (of :func:`read_experiment`) holding the cells ``cells`` only (None: as it is), as
    ``read_experiment(path, split, cells=cells)`` reads them; refused where it holds another selection already."""
    if cells is None:
        return recording
    if recording.selection is None:
        return _selected(recording, selected_cells(cells, recording.cells, where=f"{recording.path}: cells"))
    names = [cell_name(i) for i in range(recording.file_cells)]
    selection = selected_cells(cells, names, where=f"{recording.path}: cells")
    if selection != recording.selection:
        raise DataError(f"{recording.path}: cells {cells!r}: the Recording holds other cells "
                        f"({', '.join(recording.cells)}); read it with read_experiment(path, split, cells=...)")
    return recording


def read_experiment(path, split: str = "train", require_repeats: Optional[bool] = None,
                    check_stimulus: Optional[bool] = None, cells=None) -> Recording:
    """Read and validate one split of a deep-retina experiment file (repeats required for ``test``).

    ``cells``: the cells to read (:func:`selected_cells`: indices and/or the file's names, a sequence or a
    comma-separated text such as ``"0,2"`` or ``"cell01,cell03"``; None, all), as deep-retina's ``loadexpt(expt,
    cells, ...)`` takes the indices of the cells to load (``f[train_or_test]['response/firing_rate_10ms'][cells,
    indices]``: deepretina/experiments.py line 228 at 064d631) and torch-deep-retina's ``loadexpt`` likewise. Every
    array of the split holds those cells only (each response, the repeats), in file order whatever the order given (as
    h5py's indexing by a list takes them), under the file's names (``cell03`` stays ``cell03``);
    ``Recording.selection`` holds their indices. The whole file is still validated.

    The test split's stimulus (the short held-out movie) is read now and checked to be finite, so that a caller
    validating the file before a long fit is not told of a NaN only after it; the training movie (gigabytes for a real
    recording) is checked when ``Recording.stimulus`` first reads it, or now with ``check_stimulus=True``.

    A split is read and validated once per process while its file is unchanged (:func:`~neurozoo.datasets.provenance.
    file_state`: the same file, size and times), and its warnings are given then: a ``zoo fit`` or ``zoo score`` reads
    the file in several places (the check before the fit, the fit, the held-out evaluation) and used to open, check
    and warn each time. Each call gets a Recording of its own, which reads the training movie itself: the one
    remembered never holds it (the test split's short movie is kept with it).
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not an experiment file" if path.is_dir() else "no such experiment file"
        raise DataError(f"{path}: {problem} (expected a deep-retina HDF5 file with train/ and test/)")
    if split not in ("train", "test"):
        raise DataError(f"{path}: split must be 'train' or 'test', not {split!r}")
    require_repeats = split == "test" if require_repeats is None else require_repeats
    from neurozoo.datasets.provenance import file_state

    read = _read_split(str(path.resolve()), file_state(path), split, require_repeats)
    recording = replace(read, path=path, responses=dict(read.responses), attrs=dict(read.attrs),
                        file_cells=len(read.cells))
    if cells is not None:
        recording = _selected(recording, selected_cells(cells, read.cells, where=f"{path}: cells"))
    if check_stimulus:
        recording.stimulus  # noqa: B018 (the training movie read and validated now; the test split's is, with the file)
    return recording


#: splits read and validated (:func:`_read_split`), remembered: a run's train and test, of one or two files
READ_SPLITS_KEPT = 4


@lru_cache(maxsize=READ_SPLITS_KEPT)
def _read_split(path: str, state: tuple, split: str, require_repeats: bool) -> Recording:
    """:func:`read_experiment`'s reading and checks of one split of the file ``path`` as it is in ``state``; the test
    split's stimulus read and checked in the same pass."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None
    with f:
        if split not in f:
            _fail(path, f"/{split}", f"group missing; expected a group holding stimulus, time and response (the file "
                  f"holds: {', '.join(f.keys()) or 'nothing'})")
        g = _group(path, f, split, "stimulus, time and response")
        for name, expected in (("stimulus", f"a dataset (T, {FRAME_SIZE}, {FRAME_SIZE}) of intensities"),
                               ("time", "a dataset (T,) of frame times in s"),
                               ("response", "a group holding firing_rate_10ms or binned, each (cells, T)")):
            if name not in g:
                _missing(path, f, f"{split}/{name}", expected)
        stim = _numeric(path, f, f"{split}/stimulus", f"(T, {FRAME_SIZE}, {FRAME_SIZE})")
        if stim.ndim != 3 or stim.shape[1:] != (FRAME_SIZE, FRAME_SIZE):
            hint = ""
            if stim.ndim == 3 and stim.shape[:2] == (FRAME_SIZE, FRAME_SIZE):  # MATLAB's order, as h5py reads it
                hint = (f": frames on the last axis (as h5py reads a MATLAB v7.3 file's (T, {FRAME_SIZE}, {FRAME_SIZE}): "
                        f"its axes reversed); store it as ({stim.shape[2]}, {FRAME_SIZE}, {FRAME_SIZE}), "
                        "numpy.transpose(stimulus)")
            _fail(path, f"{split}/stimulus", f"expected shape (T, {FRAME_SIZE}, {FRAME_SIZE}), got {stim.shape}{hint}")
        if stim.dtype == np.uint8:  # models and fits here take the stimulus as stored (README, data sets)
            import warnings

            warnings.warn(f"{path}: {split}/stimulus is uint8 (0-255 intensities); it is used as stored, while "
                          "deep-retina z-scores it on load: z-score it first (zero mean, unit variance) to fit as "
                          "they did", stacklevel=3)
        T = stim.shape[0]
        if T < N_FRAMES:
            _fail(path, f"{split}/stimulus", f"expected shape (T, {FRAME_SIZE}, {FRAME_SIZE}) with T >= {N_FRAMES} "
                  f"(one {N_FRAMES}-frame window), got {stim.shape}")
        time = _frame_times(path, split, _read(path, f"{split}/time", _numeric(path, f, f"{split}/time", f"({T},)")), T)
        _check_finite(path, f"{split}/time", time, ("frame",), f"finite frame times in s, shape ({T},)")
        _check_frame_rate(path, f"{split}/time", time, f.attrs)
        responses, n_cells = {}, None
        stored = list(_group(path, f, f"{split}/response", f"one dataset (cells, {T}) per key: {', '.join(RESPONSE_KEYS)}"))
        for key in (key for key in stored if key in RESPONSE_KEYS):
            responses[key] = _read_response(path, f, split, key, T, n_cells)
            n_cells = responses[key].shape[0]
        unread = tuple(sorted(key for key in stored if key not in RESPONSE_KEYS))
        if "firing_rate_10ms" not in responses and "binned" not in responses:
            _fail(path, f"{split}/response", f"needs at least firing_rate_10ms or binned, each (cells, {T}) (it holds: "
                  f"{', '.join(sorted(responses)) or 'nothing'})")
        _check_response_units(path, split, responses)
        cells = [cell_name(i) for i in range(n_cells)]
        repeats = None
        if "repeats" in g:
            repeats = _read_repeats(path, f, split, cells, T)
            _check_repeat_units(path, split, responses, repeats)
            _warn_of_repeats_unlike_the_response(path, split, responses, repeats, cells)
        elif require_repeats:
            _missing(path, f, f"{split}/repeats", f"a group of repeated trials for held-out metrics: "
                     f"firing_rate_10ms (n_repeats, {n_cells}, {T}) or cellNN (n_repeats, {T}) per cell")
        # the test movie is small: read, checked and kept now
        stimulus = _checked_stimulus(path, split, stim) if split == "test" else None
        return Recording(path, split, cells, time, responses, repeats, dict(f.attrs), stimulus, unread)


def _read_response(path, f, split: str, key: str, T: int, n_cells: Optional[int]) -> np.ndarray:
    """``{split}/response/{key}`` read as float32 ``(cells, T)`` and checked (numbers, shape, finite, >= 0), its
    ``n_cells`` those of the split's other responses where one was read already."""
    where = f"{split}/response/{key}"
    data = _read(path, where, _numeric(path, f, where, f"(cells, {T})"), np.float32)
    if data.ndim != 2 or data.shape[0] == 0:
        _fail(path, where, f"expected shape (cells >= 1, {T}), got {data.shape}")
    if data.shape[0] == T != data.shape[1]:  # Keras-style (T, cells): say so, not a shape (T, T)
        _fail(path, where, f"expected shape (cells, {T}) with the cells first, got {data.shape}: frames on the "
              f"first axis; store it transposed, as ({data.shape[1]}, {T})")
    n_cells = data.shape[0] if n_cells is None else n_cells
    if data.shape != (n_cells, T):
        _fail(path, where, f"expected shape ({n_cells}, {T}) (cells, T matching {split}/stimulus), got {data.shape}")
    _check_finite(path, where, data, ("cell", "frame"), f"finite values, shape ({n_cells}, {T})")
    if (data < 0).any():  # the Poisson loss would run to NaN on a negative target
        _fail(path, where, f"contains {int((data < 0).sum())} negative values; expected spike counts or "
              "firing rates >= 0")
    return data


def _check_response_units(path, split: str, responses: Mapping[str, np.ndarray]) -> None:
    """``DataError`` unless each of the split's firing rates (spikes/s) means what its ``binned`` counts (spikes per
    :data:`FRAME_S` frame) mean in spikes/s, within a factor of 2 (the smoothing keeps the mean but at the edges): rates
    stored as counts per frame were fitted and scored in those units (held-out FEVE's noise 10^4 times too small),
    counts stored as rates fed a spike-history model 100 times the spikes, without a word."""
    if "binned" not in responses:
        return
    counts = float(responses["binned"].mean())
    for key in (key for key in SMOOTHING_MS if key in responses):
        rate = float(responses[key].mean())
        if counts <= 0 or rate <= 0 or 0.5 <= rate / (counts / FRAME_S) <= 2.0:
            continue
        ratio = rate / (counts / FRAME_S)
        hint = ""
        if abs(np.log(ratio / FRAME_S)) < np.log(2):  # the two means alike: one is stored in the other's units
            hint = (f" ({key} stored as spike counts per frame, or binned as spikes/s? store the counts as binned and "
                    f"firing_rates(binned)['{key}'] as {key}, neurozoo.datasets.retina_h5)")
        _fail(path, f"{split}/response/{key}", f"mean {rate:.4g} spikes/s, but {split}/response/binned means "
              f"{counts:.4g} spikes per {FRAME_S * 1000:g} ms frame, {counts / FRAME_S:.4g} spikes/s: the rates must be "
              f"in spikes/s and binned the spike counts per frame, the one's mean that of the other within a factor of "
              f"2{hint}")


class SilentCellsError(DataError):
    """A recording's cells that are 0 through ``train/`` but respond in ``test/`` (:func:`_check_splits_agree`), refused
    with the way out that holds where it is raised: a writer writes the file without them (:func:`write_experiment`),
    a reader selects the others (``cells=``, :func:`checked_experiment`), a command names its own option
    (:meth:`leaving_out`: ``zoo fit --cells 0,2``). ``kept``: the file's indices of the other cells (empty: none
    left to fit)."""

    def __init__(self, problem: str, silent: Sequence[str], kept: Sequence[int], way_out: str):
        self.problem, self.silent, self.kept = problem, tuple(silent), tuple(kept)
        super().__init__(f"{problem} ({way_out})")

    def leaving_out(self, option: str) -> "SilentCellsError":
        """The same refusal, its way out ``option`` (``"zoo fit --cells"``) with the kept cells: ``(leave it out: zoo
        fit --cells 0,2)``; as it was where no cell is left."""
        if not self.kept:
            return self
        return SilentCellsError(self.problem, self.silent, self.kept,
                                f"leave {self._them} out: {option} {','.join(map(str, self.kept))}")

    @property
    def _them(self) -> str:
        return "it" if len(self.silent) == 1 else "them"


def _check_splits_agree(path, train: Recording, test: Recording, writing: bool = False) -> None:
    """``DataError`` unless both splits hold the same cells and every cell that responds in the test split (its
    response or repeats above 0 somewhere) responds somewhere in the training split too, naming the dataset and the
    cells (:class:`SilentCellsError`, whose way out is a writer's where ``writing``, else a reader's). A cell silent
    in training but not in test was fitted to zeros and its held-out r and FEVE printed among the others, and all-zero
    training responses gave a median held-out r, with no word that nothing had been learnt. (A cell silent in both, a
    dead channel, is fitted and has no held-out numbers: no explainable variance.)"""
    tested = np.zeros(len(test.cells), bool)
    for data in [*test.responses.values(), *([] if test.repeats is None else [test.repeats])]:
        tested |= (data > 0).reshape(len(test.cells), -1).any(axis=1)
    for key, data in train.responses.items():
        silent = [train.cells[i] for i in np.flatnonzero(~(data > 0).any(axis=1) & tested)]
        if silent:
            names = train.cells if train.selection is None else [cell_name(i) for i in range(train.file_cells)]
            kept = [names.index(c) for c in train.cells if c not in silent]
            one = len(silent) == 1
            them, their = ("it", "its") if one else ("them", "their")
            if writing:  # the file is not there yet: what to write instead
                way_out = (f"write the recording without {them}: {their} rows of the train and test responses and "
                           f"{their} repeats left out" if kept else "no cell responds in train/: none would be fitted")
            else:  # the file's cells as read_experiment, checked_experiment and the fit settings select them
                way_out = (f"leave {them} out: cells={','.join(map(str, kept))!r} selects the others" if kept else
                           "no cell left to fit: none responds in train/")
            shown = ", ".join(silent[:5]) + (f" and {len(silent) - 5} more" if len(silent) > 5 else "")
            problem = (f"{path}: dataset train/response/{key}: {len(silent)} of {counted(len(train.cells), 'cell')} "
                       f"{'is' if one else 'are'} 0 at every frame ({shown}) but {'responds' if one else 'respond'} in "
                       f"test/: a model fitted to no spike would be scored held out on the test split's; expected each "
                       f"cell to respond somewhere in train/")
            raise SilentCellsError(problem, silent, kept, way_out)


def _frame_times(path, split: str, time: np.ndarray, T: int) -> np.ndarray:
    """``{split}/time`` as ``(T,)``. deep-retina and torch-deep-retina read only its size, the number of frames
    (``expt_length = f[train_or_test]['time'].size``: deepretina/experiments.py ``loadexpt`` line 211 at 064d631,
    deepretina/preprocessing.py line 76 at 1723b6f, torchdeepretina/datas.py line 78 at 000dfeb), so a row or column
    vector of the T frame times, (1, T) or (T, 1) as MATLAB's and h5py's writers of a 2-d array store it, is read
    as its T times. Any other shape is refused, naming it: T values in several rows (a (2, T/2) has T values too) are
    no one order of frame times to check the frame rate against."""
    if time.ndim > 1 and time.size == T and sum(length != 1 for length in time.shape) <= 1:
        return time.reshape(T)
    if time.shape != (T,):
        vector = f" (or a row or column of them, (1, {T}) or ({T}, 1))"
        several = (f": {T} values, but in {time.shape[0]} rows, not one row or column of frame times"
                   if time.size == T and time.ndim > 1 else "")
        _fail(path, f"{split}/time", f"expected shape ({T},) to match {split}/stimulus: one time in s per frame"
              f"{vector}; got {time.shape}{several}")
    return time


def checked_experiment(path, cells=None) -> Tuple[Recording, Recording]:
    """``(train, test)`` of an experiment file to fit and score on, both validated (:func:`read_experiment`) and the
    same cells in both, before a fit that would otherwise fail only after it. Read and checked once per process while
    the file is unchanged (:func:`read_experiment`), so its warnings are given once however many steps of one run
    (``zoo score --checkpoint``'s model, then the benchmark) ask for it. ``cells``: the cells to fit and score
    (:func:`read_experiment`), the only ones the splits' agreement is checked on (a cell silent through ``train/``
    left out is no matter)."""
    from neurozoo.datasets.provenance import file_state

    train, test = read_experiment(path, "train"), read_experiment(path, "test")
    if test.cells != train.cells:  # named as the reader's other errors are: the dataset, the shape found and expected
        key = next(key for key in RESPONSE_KEYS if key in test.responses)
        train_key = key if key in train.responses else next(iter(train.responses))
        _fail(path, f"test/response/{key}", f"expected shape ({len(train.cells)}, {test.n_frames}) (cells, T: the "
              f"{len(train.cells)} cells of train/response/{train_key}), got {test.responses[key].shape}; both splits "
              "must hold the same cells")
    if cells is not None:
        selection = selected_cells(cells, train.cells, where=f"{path}: cells")
        train, test = _selected(train, selection), _selected(test, selection)
    _check_splits_agree(path, train, test)
    resolved, state = str(Path(path).resolve()), file_state(path)
    _warn_of_unlike_stimuli(resolved, state)
    _warn_of_unread(resolved, state, train.unread, test.unread)
    return train, test


#: The datasets of ``{split}/response`` this suite's own writer adds (``synthetic_retina.generate_recording``: the
#: ground-truth rates), passed over without a word, so that a run on an embedded recording says nothing of them.
OWN_UNREAD = {"test": ("true_rate",)}


@lru_cache(maxsize=READ_SPLITS_KEPT)
def _warn_of_unread(path: str, state: tuple, train: Tuple[str, ...], test: Tuple[str, ...]) -> None:
    """One warning naming the datasets of ``response/`` that are not read (``Recording.unread``), but those this
    suite's writer adds (:data:`OWN_UNREAD`): ``zoo fit`` and ``zoo score ... --data`` passed over them without a
    word, so a rate of another name (``firing_rate_50ms``, a lab's own key) was not fitted, silently."""
    names = [f"{split}/response/{key}" for split, keys in (("train", train), ("test", test)) for key in keys
             if key not in OWN_UNREAD.get(split, ())]
    if names:
        import warnings

        warnings.warn(f"{path}: not read: {', '.join(names)} (of response/ only {', '.join(RESPONSE_KEYS)} are read; "
                      "another is read by name only: Recording.response)", stacklevel=4)


@lru_cache(maxsize=READ_SPLITS_KEPT)
def _warn_of_unlike_stimuli(path: str, state: tuple) -> None:
    """A warning where ``test/stimulus`` has another mean (by more than :data:`MAX_STIMULUS_OFFSET` of the training
    stimulus's sd) or contrast (sd, by more than a factor :data:`MAX_CONTRAST_RATIO`) than ``train/stimulus``: a model
    fitted to one is scored on its predictions for another (a gain fitted at one contrast, an offset at one mean
    intensity), and the held-out numbers say so only as a poor fit. (Each split's frame shape is refused where it is
    not 50x50: ``read_experiment``.) The training movie is sampled, not read whole."""
    import h5py

    with h5py.File(path, "r") as f:
        statistics = {split: _stimulus_statistics(f[f"{split}/stimulus"], path, f"{split}/stimulus")
                      for split in ("train", "test")}
    (train_mean, train_sd), (test_mean, test_sd) = statistics["train"], statistics["test"]
    if not np.isfinite([train_mean, train_sd, test_mean, test_sd]).all():
        return  # a NaN or inf in a movie, refused when it is read (``_checked_stimulus``): no contrast to compare
    unlike = []
    if abs(test_mean - train_mean) > MAX_STIMULUS_OFFSET * train_sd:
        unlike.append(f"mean {test_mean:.3g} against {train_mean:.3g} (more than {MAX_STIMULUS_OFFSET:g} of the "
                      "training sd apart)")
    if not (train_sd / MAX_CONTRAST_RATIO <= test_sd <= train_sd * MAX_CONTRAST_RATIO):
        unlike.append(f"sd (contrast) {test_sd:.3g} against {train_sd:.3g} (more than a factor "
                      f"{MAX_CONTRAST_RATIO:g} apart)")
    if unlike:
        import warnings

        warnings.warn(f"{path}: test/stimulus is unlike train/stimulus: {'; '.join(unlike)}. The held-out metrics "
                      "score a model fitted to the training movie on its predictions for the test movie, so the "
                      "held-out numbers are of another stimulus ensemble, silently; store both splits normalised "
                      "alike (e.g. z-scored with the training movie's mean and sd)", stacklevel=4)


def read_spikes(path) -> Dict[str, np.ndarray]:
    import h5py

    if not Path(path).is_file():
        raise DataError(f"{path}: no such experiment file (expected a deep-retina HDF5 file with spikes/)")
    try:
        f = h5py.File(path, "r")
    except OSError as error:  # was h5py's traceback, naming no file
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None
    with f:
        if "spikes" not in f:
            _missing(path, f, "spikes", "a group holding each cell's spike times in s, cellNN (n_spikes,)")
        _group(path, f, "spikes", "each cell's spike times in s, cellNN (n_spikes,)")
        out = {}
        for cell in _cell_order(f["spikes"].keys()):
            where = f"spikes/{cell}"
            times = _read(path, where, _numeric(path, f, where, "(n_spikes,)"))  # text/NaN times were returned as is
            if times.ndim != 1:
                _fail(path, where, f"expected shape (n_spikes,), got {times.shape}")
            _check_finite(path, where, times, ("spike",), "finite spike times in s, shape (n_spikes,)")
            out[cell] = times
        return out


# ---- windows and splits ---------------------------------------------------------------------------
def movie_windows(movie: torch.Tensor, n_frames: int = N_FRAMES) -> torch.Tensor:
    """All windows of a movie ``(T, H, W)`` as a strided view ``(T - n_frames + 1, n_frames, H, W)``."""
    return movie.unfold(0, n_frames, 1).permute(0, 3, 1, 2)


class StimulusWindows(torch.utils.data.Dataset):
    """Item ``i``: (window ``(40, 50, 50)`` ending at frame ``targets[i]``, responses ``(C,)`` at that frame)
    and, with ``history > 0``, the ``binned`` counts of the ``history`` frames before it ``(C, history)``.
    ``target_lag``: frames from the window's last frame to the target (0: ours; 1: deep-retina's)."""

    def __init__(self, stimulus, responses, targets: Optional[Sequence[int]] = None, n_frames: int = N_FRAMES,
                 binned=None, history: int = 0, target_lag: int = 0):
        self.movie = torch.as_tensor(np.asarray(stimulus, np.float32))
        self.responses = torch.as_tensor(np.asarray(responses, np.float32))
        if target_lag < 0:
            raise DataError(f"target_lag must be >= 0 frames, got {target_lag}")
        self.n_frames, self.history, self.target_lag = n_frames, history, target_lag
        first = max(n_frames - 1 + target_lag, history)
        T = self.movie.shape[0]
        if self.responses.shape[-1] != T:
            raise DataError(f"responses have {self.responses.shape[-1]} frames but the stimulus has {T}")
        self.targets = torch.as_tensor(np.arange(first, T) if targets is None else np.asarray(targets), dtype=torch.long)
        if len(self.targets) and (self.targets.min() < first or self.targets.max() >= T):
            raise DataError(f"window targets must lie in [{first}, {T}); got {int(self.targets.min())}..{int(self.targets.max())}")
        self.binned = torch.as_tensor(np.asarray(binned, np.float32)) if binned is not None else None
        if history and self.binned is None:
            raise DataError("history > 0 needs the binned spike counts")

    def __len__(self):
        return len(self.targets)

    def batch(self, index) -> Dict[str, torch.Tensor]:
        """A batch by a tensor of item indices (faster than collating items one by one)."""
        t = self.targets[index]
        offsets = torch.arange(-self.n_frames + 1, 1) - self.target_lag
        out = {"stimulus": self.movie[t[:, None] + offsets], "response": self.responses[:, t].T}
        if self.history:
            hist = torch.arange(-self.history, 0)
            out["history"] = self.binned[:, t[:, None] + hist].permute(1, 0, 2)
        return out

    def __getitem__(self, i):
        t = int(self.targets[i])
        last = t - self.target_lag
        item = {"stimulus": self.movie[last - self.n_frames + 1:last + 1], "response": self.responses[:, t]}
        if self.history:
            item["history"] = self.binned[:, t - self.history:t]
        return item


#: the fewest validation frames (targets) a split may give: the validation correlation that early stopping watches is
#: undefined over 1 frame (no epoch ever counted as the best: the last was kept) and +-1 over 2, whatever the
#: prediction. Fewer than ``retina.fit.MIN_VALIDATION_TARGETS`` (1000) are noise, which a fit warns of.
MIN_VALIDATION_FRAMES = 3


def split_blocks(n_frames: int, val_fraction: float = 0.1, n_blocks: int = 5,
                 window: int = N_FRAMES) -> Tuple[np.ndarray, np.ndarray]:
    """Train and validation target frames (see module docstring). Refused (``DataError``): a block whose validation
    or training part is shorter than ``window`` (the model's temporal history: no frame of it could be scored, and
    early stopping would silently never see that block), or fewer than :data:`MIN_VALIDATION_FRAMES` in all."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)) or n_blocks < 1:
        # 0 or fewer failed inside numpy ("need at least one array to concatenate")
        raise DataError(f"n_blocks must be a whole number of at least 1 (the contiguous blocks the recording is cut "
                        f"into, the last val_fraction of each for validation), got {n_blocks!r}")
    train, val = _split(n_frames, val_fraction, n_blocks, window)
    problem = _split_problem(n_frames, val_fraction, n_blocks, window)
    if problem is None:
        return train, val
    # the fewest frames that split soundly, searched from a bound below it: each block of about n / n_blocks frames
    # holds a window in its validation part and one in its training part
    shortest = (window - 0.5) / min(val_fraction, 1 - val_fraction)
    needed = next(n for n in itertools.count(max(n_frames + 1, n_blocks * (int(shortest) - 2)))
                  if _split_problem(n, val_fraction, n_blocks, window) is None)
    blocks = f"{n_blocks} block{'s' * (n_blocks != 1)}"
    if problem == "total":
        raise DataError(f"{n_frames} frames are too few for {blocks} with {window}-frame windows: they give "
                        f"{len(train)} training and {len(val)} validation frame{'s' * (len(val) != 1)} (the last "
                        f"{val_fraction:.4g} of each block, less a window each; the validation correlation needs "
                        f"{MIN_VALIDATION_FRAMES}, undefined over 1 frame and +-1 over 2 whatever the prediction); "
                        f"about {needed} needed")
    block, start, cut, end, side = problem
    part, first, last = (cut - start, start, cut - 1) if side == "training" else (end - cut, cut, end - 1)
    unseen = "early stopping never sees" if side == "validation" else "the fit never trains on"
    raise DataError(f"{n_frames} frames are too few for {blocks} with {window}-frame windows: block {block + 1} of "
                    f"{n_blocks} (frames {start}-{end - 1}) leaves {part} frame{'s' * (part != 1)} to its {side} part "
                    f"(frames {first}-{last}; the last {val_fraction:.4g} of each block is validation), fewer than the "
                    f"{window} of one window, so none of them is scored and {unseen} that block; each block's {side} "
                    f"part needs at least {window} frames: about {needed} frames needed, or another val_fraction "
                    "(zoo fit --val-fraction) or fewer blocks (n_blocks in Python)")


def _block_edges(n_frames: int, val_fraction: float, n_blocks: int):
    """``(start, cut, end)`` of each block: training frames ``start..cut-1``, validation frames ``cut..end-1``."""
    edges = np.linspace(0, n_frames, n_blocks + 1).astype(int)
    return [(int(start), int(end - int(round((end - start) * val_fraction))), int(end))
            for start, end in zip(edges[:-1], edges[1:])]


def _split(n_frames: int, val_fraction: float, n_blocks: int, window: int) -> Tuple[np.ndarray, np.ndarray]:
    blocks = _block_edges(n_frames, val_fraction, n_blocks)
    return (np.concatenate([np.arange(start + window - 1, cut) for start, cut, _ in blocks]),
            np.concatenate([np.arange(cut + window - 1, end) for _, cut, end in blocks]))


def _split_problem(n_frames: int, val_fraction: float, n_blocks: int, window: int):
    """None where the split is sound; ``"total"`` where it scores fewer than :data:`MIN_VALIDATION_FRAMES` validation
    frames or no training frame; else ``(block, start, cut, end, side)`` of the first block whose ``side``
    ("validation" or "training") part is shorter than ``window``."""
    train, val = _split(n_frames, val_fraction, n_blocks, window)
    if not len(train) or len(val) < MIN_VALIDATION_FRAMES:
        return "total"
    for block, (start, cut, end) in enumerate(_block_edges(n_frames, val_fraction, n_blocks)):
        for side, length in (("validation", end - cut), ("training", cut - start)):
            if length < window:
                return block, start, cut, end, side
    return None
