"""A model given by name, as ``zoo score``, ``zoo dynamics`` and ``BrainModel`` take it: a ConvRNN registry name or
``timm:<name>``, with optional weights."""
from __future__ import annotations


#: Why a YAML spec path is refused where a registered name is expected, and how to register it (README, ConvRNNs)
SPEC_PATH_HINT = ("the zoo commands take registered ConvRNN names, not spec files: register the spec from an installed "
                  "package through an entry point in the 'neurozoo.convrnn_models' group, a function "
                  "NAME(**overrides) returning convrnn.create_model(SPEC_PATH, **overrides) (README: Your own ConvRNN); "
                  "in Python, convrnn.create_model takes the path itself")


def spec_path_hint(name: str) -> str:
    """'' or, for a name that is a YAML spec path, '; ' + :data:`SPEC_PATH_HINT`."""
    return f"; {SPEC_PATH_HINT}" if str(name).lower().endswith((".yaml", ".yml")) else ""


def image_model_hint(name: str) -> str:
    """The hint of the registry's refusal of an unknown image model (``zoo score``'s, ``BrainModel``'s): a spec path's
    (:func:`spec_path_hint`), else what else is taken, since the known names listed are the ConvRNNs only."""
    return spec_path_hint(name) or "; expected a registered ConvRNN or timm:<name> for a timm model"


def refuse_another_graph(model, saved, where: str, name: str, overrides) -> None:
    """A ``zoo train`` checkpoint whose weights fit ``model`` but that was trained as another graph (a spec file, a
    search trial) is refused, naming the first difference."""
    from neurozoo.convrnn import trained_graph_difference
    from neurozoo.datasets.errors import UserFacingError

    difference = trained_graph_difference(model, saved, overrides)
    if difference:
        trained = saved.get("config", {}).get("model") if isinstance(saved.get("config"), dict) else None
        raise UserFacingError(f"{where} was trained as another graph than {name} builds"
                              + (f" (it was trained as {trained!r})" if trained else "") + f": {difference}; score "
                              "it as the model it was trained as (the spec in its run.json)" + spec_path_hint(trained or ""))


def resolve_model(name: str, checkpoint=None, device: str = "cpu", seed: int = 0, overrides=None):
    """A ``torch.nn.Module`` for a ConvRNN registry name or ``timm:<name>``, with optional weights. Without a
    checkpoint the weights are the initialisation drawn after ``torch.manual_seed(seed)``: torch seeds itself at
    random at start-up, so an untrained model would otherwise differ from run to run. ``overrides``: ConvRNN
    settings (``width_multiplier``, ``n_steps``...) as ``zoo train --set`` takes them."""
    return resolve_model_and_weights(name, checkpoint, device, seed, overrides)[0]


def resolve_model_and_weights(name: str, checkpoint=None, device: str = "cpu", seed: int = 0, overrides=None):
    """``(model, weights record)``: :func:`resolve_model`'s model and, where ``checkpoint`` was a CORnet's file in
    dicarlolab/CORnet's format (its released weights) and so converted to our names, what was converted
    (``convrnn.cornet_weights.release_record``); None for any other checkpoint or none."""
    import torch

    from neurozoo.datasets.errors import DataError, UserFacingError
    from neurozoo.datasets.torch_devices import auto_device
    from neurozoo.datasets.torch_files import read_torch_file

    device = auto_device(device)  # a Python caller's "auto" (BrainModel's too): the commands' rule
    torch.manual_seed(seed)
    saved = None  # the checkpoint as read

    if name.startswith("timm:"):
        import neurozoo.datasets.torchvision_compat  # noqa: F401
        import timm

        if not timm.is_model(name[5:]):
            raise UserFacingError(f"unknown timm model {name[5:]!r} (see timm.list_models())")
        if overrides:
            raise UserFacingError(f"{name}: model overrides ({', '.join(overrides)}) apply to ConvRNNs only")
        model = timm.create_model(name[5:], pretrained=False)
    else:
        from neurozoo import convrnn
        from neurozoo.convrnn import with_trained_settings

        from neurozoo.datasets.registry import lookup

        lookup(name, [convrnn.MODELS], "model", image_model_hint)  # the registries' one refusal, zoo run's too
        saved = read_torch_file(checkpoint) if checkpoint is not None else None
        # a zoo train checkpoint's model: built with its settings and data's classes, unless the overrides say otherwise
        model = convrnn.create_model(name, **with_trained_settings(overrides, saved))
    record = None
    if checkpoint is not None:
        from neurozoo.convrnn import checkpoint_state
        from neurozoo.datasets.torch_files import state_mismatch

        if saved is None:  # a timm model's
            saved = read_torch_file(checkpoint)
        state, record = checkpoint_state(model, saved, checkpoint, f"checkpoint {checkpoint}")
        try:
            model.load_state_dict(state)
        except RuntimeError:
            from neurozoo.convrnn import trained_as_hint

            hint = trained_as_hint(saved, name, overrides) or retina_fit_hint(checkpoint)
            raise DataError(f"checkpoint {checkpoint} does not fit model {name}{hint}: {state_mismatch(model, state)}"
                            ) from None
        if record is None and not name.startswith("timm:"):
            refuse_another_graph(model, saved, f"checkpoint {checkpoint}", name, overrides)
    return model.to(device).eval(), record


def retina_fit_hint(checkpoint) -> str:
    """For weights that fit no ConvRNN: where a ``zoo fit`` summary.json beside them names a retina model, that they are
    a retina fit's and where they go (the mismatch alone listed parameter names such as ``alpha``)."""
    from neurozoo.retina.embedded_fit import fitted_model_name

    fitted = fitted_model_name(checkpoint)
    if fitted is None:
        return ""
    return (f" (it is a retina model's weights, zoo fit's {fitted!r} per the summary.json beside it: retina weights are "
            f"scored with zoo score {fitted} retina_embedded.* or retina_h5.heldout --checkpoint, and probed with "
            "zoo probe)")

