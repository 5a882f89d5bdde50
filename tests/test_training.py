"""The ImageNet training loop on a tiny synthetic folder: learning, exact resume, atomic
checkpoints, bf16 autocast + channels-last and torch.compile on CPU, the ``zoo train`` command."""
import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from neurozoo.convrnn.training import TrainConfig, Trainer, load_checkpoint, read_metrics, save_checkpoint, train
from neurozoo.convrnn.training.evaluation import topk_correct
from neurozoo.convrnn.training.loss import unrolled_loss
from neurozoo.convrnn.training.optim import LRFactor
from neurozoo.convrnn.training.synthetic import write_image_folder
from neurozoo.datasets.errors import DataError, UserFacingError

# Tiny real ConvRNN: 8..64 channels, 8 steps (first image-dependent readout at step 7). Without
# normalisation because 32 px images leave conv5/conv6 at 1x1, where GroupNorm erases the signal.
TINY = {"width_multiplier": 0.125, "n_steps": 8, "image_steps": 8, "norm": "none"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), n_classes=4, per_class=8, val_per_class=4, size=32)


def config(data, out, **kw):
    base = dict(model="rgc_shallow", data=str(data), out=str(out), epochs=2, batch_size=8, lr=3e-3,
                optimizer="adamw", weight_decay=1e-4, schedule="cosine", warmup_epochs=0.5, image_size=32,
                workers=0, seed=0, log_every=1, quiet=True, overrides=dict(TINY))
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("lr", [None, 0.1])
def test_the_default_learning_rate_trains_rgc_intermediate_where_the_old_one_diverged(data, tmp_path, lr):
    """zoo train's defaults (SGD, momentum 0.9, no warm-up) on rgc_intermediate, whose layers have no normalisation:
    at the old default --lr 0.1 the loss was nan within 4-6 steps (here, on a CPU, and at step 3 on an H200 at 224 px,
    batch 64), so a first run with the defaults stopped at once; at the default 0.01 the same 8 steps train."""
    settings = dict(model="rgc_intermediate", data=str(data), out=str(tmp_path), epochs=2, batch_size=8, image_size=32,
                    workers=0, quiet=True, log_every=1, overrides={"width_multiplier": 0.125})
    trainer = Trainer(TrainConfig(**settings, **({} if lr is None else {"lr": lr})))
    if lr is not None:
        fit_raises(trainer, FloatingPointError, match="loss is nan")  # the training or the validation loss
        return
    try:
        trainer.fit()
    finally:
        trainer.close()
    losses = [row["loss"] for row in read_metrics(tmp_path / "metrics.jsonl", kind="iter")]
    assert len(losses) == 8 and all(np.isfinite(losses)) and max(losses) < 3.0


def test_loss_falls_and_val_accuracy_beats_chance(data, tmp_path):
    final = train(config(data, tmp_path, epochs=4, schedule="constant", warmup_epochs=0))
    iters = read_metrics(tmp_path / "metrics.jsonl", kind="iter")
    assert len(iters) == 16 and [r["step"] for r in iters] == list(range(1, 17))
    initial = iters[0]["loss"]
    assert abs(initial - math.log(4)) < 0.3
    assert final["loss"] < 0.7 * initial
    assert final["val_top1"] >= 75.0  # chance is 25 %
    epochs = read_metrics(tmp_path / "metrics.jsonl", kind="epoch")
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    for key in ("epoch", "step", "loss", "lr", "top1", "top5", "images_per_s", "val_top1", "val_top5"):
        assert key in epochs[-1]
    assert epochs[-1]["top5"] == 100.0  # 4 classes: the target is always in the top 5
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["num_classes"] == 4 and run["train_images"] == 32 and len(run["train_files_sha256"]) == 64
    state = load_checkpoint(tmp_path / "best.pth")
    assert state["classes"] == ["n00000001", "n00000002", "n00000003", "n00000004"]


def test_run_json_locates_a_relative_data_folder(data, tmp_path, monkeypatch):
    """run.json kept --data as given (config.data): a run on a relative folder named a path that said where the
    images were only from the folder zoo train ran in. It keeps the resolved folder too (data_absolute), as zoo fit's
    summary.json does; config.data stays as given."""
    monkeypatch.chdir(data.parent)
    train(config(data.name, tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["data"] == data.name and run["data_absolute"] == str(data.resolve())


def replace_an_image(folder):
    """Replace ``folder``'s first training image by another class's image under its name: its path and label stay,
    its pixels, bytes and size do not."""
    images = sorted((folder / "train").glob("*/*"))
    size = images[0].stat().st_size
    images[0].write_bytes(images[-1].read_bytes())
    assert images[0].stat().st_size != size


def test_run_json_data_checksums_change_when_an_image_is_replaced_under_its_name(data, tmp_path):
    """train_files_sha256 hashed each image's relative path and label only: a training image replaced by another
    (another class's) under its name left run.json's record of the data unchanged. It covers each file's size too
    (files_checksum "sizes"), the checksum every rank compares."""
    import shutil

    from neurozoo.convrnn.training.file_checksums import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet

    shutil.copytree(data, tmp_path / "data")
    recorded = []
    for run in ("before", "after"):
        if run == "after":
            replace_an_image(tmp_path / "data")
        train(config(tmp_path / "data", tmp_path / run, epochs=1, max_steps_per_epoch=1))
        recorded.append(json.loads((tmp_path / run / "run.json").read_text()))
    splits = open_imagenet(data)  # the untouched folder: the first run's data
    assert [r["files_checksum"] for r in recorded] == ["sizes", "sizes"]
    assert recorded[0]["train_files_sha256"] == file_list_sha256(splits["train"], sizes=True)
    assert recorded[0]["val_files_sha256"] == file_list_sha256(splits["val"], sizes=True)
    assert recorded[0]["train_files_sha256"] != recorded[1]["train_files_sha256"]
    assert recorded[0]["val_files_sha256"] == recorded[1]["val_files_sha256"]


def test_a_resume_on_other_files_than_the_part_before_says_so_and_each_part_keeps_its_checksums(data, tmp_path):
    """A run resumed on a train/ whose image was replaced under its name (as zoo train advises for a corrupt one, or
    another copy of the data) trained on without a word, and run.json kept the latest part's data only. The resume
    now says so (not refused: the replacement is the remedy) and each segment keeps its checksums; a resume on the
    same files says nothing of them."""
    import shutil
    import warnings

    shutil.copytree(data, tmp_path / "data")
    train(config(tmp_path / "data", tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*has other files in")
        train(config(tmp_path / "data", tmp_path / "run", epochs=2, max_steps_per_epoch=1, resume="auto"))
    replace_an_image(tmp_path / "data")
    with pytest.warns(UserWarning, match=rf"^--resume {tmp_path / 'run' / 'last.pth'}: --data {tmp_path / 'data'} "
                                         r"has other files in train/ than the part of the run before this "
                                         r"one had \(sha256 of their relative paths, labels and sizes: an image "
                                         r"replaced, edited, added or removed\); run\.json's segments"):
        train(config(tmp_path / "data", tmp_path / "run", epochs=3, max_steps_per_epoch=1, resume="auto"))
    segments = json.loads((tmp_path / "run" / "run.json").read_text())["segments"]
    train_sums = [s["train_files_sha256"] for s in segments]
    assert train_sums[0] == train_sums[1] != train_sums[2]
    assert len({s["val_files_sha256"] for s in segments}) == 1


def test_zoo_train_hash_images_records_the_sha256_of_every_images_bytes(data, tmp_path, capsys):
    """--hash-images: run.json's checksums cover each image's bytes (an image edited to the same size changes them),
    files_checksum says so, and --help says that every image is read."""
    from neurozoo.convrnn.training.file_checksums import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet
    from neurozoo.leaderboard.cli import main

    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--epochs", "1", "--batch-size", "8",
            "--image-size", "32", "--workers", "0", "--max-steps-per-epoch", "1", "--quiet", "--hash-images",
            *(f"--set={key}={value}" for key, value in TINY.items())]
    assert main(args) == 0
    run = json.loads((tmp_path / "run.json").read_text())
    splits = open_imagenet(data)
    assert run["files_checksum"] == "contents" and run["config"]["hash_images"] is True
    assert run["train_files_sha256"] == file_list_sha256(splits["train"], contents=True)
    assert run["val_files_sha256"] == file_list_sha256(splits["val"], contents=True)
    assert run["segments"][0]["train_files_sha256"] == run["train_files_sha256"]
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "reads ALL images once before training" in " ".join(capsys.readouterr().out.split())


#: ``zoo train`` that sends itself SIGTERM as --hash-images reads the first image; says how many it read
SIGTERM_WHILE_HASHING = """
import atexit, os, signal, sys
from neurozoo.datasets import provenance
from neurozoo.leaderboard.cli import main

sha256_file, hashed = provenance.sha256_file, []


def signalled(path):
    if not hashed:
        os.kill(os.getpid(), signal.SIGTERM)
    hashed.append(path)
    return sha256_file(path)


provenance.sha256_file = signalled
atexit.register(lambda: print(f"images hashed: {len(hashed)}"))
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_while_hash_images_reads_the_images_stops_at_once_writing_nothing(data, tmp_path):
    """A SIGTERM as --hash-images read every image (minutes on ImageNet) waited for all of them, the model's building
    and the first step, whose checkpoint it then wrote. The setup writes nothing before its log and run.json, so the
    stop is now taken at once there (datasets.termination.stopping_at_once): no other image is read, exit 130 saying
    that nothing was kept, and --out holds no file."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    stopped = subprocess.run(
        [sys.executable, "-c", SIGTERM_WHILE_HASHING, "train", "rgc_shallow", "--data", str(data), "--out",
         str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--workers", "0",
         "--hash-images", *(f"--set={key}={value}" for key, value in TINY.items())],
        capture_output=True, text=True, timeout=120, env=env)
    assert (stopped.returncode, stopped.stdout.splitlines()[-1], stopped.stderr.splitlines()[-1]) == (
        130, "images hashed: 0", f"zoo train: interrupted; no checkpoint had been written, so {tmp_path / 'run'} "
                                 "holds none to resume"), stopped.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "run").rglob("*")) == []


def test_hash_images_shows_its_progress_on_a_terminal(data, tmp_path, capsys, monkeypatch):
    """--hash-images read every image without a word but one line (minutes on ImageNet): a progress bar per split
    now counts the images read, on a terminal (as the epochs' bars; none with --quiet)."""
    from neurozoo.convrnn.training import file_checksums

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(file_checksums, "CONTENTS_CHECKSUMS", {})  # an earlier test's run read these images: not again
    trainer = Trainer(config(data, tmp_path, hash_images=True, quiet=False))
    trainer.close()
    err = capsys.readouterr().err
    # its first draw (later ones come at most every 0.1 s, and the bar is cleared at the end: leave=False)
    assert "hashing train:   0%|          | 0/32 [" in err and "hashing val:   0%|          | 0/16 [" in err, err


def test_run_json_locates_every_part_of_a_run_resumed_from_another_folder(data, tmp_path, monkeypatch):
    """A run started in one folder with a relative --data and --out and resumed from another (its --data, --out
    typed relative to that one) recorded each part's paths as typed, without the folder they were typed in, and the
    data only of the latest part. Each segment keeps its working directory, data folder resolved and data checksums,
    from which every path in its config reads."""
    import shutil

    shutil.copytree(data, tmp_path / "a" / "data")
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    train(config("data", "run", epochs=1, max_steps_per_epoch=1))
    monkeypatch.chdir(tmp_path / "b")
    train(config("../a/data", "../a/run", epochs=2, max_steps_per_epoch=1, resume="auto"))
    run = json.loads((tmp_path / "a" / "run" / "run.json").read_text())
    first, second = run["segments"]
    assert (first["working_directory"], second["working_directory"]) == (str(tmp_path / "a"), str(tmp_path / "b"))
    for segment in (first, second):
        here = Path(segment["working_directory"])
        assert (here / segment["config"]["data"]).resolve() == (tmp_path / "a" / "data").resolve()
        assert segment["data_absolute"] == str((tmp_path / "a" / "data").resolve())
        assert (here / segment["config"]["out"]).resolve() == (tmp_path / "a" / "run").resolve()
        assert segment["files_checksum"] == "sizes" and segment["train_files_sha256"] == run["train_files_sha256"]
    assert (Path(second["working_directory"]) / second["resumed_from"]["checkpoint"]).resolve() == \
        (tmp_path / "a" / "run" / "last.pth").resolve()
    assert run["finished"] is True and run["working_directory"] == str(tmp_path / "b")


def test_a_resumed_run_json_of_the_version_before_data_checksum_kinds_keeps_its_last_parts_data(data, tmp_path):
    """run.json's top level is rewritten by each part: resumed, the data checksums of a run.json written before the
    segments kept theirs (the paths and labels only: no files_checksum) were lost with it. The last earlier segment
    takes them, as "names"."""
    import warnings

    from neurozoo.convrnn.training.file_checksums import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet

    train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))
    run = json.loads((tmp_path / "run.json").read_text())
    names = {f"{split}_files_sha256": file_list_sha256(folder) for split, folder in open_imagenet(data).items()}
    for record in (run, run["segments"][0]):
        for key in ("files_checksum", "working_directory", "data_absolute", "train_files_sha256", "val_files_sha256"):
            record.pop(key, None)
    run.update(names, data_absolute=str(data))  # the version before kept data_absolute and the names' checksums
    (tmp_path / "run.json").write_text(json.dumps(run))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*has other files in")  # the same files, compared by their names
        train(config(data, tmp_path, epochs=2, max_steps_per_epoch=1, resume="auto"))
    segments = json.loads((tmp_path / "run.json").read_text())["segments"]
    assert [s["files_checksum"] for s in segments] == ["names", "sizes"]
    assert segments[0]["train_files_sha256"] == names["train_files_sha256"]
    assert segments[0]["data_absolute"] == str(data) and "working_directory" not in segments[0]


def test_run_json_records_the_graph_a_spec_file_trained(data, tmp_path):
    """run.json named a spec file by its path alone (config.model 'tiny.yaml'): once the file was edited, nothing
    said which graph the checkpoint's weights belong to. It keeps the spec trained (overrides and classes applied),
    from which the weights load into the same model."""
    from neurozoo import convrnn

    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\nn_steps: 4\nimage_steps: 4\nlayers:\n"
                    "- {name: conv1, channels: 8, kernel: 3, stride: 2}\n"
                    "- {name: conv2, channels: 8, kernel: 3, stride: 1, cell: {kind: timedecay, memory_decay: 0.5}}\n"
                    "feedback: [{source: conv2, target: conv1}]\n")
    train(config(data, tmp_path / "run", model=str(spec), epochs=1, overrides={"width_multiplier": 0.5},
                 max_steps_per_epoch=1))
    spec.write_text(spec.read_text().replace("memory_decay: 0.5", "memory_decay: 0.9"))  # edited afterwards
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["spec"]
    assert recorded["layers"][1]["cell"] == {"kind": "timedecay", "memory_decay": 0.5}
    assert recorded["num_classes"] == 4 and recorded["layers"][0]["channels"] == 4 and recorded["feedback"]
    model = convrnn.create_model(recorded)
    model.load_state_dict(load_checkpoint(tmp_path / "run" / "best.pth")["model"])


