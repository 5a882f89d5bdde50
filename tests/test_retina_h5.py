import re

import h5py
import numpy as np
import pytest
import torch

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.retina_h5 import (MIN_VALIDATION_FRAMES, N_FRAMES, StimulusWindows, checked_experiment,
                                         firing_rates, movie_windows, read_experiment, read_spikes, split_blocks,
                                         write_experiment)


def _experiment(tmp_path, T=120, T_test=80, cells=3, repeats=4, seed=0):
    rng = np.random.default_rng(seed)
    binned = rng.poisson(0.3, (cells, T)).astype(np.float32)
    trials = rng.poisson(0.3, (repeats, cells, T_test)).astype(np.float32)
    rates = firing_rates(trials)
    train = {"stimulus": rng.standard_normal((T, 50, 50)).astype(np.float32), "time": np.arange(T) / 100,
             "response": {**firing_rates(binned), "binned": binned}}
    test = {"stimulus": rng.standard_normal((T_test, 50, 50)).astype(np.float32), "time": np.arange(T_test) / 100,
            "response": {k: v.mean(0) for k, v in rates.items()} | {"binned": trials.mean(0)},
            "repeats": {f"cell{c + 1:02d}": rates["firing_rate_10ms"][:, c] for c in range(cells)}}
    spikes = {f"cell{c + 1:02d}": np.sort(rng.uniform(0, T / 100, 7)) for c in range(cells)}
    return write_experiment(tmp_path / "expt.h5", train, test, spikes), train, test, spikes


def test_round_trip_exact_layout(tmp_path):
    path, train, test, spikes = _experiment(tmp_path)
    with h5py.File(path) as f:
        names = set()
        f.visit(names.add)
    for split in ("train", "test"):
        for key in ("stimulus", "time", "response/firing_rate_5ms", "response/firing_rate_10ms",
                    "response/firing_rate_20ms", "response/binned"):
            assert f"{split}/{key}" in names
    assert {"test/repeats/cell01", "test/repeats/cell03", "spikes/cell02"} <= names
    tr, te = read_experiment(path, "train"), read_experiment(path, "test")
    np.testing.assert_array_equal(tr.stimulus, train["stimulus"])
    np.testing.assert_array_equal(tr.response("binned"), train["response"]["binned"])
    assert tr.cells == ["cell01", "cell02", "cell03"] and tr.repeats is None
    assert te.repeats.shape == (3, 4, 80)
    np.testing.assert_allclose(te.repeats.mean(1), te.response("firing_rate_10ms"), rtol=1e-5, atol=1e-5)
    got = read_spikes(path)
    np.testing.assert_array_equal(got["cell02"], spikes["cell02"])
    assert repr(te) == (f"Recording({str(path)!r}, split='test', 3 cells, 80 frames; responses: binned (3, 80), "
                        "firing_rate_10ms (3, 80), firing_rate_20ms (3, 80), firing_rate_5ms (3, 80); "
                        "repeats: (3, 4, 80) (cells, repeats, T))")  # was every array in full: 60 kB for this file


def test_firing_rates_are_smoothed_hz():
    binned = np.zeros((1, 200), np.float32)
    binned[0, 100] = 1
    rates = firing_rates(binned)
    # one spike in a 10 ms bin = 100 spikes/s of area; wider smoothing -> lower peak
    for key, r in rates.items():
        assert r.sum() == pytest.approx(100.0, rel=1e-3)
    assert rates["firing_rate_5ms"].max() > rates["firing_rate_10ms"].max() > rates["firing_rate_20ms"].max()


def _corrupt(path, dataset, value):
    with h5py.File(path, "a") as f:
        del f[dataset]
        if value is not None:
            f[dataset] = value


@pytest.mark.parametrize("dataset,value,split,fragment", [
    ("train/stimulus", np.zeros((120, 40, 50), np.float32), "train", "expected shape (T, 50, 50), got (120, 40, 50)"),
    ("train/time", np.zeros(119), "train", "expected shape (120,)"),
    ("train/response/binned", np.zeros((3, 100), np.float32), "train", "expected shape (3, 120)"),
    ("test/repeats/cell02", None, "test", "test/repeats/cell02: missing"),
    ("test/repeats/cell01", np.zeros((4, 79), np.float32), "test", "expected shape (n_repeats >= 2, 80)"),
    ("test/repeats/cell01", np.zeros((1, 80), np.float32), "test", "expected shape (n_repeats >= 2, 80), got (1, 80)"),
    ("train/response/binned", np.array([b"a", b"b"]), "train",
     "train/response/binned: holds |S1 values, expected numbers, shape (cells, 120)"),
    ("test/repeats/cell02", np.array(["x"], dtype=h5py.string_dtype()), "test",
     "test/repeats/cell02: holds object values, expected numbers, shape (n_repeats, 80)"),
    ("test/stimulus", np.zeros((39, 50, 50), np.float32), "test",
     "test/stimulus: expected shape (T, 50, 50) with T >= 40 (one 40-frame window), got (39, 50, 50)"),
])
def test_validation_names_file_dataset_and_shape(tmp_path, dataset, value, split, fragment):
    path, *_ = _experiment(tmp_path)
    _corrupt(path, dataset, value)
    with pytest.raises(DataError) as info:
        read_experiment(path, split)
    message = str(info.value)
    assert str(path) in message and fragment in message


@pytest.mark.parametrize("split,time,fragment", [
    ("train", np.arange(120) / 60, r"train/time: frames 0\.0166667 s apart \(median step of 120 times\); expected "
                                   r"0\.01 s \(100 Hz frames: 0, 0\.01, 0\.02, \.\.\. s\): resample the recording"),
    ("train", np.arange(120) * 10.0, r"train/time: frames 10 s apart .*: times in ms\? store them in s"),
    ("test", np.zeros(80), r"test/time: frames 0 s apart"),
])
def test_a_recording_at_another_frame_rate_is_named(tmp_path, split, time, fragment):
    """A 60 Hz recording (or times in ms, or none) was read as 10 ms frames: 40-frame windows of 667 ms, filters and
    rates in Hz off by the ratio, and no word of it. Frame times that jitter, as a rig's measured ones do, pass."""
    path, *_ = _experiment(tmp_path)
    _corrupt(path, f"{split}/time", time)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: dataset {fragment}"):
        read_experiment(path, split)
    _corrupt(path, f"{split}/time", np.arange(len(time)) / 100 + np.random.default_rng(0).uniform(0, 1e-4, len(time)))
    assert read_experiment(path, split).n_frames == len(time)
    with h5py.File(path, "a") as f:
        f.attrs["frame_rate_hz"] = 60
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: attribute frame_rate_hz is \[60\]; expected 100 "):
        read_experiment(path, split)


