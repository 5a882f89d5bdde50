"""Our file formats read and written by independent re-implementations of the original projects' code.

The readers here are written from the original sources, not from ours:
- deep-retina ``loadexpt`` + ``rolling_window`` (baccuslab/deep-retina deepretina/experiments.py; the same in
  baccuslab/torch-deep-retina torchdeepretina/datas.py ``loadexpt``): the response matrix is
  ``f[split]['response/firing_rate_10ms'][cells]`` (cells, T) transposed, the cells indexed by row; the stimulus
  is ``f[split]['stimulus']`` as float32, (T, 50, 50); ``rolling_window(stim, history)`` has ``T - history``
  windows, window ``i`` = frames ``i .. i+history-1`` oldest first, paired with ``resp[history:][i]`` = the
  response at frame ``i + history``; repeats are read as ``test/repeats/cell{c+1:02d}`` (datas.py's STA key
  pattern ``train/stas/cell{cells[0]+1:02d}``).
"""
import h5py
import numpy as np
import pytest
from scipy.stats import zscore

from neurozoo.datasets.retina_h5 import N_FRAMES, StimulusWindows, read_experiment, write_experiment
from neurozoo.datasets.synthetic_retina import generate_recording


# ---- deep-retina, re-implemented from experiments.py / datas.py -----------------------------------------
def _rolling_window(array, window):
    """experiments.py rolling_window(array, window, time_axis=0): as_strided over the transposed array."""
    array = array.T
    shape = array.shape[:-1] + (array.shape[-1] - window, window)
    strides = array.strides + (array.strides[-1],)
    arr = np.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)
    return np.rollaxis(arr.T, 1, 0)


def _deepretina_loadexpt(path, cells, train_or_test, history):
    """torchdeepretina/datas.py loadexpt with nskip=0 (one block) and no normalisation step (see the test)."""
    with h5py.File(path, mode="r") as f:
        expt_length = f[train_or_test]["time"].size
        valid_indices = np.arange(expt_length).reshape(1, -1)[:, 0:].ravel()
        stim = np.asarray(f[train_or_test]["stimulus"]).astype("float32")
        X = _rolling_window(stim[valid_indices], history)
        resp = np.array(f[train_or_test]["response/firing_rate_10ms"][cells]).T[valid_indices]
        y = resp[history:]
        binned = np.array(f[train_or_test]["response/binned"][cells]).T[valid_indices]
        spkhist = _rolling_window(binned, history)
    return X, y, spkhist


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return generate_recording(tmp_path_factory.mktemp("interop") / "wn.h5", n_train=160, n_test=90, n_repeats=3)


def test_deepretina_loadexpt_reads_our_file_with_target_lag_1_alignment(recording):
    ours = read_experiment(recording, "train")
    cells = [0, 2, 3]  # a subset by row index (h5py fancy indexing needs increasing order, as in CELLS)
    X, y, spkhist = _deepretina_loadexpt(recording, cells, "train", N_FRAMES)
    T = ours.n_frames
    assert X.shape == (T - N_FRAMES, N_FRAMES, 50, 50) and y.shape == (T - N_FRAMES, 3)
    rows = ours.response("firing_rate_10ms")[cells]
    windows = StimulusWindows(ours.stimulus, rows, target_lag=1, binned=ours.response("binned")[cells], history=N_FRAMES)
    assert len(windows) == len(X)  # targets 40 .. T-1, as resp[history:]
    batch = windows.batch(np.arange(len(windows)))
    np.testing.assert_array_equal(batch["stimulus"].numpy(), X)
    np.testing.assert_array_equal(batch["response"].numpy(), y)
    np.testing.assert_array_equal(batch["history"].numpy(), spkhist.transpose(0, 2, 1))  # ours (N, C, history)
    item = windows[7]
    np.testing.assert_array_equal(item["stimulus"].numpy(), X[7])
    np.testing.assert_array_equal(item["response"].numpy(), y[7])