def test_a_data_folder_without_val_warns_that_nothing_is_validated(data, tmp_path):
    """val/ is optional, and a folder holding its validation images under another name (validation/) trained
    without a word: no val_top1, no best.pth, which `zoo score --checkpoint OUT/best.pth` then did not find."""
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(data / "train", folder / "train")
    shutil.copytree(data / "val", folder / "validation")
    with pytest.warns(UserWarning, match=r"has no val/ folder: no validation, so no val_top1 and no best\.pth "
                                         r"\(last\.pth only\); its other folders: validation"):
        train(config(folder, tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    assert not (tmp_path / "run" / "best.pth").exists() and (tmp_path / "run" / "last.pth").exists()


def _spec_file_trainer(data, tmp_path):
    """A tiny spec file and a function making a Trainer of it into tmp_path/run (keywords: the config's)."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\nn_steps: 4\nimage_steps: 4\nlayers:\n"
                    "- {name: conv1, channels: 8, kernel: 3, stride: 2}\n"
                    "- {name: conv2, channels: 8, kernel: 3, stride: 1, cell: {kind: timedecay, memory_decay: 0.5}}\n")

    def trainer(**kw):
        return Trainer(config(data, tmp_path / "run", model=str(spec), warmup_epochs=0, max_steps_per_epoch=1,
                              overrides={}, **kw))

    return spec, trainer


def test_a_resume_that_builds_another_graph_is_refused(data, tmp_path):
    """The spec file edited between the runs (n_steps; a time-decay cell's initial decay), so that the weights still
    fit: the resumed run trained the other graph on from the checkpoint's weights without a word."""
    spec, trainer = _spec_file_trainer(data, tmp_path)

    first = trainer()
    first.fit(until_epoch=1)
    first.close()
    spec.write_text(spec.read_text().replace("n_steps: 4", "n_steps: 6"))
    with pytest.raises(UserFacingError, match=r"--resume .*last\.pth: the checkpoint was trained as another graph than this run "
                                              r"builds from .*tiny\.yaml.*: n_steps was 4, is 6"):
        trainer(resume="auto")
    spec.write_text(spec.read_text().replace("n_steps: 6", "n_steps: 4").replace("0.5}", "0.7}"))
    with pytest.raises(UserFacingError, match=r"layer conv2 cell was \{'kind': 'timedecay', 'memory_decay': 0\.5\}"):
        trainer(resume="auto")
    spec.write_text(spec.read_text().replace("0.7}", "0.5}"))  # the graph it was trained as resumes
    trainer(resume="auto").close()


def test_a_resume_of_the_same_graph_passes_whatever_its_labels_or_the_fields_a_later_version_added(data, tmp_path):
    """The resume check compared the spec dictionaries whole: a spec file whose description (or name) was edited,
    which builds the same graph, was refused as "another graph"; and a checkpoint written before a GraphSpec field
    existed (one a later version adds, its default the former behaviour) was refused naming that field, or, for a
    field whose default is None, failed with a StopIteration traceback."""
    spec, trainer = _spec_file_trainer(data, tmp_path)

    first = trainer()
    first.fit(until_epoch=1)
    first.close()
    spec.write_text(spec.read_text().replace("name: tiny", "name: tiny_v2\ndescription: the tiny net, documented"))
    trainer(resume="auto").close()
    for path in (tmp_path / "run").glob("*.pth"):  # as a version before these fields wrote it
        state = load_checkpoint(path)
        for key in ("readout_kernel", "timm_backbone"):
            del state["spec"][key]
        torch.save(state, path)
    trainer(resume="auto").close()
    spec.write_text(spec.read_text().replace("n_steps: 4", "n_steps: 6"))  # another graph: still refused
    with pytest.raises(UserFacingError, match=r"n_steps was 4, is 6"):
        trainer(resume="auto")


def test_resume_after_interruption_equals_uninterrupted_run(data, tmp_path, straight, workers=1):
    """Stopped after epoch 1 and resumed with a loading worker: the weights and metric rows of the uninterrupted run
    (``straight``: the same settings without workers; augmentation is seeded per image, so the number of loading
    workers does not change a run)."""
    first = Trainer(config(data, tmp_path / "resumed", workers=workers))
    first.fit(until_epoch=1)  # as if killed during epoch 2, after the epoch-1 checkpoint
    first.close()
    run = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert run["finished"] is False and run["final_epoch"] is None  # a cut-short run must not look finished
    resumed = Trainer(config(data, tmp_path / "resumed", workers=workers, resume="auto"))
    assert resumed.epoch == 1 and resumed.global_step == 4
    resumed.fit()
    resumed.close()
    for folder in (straight[2], tmp_path / "resumed"):  # a resumed run that completes is finished like an uninterrupted one
        run = json.loads((folder / "run.json").read_text())
        assert run["finished"] is True and run["final_epoch"] == 2
        assert run["environment"]["numpy"] == np.__version__ and run["environment"]["torch"] == torch.__version__
    assert run["resumed_from"] == str(tmp_path / "resumed" / "last.pth")
    same_run(tmp_path / "resumed", straight)

    # the RNG state in the checkpoint is what makes this work: without it, augmentation differs
    state = load_checkpoint(tmp_path / "resumed" / "last.pth")
    assert state["epoch"] == 2 and len(state["rng"]) == 1 and "loader" in state["rng"][0]


def test_run_json_keeps_the_settings_of_every_part_of_a_resumed_run(data, tmp_path):
    """A resume rewrote run.json with its own settings: a run trained in float32 and resumed with --amp (or the
    reverse, or with --fast, or by other code) said it had been trained in bf16 throughout, and a resume that found
    nothing left to train replaced the record of the run that did."""
    first = Trainer(config(data, tmp_path, max_steps_per_epoch=1))
    first.fit(until_epoch=1)
    first.close()
    with pytest.warns(UserWarning, match=r"last\.pth: the checkpoint's steps were trained in float32, this run trains "
                                         r"on in bfloat16 autocast; run\.json's segments"):
        resumed = Trainer(config(data, tmp_path, max_steps_per_epoch=1, resume="auto", amp=True, fast=True))
    resumed.fit()
    resumed.close()
    Trainer(config(data, tmp_path, max_steps_per_epoch=1, resume="auto", amp=True)).close()  # nothing left to train
    run = json.loads((tmp_path / "run.json").read_text())
    segments = [(s["start_step"], s["config"]["amp"], s["config"]["fast"], s["config"]["resume"])
                for s in run["segments"]]
    assert segments == [(0, False, False, None), (1, True, True, "auto"), (2, True, False, "auto")]
    assert run["config"] == run["segments"][-1]["config"] and run["segments"][0]["code_version"] == run["code_version"]

    del run["segments"]  # as a version before segments wrote it: its top level stands for the steps before
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.warns(UserWarning, match="trained in bfloat16 autocast, this run trains on in float32"):
        Trainer(config(data, tmp_path, max_steps_per_epoch=1, resume="auto")).close()
    segments = json.loads((tmp_path / "run.json").read_text())["segments"]
    assert [(s["start_step"], s["config"]["amp"]) for s in segments] == [(None, True), (2, False)]
    assert [s["resumed_from"] for s in segments] == [{"checkpoint": str(tmp_path / "last.pth")}, {
        "checkpoint": str(tmp_path / "last.pth"), "epoch": 2, "epoch_steps": 0, "step": 2,
        "written_at": segments[1]["resumed_from"]["written_at"]}]


def test_a_resume_beside_an_unreadable_run_json_says_so_and_keeps_the_file(data, tmp_path):
    """A run.json cut short (a full disk, a hand edit) was overwritten by the resume without a word, and with it the
    record of every earlier segment: the resume warns, naming the file, and keeps it as run.json.unreadable."""
    first = Trainer(config(data, tmp_path, max_steps_per_epoch=1))
    first.fit(until_epoch=1)
    first.close()
    damaged = (tmp_path / "run.json").read_text()[:200]
    (tmp_path / "run.json").write_text(damaged)
    with pytest.warns(UserWarning, match=rf"--resume: {re.escape(str(tmp_path / 'run.json'))} is unreadable "
                                         r"\(JSONDecodeError: .*\): its record of the run's earlier segments .* kept as "
                                         rf"{re.escape(str(tmp_path / 'run.json.unreadable'))}$"):
        Trainer(config(data, tmp_path, max_steps_per_epoch=1, resume="auto")).close()
    assert (tmp_path / "run.json.unreadable").read_text() == damaged
    segments = json.loads((tmp_path / "run.json").read_text())["segments"]
    assert [s["start_step"] for s in segments] == [1]


def test_run_json_keeps_every_checkpoint_a_run_resumed_from(data, tmp_path):
    """A run resumed twice (from last.pth at step 3, then from a copy of it at step 6) kept only the latest resume
    (the top-level resumed_from): now each segment names the checkpoint it started from, with its position and the
    time it was written, and the time the part started. A run.json of the version before (the top level only) gives
    its segments what it knew: the latest resume, the others' --resume (auto: OUT/last.pth)."""
    import shutil

    from neurozoo.convrnn.training.run_record import utc_time

    last, kept = tmp_path / "last.pth", tmp_path / "kept.pth"
    crash_before_step(config(data, tmp_path, checkpoint_every=3), 4)
    written = [utc_time(last.stat().st_mtime)]
    crash_before_step(config(data, tmp_path, checkpoint_every=3, resume="auto"), 7)
    shutil.copy2(last, kept)
    written.append(utc_time(kept.stat().st_mtime))
    train(config(data, tmp_path, checkpoint_every=3, resume=str(kept)))
    run = json.loads((tmp_path / "run.json").read_text())
    assert [s["resumed_from"] for s in run["segments"]] == [
        None, {"checkpoint": str(last), "epoch": 0, "epoch_steps": 3, "step": 3, "written_at": written[0]},
        {"checkpoint": str(kept), "epoch": 1, "epoch_steps": 2, "step": 6, "written_at": written[1]}]
    assert [(s["start_step"], s["outcome"]) for s in run["segments"]] == [(0, "stopped"), (3, "stopped"),
                                                                         (6, "finished")]
    started = [s["started_at"] for s in run["segments"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in started) and started == sorted(started)
    assert written[0] <= started[1] and written[1] <= started[2] and run["resumed_from"] == str(kept)

    for segment in run["segments"]:  # as the version before wrote it
        del segment["resumed_from"], segment["started_at"]
    (tmp_path / "run.json").write_text(json.dumps(run))
    Trainer(config(data, tmp_path, checkpoint_every=3, resume="auto")).close()  # nothing left to train
    segments = json.loads((tmp_path / "run.json").read_text())["segments"]
    assert [s["resumed_from"] for s in segments[:3]] == [None, {"checkpoint": str(last), "step": 3},
                                                         {"checkpoint": str(kept), "step": 6}]
    assert segments[3]["resumed_from"] == {"checkpoint": str(last), "epoch": 2, "epoch_steps": 0, "step": 8,
                                           "written_at": utc_time(last.stat().st_mtime)}


def train_command(data, out, epochs, entry=("-m", "neurozoo.convrnn.training")):
    """``python -m neurozoo.convrnn.training`` (or the script ``entry``) with the settings of ``config``."""
    settings = config(data, out, epochs=epochs)
    return [sys.executable, *entry, "rgc_shallow", "--data", str(data), "--out", settings.out,
            "--epochs", str(epochs), "--batch-size", "8", "--lr", str(settings.lr), "--optimizer", "adamw",
            "--weight-decay", str(settings.weight_decay), "--warmup-epochs", str(settings.warmup_epochs),
            "--image-size", "32", "--workers", "0", "--log-every", "1", "--quiet", "--device", "cpu"] + \
           [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]


def test_resume_after_sigkill_equals_uninterrupted_run(data, tmp_path):
    """``zoo train`` killed with SIGKILL mid-epoch, then resumed: the same weights and metrics as one run."""
    args = train_command(data, tmp_path / "killed", epochs=5)
    process = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and any(r["kind"] == "iter" and r["epoch"] == 2 for r in read_metrics(metrics)):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert load_checkpoint(tmp_path / "killed" / "last.pth")["epoch"] < 5  # it really was cut short

    resumed = train(config(data, tmp_path / "killed", epochs=5, resume="auto"))
    straight = train(config(data, tmp_path / "straight", epochs=5))
    assert resumed == {**straight, **{k: resumed[k] for k in ("images_per_s", "val_images_per_s", "seconds")}}
    a = load_checkpoint(tmp_path / "straight" / "last.pth")["model"]
    b = load_checkpoint(tmp_path / "killed" / "last.pth")["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)
    drop = ("images_per_s", "val_images_per_s", "seconds")
    rows = [[{k: v for k, v in r.items() if k not in drop} for r in read_metrics(tmp_path / run / "metrics.jsonl")]
            for run in ("straight", "killed")]
    assert rows[0] == rows[1] and len(rows[0]) == 25  # rows logged after the last checkpoint were dropped


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """An uninterrupted two-epoch run (4 steps each), without loading workers: its weights, metric rows and folder."""
    out = tmp_path_factory.mktemp("straight")
    train(config(data, out))
    return load_checkpoint(out / "last.pth")["model"], read_metrics(out / "metrics.jsonl"), out


def same_run(out, straight):
    """The run in ``out`` ended with the weights of ``straight`` bit for bit, and logged the same rows."""
    drop = ("images_per_s", "val_images_per_s", "seconds")
    weights = load_checkpoint(out / "last.pth")["model"]
    assert all(torch.equal(straight[0][name], weights[name]) for name in straight[0])
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(out / "metrics.jsonl")] == \
           [{k: v for k, v in r.items() if k not in drop} for r in straight[1]]


class Crash(Exception):
    pass


def fit_raises(trainer, error, match=None):
    """``trainer.fit()`` raises ``error`` (matching ``match``); the trainer is closed either way."""
    try:
        with pytest.raises(error, match=match):
            trainer.fit()
    finally:
        trainer.close()


def crash_before_step(cfg, step: int) -> None:
    """Train ``cfg`` until a crash raised in the forward pass of training step ``step`` (1-based)."""
    crashed = Trainer(cfg)

    def crash(module, inputs):
        if module.training and crashed.global_step == step - 1:
            raise Crash

    crashed.train_model.register_forward_pre_hook(crash)
    fit_raises(crashed, Crash)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_crashed_mid_epoch_resumes_from_its_last_step_checkpoint_to_the_same_weights(data, tmp_path, straight,
                                                                                          workers, monkeypatch):
    """--checkpoint-every 3: a run that dies in step 7 (epoch 2, batch 3 of 4) resumes from step 6: it loads only the
    epoch's 16 images not yet trained on (a file counts every load, also in loading workers) and ends with the
    weights and metrics of an uninterrupted run without workers (augmentation seeded per image). Before, a
    checkpoint was written at epoch ends only and a resumed epoch started again from its first image."""
    import warnings
    from neurozoo.convrnn.training.imagefolder import ImageFolder

    crash_before_step(config(data, tmp_path, workers=workers, checkpoint_every=3), 7)
    state = load_checkpoint(tmp_path / "last.pth")
    assert (state["epoch"], state["epoch_steps"], state["global_step"]) == (1, 2, 6)

    loads, getitem = tmp_path / "loads.txt", ImageFolder.__getitem__

    def counted(self, index):
        with open(loads, "a") as handle:  # appended by whichever process loads it
            handle.write(f"{self.root.name} {index}\n")
        return getitem(self, index)

    monkeypatch.setattr(ImageFolder, "__getitem__", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the number of workers no longer matters, so no warning about it
        warnings.filterwarnings("ignore", "--workers 2 on a CPU run with 2 CPU")  # a 2-CPU machine's (cpus.py)
        resumed = Trainer(config(data, tmp_path, workers=workers, checkpoint_every=3, resume="auto"))
    resumed.fit()
    resumed.close()
    same_run(tmp_path, straight)
    order = torch.randperm(32, generator=torch.Generator().manual_seed(0 + 1)).tolist()  # epoch 2's, seed 0
    loaded = [line.split() for line in loads.read_text().splitlines()]
    assert sorted(int(i) for split, i in loaded if split == "train") == sorted(order[16:])
    assert sorted(int(i) for split, i in loaded if split == "val") == list(range(16))  # validated once


def step_clock(monkeypatch, trainer) -> None:
    """The trainer's clock reads one second per training step it has taken: images/s is then a step's batch, 8."""
    from types import SimpleNamespace

    from neurozoo.convrnn.training import engine

    monkeypatch.setattr(engine, "time", SimpleNamespace(perf_counter=lambda: float(trainer.global_step)))


def test_a_resumed_epochs_images_per_s_counts_the_images_trained_since_the_resume(data, tmp_path, monkeypatch):
    """Resumed at step 5 (1 of 4 batches of epoch 2), the epoch's row divided all its 32 images by the time of the 3
    steps trained after the resume (10.7 images per step); now the 24 images of those steps (8 per step)."""
    crash_before_step(config(data, tmp_path, checkpoint_every=5), 6)
    resumed = Trainer(config(data, tmp_path, checkpoint_every=5, resume="auto"))
    step_clock(monkeypatch, resumed)
    resumed.fit()
    resumed.close()
    epochs = read_metrics(tmp_path / "metrics.jsonl", kind="epoch")
    assert [r["epoch"] for r in epochs] == [1, 2] and epochs[1]["images_per_s"] == 8.0


def test_the_first_step_row_after_a_resume_counts_the_images_trained_since_the_resume(data, tmp_path, monkeypatch):
    """--log-every 2, resumed at step 5: the checkpoint holds step 5's sums (not logged yet), and step 6's row divided
    the images of both steps by the time of step 6 alone (16 images per step); now 8, as every other row."""
    crash_before_step(config(data, tmp_path, checkpoint_every=5, log_every=2), 6)
    resumed = Trainer(config(data, tmp_path, checkpoint_every=5, log_every=2, resume="auto"))
    step_clock(monkeypatch, resumed)
    resumed.fit()
    resumed.close()
    rows = read_metrics(tmp_path / "metrics.jsonl", kind="iter")
    assert [r["step"] for r in rows] == [2, 4, 6, 8] and [r["images_per_s"] for r in rows[2:]] == [8.0, 8.0]


# `python -m neurozoo.convrnn.training` that sends SIGTERM (or SIGINT: Ctrl-C in a terminal) to its process group
# (itself and its loading workers; the workers take a SIGTERM from their trainer as the order to exit; a scheduler's:
# test_a_loading_worker_outlives...) while it trains step 6 (epoch 2, batch 2 of 4): the signal reaches the processes
# inside the step, at a step known in advance
SIGNAL_IN_STEP_6 = """
import os, runpy, signal
from neurozoo.convrnn.training.engine import Trainer

batch = Trainer._batch


def batch_or_terminate(self, images, target):
    if self.model.training and self.global_step == 5:
        os.killpg(0, signal.{signal})
    return batch(self, images, target)


Trainer._batch = batch_or_terminate
runpy.run_module("neurozoo.convrnn.training", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_zoo_train_given_sigterm_or_ctrl_c_mid_epoch_saves_that_step_and_resumes_to_the_same_weights(
        data, tmp_path, straight, signame, python_ctrl_c):
    """SIGTERM (or Ctrl-C) to the run and its 2 loading workers inside step 6 of 8: the step finishes, the run writes
    last.pth at step 6 and exits 130 saying so; --resume (without workers) then ends with the uninterrupted run's
    weights and metrics. Before, SIGTERM stopped the run with the checkpoint of epoch 1 (step 4): two steps lost, an
    epoch on ImageNet; Ctrl-C did so until it was deferred as SIGTERM is (its first one says so)."""
    script = tmp_path / "signal_in_step_6.py"
    script.write_text(SIGNAL_IN_STEP_6.replace("{signal}", signame))
    out = tmp_path / "run"
    command = train_command(data, out, epochs=2, entry=(str(script),))
    command[command.index("--workers") + 1] = "2"
    process = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             timeout=300, start_new_session=True)  # its own process group, without pytest
    assert process.returncode == 130 and process.stderr.splitlines()[-1] == (
        f"zoo train: interrupted; {out / 'last.pth'} holds step 6 (2 of 4 batches of epoch 2): rerun the same "
        "command with --resume to continue from it"), process.stderr[-2000:]
    ctrl_c = "Ctrl-C: stopping at the next batch, with a checkpoint of the step reached (Ctrl-C again stops at once)"
    assert (ctrl_c in process.stderr) == (signame == "SIGINT") and "Traceback" not in process.stderr, process.stderr
    assert sorted(p.name for p in out.iterdir()) == ["best.pth", "last.pth", "metrics.jsonl", "run.json"]
    assert read_metrics(out / "metrics.jsonl")[-1]["step"] == 6
    train(config(data, out, resume="auto"))
    same_run(out, straight)


def test_two_zoo_train_runs_with_the_same_seed_end_with_the_same_weights_whatever_their_loading_workers(
        data, tmp_path, straight):
    """Reproducibility of a whole run: ``zoo train`` with 2 loading workers ends with the weights (bit for bit) and
    metric rows of the same settings trained without workers (``straight``), and records the same data checksums:
    shuffling and augmentation are functions of the seed, epoch and image, not of the worker that loads an image."""
    from neurozoo.leaderboard.cli import main

    command = train_command(data, tmp_path / "run", epochs=2)
    command[command.index("--workers") + 1] = "2"
    assert main(["train", *command[command.index("rgc_shallow"):]]) == 0
    same_run(tmp_path / "run", straight)
    runs = [json.loads((folder / "run.json").read_text()) for folder in (straight[2], tmp_path / "run")]
    assert runs[1]["config"]["workers"] == 2 and runs[1]["config"]["seed"] == runs[0]["config"]["seed"] == 0
    assert (runs[1]["train_files_sha256"], runs[1]["val_files_sha256"]) == \
        (runs[0]["train_files_sha256"], runs[0]["val_files_sha256"])


def test_a_stop_during_validation_keeps_the_epochs_training(data, tmp_path, straight):
    """SIGTERM in the validation of epoch 1: the checkpoint holds all 4 batches of it (step 4) and no epoch row was
    logged; the resumed run validates epoch 1 again, trains no batch twice and ends as the uninterrupted run."""
    from neurozoo.datasets.termination import sigterm_deferred

    stopped = Trainer(config(data, tmp_path))

    def terminate_in_validation(module, inputs):
        if not module.training:
            os.kill(os.getpid(), signal.SIGTERM)

    hook = stopped.model.register_forward_pre_hook(terminate_in_validation)
    try:
        with sigterm_deferred(), pytest.raises(KeyboardInterrupt, match="signal 15"):
            stopped.fit()
    finally:
        hook.remove()
        stopped.close()
    state = load_checkpoint(tmp_path / "last.pth")
    assert (state["epoch"], state["epoch_steps"], state["global_step"]) == (0, 4, 4)
    assert [r["kind"] for r in read_metrics(tmp_path / "metrics.jsonl")] == ["iter"] * 4
    train(config(data, tmp_path, resume="auto"))
    same_run(tmp_path, straight)


class _WorkerPid(torch.utils.data.Dataset):
    """Item i: the loading worker's pid (module level: a spawned worker unpickles it)."""

    def __len__(self):
        return 64

    def __getitem__(self, index):
        return os.getpid()


def test_a_loading_worker_outlives_a_schedulers_sigterm_and_ends_on_its_trainers(data, tmp_path):
    """SLURM signals every process of a job step: the trainer defers SIGTERM to its next batch, and its loading
    workers must outlive it, while a SIGTERM from the trainer itself (multiprocessing's terminate at shutdown) must
    still end them. torch's worker handler killed a worker signalled by anyone but its parent, so the trainer failed
    at once without saving its step; a worker ignoring every SIGTERM hung the trainer's exit (it terminates, then
    joins). Spawned (forkserver is Python 3.14's default on Linux), so the trainer is not the worker's parent."""
    from torch.utils.data import DataLoader

    trainer = Trainer(config(data, tmp_path, workers=1))
    try:
        init = trainer.train_loader.worker_init_fn
        assert trainer.val_loader.worker_init_fn.args == init.args == (os.getpid(),)
    finally:
        trainer.close()
    loader = DataLoader(_WorkerPid(), batch_size=None, num_workers=1, multiprocessing_context="spawn",
                        worker_init_fn=init, timeout=60)
    batches = iter(loader)
    worker = next(batches)
    subprocess.run(["kill", "-TERM", str(worker)], check=True)  # the scheduler's: another process
    assert [next(batches) for _ in range(8)] == [worker] * 8  # items asked for after the signal, from the same worker
    process = batches._workers[0]
    os.kill(worker, signal.SIGTERM)  # the trainer's
    process.join(timeout=60)
    assert process.exitcode == 0


def test_a_sigterm_in_a_nested_deferred_block_stays_pending_for_the_outer_one():
    """The trainer's fit() defers SIGTERM inside ``zoo train``'s (or a search worker's) block: the inner block's end
    cleared a request that arrived in it, so the outer block ran on as if never asked to stop."""
    from neurozoo.datasets.termination import raise_if_terminated, sigterm_deferred, termination_requested

    before = signal.getsignal(signal.SIGTERM)
    with sigterm_deferred():
        with sigterm_deferred():
            signal.raise_signal(signal.SIGTERM)
            assert termination_requested() == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            raise_if_terminated()
        assert signal.getsignal(signal.SIGTERM) != before  # still deferred here
    assert termination_requested() is None and signal.getsignal(signal.SIGTERM) == before


def test_a_request_no_safe_point_saw_is_acted_on_when_the_outermost_block_ends(python_ctrl_c):
    """A SIGTERM (or deferred Ctrl-C) recorded after the last safe point was forgotten when the outermost block ended:
    the process ran on as if never asked to stop. The outermost end now raises it (the inner one does not); a request
    a safe point saw, or one under a block ending with an error, is not acted on twice; a Python handler the block
    replaced is handed the signal."""
    from neurozoo.datasets.termination import sigterm_deferred, termination_requested

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="^signal 15$"):
        with sigterm_deferred():
            with sigterm_deferred():
                signal.raise_signal(signal.SIGTERM)
            assert signal.getsignal(signal.SIGTERM) != before  # the inner end only restored the outer handler
    assert signal.getsignal(signal.SIGTERM) == before and termination_requested() is None
    with pytest.raises(KeyboardInterrupt, match="^signal 2$"):
        with sigterm_deferred("stopping after this epoch"):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with sigterm_deferred():  # seen by a safe point, which acts on it itself (the trainer, zoo fit's results)
        signal.raise_signal(signal.SIGTERM)
        assert termination_requested() == signal.SIGTERM
    with pytest.raises(ValueError, match="the block's own error"), sigterm_deferred():
        signal.raise_signal(signal.SIGTERM)
        raise ValueError("the block's own error")
    received = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with sigterm_deferred():
            signal.raise_signal(signal.SIGTERM)
            assert received == []
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)
    assert termination_requested() is None


def test_a_block_deferring_ctrl_c_takes_the_first_as_a_request_and_the_second_at_once(capfd, python_ctrl_c):
    """A retina fit defers Ctrl-C to the end of its epoch (sigint_note): the first Ctrl-C says so and waits for the
    safe point, a second stops at once; an empty note defers it without a word; a block without a note, and a Ctrl-C
    the process ignores, are left alone."""
    from neurozoo.datasets.termination import sigterm_deferred, termination_requested

    before = signal.getsignal(signal.SIGINT)
    with sigterm_deferred("stopping after this epoch"):
        signal.raise_signal(signal.SIGINT)
        assert termination_requested() == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert capfd.readouterr().err == "\nCtrl-C: stopping after this epoch (Ctrl-C again stops at once)\n"
    assert signal.getsignal(signal.SIGINT) is before and termination_requested() is None
    with sigterm_deferred(""):  # a torchrun rank other than 0 (the trainer's): every rank printed the note
        signal.raise_signal(signal.SIGINT)
        assert termination_requested() == signal.SIGINT
    assert capfd.readouterr().err == "" and termination_requested() is None
    with sigterm_deferred(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigterm_deferred("stopping after this epoch"):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
            assert termination_requested() is None
    finally:
        signal.signal(signal.SIGINT, before)


SIGTERM_IGNORED = """
import os, signal
from neurozoo.datasets.termination import raise_if_terminated, sigterm_deferred, termination_requested

with sigterm_deferred():
    with sigterm_deferred("stopping after this epoch"):
        inside = signal.getsignal(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        raise_if_terminated()
        print(inside is signal.SIG_IGN, termination_requested())
os.kill(os.getpid(), signal.SIGTERM)
print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, "ran on")
"""


@pytest.mark.parametrize("ignored", ["trap '' TERM; exec", "in Python"])
def test_a_sigterm_the_process_ignores_stays_ignored_inside_and_after_a_deferred_block(ignored):
    """A process started with SIGTERM ignored (by a parent that ignores it, ``trap '' TERM`` in a shell) took one as a
    stop request inside ``sigterm_deferred``, whose handler replaced SIG_IGN: it stopped at the next safe point (or
    at the block's end). As for Ctrl-C, SIG_IGN is now left in place, inside the block and after it."""
    command = [sys.executable, "-c", SIGTERM_IGNORED]
    if ignored == "in Python":
        command[2] = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SIGTERM_IGNORED
    else:
        command = ["bash", "-c", f"{ignored} \"$@\"", "bash", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert (done.returncode, done.stdout) == (0, "True None\nTrue ran on\n"), done.stderr[-2000:]


def test_a_sigterm_handler_set_from_c_is_left_in_place_by_a_deferred_block(monkeypatch, python_ctrl_c):
    """A SIGTERM handler installed from C before Python started (an embedding program's), which ``signal.getsignal``
    gives as None: the block replaced it and its end failed with a TypeError restoring None. Python cannot put such a
    handler back (the default in its place would drop it, as the Ctrl-C path must), so, as an ignored SIGTERM is, it is
    left in place. Python's own table is simulated for SIGTERM (a C handler is only seen as None when set before the
    interpreter starts); every call the block makes to ``signal.signal`` for it is the real one."""
    from neurozoo.datasets.termination import sigterm_deferred, termination_requested

    real_signal, real_getsignal, before = signal.signal, signal.getsignal, signal.getsignal(signal.SIGTERM)
    table, set_sigterm = {signal.SIGTERM: None}, []

    def set_handler(signum, handler):
        if signum != signal.SIGTERM:
            return real_signal(signum, handler)
        set_sigterm.append(handler)
        real_signal(signum, handler)  # Python's own check: a handler of None is a TypeError
        previous, table[signum] = table[signum], handler
        return previous

    monkeypatch.setattr(signal, "getsignal", lambda signum: table.get(signum, real_getsignal(signum)))
    monkeypatch.setattr(signal, "signal", set_handler)
    try:
        with pytest.raises(KeyboardInterrupt, match="^signal 2$"), sigterm_deferred("stopping after this epoch"):
            assert signal.getsignal(signal.SIGTERM) is None
            signal.raise_signal(signal.SIGINT)  # Ctrl-C is still deferred, and acted on at the block's end
    finally:
        real_signal(signal.SIGTERM, before)
    assert (set_sigterm, signal.getsignal(signal.SIGTERM)) == ([], None)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and termination_requested() is None


def test_resume_without_rng_state_still_equals_the_uninterrupted_run(data, tmp_path, straight):
    """Augmentation is seeded per image from (seed, epoch, index): a checkpoint without the processes' random states
    (another number of processes) resumes the same crops and flips, to the uninterrupted run's weights. Before, its
    augmentation differed."""
    first = Trainer(config(data, tmp_path / "a"))
    first.fit(until_epoch=1)
    first.close()
    state = load_checkpoint(tmp_path / "a" / "last.pth")
    state.pop("rng")
    save_checkpoint(state, tmp_path / "b" / "last.pth")
    with pytest.warns(UserWarning, match=r"RNG states of 0 processes, this run has 1: .*not augmentation"):
        other = Trainer(config(data, tmp_path / "b", resume="auto"))
    other.fit()
    other.close()
    weights = load_checkpoint(tmp_path / "b" / "last.pth")["model"]
    assert all(torch.equal(straight[0][name], weights[name]) for name in straight[0])


def test_augmentation_is_a_function_of_seed_epoch_and_image_only():
    """Guards the exact-resume tests against passing trivially: the crops and flips vary with the epoch and the seed,
    and for one (seed, epoch, image) they do not depend on the random numbers drawn before (a worker's stream)."""
    from neurozoo.convrnn.training.sampling import SeededSamples

    class Draws(torch.utils.data.Dataset):  # what an augmentation draws: python, numpy and torch
        def __getitem__(self, index):
            return (random.random(), np.random.rand(), torch.rand(1).item(), index)

        def __len__(self):
            return 10

    samples = SeededSamples(Draws(), seed=7)
    first = samples[(3, 5)]
    torch.rand(100), random.random(), np.random.rand(7)  # a stream that has run further
    before = random.getstate(), torch.get_rng_state()
    assert samples[(3, 5)] == first
    assert random.getstate() == before[0] and torch.equal(torch.get_rng_state(), before[1])  # the caller's, untouched
    others = [samples[(4, 5)], samples[(3, 6)], SeededSamples(Draws(), seed=8)[(3, 5)]]
    assert all(all(a != b for a, b in zip(first[:3], other[:3])) for other in others)


def test_a_checkpoint_of_the_version_before_per_image_seeds_resumes_with_a_warning(data, tmp_path):
    """Checkpoints written before mid-epoch positions and per-image augmentation seeds (no epoch_steps, epoch_sums,
    steps_per_epoch, sample_seeds) still resume, at their epoch's end, saying the augmentation will differ."""
    first = Trainer(config(data, tmp_path))
    first.fit(until_epoch=1)
    first.close()
    state = load_checkpoint(tmp_path / "last.pth")
    for key in ("epoch_steps", "epoch_lr", "epoch_sums", "steps_per_epoch", "sample_seeds"):
        del state[key]
    save_checkpoint(state, tmp_path / "last.pth")
    with pytest.warns(UserWarning, match="drew from each loading worker's random stream"):
        old = Trainer(config(data, tmp_path, resume="auto"))
    try:
        assert (old.epoch, old.epoch_steps, old.global_step) == (1, 0, 4)
        assert old.fit()["step"] == 8
    finally:
        old.close()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1, "global_step": 10}, path)

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "epoch": 2, "global_step": 20}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.pth"]  # no temp file left behind


def test_a_second_run_started_in_a_used_folder_leaves_the_first_runs_checkpoint_write_alone(data, tmp_path,
                                                                                             monkeypatch):
    """A trainer removed every checkpoint temporary in its --out before refusing a folder that holds a run: a second
    run started there by mistake deleted the first run's checkpoint as it was being written, and the first run then
    failed on its rename. Only the temporaries of dead processes are removed now (the writer's host and pid end the
    name), and those named without them once a day old."""
    import threading

    from neurozoo.datasets.cache import temporary_suffix
    from neurozoo.datasets.json_files import temporary_path

    train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = temporary_path(tmp_path / "best.pth", dead.pid, writer=0)  # left by a run killed while writing
    killed_before = tmp_path / f".last.pth.d4e5f6{temporary_suffix(dead.pid)}"  # the same, named so before
    for path in (killed, killed_before):
        path.write_bytes(b"PK\x03\x04 half a zip")
    unnamed = tmp_path / ".best.pth.a1b2c3.tmp"  # the naming of before (no host, no pid), two days untouched
    unnamed.write_bytes(b"PK")
    os.utime(unnamed, (time.time() - 2 * 86400,) * 2)
    started, resume, errors = threading.Event(), threading.Event(), []
    real_save = torch.save

    def slow_save(obj, handle, *args, **kwargs):  # the first run, half-way through writing last.pth
        handle.write(b"PK")
        started.set()
        resume.wait(30)
        handle.seek(0)
        real_save(obj, handle, *args, **kwargs)

    def first_run():
        try:
            save_checkpoint({"model": {"w": torch.ones(1)}, "epoch": 2, "global_step": 2}, tmp_path / "last.pth")
        except BaseException as error:
            errors.append(error)

    monkeypatch.setattr(torch, "save", slow_save)
    writer = threading.Thread(target=first_run)
    writer.start()
    assert started.wait(30)
    monkeypatch.setattr(torch, "save", real_save)
    try:
        with pytest.raises(UserFacingError, match="already holds a run"):
            Trainer(config(data, tmp_path, epochs=1))
    finally:
        resume.set()
        writer.join(30)
    assert errors == [] and load_checkpoint(tmp_path / "last.pth")["epoch"] == 2
    assert not killed.exists() and not killed_before.exists() and not unnamed.exists()
    assert not list(tmp_path.glob("*.pth.tmp*"))


def test_corrupt_or_foreign_checkpoint_is_a_data_error(tmp_path):
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.pth"):
        load_checkpoint(tmp_path / "bad.pth")
    torch.save({"weights": torch.ones(1)}, tmp_path / "foreign.pth")
    with pytest.raises(DataError, match="lacks field"):
        load_checkpoint(tmp_path / "foreign.pth")
    torch.save(5, tmp_path / "number.pth")  # was a TypeError: 'int' object is not iterable
    with pytest.raises(DataError, match=r"number.pth holds an object of type int, not the dict of fields `zoo train` writes"):
        load_checkpoint(tmp_path / "number.pth")
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")


def test_a_damaged_last_checkpoint_says_how_to_go_on(data, tmp_path):
    train(config(data, tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    last = tmp_path / "run" / "last.pth"
    last.write_bytes(last.read_bytes()[:3000])  # a full disk or a copy cut short
    with pytest.raises(DataError, match=r"last.pth: not a readable .*cannot be resumed: --resume PATH .*another --out"):
        train(config(data, tmp_path / "run", epochs=2, resume="auto"))


def test_bf16_autocast_and_channels_last_on_cpu(data, tmp_path):
    trainer = Trainer(config(data, tmp_path, epochs=1, amp=True, channels_last=True, max_steps_per_epoch=2,
                             loss_steps="all"))
    dtypes = []
    trainer.model.readout.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    conv = trainer.model.layers["conv2"].stage[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    row = trainer.fit()
    trainer.close()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert conv.dtype == torch.float32 and math.isfinite(row["loss"]) and row["step"] == 2
    assert load_checkpoint(tmp_path / "last.pth")["global_step"] == 2


def test_the_fast_path_trains_the_reference_paths_weights(data, tmp_path):
    """``--fast`` (fused input convolutions, channels-last, not compiled) trains the same function: after two SGD
    steps from the same seed every weight equals the reference run's to float rounding, and the checkpoint is a
    plain state dict of the same keys; with --amp the fast path autocasts to bfloat16."""
    settings = dict(epochs=1, max_steps_per_epoch=2, optimizer="sgd", momentum=0.9, weight_decay=0.0, lr=0.05,
                    warmup_epochs=0)
    weights, initial = {}, None
    for fast in (False, True):
        trainer = Trainer(config(data, tmp_path / str(fast), fast=fast, **settings))
        assert (trainer.model._fast is not None) == fast
        conv = trainer.model.layers["conv2"].stage[0].weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == fast
        initial = initial or {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        trainer.fit()
        trainer.close()
        weights[fast] = load_checkpoint(tmp_path / str(fast) / "last.pth")["model"]
    assert weights[True].keys() == weights[False].keys() == initial.keys()
    moved = 0
    for name, reference in weights[False].items():
        torch.testing.assert_close(weights[True][name], reference, atol=2e-6, rtol=1e-5, msg=name)
        moved += float((reference - initial[name]).abs().max()) > 1e-4
    assert moved >= 10  # the steps moved the weights far beyond the tolerance
    trainer = Trainer(config(data, tmp_path / "amp", fast=True, amp=True, **settings))
    dtypes = []
    trainer.model.readout.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    row = trainer.fit()
    trainer.close()
    assert set(dtypes) == {torch.bfloat16} and math.isfinite(row["loss"]) and row["step"] == 2
    import argparse

    from neurozoo.convrnn.training.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["rgc_shallow", "--data", str(data), "--fast", "--amp"])).fast
    with pytest.raises(UserFacingError, match="--fast: .* has no fast path"):  # before the data are read
        Trainer(config(tmp_path / "no-such-folder", tmp_path / "cornet", model="cornet_s", overrides={}, fast=True,
                       **settings))


def test_a_cpu_run_names_what_float16_autocast_compiling_and_too_many_workers_would_do(monkeypatch):
    from neurozoo.convrnn.training import cpus

    monkeypatch.setattr(cpus, "available_cpus", lambda: 2)
    assert cpus.cpu_path_problems("cpu", amp=True) == [] and cpus.cpu_path_problems("cpu", workers=1) == []
    assert cpus.cpu_path_problems("cuda:0", amp=True, amp_dtype="float16", compile=True, workers=8) == []
    assert cpus.cpu_path_problems("cpu", compile=True, compile_backend="eager") == []
    float16, inductor, workers = cpus.cpu_path_problems("cpu", amp=True, amp_dtype="float16", compile=True, workers=2)
    assert float16.startswith("--amp-dtype float16 on a CPU: float16 convolutions have no fast CPU kernels, so "
                              "autocast runs them about 16x slower than float32") and float16.endswith("fast path")
    assert inductor.startswith("--compile on a CPU (inductor): the first training step waits") and "minutes" in inductor
    assert workers == ("--workers 2 on a CPU run with 2 CPUs: the loading processes take the cores the model "
                       "computes on; 1 (min(4, CPUs - 1), the default) leaves one to it")


def test_zoo_train_warns_of_float16_autocast_and_compiling_on_a_cpu_before_any_step(data, tmp_path):
    with pytest.warns(UserWarning) as warned:
        Trainer(config(data, tmp_path, amp=True, amp_dtype="float16", compile=True)).close()
    said = [str(w.message) for w in warned]
    assert any(m.startswith("--amp-dtype float16 on a CPU") for m in said), said
    assert any(m.startswith("--compile on a CPU (inductor)") for m in said), said
    assert not (tmp_path / "last.pth").exists()  # said before any step


@pytest.mark.filterwarnings("ignore:.*has no val/ folder:UserWarning")  # trains without val/ on purpose
def test_compile_path_runs_and_checkpoints_plain_state_dict(tmp_path_factory, tmp_path):
    # dynamo capture with the eager backend (~5 s); the inductor backend takes minutes on CPU, see below
    small = write_image_folder(tmp_path_factory.mktemp("tiny"), n_classes=4, per_class=2, val_per_class=0)
    row = train(config(small, tmp_path, epochs=1, compile=True, compile_backend="eager", max_steps_per_epoch=1))
    assert row["step"] == 1 and math.isfinite(row["loss"])
    keys = list(load_checkpoint(tmp_path / "last.pth")["model"])
    assert keys and not any(k.startswith(("_orig_mod", "module.")) for k in keys)


@pytest.mark.skipif(not os.environ.get("NEUROZOO_TEST_INDUCTOR"),
                    reason="torch.compile with inductor takes ~160 s for the tiny model on a 2-core CPU; "
                           "set NEUROZOO_TEST_INDUCTOR=1 to run")
def test_compile_inductor(data, tmp_path):
    row = train(config(data, tmp_path, epochs=1, compile=True, max_steps_per_epoch=2))
    assert math.isfinite(row["loss"])


def test_unrolled_loss_final_and_all_steps():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 5, 3), torch.tensor([0, 1, 2, 1, 0])
    ce = [torch.nn.functional.cross_entropy(logits[t], target) for t in range(6)]
    assert torch.allclose(unrolled_loss(logits, target, "final", first_step=2), ce[-1])
    assert torch.allclose(unrolled_loss(logits, target, "all", first_step=2), torch.stack(ce[2:]).mean())
    top1, top2 = topk_correct(logits[-1], target, ks=(1, 2))
    ranks = (logits[-1] > logits[-1].gather(1, target[:, None])).sum(1)
    assert top1 == (ranks == 0).sum() and top2 == (ranks <= 1).sum()


def test_learning_rate_schedules():
    cosine = LRFactor("cosine", total_steps=110, warmup_steps=10, min_factor=0.1)
    assert [cosine(s) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert cosine(10) == 1.0 and abs(cosine(60) - 0.55) < 1e-12 and abs(cosine(110) - 0.1) < 1e-12
    step = LRFactor("step", total_steps=100, step_every=30, gamma=0.1)
    assert [step(s) for s in (0, 29, 30, 61)] == [1.0, 1.0, 0.1, pytest.approx(0.01)]
    assert LRFactor("constant", total_steps=5, warmup_steps=2)(1) == 1.0


def test_the_torchrun_entry_records_device_auto_as_zoo_train_does_and_resumes_a_checkpoint_that_recorded_auto(
        data, tmp_path, monkeypatch):
    """``python -m neurozoo.convrnn.training`` (what torchrun launches) recorded ``--device auto`` as ``auto`` in
    run.json's config, where ``zoo train`` records the device it gives (``auto_device``). A checkpoint that recorded
    ``auto`` (every one before, and the Trainer's default) resumes under the entry, which now records ``cpu``."""
    from neurozoo.convrnn.training import cli
    from neurozoo.convrnn.training.distributed import auto_device
    from neurozoo.leaderboard.cli import main as zoo

    argv = ["rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--epochs", "2", "--batch-size", "8",
            "--lr", "3e-3", "--optimizer", "adamw", "--weight-decay", "1e-4", "--schedule", "cosine",
            "--warmup-epochs", "0.5", "--image-size", "32", "--workers", "0", "--seed", "0", "--log-every", "1",
            "--quiet", "--device", "auto", "--resume"] + [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]
    parsed = []
    with monkeypatch.context() as patch:
        patch.setattr(cli, "run", lambda args: parsed.append(cli.config_from_args(args)) or 0)
        assert cli.main(argv) == 0 and zoo(["train", *argv]) == 0
    assert parsed[0].device == parsed[1].device == auto_device("auto") != "auto"
    assert parsed[0] == parsed[1]

    # a run's first part as the Trainer wrote it before it resolved ``auto`` (its checkpoint and run.json say "auto")
    first = Trainer(config(data, tmp_path, device="auto"))
    first.fit(until_epoch=1)
    first.close()
    checkpoint = load_checkpoint(tmp_path / "last.pth")
    save_checkpoint({**checkpoint, "config": {**checkpoint["config"], "device": "auto"}}, tmp_path / "last.pth")
    run = json.loads((tmp_path / "run.json").read_text())
    run["segments"][0]["config"]["device"] = run["config"]["device"] = "auto"
    (tmp_path / "run.json").write_text(json.dumps(run))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # auto: the CPU, as the first part trained on
    assert cli.main(argv) == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert [s["config"]["device"] for s in run["segments"]] == ["auto", "cpu"] and run["config"]["device"] == "cpu"
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 2


def test_the_torchrun_entrys_warnings_are_one_line_as_its_errors(tmp_path, monkeypatch, capsys):
    """Under torchrun (``python -m neurozoo.convrnn.training``) a warning came in Python's default format, the file,
    line and source of the code that warned (a resume with more --epochs: ``.../engine.py:604: UserWarning:
    learning-rate schedule changed on resume ...`` then ``warnings.warn(...)``), where its errors and zoo train's
    warnings are one line; other categories keep Python's format, and the format is restored after."""
    import warnings

    from neurozoo.convrnn.training import cli

    def run(args):
        warnings.warn("learning-rate schedule changed on resume")
        warnings.warn("overflow", RuntimeWarning)
        return 0

    before = warnings.formatwarning
    monkeypatch.setattr(cli, "run", run)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: print(
            warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)  # Python's,
        assert cli.main(["rgc_shallow", "--data", str(tmp_path), "--device", "cpu"]) == 0  # not pytest's record
    err = capsys.readouterr().err
    assert "train: warning: learning-rate schedule changed on resume\n" in err and "UserWarning" not in err
    assert "RuntimeWarning: overflow" in err and warnings.formatwarning is before


def test_a_library_trainer_records_the_device_auto_gives(data, tmp_path):
    """A Python caller of ``TrainConfig``/``Trainer`` that passes or keeps the default ``device="auto"`` recorded
    ``auto`` in run.json's config and the checkpoints' (zoo train and the torchrun entry resolve it first); the
    Trainer now records the device it runs on (``auto_device``), and leaves the caller's config as given."""
    from neurozoo.convrnn.training.distributed import auto_device

    given = config(data, tmp_path, epochs=1, max_steps_per_epoch=2)
    assert given.device == "auto"  # TrainConfig's default
    trainer = Trainer(given)
    trainer.fit()
    trainer.close()
    device = auto_device("auto")
    assert trainer.config.device == device == str(trainer.device).split(":")[0] and given.device == "auto"
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["device"] == run["segments"][0]["config"]["device"] == device
    assert load_checkpoint(tmp_path / "last.pth")["config"]["device"] == device
    assert load_checkpoint(tmp_path / "best.pth")["config"]["device"] == device

def test_zoo_train_command(data, tmp_path, capsys):
    from neurozoo.leaderboard.cli import main

    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--epochs", "1",
            "--batch-size", "8", "--image-size", "32", "--workers", "0", "--optimizer", "sgd", "--lr", "0.01",
            "--schedule", "step", "--max-steps-per-epoch", "2", "--log-every", "1", "--loss-steps", "all",
            "--set", "width_multiplier=0.125", "--set", "n_steps=8", "--set", "image_steps=8",
            "--set", "norm=none", "--quiet"]
    assert main(args) == 0
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in rows] == [("iter", 1), ("iter", 2), ("epoch", 2)]
    assert rows[0]["lr"] == 0.01
    state = load_checkpoint(tmp_path / "last.pth")
    assert state["config"]["overrides"] == {"width_multiplier": 0.125, "n_steps": 8, "image_steps": 8,
                                                  "norm": "none"}
    assert state["config"]["loss_steps"] == "all"
    assert (tmp_path / "training_curve.png").read_bytes()[:4] == b"\x89PNG"  # the learning curve, drawn at the end

    assert main(args[:3] + [str(tmp_path / "nowhere")] + args[4:]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_interrupted_zoo_train_says_what_it_kept_and_resume_continues(data, tmp_path, capsys, monkeypatch):
    """Ctrl-C in ``zoo train`` printed only "interrupted": now it says whether a finished epoch was saved and that
    --resume continues from it (or that nothing was saved)."""
    from neurozoo.convrnn.training import stops
    from neurozoo.convrnn.training.engine import Trainer
    from neurozoo.leaderboard.cli import main

    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--epochs", "2", "--batch-size", "8",
            "--image-size", "32", "--workers", "0", "--max-steps-per-epoch", "1", "--set", "width_multiplier=0.125",
            "--set", "n_steps=8", "--set", "image_steps=8", "--set", "norm=none", "--quiet"]
    save = Trainer.save

    def interrupted(after, *message):
        def patched(self, is_best):
            if after:
                save(self, is_best)
            raise KeyboardInterrupt(*message)  # Ctrl-C as the first epoch's checkpoint is written (or just after)
        return patched

    monkeypatch.setattr(Trainer, "save", interrupted(after=False))
    assert main(args) == 130
    assert capsys.readouterr().err == f"zoo train: interrupted; no checkpoint had been written, so {tmp_path} holds none to resume\n"
    monkeypatch.setattr(Trainer, "save", interrupted(after=True))
    assert main(args) == 130
    assert capsys.readouterr().err == (f"zoo train: interrupted; {tmp_path / 'last.pth'} holds step 1 (the end of epoch "
                                       "1): rerun the same command with --resume to continue from it\n")
    monkeypatch.setattr(Trainer, "save", interrupted(True, stops.STOPPED_AT_ONCE))  # a second Ctrl-C says so
    assert main(args + ["--resume"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "zoo train: interrupted; stopped at once by a second Ctrl-C: the steps since the last checkpoint were lost; "
        f"{tmp_path / 'last.pth'} holds step 2 (the end of epoch 2): rerun the same command with --resume to continue "
        "from it")
    monkeypatch.setattr(Trainer, "save", save)
    assert main(args + ["--resume"]) == 0  # as it says
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "epoch"] == [1, 2]


@pytest.mark.parametrize("split, workers", [("train", 0), ("train", 1), ("val", 1)])
def test_a_corrupt_image_is_one_line_naming_the_file_also_from_a_loading_worker(tmp_path, capsys, split, workers):
    """A corrupt image read in a DataLoader worker came out as torch's 'Caught DataError in DataLoader worker process
    0' with the worker's traceback inside the error's message; now as without workers: one line, exit 2. The line says
    what the run keeps (the checkpoint of the last step trained) and how to go on, which works."""
    from neurozoo.leaderboard.cli import main

    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=4, val_per_class=2, size=16)
    bad = sorted((data / split).rglob("*.JPEG"))[1]
    whole = bad.read_bytes()
    bad.write_bytes(whole[:300])
    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--batch-size", "4", "--image-size", "16", "--workers", str(workers), "--quiet",
            "--set", "width_multiplier=0.125", "--set", "n_steps=8", "--set", "image_steps=8", "--set", "norm=none"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo train: error: cannot read image {bad}: ") and err.count("\n") == 1, err
    last = tmp_path / "run" / "last.pth"
    # 8 training images, 2 steps: the image is in the first or the second batch of the shuffled order, or in val/
    kept = {"val": "2 of 2 batches", "train": "1 of 2 batches"}[split] if last.is_file() else None
    if kept:
        assert f"; {last} holds step {kept[0]} ({kept} of epoch 1): replace the file by a readable image of the same " \
               "name (the image order stays), then rerun the same command with --resume to continue from it\n" in err
        assert load_checkpoint(last)["epoch_steps"] == int(kept[0])
    else:  # found in the first batch: nothing trained
        assert split == "train" and f"; no checkpoint had been written, so {tmp_path / 'run'} holds none" in err
    bad.write_bytes(whole)
    assert main(args + ["--resume"]) == 0  # as it says
    assert load_checkpoint(last)["global_step"] == 2


@pytest.mark.parametrize("split, workers", [("train", 0), ("val", 1)])
def test_an_image_with_nan_pixels_stops_the_run_with_one_line_naming_it_and_its_step(tmp_path, capsys, monkeypatch,
                                                                                      split, workers):
    """An image given a NaN pixel by a transform or dataset of one's own (a decoded file holds none), the first of the
    second training batch or the second of the validation batch (read in a loading worker): the model refused it with
    a ValueError traceback (exit 1), and nothing of the steps trained was saved. Now the run stops as for a corrupt
    image: last.pth at the last step trained, one line naming the image and the step, exit 2; resumed with the image
    mended, it finishes."""
    from neurozoo.convrnn.training.imagefolder import ImageFolder
    from neurozoo.leaderboard.cli import main

    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=4, val_per_class=2, size=16)
    get, reads, named = ImageFolder.__getitem__, itertools.count(1), tmp_path / "nan"

    def nan_pixel(self, index):
        image, label = get(self, index)
        if self.root.name == split and next(reads) == {"train": 5, "val": 2}[split]:
            named.write_text(self.samples[index][0])  # from the loading worker too
            image = image.clone()
            image[0, 3, 4] = float("nan")
        return image, label

    monkeypatch.setattr(ImageFolder, "__getitem__", nan_pixel)
    out = tmp_path / "run"
    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4",
            "--image-size", "16", "--workers", str(workers), "--quiet", "--set", "width_multiplier=0.125",
            "--set", "n_steps=8", "--set", "image_steps=8", "--set", "norm=none"]
    assert main(args) == 2
    where, kept = {"train": ("in the batch of step 2", "1 (1 of 2 batches"),
                   "val": ("in validation after step 2", "2 (2 of 2 batches")}[split]
    assert capsys.readouterr().err == (
        f"zoo train: error: image {named.read_text()} holds NaN/inf pixels {where} (epoch 1); expected finite pixels "
        f"(a decoded image file holds none: they come from a transform or dataset); {out / 'last.pth'} holds step "
        f"{kept} of epoch 1): make the transform or dataset give that image finite pixels (the image order stays), "
        "then rerun the same command with --resume to continue from it\n")
    assert load_checkpoint(out / "last.pth")["global_step"] == int(kept[0])
    assert json.loads((out / "run.json").read_text())["segments"][-1]["outcome"] == "stopped"
    monkeypatch.setattr(ImageFolder, "__getitem__", get)
    assert main(args + ["--resume"]) == 0  # as it says
    assert load_checkpoint(out / "last.pth")["global_step"] == 2


