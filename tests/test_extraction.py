"""Activation extraction: time mapping, reduction, ConvRNN recording contract, hooks, cache keys."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import neurozoo.datasets.torchvision_compat  # noqa: F401  (before timm)
from processes import live_waiting, run_killed
from neurozoo.benchmarks.extraction import (CONVRNN, CORNET_RT, CORNET_S, CORNET_Z, NAYEBI_FITTING_BINS, ActivationCache,
                                            RandomProjection, StepBins, StepTable, Stimuli, extract, is_convrnn, static)
from neurozoo.datasets.errors import SpecError


class ToyConvRNN(nn.Module):
    """Follows the ConvRNN recording contract; layer output at step t is t * conv(image) (zero before the image arrives)."""

    layer_names = ("conv1", "conv2")

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.calls = 0

    def forward(self, images, n_steps=17, image_steps=12, record=()):
        self.calls += 1
        a = self.conv1(images)
        b = self.conv2(a)
        steps = torch.arange(n_steps, dtype=images.dtype).view(-1, 1, 1, 1, 1)
        recorded = {"conv1": steps * a, "conv2": steps * b}
        return SimpleNamespace(logits=torch.zeros(n_steps, len(images), 10), recorded={k: recorded[k] for k in record})


@pytest.fixture
def stimuli():
    generator = torch.Generator().manual_seed(0)
    return Stimuli([f"im{i}" for i in range(10)], torch.randn(10, 3, 8, 8, generator=generator),
                   object_name=np.array(["a", "b"] * 5))


def test_the_fitting_window_is_named_for_nayebi_and_its_former_name_still_imports_with_a_warning():
    """The 70-260 ms window is Nayebi et al.'s fitting window, not Brain-Score's bins (its MajajHong2015 temporal
    benchmarks cut 10 ms bins from 0 ms); ``BRAINSCORE_BINS``, exported by benchmarks.extraction, still imports."""
    from neurozoo.benchmarks import extraction
    from neurozoo.benchmarks.extraction import time_mapping

    for module in (extraction, time_mapping):
        with pytest.warns(DeprecationWarning, match="renamed NAYEBI_FITTING_BINS"):
            assert module.BRAINSCORE_BINS is NAYEBI_FITTING_BINS
        assert "BRAINSCORE_BINS" not in getattr(module, "__all__", ())
    with pytest.raises(AttributeError, match="no attribute 'BRAINSCORE_BIN'"):
        time_mapping.BRAINSCORE_BIN


def test_time_mappings():
    window = NAYEBI_FITTING_BINS
    assert len(window) == 19 and window[0] == (70.0, 80.0) and window[-1] == (250.0, 260.0)
    np.testing.assert_array_equal(CONVRNN.steps_for(NAYEBI_FITTING_BINS), np.arange(7, 26))  # step t -> [10t, 10t+10)
    np.testing.assert_array_equal(static().steps_for(NAYEBI_FITTING_BINS), np.zeros(19))
    # CORnet-S V4 (90 ms, 50 ms steps, 4 steps): bins before 90 ms hold step 0, 240-260 ms is the last step
    v4 = CORNET_S["V4"].steps_for(NAYEBI_FITTING_BINS)
    assert list(v4[:4]) == [0, 0, 0, 0] and v4[NAYEBI_FITTING_BINS.index((140.0, 150.0))] == 1 and v4[-1] == 3
    np.testing.assert_array_equal(StepTable(0, 10, 3).intervals(), [[0, 10], [10, 20], [20, 30]])


def _brainscore_cornet_steps(time_mapping, requested_bins, steps_produced=None):
    """Brain-Score's CORnet bin-to-step rule, written from brain-score/vision
    brainscore_vision/models/cornet_s/helpers/helpers.py (commit 098ed26): ``_build_time_mappings`` gives step t the
    bin (start + t * size, start + (t + 1) * size); ``CORnetCommitment.look_at_cached`` labels each step's responses
    with that bin's start (a step the mapping leaves out gets None and is dropped) and, per requested (start, end),
    selects ``find_nearest(time_bin_starts, start)``, where ``find_nearest`` is ``array[np.abs(array - value).argmin()]``
    (the first such step on a tie). ``time_mapping``: (start, size, steps), or a {step: (start, end)} dict as
    candidate_models' cornets.py writes CORnet-Z's and CORnet-R's."""
    if isinstance(time_mapping, tuple):
        start, size, steps = time_mapping
        time_mapping = {t: (start + t * size, start + (t + 1) * size) for t in range(steps)}
    steps = range(steps_produced or max(time_mapping) + 1)
    kept = [t for t in steps if t in time_mapping]
    starts = np.asarray([time_mapping[t][0] for t in kept])
    chosen = []
    for bin_start, _ in requested_bins:
        nearest = starts[np.abs(starts - bin_start).argmin()]
        chosen.append(kept[int(np.flatnonzero(starts == nearest)[0])])
    return chosen


def test_cornet_z_and_rt_tables_pick_brainscores_steps():
    """brain-score/candidate_models candidate_models/model_commitments/cornets.py (commit 0d645e5):
    ``cornet_z_brainmodel`` and ``cornet_r_brainmodel`` (the 5-step commitment CORnet-RT takes), as published."""
    published = {
        "Z": {"V1": {0: (50, 150)}, "V2": {0: (70, 170)}, "V4": {0: (90, 190)}, "IT": {0: (100, 200)}},
        "RT": {"V1": {0: (50, 80), 1: (80, 110), 2: (110, 140), 3: (140, 170), 4: (170, 200)},
               "V2": {1: (60, 110), 2: (110, 140), 3: (140, 170), 4: (170, 200)},
               "V4": {1: (70, 110), 2: (140, 170), 3: (170, 200), 4: (200, 250)},
               "IT": {1: (70, 110), 2: (140, 170), 3: (170, 200), 4: (200, 250)}}}
    requested = NAYEBI_FITTING_BINS + [(0.0, 50.0), (300.0, 400.0), (95.0, 105.0), (125.0, 135.0)]
    for name, tables, produced in (("Z", CORNET_Z, 1), ("RT", CORNET_RT, 5)):
        for region, mapping in published[name].items():
            assert tables[region].steps == produced
            assert list(tables[region].steps_for(requested)) == \
                _brainscore_cornet_steps(mapping, requested, produced), (name, region)
    np.testing.assert_array_equal(CORNET_RT["V2"].intervals()[1:], [[60, 110], [110, 140], [140, 170], [170, 200]])
    assert np.isnan(CORNET_RT["V2"].intervals()[0]).all()
    with pytest.raises(ValueError, match="at least one mapped step"):
        StepBins((None, None))


