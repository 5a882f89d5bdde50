import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from neurozoo import retina
from neurozoo.datasets.errors import DataError
from neurozoo.datasets.retina_h5 import firing_rates, read_experiment, write_experiment
from neurozoo.datasets.synthetic_retina import generate_recording
from neurozoo.leaderboard.cli import main as zoo
from neurozoo.retina.fit import FIT_PROTOCOL, builtin_models, create_model, evaluate, fit, predict
from neurozoo.retina.metrics import summary


def _true_ln_filter():
    k = np.arange(40)[::-1]  # lag of each window frame (the last frame has lag 0)
    temporal = (k / 3.0) ** 2 * np.exp(-k / 3.0) - 0.5 * (k / 6.0) ** 2 * np.exp(-k / 6.0)
    yy, xx = np.mgrid[:50, :50]
    spatial = np.exp(-((yy - 22) ** 2 + (xx - 27) ** 2) / (2 * 3.0 ** 2))
    f = temporal[:, None, None] * spatial
    return (f / np.linalg.norm(f)).astype(np.float32)


@pytest.fixture(scope="module")
def ln_recording(tmp_path_factory):
    """A known LN cell: rate = 20 * softplus(3 <k, window> - 1) spikes/s, Poisson spikes, 6 test repeats."""
    rng = np.random.default_rng(0)
    k = torch.from_numpy(_true_ln_filter())

    def rates(stim):
        windows = torch.from_numpy(stim).unfold(0, 40, 1).permute(0, 3, 1, 2)
        drive = torch.cat([(w * k).sum((1, 2, 3)) for w in windows.split(1000)]).numpy()
        r = 20 * np.log1p(np.exp(3 * drive / 0.5 - 1))
        return np.concatenate([np.full(39, r.mean()), r])[None].astype(np.float32)

    def checkers(n):  # 5-pixel checkers: 100 independent squares per frame
        return np.repeat(np.repeat(rng.choice(np.array([-1, 1], np.float32), (n, 10, 10)), 5, 1), 5, 2)

    train_stim, test_stim = checkers(5000), checkers(600)
    train_counts = rng.poisson(rates(train_stim) / 100).astype(np.float32)
    test_rate = rates(test_stim)
    trials = rng.poisson(test_rate[None] / 100, (10,) + test_rate.shape).astype(np.float32)
    trial_rates = firing_rates(trials)
    path = write_experiment(
        tmp_path_factory.mktemp("ln") / "ln.h5",
        train={"stimulus": train_stim, "time": np.arange(5000) / 100,
               "response": {**firing_rates(train_counts), "binned": train_counts}},
        test={"stimulus": test_stim, "time": np.arange(600) / 100,
              "response": {k: v.mean(0) for k, v in trial_rates.items()} | {"true_rate": test_rate},
              "repeats": {"cell01": trial_rates["firing_rate_10ms"][:, 0]}})
    return path


@pytest.fixture(scope="module")
def scaled_bncnn_recording(tmp_path_factory):
    """A recording made by a known BN-CNN (2 channels per layer) whose output BatchNorm has spikes/s gains and offsets
    (20 and 12, 16 and 10, as calibration finds on the embedded retina): Poisson spikes, 10 test repeats."""
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    truth = create_model("bncnn", n_cells=2, channels=(2, 2))
    with torch.no_grad():  # temporal filters smooth over ~8 frames, as a retina's: rates the 10 ms smoothing keeps
        from scipy.ndimage import gaussian_filter1d

        truth.conv1.weight.copy_(torch.from_numpy(gaussian_filter1d(truth.conv1.weight.numpy(), 8.0, axis=1)))

    def checkers(n):  # 5-pixel checkers, each held for 4 frames (rates slower than the 10 ms smoothing of the data)
        frames = rng.choice(np.array([-1, 1], np.float32), (n // 4, 10, 10))
        return np.repeat(np.repeat(np.repeat(frames, 4, 0), 5, 1), 5, 2)

    train_stim, test_stim = checkers(1200), checkers(800)
    with torch.no_grad():  # BatchNorm statistics of this stimulus (cumulative averages), then the known scale
        for norm in (truth.bn1, truth.bn2, truth.bn3):
            norm.momentum = None
        truth.train()
        truth.forward_movie(torch.from_numpy(train_stim[:600]))
        for norm in (truth.bn1, truth.bn2, truth.bn3):
            norm.momentum = 0.01
        truth.bn3.weight.copy_(torch.tensor([20.0, 16.0]))
        truth.bn3.bias.copy_(torch.tensor([12.0, 10.0]))
    truth.eval()

    def rates(stim):
        r = predict(truth, stim)
        return np.concatenate([np.repeat(r[:, :1], 39, 1), r], 1).astype(np.float32)

    train_counts = rng.poisson(rates(train_stim) / 100).astype(np.float32)
    test_rate = rates(test_stim)
    trials = firing_rates(rng.poisson(test_rate[None] / 100, (10,) + test_rate.shape).astype(np.float32))
    path = write_experiment(
        tmp_path_factory.mktemp("scaled") / "scaled.h5",
        train={"stimulus": train_stim, "time": np.arange(1200) / 100,
               "response": {**firing_rates(train_counts), "binned": train_counts}},
        test={"stimulus": test_stim, "time": np.arange(800) / 100,
              "response": {k: v.mean(0) for k, v in trials.items()},
              "repeats": {f"cell0{i + 1}": trials["firing_rate_10ms"][:, i] for i in range(2)}})
    return path, truth


def test_output_calibration_recovers_a_known_output_scale_that_early_stopping_on_correlation_misses(
        scaled_bncnn_recording, tmp_path, monkeypatch):
    """Fitting protocol 9. A BN-CNN with the right features but the output gain and offset at their initial 1 and
    0 (near where a fit early-stopped on the scale-free validation correlation leaves them: protocol 8's embedded
    white-noise fit stopped at gains 3.2-4.1, where calibration finds 11-27; docs/retina.md) predicts the right
    shape at the wrong scale: held-out r near the true model's, FEVE below zero. Calibrating the output
    BatchNorm's gain and offset on the training data (the BN-CNN's default) recovers the scale: FEVE and r as the
    true model's, the gains near the true 20 and 16."""
    import copy

    path, truth = scaled_bncnn_recording
    true_frame = evaluate(truth, path)
    assert (true_frame["feve"] > 0.7).all()
    student = copy.deepcopy(truth)
    with torch.no_grad():
        student.bn3.weight.fill_(1.0)
        student.bn3.bias.zero_()
    frames, infos = {}, {}
    for protocol, settings in (("old", {"output_calibration": False}), ("new", {})):  # new: the BN-CNN's default
        # lr 1e-6: the features stay the true ones, as if learned; the output scale stays where the stop left it
        result = fit(copy.deepcopy(student), path, out=tmp_path / protocol, epochs=1, max_steps_per_epoch=2, lr=1e-6,
                     n_blocks=2, progress=False, **settings)
        frames[protocol], infos[protocol] = evaluate(result.model, path), result.extra.get("output_calibration")
    old, new = frames["old"], frames["new"]
    np.testing.assert_allclose(old["correlation"], true_frame["correlation"], atol=0.06)  # the shape is right ...
    assert (old["feve"] < 0).all() and infos["old"] is None  # ... and the scale wrong: FEVE below zero
    np.testing.assert_allclose(new["feve"], true_frame["feve"], atol=0.03)
    np.testing.assert_allclose(new["correlation"], true_frame["correlation"], atol=0.01)
    np.testing.assert_allclose(infos["new"]["gain"], [20.0, 16.0], rtol=0.2)
    # a finished fit read again (a cached benchmark fit) takes its calibration from the checkpoint, not anew
    import neurozoo.retina.fit as fit_module

    monkeypatch.setattr(fit_module, "calibrate_output", lambda *args, **kwargs: pytest.fail("calibrated again"))
    again = fit(copy.deepcopy(student), path, out=tmp_path / "new", epochs=1, max_steps_per_epoch=2, lr=1e-6,
                n_blocks=2, progress=False)
    from pandas.testing import assert_frame_equal

    assert_frame_equal(evaluate(again.model, path), new)
    assert again.extra["output_calibration"] == infos["new"]


def test_ln_recovers_a_known_ln_cell(ln_recording):
    model = create_model("ln", n_cells=1, rank=1)
    result = fit(model, ln_recording, epochs=6, batch_size=500, lr=2e-2, progress=False, seed=0)
    def checker_sums(f):  # what 5-pixel checkers can identify
        return f.reshape(40, 10, 5, 10, 5).sum((2, 4)).ravel()

    filt = checker_sums(model.filter.filters()[0].detach().numpy())
    similarity = abs(np.corrcoef(filt, checker_sums(_true_ln_filter()))[0, 1])
    assert similarity > 0.8
    frame = evaluate(model, ln_recording)
    truth = read_experiment(ln_recording, "test").response("true_rate")[:, 39:]
    # as good as the true rate itself, up to a little
    assert frame["correlation"].iloc[0] > 0.9 * np.corrcoef(truth[0], read_experiment(
        ln_recording, "test").repeats[0, :, 39:].mean(0))[0, 1]
    assert result.best_val_correlation > 0.3 and result.history[-1]["epoch"] == len(result.history) - 1


def test_an_embedded_fit_stopped_in_zoo_probe_says_what_was_kept_and_that_the_command_resumes_it(
        ln_recording, monkeypatch, capsys):
    """``zoo score``, ``zoo probe --fit-embedded`` and ``zoo reproduce`` fit through the fit cache; a fit stopped there
    reached zoo's generic Ctrl-C handler, which printed only "interrupted"."""
    import neurozoo.datasets.synthetic_retina as synthetic
    import neurozoo.retina.fit as fitting

    folders = []

    def stopped(model, path, out=None, **settings):
        folders.append(out)
        raise fitting.FitInterrupted(2, out / "checkpoint.pt", 1, 3)

    monkeypatch.setattr(synthetic, "load_embedded_retina", lambda kind, **sizes: ln_recording)
    monkeypatch.setattr(fitting, "fit", stopped)
    assert zoo(["probe", "osr", "ln", "--fit-embedded", "--quiet"]) == 130
    [checkpoint] = folders
    assert checkpoint.parent == ln_recording.parent / "fits" and checkpoint.name.startswith("ln-whitenoise-")
    assert capsys.readouterr().err.splitlines()[-1] == (
        "zoo probe: interrupted; fit stopped (signal 2) before its final weights: 1 of at most 3 epochs fitted, kept in "
        f"{checkpoint / 'checkpoint.pt'}; rerunning the same command resumes the fit from there")


def test_a_second_ctrl_c_in_a_fit_says_the_epoch_under_way_was_lost_and_the_checkpoint_kept(ln_recording, tmp_path,
                                                                                            monkeypatch, capsys):
    """It printed only "interrupted"."""
    import signal

    from neurozoo.retina import fit as fitting

    def twice(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(fitting, "_train_steps", twice)
    with pytest.raises(KeyboardInterrupt) as stopped:
        fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=tmp_path / "b", epochs=2, progress=False)
    assert str(stopped.value) == ("fit stopped at once by a second Ctrl-C: the epoch under way was lost; the last "
                                  f"checkpoint written, if any, is kept in {tmp_path / 'b' / 'checkpoint.pt'}")
    assert type(stopped.value) is KeyboardInterrupt  # not a FitInterrupted: no safe point was reached


def test_checkpoint_resume_reproduces_an_uninterrupted_run(ln_recording, tmp_path, monkeypatch, capfd,
                                                            signal_in_epoch, python_ctrl_c):
    """SIGTERM in the first epoch, then Ctrl-C in the last: each lets its epoch finish and write its checkpoint, stops
    with FitInterrupted and writes no final weights; the second resume gives the uninterrupted fit, bit for bit."""
    import signal

    from neurozoo.retina.fit import FitInterrupted

    def run(out, epochs, resume=True):
        torch.manual_seed(0)
        model = create_model("ln", n_cells=1, rank=1)
        return fit(model, ln_recording, out=out, resume=resume, epochs=epochs, patience=99, progress=False,
                   max_steps_per_epoch=3, batch_size=300)

    straight = run(tmp_path / "a", 3)
    checkpoint = tmp_path / "b" / "checkpoint.pt"
    for signum, epoch, done in ((signal.SIGTERM, 1, 1), (signal.SIGINT, 2, 3)):
        signal_in_epoch(epoch, signum)
        with pytest.raises(FitInterrupted) as stopped:
            run(tmp_path / "b", 3)
        assert (stopped.value.signum, stopped.value.epochs_done, stopped.value.checkpoint) == (signum, done, checkpoint)
        assert str(stopped.value) == (f"fit stopped (signal {int(signum)}) before its final weights: {done} of at most "
                                      f"3 epochs fitted, kept in {checkpoint}")
        assert torch.load(checkpoint, weights_only=True)["epoch"] == done
        # no model.pt, history.json; the fit's time so far beside its checkpoint (retina.fit_time)
        assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["checkpoint.pt", "fit_time.json"]
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's Ctrl-C again after the fit
    note = "\nCtrl-C: stopping after this epoch and its checkpoint (Ctrl-C again stops at once)\n"
    assert capfd.readouterr().err.count(note) == 1
    import subprocess
    import sys

    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    from neurozoo.datasets.cache import temporary_suffix

    (tmp_path / "b" / ("checkpoint.pt" + temporary_suffix(pid=killed.pid))).write_bytes(b"half")  # killed mid-write
    resumed = run(tmp_path / "b", 3)
    assert [h["val_correlation"] for h in resumed.history] == [h["val_correlation"] for h in straight.history]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not list((tmp_path / "b").glob("*.tmp*"))  # atomic writes leave no partial files, and a dead writer's is removed
    saved = json.loads((tmp_path / "b" / "history.json").read_text())
    assert len(saved["history"]) == 3


def test_two_fits_with_one_seed_write_byte_identical_weights_whatever_process_writes_them(ln_recording, tmp_path,
                                                                                            monkeypatch):
    """torch.save to a path names the archive inside after the file, and the temporary's name holds the writer's host
    and pid: two `zoo fit` runs with one seed in two processes wrote weights with different sha256."""
    import hashlib

    import neurozoo.datasets.cache as cache

    def run(out, pid):
        monkeypatch.setattr(cache, "temporary_suffix", lambda pid_=None, host=None: f".tmp-host{pid}-{pid}")
        torch.manual_seed(0)
        fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=out, epochs=1, progress=False,
            max_steps_per_epoch=1, batch_size=300)
        return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in ("model.pt", "checkpoint.pt")}

    assert run(tmp_path / "a", 101) == run(tmp_path / "b", 202)