def test_a_group_where_a_dataset_belongs_is_named(tmp_path):
    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        del f["train/response/firing_rate_20ms"]
        f.create_group("train/response/firing_rate_20ms")
    with pytest.raises(DataError, match=r"train/response/firing_rate_20ms: is a group, expected a dataset of shape "
                                        r"\(cells, 120\)"):
        read_experiment(path, "train")


def test_other_datasets_in_response_are_passed_over_as_the_original_loaders_do(tmp_path):
    """deep-retina's ``loadexpt`` reads only ``response/firing_rate_10ms`` (deepretina/experiments.py line 228 at
    064d631), torch-deep-retina's also ``response/binned`` (torchdeepretina/datas.py lines 102 and 106 at 000dfeb):
    a lab file with other datasets or groups there loads in both. Each was read here and the file refused where one
    was not (cells, T) numbers (a group ``extra``, a text note, per-cell spike times). They are passed over, named in
    ``unread``, and one is read, with the checks of the others, only where ``response`` asks for it by name."""
    path, train, *_ = _experiment(tmp_path)
    before = read_experiment(path, "train")
    with h5py.File(path, "a") as f:
        f.create_group("train/response/extra").create_dataset("cell01", data=np.arange(5.0))
        f["train/response/note"] = np.array([b"lab notes"])
        f["train/response/spike_times"] = np.arange(7.0)
        f["train/response/firing_rate_50ms"] = np.full((3, 120), 2.0, np.float32)
        f["train/response/counts_transposed"] = np.zeros((120, 3), np.float32)
    recording = read_experiment(path, "train")
    assert recording.unread == ("counts_transposed", "extra", "firing_rate_50ms", "note", "spike_times")
    assert sorted(recording.responses) == sorted(before.responses) == ["binned", "firing_rate_10ms",
                                                                       "firing_rate_20ms", "firing_rate_5ms"]
    for key, value in before.responses.items():
        np.testing.assert_array_equal(recording.response(key), value)
    assert repr(recording).endswith("repeats: none; not read: counts_transposed, extra, firing_rate_50ms, note, "
                                    "spike_times)")
    np.testing.assert_array_equal(recording.response("firing_rate_50ms"), np.full((3, 120), 2.0, np.float32))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: dataset train/response/counts_transposed: "
                                        r"expected shape \(cells, 120\) with the cells first, got \(120, 3\)"):
        recording.response("counts_transposed")
    with pytest.raises(DataError, match=r"train/response/note: holds \|S9 values, expected numbers"):
        recording.response("note")
    with pytest.raises(DataError, match=r"train/response/firing_rate_1ms: missing; .* \(train/response holds: binned, "
                                        r"counts_transposed, extra, firing_rate_10ms, firing_rate_20ms, "
                                        r"firing_rate_50ms, firing_rate_5ms, note, spike_times\)"):
        recording.response("firing_rate_1ms")
    checked_experiment(path)  # the fit's check passes too


@pytest.mark.parametrize("shape", [(1, 120), (120, 1)])
def test_time_stored_as_a_row_or_a_column_is_read_as_its_frame_times(tmp_path, shape):
    """deep-retina and torch-deep-retina read ``time`` only as ``f[split]['time'].size`` (deepretina/experiments.py
    line 211 at 064d631, torchdeepretina/datas.py line 78 at 000dfeb), so a MATLAB-written (1, T) row or (T, 1)
    column loads there; it was refused here, "expected shape (120,)"."""
    path, *_ = _experiment(tmp_path)
    times = np.arange(120) / 100
    with h5py.File(path, "a") as f:
        del f["train/time"]
        f.create_dataset("train/time", data=times.reshape(shape))
        assert f["train/time"].shape == shape and f["train/time"].size == 120
    recording = read_experiment(path, "train")
    assert recording.time.shape == (120,) and recording.n_frames == 120
    np.testing.assert_array_equal(recording.time, times)


@pytest.mark.parametrize("value,found", [
    (np.arange(120).reshape(2, 60) / 100, r"got \(2, 60\): 120 values, but in 2 rows, not one row or column of frame "
                                          r"times"),
    (np.arange(119)[None] / 100, r"got \(1, 119\)$"),
])
def test_time_of_another_shape_is_refused_naming_the_shapes_read(tmp_path, value, found):
    path, *_ = _experiment(tmp_path)
    _corrupt(path, "train/time", value)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: dataset train/time: expected shape \(120,\) to "
                                        r"match train/stimulus: one time in s per frame \(or a row or column of them, "
                                        rf"\(1, 120\) or \(120, 1\)\); {found}"):
        read_experiment(path, "train")


def test_a_dataset_where_a_group_belongs_is_named(tmp_path):
    # response/ or repeats/ stored as one array: a KeyError and an AttributeError traceback before
    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        del f["train/response"], f["test/repeats"]
        f["train/response"] = np.zeros((3, 120), np.float32)
        f["test/repeats"] = np.zeros((3, 4, 80), np.float32)
    with pytest.raises(DataError, match=r"train/response: is a dataset of shape \(3, 120\), expected a group holding "
                                        r"one dataset \(cells, 120\) per key: firing_rate_5ms, firing_rate_10ms"):
        read_experiment(path, "train")
    with pytest.raises(DataError, match=r"test/repeats: is a dataset of shape \(3, 4, 80\), expected a group holding "
                                        r"firing_rate_10ms \(n_repeats, 3, 80\) or one dataset \(n_repeats, 80\) per "
                                        r"cell: cell01, cell02, \.\.\."):
        read_experiment(path, "test")


def test_zoo_fit_checks_the_test_split_before_fitting(tmp_path, capsys):
    from neurozoo.leaderboard.cli import main as zoo

    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        for key in list(f["test/response"]):
            kept = f["test/response"][key][:2]
            del f["test/response"][key]
            f["test/response"][key] = kept
        del f["test/repeats/cell03"]
    out = tmp_path / "fit"
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(out), "--quiet"]) == 2
    # the dataset and its shape named, as the reader's other errors do ("dataset test/response: expected 3 cells")
    assert capsys.readouterr().err.strip() == (f"zoo fit: error: {path}: dataset test/response/firing_rate_5ms: "
                                               "expected shape (3, 80) (cells, T: the 3 cells of train/response/"
                                               "firing_rate_5ms), got (2, 80); both splits must hold the same cells")
    assert not out.exists()  # refused before the fit: no checkpoint, no weights


