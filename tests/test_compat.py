import subprocess
import sys

import torch

from neurozoo.datasets import torchvision_compat


def test_torchvision_and_timm_import_on_this_torch():
    # The shim runs at import; afterwards torchvision and timm import and build models.
    import torchvision
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=3).eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    assert torchvision.transforms.functional.to_tensor is not None


def test_shim_applies_only_when_extension_cannot_load():
    code = (
        "import datasets.torchvision_compat as c, torchvision;"
        "print(c.applied, c.extension_available)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    applied, loads = out[0] == "True", out[1] == "True"
    # The shim is used exactly when the compiled operators could not be loaded.
    assert applied == (not loads)
    if torchvision_compat.applied:
        assert torch.ops.torchvision.nms is not None  # the schema we defined


def test_plain_import_fails_without_shim_on_cpu_torch():
    code = "import torchvision"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if torchvision_compat.applied:
        # Shows why the shim exists: without it the CUDA wheel cannot be imported on CPU torch.
        assert result.returncode != 0 and "torchvision::nms" in result.stderr
    else:
        assert result.returncode == 0