def test_the_stop_points_test_of_a_batch_names_nan_and_inf_images_and_lets_finite_ones_whose_sum_overflows_pass(
        data, tmp_path):
    """The per-batch test of the images is their sum (``non_finite_flag``), summed in float32 at least (a float16
    batch of 100s overflowed float16's sum): an infinity stops the run at that batch, the images named, the step
    saved; finite pixels near float32's limit, whose sum overflows, raise the flag too, but no image is named and the
    run goes on without a checkpoint."""
    from neurozoo.convrnn.training.stops import UNREADABLE_DATA, DataErrorMidRun, non_finite_flag

    assert int(non_finite_flag(torch.full((64, 3, 32, 32), 100.0, dtype=torch.float16))) == 0
    assert non_finite_flag(torch.zeros(2, 3, dtype=torch.uint8)) is None
    trainer = Trainer(config(data, tmp_path))
    try:
        trainer.epoch_steps = trainer.global_step = 1  # a step trained: a stop saves it
        huge = torch.full((4, 3, 8, 8), 3e38)
        assert int(non_finite_flag(huge)) == UNREADABLE_DATA
        assert trainer._stop_point(images=huge) is None and not (tmp_path / "last.pth").exists()
        images = torch.zeros(4, 3, 8, 8)
        images[1, 0, 2, 2] = float("inf")
        images[3, 2, 0, 0] = float("nan")
        with pytest.raises(DataErrorMidRun) as stopped:
            trainer._stop_point(images=images)
        assert str(stopped.value) == ("the images at batch indices 1, 3 hold NaN/inf pixels in the batch of step 2 "
                                      "(epoch 1); expected finite pixels (a decoded image file holds none: they come "
                                      "from a transform or dataset)")
        assert stopped.value.non_finite == 1 and load_checkpoint(tmp_path / "last.pth")["global_step"] == 1
    finally:
        trainer.close()