def test_cornet_s_tables_pick_brainscores_steps():
    """CORnet-S (start, width, steps) per region as brain-score/vision commits it: brainscore_vision/models/cornet_s/
    model.py at 1c80c9d, ``TIME_MAPPINGS`` (lines 15-21; REFERENCE.md section 2), read as Brain-Score reads it."""
    published = {"V1": (50, 100, 1), "V2": (70, 100, 2), "V4": (90, 50, 4), "IT": (100, 100, 2)}
    requested = NAYEBI_FITTING_BINS + [(70.0, 170.0), (0.0, 50.0), (300.0, 400.0), (115.0, 125.0)]
    for region, table in CORNET_S.items():
        assert (table.start, table.width, table.steps) == published[region]
        assert list(table.steps_for(requested)) == _brainscore_cornet_steps(published[region], requested), region
    # the rule matters: by the midpoint, V4's [120, 130) ms is step 0 and IT's [160, 170) ms step 0; Brain-Score: 1 and 1
    assert StepTable(90, 50, 4).steps_for([(120.0, 130.0)])[0] == 0 and CORNET_S["V4"].steps_for([(120.0, 130.0)])[0] == 1
    assert StepTable(100, 100, 2).steps_for([(160.0, 170.0)])[0] == 0 and CORNET_S["IT"].steps_for([(160.0, 170.0)])[0] == 1
    with pytest.raises(ValueError, match="rule"):
        StepTable(0, 10, 2, rule="nearest")


@pytest.mark.parametrize("start, width, steps", [(70, 0, 3), (70, -10, 3), (70, float("nan"), 3), (float("inf"), 10, 3),
                                                 (0, 10, 0), (0, 10, 2.5)])
def test_a_step_table_without_steps_or_width_is_refused(start, width, steps):
    """Before: StepTable(70, 0, 3) read every bin at step 0 (the midpoint's index +-inf, clipped) and StepTable(0, 10, 0)
    at step -1, so a submission's [70, 0, 3] scored the first step as if it were the mapping asked for."""
    with pytest.raises(ValueError, match="StepTable: (start must be finite|steps must be)"):
        StepTable(start, width, steps)


def test_random_projection_is_seeded_and_preserves_geometry():
    x = torch.randn(40, 5000)
    projection = RandomProjection(5000, 800, seed=3)
    y = projection(x)
    assert y.shape == (40, 800)
    assert torch.equal(y, RandomProjection(5000, 800, seed=3)(x))
    assert not torch.equal(y, RandomProjection(5000, 800, seed=4)(x))
    distances = torch.pdist(x)
    ratio = torch.pdist(y) / distances
    assert abs(float(ratio.mean()) - 1) < 0.05 and float(ratio.std()) < 0.05  # Johnson-Lindenstrauss
    small = RandomProjection(30, 800)
    assert small.identity and torch.equal(small(x[:, :30]), x[:, :30])


