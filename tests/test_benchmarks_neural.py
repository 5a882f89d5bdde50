"""Neural benchmarks end to end: a model's own features recover the ceiling, unrelated ones score zero."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from neurozoo.benchmarks.extraction import Stimuli, extract
from neurozoo.benchmarks.neural import NeuralBenchmark
from neurozoo.benchmarks.synthetic import expected_ceiling
from neurozoo.datasets.errors import DataError, SpecError

NOISE, REPS = 1.0, 4


class Toy(nn.Module):
    """ConvRNN recording contract; conv2's output at step t is t * conv2(relu(conv1(image)))."""

    layer_names = ("conv1", "conv2")

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, images, n_steps=17, image_steps=12, record=()):
        a = torch.relu(self.conv1(images))
        b = self.conv2(a)
        steps = torch.arange(n_steps, dtype=images.dtype).view(-1, 1, 1, 1, 1)
        out = {"conv1": steps * a, "conv2": steps * b}
        return SimpleNamespace(recorded={k: out[k] for k in record})


def _benchmark(teacher, layer="conv2", n=600, neuroids=10, seed=0):
    """Responses = a random linear read-out of the teacher's layer (unit variance) + noise, 3 bins from 70 ms."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.standard_normal((n, 3, 8, 8)).astype(np.float32))
    stimuli = Stimuli([f"im{i:04d}" for i in range(n)], images, object_name=np.array([f"o{i % 6}" for i in range(n)]))
    bins = [(70.0, 80.0), (80.0, 90.0), (90.0, 100.0)]
    features = extract(teacher, stimuli, [layer], bins=bins, cache=False, progress=False)[layer].values
    signal = np.einsum("sft,fn->snt", features, rng.standard_normal((features.shape[1], neuroids)))
    signal = (signal - signal.mean(0)) / signal.std(0)
    values = np.concatenate([signal + NOISE * rng.standard_normal(signal.shape) for _ in range(REPS)])
    assembly = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.tile(stimuli.ids, REPS)),
        "object_name": ("presentation", np.tile(stimuli.object_name, REPS)),
        "repetition": ("presentation", np.repeat(np.arange(REPS), n)),
        "neuroid_id": ("neuroid", [f"n{i}" for i in range(neuroids)]), "region": ("neuroid", ["IT"] * neuroids),
        "time_bin_start": ("time_bin", [b[0] for b in bins]), "time_bin_end": ("time_bin", [b[1] for b in bins])})
    return NeuralBenchmark("synthetic.IT-temporal", "IT", lambda: assembly, lambda: stimuli,
                           extraction={"cache": False, "progress": False})


def test_teacher_scores_at_ceiling_and_other_model_low():
    teacher = Toy(seed=0)
    benchmark = _benchmark(teacher)
    score = benchmark.score(teacher, layers=["conv2"])
    assert abs(benchmark.ceiling.value - expected_ceiling(NOISE, REPS)) < 0.04
    assert abs(score.value - 1.0) < 0.08, score
    assert len(score.per_bin) == 3 and score.per_bin[0]["time_bin_start"] == 70.0
    settings = score.provenance["settings"]
    assert settings["layer"] == "conv2" and settings["mapping"] == "pls" and settings["temporal"] == "span"
    assert score.provenance["code_version"] and len(score.provenance["data_sha256"]) == 64
    stranger = benchmark.score(Toy(seed=1), layers=["conv2"])
    assert stranger.value < score.value - 0.2
    # the images are in the record too (data_sha256 is the responses'): one changed pixel changes it
    assert settings["stimuli_sha256"] == benchmark.stimuli.sha256() == stranger.provenance["settings"]["stimuli_sha256"]
    changed = _benchmark(teacher)
    changed.stimuli.images[3, 0, 0, 0] += 1
    assert changed.stimuli_sha256 != settings["stimuli_sha256"]


def test_the_record_keeps_the_extraction_options_the_score_used():
    """score(model, max_features=5, n_steps=20) recorded settings["extraction"] as the benchmark's defaults ({} for
    every registered benchmark): a score on 5 projected features was recorded as one on the default 1000. The record
    keeps the options that change the features (a time mapping by its tables; not the cache), through the store."""
    from neurozoo.benchmarks.extraction import StepTable

    teacher = Toy(seed=0)
    benchmark = _benchmark(teacher, n=120)
    score = benchmark.score(teacher, layers=["conv2"], max_features=5, n_steps=20)
    # beside what extract() took by default: the projection's seed, the batch size and, Toy following the ConvRNN
    # contract, the unroll's image steps and the inference path (it has no fast path)
    assert score.provenance["settings"]["extraction"] == {"max_features": 5, "n_steps": 20, "seed": 0, "batch_size": 32,
                                                          "image_steps": 10, "inference": {"path": "reference"}}
    assert score.provenance["settings"]["n_components"] == 5  # the 5 features were fitted
    timed = benchmark.score(teacher, layers=["conv2"], timing={"conv2": StepTable(0.0, 10.0, 17)})
    extraction = timed.to_record("toy", benchmark.identifier).to_row().settings["extraction"]
    assert extraction == {"timing": {"conv2": [0.0, 10.0, 17]}, "max_features": 1000, "seed": 0, "batch_size": 32,
                          "n_steps": 26, "image_steps": 10, "inference": {"path": "reference"}}


def test_shuffled_teacher_features_score_near_zero():
    teacher = Toy(seed=0)
    benchmark = _benchmark(teacher)
    features = benchmark.extract(teacher, ["conv2"])["conv2"]
    permuted = features.copy(data=np.random.default_rng(0).permutation(features.values))
    score = benchmark.score_features(permuted)
    assert abs(score.raw) < 0.08 and score.value < 0.02


def test_stimulus_ids_not_in_the_data_are_refused_by_name():
    """score_features(stimulus_ids=...) kept the assembly's presentations with np.isin: ids it does not hold were
    passed over, and 60 asked ids of which 30 were another benchmark's scored 30 stimuli, recorded n_stimuli 30."""
    teacher = Toy(seed=0)
    benchmark = _benchmark(teacher, n=120)
    features = benchmark.extract(teacher, ["conv2"])["conv2"]
    ids = list(benchmark.stimuli.ids)
    assert benchmark.score_features(features, stimulus_ids=ids[:60]).provenance["settings"]["n_stimuli"] == 60
    asked = ids[:30] + [f"other{i}" for i in range(30)]
    with pytest.raises(DataError, match=r"^synthetic.IT-temporal: 30 of the 60 stimulus ids asked for are not in its "
                                        r"data \(other0, other1, other2, other3, other4 and 25 more\)"):
        benchmark.score_features(features, stimulus_ids=asked)