def _fake_clock(monkeypatch, step: float = 1.5):
    """The fit's clock (retina.fit._clock) made one that moves ``step`` seconds each time it is read: the times a fit
    reports are then the same on every machine."""
    import itertools

    import neurozoo.retina.fit as fitting

    ticks = itertools.count()
    monkeypatch.setattr(fitting, "_clock", lambda: step * next(ticks))


def test_a_resumed_fits_time_is_every_runs_counted_once_and_a_read_keeps_it(ln_recording, tmp_path, monkeypatch,
                                                                             signal_in_epoch):
    """A fit stopped after 2 epochs and resumed reported only its last run's seconds, and a finished fit read again
    its reading's. Its time in all (fit_duration_s) is now the runs' own times summed (fit_stretches), each once; a
    read adds nothing and leaves fit_time.json as it was; the checkpoint's bytes hold no time."""
    import signal

    from neurozoo.retina.fit import FitInterrupted

    _fake_clock(monkeypatch)

    def run(out):
        torch.manual_seed(0)
        return fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=out, epochs=3, patience=99,
                   progress=False, max_steps_per_epoch=2, batch_size=300)

    out = tmp_path / "b"
    signal_in_epoch(2, signal.SIGTERM)
    with pytest.raises(FitInterrupted) as stopped:
        run(out)
    first = stopped.value.seconds
    assert stopped.value.epochs_done == 2 and first > 0
    resumed = run(out)
    assert resumed.epochs_fitted == 1 and resumed.duration_s > 0
    # the two runs' own reported times, summed: the total, to the rounding (none here: the clock's steps are exact)
    assert resumed.fit_stretches == [{"epochs": [0, 2], "seconds": first},
                                     {"epochs": [2, 3], "seconds": resumed.duration_s}]
    assert resumed.fit_duration_s == pytest.approx(first + resumed.duration_s, abs=0.01)
    assert resumed.fit_duration_s >= first + resumed.duration_s - 0.01
    timing = (out / "fit_time.json").read_bytes()
    read = run(out)  # finished: read from the checkpoint, nothing fitted
    assert read.epochs_fitted == 0 and read.duration_s > 0
    assert (read.fit_duration_s, read.fit_stretches) == (resumed.fit_duration_s, resumed.fit_stretches)
    assert (out / "fit_time.json").read_bytes() == timing
    from neurozoo.retina.fit import provenance

    p = provenance(ln_recording, read)
    assert p["fit_duration_s"] == round(resumed.fit_duration_s, 2) and p["fit_stretches"] == resumed.fit_stretches
    assert p["duration_s"] == round(read.duration_s, 2)  # this call's, the reading's
    # the same fit in one run, twice, its times others (the real clock, a clock twice as fast): the same checkpoint
    # and weights, byte for byte, as the resumed fit's weights; only fit_time.json differs
    monkeypatch.undo()
    run(tmp_path / "straight")
    _fake_clock(monkeypatch, step=3.0)
    run(tmp_path / "again")
    for name in ("checkpoint.pt", "model.pt"):
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert (tmp_path / "straight" / "model.pt").read_bytes() == (out / "model.pt").read_bytes()
    times = [json.loads((tmp_path / run / "fit_time.json").read_text())["current"][-1]["seconds"]
             for run in ("straight", "again")]
    assert times[0] != times[1] and times[1] == 4 * 3.0  # read at the start, each epoch's end, the fit's end


class _Killed(BaseException):
    """A SIGKILL at a given write of a fit, stood in for: nothing after it runs."""


def test_a_fit_killed_between_its_time_and_its_checkpoint_counts_no_run_twice_nor_anothers(ln_recording, tmp_path,
                                                                                            monkeypatch):
    """The fit's time (fit_time.json) is written before each checkpoint, naming that checkpoint's sha256; a kill
    between the two leaves a time for a checkpoint that is not there, which the resume leaves out (the epoch it
    counted is fitted, and counted, again). A time beside another fit's checkpoint names none there: the earlier
    runs' time is unknown (None), never a total that leaves them out; a kill after the last time written and before
    history.json leaves the fit's time whole for the read that follows."""
    from pathlib import Path

    import neurozoo.retina.fit as fitting

    def run(out, epochs=3):
        torch.manual_seed(0)
        return fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=out, epochs=epochs, patience=99,
                   progress=False, max_steps_per_epoch=2, batch_size=300)

    _fake_clock(monkeypatch)
    write, writes = fitting._atomic_write, []

    def killed_at_second_checkpoint(data, path):
        writes.append(path.name)
        if writes.count("checkpoint.pt") == 2:
            raise _Killed()
        write(data, path)

    out = tmp_path / "a"
    with monkeypatch.context() as patched:
        patched.setattr(fitting, "_atomic_write", killed_at_second_checkpoint)
        with pytest.raises(_Killed):
            run(out)
    saved = json.loads((out / "fit_time.json").read_text())
    assert [mark["epochs"] for mark in saved["current"]] == [[0, 1], [0, 2]]  # epoch 2's time, its checkpoint lost
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed = run(out)
    first = saved["current"][0]["seconds"]
    assert resumed.fit_stretches == [{"epochs": [0, 1], "seconds": first},
                                     {"epochs": [1, 3], "seconds": resumed.duration_s}]
    assert resumed.fit_duration_s == pytest.approx(first + resumed.duration_s)

    # another fit's time beside this checkpoint: no stretch of it matches, so the earlier time is unknown
    other = tmp_path / "other"
    run(other, epochs=1)
    with monkeypatch.context() as patched:
        patched.setattr(fitting, "_atomic_write", killed_at_second_checkpoint)
        writes.clear()
        with pytest.raises(_Killed):
            run(tmp_path / "c")
    (tmp_path / "c" / "fit_time.json").write_bytes((other / "fit_time.json").read_bytes())
    unknown = run(tmp_path / "c")
    assert unknown.fit_duration_s is None
    assert unknown.fit_stretches == [{"epochs": [0, 1], "seconds": None},
                                     {"epochs": [1, 3], "seconds": unknown.duration_s}]

    # killed after the last time was written, before history.json said the fit finished: the read keeps it whole
    real_write_json = fitting.write_json

    def killed_at_history(path, obj, **kwargs):
        if Path(path).name == "history.json":
            raise _Killed()
        return real_write_json(path, obj, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(fitting, "write_json", killed_at_history)
        with pytest.raises(_Killed):
            run(tmp_path / "d")
    whole = json.loads((tmp_path / "d" / "fit_time.json").read_text())["current"][-1]["seconds"]
    read = run(tmp_path / "d")
    assert read.epochs_fitted == 0 and read.fit_stretches == [{"epochs": [0, 3], "seconds": whole}]


def test_a_fit_flushes_its_checkpoint_and_weights_to_disk_before_and_after_renaming_them(ln_recording, tmp_path,
                                                                                         monkeypatch):
    """A hard stop (power cut) right after an epoch's rename must leave the checkpoint of before or the new one, as
    zoo train's do: the fit's checkpoint.pt and model.pt were renamed into place unflushed, which a power cut could
    leave as an empty file under the new name (the fit's epochs lost). Each is now flushed, renamed, then its folder
    flushed."""
    import os

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_ino)) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", os.stat(a).st_ino, os.path.basename(b)))
                        or real_replace(a, b))
    out = tmp_path / "fit"
    torch.manual_seed(0)
    fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=out, epochs=2, patience=99, progress=False,
        max_steps_per_epoch=1, batch_size=300)
    folder = ("fsync", out.stat().st_ino)
    renames = [k for k, event in enumerate(events) if event[0] == "replace" and event[2].endswith(".pt")]
    assert [events[k][2] for k in renames] == ["checkpoint.pt", "checkpoint.pt", "model.pt"]  # two epochs, then weights
    for k in renames:
        assert events[k - 1] == ("fsync", events[k][1]) and events[k + 1] == folder, events[k - 1:k + 2]


def test_a_fit_warns_when_early_stopping_watches_too_few_validation_frames(ln_recording, recwarn):
    """A 2000-frame recording passed the split with 5 validation frames, and the kept epoch was chosen on them
    without a word. ln_recording (5000 frames): 5 blocks of 1000, the last 10% of each less a 40-frame window."""
    from neurozoo.retina.fit import MIN_VALIDATION_TARGETS, FitConfig, warn_of_few_validation_targets

    run = dict(epochs=1, max_steps_per_epoch=1, batch_size=300, progress=False)
    with pytest.warns(UserWarning, match=rf"ln\.h5: early stopping and the kept epoch watch the correlation over 305 "
                                         rf"validation frames \(the last 0\.1 of each of 5 blocks of 5000 frames, less a "
                                         rf"40-frame window each\), fewer than {MIN_VALIDATION_TARGETS}: the validation r is "
                                         rf"noise at this size; .* \(zoo fit --val-fraction\)"):
        fit(create_model("ln", n_cells=1, rank=1), ln_recording, **run)
    recwarn.clear()
    recording = read_experiment(ln_recording, "train")
    warn_of_few_validation_targets(recording, MIN_VALIDATION_TARGETS, FitConfig(), 40)
    assert not recwarn.list


def test_a_finished_fit_read_again_makes_no_optimizer(ln_recording, tmp_path, monkeypatch):
    """Every cached score and `zoo fit`'s second run read a finished fit: it made an Adam optimizer and loaded its
    state, and torch's optimizers import torch._dynamo on first use (1-5 s, most of a cached `zoo fit`'s time)."""
    def run():
        torch.manual_seed(0)
        return fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=tmp_path, epochs=2, patience=99,
                   progress=False, max_steps_per_epoch=3, batch_size=300)

    first = run()

    def no_optimizer(*args, **kwargs):
        raise AssertionError("an optimizer for a finished fit")

    monkeypatch.setattr(torch.optim, "Adam", no_optimizer)
    again = run()
    assert again.best_epoch == first.best_epoch and len(again.history) == 2
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_a_fit_hashes_its_recording_once_and_its_provenance_reuses_that_hash(ln_recording, tmp_path, monkeypatch):
    import hashlib

    import neurozoo.datasets.provenance as provenance_module
    from neurozoo.retina.fit import provenance

    hashed = []
    monkeypatch.setattr(provenance_module, "sha256_file", lambda path: hashed.append(path) or "f" * 64)
    result = fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=tmp_path, epochs=1, progress=False,
                 max_steps_per_epoch=1, batch_size=300)
    info = provenance(ln_recording, result)
    assert len(hashed) == 1 and info["data_sha256"] == result.data_sha256 == "f" * 64
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["data_sha256"] == "f" * 64
    monkeypatch.undo()
    assert provenance(ln_recording)["data_sha256"] == hashlib.sha256(ln_recording.read_bytes()).hexdigest()


def test_a_fits_checkpoint_pt_loads_as_its_model_pt_the_best_epoch_calibrated(scaled_bncnn_recording, tmp_path,
                                                                                monkeypatch):
    """The probes and zoo score take --checkpoint model.pt or checkpoint.pt. checkpoint.pt's "model" is the last
    epoch's weights before the output calibration: read as the fit, it was another model (on an embedded BN-CNN fit
    its output gains differed by 19.6 and the reduction ranked the units in another order)."""
    import neurozoo.retina.fit as fit_module
    from neurozoo.retina.embedded_fit import load_checkpoint

    path, _ = scaled_bncnn_recording
    scores = iter([0.6, 0.5, 0.4])  # the first epoch is the best; the patience ends the fit two epochs later
    monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(scores))
    result = fit(create_model("bncnn", n_cells=2, channels=(2, 2)), path, out=tmp_path, epochs=5, patience=2,
                 max_steps_per_epoch=1, n_blocks=2, progress=False)
    assert result.best_epoch == 0 and len(result.history) == 3
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    model_pt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert not torch.equal(saved["model"]["conv1.weight"], model_pt["conv1.weight"])  # the last epoch is not the fit
    assert not torch.equal(saved["model"]["bn3.weight"], model_pt["bn3.weight"])
    loaded = load_checkpoint(create_model("bncnn", n_cells=2, channels=(2, 2)), tmp_path / "checkpoint.pt")
    for key, value in model_pt.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # a fit stopped after its first epoch, before the calibration: its best epoch so far, said
    saved.update(epoch=1, bad_epochs=0, calibration=None)
    torch.save(saved, tmp_path / "stopped.pt")
    with pytest.warns(UserWarning) as caught:
        stopped = load_checkpoint(create_model("bncnn", n_cells=2, channels=(2, 2)), tmp_path / "stopped.pt")
    assert str(caught[0].message) == (
        f"{tmp_path / 'stopped.pt'}: an unfinished fit (1 of at most 5 epochs): its best epoch so far (1); without the "
        "output calibration zoo fit makes after its last epoch: not the model a finished zoo fit saves as model.pt; "
        "rerunning the zoo fit command finishes it")
    assert torch.equal(stopped.conv1.weight, model_pt["conv1.weight"])
    assert torch.equal(stopped.bn3.weight, saved["best_state"]["bn3.weight"])