def test_random_projection_runs_in_float32_inside_a_bfloat16_cpu_autocast():
    """The bfloat16 fast path hands each step to the reduction inside its CPU autocast, where the sparse product
    failed ('addmm_out_sparse_csr_impl_mkl' not implemented for 'BFloat16')."""
    x = torch.randn(6, 5000)
    projection = RandomProjection(5000, 100, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = projection(x.to(torch.bfloat16))
    assert inside.dtype == torch.float32
    assert torch.equal(inside, projection(x.to(torch.bfloat16)))


def test_convrnn_extraction_maps_steps_to_bins(stimuli, tmp_path):
    model = ToyConvRNN()
    assert is_convrnn(model)
    out = extract(model, stimuli, ["conv1", "conv2"], max_features=1000, batch_size=4, cache=False, progress=False)
    conv2 = out["conv2"]
    assert conv2.dims == ("presentation", "neuroid", "time_bin") and conv2.shape == (10, 6 * 4 * 4, 19)
    assert list(conv2["time_bin_start"].values[:2]) == [70.0, 80.0] and list(conv2["stimulus_id"].values[:2]) == ["im0", "im1"]
    with torch.no_grad():
        expected = model.conv2(model.conv1(stimuli.images)).reshape(10, -1).numpy()
    # bin [10t, 10t + 10) holds step t, whose output is t * conv(image)
    np.testing.assert_allclose(conv2.isel(time_bin=0).values, 7 * expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv2.isel(time_bin=-1).values, 25 * expected, rtol=1e-5, atol=1e-5)
    assert list(out["conv1"]["object_name"].values[:2]) == ["a", "b"]
    reduced = extract(model, stimuli, ["conv1"], max_features=50, cache=False, progress=False)["conv1"]
    assert reduced.shape == (10, 50, 19)


def test_bins_the_convrnn_unroll_does_not_reach_are_refused(stimuli):
    """A bin after the unroll's last step was read at that step (300-310 ms at 250-260 ms, the step table clips),
    and a bin before onset at step 0; both are refused, naming the bin and the n_steps that reaches it."""
    model = ToyConvRNN()
    options = dict(max_features=20, cache=False, progress=False)
    with pytest.raises(SpecError, match=r"time bin \[300, 310\) ms lies after the ConvRNN's unroll of 26 steps "
                                        r"\(0-260 ms.*unroll n_steps >= 31"):
        extract(model, stimuli, ["conv1"], bins=[(250, 260), (300, 310)], **options)
    with pytest.raises(SpecError, match=r"time bin \[-50, 0\) ms lies before stimulus onset"):
        extract(model, stimuli, ["conv1"], bins=[(-50, 0), (70, 80)], **options)
    late = extract(model, stimuli, ["conv1"], bins=[(250, 260), (300, 310)], n_steps=31, **options)["conv1"]
    first, second = late.isel(time_bin=0).values, late.isel(time_bin=1).values
    np.testing.assert_allclose(second, first * 30 / 25, rtol=1e-5, atol=1e-5)  # step 30, not step 25 again
    # a step table given by the caller keeps its own rule (bins outside it take its first or last step)
    extract(model, stimuli, ["conv1"], bins=[(300, 310)], timing=StepTable(0, 10, 26), **options)


def test_one_layer_name_is_a_layer_and_sizes_below_one_are_refused(stimuli):
    model = ToyConvRNN()
    one = extract(model, stimuli, "conv2", max_features=50, cache=False, progress=False)
    assert list(one) == ["conv2"] and one["conv2"].shape == (10, 50, 19)  # "conv2", not "c", "o", ...
    for setting, message in (({"max_features": 0}, "max_features must be at least 1, got 0"),
                             ({"batch_size": 0}, "batch_size must be at least 1, got 0")):
        with pytest.raises(SpecError, match=f"extraction: {message}"):
            extract(model, stimuli, ["conv1"], cache=False, progress=False, **setting)


def test_static_timm_model_features_repeat_across_bins(stimuli):
    import timm

    model = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    images = torch.nn.functional.interpolate(stimuli.images, size=32)
    out = extract(model, Stimuli(stimuli.ids, images), ["layer2", "global_pool"], max_features=64, cache=False,
                  progress=False)
    pooled = out["global_pool"].values
    assert pooled.shape[1] <= 64 and pooled.shape[2] == 19
    np.testing.assert_array_equal(pooled[:, :, 0], pooled[:, :, -1])
    assert out["layer2"].shape[1] == 64 and np.abs(out["layer2"].values).sum() > 0
    with pytest.raises(SpecError, match="no layer"):
        extract(model, Stimuli(stimuli.ids, images), ["layer9"], cache=False, progress=False)


def test_an_empty_stimulus_set_is_refused_with_its_shape(stimuli):
    """No images reached the extraction and failed there in torch.cat ("expected a non-empty list of Tensors")."""
    from neurozoo.benchmarks.extraction.images import PixelStimuli
    from neurozoo.datasets.errors import DataError

    with pytest.raises(DataError, match=r"stimuli: no images \(got images \(0, 3, 8, 8\) and 0 ids\)"):
        Stimuli([], torch.zeros(0, 3, 8, 8))
    with pytest.raises(DataError, match="stimuli: no images"):
        PixelStimuli([], np.zeros((0, 8, 8, 3), dtype=np.uint8))


def test_hooked_recurrent_module_uses_step_table(stimuli):
    class Unrolled(nn.Module):  # CORnet-like: the "V4" block is called 4 times per forward pass
        def __init__(self):
            super().__init__()
            self.V4 = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            for _ in range(4):
                x = self.V4(x)
            return x

    model = Unrolled()
    out = extract(model, stimuli, ["V4"], timing={"V4": CORNET_S["V4"]}, cache=False, progress=False)["V4"]
    with torch.no_grad():
        x, calls = stimuli.images, []
        for _ in range(4):
            x = model.V4(x)
            calls.append(x.reshape(10, -1).numpy())
    steps = CORNET_S["V4"].steps_for(NAYEBI_FITTING_BINS)
    for b in (0, 8, 18):
        np.testing.assert_allclose(out.isel(time_bin=b).values, calls[steps[b]], rtol=1e-5, atol=1e-6)
    with pytest.raises(SpecError, match="steps"):
        extract(model, stimuli, ["V4"], timing=StepTable(0, 10, 2), cache=False, progress=False)
    with pytest.raises(SpecError, match="no step table for layer 'V4' \\(the time mapping has V2\\)"):
        extract(model, stimuli, ["V4"], timing={"V2": CORNET_S["V2"]}, cache=False, progress=False)


def test_a_layer_inside_a_cornet_area_without_a_table_says_how_to_give_one(stimuli):
    """CORnet-S's V4.conv1 (called once per V4 step) has no table in Brain-Score's per-area mapping: the error names
    the remedy (timing= / a submission's mapping), and the remedy it names -- the area's table -- works."""
    from neurozoo.benchmarks.extraction.time_mapping import model_timing
    from neurozoo.convrnn.cornet import cornet_s

    model = cornet_s(num_classes=10, width_multiplier=0.125).eval()
    with pytest.raises(SpecError, match=r"no step table for layer 'V4\.conv1' \(the time mapping has V1, V2, V4, IT\); "
                                        r"give one .*timing=\{'V4\.conv1': StepTable\(start_ms, width_ms, steps\)\}.*"
                                        r"create_model returns \(model, \{'V4\.conv1': \[start_ms, width_ms, steps\]\}\)"):
        extract(model, stimuli, ["V4.conv1"], cache=False, progress=False)
    out = extract(model, stimuli, ["V4.conv1"], timing={"V4.conv1": model_timing(model)["V4"]}, cache=False,
                  progress=False)["V4.conv1"]
    assert out.sizes["time_bin"] == len(NAYEBI_FITTING_BINS)


class Unrolled(nn.Module):
    """A recurrent submission's usual shape: one module called once per step inside forward."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.cell = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, images):
        x = self.stem(images)
        h = torch.zeros_like(x)
        for _ in range(5):
            h = self.cell(torch.tanh(h + x))
        return h


def test_a_layer_the_model_lacks_is_named_with_the_closest_names_and_the_top_level_modules(stimuli):
    """The error listed the first 30 named modules, alphabetically by depth: a deep model's layer meant by a
    misspelled name was rarely among them."""
    with pytest.raises(SpecError) as error:
        extract(Unrolled(), stimuli, ["stem.O"], cache=False, progress=False)
    assert str(error.value) == ("model has no layer 'stem.O'; did you mean 'stem.1', 'stem.0', 'stem'? (its top-level "
                                "modules: stem, cell; a nested layer is named by its path, e.g. 'stem.0')")


def test_a_recurrent_layer_without_a_time_mapping_is_told_how_to_declare_one(stimuli):
    """A layer called 5 times per image with no mapping: "produced 5 steps but its time mapping has 1" said
    neither why nor what to declare. The mapping the error suggests extracts."""
    with pytest.raises(SpecError) as error:
        extract(Unrolled(), stimuli, ["cell"], cache=False, progress=False)
    message = str(error.value)
    assert message.startswith("layer 'cell' produced 5 steps (it ran 5 times on each image) but its time mapping has "
                              "1 (one step: what a model that declares no time mapping gets); declare which time")
    assert "create_model returns (model, {'cell': [70, 38, 5]}) (this one spreads the calls over the bins, 70-260 ms)" \
        in message and "timing={'cell': StepTable(start_ms, width_ms, 5)}" in message
    out = extract(Unrolled(), stimuli, ["cell"], timing={"cell": StepTable(70, 38, 5)}, cache=False,
                  progress=False)["cell"]
    assert out.sizes["time_bin"] == len(NAYEBI_FITTING_BINS)
    assert np.array_equal(out.isel(time_bin=0).values, out.isel(time_bin=3).values)  # 70-110 ms: the first call
    assert not np.array_equal(out.isel(time_bin=0).values, out.isel(time_bin=4).values)  # 110-120 ms: the second
    with pytest.raises(SpecError, match="produced 5 steps .* but its time mapping has 4; declare"):
        extract(Unrolled(), stimuli, ["cell"], timing={"cell": StepTable(70, 38, 4)}, cache=False, progress=False)


def test_cache_hit_and_miss_on_changed_weight(stimuli, tmp_path):
    cache = ActivationCache(tmp_path / "acts")
    model = ToyConvRNN()
    first = extract(model, stimuli, ["conv2"], cache=cache, progress=False)["conv2"]
    assert model.calls == 1  # 10 stimuli, one batch of 32
    calls = model.calls
    again = extract(model, stimuli, ["conv2"], cache=cache, progress=False)["conv2"]
    assert model.calls == calls  # served from disk
    np.testing.assert_array_equal(first.values, again.values)
    assert list(again["stimulus_id"].values) == stimuli.ids
    with torch.no_grad():
        model.conv2.weight[0, 0, 0, 0] += 0.5  # change one weight
    changed = extract(model, stimuli, ["conv2"], cache=cache, progress=False)["conv2"]
    assert model.calls == calls + 1  # miss: the model ran again
    assert not np.allclose(changed.values, first.values)
    other = Stimuli(stimuli.ids, stimuli.images + 1)
    extract(model, other, ["conv2"], cache=cache, progress=False)
    assert model.calls == calls + 2  # different pixels: miss
    extract(model, stimuli, ["conv2"], cache=cache, max_features=20, progress=False)
    assert model.calls == calls + 3  # different settings: miss


def test_stimulus_set_images_are_loaded_and_normalised(tmp_path):
    import pandas as pd
    from PIL import Image

    from neurozoo.benchmarks.extraction.images import IMAGENET_MEAN, IMAGENET_STD, load_stimulus_set

    class Table(pd.DataFrame):
        def get_stimulus(self, stimulus_id):
            return tmp_path / f"{stimulus_id}.png"

    for i, gray in enumerate((0, 128, 255)):
        Image.fromarray(np.full((20, 30), gray, dtype=np.uint8)).save(tmp_path / f"s{i}.png")
    stimuli = load_stimulus_set(Table({"stimulus_id": ["s0", "s1", "s2"], "object_name": ["a", "b", "a"]}), image_size=16)
    assert stimuli.images.shape == (3, 3, 16, 16) and stimuli.ids == ["s0", "s1", "s2"]
    for channel in range(3):
        expected = (1.0 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert float(stimuli.images[2, channel].mean()) == pytest.approx(expected, abs=1e-5)
        assert float(stimuli.images[0, channel].mean()) == pytest.approx(-IMAGENET_MEAN[channel] / IMAGENET_STD[channel], abs=1e-5)


def test_pixel_stimuli_give_the_float_images_batch_by_batch(stimuli, monkeypatch):
    """Stimuli kept as uint8 pixels: every batch, the hash and the features are those of the float32 images
    normalised all at once, and the extraction never asks for the whole float tensor."""
    from neurozoo.benchmarks.extraction.images import PixelStimuli, to_tensor

    pixels = np.random.default_rng(0).integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    pixel_stimuli = PixelStimuli(stimuli.ids, pixels, stimuli.object_name)
    images = to_tensor(pixels)
    assert pixel_stimuli.shape == (10, 3, 8, 8) and torch.equal(pixel_stimuli.images, images)
    assert torch.equal(torch.cat([pixel_stimuli.batch(s, s + 3) for s in range(0, 10, 3)]), images)
    assert pixel_stimuli.sha256() == Stimuli(stimuli.ids, images).sha256() != Stimuli(stimuli.ids, images + 1).sha256()
    subset = pixel_stimuli.select([7, 2])
    assert subset.ids == ["im7", "im2"] and torch.equal(subset.images, images[[7, 2]])
    assert list(subset.object_name) == ["b", "a"]

    model = _tiny_convrnn()
    monkeypatch.setattr(PixelStimuli, "images", property(lambda self: pytest.fail("read the whole float tensor")))
    from_pixels = extract(model, pixel_stimuli, ["conv3"], batch_size=4, max_features=20, progress=False,
                          cache=False)["conv3"]
    monkeypatch.undo()
    from_floats = extract(model, Stimuli(stimuli.ids, images, stimuli.object_name), ["conv3"], batch_size=4,
                          max_features=20, progress=False, cache=False)["conv3"]
    np.testing.assert_array_equal(from_pixels.values, from_floats.values)
    with pytest.raises(Exception, match="pixels must be"):
        PixelStimuli(["a"], np.zeros((1, 8, 8, 4), dtype=np.uint8))


TINY_CONVRNN = {  # two RGC layers with feedback: the recorded layers depend on every earlier step
    "name": "tiny_extraction", "n_steps": 26, "image_steps": 10, "norm": "group", "num_classes": 5,
    "layers": [
        {"name": "conv1", "channels": 8, "kernel": 3, "stride": 2},
        {"name": "conv2", "channels": 8, "kernel": 3, "cell": {"kind": "rgc", "cell_depth": 4, "cell_to_out": True}},
        {"name": "conv3", "channels": 8, "kernel": 3, "stride": 2, "cell": {"kind": "rgc", "cell_depth": 4}},
    ],
    "feedback": [{"source": "conv3", "target": "conv2"}],
}


def _tiny_convrnn():
    from neurozoo import convrnn

    torch.manual_seed(0)
    model = convrnn.create_model(TINY_CONVRNN)
    with torch.no_grad():  # non-zero recurrent weights, so later steps differ from earlier ones
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.normal_(0, 0.3)
    return model.eval()


def _brainscore_portion(source_bins, target_bins):
    """Brain-Score's time alignment of a temporal model, written from brain-score/vision
    brainscore_vision/model_helpers/brain_transformation/temporal.py at 0dbf122: ``time_align(..., mode="portion")``
    gives belong_to[target, source] = overlap / source width, set to 0 for a target bin whose range the sources do
    not cover (max over sources of min(ends) below the target's end, or min over sources of max(starts) above its
    start); ``assembly_time_align`` asserts every target row has a weight and averages the sources of each target bin
    with those weights, ``(data * weights).sum(-1) / weights.sum()``. Returns the (targets, sources) weights so
    normalised."""
    source, target = np.asarray(source_bins, float), np.asarray(target_bins, float)
    overlap_starts = np.maximum(target[:, :1], source[None, :, 0])
    overlap_ends = np.minimum(target[:, 1:], source[None, :, 1])
    belong_to = np.maximum(overlap_ends - overlap_starts, 0) / (source[:, 1] - source[:, 0])[None, :]
    belong_to[(overlap_ends.max(1) < target[:, 1]) | (overlap_starts.min(1) > target[:, 0])] = 0
    assert (belong_to.sum(1) > 0).all(), "invalid target time bin"
    return belong_to / belong_to.sum(1, keepdims=True)


@pytest.mark.parametrize("table, bins", [
    (StepTable(0, 10, 26, rule="portion"), [(70.0, 170.0), (65.0, 95.0), (100.0, 110.0), (253.0, 260.0)]),
    (StepTable(90, 50, 4, rule="portion"), [(90.0, 100.0), (120.0, 150.0), (95.0, 290.0)]),  # CORnet-S V4's steps
])
def test_portion_rule_equals_brainscores_time_align(table, bins):
    from neurozoo.benchmarks.extraction.time_mapping import bin_weights

    needed, weights = bin_weights(table, bins)
    full = np.zeros((len(bins), table.steps))
    full[:, needed] = weights
    np.testing.assert_allclose(full, _brainscore_portion(table.intervals(), bins), rtol=0, atol=1e-15)
    assert (weights > 0).sum(1).max() > 1  # several steps in a bin: not a one-step rule
    for outside in ([(-5.0, 5.0)], [(250.0, 300.0)] if table.steps == 26 else [(280.0, 300.0)]):
        with pytest.raises(AssertionError, match="invalid"):
            _brainscore_portion(table.intervals(), outside)
        with pytest.raises(ValueError, match="not covered by the model's steps"):
            bin_weights(table, outside)
    with pytest.raises(ValueError, match="bin_weights"):
        table.steps_for(bins)


def test_portion_rule_extracts_the_average_of_the_steps_in_a_bin(stimuli):
    """Cowley's [70, 170) ms window on the toy ConvRNN, whose step t is t * conv(image): Brain-Score's portion rule
    averages steps 7-16 (11.5 * conv(image)), the midpoint reads step 12 (12 * conv(image))."""
    model = ToyConvRNN()
    with torch.no_grad():
        expected = model.conv2(model.conv1(stimuli.images)).reshape(10, -1).numpy()
    options = dict(bins=[(70.0, 170.0), (65.0, 95.0)], max_features=1000, batch_size=4, cache=False, progress=False)
    portion = extract(model, stimuli, ["conv2"], timing=StepTable(0, 10, 26, rule="portion"), **options)["conv2"]
    np.testing.assert_allclose(portion.values[..., 0], 11.5 * expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(portion.values[..., 1], 7.5 * expected, rtol=1e-5, atol=1e-5)  # (6/2 + 7 + 8 + 9/2) / 3
    midpoint = extract(model, stimuli, ["conv2"], **options)["conv2"]
    np.testing.assert_allclose(midpoint.values[..., 0], 12 * expected, rtol=1e-5, atol=1e-5)


def test_unroll_stops_after_the_last_needed_step_with_the_same_features(stimuli):
    """Cowley's 70-170 ms window reads step 12: the model runs 13 steps, and the features equal step 12 of the
    full 26-step unroll (causality), reduced by the same projection."""
    model = _tiny_convrnn()
    calls = []
    original = model.forward

    def spy(images, n_steps=None, image_steps=None, record=None):
        calls.append({"n_steps": n_steps, "image_steps": image_steps})
        return original(images, n_steps=n_steps, image_steps=image_steps, record=record)

    model.forward = spy
    window = [(70.0, 170.0)]
    out = extract(model, stimuli, ["conv2", "conv3"], bins=window, max_features=20, batch_size=4, cache=False,
                  progress=False, fast=False)
    assert [c["n_steps"] for c in calls] == [13, 13, 13] and all(c["image_steps"] == 10 for c in calls)
    with torch.inference_mode():
        full = original(stimuli.images, n_steps=26, image_steps=10, record=["conv2", "conv3"]).recorded
    for layer in ("conv2", "conv3"):
        step = full[layer][12].reshape(10, -1)
        expected = RandomProjection(step.shape[1], 20, 0)(step).numpy()
        assert out[layer].shape == (10, 20, 1)
        np.testing.assert_allclose(out[layer].values[:, :, 0], expected, rtol=1e-5, atol=1e-5)
        assert not np.allclose(full[layer][12], full[layer][25], atol=1e-3)  # a later step would have differed


@pytest.mark.parametrize("fast", [False, None])
def test_streamed_step_reduction_equals_the_stacked_one(stimuli, fast):
    """A ConvRNN hands each step to the reduction as it is computed (``on_step``) and keeps no recording; the
    features are exactly those of reducing the stacked (T, B, C, H, W) recording, on both paths."""
    model = _tiny_convrnn()
    original = model.forward
    bins = [(120.0, 130.0), (70.0, 80.0), (100.0, 110.0), (120.0, 130.0)]  # unsorted, one step read twice
    streamed_calls = []

    def streaming(images, n_steps=None, image_steps=None, record=None, on_step=None):
        out = original(images, n_steps=n_steps, image_steps=image_steps, record=record, on_step=on_step)
        streamed_calls.append((on_step is not None, dict(out.recorded)))
        return out

    def stacking(images, n_steps=None, image_steps=None, record=None):
        return original(images, n_steps=n_steps, image_steps=image_steps, record=record)

    options = dict(bins=bins, max_features=20, batch_size=4, cache=False, progress=False, fast=fast)
    model.forward = streaming
    streamed = extract(model, stimuli, ["conv2", "conv3"], **options)
    model.forward = stacking
    stacked = extract(model, stimuli, ["conv2", "conv3"], **options)
    assert streamed_calls == [(True, {})] * 3
    for layer in ("conv2", "conv3"):
        assert streamed[layer].shape == (10, 20, 4)
        np.testing.assert_array_equal(streamed[layer].values, stacked[layer].values)
        np.testing.assert_array_equal(streamed[layer].values[..., 0], streamed[layer].values[..., 3])
        assert not np.allclose(streamed[layer].values[..., 0], streamed[layer].values[..., 2])


def test_fast_path_features_equal_the_reference_and_the_model_is_restored(stimuli):
    model = _tiny_convrnn()
    bins = [(70.0, 80.0), (120.0, 130.0), (150.0, 160.0)]
    reference = extract(model, stimuli, ["conv3"], bins=bins, cache=False, progress=False, fast=False)["conv3"]
    fast = extract(model, stimuli, ["conv3"], bins=bins, cache=False, progress=False)["conv3"]  # CPU: float32 fast path
    assert model._fast is None and all(p.is_contiguous() for p in model.parameters())  # switched back
    np.testing.assert_allclose(fast.values, reference.values, rtol=1e-4, atol=1e-5 * np.abs(reference.values).max())
    assert fast.shape == (10, 8 * 2 * 2, 3) and not np.allclose(fast.values[:, :, 0], fast.values[:, :, 2])


def test_the_gpu_default_is_an_eager_float32_fast_path_and_the_cpu_default_is_unchanged():
    """On an H200 the compiled bfloat16 default had not finished compiling after 130 s of a benchmark the reference
    path scores in 19 s: on a GPU ``fast=None`` is not compiled, and float32 (bfloat16 moves activations by ~1e-2)."""
    from neurozoo.benchmarks.extraction.activations import (CPU_FAST, GPU_FAST, device_fast_options,
                                                            inference_options)

    gpu = device_fast_options(torch.device("cuda"))
    assert gpu == GPU_FAST and gpu["compile"] == "none" and gpu["dtype"] is None
    assert gpu["share_image_free_steps"] and not gpu["fuse_gates"]
    assert device_fast_options("cuda:1") == GPU_FAST
    assert device_fast_options(torch.device("cpu")) == {"dtype": None, "compile": "none", "fuse_gates": False,
                                                        "share_image_free_steps": True} == CPU_FAST
    for device in ("cuda", "cpu"):  # fast=True stays to_fast()'s defaults (bfloat16, not compiled); a dict is taken as is
        assert device_fast_options(device, True) == {}
        assert device_fast_options(device, {"compile": "step"}) == {"compile": "step"}
    model = _tiny_convrnn()
    assert inference_options(model) == CPU_FAST and inference_options(model, fast=False) is None
    inference_options(model)["dtype"] = torch.bfloat16  # a copy: the module's options stay as they are
    assert CPU_FAST["dtype"] is None and GPU_FAST["dtype"] is None


def test_convrnns_see_the_originals_neural_presentation():
    """neuroailab/convrnns models/model_func.py ``set_imagepres(image_pres="neural")``: ``image_off = 10``,
    ``times = 26`` (lines 64-66); ``make_movie`` (lines 41-44): ``[ims] * image_off + [blank] * (times -
    image_off)`` with ``blank = tf.constant(0.5)`` in the normalised input space. Step t is read for the bin
    [10t, 10t + 10) ms (README there, line 8: each step ~10 ms). A model whose own presentation is the training one
    (17 steps, image off after 12) is shown the neural one, not its own."""
    from neurozoo import convrnn

    torch.manual_seed(0)
    model = convrnn.create_model("rgc_intermediate", width_multiplier=1 / 16, num_classes=5).eval()
    assert (model.n_steps, model.image_steps) == (17, 12)
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    stimuli = Stimuli(["a", "b", "c"], images)
    layers = ["conv5", "conv10"]
    out = extract(model, stimuli, layers, max_features=10 ** 6, cache=False, progress=False, fast=False)
    movie = torch.stack([images] * 10 + [torch.full_like(images, 0.5)] * 16)
    with torch.no_grad():
        recorded = model(movie, record=layers).recorded
    for layer in layers:
        for k, (start, _) in enumerate(NAYEBI_FITTING_BINS):
            step = int(start) // 10
            np.testing.assert_allclose(out[layer].values[:, :, k], recorded[layer][step].reshape(3, -1).numpy(),
                                       rtol=1e-5, atol=1e-6, err_msg=f"{layer} bin {start}")


def _layer_batches(model):
    """Spy on the unroll: (step, layer, batch size of the layer's input) for every layer step computed."""
    calls, original, step = [], model._layer_step, {"t": -1, "seen": set()}

    def spy(name, ff, sources, states, **options):
        if name in step["seen"]:
            step["t"], step["seen"] = step["t"] + 1, set()
        step["seen"].add(name)
        calls.append((name, ff.shape[0]))
        return original(name, ff, sources, states, **options)

    model._layer_step = spy
    return calls


def test_unroll_without_readout_skips_the_layer_steps_no_recording_reads():
    """``readout=False``: no logits, and the last steps skip the layers the recorded one no longer depends on
    (conv2 at step 5 reads conv1 and conv3 of step 4 only); the recorded values are the same."""
    model = _tiny_convrnn()
    images = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = model(images, n_steps=6, image_steps=4, record=["conv2"])
        calls = _layer_batches(model)
        pruned = model(images, n_steps=6, image_steps=4, record=["conv2"], readout=False)
    assert torch.equal(full.recorded["conv2"], pruned.recorded["conv2"])
    assert pruned.logits.shape == (0, 3, 5) and full.logits.shape == (6, 3, 5)
    assert len(calls) == 3 * 6 - 2 and [name for name, _ in calls[-1:]] == ["conv2"]
    assert [sorted(s) for s in model.needed_layers(["conv2"], 6)[-2:]] == [["conv1", "conv2", "conv3"], ["conv2"]]


def test_image_free_steps_run_once_for_the_batch_with_the_same_features():
    """``share_image_free_steps``: layer l (from 0) before step l has not seen the image: it runs for one image
    and is broadcast; the outputs equal the per-image fast path's to float rounding."""
    from neurozoo.convrnn.fast import to_reference

    model = _tiny_convrnn()
    images = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        model.to_fast(dtype=None, compile="none", fuse_gates=False)
        separate = model(images, n_steps=5, image_steps=4, record=["conv2", "conv3"])
        model.to_fast(dtype=None, compile="none", fuse_gates=False, share_image_free_steps=True)
        calls = _layer_batches(model)
        shared = model(images, n_steps=5, image_steps=4, record=["conv2", "conv3"])
        to_reference(model)
    assert calls[:6] == [("conv1", 3), ("conv2", 1), ("conv3", 1), ("conv1", 3), ("conv2", 3), ("conv3", 1)]
    assert all(batch == 3 for _, batch in calls[6:])
    for layer, size in (("conv2", 4), ("conv3", 2)):
        assert shared.recorded[layer].shape == separate.recorded[layer].shape == (5, 3, 8, size, size)
        # a batch of 1 and of 3 may take other convolution kernels, whose float32 sums differ in the last bits and
        # grow over 5 steps; a wrong broadcast differs by the image's whole contribution
        torch.testing.assert_close(shared.recorded[layer], separate.recorded[layer], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shared.logits, separate.logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(shared.recorded["conv3"][4, 0], shared.recorded["conv3"][4, 1])  # per image by then


def test_gate_arithmetic_in_place_without_autograd_gives_the_same_values():
    """Without autograd the RGC updates its gates in place: bit for bit the values of the out-of-place code."""
    model = _tiny_convrnn()
    images = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    tracked = model(images, n_steps=6, image_steps=4, record=["conv2", "conv3"])  # autograd on: out of place
    assert tracked.logits.requires_grad
    with torch.inference_mode():
        untracked = model(images, n_steps=6, image_steps=4, record=["conv2", "conv3"])
    for layer in ("conv2", "conv3"):
        assert torch.equal(tracked.recorded[layer].detach(), untracked.recorded[layer])
    assert torch.equal(tracked.logits.detach(), untracked.logits)


def _entry(value: float):
    import xarray as xr

    return xr.DataArray(np.full((3, 2, 1), value), dims=("presentation", "neuroid", "time_bin"),
                        coords={"stimulus_id": ("presentation", ["a", "b", "c"])}, name="activations")


def _load_strictly(cache, key):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "digest missing or wrong" would be a wasted recomputation
        return cache.load(key)


class Killed(BaseException):
    """What a SIGKILL or KeyboardInterrupt looks like to the code it lands in."""


def _replace_calls_of_one_save(cache, monkeypatch) -> int:
    import os

    calls, real = [], os.replace
    monkeypatch.setattr(os, "replace", lambda *args: (calls.append(args), real(*args))[1])
    cache.save("probe" * 8, _entry(0.0))
    monkeypatch.setattr(os, "replace", real)
    return len(calls)


def test_cache_entry_is_whole_or_as_before_when_a_save_is_killed(tmp_path, monkeypatch):
    """The digest and the data were two renames: a kill between them left the new data under the old digest,
    and the next run warned "digest missing or wrong" and recomputed."""
    import os

    import xarray as xr

    cache, key = ActivationCache(tmp_path / "acts"), "ab" * 32
    real_replace = os.replace
    for kill_at in range(_replace_calls_of_one_save(cache, monkeypatch)):
        cache.save(key, _entry(1.0))
        seen = []

        def replace(*args):
            seen.append(args)
            if len(seen) > kill_at:
                raise Killed
            return real_replace(*args)

        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(Killed):
            cache.save(key, _entry(2.0))
        monkeypatch.setattr(os, "replace", real_replace)
        assert float(_load_strictly(cache, key).values.max()) == 1.0  # nothing of the killed save landed
    monkeypatch.setattr(xr.DataArray, "to_netcdf", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        cache.save("cd" * 32, _entry(3.0))
    assert _load_strictly(cache, "cd" * 32) is None
    assert not [p.name for p in (tmp_path / "acts").rglob("*") if ".tmp" in p.name]


def test_cache_entry_is_a_digest_line_then_netcdf4_bytes_and_a_kill_mid_write_keeps_the_old_one(tmp_path, monkeypatch):
    """The entry is written once (digest line, then the netCDF4 bytes made in memory), no longer written as netCDF
    and rewritten with the digest in front; a kill between the two writes leaves the old entry and no temporary."""
    import os

    from neurozoo.benchmarks.extraction.cache import keyed_digest

    cache, key = ActivationCache(tmp_path / "acts"), "12" * 32
    digest, _, data = cache.save(key, _entry(1.0)).read_bytes().partition(b"\n")
    assert data[:8] == b"\x89HDF\r\n\x1a\n"  # netCDF4 (HDF5), as before
    assert digest == keyed_digest("activation-cache:" + key, data).encode()
    real_fdopen = os.fdopen

    class Handle:
        def __init__(self, *args, **kwargs):
            self.file, self.writes = real_fdopen(*args, **kwargs), 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, chunk):
            self.writes += 1
            if self.writes > 1:
                raise Killed
            return self.file.write(chunk)

    monkeypatch.setattr(os, "fdopen", Handle)
    with pytest.raises(Killed):
        cache.save(key, _entry(2.0))
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert float(_load_strictly(cache, key).values.max()) == 1.0
    assert not [p.name for p in (tmp_path / "acts").rglob("*") if ".tmp" in p.name]


def test_interleaved_cache_writers_leave_one_whole_entry(tmp_path, monkeypatch):
    """Two writers of the same key whose renames interleave (processes, or threads of one process, which had
    shared a temporary file name): the reader gets one writer's whole entry."""
    import itertools
    import os

    cache, key = ActivationCache(tmp_path / "acts"), "ef" * 32
    real_replace = os.replace
    n = _replace_calls_of_one_save(cache, monkeypatch)
    for order in sorted(set(itertools.permutations("a" * n + "b" * n))):
        pending = {"a": [], "b": []}
        for writer, value in (("a", 1.0), ("b", 2.0)):
            monkeypatch.setattr(os, "replace", lambda *args, writer=writer: pending[writer].append(args))
            cache.save(key, _entry(value))
        monkeypatch.setattr(os, "replace", real_replace)
        for writer in order:
            real_replace(*pending[writer].pop(0))
        assert float(_load_strictly(cache, key).values.max()) == {"a": 1.0, "b": 2.0}[order[-1]]


def test_homes_sharing_a_cache_folder_keep_their_own_entries(tmp_path, monkeypatch):
    """Homes share $NEUROZOO_CACHE but each signs with its own secret: in one folder every new home found all
    entries "modified or written by someone else", recomputed and overwrote them, and so did the first home after
    it (a fresh home's `zoo run` warned once per ConvRNN layer)."""
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    key = "56" * 32
    for home, value in (("a", 7.0), ("b", 8.0)):
        monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / home))
        assert _load_strictly(ActivationCache(), key) is None  # a miss without the warning
        ActivationCache().save(key, _entry(value))
    for home, value in (("a", 7.0), ("b", 8.0)):
        monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / home))
        assert float(_load_strictly(ActivationCache(), key).values.max()) == value
    partitions = sorted(p.name for p in (tmp_path / "cache" / "activations").iterdir())
    secrets = [(tmp_path / home / "secret.key").read_text().strip() for home in "ab"]
    assert len(partitions) == 2 and not any(secret[:8] in name for secret in secrets for name in partitions)