def test_zoo_fit_checks_the_test_stimulus_for_nans_before_fitting(tmp_path, capsys):
    # the held-out movie's NaN used to surface in evaluate(), after the fit had written checkpoint.pt and model.pt
    from neurozoo.leaderboard.cli import main as zoo

    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        f["test/stimulus"][10, 3, 4] = np.nan
    out = tmp_path / "fit"
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"zoo fit: error: {path}: dataset test/stimulus: contains 1 NaN/inf "
                                               "value, the first at index (10, 3, 4) (frame 10, row 3, column 4); "
                                               "expected finite intensities, shape (T, 50, 50)")
    assert not out.exists()


def test_repeats_stored_as_spike_counts_are_refused_before_fitting(tmp_path, capsys):
    """A lab storing each trial's binned counts in test/repeats (the layout named no unit) got held-out FEVE of
    -3766 from zoo fit, the message blaming the fit's output scale: the repeats must be spikes/s like the rates."""
    from neurozoo.leaderboard.cli import main as zoo

    path, train, test, _ = _experiment(tmp_path, T=300)
    trials = np.stack([test["repeats"][c] for c in ("cell01", "cell02", "cell03")])  # (cells, repeats, T) spikes/s
    with h5py.File(path, "a") as f:
        for c, cell in enumerate(("cell01", "cell02", "cell03")):
            f[f"test/repeats/{cell}"][...] = trials[c] / 100.0  # spikes per 10 ms frame (smoothed counts)
    out = tmp_path / "fit"
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(out), "--quiet"]) == 2
    message = capsys.readouterr().err.strip()
    mean = float(trials.mean()) / 100
    assert message.startswith(f"zoo fit: error: {path}: dataset test/repeats: mean {mean:.4g} over trials and cells, "
                              f"but test/response/firing_rate_10ms means {mean * 100:.4g} spikes/s")
    assert "look like spike counts per 10 ms frame" in message and not out.exists()
    # a file with binned counts only is compared in spikes/s, as the fit reads it: consistent repeats pass
    with h5py.File(path, "a") as f:
        for key in ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms"):
            del f[f"test/response/{key}"]
        for c, cell in enumerate(("cell01", "cell02", "cell03")):
            f[f"test/repeats/{cell}"][...] = trials[c]
    assert read_experiment(path, "test").repeats.shape == (3, 4, 80)
    with h5py.File(path, "a") as f:
        f["test/repeats/cell01"][...] = trials[0] * 3  # a factor of 3 in every cell's mean is named too
        f["test/repeats/cell02"][...] = trials[1] * 3
        f["test/repeats/cell03"][...] = trials[2] * 3
    with pytest.raises(DataError, match=r"test/repeats: mean .* but test/response/binned means .* spikes/s: the repeats "
                                        r"must be per-trial firing_rate_10ms in spikes/s, whose mean over trials is "
                                        r"test/response/firing_rate_10ms$"):
        read_experiment(path, "test")



def _one_dataset_repeats(path, keys=("firing_rate_10ms",), drop_cells=True, transform=lambda a: a):
    """Rewrite ``path``'s per-cell repeats as the Baccus lab's one dataset per key, (n_repeats, cells, T)."""
    with h5py.File(path, "a") as f:
        cells = _cell_names(f["test/repeats"])
        trials = np.stack([f[f"test/repeats/{c}"][...] for c in cells], axis=1)  # (n_repeats, cells, T)
        if drop_cells:
            for c in cells:
                del f[f"test/repeats/{c}"]
        for key in keys:
            f[f"test/repeats/{key}"] = transform(trials)
    return trials


def _cell_names(group):
    return sorted((n for n in group if n.startswith("cell")), key=lambda n: (len(n), n))


def test_repeats_in_one_dataset_read_as_the_per_cell_layout(tmp_path):
    """The Baccus lab's files (Maheswaranathan et al. 2023) store test/repeats/firing_rate_10ms (n_repeats, cells, T)
    (openretina maheswaranathan_2023/responses.py reads both layouts); our reader required cellNN and refused them."""
    path, *_ = _experiment(tmp_path)
    per_cell = read_experiment(path, "test").repeats
    trials = _one_dataset_repeats(path, keys=("firing_rate_10ms", "binned"))
    assert trials.shape == (4, 3, 80)
    one = read_experiment(path, "test")
    np.testing.assert_array_equal(one.repeats, per_cell)
    assert one.repeats.shape == (3, 4, 80) and one.repeats.flags.c_contiguous
    # firing_rate_10ms is read where per-cell datasets are present too (openretina prefers the keyed dataset)
    with h5py.File(path, "a") as f:
        f["test/repeats/cell01"] = np.zeros((4, 80), np.float32)
    np.testing.assert_array_equal(read_experiment(path, "test").repeats, per_cell)
    # the units check holds for this layout as for the other: counts per frame are refused
    with h5py.File(path, "a") as f:
        f["test/repeats/firing_rate_10ms"][...] = trials / 100.0
    with pytest.raises(DataError, match=r"test/repeats: mean .* look like spike counts per 10 ms frame"):
        read_experiment(path, "test")


@pytest.mark.parametrize("shape,fragment", [
    ((3, 4, 80), "got (3, 4, 80): cells first? store it as (n_repeats, cells, T), (4, 3, 80)"),
    ((4, 2, 80), "got (4, 2, 80)"),
    ((4, 3, 79), "got (4, 3, 79)"),
    ((1, 3, 80), "got (1, 3, 80)"),
    ((3, 80), "got (3, 80)"),
])
def test_repeats_in_one_dataset_of_the_wrong_shape_are_named(tmp_path, shape, fragment):
    path, *_ = _experiment(tmp_path)
    _one_dataset_repeats(path, transform=lambda trials: np.ones(shape, np.float32))
    with pytest.raises(DataError) as info:
        read_experiment(path, "test")
    assert str(info.value).startswith(f"{path}: dataset test/repeats/firing_rate_10ms: expected shape (n_repeats >= 2, "
                                      "3, 80) (trials, cells, T matching test/response), ")
    assert str(info.value).endswith(fragment)


def test_per_cell_repeats_stored_frames_first_are_named_with_the_transpose(tmp_path):
    """test/repeats/cellNN stored (T, n_repeats) (frames first, as MATLAB or a Keras-style array writes it) was refused
    with only the shapes; the response's (T, cells) already said to transpose it, the repeats now say so too."""
    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        trials = f["test/repeats/cell01"][()]
        del f["test/repeats/cell01"]
        f["test/repeats/cell01"] = trials.T
    with pytest.raises(DataError) as info:
        read_experiment(path, "test")
    assert str(info.value) == (f"{path}: dataset test/repeats/cell01: expected shape (n_repeats >= 2, 80), got "
                               f"(80, {trials.shape[0]}): frames on the first axis; store it transposed, as "
                               f"({trials.shape[0]}, 80)")


