"""An extraction stopped between batches (zoo score's SIGTERM) resumes after the batches it finished: the activation
cache keeps each in a partial entry, and the rerun computes only the others, with the same features bit for bit."""
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import neurozoo.datasets.torchvision_compat  # noqa: F401  (before timm)
from neurozoo.benchmarks.extraction import ActivationCache, Stimuli, extract
from test_extraction import ToyConvRNN, _tiny_convrnn  # noqa: E402

#: 10 images in batches of 3: four batches (3, 3, 3, 1)
BATCH, N_BATCHES = 3, 4


class Stop(BaseException):
    """What zoo score's safe point raises on a SIGTERM."""


def _toy():
    torch.manual_seed(0)
    return ToyConvRNN()


def _hooked():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 7, 3, stride=2, padding=1)).eval()


MODELS = {"convrnn streamed": (_tiny_convrnn, ["conv2", "conv3"]), "convrnn stacked": (_toy, ["conv1", "conv2"]),
          "hooked": (_hooked, ["0", "2"])}


@pytest.fixture
def stimuli():
    generator = torch.Generator().manual_seed(1)
    return Stimuli([f"im{i}" for i in range(10)], torch.randn(10, 3, 8, 8, generator=generator),
                   object_name=np.array(["a", "b"] * 5))


def _counted(model):
    """The model, counting its forward passes in ``model.passes``."""
    model.passes = 0
    model.register_forward_pre_hook(lambda module, inputs: setattr(module, "passes", module.passes + 1))
    return model


def _stopped_at(model, stimuli, layers, cache, stop_before: int, **options):
    """Extract, stopped (as zoo score's SIGTERM does) before batch ``stop_before``."""
    def stop_there(done, total):
        if done == stop_before:
            raise Stop
    with pytest.raises(Stop):
        extract(model, stimuli, layers, cache=cache, progress=False, safe_point=stop_there,
                batch_size=options.pop("batch_size", BATCH), max_features=options.pop("max_features", 20), **options)


def _extract(model, stimuli, layers, cache, **options):
    return extract(model, stimuli, layers, cache=cache, progress=False, batch_size=options.pop("batch_size", BATCH),
                   max_features=options.pop("max_features", 20), **options)


def _uninterrupted(make, stimuli, layers, tmp_path, **options):
    """The features of an extraction run once through, into a cache of its own."""
    cache = ActivationCache(tmp_path / f"reference{len(list(tmp_path.glob('reference*')))}")
    return _extract(_counted(make()), stimuli, layers, cache, **options)


def _partials(cache: ActivationCache) -> list:
    return sorted(f"{path.parent.name[:6]}/{path.name}" for path in cache.root.rglob("*.partial/*"))


def _assert_identical(resumed, uninterrupted):
    assert list(resumed) == list(uninterrupted)
    for layer, array in uninterrupted.items():
        assert resumed[layer].dtype == array.dtype and resumed[layer].shape == array.shape
        assert resumed[layer].values.tobytes() == array.values.tobytes(), layer  # bit for bit
        assert resumed[layer].identical(array)


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_stopped_extraction_resumes_after_its_finished_batches_with_the_same_features(stimuli, tmp_path, kind):
    """A SIGTERM mid-extraction kept nothing: a full-width extraction stopped after many minutes began again from
    its first batch. The finished batches are now kept, and the rerun computes only the others: the same features
    bit for bit, the partial entry gone once the final one is written."""
    make, layers = MODELS[kind]
    uninterrupted = _uninterrupted(make, stimuli, layers, tmp_path)
    cache = ActivationCache(tmp_path / "acts")
    model = _counted(make())
    _stopped_at(model, stimuli, layers, cache, stop_before=2)
    assert model.passes == 2 and not list(cache.root.rglob("*.nc.signed"))  # nothing final
    assert len(_partials(cache)) == 2 * len(layers)  # batches 0 and 1 of each layer
    model.passes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = _extract(model, stimuli, layers, cache)
    assert model.passes == N_BATCHES - 2
    _assert_identical(resumed, uninterrupted)
    assert _partials(cache) == [] and not list(cache.root.rglob("*.partial"))
    model.passes = 0
    _assert_identical(_extract(model, stimuli, layers, cache), uninterrupted)  # the final entries
    assert model.passes == 0


