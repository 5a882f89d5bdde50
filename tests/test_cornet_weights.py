"""dicarlolab/CORnet's released weights through ``zoo score --checkpoint`` and ``zoo run --checkpoint``
(convrnn.cornet_weights).

The files here are written as the original writes its releases: the reference modules of test_cornet_reference.py
(written from the original's code, with its module names) wrapped in ``torch.nn.DataParallel`` as
cornet/__init__.py line 18 wraps every model, saved as ``{'epoch', 'arch', 'state_dict': model.state_dict()}``
(run.py lines 147-151 save the DataParallel model's state dict under 'state_dict'). Their weights are drawn away from
any initialisation (running statistics too), so a parameter copied to the wrong place changes the outputs."""
import json
import os
import sys

import pytest
import torch
from torch import nn

from neurozoo.benchmarks.named_models import resolve_model, resolve_model_and_weights
from neurozoo.datasets.errors import DataError

sys.path.insert(0, os.path.dirname(__file__))
from test_cornet_reference import _ReferenceRT, _reference, _reference_z, _steps_of  # noqa: E402

SMALL = {  # model -> (our --width, the reference at those widths, image size)
    "cornet_z": (0.125, lambda: _reference_z([8, 16, 32, 64]), 48),
    "cornet_s": (0.125, lambda: _reference([8, 16, 32, 64]), 32),
    "cornet_rt": (0.5, lambda: _ReferenceRT([32, 64, 128, 256], out_shapes=[16, 8, 4, 2]), 64),  # GroupNorm(32)
}


def _drawn(reference, seed=3):
    """Every weight and running statistic of ``reference`` moved away from its initialisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in reference.state_dict().items():
            if not value.is_floating_point():
                continue
            if name.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=generator) * 1.5 + 0.5)
            else:
                value.add_(torch.randn(value.shape, generator=generator) * 0.1)
    return reference.eval()


def _release(reference, path, form="released"):
    """``reference``'s weights saved in the released format (``form``): the whole checkpoint of a DataParallel
    model, or its bare state dict with or without DataParallel's ``module.``."""
    state = nn.DataParallel(reference).state_dict()  # module.V1.conv.weight, ...
    assert all(key.startswith("module.") for key in state)
    if form == "released":
        saved = {"epoch": 43, "arch": "CORnet-S", "state_dict": state}
    elif form == "bare":
        saved = state
    else:  # bare, without module.
        saved = reference.state_dict()
    torch.save(saved, path)
    return path


def _same_outputs(model, reference, size, areas=("V1", "V2", "V4", "IT")):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), _steps_of(reference, [a for a in areas if a != "V1" or hasattr(reference.V1, "output")]) as steps:
        out = model(x, record=list(areas))
        expected = reference(x)
    torch.testing.assert_close(out.logits[0], expected, rtol=1e-4, atol=1e-5)
    for area, recorded in steps.items():  # every step of every area, as Brain-Score reads them
        torch.testing.assert_close(out.recorded[area], torch.stack(recorded), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(SMALL))
def test_a_released_file_loads_through_zoo_scores_path_and_gives_the_originals_outputs(name, tmp_path):
    """Before: `zoo score cornet_s B --checkpoint cornet_s-1d3f7974.pth` refused the file ('does not fit model
    cornet_s: missing V1.0.weight ...; unexpected epoch ...'): the released weights could not be scored."""
    width, build, size = SMALL[name]
    reference = _drawn(build())
    path = _release(reference, tmp_path / "weights.pth")
    model, weights = resolve_model_and_weights(name, path, overrides={"width_multiplier": width})
    assert weights == {"format": "dicarlolab/CORnet", "file": "weights.pth", "epoch": 43, "arch": "CORnet-S",
                       "label": "published weights of dicarlolab/CORnet (weights.pth), converted to our names",
                       "converted": "original parameter names mapped to ours (convrnn.cornet_weights)"}
    _same_outputs(model, reference, size)


@pytest.mark.parametrize("form", ["bare", "bare without module."])
def test_a_bare_state_dict_in_the_originals_names_is_read_too(form, tmp_path):
    reference = _drawn(_reference_z([8, 16, 32, 64]))
    model = resolve_model("cornet_z", _release(reference, tmp_path / "z.pth", form), overrides={"width_multiplier": 0.125})
    _same_outputs(model, reference, 48)


def test_a_file_without_batch_counters_is_read(tmp_path):
    """Files saved by torch < 0.4.1 hold no BatchNorm ``num_batches_tracked`` (torch's own loading fills it in); it
    does not change an evaluation's outputs."""
    reference = _drawn(_reference([8, 16, 32, 64]))
    state = {k: v for k, v in nn.DataParallel(reference).state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 43, "state_dict": state}, tmp_path / "s.pth")
    _same_outputs(resolve_model("cornet_s", tmp_path / "s.pth", overrides={"width_multiplier": 0.125}), reference, 32)