def kill_and_wait(pid: int) -> None:
    """SIGKILL to process ``pid``, returning once it is dead (a zombie, or reaped)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} outlived SIGKILL")


@pytest.mark.parametrize("killer", ["trainer", "worker"])
def test_a_loading_worker_killed_mid_epoch_stops_the_run_with_the_last_step_saved_and_resume_continues(
        data, tmp_path, straight, capsys, monkeypatch, killer):
    """SIGKILL (the out-of-memory killer's) to the run's loading worker while step 2 of 8 trains (``trainer``: sent
    by the trainer), or by the worker to itself as it loads batch 3, the trainer having batch 2 (``worker``: then
    mostly while the trainer waits for batch 3): torch's SIGCHLD handler raised "DataLoader worker (pid N) is killed
    by signal: Killed." wherever the trainer was (a traceback, exit 1), and the run died without a checkpoint. Now
    step 2 finishes, last.pth is written at step 2, run.json records the stop, the command says in one line what
    happened and how to go on (exit 2), and --resume ends with the uninterrupted run's weights and metrics."""
    import multiprocessing

    from neurozoo.convrnn.training.engine import Trainer
    from neurozoo.convrnn.training.worker_deaths import KILLED_WORKER
    from neurozoo.convrnn.training.imagefolder import ImageFolder
    from neurozoo.leaderboard.cli import main

    out, batch, getitem, calls = tmp_path / "run", Trainer._batch, ImageFolder.__getitem__, itertools.count(1)
    has_batch_2, killed = tmp_path / "has-batch-2", tmp_path / "killed"

    def batch_then_kill_the_worker(self, images, target):
        if self.model.training and self.global_step == 1 and not has_batch_2.exists():
            has_batch_2.touch()
            if killer == "trainer":
                workers = multiprocessing.active_children()
                assert len(workers) == 1, workers
                killed.write_text(str(workers[0].pid))
                kill_and_wait(workers[0].pid)
        return batch(self, images, target)

    def dying_at_batch_3(self, index):  # in the worker: its 17th image is the first of batch 3 (8 per batch)
        if killer == "worker" and next(calls) == 17:
            while not has_batch_2.exists():
                time.sleep(0.01)
            time.sleep(0.2)  # the trainer's step 2, mostly
            killed.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return getitem(self, index)

    monkeypatch.setattr(Trainer, "_batch", batch_then_kill_the_worker)
    monkeypatch.setattr(ImageFolder, "__getitem__", dying_at_batch_3)
    args = ["train", *train_command(data, out, epochs=2)[3:]]
    args[args.index("--workers") + 1] = "1"
    assert main(args) == 2
    last = out / "last.pth"
    assert capsys.readouterr().err == (
        f"zoo train: error: a data-loading worker died: DataLoader worker (pid {killed.read_text()}) is killed by "
        f"signal: Killed. ({KILLED_WORKER}); {last} holds step 2 (2 of 4 batches of epoch 1): rerun the same command "
        "with --resume to continue from it\n")
    segment = json.loads((out / "run.json").read_text())["segments"][-1]
    assert (segment["outcome"], segment["end_step"]) == ("stopped", 2)
    assert segment["error"].startswith("WorkerDied: a data-loading worker died: DataLoader worker (pid ")
    assert load_checkpoint(last)["global_step"] == 2 and read_metrics(out / "metrics.jsonl")[-1]["step"] == 2

    monkeypatch.setattr(Trainer, "_batch", batch)
    monkeypatch.setattr(ImageFolder, "__getitem__", getitem)
    assert main(args + ["--resume"]) == 0  # as it says
    same_run(out, straight)


def test_throughput_script_reports_both_models_and_their_ratio(tmp_path, capsys):
    from neurozoo.benchmarks.perf.train_throughput import main

    out = tmp_path / "throughput.json"
    assert main(["--device", "cpu", "--image-size", "32", "--batch-size", "2", "--steps", "1", "--warmup", "0",
                 "--set", "width_multiplier=0.0625", "--peak-tflops", "1", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    rows = written["rows"]
    assert [r["model"] for r in rows] == ["rgc_intermediate", "feedforward_intermediate"]
    # the code and versions the figures are of (the JSON said neither)
    from neurozoo.datasets.provenance import code_version

    assert written["provenance"]["code_version"] == code_version()
    assert written["provenance"]["environment"]["torch"] == torch.__version__
    rgc, ff = rows
    assert rgc["gflops_fwd_per_image"] > ff["gflops_fwd_per_image"] > 0  # recurrence costs FLOPs
    for r in rows:
        assert r["images_per_s"] > 0 and r["mfu"] == pytest.approx(3 * r["gflops_fwd_per_image"] * 1e9 * r["images_per_s"] / 1e12)
    assert "ratio rgc_intermediate / feedforward_intermediate" in capsys.readouterr().out


def test_train_command_speed_counts_the_rows_after_the_first_as_total_images_over_total_time(tmp_path):
    """benchmarks/perf/train_command_speed.py: the first row (cuDNN autotuning, the workers' start) is left out; the
    others, each of the same number of images, give images / time: 8 images at 4/s and at 8/s are 16 in 3 s."""
    from neurozoo.benchmarks.perf.train_command_speed import main, steady_images_per_s

    rows = [{"kind": "iter", "images_per_s": 0.5}, {"kind": "iter", "images_per_s": 4.0},
            {"kind": "epoch", "images_per_s": 1.0}, {"kind": "iter", "images_per_s": 8.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert steady_images_per_s(tmp_path / "metrics.jsonl") == pytest.approx(16 / 3)
    with pytest.raises(SystemExit):  # one row after the first is no steady figure
        main(["--steps", "4", "--log-every", "4"])


def test_resume_with_more_epochs_extends_the_schedule(data, tmp_path):
    short = Trainer(config(data, tmp_path, epochs=1, max_steps_per_epoch=2))
    short.fit()
    short.close()
    with pytest.warns(UserWarning) as said:
        longer = Trainer(config(data, tmp_path, epochs=2, max_steps_per_epoch=2, resume="auto"))
    # in words: it printed the two LRFactor dictionaries ({'kind': 'cosine', 'total_steps': 2, ...} -> {...})
    assert [str(w.message) for w in said if "schedule" in str(w.message)] == [
        "learning-rate schedule changed on resume: the schedule's epochs 1 -> 2 (2 -> 4 optimizer steps); this run's "
        "schedule goes on from optimizer step 2"]
    assert longer.scheduler.lr_lambdas[0].total_steps == 4 and longer.global_step == 2
    # the one-epoch cosine had reached 0; the two-epoch one (warmup 1 step) is a third of the way at step 2
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.75)
    longer.fit()
    longer.close()
    lrs = [r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl", kind="iter")]
    assert lrs == pytest.approx([3e-3, 3e-3, 3e-3 * 0.75, 3e-3 * 0.25])


def test_a_schedules_changes_are_said_in_the_options_words():
    from neurozoo.convrnn.training.optim import LRFactor, schedule_changes

    before = vars(LRFactor("cosine", total_steps=20, warmup_steps=5, step_every=10, gamma=0.1, min_factor=0.0))
    after = vars(LRFactor("step", total_steps=40, warmup_steps=5, step_every=30, gamma=0.5, min_factor=0.01))
    assert schedule_changes(before, after, steps_per_epoch=10) == (
        "--schedule cosine -> step, the schedule's epochs 2 -> 4 (20 -> 40 optimizer steps), --step-epochs 1 -> 3 "
        "(10 -> 30 optimizer steps), --gamma 0.1 -> 0.5, --min-lr / --lr 0 -> 0.01")
    assert schedule_changes(before, {**before, "warmup_steps": 15}, 10) == \
        "--warmup-epochs 0.5 -> 1.5 (5 -> 15 optimizer steps)"
    assert schedule_changes(before, before, 10) == ""


@pytest.mark.parametrize("setting,message", [({"lr": -1.0}, "--lr must be > 0, got -1.0"),
                                             ({"checkpoint_every": -1}, "--checkpoint-every must be >= 0 (0: at epoch ends only), got -1"),
                                             ({"workers": -1}, "--workers must be >= 0, got -1"),
                                             ({"momentum": -0.9}, "--momentum must be >= 0, got -0.9"),
                                             ({"weight_decay": -1e-4}, "--weight-decay must be >= 0, got -0.0001"),
                                             ({"label_smoothing": 1.5}, "--label-smoothing must be in [0, 1], got 1.5"),
                                             ({"grad_clip": 0.0}, "--grad-clip must be > 0, got 0.0"),
                                             ({"step_epochs": 0}, "--step-epochs must be >= 1, got 0")])
def test_a_nonsensical_training_setting_is_named_with_its_value(setting, message):
    from neurozoo.datasets.errors import UserFacingError

    with pytest.raises(UserFacingError) as info:
        TrainConfig(model="rgc_shallow", data="unused", **setting).validate()
    assert str(info.value) == message
    TrainConfig(model="rgc_shallow", data="unused", max_steps_per_epoch=0, log_every=0).validate()  # 0: no limit, no logs


@pytest.mark.parametrize("setting,message", [
    ({"amp_dtype": "float16"}, "--amp-dtype float16 takes effect with --amp only, which is off: add --amp, or drop "
                               "--amp-dtype"),
    ({"compile_backend": "eager"}, "--compile-backend eager takes effect with --compile only, which is off: add "
                                   "--compile, or drop --compile-backend")])
def test_a_setting_of_an_option_that_is_off_is_refused(setting, message):
    """``zoo train --amp-dtype float16`` without --amp trained in float32 without a word, and run.json said
    amp_dtype float16; so did --compile-backend without --compile."""
    from neurozoo.datasets.errors import UserFacingError

    with pytest.raises(UserFacingError) as info:
        TrainConfig(model="rgc_shallow", data="unused", **setting).validate()
    assert str(info.value) == message
    switch = {"amp_dtype": {"amp": True}, "compile_backend": {"compile": True}}[next(iter(setting))]
    TrainConfig(model="rgc_shallow", data="unused", **setting, **switch).validate()


def test_resuming_a_checkpoint_of_another_width_names_both_models(data, tmp_path):
    from neurozoo.datasets.errors import UserFacingError

    train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))
    wider = {**TINY, "width_multiplier": 0.25}
    with pytest.raises(UserFacingError, match=r"--resume .*last\.pth: the checkpoint's weights do not fit this model \(checkpoint: "
                                              r"model 'rgc_shallow', overrides \{.*'width_multiplier': 0.125.*\}; this run: "
                                              r".*'width_multiplier': 0.25.*\); [\w.]+ has shape \(\d+, .*\), the model's is "
                                              r"\(\d+, .*\) \(\d+ more shapes differ\)$"):
        Trainer(config(data, tmp_path, epochs=1, resume="auto", overrides=wider))


def test_an_unreadable_resume_checkpoint_leaves_nothing_in_a_fresh_out_folder(data, tmp_path):
    # the refusal came after metrics.jsonl was opened: an empty log was left as the fresh folder's run
    from neurozoo.datasets.errors import DataError

    (tmp_path / "text.pth").write_text("hello\n")
    with pytest.raises(DataError, match=r"text\.pth: not a readable PyTorch file.*a damaged checkpoint cannot be resumed"):
        Trainer(config(data, tmp_path / "run", resume=str(tmp_path / "text.pth")))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_an_unroll_too_short_for_the_image_to_reach_the_logits_is_refused(data, tmp_path):
    from neurozoo.datasets.errors import UserFacingError

    short = {**TINY, "n_steps": 5, "image_steps": 5}  # rgc_shallow: the image reaches the logits at step 5
    with pytest.raises(UserFacingError, match=r"rgc_shallow with n_steps=5: the image first reaches the logits at "
                                              r"step 5.*set n_steps > 5"):
        Trainer(config(data, tmp_path, overrides=short))
    Trainer(config(data, tmp_path / "ok", overrides={**TINY, "n_steps": 6, "image_steps": 6})).close()


def test_a_new_run_refuses_to_overwrite_a_finished_one(data, tmp_path):
    """The refusal leaves the caller's process as it was: a Trainer refused while it was set up had turned torch's
    deterministic algorithms on for good."""
    from neurozoo.datasets.errors import UserFacingError

    train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))
    before = (tmp_path / "last.pth").read_bytes()
    deterministic = torch.are_deterministic_algorithms_enabled()
    with pytest.raises(UserFacingError, match=rf"--out {tmp_path} already holds a run \(last.pth\): pass --resume"):
        Trainer(config(data, tmp_path, epochs=1, max_steps_per_epoch=1, deterministic=not deterministic))
    assert (tmp_path / "last.pth").read_bytes() == before
    assert torch.are_deterministic_algorithms_enabled() == deterministic


@pytest.mark.filterwarnings("ignore:.*has no val/ folder:UserWarning")  # trains without val/ on purpose
def test_data_parallel_epoch_has_the_steps_of_one_process_and_no_repeated_image(tmp_path):
    """11 images, global batch 4: one process trains 2 steps of distinct images; two ranks x 2 must too.
    DistributedSampler's default padding (a copy of image 0 to make 12) gave each rank 6 indices, 3 steps:
    one more step than one process (a different schedule length) and an image seen twice."""
    from neurozoo.convrnn.training.distributed import DistInfo

    data = write_image_folder(tmp_path / "odd", n_classes=1, per_class=11, val_per_class=0, size=8)

    def built(world_size, rank, batch_size):
        trainer = Trainer.__new__(Trainer)
        trainer.config = config(data, tmp_path / "out", batch_size=batch_size)
        trainer.dist = DistInfo(rank=rank, world_size=world_size)
        trainer.device = torch.device("cpu")
        trainer._build_data()
        trainer.train_sampler.set_epoch(1)
        return trainer

    single = built(1, 0, 4)
    ranks = [built(2, r, 2) for r in (0, 1)]
    assert single.steps_per_epoch == 2
    assert [t.steps_per_epoch for t in ranks] == [2, 2]
    seen = [i for t in ranks for batch in itertools.islice(t.train_loader.batch_sampler, t.steps_per_epoch) for i in batch]
    assert len(seen) == 8 and len(set(seen)) == 8


def test_resume_with_another_global_batch_is_refused(data, tmp_path):
    """32 images: batch 8 gives 4 steps per epoch. Resumed after epoch 1 with batch 16 (2 steps per epoch, e.g. twice
    the processes), the schedule read global step 4 as the end of a 2 x 2 step run: epoch 2 trained at lr 0."""
    from neurozoo.datasets.errors import UserFacingError

    first = Trainer(config(data, tmp_path, warmup_epochs=0))
    first.fit(until_epoch=1)
    first.close()
    with pytest.raises(UserFacingError, match=rf"--resume {tmp_path / 'last.pth'}: the checkpoint ran 4 steps per epoch \(global batch 8 = "
                                              r"--batch-size 8 x 1 process\); this run would run 2 \(global batch "
                                              r"16 = --batch-size 16 x 1 process\).*same global batch"):
        Trainer(config(data, tmp_path, warmup_epochs=0, batch_size=16, resume="auto"))
    same = Trainer(config(data, tmp_path, warmup_epochs=0, resume="auto"))
    assert same.global_step == 4 and same.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.5)
    same.close()