def test_an_extraction_stopped_before_its_last_layer_was_saved_reads_every_batch_kept(stimuli, tmp_path, monkeypatch):
    """A stop between the final entries' saves: the layer not saved has all its batches kept, so the rerun runs
    no model at all."""
    layers = ["conv1", "conv2"]
    uninterrupted = _uninterrupted(_toy, stimuli, layers, tmp_path)
    cache, model = ActivationCache(tmp_path / "acts"), _counted(_toy())
    real = ActivationCache.save
    monkeypatch.setattr(ActivationCache, "save", lambda self, key, array: (
        real(self, key, array) if array.layer.values[0] == "conv1" else (_ for _ in ()).throw(Stop)))
    with pytest.raises(Stop):
        _extract(model, stimuli, layers, cache)
    monkeypatch.setattr(ActivationCache, "save", real)
    assert len(_partials(cache)) == N_BATCHES  # conv2's; conv1's went with its final entry
    model.passes = 0
    _assert_identical(_extract(model, stimuli, layers, cache), uninterrupted)
    assert model.passes == 0



def test_the_partial_entry_left_by_a_kill_after_its_final_entry_was_saved_goes_with_the_next_read(stimuli, tmp_path,
                                                                                                   monkeypatch):
    """A kill between the final entry's rename and the removal of its partial one (ActivationCache.save) left the
    partial batches (all of them: a layer's features again) for good: every later run read the final entry and never
    looked at them, and `zoo cache` listed them as an extraction stopped part-way. The next read of the final entry
    removes them; the features read are the uninterrupted run's."""
    uninterrupted = _uninterrupted(_toy, stimuli, ["conv2"], tmp_path)
    cache, model = ActivationCache(tmp_path / "acts"), _counted(_toy())
    with monkeypatch.context() as patched, pytest.raises(Stop):  # killed right after the final entry's rename
        patched.setattr(ActivationCache, "remove_partial", lambda self, key: (_ for _ in ()).throw(Stop))
        _extract(model, stimuli, ["conv2"], cache)
    assert len(list(cache.root.rglob("*.nc.signed"))) == 1 and len(_partials(cache)) == N_BATCHES
    model.passes = 0
    _assert_identical(_extract(model, stimuli, ["conv2"], cache), uninterrupted)
    assert model.passes == 0 and _partials(cache) == [] and not list(cache.root.rglob("*.partial"))


def test_a_partial_of_another_batch_size_is_not_used_and_is_replaced(stimuli, tmp_path):
    """Batches of another size are other batches (and a convolution's low bits can depend on the batch size):
    they are never stitched to this extraction's."""
    layers = ["conv2"]
    cache, model = ActivationCache(tmp_path / "acts"), _counted(_toy())
    _stopped_at(model, stimuli, layers, cache, stop_before=2)
    model.passes = 0
    with pytest.warns(UserWarning, match=r"batch-00000.signed: extracted with another batch_size 3, not 4; not used"):
        _stopped_at(model, stimuli, layers, cache, stop_before=2, batch_size=4)
    assert model.passes == 2 and len(_partials(cache)) == 2  # the batches of 3 replaced by two of 4
    model.passes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = _extract(model, stimuli, layers, cache, batch_size=4)
    assert model.passes == 1
    _assert_identical(resumed, _uninterrupted(_toy, stimuli, layers, tmp_path, batch_size=4))


