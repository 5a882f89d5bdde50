"""datasets.torch_files: a user's PyTorch file is read without running code from it, with one clear error."""
import os

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
    with pytest.raises(DataError, match=r"^x: holds no state dict .* got list$"):
        model_state([1, 2], "x")