def test_cache_entry_with_a_changed_byte_or_no_digest_line_is_a_miss(tmp_path):
    """Only an entry signed under this host's secret for its own key loads: the untouched entry gives its values
    back (a check that refused everything had passed the misses alone), and a changed byte, a dropped digest line,
    data re-digested with plain sha256 (what a writer without the secret can compute) or a valid entry of another
    key copied over this one are misses."""
    import hashlib

    cache, key, other = ActivationCache(tmp_path / "acts"), "34" * 32, "56" * 32
    path = cache.save(key, _entry(6.0))
    signed = path.read_bytes()
    assert float(_load_strictly(cache, key).values.max()) == 6.0
    forged = _entry(-1.0).to_netcdf(engine="netcdf4")
    unkeyed = hashlib.sha256(b"activation-cache:" + key.encode() + b"\0" + forged).hexdigest().encode()
    swapped = cache.save(other, _entry(-1.0)).read_bytes()
    assert float(_load_strictly(cache, other).values.max()) == -1.0
    for tampered in (signed[:-1] + bytes([signed[-1] ^ 1]), signed.partition(b"\n")[2], b"",
                     unkeyed + b"\n" + forged, swapped):
        path.write_bytes(tampered)
        with pytest.warns(UserWarning, match="digest missing or wrong"):
            assert cache.load(key) is None
    path.write_bytes(signed)
    assert float(_load_strictly(cache, key).values.max()) == 6.0


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_a_killed_cache_writer_are_removed_on_the_next_save_or_open(tmp_path):
    """A writer killed between mkstemp and the rename left ``.<key>.<random>.tmp<pid>`` in the cache for good:
    never read, but it accumulated. The next save (its folder) or open (every folder) removes those of dead
    processes (``.tmp-<host>-<pid>`` now); a live writer's (this process's) are left alone."""
    import os

    from neurozoo.datasets.cache import temporary_suffix

    cache, key = ActivationCache(tmp_path / "acts"), "ab" * 32
    folder = cache.save(key, _entry(1.0)).parent
    dead, alive = _dead_pid(), os.getpid()
    stray = [folder / f".{key}.x1{suffix}{temporary_suffix(pid)}" for suffix, pid in (("a", dead), ("b", alive))]
    for path in stray:
        path.write_bytes(b"half")
    cache.save(key, _entry(2.0))
    assert [p.exists() for p in stray] == [False, True]
    other = tmp_path / "acts" / "cd" / f".{'cd' * 32}.x2{temporary_suffix(dead)}"
    other.parent.mkdir()
    other.write_bytes(b"half")
    ActivationCache(tmp_path / "acts")
    assert not other.exists() and stray[1].exists()
    assert float(_load_strictly(cache, key).values.max()) == 2.0