def test_a_partial_extracted_under_another_cpu_thread_count_is_not_used_and_is_replaced(stimuli, tmp_path):
    """The thread count groups a CPU extraction's float sums: 1 and 2 threads gave the tiny ConvRNN's ("convrnn
    streamed") conv2 features differing in 2773 of 3800 values (2026-12-04), so batches kept under 2 threads were
    stitched to batches extracted under 1, features no uninterrupted run gives. The count is now a resume setting on
    the CPU. (The hooked model: two threads cost that ConvRNN a minute on a busy 2-core machine.)"""
    make, layers = MODELS["hooked"]
    cache, model = ActivationCache(tmp_path / "acts"), _counted(make())
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _stopped_at(model, stimuli, layers, cache, stop_before=2)
    finally:
        torch.set_num_threads(1)
    try:
        model.passes = 0
        with pytest.warns(UserWarning, match=r"batch-00000.signed: extracted with another torch_threads 2, not 1; not "
                                             r"used: .* extracts the other 4 of 4 again"):
            resumed = _extract(model, stimuli, layers, cache)
        assert model.passes == N_BATCHES and _partials(cache) == []
        _assert_identical(resumed, _uninterrupted(make, stimuli, layers, tmp_path))
    finally:
        torch.set_num_threads(threads)


def test_a_partial_of_other_settings_is_its_own_and_a_moved_one_is_not_used(stimuli, tmp_path):
    """A partial entry is keyed by the layer's final key (model, stimuli, settings, layer): one of other settings is
    never read, and one moved under another key, or to another batch's name, fails its digest or its header."""
    layers = ["conv2"]
    cache = ActivationCache(tmp_path / "acts")
    _stopped_at(_counted(_toy()), stimuli, layers, cache, stop_before=2, max_features=30)
    model = _counted(_toy())
    _stopped_at(model, stimuli, layers, cache, stop_before=1)
    assert model.passes == 1 and len(_partials(cache)) == 3  # its own entry, beside the other's
    ours, theirs = sorted(cache.root.rglob("*.partial"), key=lambda folder: len(list(folder.iterdir())))
    for path in theirs.iterdir():
        shutil.copy(path, ours / path.name)
    model.passes = 0
    with pytest.warns(UserWarning, match=r"batch-00000.signed: digest missing or wrong .* keeps the 0 partial batches "
                                         r"before it and extracts the other 4 of 4 again"):
        resumed = _extract(model, stimuli, layers, cache)
    assert model.passes == N_BATCHES
    _assert_identical(resumed, _uninterrupted(_toy, stimuli, layers, tmp_path))
    assert not ours.exists() and len(list(theirs.iterdir())) == 2  # the other settings' partial stays theirs

    _stopped_at(model, stimuli, layers, (cache := ActivationCache(tmp_path / "again")), stop_before=3)
    (folder,) = cache.root.rglob("*.partial")
    shutil.copy(folder / "batch-00000.signed", folder / "batch-00002.signed")
    model.passes = 0
    with pytest.warns(UserWarning, match=r"batch-00002.signed: it is batch 0 of the extraction \w+, not batch 2"):
        _assert_identical(_extract(model, stimuli, layers, cache), _uninterrupted(_toy, stimuli, layers, tmp_path))
    assert model.passes == N_BATCHES - 2


@pytest.mark.parametrize("damage", ["cut short", "empty", "a changed byte"])
def test_a_damaged_partial_batch_is_warned_about_and_extracted_again(stimuli, tmp_path, damage):
    """A partial batch cut short (a full disk; a copy of the cache interrupted) or changed is read by no extraction:
    a warning, and the batches from it on are extracted again."""
    layers = ["conv1", "conv2"]
    cache, model = ActivationCache(tmp_path / "acts"), _counted(_toy())
    _stopped_at(model, stimuli, layers, cache, stop_before=3)
    path = next(cache.root.rglob("*.partial/batch-00001.signed"))
    data = path.read_bytes()
    path.write_bytes({"cut short": data[:len(data) // 2], "empty": b"",
                      "a changed byte": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]}[damage])
    model.passes = 0
    with pytest.warns(UserWarning, match=r"batch-00001.signed: digest missing or wrong \(cut short, or modified.*"
                                         r"keeps the 1 partial batches before it and extracts the other 3 of 4 again"):
        resumed = _extract(model, stimuli, layers, cache)
    assert model.passes == N_BATCHES - 1
    _assert_identical(resumed, _uninterrupted(_toy, stimuli, layers, tmp_path))