@pytest.mark.parametrize("setting, value, message", [
    ("optimizer", "sgd", "--optimizer adamw, this run has sgd"),  # failed inside torch: KeyError 'step'
    ("lr", 0.1, "--lr 0.003, this run has 0.1"),  # silently replaced by the checkpoint's
    ("weight_decay", 0.0, "--weight-decay 0.0001, this run has 0.0")])
def test_a_resume_with_another_optimizer_setting_names_the_checkpoint_and_the_setting(data, tmp_path, setting, value,
                                                                                      message):
    train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))
    with pytest.raises(UserFacingError) as info:
        Trainer(config(data, tmp_path, max_steps_per_epoch=1, resume="auto", **{setting: value}))
    assert str(info.value) == (f"--resume {tmp_path / 'last.pth'}: the checkpoint was trained with {message}; its "
                               f"optimizer state fixes {setting}, so resume with {message.split(',')[0]}, or train "
                               "afresh into another --out")


def test_a_resume_that_turns_on_float16_autocast_starts_a_fresh_gradient_scale(data, tmp_path):
    train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))  # no gradient scaler: its state is empty
    with pytest.warns(UserWarning, match=r"last\.pth: the checkpoint was trained without --amp-dtype float16, so it "
                                         r"has no gradient scale: the scaler starts afresh"):
        trainer = Trainer(config(data, tmp_path, epochs=2, max_steps_per_epoch=1, resume="auto", amp=True,
                                 amp_dtype="float16"))  # failed in GradScaler.load_state_dict
    assert trainer.global_step == 1 and trainer.scaler.get_scale() == 65536.0
    trainer.close()


