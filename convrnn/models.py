"""The ConvRNN model zoo: ``create_model(name, **overrides)`` and ``list_models()``, as in timm.

Built-in models are the YAML graph specs in ``convrnn/specs``, ConvRNN cells placed in the
stages of timm backbones, and the CORnets (``convrnn.cornet``; not in the default zoo). Third-party packages add models with ``@MODELS.register(...)`` or an
entry point in the ``neurozoo.convrnn_models`` group.
"""
from __future__ import annotations

import fnmatch
import os
from functools import partial
from importlib.resources import files
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from neurozoo.convrnn.spec import GraphSpec, load_spec
from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.registry import Registry, forwards_keywords

if TYPE_CHECKING:  # annotations only: registering the models imports no torch (`zoo list` needs none)
    import torch.nn as nn

    from neurozoo.convrnn.network import ConvRNN

MODELS = Registry("ConvRNN model", entry_point_group="neurozoo.convrnn_models", keywords="override")  # --set's

SPEC_DIR = files(__package__) / "specs"


def build(spec: GraphSpec) -> ConvRNN:
    """A model from a validated spec (timm stages are built when the spec names a backbone)."""
    from neurozoo.convrnn.network import ConvRNN

    stages = timm_stages(spec.timm_backbone, spec.timm_width) if spec.timm_backbone else None
    return ConvRNN(spec, backbone_stages=stages)


def _from_spec_file(path, **overrides) -> ConvRNN:
    return build(GraphSpec.from_yaml(str(path)).with_overrides(**overrides))


#: Scored by the leaderboard's default zoo run; the other released variants (decoders, longer unrolls, the other
#: cells) are scored when named (``--models``), which keeps the default run's cost.
DEFAULT_ZOO = ("rgc_intermediate", "rgc_shallow", "timedecay_intermediate", "ugrnn_intermediate",
               "feedforward_intermediate", "rgc_resnet18")

for _path in sorted(SPEC_DIR.iterdir(), key=lambda p: p.name):
    if _path.name.endswith(".yaml"):
        _spec = GraphSpec.from_yaml(str(_path))
        MODELS.add(_spec.name, partial(_from_spec_file, _path), description=_spec.description, family="convrnn",
                   spec_file=str(_path), default_zoo=_spec.name in DEFAULT_ZOO)


# ---------------------------------------------------------------------------- timm backbones
def timm_stages(backbone: str, width: float = 1.0) -> Dict[str, Tuple[nn.Module, int]]:
    """Stages of a timm ResNet-family backbone as (module, output channels): stem, layer1..layer4.

    ``width`` scales the four stages' channels (timm's ``channels`` argument; the 64-channel stem is kept)."""
    import neurozoo.datasets.torchvision_compat  # noqa: F401  (before timm)
    import timm
    import torch.nn as nn

    kwargs = {}
    if width != 1.0:
        kwargs["channels"] = tuple(max(1, int(round(c * width))) for c in (64, 128, 256, 512))
    try:
        model = timm.create_model(backbone, pretrained=False, num_classes=0, **kwargs)
    except RuntimeError as error:
        raise SpecError(f"unknown timm backbone {backbone!r}: {error}") from None
    needed = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")
    if not all(hasattr(model, n) for n in needed):
        raise SpecError(f"timm backbone {backbone!r} is not ResNet-like (needs stem conv1/bn1/act1/maxpool and layer1-4)")
    channels = [info["num_chs"] for info in model.feature_info]
    stem = nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)
    stages = {"stem": (stem, channels[0])}
    for i in range(1, 5):
        stages[f"layer{i}"] = (getattr(model, f"layer{i}"), channels[i])
    return stages


def timm_convrnn_spec(backbone: str = "resnet18", cell: str = "rgc", cell_stages=("layer2", "layer3", "layer4"),
                      feedback=(("layer4", "layer3"),), name: Optional[str] = None) -> GraphSpec:
    layers = []
    for stage in ("stem", "layer1", "layer2", "layer3", "layer4"):
        entry = {"name": stage, "timm_stage": stage}
        if stage in cell_stages:
            # a timm stage downsamples, so the layer input cannot be added inside the RGC (out_residual)
            entry["cell"] = {"kind": cell, "out_residual": False} if cell == "rgc" else {"kind": cell}
        layers.append(entry)
    return GraphSpec.from_dict({
        "name": name or f"{cell}_{backbone}",
        "description": f"timm {backbone} whose stages {', '.join(cell_stages)} carry {cell} cells, feedback "
                       + ", ".join(f"{s}->{t}" for s, t in feedback),
        "timm_backbone": backbone,
        "norm": "none",
        "n_steps": 10,
        "image_steps": 7,
        "layers": layers,
        "feedback": [{"source": s, "target": t} for s, t in feedback],
    })


