"""The Brain-Score interface (benchmarks.brain_model): start_recording + look_at give the harness's own features,
labelled as a NeuroidAssembly, so a metric on them gives the benchmark's score."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from neurozoo.benchmarks.brain_model import BrainModel
from neurozoo.benchmarks.extraction import StepTable
from neurozoo.benchmarks.extraction.images import load_stimulus_set
from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.stimuli import make_stimulus_set


class Toy(nn.Module):
    """ConvRNN recording contract; a layer's output at step t is t times its feed-forward output."""

    layer_names = ("conv1", "conv2")

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, images, n_steps=26, image_steps=10, record=()):
        a = torch.relu(self.conv1(images))
        steps = torch.arange(n_steps, dtype=images.dtype).view(-1, 1, 1, 1, 1)
        out = {"conv1": steps * a, "conv2": steps * self.conv2(a)}
        return SimpleNamespace(recorded={k: out[k] for k in record})


@pytest.fixture
def stimulus_set(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"s{i}.png")
        rows.append({"stimulus_id": f"s{i}", "filename": f"s{i}.png", "object_name": f"o{i % 2}", "size": 0.5 + i})
    return make_stimulus_set(rows, "toy.stimuli", tmp_path)


def _toy(**kwargs):
    return BrainModel(Toy(), image_size=None, cache=False, **kwargs)