def test_repeats_of_binned_counts_alone_are_refused_naming_what_is_needed(tmp_path):
    """No loader of the original reads binned repeats (openretina reads test/repeats/<firing-rate key>), so a file
    with only test/repeats/binned is refused with the dataset to add, not converted by a rule of ours."""
    path, *_ = _experiment(tmp_path)
    _one_dataset_repeats(path, keys=("binned", "firing_rate_20ms"))
    with pytest.raises(DataError) as info:
        read_experiment(path, "test")
    assert str(info.value) == (
        f"{path}: dataset test/repeats: holds binned, firing_rate_20ms but neither firing_rate_10ms (n_repeats, 3, 80) "
        "nor cell01..cell03 (n_repeats, 80): held-out metrics need each trial's firing_rate_10ms in spikes/s; from "
        "counts per frame store firing_rates(binned)['firing_rate_10ms'] (neurozoo.datasets.retina_h5) as "
        "test/repeats/firing_rate_10ms")


def test_responses_stored_frames_first_are_named_as_transposed(tmp_path):
    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        for key in list(f["train/response"]):
            data = f["train/response"][key][...]
            del f["train/response"][key]
            f["train/response"][key] = data.T
    with pytest.raises(DataError) as info:
        read_experiment(path, "train")
    assert str(info.value) == (f"{path}: dataset train/response/binned: expected shape (cells, 120) with the cells "
                               "first, got (120, 3): frames on the first axis; store it transposed, as (3, 120)")


def test_nans_and_missing_repeats_group(tmp_path):
    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        data = f["train/response/firing_rate_10ms"][...]
        data[1, 5] = np.nan
        f["train/response/firing_rate_10ms"][...] = data
        del f["test/repeats"]
    with pytest.raises(DataError, match=r"train/response/firing_rate_10ms: contains 1 NaN"):
        read_experiment(path, "train")
    with pytest.raises(DataError, match=r"test/repeats: missing"):
        read_experiment(path, "test")
    with pytest.raises(DataError, match="no such experiment file"):
        read_experiment(tmp_path / "absent.h5")
    with pytest.raises(DataError, match=rf"^{tmp_path}: is a folder, not an experiment file \(expected a deep-retina"):
        read_experiment(tmp_path)  # was 'no such experiment file', for a folder that is there


def _set(path, dataset, index, value):
    with h5py.File(path, "a") as f:
        data = f[dataset][...]
        data[index] = value
        f[dataset][...] = data


@pytest.mark.parametrize("split,change,message", [
    ("train", lambda p: _set(p, "train/response/binned", (2, 70), np.inf),
     "dataset train/response/binned: contains 1 NaN/inf value, the first at index (2, 70) (cell03, frame 70); "
     "expected finite values, shape (3, 120)"),
    ("test", lambda p: _set(p, "test/stimulus", (77, 3, 9), np.nan),
     "dataset test/stimulus: contains 1 NaN/inf value, the first at index (77, 3, 9) (frame 77, row 3, column 9); "
     "expected finite intensities, shape (T, 50, 50)"),
    ("test", lambda p: _set(p, "test/repeats/cell02", (slice(1, 3), 50), np.nan),
     "dataset test/repeats/cell02: contains 2 NaN/inf values, the first at index (1, 50) (trial 1, frame 50); "
     "expected finite rates, shape (n_repeats, 80)"),
    ("train", lambda p: _set(p, "train/time", 5, np.nan),
     "dataset train/time: contains 1 NaN/inf value, the first at index (5,) (frame 5); expected finite frame times "
     "in s, shape (120,)"),
    ("train", lambda p: _corrupt(p, "train/response", None),
     "dataset train/response: missing; expected a group holding firing_rate_10ms or binned, each (cells, T) (train "
     "holds: stimulus, time)"),
    ("test", lambda p: _corrupt(p, "test/repeats", None),
     "dataset test/repeats: missing; expected a group of repeated trials for held-out metrics: firing_rate_10ms "
     "(n_repeats, 3, 80) or cellNN (n_repeats, 80) per cell (test holds: response, stimulus, time)"),
    ("train", lambda p: [_corrupt(p, f"train/response/{key}", None) for key in ("firing_rate_10ms", "binned")],
     "dataset train/response: needs at least firing_rate_10ms or binned, each (cells, 120) (it holds: "
     "firing_rate_20ms, firing_rate_5ms)"),
    ("test", lambda p: _corrupt(p, "test", None),
     "dataset /test: group missing; expected a group holding stimulus, time and response (the file holds: spikes, "
     "train)"),
    ("train", lambda p: _corrupt(p, "train", np.zeros((120, 50, 50), np.float32)),  # was an AttributeError traceback
     "dataset train: is a dataset of shape (120, 50, 50), expected a group holding stimulus, time and response"),
])
def test_a_malformed_file_is_refused_naming_the_file_the_field_and_what_was_expected(tmp_path, split, change, message):
    """Non-finite values name their first index (a NaN in hours of recording, otherwise found by bisecting by hand),
    a missing field what its group holds instead (a misnamed dataset then shows itself)."""
    path, *_ = _experiment(tmp_path)
    change(path)
    with pytest.raises(DataError) as info:
        read_experiment(path, split)
    assert str(info.value) == f"{path}: {message}"


def _damage(path, dataset):
    """``dataset`` stored again gzip-compressed, then its first chunk overwritten on disk: the file opens, its
    header whole, and HDF5 fails only as that chunk is read (a file damaged in a copy or on a disk)."""
    with h5py.File(path, "a") as f:
        data = f[dataset][...]
        del f[dataset]
        f.create_dataset(dataset, data=data, compression="gzip", chunks=data.shape)
        chunk = f[dataset].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xab" * chunk.size)