def test_a_resume_on_other_classes_names_the_checkpoint_and_the_first_other_class(data, tmp_path):
    train(config(data, tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    other = tmp_path / "other"
    for split in ("train", "val"):
        for index, folder in enumerate(sorted((data / split).iterdir())):
            target = other / split / (folder.name if index != 2 else folder.name + "x")
            target.mkdir(parents=True)
            for image in folder.iterdir():
                (target / image.name).symlink_to(image)
    with pytest.raises(DataError, match=rf"^--resume {tmp_path / 'run' / 'last.pth'}: {other}: class 2 is "
                                        r"'n00000003x', the checkpoint's is 'n00000003'; resume with the data"):
        Trainer(config(other, tmp_path / "run", max_steps_per_epoch=1, resume="auto"))


def test_resume_inside_an_epoch_with_another_global_batch_is_refused_even_with_the_same_steps(data, tmp_path):
    """--max-steps-per-epoch 2 gives 2 steps per epoch with batch 8 and with 16; a checkpoint after 1 batch of 8
    resumed with batch 16 would skip 16 images, 8 of them never trained on."""
    crash_before_step(config(data, tmp_path, max_steps_per_epoch=2, checkpoint_every=1), 2)
    assert load_checkpoint(tmp_path / "last.pth")["epoch_steps"] == 1
    with pytest.raises(UserFacingError, match=r"--resume .*last\.pth: the checkpoint stopped after 1 batches of epoch 1 \(global batch "
                                              r"8 = --batch-size 8 x 1 process\); this run has global batch 16 "
                                              r".*resume with the same global batch"):
        Trainer(config(data, tmp_path, max_steps_per_epoch=2, batch_size=16, resume="auto"))


def test_original_weight_decay_is_the_originals_l2_loss_term_and_refused_with_adamw():
    """The original adds tf.contrib.layers.l2_regularizer(wd)(w) = wd * sum(w**2) / 2 to the loss for every kernel and
    bias (convrnns utils/model_tool.py, conv(), lines 232 and 242: ``regularizer=tf.contrib.layers.l2_regularizer(
    weight_decay)``).
    Two momentum-SGD steps with our groups equal two plain-SGD steps on that loss; AdamW's decay is decoupled
    from the gradient, another regulariser, so the combination is refused rather than silently different."""
    from neurozoo import convrnn
    from neurozoo.convrnn.training.optim import build_optimizer
    from neurozoo.datasets.errors import UserFacingError

    def two_steps(l2_in_loss: bool, decay: bool = True):
        torch.manual_seed(0)
        model = convrnn.create_model("rgc_shallow", num_classes=3, **TINY)
        images, target = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 2])
        settings = TrainConfig(model="rgc_shallow", data=".", lr=0.05, momentum=0.9, weight_decay=0.0,
                               original_weight_decay=decay)
        groups = model.weight_decay_groups()
        optimizer = (torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if l2_in_loss
                     else build_optimizer(model, settings))
        for _ in range(2):
            loss = unrolled_loss(model(images), target)
            if l2_in_loss:
                loss = loss + sum(g["weight_decay"] * p.pow(2).sum() / 2 for g in groups for p in g["params"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.state_dict()

    ours, original, undecayed = two_steps(False), two_steps(True), two_steps(False, decay=False)
    for name in ours:
        assert torch.allclose(ours[name], original[name], atol=1e-8, rtol=1e-6), name
    # the decay is visible at that tolerance, so the comparison can fail
    assert not all(torch.allclose(undecayed[k], original[k], atol=1e-8, rtol=1e-6) for k in ours)
    with pytest.raises(UserFacingError, match=r"--original-weight-decay is the original's L2 term in the loss.*"
                                              r"--optimizer adamw.*--optimizer sgd"):
        TrainConfig(model="rgc_shallow", data=".", optimizer="adamw", original_weight_decay=True).validate()


def test_gpu_of_each_process_under_torchrun_or_one_gpu_per_task(monkeypatch):
    """``cuda`` is cuda:LOCAL_RANK among 8 visible GPUs, cuda:0 when the launcher shows each task only its own GPU
    (was cuda:LOCAL_RANK, an invalid device there); an explicit cuda:N that is not the process's own GPU is refused."""
    from neurozoo.convrnn.training.distributed import resolve_device
    from neurozoo.datasets.errors import UserFacingError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert resolve_device("cuda", local_rank=3, world_size=8) == torch.device("cuda", 3)
    assert resolve_device("cuda:3", local_rank=3, world_size=8) == torch.device("cuda", 3)
    assert resolve_device("cuda:5", local_rank=0, world_size=1) == torch.device("cuda", 5)
    with pytest.raises(UserFacingError, match=r"--device cuda:0 in a run of 8 processes: this process \(LOCAL_RANK 3\) "
                                              r"has GPU cuda:3.*share one GPU; pass --device cuda"):
        resolve_device("cuda:0", local_rank=3, world_size=8)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto", local_rank=5, world_size=8) == torch.device("cuda", 0)
    assert resolve_device("cuda:0", local_rank=5, world_size=8) == torch.device("cuda", 0)


def test_evaluation_hands_the_model_back_in_training_mode_even_when_it_fails(data, tmp_path):
    """evaluate() set eval mode and train mode again by hand: a failing batch left the model in eval mode."""
    trainer = Trainer(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))
    trainer.model.train()
    trainer.eval_model = lambda images: (_ for _ in ()).throw(RuntimeError("a failing batch"))
    with pytest.raises(RuntimeError, match="a failing batch"):
        trainer.evaluate()
    assert trainer.model.training


@pytest.mark.parametrize("cpus, expected", [(1, 0), (2, 1), (3, 2), (16, 4)])
def test_the_default_number_of_loading_workers_follows_the_cpus_this_process_may_use(cpus, expected, monkeypatch,
                                                                                     capsys):
    """A fixed 4 workers made torch warn on a 2-CPU machine (more workers than CPUs, less one); the default is
    min(4, available CPUs - 1) now, the affinity mask counting (a container's limit), said in --help."""
    import argparse

    from neurozoo.convrnn.training import cli as train_cli
    from neurozoo.convrnn.training.cpus import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_workers() == expected and TrainConfig(model="m", data="d").workers == expected
    parser = argparse.ArgumentParser(prog="zoo train")
    train_cli.add_arguments(parser)
    assert parser.parse_args(["m", "--data", "d"]).workers == expected
    assert parser.parse_args(["m", "--data", "d", "--workers", "3"]).workers == 3
    parser.print_help()
    assert f"min(4, available CPUs - 1), {expected} here" in " ".join(capsys.readouterr().out.split())
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows: every CPU of the machine
    assert default_workers() == 4


def nan_weights_after_step(trainer, step: int):
    """The trainer's first weight turns NaN in the optimizer step of training step ``step`` (1-based), whose loss was
    finite: an overflowing gradient."""
    def poison(optimizer, args, kwargs):
        if trainer.global_step == step - 1:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    return trainer.optimizer.register_step_post_hook(poison)


def test_an_epoch_whose_validation_loss_is_not_finite_stops_the_run_with_its_last_good_checkpoints(data, tmp_path,
                                                                                                    straight, capsys):
    """The last step of epoch 2 turns the weights NaN (its own loss was finite): the validation loss is nan. The run
    went on as if nothing had happened: it logged the epoch, wrote those weights as last.pth (best.pth too, when the
    NaN logits' top-1 happened to beat the best) and ended "finished" (and before, on an inf validation loss, failed
    printing the epoch line). Now it stops there naming epoch, step and loss; last.pth and best.pth keep epoch 1,
    run.json says it diverged, and a resume starts from epoch 1's checkpoint."""
    trainer = Trainer(config(data, tmp_path, quiet=False))  # 2 epochs of 4 steps
    nan_weights_after_step(trainer, 8)
    fit_raises(trainer, FloatingPointError,
               match=r"^validation loss is nan after epoch 2 \(step 8, learning rate [0-9.e-]+\)$")
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == ["epoch 1/2 step 4"]
    for name in ("last.pth", "best.pth"):
        state = load_checkpoint(tmp_path / name)
        assert (state["epoch"], state["global_step"]) == (1, 4)
        assert all(torch.isfinite(value).all() for value in state["model"].values())
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["finished"] is False and run["final_epoch"] is None
    assert run["diverged"]["epoch"] == 2 and run["diverged"]["step"] == 8
    assert run["diverged"]["error"].startswith("validation loss is nan after epoch 2 (step 8, ")
    assert [r["kind"] for r in read_metrics(tmp_path / "metrics.jsonl")] == ["iter"] * 4 + ["epoch"] + ["iter"] * 4

    resumed = Trainer(config(data, tmp_path, resume="auto"))
    assert (resumed.epoch, resumed.global_step) == (1, 4)
    resumed.fit()
    resumed.close()
    assert json.loads((tmp_path / "run.json").read_text())["diverged"] is None  # this part did not
    same_run(tmp_path, straight)


def test_run_json_keeps_how_every_part_of_a_resumed_run_ended(data, tmp_path):
    """Two epochs of one step: the run diverges in epoch 2 (validation loss nan), its resume from epoch 1 diverges
    again, the next is stopped by SIGTERM in epoch 2's validation, the last finishes. A resume reset run.json's
    diverged to null, and segments kept neither how a part ended nor a part that started at the checkpoint's step
    (the second divergence was dropped by the next resume): now every part is kept with its outcome."""
    from neurozoo.datasets.termination import sigterm_deferred

    def part(poison=False, terminate=False):
        trainer = Trainer(config(data, tmp_path, max_steps_per_epoch=1, resume="auto"))
        if poison:
            nan_weights_after_step(trainer, 2)
        if terminate:
            trainer.model.register_forward_pre_hook(
                lambda module, inputs: None if module.training else os.kill(os.getpid(), signal.SIGTERM))
        try:
            with sigterm_deferred():
                trainer.fit()
        finally:
            trainer.close()

    for kwargs, error in (({"poison": True}, FloatingPointError), ({"poison": True}, FloatingPointError),
                          ({"terminate": True}, KeyboardInterrupt)):
        with pytest.raises(error):
            part(**kwargs)
        assert json.loads((tmp_path / "run.json").read_text())["finished"] is False
    part()
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["finished"] is True and run["diverged"] is None  # the top level is the last part's
    assert [(s["start_step"], s["outcome"], s["end_step"]) for s in run["segments"]] == [
        (0, "diverged", 2), (1, "diverged", 2), (1, "stopped", 2), (2, "finished", 2)]
    errors = [s.get("error") for s in run["segments"]]
    assert all(e.startswith("validation loss is nan after epoch 2 (step 2, ") for e in errors[:2])
    assert errors[2:] == ["KeyboardInterrupt: signal 15", None]


def test_weights_that_turn_non_finite_inside_an_epoch_are_never_checkpointed(data, tmp_path, straight):
    """--checkpoint-every 1, and step 3's optimizer step (a finite loss) turns the weights NaN: the checkpoint of
    step 3 wrote them over last.pth (the next loss, nan, stopped the run: its resume met nan at once). Now that
    checkpoint is refused with the name of the first non-finite weight, last.pth keeps step 2, and the resume from
    it (the weights fine again) ends as the uninterrupted run."""
    trainer = Trainer(config(data, tmp_path, checkpoint_every=1))
    first = next(iter(trainer.model.state_dict()))
    nan_weights_after_step(trainer, 3)
    fit_raises(trainer, FloatingPointError, match=rf"^the weights are non-finite \({re.escape(first)}\) after step "
                                                  r"3 \(epoch 1, learning rate [0-9.e-]+\); not checkpointed$")
    state = load_checkpoint(tmp_path / "last.pth")
    assert (state["epoch"], state["epoch_steps"], state["global_step"]) == (0, 2, 2)
    assert all(torch.isfinite(value).all() for value in state["model"].values())
    assert json.loads((tmp_path / "run.json").read_text())["diverged"]["step"] == 3
    train(config(data, tmp_path, checkpoint_every=1, resume="auto"))
    same_run(tmp_path, straight)


def test_a_rank_whose_weights_are_non_finite_stops_every_rank_before_the_checkpoint(data, tmp_path, monkeypatch):
    """Rank 0 of two is played (the gather faked as a peer answers it): rank 1 reports non-finite weights at the
    epoch's end, so rank 0 stops too, at the same point, and writes nothing."""
    from neurozoo.convrnn.training import engine

    monkeypatch.setattr(engine, "all_gather_objects", lambda obj: [obj, "conv1.weight"] if obj is None else [obj])
    with pytest.raises(FloatingPointError, match=r"^the weights are non-finite \(conv1\.weight\) after step 1 "
                                                 r"\(epoch 1, "):
        train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1))
    assert not (tmp_path / "last.pth").exists() and not (tmp_path / "best.pth").exists()
    assert json.loads((tmp_path / "run.json").read_text())["diverged"]["epoch"] == 1


