"""``imagenet.val`` (``zoo score MODEL imagenet.val --data DIR``): top-1 / top-5 of a model's answer on a folder.

Ground truths: a ``zoo train`` checkpoint scores exactly the val_top1 / val_top5 / val_loss its metrics.jsonl logged
for the same folder; an oracle that answers the label's one-hot scores 100 %, one with permuted classes 0 %; the
class index is the sorted class folders' (the ImageNet-1k index for ImageNet WNIDs under a 1000-class model); the
record reproduces bit-identically through ``zoo reproduce``."""
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from neurozoo import benchmarks, convrnn
from neurozoo.convrnn.training import read_metrics
from neurozoo.convrnn.training.imagefolder import imagenet_class_to_idx
from neurozoo.convrnn.training.synthetic import write_image_folder
from neurozoo.convrnn.training.transforms import IMAGENET_MEAN, IMAGENET_STD
from neurozoo.datasets.errors import DataError
from neurozoo.leaderboard.cli import main

TINY = ["--set", "width_multiplier=0.125", "--set", "n_steps=10", "--set", "image_steps=10", "--set", "norm=none"]
STEP = 24  # red level per class: class k's images are a flat (24 k, 128, 128)


pytestmark = pytest.mark.usefixtures("one_thread")


def _zoo(*argv):
    return main([str(a) for a in argv])


def coded_folder(root, wnids, per_class=2):
    """``root/<wnid>/*.png``: a flat image whose red level encodes the class's sorted position."""
    for k, wnid in enumerate(sorted(wnids)):
        (root / wnid).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((20, 20, 3), (STEP * k, 128, 128), np.uint8)).save(root / wnid / f"{wnid}_{i}.png")
    return root