# an activation-cache entry being read (its verified bytes copied to the temporary folder for netCDF to open): it prints
# the copy's name, then is killed (SIGKILL) or waits for a line on stdin and goes on
ENTRY_BEING_READ = """
import os, signal, sys
import xarray as xr
from neurozoo.benchmarks.extraction.cache import ActivationCache
opened = xr.open_dataarray
def opening(path, *args, **kwargs):
    print(path, flush=True)
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()
    return opened(path, *args, **kwargs)
xr.open_dataarray = opening
assert float(ActivationCache(sys.argv[1]).load(sys.argv[2]).values.max()) == 1.0
"""


def test_the_copy_of_an_entry_read_by_a_process_killed_is_removed_by_the_next_read_and_a_live_ones_kept(
        tmp_path, monkeypatch):
    """A process killed (SIGKILL, the out-of-memory killer) while it read a cache entry left the entry's copy (a
    layer's activations, tmp<random>.nc) in the temporary folder for good. Named with its host and pid now, it is
    removed by the next read of the cache, and that of a process reading at the same time is kept (its own)."""
    import os
    import sys
    import tempfile
    from pathlib import Path

    cache, key, temporary = ActivationCache(tmp_path / "acts"), "ab" * 32, tmp_path / "tmp"
    cache.save(key, _entry(1.0))
    temporary.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(temporary)}
    command = [sys.executable, "-c", ENTRY_BEING_READ, str(tmp_path / "acts"), key]
    dead = Path(run_killed(command, env).strip())
    assert dead.parent == temporary and dead.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    with live_waiting(command, env) as live:
        kept = Path(live.stdout.readline().strip())
        assert kept.parent == temporary and kept.is_file()
        monkeypatch.setattr(tempfile, "tempdir", str(temporary))
        assert float(_load_strictly(cache, key).values.max()) == 1.0  # the next read
        assert list(temporary.iterdir()) == [kept]
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("name, layer", [("cornet_s", "V4"), ("cornet_z", "IT"), ("cornet_rt", "IT")])
def test_cornets_are_extracted_with_brainscores_time_mapping(stimuli, name, layer):
    """No timing given: a CORnet's area is read at the step its Brain-Score table gives each bin (steps recorded by
    the model's own ``record=``; the layers are small enough that the projection keeps every unit)."""
    from neurozoo import convrnn
    from neurozoo.benchmarks.extraction import CORNET_TIMING

    torch.manual_seed(0)
    width = 0.5 if name == "cornet_rt" else 0.125  # GroupNorm(32) needs 32 channels
    model = convrnn.create_model(name, width_multiplier=width, num_classes=3).eval()
    images = torch.nn.functional.interpolate(stimuli.images, size=32)
    small = Stimuli(stimuli.ids, images)
    out = extract(model, small, [layer], cache=False, progress=False, max_features=10_000)[layer]
    table = CORNET_TIMING[model.brainscore_identifier][layer]
    with torch.no_grad():
        steps = model(images, record=layer).recorded[layer]
    assert steps.shape[0] == table.steps and out.sizes["neuroid"] == steps[0, 0].numel()
    for b, step in enumerate(table.steps_for(NAYEBI_FITTING_BINS)):
        np.testing.assert_allclose(out.isel(time_bin=b).values, steps[step].reshape(10, -1).numpy(), rtol=1e-5,
                                   atol=1e-6)
    if name == "cornet_rt":  # the bins do read different steps
        assert len(set(table.steps_for(NAYEBI_FITTING_BINS))) == 4