def test_layer_map_and_held_out_selection():
    teacher = Toy(seed=0)
    benchmark = _benchmark(teacher)
    score = benchmark.score(teacher, layers=["conv1", "conv2"])
    settings = score.provenance["settings"]
    assert settings["layer"] == "conv2" and set(settings["layer_selection"]) == {"conv1", "conv2"}
    assert settings["n_stimuli"] == 480  # the 20 % selection stimuli are not scored
    assert score.value > 0.85
    # each layer's selection score is the benchmark's score on the selection stimuli: r²/ceiling against their ceiling
    from neurozoo.benchmarks.metrics import internal_consistency, regression_score
    from neurozoo.benchmarks.neural import selection_splits

    selection_set = benchmark._subset(benchmark.selection_split()[0])
    features = benchmark.extract(teacher, ["conv1", "conv2"])
    for layer in ("conv1", "conv2"):
        expected = regression_score(features[layer], selection_set, ceiling=internal_consistency(selection_set),
                                    splits=selection_splits(selection_set))
        assert settings["layer_selection"][layer] == pytest.approx(expected.value, abs=1e-12), layer
        assert abs(expected.value - expected.raw) > 0.01, layer  # which is not the raw r (the old rule's number)
    with pytest.raises(SpecError, match="layers"):
        benchmark.candidate_layers(nn.Linear(2, 2))
    convrnn_like = SimpleNamespace(layer_names=[f"conv{i}" for i in range(1, 11)])
    convrnn_like.forward = Toy().forward
    assert benchmark.candidate_layers(convrnn_like) == ["conv7", "conv8", "conv9", "conv10"]


def test_too_few_stimuli_after_layer_selection_names_the_hold_out():
    """60 stimuli of 6 objects: after the 12 held out to choose a layer, 10 % of 48 cannot hold every object. The error
    said "6 objects over 48 stimuli" of a data set of 60, without why or how to score all 60."""
    teacher = Toy(seed=0)
    benchmark = _benchmark(teacher, n=60)
    with pytest.raises(DataError, match=r"6 objects over 48 stimuli .*\(scored on the 48 stimuli left after the 12 held "
                                        r"out to choose among layers conv1, conv2; one layer, zoo score --layers conv\d "
                                        r"or layers=\['conv\d'\], is scored on all\)$"):
        benchmark.score(teacher, layers=["conv1", "conv2"])
    assert benchmark.score(teacher, layers=["conv2"]).provenance["settings"]["n_stimuli"] == 60


def test_a_model_without_a_layer_for_the_region_is_told_the_option_and_its_layers(tmp_path):
    """`zoo score MY_3_LAYER_CONVRNN ventral_embedded.V4-temporal` said "pass the layers to score for region V4 (e.g.
    layers=['layer3'])": a Python keyword on the command line, and a layer the model does not have."""
    from neurozoo import convrnn

    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\nn_steps: 4\nimage_steps: 4\nlayers:\n"
                    "- {name: conv1, channels: 4, kernel: 3, stride: 2}\n"
                    "- {name: conv2, channels: 4, kernel: 3, stride: 1, cell: {kind: ugrnn}}\n")
    benchmark = NeuralBenchmark("toy.V4", "V4", lambda: None, lambda: None)
    with pytest.raises(SpecError) as info:
        benchmark.candidate_layers(convrnn.create_model(str(spec), num_classes=2))
    assert "zoo score --layers" in str(info.value) and str(info.value).endswith("its layers: conv1, conv2")
    assert "layer3" not in str(info.value)


