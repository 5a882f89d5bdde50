"""datasets.torch_files: a user's PyTorch file is read without running code from it, with one clear error."""
import os
import re

import pytest
import torch

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.torch_files import model_state, read_torch_file


class RunsCode:
    """Unpickling it (weights_only=False) would create a file: the loader must never do that."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_file_with_code_is_refused_and_the_code_never_runs(tmp_path):
    path = tmp_path / "hostile.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": RunsCode(str(tmp_path / "ran"))}, path)
    with pytest.raises(DataError) as error:
        read_torch_file(path)
    assert str(error.value) == (f"checkpoint {path}: not a readable PyTorch file of tensors (UnpicklingError; "
                                "expected what torch.save writes from state dicts)")
    assert "weights_only" not in str(error.value)  # torch's advice to load it unsafely is not passed on
    assert not (tmp_path / "ran").exists()


def test_state_dicts_are_read_and_unwrapped(tmp_path):
    torch.save({"model": {"module.conv.weight": torch.ones(1)}, "epoch": 3}, tmp_path / "a.pt")
    assert list(model_state(read_torch_file(tmp_path / "a.pt"))) == ["conv.weight"]
    with pytest.raises(DataError, match=r"^checkpoint .*missing\.pt does not exist$"):
        read_torch_file(tmp_path / "missing.pt")
    # a fit's folder given for its weights was said not to exist
    with pytest.raises(DataError) as folder:
        read_torch_file(tmp_path, "checkpoint (zoo fit's model.pt or checkpoint.pt)")
    assert str(folder.value) == (f"checkpoint (zoo fit's model.pt or checkpoint.pt) {tmp_path} is a folder, not a file: "
                                 "give the file in it (a.pt)")
    with pytest.raises(DataError, match=r"is a folder, not a file: give the file in it \(it holds no \.pt file\)$"):
        read_torch_file((tmp_path / "empty").mkdir() or tmp_path / "empty")
    with pytest.raises(DataError, match=r"^x: holds no state dict .* got list$"):
        model_state([1, 2], "x")


def test_a_checkpoint_of_another_model_names_the_parameters_that_do_not_fit(tmp_path):
    """The error was torch's first line, 'Error(s) in loading state_dict for ConvRNN:', naming no parameter."""
    from neurozoo import convrnn, retina
    from neurozoo.benchmarks.named_models import resolve_model
    from neurozoo.retina.embedded_fit import load_checkpoint

    torch.save(convrnn.create_model("rgc_shallow", width_multiplier=0.5).state_dict(), tmp_path / "half.pt")
    with pytest.raises(DataError) as info:
        resolve_model("rgc_shallow", tmp_path / "half.pt")
    assert str(info.value) == (f"checkpoint {tmp_path / 'half.pt'} does not fit model rgc_shallow: "
                               "layers.conv1.stage.0.weight has shape (32, 3, 7, 7), the model's is (64, 3, 7, 7) "
                               "(28 more shapes differ)")
    torch.save({"model": {"x": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(DataError, match=r"other\.pt does not fit model rgc_shallow: missing layers\.conv1\.stage\.0"
                                        r"\.weight and 29 more; unexpected x$"):
        resolve_model("rgc_shallow", tmp_path / "other.pt")
    # a zoo train checkpoint of another model names the model it was trained as (it said only which parameters differ)
    trained = convrnn.create_model("timedecay_shallow", width_multiplier=0.125, num_classes=3)
    torch.save({"model": trained.state_dict(), "epoch": 1, "global_step": 4, "classes": ["n1", "n2", "n3"],
                "config": {"model": "timedecay_shallow", "overrides": {"width_multiplier": 0.125}}},
               tmp_path / "best.pth")
    with pytest.raises(DataError, match=r"best\.pth does not fit model rgc_shallow \(it was trained as "
                                        r"'timedecay_shallow' by zoo train: score it as that model\): missing "):
        resolve_model("rgc_shallow", tmp_path / "best.pth")
    assert resolve_model("timedecay_shallow", tmp_path / "best.pth").spec.num_classes == 3
    # a spec file's (a zoo search trial's): "score it as that model" sent the user to a path the zoo commands refuse
    torch.save({"model": trained.state_dict(), "classes": ["n1", "n2", "n3"],
                "config": {"model": "runs/search/s/trial_00001/spec.yaml", "overrides": {}}}, tmp_path / "trial.pth")
    with pytest.raises(DataError, match=r"trial\.pth does not fit model rgc_shallow \(it was trained as "
                                        r"'runs/search/s/trial_00001/spec\.yaml' by zoo train, a spec file: register "
                                        r"that spec under a name, README: Your own ConvRNN, and score it as that model"
                                        r"\): missing "):
        resolve_model("rgc_shallow", tmp_path / "trial.pth")
    # a --width given beside it that is not the one it was trained at overrides it: said, not only the shapes
    with pytest.raises(DataError, match=r"best\.pth does not fit model timedecay_shallow \(it was trained with "
                                        r"width_multiplier=0\.125; the width_multiplier=0\.25 given \(--width, --set\) "
                                        r"overrides that: leave it out, the checkpoint's settings are used\): "):
        resolve_model("timedecay_shallow", tmp_path / "best.pth", overrides={"width_multiplier": 0.25})
    torch.save(retina.create_model("ln", n_cells=3).state_dict(), tmp_path / "ln.pt")
    with pytest.raises(DataError, match=r"ln\.pt: does not hold weights of RetinaCNN with 3 cells \(missing [\w.]+ and "
                                        r"\d+ more; unexpected [\w.]+ and \d+ more\)$"):
        load_checkpoint(retina.create_model("bncnn", n_cells=3), tmp_path / "ln.pt")
    # beside zoo fit's summary.json, the model it fitted is named: `zoo probe osr bncnn2016 --checkpoint` of a bncnn fit
    # said only "does not hold weights of RetinaCNN"
    (tmp_path / "summary.json").write_text('{"model": "ln", "data": "rec.h5"}')
    with pytest.raises(DataError, match=rf"more\); {re.escape(str(tmp_path / 'summary.json'))} beside it: a zoo fit of "
                                        r"ln$"):
        load_checkpoint(retina.create_model("bncnn", n_cells=3), tmp_path / "ln.pt")
    # and a ConvRNN command given a retina fit's weights says so: `zoo compare rgc_shallow ... --checkpoint` of an ln
    # fit's model.pt listed only the parameter names (alpha, filter.spatial, ...)
    with pytest.raises(DataError, match=r"ln\.pt does not fit model rgc_shallow \(it is a retina model's weights, zoo "
                                        r"fit's 'ln' per the summary\.json beside it: retina weights are scored with "
                                        r"zoo score ln retina_embedded\.\* or retina_h5\.heldout --checkpoint, and "
                                        r"probed with zoo probe\): missing "):
        resolve_model("rgc_shallow", tmp_path / "ln.pt")