def test_assembly_labels_bins_neuroids_and_stimuli(stimulus_set):
    model = _toy(region_layers={"IT": ["conv2", "conv1"]})
    bins = [(70, 80), (80, 90), (150, 170)]
    model.start_recording("IT", bins)
    shuffled = stimulus_set.iloc[[3, 0, 5, 1, 4, 2]].reset_index(drop=True)
    assembly = model.look_at(shuffled)
    assert assembly.dims == ("presentation", "neuroid", "time_bin")
    # presentations in the stimulus set's row order, carrying its columns
    assert list(assembly["stimulus_id"].values) == ["s3", "s0", "s5", "s1", "s4", "s2"]
    assert list(assembly["size"].values) == [3.5, 0.5, 5.5, 1.5, 4.5, 2.5]
    assert list(assembly["object_name"].values) == ["o1", "o0", "o1", "o1", "o0", "o0"]
    # each row holds its own stimulus's features, whatever the order of the set
    model.start_recording("IT", bins)
    ordered = model.look_at(stimulus_set)
    rows = [list(ordered["stimulus_id"].values).index(s) for s in assembly["stimulus_id"].values]
    np.testing.assert_array_equal(assembly.values, ordered.values[rows])
    # time bins as given; Toy's step t is t * its feed-forward output, and bin [a, b) reads step (a + b) / 20
    assert list(assembly["time_bin_start"].values) == [70, 80, 150]
    assert list(assembly["time_bin_end"].values) == [80, 90, 170]
    values = assembly.values
    np.testing.assert_allclose(values[:, :, 1], values[:, :, 0] * 8 / 7, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(values[:, :, 2], values[:, :, 0] * 16 / 7, rtol=1e-5, atol=1e-6)
    # neuroids: the committed layers in order, each labelled with its layer and the region
    layers = assembly["layer"].values
    assert list(dict.fromkeys(layers)) == ["conv2", "conv1"] and set(assembly["region"].values) == {"IT"}
    assert len(set(assembly["neuroid_id"].values)) == assembly.sizes["neuroid"]
    for layer in ("conv1", "conv2"):
        alone = _toy(region_layers={"IT": layer})
        alone.start_recording("IT", bins)
        single = alone.look_at(shuffled)
        part = assembly.isel(neuroid=np.flatnonzero(layers == layer))
        np.testing.assert_array_equal(part.values, single.values)
        assert list(part["neuroid_id"].values) == list(single["neuroid_id"].values)
    assert assembly.attrs["stimulus_set_identifier"] == "toy.stimuli" and assembly.attrs["layers"] == "conv2,conv1"


def test_full_features_and_the_projection(stimulus_set):
    full = _toy(region_layers={"V4": "conv2"}, max_features=None)
    reduced = _toy(region_layers={"V4": "conv2"}, max_features=10)
    for model in (full, reduced):
        model.start_recording("V4", [(70, 170)])
    assert full.look_at(stimulus_set).sizes["neuroid"] == 6 * 4 * 4  # every unit of conv2 at 8x8 input
    assert reduced.look_at(stimulus_set).sizes["neuroid"] == 10
    # the harness's own Stimuli (already normalised images) give the same features as their stimulus set
    images = load_stimulus_set(stimulus_set, None)
    np.testing.assert_array_equal(reduced.look_at(images).values, reduced.look_at(stimulus_set).values)
    assert list(reduced.look_at(images)["object_name"].values) == list(stimulus_set["object_name"])


def test_hooked_module_with_a_time_mapping(stimulus_set):
    """A module read through hooks: each call of the layer is a step, placed by the given StepTable."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.block(torch.tanh(self.block(x)))

    twice = Twice()
    model = BrainModel(twice, {"IT": "block"}, timing=StepTable(50, 100, 2), image_size=None, cache=False,
                       identifier="twice")
    model.start_recording("IT", [(70, 100), (100, 150), (150, 250)])
    assembly = model.look_at(stimulus_set)
    assert model.identifier == "twice" and assembly.attrs["model"] == "twice"
    values = assembly.values
    np.testing.assert_array_equal(values[:, :, 0], values[:, :, 1])  # midpoints 85, 125 ms: step 0
    assert not np.allclose(values[:, :, 0], values[:, :, 2])  # midpoint 200 ms: step 1
    with torch.no_grad():
        images = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255)
                              for p in stimulus_set.stimulus_paths()]).permute(0, 3, 1, 2)
        images = (images - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        second = twice.block(torch.tanh(twice.block(images))).flatten(1).numpy()
    np.testing.assert_allclose(values[:, :, 2], second, rtol=1e-5, atol=1e-5)


def test_commitment_tasks_and_errors(stimulus_set):
    model = _toy()
    with pytest.raises(SpecError, match="start_recording"):
        model.look_at(stimulus_set)
    with pytest.raises(SpecError, match="no layer committed to region 'V4'"):
        model.start_recording("V4", [(70, 80)])  # Toy's layers follow no released map
    with pytest.raises(SpecError, match="has no layer 'conv9'"):
        _toy(region_layers={"V4": "conv9"})
    model = _toy(region_layers={"V4": "conv1"})
    assert model.region_layer_map == {"V4": ["conv1"]} and model.visual_degrees() == 8
    for bins, message in (([(80, 70)], r"time bin 0 \[80, 70\) ms does not end after it starts"),
                          ([(80, 90), (70, 80)], r"time bins out of order: bin 1 \[70, 80\) ms does not start after bin 0"),
                          ([(70.5, 80)], r"time bin 0 \[70\.5, 80\) ms is not in whole ms"),
                          ([(70, float("nan"))], r"time bin 0 \[70, nan\) ms is not finite"), ([], "no time bins")):
        with pytest.raises(SpecError, match=r"start_recording: time_bins: " + message):
            model.start_recording("V4", bins)
    model.start_recording("V4", [(70, 90), (80, 100)])  # overlapping windows, as Brain-Score's MajajHong2015 temporal
    windows = model.look_at(stimulus_set).values       # files hold them: steps 8 and 9 (were refused)
    np.testing.assert_allclose(windows[:, :, 1], windows[:, :, 0] * 9 / 8, rtol=1e-5, atol=1e-6)
    model.start_recording("V4", [(70, 80)])
    with pytest.raises(SpecError, match="number_of_trials"):
        model.look_at(stimulus_set, number_of_trials=0)
    model.start_task(model.Task.passive)
    assert model.RecordingTarget.IT == "IT"
    with pytest.raises(NotImplementedError, match="'label'.*only 'passive'"):
        model.start_task("label")
    # an area-named layer is its region's default (the embedded teacher, CORnet-like models)
    areas = nn.Sequential()
    areas.add_module("V4", nn.Conv2d(3, 3, 1))
    areas.add_module("IT", nn.Conv2d(3, 3, 1))
    areas.layer_names = ("V4", "IT")
    assert BrainModel(areas).region_layer_map == {"V4": ["V4"], "IT": ["IT"]}


class Noisy(nn.Module):
    """Stochastic in eval mode: the layer ``noise`` adds fresh Gaussian noise to a fixed convolution at every call."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.noise = _AddNoise()

    def forward(self, x):
        return self.noise(self.conv(x))


class _AddNoise(nn.Module):
    def forward(self, x):
        return x + torch.randn_like(x)


def test_number_of_trials_averages_a_stochastic_model(stimulus_set):
    """Brain-Score's look_at(stimuli, number_of_trials): the mean over that many presentations for a model declared
    stochastic (fresh draws, the cache left alone even when on); one presentation, today's result, otherwise."""
    noisy = Noisy()
    bins = [(70, 170)]

    def look(stochastic, trials, seed=None, cache=False):
        model = BrainModel(noisy, {"IT": "noise"}, image_size=None, max_features=None, cache=cache, stochastic=stochastic)
        model.start_recording("IT", bins)
        if seed is not None:
            torch.manual_seed(seed)
        return model.look_at(stimulus_set, number_of_trials=trials)

    today = look(False, 1, seed=3)
    one = look(True, 1, seed=3)
    np.testing.assert_array_equal(one.values, today.values)  # one trial is the single presentation of before
    torch.manual_seed(3)
    draws = [look(True, 1).values.astype(np.float64) for _ in range(4)]
    assert not np.allclose(draws[0], draws[1])  # the model is stochastic in eval mode
    four = look(True, 4, seed=3)
    np.testing.assert_allclose(four.values, np.mean(draws, axis=0), rtol=1e-6, atol=1e-6)
    assert four.attrs["number_of_trials"] == 4 and four.attrs["trials_averaged"] == 4
    # the average is closer to the noiseless response than one trial is (noise sd 1 -> 1/2 over 4 trials)
    clean = BrainModel(noisy.conv, {"IT": ""}, image_size=None, max_features=None, cache=False)
    clean.start_recording("IT", bins)
    truth = clean.look_at(stimulus_set).values
    assert np.std(four.values - truth) == pytest.approx(0.5, abs=0.1) and np.std(draws[0] - truth) == pytest.approx(1, abs=0.15)
    # a stochastic model bypasses the activation cache: two calls are two draws, not one stored draw
    assert not np.allclose(look(True, 1, cache=True).values, look(True, 1, cache=True).values)
    # not declared stochastic: one presentation whatever number_of_trials says (Brain-Score's ModelCommitment)
    many = look(False, 4, seed=3)
    np.testing.assert_array_equal(many.values, today.values)
    assert many.attrs["trials_averaged"] == 1


@pytest.fixture(scope="module")
def ventral_subset():
    """ventral_embedded.V4-temporal, as registered, on 30 of its stimuli (15 each of two objects: every split's
    test share holds both, 3 stimuli, the fewest a Pearson r is scored over), and the same rows of its stimulus set."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.metrics.assembly import coord
    from neurozoo.benchmarks.neural import _recording

    benchmark = benchmarks.load("ventral_embedded.V4-temporal")
    objects = np.asarray(benchmark.stimuli.object_name)
    index = np.concatenate([np.flatnonzero(objects == name)[:15] for name in ("ellipse", "star")])
    ids = np.asarray(benchmark.stimuli.ids)[index]
    assembly = benchmark.assembly.isel(presentation=np.flatnonzero(np.isin(coord(benchmark.assembly, "stimulus_id"), ids)))
    stimuli = benchmark.stimuli.select(index)
    subset = dataclasses.replace(benchmark, load_assembly=lambda: assembly, load_stimuli=lambda: stimuli)
    stimulus_set = _recording("ventral_embedded.V4").stimulus_set
    rows = stimulus_set.set_index("stimulus_id").index.get_indexer(ids)
    return subset, stimulus_set.iloc[rows].reset_index(drop=True)


def test_a_metric_on_look_at_gives_the_benchmarks_score(ventral_subset):
    """The adapter's assembly, scored by the benchmark's metric (span-time PLS, its ceiling), equals
    ``benchmarks.load("ventral_embedded.V4-temporal").score(model)``: same layer (the released map's conv3 for the
    shallow ConvRNN), bins, projection and split."""
    from neurozoo.benchmarks.metrics import regression_score

    benchmark, stimulus_set = ventral_subset
    model = BrainModel("rgc_shallow", overrides={"width_multiplier": 0.125}, image_size=None, cache=False)
    assert model.identifier == "rgc_shallow(width_multiplier=0.125)" and model.layers("V4") == ["conv3"]
    model.start_recording("V4", [(int(a), int(b)) for a, b in benchmark.bins])
    assembly = model.look_at(stimulus_set)
    assert list(assembly["stimulus_id"].values) == list(stimulus_set["stimulus_id"])
    assert set(stimulus_set.columns) <= set(assembly.coords)
    assert list(assembly["time_bin_start"].values) == list(range(70, 260, 10))
    ours = regression_score(assembly, benchmark.assembly, benchmark.mapping, benchmark.temporal, ceiling=benchmark.ceiling)
    expected = benchmark.score(model.model, cache=False, progress=False)
    assert expected.provenance["settings"]["layer"] == "conv3"
    assert ours.value == pytest.approx(expected.value, abs=1e-12) and abs(expected.value) > 0.01
    np.testing.assert_allclose(ours.raw_per_bin, [r["raw"] for r in expected.per_bin], atol=1e-12)


def _readme_block(marker: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("```python\n", text.index(marker)) + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_readme_recipe_for_your_own_recordings_runs_as_written(tmp_path, monkeypatch, capsys):
    """README "Your own recordings": the assembly written with plain xarray, loaded, and scored by a ConvRNN through
    BrainModel. The responses are a linear function of each image's colour plus noise, so the score is above 0; the
    same responses shuffled across stimuli score about 0; and features read in another window than the recording's
    are refused (they were matched on the bin's start alone)."""
    from neurozoo.datasets.errors import DataError

    rng = np.random.default_rng(1)
    n_stimuli, n_repeats, n_units = 40, 3, 12
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_stimuli").mkdir()
    colours = rng.uniform(0, 255, (n_stimuli, 3))  # each image one colour with a little noise
    for i, colour in enumerate(colours):
        image = np.clip(colour + rng.normal(0, 8, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / "my_stimuli" / f"im{i:02d}.png")
    (tmp_path / "my_stimuli.csv").write_text("stimulus_id,filename\n" + "".join(f"im{i:02d},im{i:02d}.png\n"
                                                                              for i in range(n_stimuli)))
    signal = colours @ rng.normal(size=(3, n_units))
    signal = (signal - signal.mean(0)) / signal.std(0)
    values = np.repeat(signal, n_repeats, axis=0)[:, :, None] + 0.5 * rng.normal(size=(n_stimuli * n_repeats, n_units, 1))
    names = {"values": values, "stimulus_ids": np.repeat([f"im{i:02d}" for i in range(n_stimuli)], n_repeats),
             "repeats": np.tile(np.arange(n_repeats), n_stimuli), "objects": ["unlabelled"] * (n_stimuli * n_repeats),
             "unit_ids": [f"u{i}" for i in range(n_units)]}
    code = _readme_block("**Your own recordings.**")
    exec(compile(code, "README.md (your own recordings)", "exec"), names)
    printed = capsys.readouterr().out.split()
    assert [float(v) for v in printed] == [names["score"].value, names["score"].raw, names["score"].ceiling.value]
    assert names["score"].ceiling.value > 0.8 and names["score"].value > 0.2

    shuffled = dict(names, stimulus_ids=np.repeat(rng.permutation([f"im{i:02d}" for i in range(n_stimuli)]), n_repeats))
    exec(compile(code, "README.md (your own recordings)", "exec"), shuffled)
    assert abs(shuffled["score"].value) < 0.1 < names["score"].value - 0.1

    model, regression_score = names["model"], names["regression_score"]
    model.start_recording("V4", time_bins=[(70, 120)])
    with pytest.raises(DataError, match=r"time bins \[70, 120\) ms do not include the target's bin \[70, 170\) ms"):
        regression_score(model.look_at(names["stimuli"]), names["data"])