def test_zoo_score_scores_a_released_file_and_records_the_conversion(tmp_path, capsys):
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.leaderboard.cli import main

    path = _release(_drawn(_reference_z([8, 16, 32, 64])), tmp_path / "cornet_z-5c427c9c.pth")
    assert main(["score", "cornet_z", "ventral_embedded.V4-temporal", "--width", "0.125", "--checkpoint", str(path),
                 "--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "out"), "--no-cache"]) == 0
    summary = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    settings = summary["provenance"]["settings"]
    assert settings["weights"] == "published weights of dicarlolab/CORnet (cornet_z-5c427c9c.pth), converted to our names"
    assert settings["weights_conversion"]["format"] == "dicarlolab/CORnet" and settings["weights_conversion"]["epoch"] == 43
    assert settings["rerun"]["checkpoint"]["sha256"] == sha256_file(path)
    assert summary["model"] == "cornet_z@cornet_z-5c427c9c.pth"


def test_brain_model_keeps_the_conversion_of_a_released_file_as_zoo_score_does(tmp_path):
    """BrainModel built with a CORnet's released file converted it but kept no word of it: its assemblies looked like
    those of a checkpoint in our names. Now it keeps zoo score's record, and its assemblies carry it, through a
    netCDF file too."""
    import numpy as np

    from neurozoo.benchmarks.brain_model import BrainModel
    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.datasets.assembly import load_assembly, write_assembly

    path = _release(_drawn(_reference_z([8, 16, 32, 64])), tmp_path / "cornet_z-5c427c9c.pth")
    _, expected = resolve_model_and_weights("cornet_z", path, overrides={"width_multiplier": 0.125})
    model = BrainModel("cornet_z", checkpoint=path, overrides={"width_multiplier": 0.125}, image_size=None,
                       max_features=None, cache=False)
    assert model.weights_conversion == expected and expected["epoch"] == 43
    model.start_recording("IT", [(70, 170)])
    stimuli = Stimuli([f"s{i}" for i in range(4)], torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
                      np.array(["a", "b", "a", "b"]))
    assembly = model.look_at(stimuli)
    assert assembly.attrs["weights"] == expected["label"] and assembly.attrs["model"] == "cornet_z@cornet_z-5c427c9c.pth(width_multiplier=0.125)"
    assert json.loads(assembly.attrs["weights_conversion"]) == expected
    stored = load_assembly(write_assembly(assembly, tmp_path / "a.nc"), require={})
    assert json.loads(stored.attrs["weights_conversion"]) == expected
    assert BrainModel("cornet_z", overrides={"width_multiplier": 0.125}).weights_conversion is None  # untrained: none


def test_zoo_run_scores_a_released_file_at_the_releases_width(tmp_path):
    """`zoo run --models cornet_z --checkpoint cornet_z=F`: the file was refused ('holds no state dict of tensors')
    before any job; now the jobs run the release at its width (1, whatever --width-multiplier says), labelled as
    converted, with the reference's outputs."""
    from neurozoo.leaderboard.run_commands import check_checkpoint
    from neurozoo.leaderboard.zoo import build_model, display_name, zoo_specs

    reference = _drawn(_reference_z([64, 128, 256, 512]))  # the original's CORnet_Z(): 2 M parameters
    path = _release(reference, tmp_path / "cornet_z-5c427c9c.pth")
    check_checkpoint(f"cornet_z={path}", str(path))
    specs, _ = zoo_specs(["cornet_z"], ["ventral_embedded.V4-temporal"], checkpoints={"cornet_z": str(path)})
    assert [s["weights"] for s in specs] == ["published weights of dicarlolab/CORnet (cornet_z-5c427c9c.pth), "
                                             "converted to our names"]
    assert specs[0]["overrides"] == {} and "width" not in display_name(specs[0])
    _same_outputs(build_model(specs[0]), reference, 32)


# ------------------------------------------------------------------------------------------------ refused files
def test_another_cornets_file_is_refused_naming_the_file_and_the_first_names(tmp_path):
    path = _release(_drawn(_reference([8, 16, 32, 64])), tmp_path / "s.pth")
    with pytest.raises(DataError) as error:
        resolve_model("cornet_z", path, overrides={"width_multiplier": 0.125})
    assert str(error.value) == (f"checkpoint {path} (dicarlolab/CORnet format) does not fit CORnetZ: missing "
                                "V1.conv.weight and 7 more; unexpected V1.conv1.weight and 161 more")


def test_a_release_at_width_1_is_refused_at_another_width(tmp_path):
    path = _release(_drawn(_reference_z([64, 128, 256, 512])), tmp_path / "z.pth")
    with pytest.raises(DataError, match=r"z\.pth \(dicarlolab/CORnet format\) does not fit CORnetZ: V1\.conv\.weight "
                                        r"has shape \(64, 3, 7, 7\), the model's is \(8, 3, 7, 7\) \(8 more shapes "
                                        r"differ\); the released CORnets are at width multiplier 1"):
        resolve_model("cornet_z", path, overrides={"width_multiplier": 0.125})


def test_a_file_missing_a_parameter_is_refused_naming_it(tmp_path):
    reference = _drawn(_reference([8, 16, 32, 64]))
    state = nn.DataParallel(reference).state_dict()
    del state["module.V4.norm2_3.running_var"]
    torch.save({"epoch": 43, "state_dict": state}, tmp_path / "s.pth")
    with pytest.raises(DataError, match=r"s\.pth \(dicarlolab/CORnet format\) does not fit CORnetS: missing "
                                        r"V4\.norm2_3\.running_var$"):
        resolve_model("cornet_s", tmp_path / "s.pth", overrides={"width_multiplier": 0.125})


def test_the_legacy_cornet_r_file_is_refused_for_cornet_rt(tmp_path):
    """cornet_r-5930a990.pth has CORnet-RT's very names and shapes (cornet/cornet_r.py) but the non-biological
    unrolling the original's README keeps only as a legacy version: converted by its keys alone, it would load into
    cornet_rt without a word. Its released name tells it."""
    reference = _drawn(_ReferenceRT([32, 64, 128, 256], out_shapes=[16, 8, 4, 2]))
    legacy = _release(reference, tmp_path / "cornet_r-5930a990.pth")
    with pytest.raises(DataError, match=r"cornet_r-5930a990\.pth \(dicarlolab/CORnet format\): its name is the "
                                        r"original's release of cornet_r \(the legacy CORnet-R.*not of cornet_rt "
                                        r"\(cornet_rt-933c001c\.pth\)"):
        resolve_model("cornet_rt", legacy, overrides={"width_multiplier": 0.5})
    renamed = _release(reference, tmp_path / "cornet_rt-933c001c.pth")
    _same_outputs(resolve_model("cornet_rt", renamed, overrides={"width_multiplier": 0.5}), reference, 64)


def test_zoo_run_takes_a_releases_conversion_from_convrnns_checkpoint_state(tmp_path, monkeypatch):
    """zoo run's check before any job repeated checkpoint_state's detect-and-convert step (its own is_original and
    from_original): the two could disagree on which file is a release. Now the check is checkpoint_state's: what it
    reports of the file (its record's label) is the jobs' weights label."""
    from neurozoo.convrnn import cornet_weights
    from neurozoo.leaderboard.zoo import zoo_specs

    real, calls = cornet_weights.checkpoint_state, []

    def spy(model, saved, path, what, **kwargs):
        state, record = real(model, saved, path, what, **kwargs)
        calls.append(record)
        return state, (None if record is None else {**record, "label": "as checkpoint_state reports it"})

    monkeypatch.setattr(cornet_weights, "checkpoint_state", spy)
    path = _release(_drawn(_reference_z([64, 128, 256, 512])), tmp_path / "cornet_z-5c427c9c.pth")
    specs, _ = zoo_specs(["cornet_z"], ["ventral_embedded.V4-temporal"], checkpoints={"cornet_z": str(path)})
    assert [s["weights"] for s in specs] == ["as checkpoint_state reports it"] and specs[0]["overrides"] == {}
    assert len(calls) == 1 and calls[0]["format"] == "dicarlolab/CORnet"


def test_zoo_run_refuses_a_release_for_another_cornet_before_any_job(tmp_path):
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.zoo import zoo_specs

    path = _release(_drawn(_reference_z([64, 128, 256, 512])), tmp_path / "z.pth")
    with pytest.raises(UserFacingError, match=r"--checkpoint cornet_s=.*z\.pth: checkpoint .*z\.pth \(dicarlolab/"
                                              r"CORnet format\) does not fit CORnetS: missing V1\.conv1\.weight"):
        zoo_specs(["cornet_s"], ["ventral_embedded.V4-temporal"], checkpoints={"cornet_s": str(path)})


def test_our_names_map_to_the_originals_and_back():
    """The library's mapping, both ways, against the references' own state dicts (full size, on the meta device)."""
    from neurozoo import convrnn
    from neurozoo.convrnn.cornet_weights import original_names, to_original

    with torch.device("meta"):
        pairs = {"cornet_z": _reference_z([64, 128, 256, 512]), "cornet_s": _reference([64, 128, 256, 512]),
                 "cornet_rt": _ReferenceRT([64, 128, 256, 512], out_shapes=[56, 28, 14, 7])}
        for name, reference in pairs.items():
            ours = convrnn.create_model(name)
            theirs = {key: tuple(v.shape) for key, v in nn.DataParallel(reference).state_dict().items()}
            assert {key: tuple(v.shape) for key, v in to_original(ours).items()} == theirs
            assert len(set(original_names(ours).values())) == len(theirs)  # one to one