def test_zoo_score_refuses_a_layer_the_model_lacks_before_any_work(tmp_path, capsys, monkeypatch):
    """`zoo score rgc_shallow BENCH --layers conv99` loaded the stimuli, hashed them and showed the activations
    progress bar before the ConvRNN's forward pass refused the name; a CORnet's bad layer was named as one without a
    step table. Now the layer is checked against the model first: the error names it and lists the valid ones, and
    no stimulus is loaded."""
    from neurozoo import benchmarks
    from neurozoo.datasets.registry import Entry
    from neurozoo.leaderboard.cli import main

    def untouched():
        raise AssertionError("data loaded before the layer was checked")

    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "test.layers-V4", Entry(
        "test.layers-V4", lambda: NeuralBenchmark("test.layers-V4", "V4", untouched, untouched), "CLI test"))
    out = ["--db", f"sqlite:///{tmp_path / 'results.sqlite'}", "--out", str(tmp_path / "out")]
    assert main(["score", "rgc_shallow", "test.layers-V4", "--width", "0.125", "--layers", "conv5,conv99", *out]) == 2
    err = capsys.readouterr().err
    assert "activations" not in err  # no progress bar
    assert "test.layers-V4: model has no layer 'conv99'" in err
    assert "(its layers: conv1, conv2, conv3, conv4, conv5)\n" in err
    assert main(["score", "cornet_z", "test.layers-V4", "--layers", "V5", *out]) == 2
    err = capsys.readouterr().err
    assert "model has no layer 'V5'" in err and "V1, V2, V4, IT" in err and "step table" not in err
    teacher = Toy()  # the Python API refuses it the same way, extract() too
    message = r"^toy.V4: model has no layer 'conv3'; did you mean 'conv2', 'conv1'\? \(its layers: conv1, conv2\)$"
    with pytest.raises(SpecError, match=message):
        NeuralBenchmark("toy.V4", "V4", untouched, untouched).score(teacher, layers=["conv3"])
    with pytest.raises(SpecError, match="no layer 'conv3'"):
        extract(teacher, Stimuli(["a"], torch.zeros(1, 3, 8, 8)), ["conv3"], cache=False, progress=False)


def test_a_layer_named_twice_is_refused_not_scored_on_a_hold_out():
    """`zoo score M BENCH --layers conv2,conv2` failed in xarray ("conflicting sizes for dimension 'presentation'":
    the layer's batches stacked twice) where the activations were computed; where they came from the cache it took
    two candidates, held 20 % of the stimuli out to choose between conv2 and conv2, and scored conv2 on the other 80 %
    (its record: candidate_layers [conv2, conv2], selection_fraction 0.2), where --layers conv2 scores it on all. The
    repeat is refused before any work."""
    teacher = Toy(seed=0)
    benchmark = _benchmark(teacher, n=60)
    with pytest.raises(SpecError, match=r"^synthetic.IT-temporal: layer 'conv2' is named more than once \(conv2, "
                                        r"conv1, conv2\); name each layer once$"):
        benchmark.score(teacher, layers=["conv2", "conv1", "conv2"])
    with pytest.raises(SpecError, match="named more than once"):
        extract(teacher, benchmark.stimuli, ["conv1", "conv1"], cache=False, progress=False)
    assert benchmark.score(teacher, layers=["conv2"]).provenance["settings"]["n_stimuli"] == 60


def test_a_benchmark_given_a_stimulus_set_names_the_images_it_needs():
    """README "Your own recordings": NeuralBenchmark(identifier, region, load_assembly, load_stimuli) with load_stimuli
    returning the StimulusSet of load_stimulus_set("my_stimuli.csv") failed in the extraction with "AttributeError:
    'StimulusSet' object has no attribute 'ids'"."""
    from neurozoo.datasets.stimuli import make_stimulus_set

    stimulus_set = make_stimulus_set({"stimulus_id": ["a", "b"]}, "my_stimuli")
    benchmark = NeuralBenchmark("mine.V4", "V4", lambda: None, lambda: stimulus_set)
    with pytest.raises(SpecError, match=r"mine.V4: load_stimuli returned a StimulusSet; expected .*Stimuli: .*"
                                        r"benchmarks.extraction.images.load_stimulus_set\(stimulus_set, image_size=224\)"):
        benchmark.stimuli