def test_early_stopping_needs_a_gain_of_min_delta_but_keeps_the_best_epoch(ln_recording, monkeypatch):
    import neurozoo.retina.fit as fit_module

    scores = iter([0.50, 0.60, 0.605, 0.608, 0.90])  # creeping gains after epoch 1: not progress at min_delta 0.01
    monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(scores))
    result = fit(create_model("ln", n_cells=1, rank=1), ln_recording, epochs=10, patience=2, min_delta=0.01,
                 progress=False, max_steps_per_epoch=1)
    assert [round(h["val_correlation"], 3) for h in result.history] == [0.5, 0.6, 0.605, 0.608]
    assert result.best_epoch == 3 and result.best_val_correlation == 0.608


def test_early_stopping_on_the_validation_poisson_loss_ignores_the_correlation(ln_recording, monkeypatch):
    """``monitor="poisson"`` (deep-retina's Keras ``EarlyStopping(monitor='val_loss', patience=20)``, deepretina/core.py
    at 0125baa line 47, the model compiled with ``loss='poisson'``, line 35): the stop and the kept
    epoch follow the validation loss, the same min_delta counting as progress, while the correlation keeps rising."""
    import neurozoo.retina.fit as fit_module

    losses = iter([-1.0, -2.0, -2.005, -2.008, -3.0])  # creeping after epoch 1
    correlations = iter([0.1, 0.2, 0.3, 0.4, 0.5])
    poisson_loss = fit_module.poisson_loss
    monkeypatch.setattr(fit_module, "poisson_loss", lambda rates, target: poisson_loss(rates, target)  # training
                        if rates.requires_grad else torch.tensor(next(losses), dtype=torch.float64))  # validation
    monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(correlations))
    result = fit(create_model("ln", n_cells=1, rank=1), ln_recording, epochs=10, patience=2, min_delta=0.01,
                 monitor="poisson", progress=False, max_steps_per_epoch=1)
    assert [h["val_poisson"] for h in result.history] == pytest.approx([-1.0, -2.0, -2.005, -2.008])
    assert result.best_epoch == 3 and result.best_val_correlation == 0.4


@pytest.mark.parametrize("epochs, early", [(4, True), (3, False)])
def test_the_fit_curve_says_early_stop_when_the_patience_ran_out_on_the_last_allowed_epoch(ln_recording, monkeypatch,
                                                                                           epochs, early):
    """Epochs 3 and 4 gain less than min_delta: with 4 epochs allowed the patience (2) runs out on the last one, which
    the figure had called the epoch limit ("may not have converged")."""
    import neurozoo.retina.fit as fit_module
    from neurozoo.retina.fit_figure import fit_curve_figure

    scores = iter([0.50, 0.60, 0.605, 0.608])
    monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(scores))
    result = fit(create_model("ln", n_cells=1, rank=1), ln_recording, epochs=epochs, patience=2, min_delta=0.01,
                 progress=False, max_steps_per_epoch=1)
    assert len(result.history) == epochs and result.early_stopped is early
    title = fit_curve_figure(result.history, result.best_epoch, epochs, 2,
                             early_stopped=result.early_stopped).get_suptitle()
    assert title == ("early-stopped: 2 epochs without a gain in validation r" if early else
                     f"stopped at the epoch limit ({epochs}); may not have converged")


@pytest.mark.parametrize("epochs, stopped_after", [(10, 3), (3, None)])
def test_history_json_says_whether_the_patience_stopped_the_fit_and_after_which_epoch(ln_recording, monkeypatch,
                                                                                     tmp_path, epochs, stopped_after):
    """history.json said neither (a reader had to redo the patience arithmetic from the scores)."""
    import neurozoo.retina.fit as fit_module

    scores = iter([0.50, 0.60, 0.605, 0.608, 0.90])  # no gain of min_delta after epoch 1: the patience (2) ends epoch 3
    monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(scores))
    result = fit(create_model("ln", n_cells=1, rank=1), ln_recording, epochs=epochs, patience=2, min_delta=0.01,
                 progress=False, max_steps_per_epoch=1, out=tmp_path)
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["early_stopped"] is result.early_stopped is (stopped_after is not None)
    assert saved["stopped_after_epoch"] == stopped_after and len(saved["history"]) == min(epochs, 4)


def test_default_patience_is_two_epochs_for_every_builtin_model(ln_recording, monkeypatch):
    """Fitting protocol 6 (and 7): every built-in model but the GLM (patience 3 and min_delta 0.001 since protocol 10)
    stops after 2 epochs without a gain of min_delta (protocol 5's patience 1 for the BN-CNN cut its natural-scene fit
    short)."""
    import neurozoo.retina.fit as fit_module

    for name, kwargs, expected_epochs in (("bncnn", {}, 4), ("ln", {"rank": 1}, 4)):
        scores = iter([0.50, 0.60, 0.605, 0.608, 0.90])
        monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(scores))
        torch.manual_seed(0)
        # no output calibration after the stop (the BN-CNN's default): it predicts 4000 training targets and
        # changes neither the patience nor the epochs it stopped after
        result = fit(create_model(name, n_cells=1, **kwargs), ln_recording, epochs=10, progress=False,
                     max_steps_per_epoch=1, output_calibration=False)
        assert result.config.patience == 2
        assert len(result.history) == expected_epochs and result.best_epoch == expected_epochs - 1, name


def test_early_stopping_and_windows_batching(ln_recording):
    model = create_model("ln", n_cells=1, rank=1)
    result = fit(model, ln_recording, epochs=20, lr=1e-12, l1=0, l2=0, patience=2, progress=False,
                 max_steps_per_epoch=1)
    assert len(result.history) == 3 and result.best_epoch == 0  # no improvement after the first epoch
    # the plain-window path (for models without forward_movie) agrees with the movie path
    stim = read_experiment(ln_recording, "test").stimulus[:200]
    windows = torch.from_numpy(stim).unfold(0, 40, 1).permute(0, 3, 1, 2)
    np.testing.assert_allclose(predict(model, stim), model(windows).detach().numpy().T, rtol=1e-4, atol=1e-3)
    result = fit(model, ln_recording, epochs=1, batching="windows", batch_size=256, max_steps_per_epoch=2, progress=False)
    assert np.isfinite(result.history[0]["train_loss"])


def test_a_model_of_ones_own_with_the_wrong_number_of_outputs_is_one_error_naming_the_shapes(ln_recording):
    """A retina model returning 3 rates for a 1-cell recording was fitted, the loss broadcasting the cell over the
    3 outputs (for 12 cells: a RuntimeError from the loss); a plugin's author is now told the shape expected."""
    from neurozoo.datasets.errors import SpecError

    class ThreeRates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = torch.nn.Linear(40 * 50 * 50, 3)

        def forward(self, x):
            return torch.nn.functional.softplus(self.dense(x.flatten(1)))

    with pytest.raises(SpecError, match=r"^retina model ThreeRates: returned rates of shape \(64, 3\) for 64 stimulus "
                                        r"windows; expected \(windows, n_cells\) = \(64, 1\), one rate per cell"):
        fit(ThreeRates(), ln_recording, epochs=1, batching="windows", batch_size=64, max_steps_per_epoch=1,
            progress=False)