def test_an_epoch_without_validation_whose_weights_turned_non_finite_logs_no_row_and_saves_nothing(data, tmp_path):
    """Without val/ nothing validates the weights at the epoch's end: its last step turned them NaN, and the epoch's
    row was logged as done before its checkpoint was refused (with no check, the NaN weights were saved as last.pth)."""
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(data / "train", folder / "train")
    with pytest.warns(UserWarning, match="has no val/ folder"):
        trainer = Trainer(config(folder, tmp_path / "run", epochs=2))
    nan_weights_after_step(trainer, 8)
    fit_raises(trainer, FloatingPointError, match=r"^the weights are non-finite \(.+\) after step 8 \(epoch 2, ")
    assert [(r["kind"], r["step"]) for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "epoch"] \
        == [("epoch", 4)]
    assert load_checkpoint(tmp_path / "run" / "last.pth")["global_step"] == 4


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_sigterm_or_ctrl_c_during_a_training_step_stops_the_trainer_before_the_next_one(data, tmp_path, signum,
                                                                                         python_ctrl_c):
    """SIGTERM raised KeyboardInterrupt inside whatever ran (a search worker's, from its handler): now the request
    waits for the step in progress to finish and the trainer stops before the next batch. Ctrl-C too (it stopped
    inside the step, and last.pth kept the step of the last checkpoint only)."""
    from neurozoo.datasets.termination import sigterm_deferred

    trainer = Trainer(config(data, tmp_path, epochs=1))  # 4 steps
    calls = []

    def terminate_in_step_two(module, inputs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)
            time.sleep(0.05)  # the handler has run by now, inside this step

    trainer.train_model.register_forward_pre_hook(terminate_in_step_two)
    try:
        with sigterm_deferred(), pytest.raises(KeyboardInterrupt, match=f"signal {int(signum)}"):
            trainer.fit()
        assert trainer.global_step == 2 and len(calls) == 2
        state = load_checkpoint(tmp_path / "last.pth")  # the step where it stopped is kept
        assert (state["epoch"], state["epoch_steps"], state["global_step"]) == (0, 2, 2)
    finally:
        trainer.close()