def test_layer_choice_ignores_bins_without_a_ceiling_as_the_score_does():
    """Hand-worked: ceilings (-0.05, 0.4, 0.5) on the selection stimuli, the first bin without reliable signal. Layer
    A's split-mean r is (0.25, 0.30, 0.30), B's (-0.05, 0.32, 0.32). The mean raw r over all bins, the old rule,
    prefers A (0.2833 against 0.1967) for its r in the bin the score leaves out; the benchmark's score (r²/ceiling
    over bins 2-3) prefers B: (2 x 0.1024) / 0.9 = 0.2276 against (2 x 0.09) / 0.9 = 0.2. Brain-Score's LayerSelection
    takes the argmax of the benchmark's score too."""
    from neurozoo.benchmarks.metrics.ceiling import Ceiling
    from neurozoo.benchmarks.metrics.temporal import TemporalScore
    from neurozoo.benchmarks.neural import best_layer
    from neurozoo.datasets.errors import DataError

    start, end = np.array([70, 80, 90]), np.array([80, 90, 100])
    ceiling = Ceiling(np.array([-0.05, 0.4, 0.5]), np.full((2, 3), np.nan), np.zeros(3))
    per_split = {"A": [[0.2, 0.28, 0.31], [0.3, 0.32, 0.29]], "B": [[-0.1, 0.3, 0.34], [0.0, 0.34, 0.30]]}
    scores = {layer: TemporalScore(np.array(r), start, end, ceiling=ceiling) for layer, r in per_split.items()}
    all_bins = {layer: float(np.mean(per_split[layer])) for layer in per_split}
    assert all_bins == pytest.approx({"A": 0.85 / 3, "B": 0.59 / 3}, abs=1e-12)  # the old rule would take A
    assert scores["A"].value == pytest.approx(0.2, abs=1e-12) and scores["B"].value == pytest.approx(0.2048 / 0.9, abs=1e-12)
    assert best_layer(scores) == "B"
    assert (scores["A"].raw, scores["B"].raw) == pytest.approx((0.30, 0.32), abs=1e-12)  # the raw r beside each
    # a layer without a score there (NaN r in the scored bins) is passed over; none with one: an error naming them
    nan = TemporalScore(np.array([[0.9, np.nan, np.nan]] * 2), start, end, ceiling=ceiling)
    assert best_layer({"C": nan, **scores}) == "B"
    unscored = Ceiling(np.array([-0.05, 0.0, np.nan]), np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(DataError, match=r"synthetic.IT-temporal: no candidate layer \(A, B\) has a score"):
        best_layer({layer: TemporalScore(np.array(r), start, end, ceiling=unscored) for layer, r in per_split.items()},
                   "synthetic.IT-temporal")


def test_layer_choice_follows_the_ceiled_score_where_the_raw_r_disagrees():
    """Hand-worked, every bin scored (ceilings 0.2 and 0.8): layer C's r (0.40, 0.20) has the higher mean raw r (0.30
    against 0.275), layer D's (0.10, 0.45) the higher score, (0.01 + 0.2025) / 1.0 = 0.2125 against
    (0.16 + 0.04) / 1.0 = 0.2. Brain-Score's LayerSelection takes the argmax of the ceiled score its benchmark returns
    (brainscore_vision/model_helpers/brain_transformation/neural.py at 2169179, ``LayerSelection._call`` line 106;
    the raw score is only logged), so D; a choice by the raw r would take C."""
    from neurozoo.benchmarks.metrics.ceiling import Ceiling
    from neurozoo.benchmarks.metrics.temporal import TemporalScore
    from neurozoo.benchmarks.neural import best_layer

    start, end = np.array([70, 80]), np.array([80, 90])
    ceiling = Ceiling(np.array([0.2, 0.8]), np.full((2, 2), np.nan), np.zeros(2))
    scores = {layer: TemporalScore(np.array([r, r]), start, end, ceiling=ceiling)
              for layer, r in (("C", [0.40, 0.20]), ("D", [0.10, 0.45]))}
    assert (scores["C"].raw, scores["D"].raw) == pytest.approx((0.30, 0.275), abs=1e-12)
    assert (scores["C"].value, scores["D"].value) == pytest.approx((0.2, 0.2125), abs=1e-12)
    assert best_layer(scores) == "D"
    assert best_layer(dict(reversed(list(scores.items())))) == "D"  # not the first in order


@pytest.mark.parametrize("name, v4, it", [
    ("rgc_intermediate", ["conv5", "conv6"], ["conv7", "conv8", "conv9", "conv10"]),
    ("ugrnn_intermediate", ["conv5", "conv6"], ["conv7", "conv8", "conv9", "conv10"]),
    ("rgc_shallow", ["conv3"], ["conv4", "conv5"]),
    ("timedecay_shallow", ["conv3"], ["conv4", "conv5"]),
])
def test_convrnn_layers_per_area_follow_the_released_map(name, v4, it):
    """neuroailab/convrnns README (cab32bb), "Extracting Model Features", lines 83-84: for the shallow ConvRNNs conv3
    best matches V4, conv4 pIT and conv5 cIT/aIT; for the intermediate ones conv5-conv6 V4, conv7-conv8 pIT,
    conv9-conv10 cIT/aIT."""
    from neurozoo import convrnn

    model = SimpleNamespace(layer_names=convrnn.get_spec(name).layer_names, forward=Toy().forward)  # names only
    from neurozoo.leaderboard.zoo import region_layer

    for region, expected in (("V4", v4), ("IT", it)):
        benchmark = NeuralBenchmark(f"synthetic.{region}-temporal", region, lambda: None, lambda: None)
        assert benchmark.candidate_layers(model) == expected, region
        assert region_layer(model, region) == expected[-1], region  # zoo run: the map's last layer


def test_zoo_score_cli_writes_record_and_plot(tmp_path, capsys, monkeypatch):
    import argparse
    import json

    from neurozoo import benchmarks
    from neurozoo.benchmarks.cli import add_commands
    from neurozoo.benchmarks.records import ResultsStore

    rng = np.random.default_rng(0)
    n, reps = 60, 2
    stimuli = Stimuli([f"im{i}" for i in range(n)], torch.randn(n, 3, 32, 32), np.array([f"o{i % 3}" for i in range(n)]))
    assembly = xr.DataArray(rng.standard_normal((n * reps, 5, 1)), dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.tile(stimuli.ids, reps)),
        "object_name": ("presentation", np.tile(stimuli.object_name, reps)),
        "repetition": ("presentation", np.repeat(np.arange(reps), n)),
        "time_bin_start": ("time_bin", [70]), "time_bin_end": ("time_bin", [170])})
    # registered for this test only: left in the registry, it was a third V4 benchmark in every later test's tree on
    # this worker (the board's coverage read 1/3 where 1/2 was asserted)
    from neurozoo.datasets.registry import Entry

    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "test.cli-V4", Entry(
        "test.cli-V4", lambda: NeuralBenchmark("test.cli-V4", "V4", lambda: assembly, lambda: stimuli), "CLI test"))
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    args = parser.parse_args(["score", "timm:test_resnet", "test.cli-V4", "--layers", "layer2", "--db", db,
                              "--out", str(tmp_path / "out"), "--max-features", "50", "--no-cache"])
    assert args.handler(args) == 0
    frame = ResultsStore(db).query(benchmark="test.cli-V4")
    assert len(frame) == 1 and frame["model"].iloc[0] == "timm:test_resnet"
    assert frame["settings"].iloc[0]["layer"] == "layer2" and len(frame["per_bin"].iloc[0]) == 1
    assert abs(frame["raw"].iloc[0]) < 0.5  # random weights, random responses
    pngs = list((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 1 and json.loads(pngs[0].with_suffix(".json").read_text())["benchmark"] == "test.cli-V4"
    assert "record 1" in capsys.readouterr().out
    # a ConvRNN as zoo run scores it (width 0.125): the width reaches the model and the record
    from neurozoo.benchmarks import cli as benchmarks_cli

    built = []
    resolve = benchmarks_cli.resolve_model_and_weights  # zoo score's lookup since it reads CORnet releases

    def recorded(*args, **kwargs):
        model, weights = resolve(*args, **kwargs)
        built.append(model)
        return model, weights

    monkeypatch.setattr(benchmarks_cli, "resolve_model_and_weights", recorded)
    args = parser.parse_args(["score", "rgc_shallow", "test.cli-V4", "--width", "0.125", "--set", "n_steps=12",
                              "--db", db, "--out", str(tmp_path / "out"), "--max-features", "50", "--no-cache"])
    assert args.handler(args) == 0
    assert built[0].spec.layer("conv1").channels == 8 and built[0].n_steps == 12  # 64 at full width
    settings = ResultsStore(db).query(benchmark="test.cli-V4", model="rgc_shallow")["settings"].iloc[0]
    assert settings["overrides"] == {"width_multiplier": 0.125, "n_steps": 12}
    args = parser.parse_args(["score", "--list"])
    assert args.handler(args) == 0 and "test.cli-V4" in capsys.readouterr().out


def test_zhang_desimone_decoding_time_course(shared_data):
    from neurozoo import benchmarks
    from neurozoo.datasets.errors import UserFacingError

    benchmark = benchmarks.load("zhang_desimone2011.IT-decoding")
    with pytest.raises(UserFacingError, match="no image-computable model"):
        benchmark.score(Toy())
    table = benchmark.analyze()
    assert list(table["time_bin_start"]) == list(range(70, 260, 10))
    chance = table["chance"].iloc[0]
    assert abs(chance - 1 / 7) < 1e-9
    assert abs(table["accuracy"].iloc[0] - chance) < 0.05  # 70-80 ms: before IT responds
    assert table["accuracy"].max() > 2.5 * chance  # 7-way object identity decodable from ~130 units
    assert table["ceiling"].iloc[0] < 0.05 < 0.2 < table["ceiling"].iloc[7:].mean()


def test_cowley_v4_ceiling_and_score(shared_data):
    import neurozoo.datasets.torchvision_compat  # noqa: F401
    import timm

    from neurozoo import benchmarks

    benchmark = benchmarks.load("cowley2023.V4")
    # the data's median split-half r is 0.61 (README: about 0.6); Spearman-Brown: 0.765, the repeat means'
    # reliability (tests/test_ceiling.py computes it independently)
    assert 0.755 < benchmark.ceiling.value < 0.775
    assert benchmark.bins == [(70.0, 170.0)]
    from neurozoo.benchmarks.neural import dataset_benchmark

    benchmark = dataset_benchmark("cowley2023.V4", "cowley2023.v4_210325", "V4", image_size=64)  # small: fast test
    assert len(benchmark.stimuli.ids) == 640 and benchmark.stimuli.images.shape[-1] == 64
    model = timm.create_model("test_resnet", pretrained=False)
    features = benchmark.extract(model, ["layer2"], max_features=200, cache=False, progress=False)["layer2"]
    assert features.shape == (640, 200, 1)
    score = benchmark.score_features(features)
    assert len(score.per_bin) == 1 and score.per_bin[0]["time_bin_end"] == 170.0
    assert 0.0 < score.raw < np.sqrt(benchmark.ceiling.value)
    shuffled = features.copy(data=np.random.default_rng(0).permutation(features.values))
    assert abs(benchmark.score_features(shuffled).raw) < 0.08
    # a pixel baseline (32x32 grey) predicts some V4 variance (raw r 0.20), far less than a random CNN's layer (0.36)
    pixels = benchmark.stimuli.pixels.astype(float).mean(-1).reshape(640, 32, 2, 32, 2).mean((2, 4)).reshape(640, -1, 1)
    pixel_score = benchmark.score_features(_as_features(pixels, features))
    assert 0.12 < pixel_score.raw < 0.28 and pixel_score.value < 0.5 * score.value


@pytest.fixture(scope="module")
def embedded_teacher():
    from neurozoo.datasets.embedded import teacher

    return teacher()


def _as_features(values, like):
    """Unprojected (presentation, neuroid, time_bin) features with ``like``'s stimulus ids and bins."""
    import xarray as xr

    return xr.DataArray(values, dims=like.dims, coords={
        "stimulus_id": ("presentation", like["stimulus_id"].values),
        "time_bin_start": ("time_bin", like["time_bin_start"].values[:values.shape[2]]),
        "time_bin_end": ("time_bin", like["time_bin_end"].values[:values.shape[2]])})


@pytest.mark.parametrize("region", ["V4", "IT"])
def test_embedded_teacher_scores_near_ceiling_feedforward_lower_shuffled_near_zero(embedded_teacher, region):
    """Ground truth: the network that generated the embedded data, read at its own layer for the region."""
    from neurozoo import benchmarks

    benchmark, teacher = benchmarks.load(f"ventral_embedded.{region}-temporal"), embedded_teacher
    assert benchmark.bins[0] == (70.0, 80.0) and len(benchmark.bins) == 19
    ceiling = benchmark.ceiling.per_bin
    assert ceiling[5:10].min() > 0.5  # reliable from ~100 ms
    if region == "IT":
        assert ceiling[0] < 0.05  # IT's first drive arrives at 80 ms: silent in the first bin
    # The benchmark as a user runs it: 1000 projected features, PLS with 25 components (Brain-Score's), fitted
    # on 259 images. Near, not at, the ceiling: 25 components cannot hold the read-out's time-varying mix of
    # 2 x (12 or 16) templates (ridge on the same features reaches ~0.92 / 0.90).
    score = benchmark.score(teacher, cache=False, progress=False)
    assert score.provenance["settings"]["layer"] == region
    assert score.value > {"V4": 0.85, "IT": 0.8}[region], score
    features = benchmark.extract(teacher, [region], cache=False, progress=False)[region]
    shuffled = features.copy(data=np.random.default_rng(0).permutation(features.values))
    assert abs(benchmark.score_features(shuffled).value) < 0.05
    # The matched feed-forward control: the same weights without dynamics, one static bin (repeated over time),
    # against the teacher's own unprojected features -- same features, same mapping, only the dynamics differ.
    dynamic = teacher.features(benchmark.stimuli.images, [region])[region].numpy()
    static = teacher.features(benchmark.stimuli.images, [region], feedforward=True)[region].numpy()
    full = benchmark.score_features(_as_features(dynamic, features))
    control = benchmark.score_features(_as_features(static, features.isel(time_bin=[0])))
    assert full.value > control.value + 0.04, (full.value, control.value)
    per_bin = lambda s: np.array([np.nan if r["value"] is None else r["value"] for r in s.per_bin], float)
    lower = per_bin(control) < per_bin(full)  # lower on the time course, bin by bin
    assert lower[np.isfinite(per_bin(full))].all()


def test_selection_splits_hold_every_object_on_a_small_selection_set():
    import xarray as xr

    from neurozoo.benchmarks.neural import selection_splits

    objects = [f"obj{i % 8}" for i in range(58)]
    assembly = xr.DataArray(
        np.random.default_rng(0).normal(size=(58, 3, 2)), dims=("presentation", "neuroid", "time_bin"),
        coords={"stimulus_id": ("presentation", [f"s{i}" for i in range(58)]),
                "object_name": ("presentation", objects), "repetition": ("presentation", [0] * 58),
                "neuroid_id": ("neuroid", ["a", "b", "c"]), "region": ("neuroid", ["IT"] * 3),
                "time_bin_start": ("time_bin", [70, 80]), "time_bin_end": ("time_bin", [80, 90])})
    from neurozoo.benchmarks.metrics.assembly import average_repetitions, coord

    splits = selection_splits(assembly)
    assert len(splits) == 10
    names = np.asarray(coord(average_repetitions(assembly), "object_name"))  # the order splits index
    for train, test in splits:
        assert set(names[test]) == set(objects) and not set(train) & set(test)


def test_one_layer_name_is_one_candidate_layer():
    benchmark = NeuralBenchmark("test.layers-V4", "V4", lambda: None, lambda: None)  # the data are never loaded
    model = torch.nn.ModuleDict({"conv3": torch.nn.Identity(), "conv4": torch.nn.Identity()})
    assert benchmark.candidate_layers(model, "conv3") == ["conv3"]
    assert benchmark.candidate_layers(model, ("conv3", "conv4")) == ["conv3", "conv4"]


@pytest.mark.parametrize("name, width", [("cornet_z", 0.125), ("cornet_s", 0.125), ("cornet_rt", 0.5)])
def test_cornets_score_their_area_at_brainscores_steps(name, width):
    """A CORnet's layer for a region is the area of that name (`zoo score` and `zoo run` alike), read at the steps of
    its Brain-Score time mapping over 10 ms bins (a table that did not fit the model's steps would raise)."""
    from neurozoo import convrnn
    from neurozoo.leaderboard.zoo import region_layer

    torch.manual_seed(0)
    model = convrnn.create_model(name, width_multiplier=width, num_classes=3).eval()
    rng = np.random.default_rng(0)
    n, reps, bins = 40, 2, [(70.0 + 10 * k, 80.0 + 10 * k) for k in range(19)]
    stimuli = Stimuli([f"im{i}" for i in range(n)], torch.randn(n, 3, 32, 32), np.array([f"o{i % 4}" for i in range(n)]))
    assembly = xr.DataArray(rng.standard_normal((n * reps, 4, len(bins))), dims=("presentation", "neuroid", "time_bin"),
                            coords={"stimulus_id": ("presentation", np.tile(stimuli.ids, reps)),
                                    "object_name": ("presentation", np.tile(stimuli.object_name, reps)),
                                    "repetition": ("presentation", np.repeat(np.arange(reps), n)),
                                    "time_bin_start": ("time_bin", [a for a, _ in bins]),
                                    "time_bin_end": ("time_bin", [b for _, b in bins])})
    for region in ("V4", "IT"):
        benchmark = NeuralBenchmark(f"test.cornet-{region}", region, lambda: assembly, lambda: stimuli)
        assert benchmark.candidate_layers(model) == [region] and region_layer(model, region) == region
        score = benchmark.score(model, max_features=50, cache=False, progress=False)
        assert score.provenance["settings"]["layer"] == region and len(score.per_bin) == len(bins)


def test_cornets_are_scored_when_named_not_in_the_default_zoo():
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.zoo import zoo_specs

    bench = ["ventral_embedded.V4-temporal"]
    default, _ = zoo_specs(benchmark_names=bench)
    assert not {s["model"] for s in default} & {"cornet_z", "cornet_s", "cornet_rt"}
    named, _ = zoo_specs(["cornet_s", "cornet_rt"], bench, width_multiplier=0.5)
    assert [(s["model"], s["overrides"]) for s in named] == [("cornet_s", {"width_multiplier": 0.5}),
                                                             ("cornet_rt", {"width_multiplier": 0.5})]
    with pytest.raises(UserFacingError, match=r"cornet_rt .*GroupNorm\(32\)"):  # before any job is queued
        zoo_specs(["cornet_rt"], bench, width_multiplier=0.125)


def test_a_cornets_zoo_job_key_follows_its_time_mapping(monkeypatch):
    """A zoo job is reused by its spec's hash: without the time mapping in the spec, a changed CORnet table (or
    bin-to-step rule, as CORNET_S's midpoint -> nearest_start) kept the scores of the old mapping."""
    from neurozoo.benchmarks.extraction import time_mapping
    from neurozoo.benchmarks.extraction.time_mapping import StepTable
    from neurozoo.leaderboard.db import settings_sha256
    from neurozoo.leaderboard.zoo import zoo_specs

    bench = ["ventral_embedded.V4-temporal"]
    (spec,), _ = zoo_specs(["cornet_s"], bench, width_multiplier=0.5)
    assert spec["time_mapping"]["V4"] == [90, 50, 4, "nearest_start"] and set(spec["time_mapping"]) == set(
        time_mapping.CORNET_S)
    midpoint = {region: StepTable(t.start, t.width, t.steps) for region, t in time_mapping.CORNET_S.items()}
    monkeypatch.setitem(time_mapping.CORNET_TIMING, "CORnet-S", midpoint)
    (changed,), _ = zoo_specs(["cornet_s"], bench, width_multiplier=0.5)
    assert changed["time_mapping"]["V4"] == [90, 50, 4] and settings_sha256(changed) != settings_sha256(spec)
    (convrnn_spec,), _ = zoo_specs(["feedforward_intermediate"], bench)
    assert "time_mapping" not in convrnn_spec  # the ConvRNNs' keys stay as they were


def test_a_convrnn_zoo_job_key_follows_the_layer_it_scores(monkeypatch):
    """The shallow map moved rgc_shallow's V4 from conv5 to conv3, but a zoo job is reused by its spec's hash, which
    named no layer: a rerun on an existing leaderboard kept the conv5 scores. The spec names the layer, and the scorer
    reads that one."""
    from neurozoo.benchmarks import neural
    from neurozoo.leaderboard import zoo
    from neurozoo.leaderboard.db import settings_sha256

    specs, _ = zoo.zoo_specs(["rgc_shallow", "rgc_intermediate"], ["ventral_embedded.V4-temporal",
                                                                    "ventral_embedded.IT-temporal"])
    assert {(s["model"], s["benchmark"].split(".")[1]): s["layer"] for s in specs} == {
        ("rgc_shallow", "V4-temporal"): "conv3", ("rgc_shallow", "IT-temporal"): "conv5",
        ("rgc_intermediate", "V4-temporal"): "conv6", ("rgc_intermediate", "IT-temporal"): "conv10"}
    monkeypatch.setitem(neural.CONVRNN_SHALLOW_REGION_LAYERS, "V4", ["conv4"])
    (changed,), _ = zoo.zoo_specs(["rgc_shallow"], ["ventral_embedded.V4-temporal"])
    assert changed["layer"] == "conv4" and settings_sha256(changed) != settings_sha256(specs[0])

    class Scored(Exception):
        pass

    class Benchmark(neural.NeuralBenchmark):
        def extract(self, model, layers, **_):
            raise Scored(layers)

    monkeypatch.setattr("neurozoo.benchmarks.load", lambda name: Benchmark(name, "V4", None, None))
    model = zoo.build_model(changed)
    with pytest.raises(Scored, match="conv2"):  # the spec's layer, not the one the code would pick now
        zoo.score_model(model, dict(changed, layer="conv2"), "rgc_shallow")


def test_every_registered_benchmark_says_which_ceiling_it_scores_against():
    """`zoo list` showed cowley2023.V4 (and ventral_embedded.*) as '..., one 70-170 ms bin, ceiling': a bare word,
    not saying the score is r²/ceiling against a split-half ceiling."""
    from neurozoo import benchmarks

    for entry in benchmarks.BENCHMARKS.entries():
        if "ceiling" in entry.description:
            assert not entry.description.rstrip(" .").endswith(", ceiling"), (entry.name, entry.description)
    for name in ("cowley2023.V4", "ventral_embedded.V4-temporal", "ventral_embedded.IT-temporal"):
        assert "r²/ceiling against the split-half" in benchmarks.BENCHMARKS.get(name).description


#: neuroailab/convrnns README.md (commit e1b30c3), "Extracting Model Features", lines 83-85: "for the `shallow`
#: ConvRNNs, model layer 'conv3' best matches to V4, 'conv4' best matches to pIT, and 'conv5' best matches to
#: cIT/aIT. For the `intermediate` ConvRNNs, model layers 'conv5' and 'conv6' best match to V4, 'conv7' and 'conv8'
#: best match to pIT, and 'conv9' and 'conv10' best match to cIT/aIT" (IT here: pIT and cIT/aIT together).
RELEASED_REGION_LAYERS = {"shallow": {"V4": ["conv3"], "IT": ["conv4", "conv5"]},
                          "intermediate": {"V4": ["conv5", "conv6"], "IT": ["conv7", "conv8", "conv9", "conv10"]}}


def test_every_released_convrnn_gets_the_readmes_layers_for_v4_and_it():
    """Each registered model of the original's names takes its depth's map: a shallow model whose layers were named
    otherwise than conv1-conv5 would silently get the intermediate map (conv5, its cIT/aIT layer, as V4)."""
    from neurozoo import convrnn
    from neurozoo.benchmarks.neural import convrnn_region_layers

    released = [name for name in convrnn.list_models() if name.split("_")[1:2] in (["shallow"], ["intermediate"])
                and name.split("_")[0] in ("rgc", "timedecay", "ugrnn", "lstm", "simplernn")]
    assert len(released) == 12  # every model of the original's names built here (docs/convrnn.md, Models)
    for name in released:
        depth = name.split("_")[1]
        names = convrnn.get_spec(name).layer_names
        for region, layers in RELEASED_REGION_LAYERS[depth].items():
            assert convrnn_region_layers(names, region) == layers, (name, region)


def test_a_data_set_name_given_as_a_benchmark_is_told_so():
    """`zoo data list` and `zoo list` show data set names (cowley2023.v4_210325, allen_bo.v1_natural_scenes) beside the
    benchmark names; `zoo score MODEL allen_bo.v1_natural_scenes` answered only "unknown benchmark" with the list."""
    from neurozoo import benchmarks
    from neurozoo.datasets.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"unknown benchmark 'allen_bo\.v1_natural_scenes': that is a data set "
                                               r"\(zoo data list; neurozoo\.datasets\.load\('allen_bo\.v1_natural_scenes'\)\), "
                                               r"not a benchmark \(known: .*cowley2023\.V4"):
        benchmarks.load("allen_bo.v1_natural_scenes")
    with pytest.raises(UnknownNameError, match=r"unknown benchmark 'cowley2023\.V5'; did you mean cowley2023\.V4\?"):
        benchmarks.load("cowley2023.V5")  # not a data set either: no such clause


def test_a_data_file_given_as_a_benchmark_is_told_where_it_goes(tmp_path):
    """A new user's `zoo score MODEL FILE.nc` answered only "unknown benchmark 'FILE.nc' (known: ...)": a file's path
    (an existing file, or one ending .nc/.h5/.hdf5) is now told that zoo score takes registered benchmarks and where a
    file of one's own goes: a deep-retina HDF5 file to retina_h5.heldout --data, a NeuroidAssembly to the README."""
    from neurozoo import benchmarks
    from neurozoo.datasets.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"^unknown benchmark 'my_v4\.nc': that is a file, not a benchmark; zoo "
                                               r"score and zoo run take a registered benchmark's name: a NeuroidAssembly file of "
                                               r"your own \(\.nc\) is scored in Python as README's \"Your own "
                                               r"recordings\" \(under Data sets\) shows, or registered as a benchmark "
                                               r"\(\"Extending the suite\"\) \(known: .*retina_h5\.heldout"):
        benchmarks.load("my_v4.nc")
    with pytest.raises(UnknownNameError, match=r"^unknown benchmark 'rec\.HDF5': that is a file, not a benchmark; .*: "
                                               r"a deep-retina HDF5 recording is scored with zoo score MODEL "
                                               r"retina_h5\.heldout --data rec\.HDF5 \(known: "):
        benchmarks.load("rec.HDF5")
    recording = tmp_path / "recording"
    recording.write_bytes(b"")
    with pytest.raises(UnknownNameError, match=r"that is a file, not a benchmark; .* --data .*recording; a "
                                               r"NeuroidAssembly file of your own"):
        benchmarks.load(str(recording))
    with pytest.raises(UnknownNameError, match=r"^unknown benchmark 'cowley2023\.V5'; did you mean"):
        benchmarks.load("cowley2023.V5")  # a name, not a file: no such clause