def test_a_model_of_ones_own_returning_negative_rates_is_refused_before_the_poisson_loss(ln_recording):
    """A model without a rectifying output was fitted on a NaN Poisson loss (the log of a negative rate) to the end,
    its history all NaN losses and a best epoch picked from them."""
    from neurozoo.datasets.errors import SpecError

    class LinearRates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = torch.nn.Linear(40 * 50 * 50, 1)
            torch.nn.init.constant_(self.dense.bias, -1.0)  # every rate negative at the start

        def forward(self, x):
            return self.dense(x.flatten(1))

    with pytest.raises(SpecError, match=r"^retina model LinearRates: returned negative rates \(the lowest -[\d.]+\); the "
                                        r"Poisson loss needs rates >= 0"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(LinearRates(), ln_recording, epochs=1, batching="windows", batch_size=64, max_steps_per_epoch=1,
            progress=False)
    assert not [w for w in caught if "requires_grad" in str(w.message)]  # torch's warning on reading the lowest rate


def test_the_few_validation_frames_warning_names_a_recording_held_in_memory_as_such():
    """A Recording built in memory has no path, and the warning began "None: early stopping ..."."""
    from neurozoo.datasets.retina_h5 import Recording
    from neurozoo.retina.fit import FitConfig, warn_of_few_validation_targets

    recording = Recording(path=None, split="train", cells=[0], time=np.arange(500) / 100.0,
                          responses={"binned": np.zeros((1, 500), np.float32)}, _stimulus=np.zeros((500, 4, 4)))
    with pytest.warns(UserWarning, match=r"^a recording held in memory: early stopping and the kept epoch watch the "
                                         r"correlation over 12 validation frames"):
        warn_of_few_validation_targets(recording, 12, FitConfig(), 40)


@pytest.fixture(scope="module")
def recording_with_a_silent_cell(tmp_path_factory):
    """The embedded circuit's recording (small) with cell03 silent throughout: no spike in training or in any test
    trial, as a dead channel or a cell lost early in a real recording."""
    import h5py

    path = generate_recording(tmp_path_factory.mktemp("silent") / "whitenoise.h5", "whitenoise", n_train=2000,
                              n_test=200, n_repeats=3)
    with h5py.File(path, "r+") as f:
        for split in ("train", "test"):
            for key in ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms", "binned"):
                f[f"{split}/response/{key}"][2] = 0
        f["test/repeats/cell03"][...] = 0
    return path


@pytest.mark.parametrize("name", ["ln", "twosubunit"])
def test_a_cell_without_spikes_is_fitted_to_a_rate_near_zero_not_refused_as_negative_rates(
        recording_with_a_silent_cell, name):
    """The LN and two-subunit models start their output gain at the cell's mean rate (about 1e-3 for a silent cell),
    which Adam's first step carried below 0: 'retina model LN: returned negative rates ... end the model with a
    softplus, ReLU or exp', blaming a built-in model for the data. The gain is |alpha|; the GLM and the BN-CNN fitted
    such a cell already (its held-out numbers NaN, the cell left out of the median)."""
    from neurozoo.datasets.retina_h5 import read_experiment

    train = read_experiment(recording_with_a_silent_cell, "train")
    model = create_model(name, n_cells=len(train.cells))
    result = fit(model, recording_with_a_silent_cell, epochs=1, batching="windows", batch_size=64,
                 max_steps_per_epoch=6, progress=False)
    rates = predict(result.model, read_experiment(recording_with_a_silent_cell, "test").stimulus)
    assert rates.shape == (len(train.cells), 200 - 39) and (rates >= 0).all()
    assert rates[2].max() < 0.1 < rates[np.arange(len(train.cells)) != 2].mean(1).min()  # silent: ~0 spikes/s


@pytest.mark.parametrize("stimulus, message", [
    # failed inside the LN model: "mat1 and mat2 shapes cannot be multiplied (60x1600 and 2500x4)"
    (np.zeros((60, 40, 40), np.float32), r"^stimulus: expected shape \(T >= 40, 50, 50\), one 40-frame window or more "
                                         r"of the model's 50x50 frames, got \(60, 40, 40\)$"),
    # predicted NaN rates without a word
    (np.where(np.arange(60)[:, None, None] == 45, np.nan, np.zeros((60, 50, 50), np.float32)),
     r"^stimulus: 2500 NaN/inf values, the first at frame 45, pixel \(0, 0\); expected finite intensities$"),
])
def test_predict_refuses_a_stimulus_the_model_cannot_take(stimulus, message):
    with pytest.raises(DataError, match=message):
        predict(create_model("ln", 2), stimulus)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return generate_recording(tmp_path_factory.mktemp("gt") / "whitenoise.h5", "whitenoise", n_train=8000, n_test=1000,
                              n_repeats=8)


def test_ln_on_ground_truth_is_clearly_below_oracle(embedded):
    """The LN baseline on the embedded circuit: the numbers the CNN-beats-LN test compares against."""
    torch.manual_seed(0)
    model = create_model("ln", n_cells=12)
    fit(model, embedded, epochs=5, progress=False)
    frame = evaluate(model, embedded)
    stats = summary(frame)
    print("LN on embedded whitenoise:", stats, frame["correlation"].round(3).tolist())
    assert stats["n_passing"] == 12
    assert 0.2 < stats["median_correlation"] < stats["median_oracle"] - 0.2
    assert stats["median_feve"] < 0.5
    # it fits the ON and OFF cells, and fails on the near full-wave-rectifying ON-OFF cells
    types = json.loads(read_experiment(embedded, "train").attrs["cell_types"])
    r = frame["correlation"].to_numpy()
    one_sided = np.median(r[[t != "onoff" for t in types]])
    assert one_sided > 0.3 and np.median(r[[t == "onoff" for t in types]]) < one_sided - 0.1


def test_glm_fits_with_spike_history(embedded):
    torch.manual_seed(0)
    model = create_model("glm", n_cells=12)
    result = fit(model, embedded, epochs=2, progress=False)
    assert result.config.response == "binned"
    stats = summary(evaluate(model, embedded, n_samples=5))
    print("GLM on embedded whitenoise:", stats)
    assert 0.15 < stats["median_correlation"] < stats["median_oracle"]
    assert model.post_spike.shape == (12, 20) and model.post_spike.abs().sum() > 0
    assert (model.post_spike <= 0).all()  # suppressive only: the closed-loop simulation cannot run away


def test_glm_simulation_stays_at_the_recorded_rates_on_natural_scenes(tmp_path):
    """Natural scenes (strong spatial correlations, slow fixations) broke the GLM before: a filter scaled for white
    noise had a drive sd of ~50, and a self-exciting post-spike filter ran the simulation to the rate ceiling."""
    path = generate_recording(tmp_path / "ns.h5", "naturalscene", n_train=6000, n_test=600, n_repeats=5)
    torch.manual_seed(0)
    model = create_model("glm", n_cells=12)
    fit(model, path, epochs=2, progress=False)
    test = read_experiment(path, "test")
    predicted = predict(model, test.stimulus, n_samples=5).mean(1)
    recorded = test.repeats[:, :, 39:].mean((1, 2))  # (cells, repeats, T) firing rates in spikes/s
    assert np.all(predicted < 2 * recorded) and np.all(predicted > recorded / 3), (predicted, recorded)
    stats = summary(evaluate(model, path, n_samples=5))
    assert stats["median_correlation"] > 0.3 and stats["median_feve"] > 0.0, stats


def test_registry_and_cli(tmp_path, capsys, monkeypatch):
    from neurozoo.retina import fit_figure

    embedded = generate_recording(tmp_path / "small.h5", "whitenoise", n_train=2000, n_test=300, n_repeats=4)
    assert {"ln", "glm"} <= set(builtin_models())
    assert retina.MODELS.get("ln").tags["family"] == "retina"
    out = tmp_path / "fit"
    drawn = []
    monkeypatch.setattr(fit_figure, "fit_curve_figure", lambda *args, **kwargs: drawn.append(kwargs["cells"]) or
                        fit_figure.Figure())
    assert zoo(["fit", "ln", "--data", str(embedded), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    monkeypatch.undo()
    # the figure's per-cell panel: the held-out metrics written beside it
    assert drawn[0].round(12).to_csv() == pd.read_csv(out / "heldout_metrics.csv", index_col="cell").round(12).to_csv()
    printed = capsys.readouterr().out
    assert "median held-out r" in printed and "cell12" in printed
    record = json.loads((out / "summary.json").read_text())
    assert record["provenance"]["data_sha256"] and record["provenance"]["seed"] == 0
    assert (out / "heldout_metrics.csv").read_text().startswith("cell,correlation")
    assert record["figure"] == str(out / "fit_curve.png") and (out / "fit_curve.png").read_bytes()[:4] == b"\x89PNG"
    # the figure numbers epochs from 1, summary.json's best_epoch (as history.json) from 0: best_epoch_number is the
    # figure's number, best_epoch the index earlier readers use
    history = json.loads((out / "history.json").read_text())
    assert record["best_epoch"] == history["best_epoch"] == history["history"][-1]["epoch"] == 0
    assert record["best_epoch_number"] == 1 and "best_epoch_number and fit_curve.png count from 1" in \
        record["epoch_numbering"]
    # where the fit ends, the epoch kept, by what and why the fit stopped, in the figure's numbering
    best_r = history["history"][0]["val_correlation"]
    assert (f"fit: kept epoch 1 of 1 (history.json's epoch 0; best validation r {best_r:.3f}; the epoch limit "
            "reached), ") in printed
    # the seed fixes the whole fit, initial weights included: two runs give the same weights
    for run in ("a", "b"):
        assert zoo(["fit", "bncnn", "--data", str(embedded), "--out", str(tmp_path / run), "--epochs", "1",
                    "--batch-size", "256", "--quiet"]) == 0
    first, second = (torch.load(tmp_path / run / "model.pt") for run in ("a", "b"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert zoo(["fit", "nope", "--data", str(embedded)]) == 2
    assert "unknown retina model 'nope'" in capsys.readouterr().err
    assert zoo(["fit", "ln", "--data", str(tmp_path / "missing.h5")]) == 2


def test_retina_heldout_benchmarks_registered_and_scored(tmp_path, monkeypatch):
    from neurozoo import benchmarks
    import neurozoo.benchmarks.retina  # noqa: F401  (registers the retina benchmarks)

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    names = benchmarks.list_benchmarks()
    assert {"retina_embedded.whitenoise-heldout", "retina_embedded.naturalscene-heldout"} <= set(names)
    bench = benchmarks.load("retina_embedded.naturalscene-heldout", sizes={"n_train": 2500, "n_test": 400, "n_repeats": 5},
                            fit_settings={"epochs": 2})
    score = bench.score("ln", progress=False)
    frame = score.frame()
    assert len(frame) == 12 and set(frame.columns) >= {"cell", "correlation", "feve", "oracle", "passes"}
    kept = frame[frame["passes"]]
    assert score.value == pytest.approx(kept["correlation"].median())
    assert score.ceiling == pytest.approx(kept["oracle"].median()) and score.value < score.ceiling
    from neurozoo.retina.benchmark import _bootstrap_median_se  # its known answers: tests/test_retina_metrics.py

    assert score.error == pytest.approx(_bootstrap_median_se(kept["correlation"].to_numpy())) and score.error > 0
    p = score.provenance
    assert p["data_sha256"] and p["seed"] == 0 and p["settings"]["epochs"] == 2 and p["model"] == "ln"
    record = score.to_record("ln", bench.identifier)
    assert record.data_sha256 == p["data_sha256"]
    # a second score loads the finished fit instead of training again
    again = bench.score("ln", progress=False)
    assert again.value == pytest.approx(score.value)
    assert again.provenance["duration_s"] < p["duration_s"]  # each score's own time
    assert again.provenance["fit_duration_s"] == p["fit_duration_s"] > 0  # the fit's, read with it


def test_resume_refuses_a_checkpoint_of_another_model(ln_recording, tmp_path):
    from neurozoo.datasets.errors import DataError

    fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=tmp_path, epochs=1, max_steps_per_epoch=1, progress=False)
    with pytest.raises(DataError, match="checkpoint of a LN, not a GLM"):
        fit(create_model("glm", n_cells=1, rank=1), ln_recording, out=tmp_path, epochs=1, progress=False)
    # the same class with other layers (zoo fit bncnn2016 --out into a bncnn fit's folder): named, not torch's traceback
    with pytest.raises(DataError) as refused:
        fit(create_model("ln", n_cells=1, rank=2), ln_recording, out=tmp_path, epochs=1, max_steps_per_epoch=1,
            progress=False)
    assert str(refused.value) == (
        f"{tmp_path / 'checkpoint.pt'}: weights of another LN (filter.spatial has shape (1, 2500), the model's is "
        "(2, 2500) (1 more shape differs)); use another output folder (out= / --out) or start afresh (resume=False / --no-resume)")


@pytest.mark.parametrize("protocol, named", [(FIT_PROTOCOL - 1, str(FIT_PROTOCOL - 1)),
                                             (None, r"unrecorded \(written before checkpoints recorded it\)")],
                         ids=["another", "unrecorded"])
def test_resume_refuses_a_checkpoint_of_another_fit_protocol(ln_recording, tmp_path, protocol, named):
    """`zoo fit MODEL --out DIR` rerun after a protocol change resumed the old protocol's half-finished fit and finished
    it under the new one, two protocols mixed unsaid: a checkpoint of another protocol, or one that records none
    (written before this check), is refused before its weights are read, naming both protocols and what to do."""
    from neurozoo.datasets.errors import DataError

    fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=tmp_path, epochs=1, max_steps_per_epoch=1, progress=False)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["fit_protocol"] == FIT_PROTOCOL
    saved.pop("fit_protocol")
    if protocol is not None:
        saved["fit_protocol"] = protocol
    saved["model"] = {}  # not read: the refusal comes before any weights are loaded
    torch.save(saved, tmp_path / "checkpoint.pt")
    with pytest.raises(DataError, match=rf"checkpoint\.pt: a fit with other settings \(fit protocol {named} -> "
                                        rf"{FIT_PROTOCOL}\); use another output folder \(out= / --out\) or start afresh \(resume=False / "
                                        r"--no-resume\)"):
        fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=tmp_path, epochs=2, max_steps_per_epoch=1,
            progress=False)
    fresh = fit(create_model("ln", n_cells=1, rank=1), ln_recording, out=tmp_path, epochs=1, max_steps_per_epoch=1,
                progress=False, resume=False)  # what the message offers works
    assert len(fresh.history) == 1


@pytest.mark.parametrize("setting, message", [({"patience": 0}, "patience must be at least 1"),
                                              ({"epochs": 0}, "epochs must be at least 1"),
                                              ({"lr": -1e-3}, r"lr must be a finite number > 0 \(got -0.001\)"),
                                              ({"lr": 0.0}, r"lr must be a finite number > 0 \(got 0.0\)"),
                                              ({"lr": float("nan")}, r"lr must be a finite number > 0 \(got nan\)"),
                                              ({"min_delta": float("nan")}, "min_delta must be a finite number"),
                                              ({"l2": float("inf")}, "l2 must be a finite number"),
                                              ({"val_fraction": 1.0}, "val_fraction must be between 0 and 1"),
                                              ({"n_blocks": 0}, r"n_blocks must be at least 1 \(got 0\)"),
                                              ({"monitor": "r2"}, r"monitor must be one of \('correlation', 'poiss"),
                                              ({"output_calibration": True}, "output_calibration needs a model whose"),
                                              ({"epoch": 3}, r"^neurozoo\.retina\.fit\.fit: 'epoch' is not a fit setting; did "
                                                             r"you mean 'epochs'\? \(the fit settings: epochs, lr,")])
def test_unusable_fit_settings_get_a_clear_error_before_any_work(ln_recording, setting, message):
    from neurozoo.datasets.errors import SpecError

    with pytest.raises(SpecError, match=message):
        fit(create_model("ln", n_cells=1, rank=1), ln_recording, progress=False, **setting)


def test_bncnn_fit_split_over_two_threads_restores_torch_threads(ln_recording, monkeypatch):
    """A fit on the CPU splits the FFT layers over torch's threads (retina.fast_conv.split_threads, one torch thread
    each) and gives torch its thread count back afterwards, also when it stops with an error."""
    from neurozoo.retina import fit as fit_module

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        result = fit(create_model("bncnn", n_cells=1), ln_recording, epochs=1, max_steps_per_epoch=2, batch_size=24,
                     progress=False)
        assert torch.get_num_threads() == 2 and np.isfinite(result.history[0]["val_correlation"])
        assert result.torch_threads == [2]  # the fit's count, not the 1 torch runs on within the split

        def stop(*args):
            assert torch.get_num_threads() == 1  # inside the fit: the layers' parts are single-threaded
            raise KeyboardInterrupt

        monkeypatch.setattr(fit_module, "_mean_correlation", stop)
        with pytest.raises(KeyboardInterrupt):
            fit(create_model("bncnn", n_cells=1), ln_recording, epochs=1, max_steps_per_epoch=1, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_the_training_loss_is_torch_deep_retinas_poisson_nll():
    """The fit's loss against the published one: torch-deep-retina trains with ``torch.nn.PoissonNLLLoss`` (its
    default ``lossfxn``, torchdeepretina/training.py at 003f581, ``get_optim_objs``: ``PoissonNLLLoss(log_input=
    hyps['log_poisson'])``, False for a model whose output is a rate), i.e. the mean over samples and cells of
    ``rate - target * log(rate + 1e-8)``; deep-retina's Keras ``loss='poisson'`` is the same up to its epsilon (1e-7).
    Known answer too: a rate of 2 for a target of 3 costs 2 - 3 ln 2."""
    from neurozoo.retina.fit import poisson_loss

    generator = torch.Generator().manual_seed(0)
    rates = torch.rand(64, 5, generator=generator, dtype=torch.float64) * 20 + 0.01
    target = torch.poisson(torch.rand(64, 5, generator=generator, dtype=torch.float64) * 10, generator=generator)
    reference = torch.nn.PoissonNLLLoss(log_input=False, full=False, eps=1e-8, reduction="mean")(rates, target)
    torch.testing.assert_close(poisson_loss(rates, target), reference, rtol=1e-12, atol=0)
    keras = (rates - target * torch.log(rates + 1e-7)).mean()  # Keras 1 objectives.poisson, K.epsilon() 1e-7
    torch.testing.assert_close(poisson_loss(rates, target), keras, rtol=1e-6, atol=0)
    known = poisson_loss(torch.tensor([[2.0]], dtype=torch.float64), torch.tensor([[3.0]], dtype=torch.float64))
    assert float(known) == pytest.approx(2 - 3 * np.log(2 + 1e-8), rel=1e-12)


def test_l2_penalises_weights_and_never_biases_whatever_their_shape():
    """The two-subunit model keeps its subunit biases in a (2, n_cells) tensor; protocol 6 decayed them like weights."""
    from neurozoo.retina.fit import regularization

    torch.manual_seed(0)
    model = create_model("twosubunit", n_cells=3)
    with torch.no_grad():
        model.subunit_bias.fill_(10.0)  # a penalised bias would add l2 * 6 * 100 = 600
        model.bias.fill_(10.0)
    weights = [model.weights, model.on.spatial, model.on.temporal, model.off.spatial, model.off.temporal]
    expected = sum(float((w.detach() ** 2).sum()) for w in weights)
    assert float(regularization(model, torch.zeros(4, 3), l2=1.0, l1=0.0).detach()) == pytest.approx(expected, rel=1e-6)
    # the BN-CNN: its conv and dense kernels (not the convs' biases, not BatchNorm's gains and offsets)
    cnn = create_model("bncnn", n_cells=3)
    kernels = [cnn.conv1.weight, cnn.conv2.weight, cnn.dense.weight]
    assert float(regularization(cnn, torch.zeros(4, 3), l2=1.0, l1=0.0).detach()) == pytest.approx(
        sum(float((k.detach() ** 2).sum()) for k in kernels), rel=1e-6)


def test_zoo_score_fits_and_stores_a_retina_model_on_a_retina_benchmark(tmp_path, monkeypatch, capsys):
    """`zoo score MODEL BENCHMARK` takes retina models too: the benchmark fits the named model on its embedded
    recording (or reads the fit cache) and the record goes to the results store; a retina model on a cortex
    benchmark, or a ConvRNN on a retina benchmark, is a one-line error."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.records import ResultsStore

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    load = benchmarks.load
    small = {"sizes": {"n_train": 2500, "n_test": 400, "n_repeats": 5}, "fit_settings": {"epochs": 1}}
    monkeypatch.setattr(benchmarks, "load", lambda name: load(name, **(small if name.startswith("retina_") else {})))
    import sys

    # a retina score draws no plot: importing the plots (matplotlib, ~0.5 s) was a cached score's avoidable cost
    monkeypatch.setitem(sys.modules, "neurozoo.benchmarks.plots", None)
    assert zoo(["score", "ln", "retina_embedded.whitenoise-heldout"]) == 0
    out = capsys.readouterr().out
    assert "ln on retina_embedded.whitenoise-heldout" in out
    records = ResultsStore(f"sqlite:///{tmp_path / 'home' / 'results.sqlite'}").query()
    assert list(records["model"]) == ["ln"] and list(records["benchmark"]) == ["retina_embedded.whitenoise-heldout"]
    assert 0 < records["value"].iloc[0] < 1 and records["data_sha256"].iloc[0]
    import json

    [summary] = (tmp_path / "home" / "results").glob("*.json")
    provenance = json.loads(summary.read_text())["provenance"]
    assert provenance["settings"]["rerun"]["model"] == "ln" and "family" not in provenance  # no internal flag
    assert zoo(["score", "ln", "ventral_embedded.IT-temporal"]) == 2
    assert "ln is a retina model" in capsys.readouterr().err
    assert zoo(["score", "rgc_intermediate", "retina_embedded.osr"]) == 2
    assert "rgc_intermediate is an image model" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(39, 50, 50), (50, 50)])
def test_predict_refuses_a_stimulus_without_a_whole_window(shape):
    from neurozoo.datasets.errors import DataError

    with pytest.raises(DataError) as info:
        predict(create_model("bncnn", n_cells=2), np.zeros(shape, np.float32))
    assert str(info.value) == (f"stimulus: expected shape (T >= 40, 50, 50), one 40-frame window or more of the "
                               f"model's 50x50 frames, got {shape}")


@pytest.mark.parametrize("name", ["ln", "glm", "twosubunit", "bncnn"])
def test_predict_checks_frames_against_the_models_own_frame_size(name):
    """A 10 px model (the baselines' ground-truth tests fit them) predicts its own frames and refuses 50 px ones; a
    model that states no frame size (a plugin's) is checked for the windows only. The check took 50 px for any model
    without a frame_size attribute: the LN, GLM and two-subunit models kept theirs in their filters."""
    from neurozoo.datasets.errors import DataError

    torch.manual_seed(0)
    model = create_model(name, n_cells=2, frame_size=30) if name == "bncnn" else \
        create_model(name, n_cells=2, frame_size=10)
    side = model.frame_size
    assert predict(model, np.zeros((45, side, side), np.float32)).shape == (2, 6)
    with pytest.raises(DataError, match=rf"of the model's {side}x{side} frames, got \(45, 50, 50\)$"):
        predict(model, np.zeros((45, 50, 50), np.float32))


def test_predict_checks_only_the_windows_of_a_model_that_states_no_frame_size():
    class Plugin(torch.nn.Module):  # windows (batch, 40, H, W) -> rates (batch, 1), any H and W
        def forward(self, x):
            return x.mean(dim=(1, 2, 3))[:, None].exp()

    assert predict(Plugin(), np.zeros((41, 7, 7), np.float32)).shape == (1, 2)
    with pytest.raises(Exception, match=r"expected shape \(T >= 40, H, W\), one 40-frame window or more of frames"):
        predict(Plugin(), np.zeros((39, 7, 7), np.float32))


@pytest.mark.parametrize("name", ["bncnn", "ln", "glm"])  # forward_movie, windows, a spike history
def test_predict_calls_the_safe_point_between_its_chunks_and_gives_the_same_rates(name):
    """zoo score's safe point (a SIGTERM stops there) between the chunks predict runs a long movie in (contrast
    adaptation's 4800 frames took seconds as one step): the same chunks, the same rates, bit for bit."""
    torch.manual_seed(0)
    model = create_model(name, n_cells=3)
    movie = np.random.default_rng(0).standard_normal((39 + 50, 50, 50)).astype(np.float32)
    calls = []
    stoppable = predict(model, movie, batch_size=16, safe_point=lambda: calls.append(1))
    assert np.array_equal(stoppable, predict(model, movie, batch_size=16)) and len(calls) == 3  # 4 chunks of windows


def test_zoo_fit_does_not_resume_a_fit_to_another_recording_or_seed(tmp_path, monkeypatch, capsys):
    """day1/expt.h5 and day2/expt.h5 share the default folder $NEUROZOO_HOME/retina/ln-expt: the second must not
    resume (and report) the first one's fit."""
    def recording(folder, seed):
        rng = np.random.default_rng(seed)
        binned = rng.poisson(0.3, (2, 2000)).astype(np.float32)
        trials = rng.poisson(0.3, (3, 2, 100)).astype(np.float32)
        rates = firing_rates(trials)["firing_rate_10ms"]
        train = {"stimulus": rng.standard_normal((2000, 50, 50)).astype(np.float32), "time": np.arange(2000) / 100,
                 "response": {**firing_rates(binned), "binned": binned}}
        test = {"stimulus": rng.standard_normal((100, 50, 50)).astype(np.float32), "time": np.arange(100) / 100,
                "response": {"firing_rate_10ms": rates.mean(0)}, "repeats": {"cell01": rates[:, 0], "cell02": rates[:, 1]}}
        return write_experiment(tmp_path / folder / "expt.h5", train, test)

    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    day1, day2 = recording("day1", 0), recording("day2", 1)
    fit_args = ["--epochs", "1", "--quiet"]
    assert zoo(["fit", "ln", "--data", str(day1)] + fit_args) == 0
    out = tmp_path / "home" / "retina" / "ln-expt"
    first = (out / "model.pt").read_bytes()
    capsys.readouterr()
    assert zoo(["fit", "ln", "--data", str(day2)] + fit_args) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the warning that no cell of this noise passes the filter
    assert last.startswith(f"zoo fit: error: {out / 'checkpoint.pt'}: a fit to other data (sha256 ")
    assert (out / "model.pt").read_bytes() == first
    assert zoo(["fit", "ln", "--data", str(day2), "--no-resume"] + fit_args) == 0
    assert zoo(["fit", "ln", "--data", str(day2)] + fit_args) == 0  # now the folder holds day2's fit: it resumes
    # strict JSON (no cell of this noise passes the held-out filter: its medians are null, not NaN)
    summary = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert summary["data"] == str(day2)
    # nor a fit with another seed or learning rate (it had resumed seed 0's fit and recorded it as seed 1's)
    second = (out / "model.pt").read_bytes()
    capsys.readouterr()
    assert zoo(["fit", "ln", "--data", str(day2), "--seed", "1", "--lr", "0.1"] + fit_args) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"zoo fit: error: {out / 'checkpoint.pt'}: a fit with other settings (lr 0.01 -> 0.1, seed 0 -> 1); use "
        "another output folder (out= / --out) or start afresh (resume=False / --no-resume)")
    assert (out / "model.pt").read_bytes() == second
    assert zoo(["fit", "ln", "--data", str(day2), "--epochs", "2", "--quiet"]) == 0  # more epochs: it resumes


def test_a_model_needs_cells_and_frames_of_its_size():
    """n_cells=0 had built a model with no outputs; 40x40 frames failed inside BatchNorm ('running_mean should
    contain 5408 elements not 10368')."""
    from neurozoo import retina
    from neurozoo.datasets.errors import SpecError

    for name in ("bncnn", "ln"):
        with pytest.raises(SpecError, match=r"^n_cells must be an integer >= 1 \(one output per ganglion cell\); got 0$"):
            retina.create_model(name, n_cells=0)
    assert create_model("ln", n_cells=np.int64(2)).n_cells == 2
    with pytest.raises(ValueError, match=r"^stimulus: expected shape \(T >= 40, 50, 50\), .* got \(60, 40, 40\)$"):
        predict(create_model("bncnn", n_cells=2), np.zeros((60, 40, 40), np.float32))


@pytest.mark.parametrize("argv, fragment", [
    (["fit", "ln", "--data", "embedded:whitenoise", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    (["probe", "osr", "ln", "--fit-embedded", "--seed", "-2"], "argument --seed: expected an integer >= 0, got -2"),
])
def test_negative_seed_is_refused_while_parsing(argv, fragment, capsys):
    """--seed -1 reached numpy's seeding deep in the fit: a ValueError traceback, exit 1."""
    from neurozoo.leaderboard.cli import main as zoo

    with pytest.raises(SystemExit) as exit_:
        zoo(argv)
    assert exit_.value.code == 2 and fragment in capsys.readouterr().err


def test_two_concurrent_fits_of_one_cached_model_train_it_once(tmp_path, monkeypatch):
    """Two zoo workers (or processes of a parallel test run) asking for the same embedded fit both trained it, into
    one folder: the second now waits for the first and reads its finished fit."""
    import shutil
    import threading

    from neurozoo.retina import embedded_fit, fit as fit_module

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    trained, real_fit = [], fit_module.fit

    def counting_fit(model, path, out, **kwargs):
        if not (out / "history.json").is_file():  # nothing finished there yet: this call trains
            trained.append(threading.current_thread().name)
        return real_fit(model, path, out=out, **kwargs)

    monkeypatch.setattr(fit_module, "fit", counting_fit)
    sizes = dict(n_train=2500, n_test=200, n_repeats=2)
    first = embedded_fit.fitted_embedded_model("ln", progress=False, sizes=sizes, epochs=1)[1]  # the recording too
    shutil.rmtree(first["fit_dir"])  # the recording stays: the two threads below only fit
    trained.clear()
    results = {}

    def worker(name):
        results[name] = embedded_fit.fitted_embedded_model("ln", progress=False, sizes=sizes, epochs=1)[1]

    threads = [threading.Thread(target=worker, args=(name,), name=name) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trained) == 1, trained
    assert results["a"]["fit_dir"] == results["b"]["fit_dir"]
    # each says how it came by the fit, decided under the lock: the one that waited read the other's fit
    assert sorted(r["fit_origin"] for r in results.values()) == ["cached", "fitted"]


def test_zoo_probe_fit_embedded_reads_the_fit_that_zoo_fit_made(tmp_path, monkeypatch, capsys):
    """`zoo fit MODEL --data embedded:KIND` fitted into $NEUROZOO_HOME/retina/<model>-<file stem>, `zoo probe
    --fit-embedded` into the fit cache (retina.embedded_fit.fit_dir): the same fit (model, data, seed, protocol) was
    made twice. `zoo fit` now fits into that cache too (without --out), so the probe reads its fit: nothing trained."""
    import functools

    from neurozoo.datasets import synthetic_retina
    from neurozoo.retina import fit as fitting

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))  # an empty fit cache: `zoo fit` makes the fit
    small = functools.partial(synthetic_retina.load_embedded_retina, n_train=2500, n_test=200, n_repeats=2)
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    assert zoo(["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--quiet"]) == 0
    assert "nothing trained" not in capsys.readouterr().out

    def trained(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(fitting, "_train_steps", trained)
    out = tmp_path / "probe"
    assert zoo(["probe", "osr", "ln", "--fit-embedded", "--epochs", "1", "--quiet", "--out", str(out),
                "--periods", "6", "10", "14"]) == 0
    provenance = json.loads((out / "osr.json").read_text())["provenance"]
    [summary] = (tmp_path / "cache").rglob("summary.json")  # zoo fit's, in the folder the probe read
    assert provenance["fit_origin"] == "cached" and provenance["fit_dir"] == str(summary.parent)
    capsys.readouterr()
    # and zoo fit again reads it, saying so (it had resumed its own folder silently)
    assert zoo(["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"ln on embedded:whitenoise: the finished fit in {summary.parent} (the "
                                              "fit cache), read; nothing trained (--no-resume fits again)\n")
    assert json.loads(summary.read_text())["provenance"]["fit_origin"] == "cached"


def test_zoo_fit_of_a_cached_fit_keeps_its_learning_curve_and_does_not_draw_it_again(tmp_path, monkeypatch, capsys):
    """A cached `zoo fit` redrew fit_curve.png, the same figure, importing matplotlib (a tenth of its run)."""
    import functools

    from neurozoo.datasets import synthetic_retina
    from neurozoo.retina import fit_figure

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    small = functools.partial(synthetic_retina.load_embedded_retina, n_train=2500, n_test=200, n_repeats=2)
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    argv = ["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--quiet"]
    assert zoo(argv) == 0
    [figure] = (tmp_path / "cache").rglob("fit_curve.png")
    drawn = figure.read_bytes()

    def redrawn(*args, **kwargs):
        raise AssertionError("the cached fit's curve drawn again")

    monkeypatch.setattr(fit_figure, "plot_fit_curve", redrawn)
    assert zoo(argv) == 0 and "nothing trained" in capsys.readouterr().out
    assert figure.read_bytes() == drawn
    assert json.loads((figure.parent / "summary.json").read_text())["figure"] == str(figure)
    figure.unlink()  # a curve that is missing is drawn
    monkeypatch.undo()
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    assert zoo(argv) == 0 and figure.is_file()


def test_a_cached_zoo_fit_keeps_the_fits_own_time_in_summary_json_beside_its_commands(tmp_path, monkeypatch, capsys):
    """A `zoo fit` of a fit in the fit cache rewrote summary.json's provenance.duration_s with its reading's seconds
    (about 1 s for a fit of minutes), the fit's own lost. summary.json now keeps the fit's time (fit_duration_s, over
    its runs, fit_stretches), which a read leaves as it was, and duration_s is the command's own."""
    import functools

    from neurozoo.datasets import synthetic_retina

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    small = functools.partial(synthetic_retina.load_embedded_retina, n_train=2500, n_test=200, n_repeats=2)
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    argv = ["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "2", "--patience", "9", "--quiet"]
    assert zoo(argv) == 0
    [summary] = (tmp_path / "cache").rglob("summary.json")
    fitted = json.loads(summary.read_text())["provenance"]
    assert fitted["fit_origin"] == "fitted" and fitted["fit_duration_s"] > 0
    assert fitted["fit_stretches"] == [{"epochs": [0, 2], "seconds": fitted["fit_duration_s"]}]
    assert fitted["duration_s"] >= fitted["fit_duration_s"]  # the command: the fit, its evaluation, the figure
    assert f"), {fitted['fit_duration_s']:.0f} s of fitting" in capsys.readouterr().out
    timing = (summary.parent / "fit_time.json").read_bytes()
    assert zoo(argv) == 0
    read = json.loads(summary.read_text())["provenance"]
    assert read["fit_origin"] == "cached" and read["duration_s"] > 0
    assert (read["fit_duration_s"], read["fit_stretches"]) == (fitted["fit_duration_s"], fitted["fit_stretches"])
    assert (summary.parent / "fit_time.json").read_bytes() == timing
    assert (f"a finished fit read, no epoch fitted now (its fitting took {fitted['fit_duration_s']:.0f} s)"
            in capsys.readouterr().out)


def test_the_fit_cache_is_keyed_on_the_settings_a_fit_uses_not_on_how_they_were_typed(tmp_path, monkeypatch, capsys):
    """`zoo fit ln --data embedded:whitenoise --lr 0.01` (the LN model's own rate) fitted into another folder than the
    same fit without --lr, as did an explicit --output-calibration equal to the BN-CNN's default: the cache key hashed
    the settings as typed. It hashes them resolved now; a fit without overrides keeps its folder of before."""
    import dataclasses
    import functools
    import hashlib

    from neurozoo.datasets import synthetic_retina
    from neurozoo.retina import fit as fitting
    from neurozoo.retina.embedded_fit import fit_dir

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    small = functools.partial(synthetic_retina.load_embedded_retina, n_train=2500, n_test=200, n_repeats=2)
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    assert zoo(["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--quiet"]) == 0
    [first] = (tmp_path / "cache").rglob("summary.json")
    capsys.readouterr()

    def trained(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(fitting, "_train_steps", trained)
    assert zoo(["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--lr", "0.01", "--l2", "0.001",
                "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"ln on embedded:whitenoise: the finished fit in {first.parent} (the fit "
                                              "cache), read; nothing trained")
    path = small("whitenoise")

    def folder(name, **settings):
        return fit_dir(path, name, "whitenoise", 0, settings)

    state = torch.random.get_rng_state()
    assert folder("ln", lr=0.02) != folder("ln") == folder("ln", lr=1e-2) == folder("ln", l2=1e-3)
    assert torch.equal(torch.random.get_rng_state(), state)  # building the model to name a folder drew nothing
    assert folder("ln", l2=0) == folder("ln", l2=0.0) != folder("ln")
    assert folder("bncnn", output_calibration=True) == folder("bncnn") != folder("bncnn", output_calibration=False)
    assert folder("glm", patience=3, min_delta=0.001) == folder("glm") != folder("glm", patience=2)
    # a fit without overrides keeps its folder: the key of before (the settings as typed, all of them defaults)
    def typed(**settings):
        config = dataclasses.asdict(fitting.FitConfig(**settings))
        # objective, filter_l2, cells: settings added since, left out of the key at their defaults
        del config["progress"], config["device"], config["objective"], config["filter_l2"], config["cells"]
        return hashlib.sha256(json.dumps([fitting.FIT_PROTOCOL, config], sort_keys=True).encode()).hexdigest()[:8]

    assert folder("bncnn").name.endswith(f"-seed0-fit{typed()}") and folder("glm").name.endswith(f"-fit{typed()}")
    assert first.parent.name.endswith(f"-seed0-fit{typed(epochs=1)}")


def test_the_fit_cache_keys_the_batching_a_fit_uses_so_auto_and_chunks_share_a_folder(tmp_path, monkeypatch):
    """``batching="auto"`` resolves to chunks for a model with ``forward_movie``: the same fit as ``"chunks"``, but the
    key hashed the setting as asked, so the two fitted into two folders of the fit cache. The key holds the resolved
    batching now (a fit without overrides keeps its folder, pinned above); the checkpoint of an "auto" fit is resumed
    by a "chunks" one instead of refused as a fit with other settings; a batching that is none is refused by name."""
    import functools

    from neurozoo.datasets import synthetic_retina
    from neurozoo.datasets.errors import SpecError
    from neurozoo.retina import fit as fitting
    from neurozoo.retina.embedded_fit import fit_dir, fit_embedded

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    small = functools.partial(synthetic_retina.load_embedded_retina, n_train=2500, n_test=200, n_repeats=2)
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    path = small("whitenoise")

    def folder(name, **settings):
        return fit_dir(path, name, "whitenoise", 0, settings)

    assert folder("ln", batching="chunks") == folder("ln") == folder("ln", batching="auto") != folder("ln", batching="windows")
    assert folder("bncnn", batching="chunks") == folder("bncnn")
    with pytest.raises(SpecError, match="batching must be one of"):
        folder("ln", batching="chunk")
    first, info = fit_embedded("ln", epochs=1, progress=False)
    assert first.config.batching == "chunks" and info["fit_origin"] == "fitted"

    def trained(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(fitting, "_train_steps", trained)
    checkpoint = folder("ln", epochs=1) / "checkpoint.pt"  # as written before batching was resolved: "auto"
    saved = torch.load(checkpoint, weights_only=False)
    torch.save({**saved, "config": {**saved["config"], "batching": "auto"}}, checkpoint)
    again, info = fit_embedded("ln", epochs=1, batching="chunks", progress=False)
    assert info["fit_origin"] == "cached" and info["fit_dir"] == str(folder("ln", epochs=1))
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))


def test_zoo_fit_writes_its_results_into_the_fit_cache_whole_and_under_the_fits_lock(tmp_path, monkeypatch):
    """`zoo fit MODEL --data embedded:KIND` wrote summary.json, heldout_metrics.csv (not atomically) and fit_curve.png
    into the fit's cache folder after its lock was released: a concurrent `--no-resume` refit of the same folder could
    remove them half-written or leave one fit's summary beside another's checkpoint. They are written whole now, each
    while the fit's lock is held."""
    import fcntl
    import functools
    from pathlib import Path

    from neurozoo.datasets import json_files, synthetic_retina
    from neurozoo.retina.embedded_fit import fit_lock

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    small = functools.partial(synthetic_retina.load_embedded_retina, n_train=2500, n_test=200, n_repeats=2)
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    written, real_written_whole = {}, json_files.written_whole

    def lock_held(out):
        with open(fit_lock(out), "a") as handle:  # flock: another open file of this process is another holder
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def recording_written_whole(path, **kwargs):
        written[Path(path).name] = lock_held(Path(path).parent)
        return real_written_whole(path, **kwargs)

    monkeypatch.setattr(json_files, "written_whole", recording_written_whole)
    # fitted, refitted, read from the cache (whose learning curve is the refit's, kept: not drawn again)
    for argv, drawn in (([], True), (["--no-resume"], True), ([], None)):
        written.clear()
        assert zoo(["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--quiet", *argv]) == 0
        assert {name: written.get(name) for name in ("summary.json", "heldout_metrics.csv", "fit_curve.png")} == {
            "summary.json": True, "heldout_metrics.csv": True, "fit_curve.png": drawn}, argv


TWO_FITS = """
import sys, time
from pathlib import Path

from neurozoo.leaderboard.cli import main
from neurozoo.retina import fit as fitting

role, started, release, *argv = sys.argv[1:]
steps = fitting._train_steps


def held_steps(*args, **kwargs):  # the first fit trains until the test releases it; the second must not train
    if role == "second":
        raise AssertionError("the second zoo fit trained in the folder the first was fitting in")
    Path(started).touch()
    while not Path(release).exists():
        time.sleep(0.01)
    return steps(*args, **kwargs)


fitting._train_steps = held_steps
sys.exit(main(argv))
"""


def test_two_zoo_fits_into_one_out_folder_take_turns(tmp_path):
    """`zoo fit MODEL --data FILE --out DIR` took no lock (only the fit cache of embedded:KIND did): two at once into
    one folder wrote checkpoints and results beside each other. The second now waits for the folder's lock (it says
    so), then reads the first's finished fit instead of training on it."""
    import os
    import subprocess
    import sys
    import time

    data = generate_recording(tmp_path / "gt.h5", "whitenoise", n_train=2500, n_test=200, n_repeats=2)
    out, started, release = tmp_path / "fit", tmp_path / "started", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = ["fit", "ln", "--data", str(data), "--out", str(out), "--epochs", "1"]

    def start(role, *extra):
        log = open(tmp_path / f"{role}.err", "w")
        return subprocess.Popen([sys.executable, "-c", TWO_FITS, role, str(started), str(release), *argv, *extra],
                                env=env, stdout=subprocess.PIPE, stderr=log, text=True)

    def wait_for(done, what, procs):
        deadline = time.time() + 120
        while not done():
            exited = {p.args[3]: p.returncode for p in procs if p.poll() is not None}
            assert not exited and time.time() < deadline, (what, exited, [
                (tmp_path / f"{role}.err").read_text()[-2000:] for role in ("first", "second")])
            time.sleep(0.01)

    first = start("first", "--quiet")
    wait_for(started.exists, "the first fit to train", [first])
    second = start("second")  # not quiet: it says that it waits
    try:
        wait_for(lambda: "waiting for the fit another process is making in" in (tmp_path / "second.err").read_text(),
                 "the second fit to wait", [first, second])
    finally:
        release.touch()
    outputs = [proc.communicate(timeout=300)[0] for proc in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [(tmp_path / f"{r}.err").read_text()[-2000:]
                                                              for r in ("first", "second")]
    assert all(f"saved in {out}" in text for text in outputs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == 0 and (out / "model.pt").is_file()


KILLED_IN_FIRST_EPOCH = """
import os, signal, sys
from neurozoo.leaderboard.cli import main
from neurozoo.retina import fit as fitting

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

fitting._train_steps = killed
sys.exit(main(sys.argv[1:]))
"""


def test_zoo_fit_no_resume_killed_before_its_first_checkpoint_keeps_the_earlier_fit_aside_never_resumed(tmp_path):
    """`zoo fit --no-resume` removed the earlier fit (checkpoint and results) before training, so that a kill -9 in its
    first epoch could not leave the earlier checkpoint for the next plain `zoo fit` to resume as this fit; but the kill
    then lost the earlier fit with nothing in its place. It is moved into DIR/earlier-fit instead: never resumed (the
    next zoo fit starts afresh), kept whole until the new fit's first checkpoint, then removed."""
    import hashlib
    import os
    import subprocess
    import sys

    from neurozoo.retina.fit import EARLIER_FIT, RESULT_FILES
    from neurozoo.retina.fit_time import FIT_TIME

    data = generate_recording(tmp_path / "gt.h5", "whitenoise", n_train=2500, n_test=200, n_repeats=2)
    out = tmp_path / "fit"
    argv = ["fit", "ln", "--data", str(data), "--out", str(out), "--epochs", "1", "--quiet"]
    assert zoo(argv) == 0
    files = ("checkpoint.pt", FIT_TIME) + RESULT_FILES  # the fit's time (retina.fit_time) goes with its checkpoint
    digests = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in files}
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_FIRST_EPOCH, *argv, "--no-resume"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert f"{out}: the earlier fit in it set aside in {out / EARLIER_FIT} until this fit's first checkpoint" in \
        killed.stderr
    assert sorted(p.name for p in out.iterdir()) == [EARLIER_FIT]
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / EARLIER_FIT).iterdir()} == digests
    # the next plain zoo fit: afresh (its first epoch not one of the earlier fit's), the earlier fit gone after it
    with pytest.warns(UserWarning):  # the recording's few validation frames
        assert zoo([*argv, "--lr", "0.003"]) == 0  # resuming the earlier fit (lr 0.01) would have been refused
    assert not (out / EARLIER_FIT).exists() and sorted(p.name for p in out.iterdir()) == sorted(files)
    assert json.loads((out / "summary.json").read_text())["provenance"]["settings"]["lr"] == 0.003


def test_a_fresh_fit_sets_the_fits_time_aside_with_its_checkpoint_and_drops_one_left_without(tmp_path, capsys):
    """fit_time.json goes into earlier-fit with the checkpoint it times. One in the folder without a checkpoint (a
    fresh fit killed after writing its first time, before its first checkpoint) times nothing kept: removed, never
    written over the earlier fit's; one that a kill left behind mid-set-aside (the checkpoint moved, it not yet) joins
    its checkpoint."""
    from neurozoo.retina.fit import EARLIER_FIT, _set_aside
    from neurozoo.retina.fit_time import FIT_TIME

    out = tmp_path / "fit"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"earlier checkpoint")
    (out / FIT_TIME).write_text("earlier time")
    _set_aside(out)
    aside = out / EARLIER_FIT
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint.pt", FIT_TIME] and not (out / FIT_TIME).exists()
    (out / FIT_TIME).write_text("the killed fresh fit's time")
    _set_aside(out)
    assert not (out / FIT_TIME).exists() and (aside / FIT_TIME).read_text() == "earlier time"
    (aside / FIT_TIME).replace(out / FIT_TIME)  # killed mid-set-aside: the checkpoint moved, its time not yet
    _set_aside(out)
    assert (aside / FIT_TIME).read_text() == "earlier time" and not (out / FIT_TIME).exists()
    (out / FIT_TIME).write_text("a time of nothing")  # no fit in the folder at all: removed, no earlier-fit made
    (aside / "checkpoint.pt").unlink()
    (aside / FIT_TIME).unlink()
    aside.rmdir()
    _set_aside(out)
    assert sorted(p.name for p in out.iterdir()) == []
    capsys.readouterr()


@pytest.mark.parametrize("signum, how", [(15, "signal 15"), (2, "Ctrl-C")])
def test_zoo_fit_waiting_for_a_folders_lock_stops_at_once_on_sigterm_or_ctrl_c_having_written_nothing(
        ln_recording, tmp_path, signum, how, python_ctrl_c):
    """A SIGTERM while `zoo fit` waited for another fit's folder lock killed it without a word (no handler there:
    exit -15), and a Ctrl-C said a bare "interrupted". Now either stops the wait at once with zoo fit's interruption
    line, exit 130, nothing written."""
    import fcntl
    import os
    import subprocess
    import sys
    import time

    from neurozoo.retina.embedded_fit import fit_lock

    out, err = tmp_path / "fit", tmp_path / "zoo.err"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(fit_lock(out), "a") as lock, open(err, "w") as log:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other fit
        process = subprocess.Popen([sys.executable, "-c", "import sys; from neurozoo.leaderboard.cli import main; "
                                    "sys.exit(main(sys.argv[1:]))", "fit", "ln", "--data", str(ln_recording),
                                    "--out", str(out), "--epochs", "1"], env=env, stdout=subprocess.PIPE, stderr=log)
        deadline = time.monotonic() + 120
        while "waiting for the fit" not in err.read_text():
            assert process.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
            time.sleep(0.01)
        process.send_signal(signum)
        process.communicate(timeout=60)
    waiting = f"waiting for the fit another process is making in {out}"
    assert process.returncode == 130 and err.read_text() == (
        f"ln on ln.h5: {waiting}\nzoo fit: interrupted; ln on ln.h5: stopped ({how}) while {waiting}, before fitting "
        "or writing anything\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.lock", "zoo.err"]


SIGTERM_AS_THE_LOCK_IS_GRANTED = """
import fcntl, os, signal, sys
from neurozoo.datasets import cache
from neurozoo.leaderboard.cli import main

when, flock, names, waited = sys.argv[1], fcntl.flock, cache._names, []


def granted(handle, operation):  # inside the wait's own deferral, just after its last check for a request
    try:
        flock(handle, operation)
    except BlockingIOError:
        waited.append(1)
        raise
    if waited and when == "inside the wait":
        waited.clear()  # once
        os.kill(os.getpid(), signal.SIGTERM)


def named(path, handle):  # after the wait, before the fit
    if waited and when == "after the wait":
        waited.clear()
        os.kill(os.getpid(), signal.SIGTERM)
    return names(path, handle)


fcntl.flock, cache._names = granted, named
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("when", ["inside the wait", "after the wait"])
def test_zoo_fit_stopped_by_sigterm_as_a_folders_lock_is_granted_exits_cleanly_having_written_nothing(
        ln_recording, tmp_path, when):
    """The wait for another fit's folder lock deferred SIGTERM only while it polled: one that came as the lock was
    granted (after the wait's last check) was dropped when the wait's deferral ended, and the fit ran to its end (exit
    0), and one that came between the wait and the fit's own deferral killed zoo fit without a word (exit -15),
    leaving the lock file of a fit that never was. zoo fit now defers SIGTERM from its start to its results: either
    stops it there, exit 130, saying so, nothing written, no lock file left."""
    import fcntl
    import os
    import subprocess
    import sys
    import time

    from neurozoo.retina.embedded_fit import fit_lock

    out, err = tmp_path / "fit", tmp_path / "zoo.err"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(fit_lock(out), "a") as lock, open(err, "w") as log:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other fit
        process = subprocess.Popen([sys.executable, "-c", SIGTERM_AS_THE_LOCK_IS_GRANTED, when, "fit", "ln", "--data",
                                    str(ln_recording), "--out", str(out), "--epochs", "1"], env=env,
                                   stdout=subprocess.PIPE, stderr=log)
        deadline = time.monotonic() + 120
        while "waiting for the fit" not in err.read_text():
            assert process.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
            time.sleep(0.01)
    process.communicate(timeout=120)  # the other fit's lock released: this one is granted it
    waiting = f"waiting for the fit another process is making in {out}"
    assert (process.returncode, err.read_text()) == (130, (
        f"ln on ln.h5: {waiting}\nzoo fit: interrupted; ln on ln.h5: stopped (signal 15) while {waiting}, before "
        "fitting or writing anything\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo.err"]


SIGTERM_AFTER_THE_RESULTS = """
import os, signal, sys
from neurozoo.leaderboard.cli import main
from neurozoo.retina import cli

save = cli._save_results


def saved(*args):  # the results written and the request read (none yet): zoo fit's last safe point is behind it
    results = save(*args)
    os.kill(os.getpid(), signal.SIGTERM)
    return results


cli._save_results = saved
sys.exit(main(sys.argv[1:]))
"""


def test_zoo_fit_stopped_by_sigterm_after_its_last_safe_point_exits_130(ln_recording, tmp_path):
    """A SIGTERM that came after the results' safe point (as zoo fit printed them) was recorded by zoo fit's deferral
    and forgotten when it ended: exit 0 to a scheduler that had asked it to stop. The deferral's end now acts on it."""
    import os
    import subprocess
    import sys

    out = tmp_path / "fit"
    process = subprocess.run([sys.executable, "-c", SIGTERM_AFTER_THE_RESULTS, "fit", "ln", "--data", str(ln_recording),
                              "--out", str(out), "--epochs", "1", "--quiet"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert (process.returncode, process.stderr.splitlines()[-1]) == (130, "zoo fit: interrupted; signal 15")
    assert f"saved in {out}" in process.stdout and (out / "summary.json").is_file()


def test_zoo_fit_refuses_bad_settings_before_it_locks_a_folder(tmp_path, monkeypatch, capsys):
    """The settings were checked only by the fit, after the fit's folder was named and locked: each refused
    `zoo fit ... --epochs 0` left a lock file for a fit that never was in the shared fit cache (and beside --out)."""
    import functools

    from neurozoo.datasets import synthetic_retina

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    small = functools.partial(synthetic_retina.load_embedded_retina, n_train=2500, n_test=200, n_repeats=2)
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", small)
    path = small("whitenoise")
    for data, extra in (("embedded:whitenoise", []), (str(path), ["--out", str(tmp_path / "fit")]),
                        ("embedded:whitenoise", ["--out", str(tmp_path / "fit")])):
        # (--epochs 0 and --val-fraction 1.5 are refused while the command line is parsed: tests/test_cli_args.py)
        for bad, error in ((["--objective", "deep-retina"], "--objective deep-retina (objective='deep-retina'"),
                           (["--output-calibration"], "output_calibration needs a model whose output BatchNorm1d")):
            assert zoo(["fit", "ln", "--data", data, "--quiet", *bad, *extra]) == 2
            assert error in capsys.readouterr().err
    assert not (tmp_path / "cache" / "retina" / "fits").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_fit_refused_inside_its_lock_leaves_no_lock_file(tmp_path, monkeypatch, capsys):
    """Refusals that the fit itself makes, after the fit's folder was locked (here a recording too short for the
    validation blocks), left the lock file of a fit that never was: beside --out (an empty folder made for it too),
    beside the default folder in $NEUROZOO_HOME, and in the fit cache. A folder holding a fit keeps its lock file."""
    from neurozoo.datasets import synthetic_retina

    short = generate_recording(tmp_path / "data" / "short.h5", "whitenoise", n_train=200, n_test=200, n_repeats=2)
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", lambda kind, **sizes: short)
    (tmp_path / "empty").mkdir()
    for data, extra in ((str(short), ["--out", str(tmp_path / "fit")]), (str(short), ["--out", str(tmp_path / "empty")]),
                        (str(short), []), ("embedded:whitenoise", [])):
        assert zoo(["fit", "ln", "--data", data, "--quiet", *extra]) == 2
        assert "200 frames are too few for 5 blocks" in capsys.readouterr().err
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*.lock")] == []
    # a folder that holds a fit: refused (another model's checkpoint), its lock file stays beside it
    held = tmp_path / "held"
    held.mkdir()
    (held / "checkpoint.pt").write_bytes(b"")
    assert zoo(["fit", "ln", "--data", str(short), "--quiet", "--out", str(held)]) == 2
    assert (tmp_path / "held.lock").is_file()


def test_a_fit_folder_has_one_lock_however_it_is_spelt(tmp_path, monkeypatch):
    """`zoo fit ... --out .` locked `./.lock` (the name of `.` is empty) and `--out ../run` `./...lock`, while the same
    folder named in full locked `<parent>/<name>.lock`: two fits into one folder took no turns."""
    from pathlib import Path

    from neurozoo.retina.embedded_fit import fit_lock

    run = tmp_path / "run"
    (tmp_path / "other").mkdir()
    run.mkdir()
    (tmp_path / "link").symlink_to(run)
    monkeypatch.chdir(run)
    assert fit_lock(Path(".")) == fit_lock(Path("../other/../run")) == fit_lock(tmp_path / "link") == tmp_path / "run.lock"


def test_an_interrupted_zoo_fit_rerun_says_which_checkpoint_and_epoch_it_resumes(ln_recording, tmp_path, monkeypatch,
                                                                                  capsys):
    """Ctrl-C in the second epoch of `zoo fit --out`, then the same command again: the rerun resumed from the first
    epoch's checkpoint without a word (the user could not tell a resume from a fresh fit). It says so now; a finished
    fit read again (nothing to fit) does not claim to resume."""
    from neurozoo.retina import fit as fitting

    out = tmp_path / "fit"
    args = ["fit", "ln", "--data", str(ln_recording), "--out", str(out), "--epochs", "2", "--patience", "9", "--quiet"]
    correlation, calls = fitting._mean_correlation, []

    def interrupted_in_the_second_epoch(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return correlation(*args)

    monkeypatch.setattr(fitting, "_mean_correlation", interrupted_in_the_second_epoch)
    assert zoo(args) == 130
    capsys.readouterr()
    monkeypatch.setattr(fitting, "_mean_correlation", correlation)
    assert zoo(args) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == f"resuming {out / 'checkpoint.pt'}: 1 of at most 2 epochs fitted"
    # it fitted the second epoch, in a second run: the stopped run's first epoch and this one's, both timed
    assert re.search(r", \d+ s of fitting now, \d+ s in all over 2 runs \(resumed\)$", captured.out.splitlines()[-1])
    assert len(json.loads((out / "history.json").read_text())["history"]) == 2
    stretches = json.loads((out / "summary.json").read_text())["provenance"]["fit_stretches"]
    assert [stretch["epochs"] for stretch in stretches] == [[0, 1], [1, 2]]
    assert zoo(args) == 0
    captured = capsys.readouterr()
    assert "resuming" not in captured.err
    # its last line said "1 s of fitting": the reading's time, read as the fit's; now the fit's own
    assert re.search(r"the epoch limit reached\), a finished fit read, no epoch fitted now \(its fitting took \d+ s\)$",
                     captured.out.splitlines()[-1])


def test_zoo_fit_stopped_by_sigterm_says_how_to_resume_and_that_command_gives_the_uninterrupted_fit(
        ln_recording, tmp_path, monkeypatch, capsys, signal_in_epoch):
    """SIGTERM (a scheduler's preemption) killed `zoo fit` at once. Now the epoch under way finishes and writes its
    checkpoint, zoo fit says what was kept and the command that resumes it (without --no-resume, which would start
    afresh), and exits 130; that command gives the uninterrupted fit's weights, bit for bit. A SIGTERM during the
    held-out evaluation after the fit (chosen: finished and written whole, then exit 130, not ignored)."""
    import os
    import shlex
    import signal

    from neurozoo.retina import fit as fitting

    out, straight = tmp_path / "fit", tmp_path / "straight"
    settings = ["--epochs", "2", "--batch-size", "1000", "--patience", "9", "--quiet"]
    signal_in_epoch(1, signal.SIGTERM)
    assert zoo(["fit", "ln", "--data", str(ln_recording), "--out", str(out), "--no-resume", *settings]) == 130
    err = capsys.readouterr().err
    command = (f"zoo fit ln --data {ln_recording} --out {out} --epochs 2 --batch-size 1000 --patience 9 --seed 0 "
               f"--device cpu --quiet")
    assert err == (f"zoo fit: interrupted; fit stopped (signal 15) before its final weights: 1 of at most 2 epochs "
                   f"fitted, kept in {out / 'checkpoint.pt'}; to resume it: {command}\n")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "fit_time.json"]

    monkeypatch.undo()
    evaluate = fitting.evaluate

    def evaluate_under_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(fitting, "evaluate", evaluate_under_sigterm)
    assert zoo(shlex.split(command)[1:]) == 130
    captured = capsys.readouterr()
    assert f"saved in {out}" in captured.out
    assert captured.err.splitlines() == [
        f"resuming {out / 'checkpoint.pt'}: 1 of at most 2 epochs fitted",
        f"zoo fit: interrupted (signal 15) after the fit, during its held-out evaluation, which was finished first: "
        f"the results above are whole and saved in {out}"]
    assert json.loads((out / "summary.json").read_text())["weights_sha256"]["model.pt"]

    monkeypatch.undo()
    assert zoo(["fit", "ln", "--data", str(ln_recording), "--out", str(straight), *settings]) == 0
    resumed, whole = (torch.load(folder / "model.pt", weights_only=True) for folder in (out, straight))
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert (out / "heldout_metrics.csv").read_text() == (straight / "heldout_metrics.csv").read_text()


def test_a_training_split_of_counts_only_is_refused_naming_the_rates_to_add(ln_recording, tmp_path, capsys):
    """read_experiment takes binned counts alone (the GLM fits them); the others fit firing_rate_10ms, and the
    refusal said neither the file's dataset path nor its shape nor how to make it from the counts."""
    import shutil

    import h5py

    path = shutil.copy(ln_recording, tmp_path / "counts.h5")
    with h5py.File(path, "a") as f:
        for key in ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms"):
            del f[f"train/response/{key}"]
    expected = (f"{path}: dataset train/response/firing_rate_10ms: missing; expected shape (1, 5000) (cells, T) in "
                "spikes/s (train/response holds: binned); from the counts store "
                "firing_rates(train/response/binned)['firing_rate_10ms']")
    with pytest.raises(DataError, match=re.escape(expected)):
        fit(create_model("ln", 1), path, progress=False)
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.pt").exists() and not (tmp_path / "out" / "summary.json").exists()
    assert fit(create_model("glm", 1), path, epochs=1, progress=False).model is not None  # counts suffice for it


def test_zoo_fit_warns_before_the_fit_that_no_cell_passes_and_prints_no_nan_medians(ln_recording, tmp_path, capsys):
    """Test repeats that share nothing leave no cell past the explainable-variance filter: zoo fit printed
    'median held-out r nan (oracle nan, FEVE nan)' after the fit, and nothing before it."""
    import shutil

    import h5py

    path = shutil.copy(ln_recording, tmp_path / "unreliable.h5")
    with h5py.File(path, "a") as f:
        trials = f["test/repeats/cell01"]
        trials[...] = np.random.default_rng(0).exponential(float(np.mean(trials)), trials.shape)
    assert zoo(["fit", "ln", "--data", str(path), "--out", str(tmp_path / "out"), "--epochs", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert re.search(re.escape(f"zoo fit: warning: {path}: dataset test/repeats: no cell's explainable variance "
                               "reaches 0.15 of its total over the 10 repeats (cell01 ") + r"-?0\.\d{3}\)", captured.err)
    assert "ln on unreliable.h5: no median held-out r: none of the 1 cells has explainable variance >= 0.15" in captured.out
    assert "nan" not in captured.out.splitlines()[-1]


def test_zoo_fits_kept_epoch_line_names_the_monitor_the_stop_and_no_kept_epoch():
    from types import SimpleNamespace

    from neurozoo.retina.cli import kept_epoch_line

    history = [{"val_correlation": 0.5, "val_poisson": -60.0}, {"val_correlation": 0.7, "val_poisson": -68.94},
               {"val_correlation": 0.6, "val_poisson": -61.0}]
    result = SimpleNamespace(history=history, best_epoch=1, early_stopped=True, duration_s=12.4,
                             config=SimpleNamespace(monitor="poisson"), epochs_fitted=3, fit_duration_s=12.4,
                             fit_stretches=[{"epochs": [0, 3], "seconds": 12.4}], calibrated_now=False)
    assert kept_epoch_line(result) == ("fit: kept epoch 2 of 3 (history.json's epoch 1; best validation Poisson loss "
                                       "-68.94; stopped early: no validation gain for the patience), 12 s of fitting")
    result.config.monitor, result.early_stopped = "correlation", False
    assert "best validation r 0.700; the epoch limit reached" in kept_epoch_line(result)
    # resumed: this run's seconds and the fit's in all; read again: the fit's, not the reading's
    result.epochs_fitted, result.duration_s, result.fit_duration_s = 1, 4.2, 16.6
    result.fit_stretches = [{"epochs": [0, 2], "seconds": 12.4}, {"epochs": [2, 3], "seconds": 4.2}]
    assert kept_epoch_line(result).endswith("the epoch limit reached), 4 s of fitting now, 17 s in all over 2 runs "
                                            "(resumed)")
    result.epochs_fitted, result.duration_s = 0, 0.8
    assert kept_epoch_line(result).endswith("a finished fit read, no epoch fitted now (its fitting took 17 s)")
    result.fit_duration_s, result.fit_stretches[0]["seconds"] = None, None  # begun before fit times were kept
    assert kept_epoch_line(result).endswith("no epoch fitted now (its time in all unknown: begun before fit times "
                                            "were kept (fit_time.json))")
    result.epochs_fitted = 1
    assert kept_epoch_line(result).endswith("1 s of fitting now, its time in all unknown: begun before fit times were "
                                            "kept (fit_time.json)")
    result.best_epoch = -1  # every validation score NaN: nothing kept by it
    assert kept_epoch_line(result) == ("fit: 3 epochs, none kept by its validation score; 1 s of fitting now, its time "
                                       "in all unknown: begun before fit times were kept (fit_time.json)")


def test_a_zoo_fit_resumed_between_its_last_epoch_and_its_output_calibration_says_it_calibrated_not_read(
        scaled_bncnn_recording, tmp_path, capsys, signal_in_epoch):
    """A BN-CNN fit stopped by SIGTERM in its last epoch keeps a checkpoint of every epoch and no output calibration;
    the rerun fits no epoch but makes the calibration, a run of fitting (its stretch [1, 1], timed). Its last line said
    "a finished fit read, no epoch fitted now": it says the calibration was this run's fitting now, and only a third
    run, which reads the calibration from the checkpoint, is a finished fit read."""
    import signal

    path, _ = scaled_bncnn_recording
    out = tmp_path / "fit"
    args = ["fit", "bncnn", "--data", str(path), "--out", str(out), "--epochs", "1", "--batch-size", "500",
            "--val-fraction", "0.3", "--quiet"]

    def fit_line():  # the kept epoch's line, which ends with the fitting time (notes on the metrics may follow it)
        line, = (line for line in capsys.readouterr().out.splitlines() if line.startswith("fit: kept epoch"))
        return line

    signal_in_epoch(1, signal.SIGTERM)
    assert zoo(args) == 130
    assert "1 of at most 1 epochs fitted" in capsys.readouterr().err
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    assert (saved["epoch"], saved["calibration"]) == (1, None)  # every epoch, no calibration
    stopped = json.loads((out / "fit_time.json").read_text())["current"][-1]
    assert stopped["epochs"] == [0, 1]

    assert zoo(args) == 0
    last = fit_line()
    summary = json.loads((out / "summary.json").read_text())["provenance"]
    (first, calibration) = summary["fit_stretches"]
    assert (first, calibration["epochs"]) == ({"epochs": [0, 1], "seconds": round(stopped["seconds"], 2)}, [1, 1])
    assert calibration["seconds"] > 0 and torch.load(out / "checkpoint.pt", weights_only=False)["calibration"]
    assert re.search(r"the epoch limit reached\), no epoch fitted now, its output calibration only: \d+ s of fitting "
                     r"now, \d+ s in all over 2 runs \(resumed\)$", last), last
    assert summary["fit_duration_s"] == pytest.approx(first["seconds"] + calibration["seconds"], abs=0.011)

    assert zoo(args) == 0  # the calibration in the checkpoint: read, nothing made
    last = fit_line()
    took = round(summary["fit_duration_s"])
    assert last.endswith(f"the epoch limit reached), a finished fit read, no epoch fitted now (its fitting took "
                         f"{took} s)"), last
    assert json.loads((out / "summary.json").read_text())["provenance"]["fit_stretches"] == summary["fit_stretches"]


def test_the_kept_epochs_validation_r_is_the_best_epochs_not_the_last_and_ties_keep_the_first(ln_recording,
                                                                                                monkeypatch):
    """The fit returns the best epoch's weights and reports that epoch's validation r. The tests above stop right after
    their best epoch, where the last epoch's r is the best's (a fit reporting the last epoch's r, or keeping the last of
    tied epochs, passed them). Here epoch 1 is best (0.7), epoch 2 ties it and epoch 3 falls: the kept epoch is 1,
    its r 0.7, and the returned weights are epoch 1's (the checkpoint's best_state), not the last epoch's."""
    import neurozoo.retina.fit as fit_module

    scores = iter([0.5, 0.7, 0.7, 0.65])
    monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(scores))
    weights = []
    real_predict = fit_module._predict_targets

    def predict_and_remember(model, *args, **kwargs):  # each epoch's weights, as validated
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_predict(model, *args, **kwargs)

    monkeypatch.setattr(fit_module, "_predict_targets", predict_and_remember)
    result = fit(create_model("ln", n_cells=1, rank=1), ln_recording, epochs=10, patience=2, min_delta=0.01,
                 progress=False, max_steps_per_epoch=1)
    assert [h["val_correlation"] for h in result.history] == [0.5, 0.7, 0.7, 0.65]
    assert result.best_epoch == 1 and result.best_val_correlation == 0.7
    kept = result.model.state_dict()
    assert any(not torch.equal(weights[1][k], weights[3][k]) for k in kept)  # the epochs' weights differ
    assert all(torch.equal(kept[k].cpu(), weights[1][k].cpu()) for k in kept)


def test_the_fit_seed_draws_the_batch_order(ln_recording, monkeypatch):
    """``seed`` orders each epoch's training batches: one seed gives the same order, another seed another one, in
    every epoch. (A batch order drawn without the seed passed every test: they compared fits of one seed, and the
    weights still differ between seeds through the seeded initialisation.)"""
    import neurozoo.retina.fit as fit_module

    orders = []
    real_steps = fit_module._train_steps

    def steps_and_remember(model, d, optimizer, batches, *args):
        orders.append([tuple(np.asarray(b).ravel().tolist()) for b in batches])
        return real_steps(model, d, optimizer, batches, *args)

    monkeypatch.setattr(fit_module, "_train_steps", steps_and_remember)
    for seed in (0, 0, 1):
        fit(create_model("ln", n_cells=1, rank=1), ln_recording, epochs=2, patience=5, seed=seed, progress=False,
            max_steps_per_epoch=3)
    assert len(orders) == 6 and orders[0] != orders[1]  # two epochs of one fit: two orders
    assert orders[:2] == orders[2:4]  # seed 0 twice
    assert orders[4] != orders[0] and orders[5] != orders[1]  # seed 1


def test_the_validation_score_is_the_mean_over_cells_of_scipys_r_skipping_cells_without_one():
    """Early stopping watches the mean over cells of the per-cell Pearson r (scipy.stats.pearsonr here), a cell
    without an r (a constant prediction) left out: not the median, which differs here (0.5 against a mean near
    0.17)."""
    from scipy.stats import pearsonr

    from neurozoo.retina.fit import _mean_correlation

    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 4))
    pred = np.column_stack([2 * target[:, 0] + 1, -target[:, 1], target[:, 2] + rng.normal(size=50), np.ones(50)])
    r = [pearsonr(pred[:, c], target[:, c])[0] for c in range(3)]
    assert 0.3 < r[2] < 0.9
    value = _mean_correlation(torch.from_numpy(pred), torch.from_numpy(target))
    assert value == pytest.approx(np.mean(r), abs=1e-12)


def test_a_gain_of_exactly_min_delta_is_progress(ln_recording, monkeypatch):
    """"A gain of ``min_delta``" resets the patience, a gain of exactly ``min_delta`` included (scores that are binary
    fractions, so the sums are exact): with patience 1 the fit runs on through gains of 0.25 and stops after the
    first epoch without one. (A rule needing more than ``min_delta`` passed every test.)"""
    import neurozoo.retina.fit as fit_module

    scores = iter([0.25, 0.5, 0.75, 0.5, 0.9])
    monkeypatch.setattr(fit_module, "_mean_correlation", lambda pred, target: next(scores))
    result = fit(create_model("ln", n_cells=1, rank=1), ln_recording, epochs=10, patience=1, min_delta=0.25,
                 progress=False, max_steps_per_epoch=1)
    assert [h["val_correlation"] for h in result.history] == [0.25, 0.5, 0.75, 0.5]
    assert result.best_epoch == 2 and result.early_stopped