def test_a_second_ctrl_c_stops_training_at_once_without_a_checkpoint(data, tmp_path, capfd, python_ctrl_c):
    """The first Ctrl-C waits for the step to finish and says so; a second one stops at once (in the step), and the
    checkpoint of the last step is not written."""
    trainer = Trainer(config(data, tmp_path, epochs=1, checkpoint_every=1))

    def ctrl_c_twice_in_step_two(module, inputs):
        if trainer.global_step == 1:
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)

    trainer.train_model.register_forward_pre_hook(ctrl_c_twice_in_step_two)
    fit_raises(trainer, KeyboardInterrupt,
               match="stopped at once by a second Ctrl-C: the steps since the last checkpoint were lost")
    assert load_checkpoint(tmp_path / "last.pth")["global_step"] == 1
    assert capfd.readouterr().err.count("Ctrl-C: stopping at the next batch") == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's again after fit


def test_a_sigterm_inside_a_finaliser_is_kept_for_the_next_safe_point(capfd):
    """The handler raised KeyboardInterrupt wherever Python was: inside a garbage-collector callback (optuna collects
    after each trial) Python printed "Exception ignored in ..." with a traceback and dropped it, so a search worker
    told to stop ran on (seen in CI). The request now waits for a safe point, and ends with its block."""
    from neurozoo.datasets.termination import raise_if_terminated, sigterm_deferred

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here, inside the finaliser

    with sigterm_deferred():
        Finalised()  # collected at once
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            raise_if_terminated()
    assert "Exception ignored" not in capfd.readouterr().err
    raise_if_terminated()  # nothing pending outside the block


def test_zoo_train_stopped_with_sigterm_says_what_it_kept(data, tmp_path):
    """SIGTERM (kill, a scheduler's preemption) ended a one-process ``zoo train`` at once with exit 143 and no word;
    it now stops between batches with a checkpoint of that step: exit 130, what was kept, and how to continue."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "neurozoo.convrnn.training", "rgc_shallow", "--data", str(data), "--out", str(out),
            "--epochs", "500", "--batch-size", "8", "--max-steps-per-epoch", "1", "--image-size", "32",
            "--workers", "0", "--quiet", "--device", "cpu"] + [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    process = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not (out / "last.pth").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    state = load_checkpoint(out / "last.pth")
    where = f"the end of epoch {state['epoch']}" if not state["epoch_steps"] else f"1 of 1 batches of epoch {state['epoch'] + 1}"
    assert process.returncode == 130 and stderr.splitlines()[-1] == (
        f"zoo train: interrupted; {out / 'last.pth'} holds step {state['global_step']} ({where}): rerun the same "
        "command with --resume to continue from it"), stderr[-2000:]
    assert 1 <= state["epoch"] < 500


def test_a_kill_between_an_epochs_two_checkpoints_leaves_a_best_pth_that_resume_completes(data, tmp_path, monkeypatch):
    """A best epoch writes two checkpoints. last.pth was written first: a kill between the two left last.pth
    holding that epoch with its best_top1 and no best.pth for it, so the resumed run (nothing better after it, or
    nothing left to run) never wrote best.pth: here the finished run had none. best.pth is written first now: a kill
    between them leaves last.pth one epoch back, whose rerun rewrites best.pth as an uninterrupted run does."""
    from neurozoo.convrnn.training import engine

    save, calls = engine.save_checkpoint, []

    def killed_at_the_second_write(state, path):
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # SIGKILL, Ctrl-C: after the epoch's first checkpoint, before its second
        return save(state, path)

    cfg = config(data, tmp_path, epochs=1, max_steps_per_epoch=1)
    monkeypatch.setattr(engine, "save_checkpoint", killed_at_the_second_write)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(engine, "save_checkpoint", save)
    train(config(data, tmp_path, epochs=1, max_steps_per_epoch=1, resume="auto"))
    best, last = load_checkpoint(tmp_path / "best.pth"), load_checkpoint(tmp_path / "last.pth")
    assert best["epoch"] == last["epoch"] == 1 and best["best_top1"] == last["best_top1"]
    assert all(torch.equal(best["model"][name], last["model"][name]) for name in last["model"])


def test_a_full_disk_while_the_metrics_log_is_rewritten_on_resume_keeps_its_rows(tmp_path):
    """A resume rewrites metrics.jsonl without the rows logged after its checkpoint. The rewrite truncated the file in
    place: a kill or a full disk in the middle left the rows written so far, and the next resume kept only those
    (the epochs before were gone from the log and the learning curve). The rewrite is renamed into place now."""
    from full_disk import files_limited_to

    from neurozoo.convrnn.training.metrics_log import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (1, 2, 3):
        log.write(kind="iter", step=step, loss=1.0 / step)
    size = (tmp_path / "metrics.jsonl").stat().st_size
    with files_limited_to(size // 2), pytest.raises(OSError):
        log.truncate_after(2)  # two of three rows: more than half of the file
    log.close()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_a_zoo_train_killed_after_its_last_epoch_draws_its_curve_when_resumed_and_says_what_it_resumed(
        data, tmp_path, capsys, monkeypatch):
    """Killed after the last epoch's checkpoint, before (or while) training_curve.png was drawn: the rerun with
    --resume had no epoch left to train, drew no curve and said nothing, so the run never got its curve. It draws it
    now, and a resumed run says which checkpoint and step it continues from."""
    from neurozoo.convrnn.training import curve
    from neurozoo.leaderboard.cli import main

    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--epochs", "1", "--batch-size", "8",
            "--image-size", "32", "--workers", "0", "--max-steps-per-epoch", "1", "--set", "width_multiplier=0.125",
            "--set", "n_steps=8", "--set", "image_steps=8", "--set", "norm=none", "--quiet"]
    draw = curve.plot_training_curve

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(curve, "plot_training_curve", killed)
    assert main(args) == 130
    assert not (tmp_path / "training_curve.png").exists()
    capsys.readouterr()
    monkeypatch.setattr(curve, "plot_training_curve", draw)
    assert main(args + ["--resume"]) == 0
    assert (tmp_path / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().err.splitlines()[0] == (f"resuming {tmp_path / 'last.pth'}: step 1 (the end of epoch 1); "
                                                       "nothing left to train at --epochs 1: a higher --epochs trains on")


def test_a_finished_runs_curve_is_not_left_beside_its_resume_for_more_epochs_that_stopped(data, tmp_path,
                                                                                          monkeypatch):
    """A run of 1 epoch draws its curve, titled "finished, 1 epochs"; resumed with --epochs 2 and stopped (Ctrl-C,
    SIGTERM, a divergence), the folder kept that curve beside a run that is not finished (run.json, metrics.jsonl).
    The curve goes when the run trains on, and comes back when it is done."""
    from neurozoo.convrnn.training.engine import Trainer
    from neurozoo.leaderboard.cli import main

    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--batch-size", "8", "--image-size",
            "32", "--workers", "0", "--max-steps-per-epoch", "1", "--quiet",
            *(f"--set={k}={v}" for k, v in TINY.items())]
    curve = tmp_path / "training_curve.png"
    assert main(args + ["--epochs", "1"]) == 0 and curve.exists()
    assert main(args + ["--epochs", "1", "--resume"]) == 0 and curve.exists()  # nothing left to train: drawn again
    save = Trainer.save

    def stopped(self, is_best):
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(Trainer, "save", stopped)
    assert main(args + ["--epochs", "2", "--resume"]) == 130
    assert not curve.exists() and json.loads((tmp_path / "run.json").read_text())["finished"] is False
    monkeypatch.setattr(Trainer, "save", save)
    assert main(args + ["--epochs", "2", "--resume"]) == 0 and curve.exists()


def test_a_resume_with_fewer_epochs_than_its_checkpoint_trained_is_refused_naming_its_position(data, tmp_path, capsys):
    """--epochs 1 on a checkpoint of 2 epochs had nothing to train: zoo train said "done" and drew the curve titled
    "finished, 2 epochs", while run.json said finished false; a checkpoint stopped in epoch 2's validation was
    recorded as finished after epoch 1. Both are refused now, before anything is written."""
    from neurozoo.leaderboard.cli import main

    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--batch-size", "8", "--image-size",
            "32", "--workers", "0", "--max-steps-per-epoch", "1", "--quiet",
            *(f"--set={k}={v}" for k, v in TINY.items())]
    assert main(args + ["--epochs", "2"]) == 0
    state = load_checkpoint(tmp_path / "last.pth")
    save_checkpoint({**state, "epoch": 1, "epoch_steps": 1}, tmp_path / "in_validation.pth")  # stopped there
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    capsys.readouterr()
    for checkpoint, position in (("last.pth", "the end of epoch 2"),
                                 ("in_validation.pth", "1 of 1 batches of epoch 2")):
        assert main(args + ["--epochs", "1", "--resume", str(tmp_path / checkpoint)]) == 2
        assert capsys.readouterr().err == (f"zoo train: error: --resume {tmp_path / checkpoint}: the checkpoint holds "
                                           f"step 2 ({position}), past --epochs 1: resume with --epochs 2 or more\n")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == written
    assert json.loads((tmp_path / "run.json").read_text())["finished"] is True


def test_a_loss_that_diverges_on_another_rank_stops_every_rank_at_that_step(data, tmp_path, capsys, monkeypatch):
    """The non-finite loss was checked by each rank alone: the rank whose batch gave inf raised, and the others failed
    in backward()'s gradient all-reduce (a gloo traceback; NCCL waits there). Rank 0 of two is played here: rank 1's loss
    is nan at step 0 (the reductions are faked, as a peer would answer them), and rank 0 stops there, naming it."""
    from neurozoo.convrnn.training import engine
    from neurozoo.leaderboard.cli import main

    asked = []

    def max_over_ranks(value, buffer, also=None):  # the stop point's (with its batch's test, ``also``), then the loss
        asked.append(max(value, 0 if also is None else int(also)))  # check's: rank 1 reports a non-finite loss
        return 1 if len(asked) == 2 else value

    monkeypatch.setattr(engine, "max_over_ranks", max_over_ranks)
    monkeypatch.setattr(engine, "all_gather_objects", lambda obj: [obj, float("nan")] if isinstance(obj, float) else [obj])
    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--epochs", "1", "--batch-size", "8",
            "--image-size", "32", "--workers", "0", "--quiet", *(f"--set={key}={value}" for key, value in TINY.items())]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo train: error: loss is nan at step 0 on rank 1 (epoch 1, learning rate 0.01); "), err
    assert asked == [0, 0] and not (tmp_path / "last.pth").exists()


def test_a_diverged_run_says_in_one_line_what_was_kept_and_how_to_go_on(data, tmp_path, capsys):
    """A non-finite loss ended zoo train with a traceback (FloatingPointError, exit 1), without a word of the
    checkpoint kept; the interrupt's advice (rerun the same command with --resume) would diverge there again."""
    from neurozoo.leaderboard.cli import main

    args = ["train", "rgc_shallow", "--data", str(data), "--out", str(tmp_path), "--epochs", "2", "--batch-size", "8",
            "--image-size", "32", "--workers", "0", "--lr", "1e6", "--optimizer", "sgd", "--schedule", "constant",
            "--checkpoint-every", "1", "--quiet", *(f"--set={key}={value}" for key, value in TINY.items())]
    assert main(args) == 2
    err = capsys.readouterr().err
    state = load_checkpoint(tmp_path / "last.pth")
    assert state["global_step"] >= 1 and all(torch.isfinite(p).all() for p in state["model"].values())
    assert re.match(r"zoo train: error: loss is nan at step \d+ \(epoch [12], learning rate 1e\+06\); ", err), err
    assert err.count("\n") == 1, err
    assert f"{tmp_path / 'last.pth'} holds step {state['global_step']} (" in err
    diverged = json.loads((tmp_path / "run.json").read_text())["diverged"]  # the run's record says so, not finished
    assert diverged["step"] >= state["global_step"] and err.startswith(f"zoo train: error: {diverged['error']}; ")
    assert err.endswith("a rerun with --resume diverges there again (it keeps the checkpoint's --lr): train afresh "
                        "into another --out, with a lower --lr or --grad-clip\n")
    assert main(args + ["--resume"]) == 2  # as it says: the checkpoint's weights meet the same loss
    assert capsys.readouterr().err.endswith(err)


def test_ranks_data_and_resume_differences_are_named_and_alike_ranks_pass():
    """What ``rank_agreement.check_ranks_agree`` tells of a rank whose data or checkpoint differ from rank 0's (a node
    with its own copy of --data or --out): before, other class names trained silently under other labels, and a rank
    that found no checkpoint trained from scratch beside ranks that resumed."""
    from neurozoo.convrnn.training.rank_agreement import data_difference, resume_difference

    split = {"images": 16, "files_sha256": "a"}
    first = {"classes": ["n01", "n02"], "train": split, "val": {"images": 4, "files_sha256": "b"}}
    assert data_difference(first, dict(first)) is None
    assert data_difference(first, {**first, "classes": ["n01", "n03"]}) == "class 1 is 'n03', rank 0's is 'n02'"
    assert data_difference(first, {**first, "classes": ["n01"]}) == "1 class folders in train/, rank 0 has 2"
    assert data_difference(first, {**first, "train": {"images": 24, "files_sha256": "c"}}) == \
        "24 images in train/, rank 0 has 16"
    assert data_difference(first, {**first, "train": {"images": 16, "files_sha256": "c"}}) == \
        "the file names or sizes of its 16 images in train/ differ from rank 0's (sha256 of the list)"
    assert data_difference(first, {**first, "val": None}) == "val/ is absent there, present on rank 0"

    resumed = {"checkpoint": "runs/train/last.pth", "position": "step 3 (1 of 2 batches of epoch 2)"}
    assert resume_difference(resumed, {**resumed, "checkpoint": "/node1/runs/train/last.pth"}) is None
    assert resume_difference(resumed, {"checkpoint": None, "position": None}) == \
        "it found no checkpoint and starts afresh, rank 0 resumes runs/train/last.pth at step 3 (1 of 2 batches of epoch 2)"


@pytest.mark.parametrize("environ, expected", [
    ({}, None), ({"WORLD_SIZE": "1"}, None),
    ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}, None),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}, "WORLD_SIZE=2 but RANK not set: launch with torchrun"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "WORLD_SIZE=2 but MASTER_ADDR, MASTER_PORT not set: launch with torchrun"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}, "RANK=2 with WORLD_SIZE=2: expected 0..1"),
])
def test_a_process_launched_without_torchrun_s_variables_is_told_which_are_missing(environ, expected):
    """Before, a WORLD_SIZE without RANK made every process rank 0, and one without MASTER_ADDR failed in torch with
    a traceback."""
    from neurozoo.convrnn.training.distributed import launch_problem

    problem = launch_problem(environ)
    assert problem is None if expected is None else problem.startswith(expected)