def test_an_object_with_one_stimulus_is_named_by_the_layer_selection_hold_out():
    """With several candidate layers the benchmark holds out 20 % of the stimuli stratified on object_name; an object
    shown as one stimulus raised scikit-learn's ValueError from there (a traceback from `zoo score`), which named no
    benchmark, coordinate or way out."""
    n, reps = 30, 2
    objects = np.array([f"o{i % 3}" for i in range(n)], dtype=object)
    objects[0] = "lonely"
    assembly = xr.DataArray(np.random.default_rng(0).standard_normal((n * reps, 5, 1)),
                            dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.tile([f"im{i:02d}" for i in range(n)], reps)),
        "object_name": ("presentation", np.tile(objects.astype(str), reps)),
        "repetition": ("presentation", np.repeat(np.arange(reps), n)),
        "time_bin_start": ("time_bin", [70]), "time_bin_end": ("time_bin", [170])})
    benchmark = NeuralBenchmark("mine.V4", "V4", lambda: assembly, lambda: None)
    with pytest.raises(DataError, match=r"mine\.V4: coordinate 'object_name' gives 4 objects over 30 stimuli \(fewest "
                                        r"stimuli per object: 1, e.g. \['lonely'.*layer-selection hold-out \(20% of the "
                                        r"stimuli.*zoo score --layers LAYER"):
        benchmark.selection_split()