@pytest.mark.parametrize("dataset,read", [
    ("train/time", lambda p: read_experiment(p, "train")),
    ("train/response/binned", lambda p: read_experiment(p, "train")),
    ("train/stimulus", lambda p: read_experiment(p, "train", check_stimulus=True)),
    ("test/stimulus", lambda p: read_experiment(p, "test")),
    ("test/repeats/cell02", lambda p: read_experiment(p, "test")),
    ("train/stimulus", checked_experiment),  # its mean and sd, sampled against the test stimulus's
    ("spikes/cell02", read_spikes),
])
def test_a_damaged_dataset_is_named_not_an_hdf5_traceback(tmp_path, dataset, read):
    """A file whose header is whole and whose data is damaged opened, and failed as the dataset was read, in h5py's
    OSError traceback ('Can't synchronously read data (filter returned failure during read)'), naming neither the
    file nor the dataset."""
    path, *_ = _experiment(tmp_path)
    _damage(path, dataset)
    with pytest.raises(DataError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: dataset {dataset}: cannot be read, the file is damaged (HDF5: ")
    assert str(info.value).endswith("); copy or export the recording again")


def test_spikes_missing_name_what_the_file_holds(tmp_path):
    path, *_ = _experiment(tmp_path)
    _corrupt(path, "spikes", None)
    with pytest.raises(DataError) as info:
        read_spikes(path)
    assert str(info.value) == (f"{path}: dataset spikes: missing; expected a group holding each cell's spike times in "
                               "s, cellNN (n_spikes,) (/ holds: test, train)")
    with pytest.raises(DataError, match="absent.h5: no such experiment file"):
        read_spikes(tmp_path / "absent.h5")


@pytest.mark.parametrize("spikes, message", [
    (np.array([b"0.1", b"0.2"]), "holds |S3 values, expected numbers, shape (n_spikes,)"),
    (np.array([0.1, np.nan, 0.3]), "contains 1 NaN/inf value, the first at index (1,) (spike 1); expected finite "
                                   "spike times in s, shape (n_spikes,)"),
])
def test_spike_times_that_are_not_numbers_or_not_finite_are_named(tmp_path, spikes, message):
    """read_spikes returned text (bytes) and NaN spike times as they were; a file that is no HDF5 raised h5py's
    OSError, naming no file."""
    path, *_ = _experiment(tmp_path)
    _corrupt(path, "spikes/cell02", spikes)
    with pytest.raises(DataError) as info:
        read_spikes(path)
    assert str(info.value) == f"{path}: dataset spikes/cell02: {message}"
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=r"junk\.h5: not a readable HDF5 file \("):
        read_spikes(tmp_path / "junk.h5")


def test_windows_are_lazy_and_target_the_last_frame():
    T = 100
    movie = torch.arange(T, dtype=torch.float32)[:, None, None].expand(T, 50, 50).contiguous()
    responses = torch.arange(T, dtype=torch.float32)[None].repeat(2, 1)
    ds = StimulusWindows(movie, responses)
    assert len(ds) == T - N_FRAMES + 1
    item = ds[0]
    assert item["stimulus"].shape == (40, 50, 50)
    assert item["stimulus"][-1, 0, 0] == item["response"][0] == 39  # target at the window's last frame
    assert item["stimulus"].data_ptr() == ds.movie[0].data_ptr()  # a view into the movie, not a copy
    batch = ds.batch(torch.tensor([0, 10, 60]))
    assert batch["stimulus"].shape == (3, 40, 50, 50)
    np.testing.assert_array_equal(batch["stimulus"][:, -1, 0, 0], [39, 49, 99])
    np.testing.assert_array_equal(batch["response"][:, 1], [39, 49, 99])
    view = movie_windows(movie)
    assert view.shape == (T - 39, 40, 50, 50) and view.data_ptr() == movie.data_ptr()
    torch.testing.assert_close(view[10], batch["stimulus"][1])


def test_windows_with_spike_history():
    T = 80
    binned = torch.arange(T, dtype=torch.float32)[None].repeat(2, 1)
    ds = StimulusWindows(torch.zeros(T, 50, 50), binned, binned=binned, history=45)
    assert ds.targets[0] == 45  # room for both the window and the history
    item = ds[0]
    np.testing.assert_array_equal(item["history"][0], np.arange(0, 45))  # frames strictly before the target
    assert ds.batch(torch.tensor([0, 1]))["history"].shape == (2, 2, 45)
    with pytest.raises(DataError, match="binned"):
        StimulusWindows(torch.zeros(T, 50, 50), binned, history=5)


def test_split_blocks_contiguous_and_disjoint():
    train, val = split_blocks(1000, val_fraction=0.2, n_blocks=2)
    # block 0: frames 0..499, validation = last 100 frames; windows never straddle a boundary
    assert train.min() == 39 and val.min() == 400 + 39
    assert set(train).isdisjoint(val)
    frames_train = {f for t in train for f in range(t - 39, t + 1)}
    frames_val = {f for t in val for f in range(t - 39, t + 1)}
    assert frames_train.isdisjoint(frames_val)
    assert len(val) == 2 * (100 - 39)
    with pytest.raises(DataError):
        split_blocks(60, n_blocks=5)


@pytest.mark.parametrize("n_blocks", [0, -2, 2.5])
def test_split_blocks_refuses_fewer_than_one_block_naming_the_argument(n_blocks):
    """n_blocks=0 (or negative) failed inside numpy ("need at least one array to concatenate"), 2.5 with a TypeError;
    each is refused naming the argument, its valid range and the value given."""
    with pytest.raises(DataError, match=rf"^n_blocks must be a whole number of at least 1 \(.*\), got {n_blocks}$"):
        split_blocks(2000, n_blocks=n_blocks)
    assert len(split_blocks(2000, n_blocks=np.int64(1))[1]) == 200 - 39  # a numpy integer is a whole number


def test_a_recording_too_short_to_split_names_the_file_and_the_frames_needed(tmp_path):
    from neurozoo.retina.fit import create_model, fit

    path, *_ = _experiment(tmp_path)
    with pytest.raises(DataError) as info:
        fit(create_model("ln", n_cells=3), path, progress=False)
    assert str(info.value) == (f"{path}: dataset train/stimulus: 120 frames are too few for 5 blocks with 40-frame "
                               "windows: they give 0 training and 0 validation frames (the last 0.1 of each block, less "
                               "a window each; the validation correlation needs 3, undefined over 1 frame and +-1 over 2 "
                               "whatever the prediction); about 1975 needed")
    train, val = split_blocks(1975)  # the number named is enough: one validation frame in each of 5 blocks
    assert len(train) and len(val) == 5
    with pytest.raises(DataError, match="too few"):
        split_blocks(1970)


def test_a_split_whose_validation_correlation_is_undefined_or_always_one_is_refused(tmp_path):
    """One validation frame per block passed the split (only warned): with 1 or 2 blocks the validation correlation
    early stopping watches was over 1 frame (undefined: no epoch ever counted as the best, the last one was kept) or
    2 (+-1 whatever the prediction). 120 frames, 1 block, the last third: 40 validation frames, 1 scorable."""
    from neurozoo.retina.fit import create_model, fit

    assert MIN_VALIDATION_FRAMES == 3
    path, *_ = _experiment(tmp_path)
    with pytest.raises(DataError) as info:
        fit(create_model("ln", n_cells=3), path, n_blocks=1, val_fraction=1 / 3, progress=False)
    assert str(info.value) == (f"{path}: dataset train/stimulus: 120 frames are too few for 1 block with 40-frame "
                               "windows: they give 41 training and 1 validation frame (the last 0.3333 of each block, "
                               "less a window each; the validation correlation needs 3, undefined over 1 frame and "
                               "+-1 over 2 whatever the prediction); about 125 needed")
    with pytest.raises(DataError, match="they give 82 training and 2 validation frames"):
        split_blocks(240, 1 / 3, n_blocks=2)  # one in each block: a correlation of +-1
    assert len(split_blocks(125, 1 / 3, n_blocks=1)[1]) == 3  # the number named is enough


def test_a_block_whose_validation_part_is_shorter_than_a_window_is_refused_naming_the_file_and_the_block(tmp_path):
    """A block whose validation part holds fewer frames than the model's 40-frame history scores none of them: the
    split passed as long as the other blocks gave 3 validation frames, and early stopping never saw that block.
    475 frames in 4 blocks (118, 119, 119, 119 frames), the last third of each: 39, 40, 40, 40 validation frames."""
    from neurozoo.retina.fit import create_model, fit

    path, *_ = _experiment(tmp_path, T=475)
    with pytest.raises(DataError) as info:
        fit(create_model("ln", n_cells=3), path, n_blocks=4, val_fraction=1 / 3, progress=False)
    assert str(info.value) == (f"{path}: dataset train/stimulus: 475 frames are too few for 4 blocks with 40-frame "
                               "windows: block 1 of 4 (frames 0-117) leaves 39 frames to its validation part (frames "
                               "79-117; the last 0.3333 of each block is validation), fewer than the 40 of one window, "
                               "so none of them is scored and early stopping never sees that block; each block's "
                               "validation part needs at least 40 frames: about 476 frames needed, or another "
                               "val_fraction (zoo fit --val-fraction) or fewer blocks (n_blocks in Python)")
    train, val = split_blocks(476, 1 / 3, n_blocks=4)  # the number named is enough: 40 or more in each block
    assert len(val) == 4 and len(train) == 4 * 40
    with pytest.raises(DataError, match=r"block 1 of 3 \(frames 0-78\) leaves 39 frames to its training part "
                                        r"\(frames 0-38; .*the fit never trains on that block"):
        split_blocks(239, 0.5, n_blocks=3)  # 79, 80, 80 frames: 39, 40, 40 of them to training
    assert len(split_blocks(1975)[1]) == 5  # 40 validation frames in each block, one scored: noisy, warned by a fit


def test_responses_without_cells_or_with_negative_rates_are_named(tmp_path, capsys):
    """No cells ended in a traceback (np.stack of no repeats, exit 1); a negative rate was fitted with a Poisson
    loss that ran to NaN, and zoo fit reported the result as if nothing had happened."""
    from neurozoo.leaderboard.cli import main as zoo

    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        data = f["train/response/firing_rate_10ms"][...]
        data[2, 7] = -0.5
        f["train/response/firing_rate_10ms"][...] = data
    with pytest.raises(DataError, match=r"train/response/firing_rate_10ms: contains 1 negative values; expected spike "
                                        r"counts or firing rates >= 0"):
        read_experiment(path, "train")
    with h5py.File(path, "a") as f:
        for split in ("train", "test"):
            for key in list(f[f"{split}/response"]):
                length = f[f"{split}/response/{key}"].shape[1]
                del f[f"{split}/response/{key}"]
                f[f"{split}/response/{key}"] = np.zeros((0, length), np.float32)
        del f["test/repeats"]
        f.create_group("test/repeats")
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(tmp_path / "fit"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"zoo fit: error: {path}: dataset train/response/binned: expected shape "
                                               "(cells >= 1, 120), got (0, 120)")


WRITER = """
import sys, time
from pathlib import Path

import numpy as np

from neurozoo.datasets.retina_h5 import write_experiment

path, ready, go = map(Path, sys.argv[1:])
T = 2000  # 20 MB of stimulus: a write lasts long enough for the other writer to start meanwhile
split = {"stimulus": np.ones((T, 50, 50), np.float32), "time": np.arange(T) / 100,
         "response": {"firing_rate_10ms": np.ones((1, T), np.float32)}}
ready.touch()
while not go.exists():
    time.sleep(0.001)
write_experiment(path, split, {**split, "repeats": {"cell01": np.ones((2, T), np.float32)}})
"""


def test_two_processes_writing_the_same_recording_at_once_both_succeed(tmp_path):
    """Two first uses of an embedded recording at once (two `zoo score` runs, two scoring workers on a cold cache)
    each generate it and write it to the same path. Both wrote it through one temporary, ``<name>.tmp``: the
    second failed on HDF5's file lock (BlockingIOError: unable to lock file). Each writer now has its own."""
    import os
    import subprocess
    import sys
    import time

    path, go = tmp_path / "cold-cache.h5", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tmp_path / f"ready{k}"), str(go)],
                                env=env, stderr=subprocess.PIPE, text=True) for k in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{k}").exists() for k in range(2)) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()
    errors = [writer.communicate(timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], "\n".join(errors)[-3000:]
    recording = read_experiment(path, "test")
    assert recording.stimulus.shape == (2000, 50, 50) and recording.repeats.shape == (1, 2, 2000)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [path.name]  # no temporary left


def test_a_write_killed_midway_leaves_a_temporary_that_the_next_write_removes(tmp_path, monkeypatch):
    """write_experiment writes through datasets.json_files.written_whole: its temporary is ``temporary_path(path)``;
    the next write removes a dead writer's of that name and of the mkstemp name of before."""
    import subprocess
    import sys

    from neurozoo.datasets import retina_h5
    from neurozoo.datasets.cache import temporary_suffix
    from neurozoo.datasets.json_files import temporary_path

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    path = tmp_path / "expt.h5"
    planted = [temporary_path(path, ended.pid, writer=0), temporary_path(path, ended.pid),
               tmp_path / f".expt.h5.x1y2z3{temporary_suffix(ended.pid)}"]
    for stale in planted:
        stale.write_bytes(b"\x89HDF half")
    written = []
    real = retina_h5._write_groups
    monkeypatch.setattr(retina_h5, "_write_groups", lambda tmp, *a: written.append(tmp) or real(tmp, *a))
    _experiment(tmp_path)
    assert len(written) == 1 and re.fullmatch(re.escape(temporary_path(path).name) + r"\.\d+", written[0].name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expt.h5"]


def test_repeats_in_another_cell_order_than_the_response_are_warned_of(tmp_path):
    """The held-out metrics score test/repeats, cell by cell in the order of the responses' rows; repeats stored in
    another order were read without a word and every cell scored against another's responses."""
    import warnings

    path, _, test, _ = _experiment(tmp_path, cells=3, repeats=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_experiment(path, "test")  # the repeats' mean is the response: nothing to say
    with h5py.File(path, "a") as f:
        f["test/repeats/cell01"][...] = test["repeats"]["cell02"]
        f["test/repeats/cell02"][...] = test["repeats"]["cell01"]
    with pytest.warns(UserWarning, match=re.escape(
            f"{path}: test/response/firing_rate_10ms does not follow the mean of test/repeats for 2 of 3 cells (cell01 r ")
            ) as caught:
        read_experiment(path, "test")
    message = str(caught[0].message)
    assert "(best with the repeats of cell02, r 1.00)" in message and "(best with the repeats of cell01, r 1.00)" in message
    assert "cell03" not in message


def test_a_test_stimulus_unlike_the_training_one_is_warned_of_before_fitting(tmp_path):
    """A held-out movie of another contrast or mean intensity than the training movie (stored unnormalised, or
    z-scored with its own statistics) was scored without a word: the held-out numbers were of another ensemble."""
    import warnings

    from neurozoo.datasets.retina_h5 import checked_experiment
    from neurozoo.leaderboard.cli import main as zoo

    path, train, test, _ = _experiment(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked_experiment(path)  # both standard normal: nothing to say
    train_mean, train_sd = float(train["stimulus"].mean()), float(train["stimulus"].std())
    with h5py.File(path, "a") as f:
        f["test/stimulus"][...] = test["stimulus"] * 0.3  # a third of the contrast
    low_sd = float((test["stimulus"] * 0.3).std())
    with pytest.warns(UserWarning) as caught:
        checked_experiment(path)
    assert [str(w.message).split(". ")[0] for w in caught] == [
        f"{path}: test/stimulus is unlike train/stimulus: sd (contrast) {low_sd:.3g} against {train_sd:.3g} (more than "
        "a factor 1.5 apart)"]
    with h5py.File(path, "a") as f:
        f["test/stimulus"][...] = test["stimulus"] + 0.4  # brighter: 0.4 sd above the training mean
    high_mean = float((test["stimulus"] + 0.4).mean())
    # zoo fit says so before it fits (here it refuses its settings next: nothing is fitted)
    with pytest.warns(UserWarning, match=re.escape(
            f"{path}: test/stimulus is unlike train/stimulus: mean {high_mean:.3g} against {train_mean:.3g} (more than "
            "0.25 of the training sd apart). The held-out metrics score a model fitted to the training movie")):
        assert zoo(["fit", "ln", "--data", str(path), "--out", str(tmp_path / "fit"), "--output-calibration",
                    "--quiet"]) == 2
    with h5py.File(path, "a") as f:  # within the tolerances: a fifth more contrast, a tenth of an sd brighter
        f["test/stimulus"][...] = test["stimulus"] * 1.2 + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked_experiment(path)


@pytest.mark.parametrize("change, message", [
    # each was written without a word and refused only by the first fit that read it
    (lambda train, test: train.update(stimulus=np.full_like(train["stimulus"], np.nan)),
     r"dataset train/stimulus: contains \d+ NaN/inf values?"),
    (lambda train, test: train.update(time=train["time"][:-1]), r"dataset train/time: expected shape \(120,\) to match"),
    (lambda train, test: train["response"].update(binned=train["response"]["binned"][:, :-1]),
     r"dataset train/response/binned: expected shape \(3, 120\)"),
    (lambda train, test: test["response"].update({k: v[:2] for k, v in test["response"].items()}),
     r"dataset test/"),
    # a KeyError naming no split, an AttributeError
    (lambda train, test: train.pop("time"), r"train: expected a mapping of stimulus .* time missing$"),
    (lambda train, test: test.update(response=np.ones((3, 80))), r"test: expected a mapping .* response is a ndarray$"),
])
def test_a_recording_the_reader_would_refuse_is_not_written(tmp_path, change, message):
    """write_experiment reads the temporary back with read_experiment's checks before renaming it into place: the
    error names the final path, and nothing is left there."""
    _, train, test, spikes = _experiment(tmp_path / "good")
    change(train, test)
    target = tmp_path / "bad" / "expt.h5"
    with pytest.raises(DataError, match=rf"^{re.escape(str(target))}: .*{message}"):
        write_experiment(target, train, test, spikes)
    assert not target.parent.exists() or not any(target.parent.iterdir())  # neither the file nor a temporary


def test_zoo_fits_data_option_and_its_missing_file_error_name_every_embedded_recording(tmp_path):
    """README shows `zoo fit MODEL --data embedded:oms-whitenoise` (retina_embedded.oms's recording), which runs, but
    zoo fit's --help and its no-such-file error offered only embedded:whitenoise / embedded:naturalscene."""
    import argparse

    from neurozoo.datasets.synthetic_retina import KINDS
    from neurozoo.leaderboard.cli import build_parser
    from neurozoo.retina.cli import resolve_data

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    data_help = next(a.help for a in subparsers.choices["fit"]._actions if "--data" in a.option_strings)
    assert KINDS == ("whitenoise", "naturalscene", "oms-whitenoise", "oms-naturalscene", "oms-gratingmotion")
    assert all(f"embedded:{kind}" in data_help for kind in KINDS)
    with pytest.raises(DataError) as info:
        resolve_data(str(tmp_path / "absent.h5"))
    assert str(info.value) == (f"{tmp_path / 'absent.h5'}: no such experiment file (or an embedded recording: "
                               "embedded:whitenoise, embedded:naturalscene, embedded:oms-whitenoise, "
                               "embedded:oms-naturalscene, embedded:oms-gratingmotion)")


def test_a_cell_silent_through_the_training_split_but_not_in_test_is_refused_naming_it(tmp_path, capsys):
    """A cell with no spike in the whole training split that responds in the test split (a unit lost in sorting, rows
    of another recording) was fitted to zeros and scored held out as if fitted: zoo fit printed its held-out r and FEVE
    among the others, and a file of all-zero training responses gave a median held-out r, with no word that nothing
    had been learnt. A cell silent in both splits (a dead channel) is read: it has no held-out numbers."""
    from neurozoo.leaderboard.cli import main as zoo

    path, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        for key in f["train/response"]:
            f[f"train/response/{key}"][1] = 0.0
    read_experiment(path, "train")  # a split alone cannot tell
    with pytest.raises(DataError, match=re.escape(
            f"{path}: dataset train/response/binned: 1 of 3 cells is 0 at every frame (cell02) but responds in test/: a "
            "model fitted to no spike would be scored held out on the test split's; expected each cell to respond "
            "somewhere in train/ (leave it out: cells='0,2' selects the others)")):
        checked_experiment(path)  # a reader's way out: the selection that read_experiment, fit settings take
    train, test = checked_experiment(path, cells="0,2")
    assert train.cells == test.cells == ["cell01", "cell03"]
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(tmp_path / "fit"), "--quiet"]) == 2
    assert "(leave it out: zoo fit --cells 0,2)" in capsys.readouterr().err  # the command's: its option
    with h5py.File(path, "a") as f:  # silent in test too: a dead channel, fitted, no held-out numbers
        for key in f["test/response"]:
            f[f"test/response/{key}"][1] = 0.0
        f["test/repeats/cell02"][...] = 0.0
    checked_experiment(path)
    with h5py.File(path, "a") as f:
        for key in f["train/response"]:
            f[f"train/response/{key}"][...] = 0.0
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(tmp_path / "fit"), "--quiet"]) == 2
    assert "2 of 3 cells are 0 at every frame (cell01, cell03) but respond in test/" in capsys.readouterr().err
    assert not (tmp_path / "fit" / "summary.json").exists()