def test_a_partial_batch_is_never_read_as_a_final_entry(stimuli, tmp_path):
    cache = ActivationCache(tmp_path / "acts")
    _stopped_at(_counted(_toy()), stimuli, ["conv2"], cache, stop_before=N_BATCHES - 1)
    (folder,) = cache.root.rglob("*.partial")
    key = folder.name.split(".")[0]
    shutil.copy(folder / "batch-00000.signed", cache.path(key))
    with pytest.warns(UserWarning, match="digest missing or wrong"):
        assert cache.load(key) is None


def test_a_kill_as_a_partial_batch_is_written_leaves_the_batches_before_it(stimuli, tmp_path, monkeypatch):
    """The batch is renamed into place whole: a kill mid-write leaves a temporary, never a batch file cut short."""
    import os

    cache, model = ActivationCache(tmp_path / "acts"), _counted(_toy())
    real, replaced = os.replace, []

    def killed_at_the_third(source, target):
        if len(replaced) == 2:
            raise Stop  # the batch's bytes are in the temporary, not yet renamed
        replaced.append(target)
        return real(source, target)

    monkeypatch.setattr(os, "replace", killed_at_the_third)
    with pytest.raises(Stop):
        _extract(model, stimuli, ["conv2"], cache)
    monkeypatch.setattr(os, "replace", real)
    assert _partials(cache) == [f"{replaced[0].parent.name[:6]}/batch-00000.signed",
                                f"{replaced[0].parent.name[:6]}/batch-00001.signed"]
    assert not list(cache.root.rglob(".*.tmp*"))  # the temporary removed as the kill passed
    model.passes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = _extract(model, stimuli, ["conv2"], cache)
    assert model.passes == N_BATCHES - 2
    _assert_identical(resumed, _uninterrupted(_toy, stimuli, ["conv2"], tmp_path))


def test_deleting_a_partial_entry_or_the_whole_cache_folder_between_runs_is_safe(stimuli, tmp_path):
    """A partial entry of settings never run again stays until it is cleared (``zoo cache clear``,
    tests/test_cache_command.py); the docs (docs/benchmarks.md, "Extraction") say deleting the ``<key>.partial`` folders,
    or the activation cache's folder, by hand between runs is safe too. The next run extracts what is gone again, to
    the same features, without a warning."""
    layers = ["conv1", "conv2"]
    uninterrupted = _uninterrupted(_toy, stimuli, layers, tmp_path)
    cache, model = ActivationCache(tmp_path / "acts"), _counted(_toy())
    _stopped_at(model, stimuli, layers, cache, stop_before=2)
    for folder in list(cache.root.rglob("*.partial")):
        shutil.rmtree(folder)
    model.passes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_identical(_extract(model, stimuli, layers, cache), uninterrupted)
        assert model.passes == N_BATCHES
        _stopped_at(model, stimuli, layers, cache, stop_before=2, max_features=30)  # a partial of other settings
        assert len(_partials(cache)) == 4 and len(list(cache.root.rglob("*.nc.signed"))) == 2
        shutil.rmtree(cache.root)  # final entries and partial ones
        model.passes = 0
        _assert_identical(_extract(model, stimuli, layers, ActivationCache(tmp_path / "acts")), uninterrupted)
        assert model.passes == N_BATCHES


def test_without_a_cache_no_partial_is_read_or_written(stimuli, tmp_path, monkeypatch):
    """cache=False (zoo score --no-cache, zoo reproduce): the activation cache is neither read nor written, its
    partial entries included."""
    cache = ActivationCache(tmp_path / "acts")
    _stopped_at(_counted(_toy()), stimuli, ["conv2"], cache, stop_before=2)
    before = {path: path.read_bytes() for path in cache.root.rglob("*") if path.is_file()}
    for method in ("load_partial", "save_partial", "remove_partial"):
        monkeypatch.setattr(ActivationCache, method, lambda *args, **kwargs: pytest.fail("used the cache"))
    model = _counted(_toy())
    _stopped_at(model, stimuli, ["conv2"], False, stop_before=3)
    _extract(model, stimuli, ["conv2"], False)
    assert model.passes == 3 + N_BATCHES
    assert {path: path.read_bytes() for path in cache.root.rglob("*") if path.is_file()} == before