class Oracle(nn.Module):
    """Reads the class from the red level; answers its one-hot (``shift``: the class ``shift`` places on).
    ``steps``: a ConvRNN-like output whose earlier readout steps answer ``shift + 1`` places on."""

    def __init__(self, num_classes=8, shift=0, steps=1):
        super().__init__()
        self.num_classes, self.shift, self.steps = num_classes, shift, steps
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        red = x[:, 0].mean((1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        label = torch.round(red * 255 / STEP).long()
        one_hot = lambda shift: nn.functional.one_hot((label + shift) % self.num_classes, self.num_classes).float()
        if self.steps == 1:
            return one_hot(self.shift)
        logits = torch.stack([one_hot(self.shift + 1)] * (self.steps - 1) + [one_hot(self.shift)])
        return SimpleNamespace(logits=logits)


WNIDS = [f"n0{i:07d}" for i in (7, 3, 5, 1, 8, 2, 6, 4)]  # created unsorted; index = sorted position


def test_an_oracle_scores_100_a_permuted_one_0_and_each_readout_step_is_scored(tmp_path):
    folder = coded_folder(tmp_path / "val", WNIDS)
    bench = benchmarks.load("imagenet.val")
    exact = bench.score(Oracle(), tmp_path, image_size=16, batch_size=3, progress=False)
    assert exact.value == 100.0 and exact.provenance["settings"]["top5"] == 100.0
    assert exact.provenance["settings"]["n_images"] == 16 and exact.provenance["settings"]["data"] == str(folder)
    assert exact.provenance["settings"]["class_index"] == "sorted class folders"
    assert bench.score(Oracle(shift=3), folder, image_size=16, batch_size=3, progress=False).value == 0.0
    # a ConvRNN-like output: the answer is the last step; every step's accuracy is in per_bin
    unrolled = bench.score(Oracle(steps=3), folder, image_size=16, batch_size=5, progress=False)
    assert unrolled.value == 100.0
    assert [(row["step"], row["top1"]) for row in unrolled.per_bin] == [(0, 0.0), (1, 0.0), (2, 100.0)]
    # --max-images: a seeded draw over the classes, not the first classes' images
    some = bench.score(Oracle(), folder, image_size=16, batch_size=4, max_images=6, seed=1, progress=False)
    assert some.provenance["settings"]["n_images"] == 6 and some.value == 100.0
    assert some.provenance["data_sha256"] != exact.provenance["data_sha256"]


def test_bad_folders_are_refused_naming_the_path_and_the_classes_expected_and_found(tmp_path, capsys):
    bench = benchmarks.load("imagenet.val")
    with pytest.raises(DataError, match=f"--data {tmp_path / 'nowhere'} does not exist"):
        bench.score(Oracle(), tmp_path / "nowhere", image_size=16, progress=False)
    four = coded_folder(tmp_path / "four", WNIDS[:4])
    with pytest.raises(DataError, match=f"{four}: 4 class folders found, the model has 8 classes"):
        bench.score(Oracle(), four, image_size=16, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'empty'} has no class folders"):
        bench.score(Oracle(), tmp_path / "empty", image_size=16, progress=False)
    (four / "n09999999").mkdir()
    with pytest.raises(DataError, match=f"class folder {four / 'n09999999'} has no images"):
        bench.score(Oracle(num_classes=5), four, image_size=16, progress=False)
    assert _zoo("score", "feedforward_shallow", "imagenet.val") == 2
    assert "--data DIR" in capsys.readouterr().err
    assert _zoo("score", "feedforward_shallow", "imagenet.val", "--data", four, "--layers", "conv1") == 2
    assert "--layers apply to the neural benchmarks" in capsys.readouterr().err
    assert _zoo("score", "feedforward_shallow", "cowley2023.V4", "--data", four) == 2
    assert ("--data applies to the benchmarks on your own data (imagenet.val, retina_h5.heldout) only, not to "
            "cowley2023.V4") in capsys.readouterr().err


def test_imagenet_wnids_under_a_1000_class_model_take_their_imagenet_index(shared_data, tmp_path):
    """Real sample images: 8 ImageNet classes as class folders, and as the flat <wnid>_<label> files; a model that
    always answers the first folder's ImageNet-1k class scores 1/8 (with the sorted position, index 0, it scores 0)."""
    files = sorted((shared_data / "imagenet_sample").glob("n*.JPEG"))[100:900:100]
    if len(files) < 8:
        pytest.skip(f"{shared_data / 'imagenet_sample'} holds fewer than 8 images")
    wnids = [f.name.split("_")[0] for f in files]
    for f, wnid in zip(files, wnids):
        (tmp_path / "val" / wnid).mkdir(parents=True)
        shutil.copy(f, tmp_path / "val" / wnid / f.name)
        (tmp_path / "flat").mkdir(exist_ok=True)
        shutil.copy(f, tmp_path / "flat" / f.name)

    class Constant(nn.Module):
        num_classes = 1000

        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(1000))
            self.logits.data[imagenet_class_to_idx()[wnids[0]]] = 1

        def forward(self, x):
            return self.logits.expand(len(x), -1)

    bench = benchmarks.load("imagenet.val")
    for folder in (tmp_path, tmp_path / "flat"):
        score = bench.score(Constant(), folder, image_size=32, batch_size=4, progress=False)
        assert score.value == 12.5 and score.provenance["settings"]["class_index"] == "imagenet-1k"


def test_a_zoo_train_checkpoint_scores_the_val_accuracy_it_logged_and_the_record_reproduces(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", n_classes=4, per_class=8, val_per_class=3, size=32)
    out = tmp_path / "run"
    assert _zoo("train", "rgc_shallow", "--data", data, "--out", out, "--epochs", "1", "--batch-size", "8",
                "--image-size", "32", "--workers", "0", "--optimizer", "adamw", "--lr", "1e-3", "--quiet", *TINY) == 0
    logged = read_metrics(out / "metrics.jsonl", kind="epoch")[-1]
    assert 25 < logged["val_top1"] < 100, logged  # neither chance nor every image: a count that can be off
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    # the ImageNet root (val/ is found), zoo train's batch size and image size (read from the checkpoint)
    assert _zoo("score", "rgc_shallow", "imagenet.val", "--data", data, "--checkpoint", out / "last.pth",
                "--batch-size", "8", "--workers", "0", "--db", db, "--out", tmp_path / "results", *TINY) == 0
    printed = capsys.readouterr().out
    first = convrnn.create_model("rgc_shallow", width_multiplier=0.125, n_steps=10, image_steps=10).first_readout_step
    assert f"top-1 {logged['val_top1']:.2f} %" in printed and f"top-1 per readout step: {first}: " in printed
    summary = json.loads(next((tmp_path / "results").glob("*imagenet.val*.json")).read_text())
    settings = summary["provenance"]["settings"]
    assert summary["value"] == logged["val_top1"] and settings["top5"] == logged["val_top5"]
    assert settings["loss"] == logged["val_loss"]  # the same images, transform, batches and answer, bit for bit
    assert settings["n_images"] == 12 and settings["image_size"] == 32 and settings["class_index"] == "checkpoint classes"
    assert [row["step"] for row in summary["per_bin"]] == list(range(first, 10)) and summary["per_bin"][-1]["top1"] == summary["value"]
    run = json.loads((out / "run.json").read_text())
    assert run["val_images"] == 12 and len(summary["provenance"]["data_sha256"]) == 64

    assert _zoo("reproduce", "1", "--db", db) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    # another image under the same name: the folder's checksum (names and sizes) no longer matches
    victim = next((data / "val" / "n00000001").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0" * 16)
    assert _zoo("reproduce", "1", "--db", db) == 1
    assert "data_sha256" in capsys.readouterr().out


def test_zoo_score_says_where_it_stored_the_score_and_the_provenance_it_recorded(tmp_path, capsys):
    """zoo score printed the record's id and the plot, not the summary it wrote nor the code, torch and device the
    record keeps; and the summary lacked the environment the record held."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.datasets.provenance import code_version, device_name

    four = coded_folder(tmp_path / "four", WNIDS[:4])
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert _zoo("score", "rgc_shallow", "imagenet.val", "--data", four, "--image-size", "16", "--workers", "0", *TINY,
                "--set", "num_classes=4", "--db", db, "--out", tmp_path / "results") == 0
    summary = next((tmp_path / "results").glob("*imagenet.val*.json"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [f"record 1 in {db}; summary {summary}",
                          f"recorded with code {code_version()}, torch {torch.__version__} (1 threads), device "
                          f"{device_name('cpu')}"]
    record = ResultsStore(db).get(1)
    written = json.loads(summary.read_text())["provenance"]
    assert written["settings"]["environment"] == record.settings["environment"]
    assert written["settings"]["environment"]["torch"] == torch.__version__ and written["device"] == record.device


def test_an_image_edited_to_the_same_size_is_named_by_the_records_images_sha256(tmp_path, capsys):
    """The data checksum holds names, labels and sizes only: an image edited to the same size kept it, and the
    rerun's other numbers came with no reason named."""
    four = coded_folder(tmp_path / "four", WNIDS[:4])
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert _zoo("score", "rgc_shallow", "imagenet.val", "--data", four, "--image-size", "16", "--workers", "0", *TINY,
                "--set", "num_classes=4", "--db", db, "--out", tmp_path / "results") == 0
    first, second = (next((four / wnid).iterdir()) for wnid in sorted(WNIDS[:4])[:2])
    assert first.stat().st_size == second.stat().st_size
    shutil.copyfile(second, first)  # another class's image under this one's name, byte for byte the same size
    capsys.readouterr()
    assert _zoo("reproduce", "1", "--db", db) == 1
    out = capsys.readouterr().out
    assert "differs: data_sha256" not in out and "differs: settings.images_sha256: stored" in out
    assert ("NOT reproduced: record 1's settings.images_sha256 is not the rerun's (the benchmark's data has changed "
            "since it was scored)") in out


def test_zoo_score_warns_of_loading_workers_that_take_every_cpu(tmp_path, monkeypatch):
    from neurozoo.convrnn.training import cpus

    monkeypatch.setattr(cpus, "available_cpus", lambda: 1)
    four = coded_folder(tmp_path / "four", WNIDS[:4], per_class=1)
    with pytest.warns(UserWarning, match=r"^--workers 1 on a CPU run with 1 CPU: the loading processes take"):
        assert _zoo("score", "rgc_shallow", "imagenet.val", "--data", four, "--image-size", "16", "--workers", "1",
                    *TINY, "--set", "num_classes=4", "--db", f"sqlite:///{tmp_path / 'r.sqlite'}",
                    "--out", tmp_path / "results") == 0


def test_scoring_a_checkpoint_trained_with_autocast_says_the_score_is_in_float32(tmp_path):
    """The score equals the val_top1 a float32 run logged; one validated under --amp can differ, and nothing said so."""
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=2, val_per_class=1, size=16)
    out = tmp_path / "run"
    assert _zoo("train", "rgc_shallow", "--data", data, "--out", out, "--epochs", "1", "--batch-size", "4", "--amp",
                "--image-size", "16", "--workers", "0", "--quiet", *TINY) == 0
    with pytest.warns(UserWarning, match=rf"^{out / 'last.pth'} was validated under bfloat16 autocast \(zoo train "
                                         r"--amp\); zoo score evaluates in float32"):
        assert _zoo("score", "rgc_shallow", "imagenet.val", "--data", data, "--checkpoint", out / "last.pth",
                    "--workers", "0", "--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", tmp_path / "results",
                    *TINY) == 0


def test_a_checkpoint_is_scored_as_the_graph_it_was_trained_as(tmp_path, capsys):
    """zoo score took only the classes from a zoo train checkpoint: a width had to be given again, and a setting the
    weights fit either way (the unroll, a cell's gate offset) was left at the registered model's, so another graph
    than the one trained was scored, without a word."""
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=4, val_per_class=3, size=32)
    out = tmp_path / "run"
    assert _zoo("train", "rgc_shallow", "--data", data, "--out", out, "--epochs", "1", "--batch-size", "6",
                "--image-size", "32", "--workers", "0", "--optimizer", "adamw", "--lr", "1e-2", "--quiet", *TINY,
                "--set", "n_steps=7", "--set", "image_steps=3", "--set", "cell={tau_offset: 0.5}") == 0
    logged = read_metrics(out / "metrics.jsonl", kind="epoch")[-1]
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert _zoo("score", "rgc_shallow", "imagenet.val", "--data", data, "--checkpoint", out / "last.pth",
                "--batch-size", "6", "--workers", "0", "--db", db, "--out", tmp_path / "results") == 0
    summary = json.loads(next((tmp_path / "results").glob("*imagenet.val*.json")).read_text())
    assert [row["step"] for row in summary["per_bin"]] == [5, 6]  # the trained unroll's 7 steps, not the spec's 16
    assert summary["provenance"]["settings"]["loss"] == logged["val_loss"]  # the graph trained, bit for bit
    # an override given still wins over the checkpoint's
    assert _zoo("score", "rgc_shallow", "imagenet.val", "--data", data, "--checkpoint", out / "last.pth",
                "--set", "n_steps=8", "--workers", "0", "--db", db, "--out", tmp_path / "results") == 0
    assert "top-1 per readout step: 5: " in capsys.readouterr().out
    rows = json.loads(sorted((tmp_path / "results").glob("*imagenet.val*.json"))[-1].read_text())["per_bin"]
    assert [row["step"] for row in rows] == [5, 6, 7]


def test_a_checkpoint_trained_as_another_graph_whose_weights_fit_is_refused(tmp_path, capsys):
    """A checkpoint trained from a spec file (or a search trial's) whose weights fit the registered model was scored
    as that model, with its gate offset, without a word; the difference is now named. An override asked for is not."""
    import yaml

    spec = convrnn.get_spec("rgc_shallow").to_dict()
    spec["layers"][2]["cell"]["tau_offset"] = 0.5
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(spec))
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=2, val_per_class=1, size=32)
    out = tmp_path / "run"
    assert _zoo("train", tmp_path / "mine.yaml", "--data", data, "--out", out, "--epochs", "1", "--batch-size", "6",
                "--image-size", "32", "--workers", "0", "--quiet", *TINY) == 0
    db, results = f"sqlite:///{tmp_path / 'results.sqlite'}", tmp_path / "results"
    args = ["score", "rgc_shallow", "imagenet.val", "--data", data, "--checkpoint", out / "last.pth", "--workers", "0",
            "--db", db, "--out", results]
    assert _zoo(*args) == 2
    err = capsys.readouterr().err
    assert (f"zoo score: error: checkpoint {out / 'last.pth'} was trained as another graph than rgc_shallow builds (it "
            f"was trained as '{tmp_path / 'mine.yaml'}'): layer conv3 cell was ") in err
    assert "'tau_offset': 0.5" in err and err.endswith("in Python, convrnn.create_model takes the path itself\n")
    assert not results.exists() or not list(results.glob("*.json"))
    assert _zoo(*args, "--set", "cell={tau_offset: 1.0}") == 0  # a cell override given: the user's graph, scored