def test_our_default_window_ends_at_the_target_one_frame_later_than_deepretina(recording):
    ours = read_experiment(recording, "train")
    X, y, _ = _deepretina_loadexpt(recording, [0, 1], "train", N_FRAMES)
    windows = StimulusWindows(ours.stimulus, ours.response("firing_rate_10ms")[[0, 1]])
    assert len(windows) == len(X) + 1  # our first target is frame 39, theirs frame 40
    batch = windows.batch(np.arange(1, len(windows)))  # our targets 40 .. T-1
    np.testing.assert_array_equal(batch["response"].numpy(), y)
    np.testing.assert_array_equal(batch["stimulus"].numpy()[:, :-1], X[:, 1:])  # shifted by one frame
    assert not np.array_equal(batch["stimulus"].numpy(), X)


def test_deepretina_reads_our_test_split_repeats_and_zscore_keeps_alignment(recording):
    ours = read_experiment(recording, "test")
    with h5py.File(recording, "r") as f:
        assert f["test/stimulus"].shape == (90, 50, 50) and f["test/time"].shape == (90,)
        assert f["test/response/firing_rate_10ms"].shape == (ours.repeats.shape[0], 90)
        for c in range(ours.repeats.shape[0]):
            trials = np.asarray(f[f"test/repeats/cell{c + 1:02d}"])
            np.testing.assert_array_equal(trials, ours.repeats[c])
            np.testing.assert_allclose(trials.mean(0), f["test/response/firing_rate_10ms"][c], rtol=1e-5, atol=1e-3)
    # deep-retina z-scores per pixel (experiments.py: zscore(stim)); the windows are the z-scored frames
    stim = ours.stimulus
    X = _rolling_window(zscore(stim.astype("float32")), N_FRAMES)
    windows = StimulusWindows(zscore(stim), ours.response(), target_lag=1)
    np.testing.assert_allclose(windows.batch(np.arange(len(windows)))["stimulus"].numpy(), X, rtol=1e-6, atol=1e-6)


def test_our_reader_reads_a_file_laid_out_as_deepretina_reads_it(tmp_path):
    """Written with h5py directly in the layout loadexpt reads (uint8 stimulus, cells as rows, cellNN repeats)."""
    rng = np.random.default_rng(3)
    T, Tt, C, R = 60, 50, 4, 5
    path = tmp_path / "naturalscene.h5"
    with h5py.File(path, "w") as f:
        for split, n in (("train", T), ("test", Tt)):
            f[f"{split}/stimulus"] = rng.integers(0, 256, (n, 50, 50), dtype=np.uint8)
            f[f"{split}/time"] = np.arange(n) * 0.01
            for key in ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms", "binned"):
                f[f"{split}/response/{key}"] = rng.gamma(2.0, 3.0, (C, n))
        for c in range(C):
            f[f"test/repeats/cell{c + 1:02d}"] = rng.gamma(2.0, 3.0, (R, Tt))
            f[f"spikes/cell{c + 1:02d}"] = np.sort(rng.uniform(0, 0.6, 9))
    train, test = read_experiment(path, "train"), read_experiment(path, "test")
    X, y, _ = _deepretina_loadexpt(path, list(range(C)), "train", N_FRAMES)
    w = StimulusWindows(train.stimulus, train.response(), target_lag=1)
    b = w.batch(np.arange(len(w)))
    np.testing.assert_array_equal(b["stimulus"].numpy(), X)
    np.testing.assert_allclose(b["response"].numpy(), y, rtol=1e-6)
    assert test.cells == [f"cell{c + 1:02d}" for c in range(C)] and test.repeats.shape == (C, R, Tt)
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(test.repeats[2], f["test/repeats/cell03"][()], rtol=1e-6)


def test_target_lag_refuses_negative_values():
    from neurozoo.datasets.errors import DataError
    with pytest.raises(DataError, match="target_lag"):
        StimulusWindows(np.zeros((50, 50, 50), np.float32), np.zeros((1, 50), np.float32), target_lag=-1)