def test_a_recording_with_a_cell_silent_only_in_training_is_not_written(tmp_path):
    path, train, test, _ = _experiment(tmp_path)
    train["response"] = {key: np.where(np.arange(3)[:, None] == 0, 0, value) for key, value in train["response"].items()}
    with pytest.raises(DataError) as info:
        write_experiment(tmp_path / "again.h5", train, test)
    # the way out of a writer: the file written without the cell (no option of a command, nor a selection on reading)
    assert str(info.value) == (f"{tmp_path / 'again.h5'}: dataset train/response/binned: 1 of 3 cells is 0 at every "
                               "frame (cell01) but responds in test/: a model fitted to no spike would be scored held "
                               "out on the test split's; expected each cell to respond somewhere in train/ (write the "
                               "recording without it: its rows of the train and test responses and its repeats left "
                               "out)")
    assert not (tmp_path / "again.h5").exists()


def test_a_training_movie_with_nans_is_refused_without_a_warning_of_nan_statistics(tmp_path):
    """A NaN in the training movie was first warned of as a contrast "against nan" (the test movie compared with the
    training movie's NaN sd), then refused: the warning said nothing true."""
    import warnings

    path, train, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        f["train/stimulus"][3, 3, 3] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_split, _ = checked_experiment(path)
    with pytest.raises(DataError, match=r"dataset train/stimulus: contains 1 NaN/inf value, the first at index "
                                        r"\(3, 3, 3\)"):
        train_split.stimulus  # noqa: B018