def test_a_convrnn_of_another_graph_with_the_same_weights_misses_the_cache(stimuli, tmp_path):
    """The key held the weights' hash only: a cell constant that is no parameter (a gate offset, a nonlinearity, an
    activation) built another model with the same weights, and it was served the first one's activations (zoo score
    rgc_shallow V4 then --set cell={tau_offset: 0.2, gate_offset: 0.1}: 0.2152 twice; 0.0774 without the cache)."""
    from neurozoo import convrnn

    cache = ActivationCache(tmp_path / "acts")
    models = []
    for cell in ({}, {"tau_offset": 0.2, "gate_offset": 0.1}):
        torch.manual_seed(0)
        models.append(convrnn.create_model("rgc_shallow", width_multiplier=0.0625, cell=cell))
    first, second = models
    assert torch.equal(first.layers.conv3.cell.cell_tau.weight, second.layers.conv3.cell.cell_tau.weight)
    served = [extract(model, stimuli, ["conv3"], cache=cache, progress=False, max_features=50)["conv3"]
              for model in (first, second)]
    fresh = extract(second, stimuli, ["conv3"], cache=False, progress=False, max_features=50)["conv3"]
    np.testing.assert_array_equal(served[1].values, fresh.values)
    assert not np.allclose(served[0].values, served[1].values)
    again = extract(first, stimuli, ["conv3"], cache=cache, progress=False, max_features=50)["conv3"]
    np.testing.assert_array_equal(again.values, served[0].values)  # the same graph still hits