def _timm_factory(backbone: str, **overrides) -> ConvRNN:
    return build(timm_convrnn_spec(backbone).with_overrides(**overrides))


MODELS.add("rgc_resnet18", partial(_timm_factory, "resnet18"),
           description=timm_convrnn_spec("resnet18").description, family="convrnn")


# ---------------------------------------------------------------------------- CORnet
def _register_cornets() -> None:
    """CORnet-Z, -S and -RT (convrnn.cornet; REFERENCE.md section 2), full size by default (``width_multiplier``
    scales the areas' channels). Scored when named (``zoo run --models cornet_s``), not in the default zoo."""
    for name, description in (
            ("cornet_z", "CORnet-Z (dicarlolab/CORnet): V1, V2, V4, IT of conv, ReLU, max-pool; feed-forward"),
            ("cornet_s", "CORnet-S (dicarlolab/CORnet): bottleneck areas V2, V4, IT unrolled 2, 4, 2 times, a "
                         "BatchNorm per step; 53.4 M parameters"),
            ("cornet_rt", "CORnet-RT (dicarlolab/CORnet): V1, V2, V4, IT biologically unrolled over 5 steps, "
                          "GroupNorm(32)")):
        MODELS.add(name, _with_checked_overrides(name), description=description, family="cornet",
                   default_zoo=False)


def _with_checked_overrides(name: str):
    """The factory ``convrnn.cornet.<name>`` (imported on first use: it imports torch), whose keywords the registry
    checks (``forwards_keywords``), refusing an override it does not take with a SpecError naming those it takes:
    ``zoo score cornet_z ... --set n_steps=10`` ended in a TypeError traceback (a CORnet has no unroll settings)."""

    def cornet_factory():
        from neurozoo.convrnn import cornet

        return getattr(cornet, name)

    @forwards_keywords(cornet_factory)
    def create(**overrides):
        return cornet_factory()(**overrides)
    return create


_register_cornets()


# ---------------------------------------------------------------------------- public API
def list_models(pattern: str = "*") -> List[str]:
    return [n for n in MODELS.names() if fnmatch.fnmatch(n, pattern)]


def is_spec_path(name: str) -> bool:
    """Whether :func:`create_model` reads ``name`` as a YAML spec path rather than a registered name."""
    return name not in MODELS and (name.endswith((".yaml", ".yml")) or os.path.exists(name))


def create_model(name, /, **overrides) -> nn.Module:
    """A ConvRNN by registered name, by YAML spec path, or from a spec mapping / GraphSpec.

    ``name`` is positional-only, so that the override ``name=...`` (the model's new name) is an override."""
    if isinstance(name, str) and is_spec_path(name):
        spec = load_spec(name).with_overrides(**overrides)
        try:
            return build(spec)
        except SpecError as error:  # a cell's config, checked only when the cell is built: name the file too
            raise SpecError(f"{name}: {error}") from None
    if not isinstance(name, str):
        return build(load_spec(name).with_overrides(**overrides))
    model = MODELS.create(name, **overrides)
    import torch.nn as nn

    if not (isinstance(model, nn.Module) and hasattr(model, "layer_names")):  # a plugin's factory: the commands
        raise SpecError(f"ConvRNN model {name!r}: its factory {MODELS.origin(name)} returned a "  # failed deep inside
                        f"{type(model).__name__}, not a model with named layers (an nn.Module with layer_names and "
                        "forward(images, record=...), as convrnn.create_model(SPEC_PATH) builds)")
    return model


def get_spec(name: str) -> GraphSpec:
    entry = MODELS.get(name)
    if "spec_file" in entry.tags:
        return GraphSpec.from_yaml(entry.tags["spec_file"])
    model = create_model(name)
    if not hasattr(model, "spec"):  # a search base or wiring source named a CORnet: an AttributeError traceback
        raise SpecError(f"model {name!r} ({type(model).__name__}) is not built from a graph spec, so it has none to "
                        f"take layers or wiring from; name a ConvRNN")
    return model.spec