def test_per_cell_repeats_of_a_cell_the_response_lacks_are_refused_naming_it(tmp_path):
    """test/repeats/cell04 beside a response of 3 cells (a cell dropped from the response only, or repeats of another
    recording) was passed over without a word: the held-out metrics paired the repeats with the response's rows by name
    as if they were the same cells."""
    path, _, test, _ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        f["test/repeats/cell04"] = test["repeats"]["cell01"]
    with pytest.raises(DataError, match=re.escape(
            f"{path}: dataset test/repeats/cell04: a cell test/response does not have (3 cells, cell01..cell03); "
            "expected repeats of the response's cells only, cellNN (n_repeats, 80) each (a cell dropped from the "
            "response alone, or repeats of another recording?)")):
        read_experiment(path, "test")


def test_a_stimulus_stored_frames_last_is_named_with_the_transpose(tmp_path):
    """A movie stored (50, 50, T) (a MATLAB v7.3 file of a (T, 50, 50) array, as h5py reads it: axes reversed) was
    refused naming only the shape expected; the response stored so is named with its transpose, and so is this."""
    path, *_ = _experiment(tmp_path)
    _corrupt(path, "train/stimulus", np.zeros((50, 50, 120), np.float32))
    with pytest.raises(DataError, match=re.escape(
            f"{path}: dataset train/stimulus: expected shape (T, 50, 50), got (50, 50, 120): frames on the last axis "
            "(as h5py reads a MATLAB v7.3 file's (T, 50, 50): its axes reversed); store it as (120, 50, 50), "
            "numpy.transpose(stimulus)")):
        read_experiment(path, "train")