def _padpool(tmp_path, monkeypatch):
    """A registered ConvRNN (as a plugin's) whose unpadded 3x3 stride-2 pools need 13 px images (13 -> 7 -> 3 -> 3 ->
    1); every built-in model pads, keeping a position at any size."""
    from test_leaderboard_cli import _padded_pool_spec

    from neurozoo.datasets.registry import Entry

    path = _padded_pool_spec(tmp_path)
    monkeypatch.setitem(convrnn.MODELS._entries, "padpool",
                        Entry("padpool", lambda **overrides: convrnn.create_model(str(path), **overrides), "(plugin)"))


def test_zoo_score_refuses_an_image_size_below_the_models_smallest_naming_the_option(tmp_path, monkeypatch, capsys):
    """PyTorch's "Output size is too small" traceback from the first batch; now refused before any image is read,
    as zoo info, train, dynamics and compare refuse it (convrnn.check_image_size)."""
    _padpool(tmp_path, monkeypatch)
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=2, val_per_class=1, size=16)
    assert _zoo("score", "padpool", "imagenet.val", "--data", data, "--image-size", 8,
                "--db", f"sqlite:///{tmp_path / 'a.sqlite'}") == 2
    assert capsys.readouterr().err.strip().endswith(
        "error: --image-size 8: padpool needs at least 13 px (its conv2 output would be 0x0)")


@pytest.mark.parametrize("image_size, message", [
    (8, r"^image_size 8: padpool needs at least 13 px \(its conv2 output would be 0x0\)$"),
    (0, r"^image_size: expected an integer >= 1 \(the center crop's side in px\), got 0$"),
    (2.5, r"^image_size: expected an integer >= 1 \(the center crop's side in px\), got 2\.5$"),
])
def test_the_benchmark_refuses_an_image_size_the_model_cannot_take(tmp_path, monkeypatch, image_size, message):
    from neurozoo.datasets.errors import SpecError

    _padpool(tmp_path, monkeypatch)
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=2, val_per_class=1, size=16)
    with pytest.raises(SpecError, match=message):
        benchmarks.load("imagenet.val").score(convrnn.create_model("padpool"), data, image_size=image_size,
                                              progress=False)