@pytest.mark.parametrize("key, scale", [
    ("firing_rate_10ms", 0.01),  # rates stored as counts per frame: held-out FEVE's noise 10^4 times too small, no word
    ("binned", 100.0),  # counts stored as spikes/s: a spike-history model's history 100 times too large
    ("firing_rate_20ms", 5.0),
])
def test_firing_rates_and_counts_in_other_units_are_refused_naming_both(tmp_path, key, scale):
    """A split's firing rates (spikes/s) and binned counts (spikes per 10 ms frame) were read whatever their units:
    rates stored as counts per frame were fitted and scored (FEVE, noise_var) in those units, counts stored as rates
    fed a spike-history model 100 times the spikes, and neither was said."""
    path, train, *_ = _experiment(tmp_path)
    with h5py.File(path, "a") as f:
        f[f"train/response/{key}"][...] = train["response"][key] * scale
    rate_key = "firing_rate_5ms" if key == "binned" else key  # the first rate compared
    rate = float((train["response"][rate_key] * (scale if key != "binned" else 1)).astype(np.float32).mean())
    counts = float((train["response"]["binned"] * (scale if key == "binned" else 1)).mean())
    with pytest.raises(DataError, match=re.escape(
            f"{path}: dataset train/response/{rate_key}: mean {rate:.4g} spikes/s, but train/response/binned means "
            f"{counts:.4g} spikes per 10 ms frame, {counts / 0.01:.4g} spikes/s: the rates must be in spikes/s and "
            "binned the spike counts per frame, the one's mean that of the other within a factor of 2")) as info:
        read_experiment(path, "train")
    assert str(info.value).endswith(f"factor of 2 ({rate_key} stored as spike counts per frame, or binned as "
                                    f"spikes/s? store the counts as binned and firing_rates(binned)['{rate_key}'] as "
                                    f"{rate_key}, neurozoo.datasets.retina_h5)" if scale != 5.0 else "factor of 2")
    read_experiment(path, "test")  # the test split's, trial averages, agree
