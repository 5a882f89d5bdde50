"""``zoo info`` and ``zoo train`` (the training options live in convrnn.training.cli)."""
from __future__ import annotations

import argparse
import importlib

from neurozoo.datasets.cli_args import at_least, positive


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="parameters, FLOPs per step and timing facts of a ConvRNN")
    p.add_argument("model", help="registered model name or path to a YAML graph spec")
    p.add_argument("--image-size", type=at_least(1), default=224,
                   help="side in pixels of the square input image the FLOPs are counted at (and a CORnet's areas' "
                        "output sizes)")
    add_override_arguments(p)
    p.set_defaults(handler=_info)
    from neurozoo.convrnn import convert

    convert.add_commands(sub)
    try:
        training_cli = importlib.import_module("neurozoo.convrnn.training.cli")
    except ModuleNotFoundError as error:
        if error.name not in ("neurozoo.convrnn.training", "neurozoo.convrnn.training.cli"):
            raise
    else:
        training_cli.add_commands(sub)


def add_override_arguments(parser) -> None:
    """``--width`` and ``--set KEY=VALUE``: how the commands that build a ConvRNN (zoo train, zoo info, zoo score,
    zoo dynamics, zoo compare) change it; :func:`overrides_from_args` reads them."""
    parser.add_argument("--width", type=positive, help="ConvRNN: width multiplier (as zoo search --width and zoo run "
                                                       "--width-multiplier; same as --set width_multiplier=W; default: "
                                                       "the model's own, 1 (full width) for a registered model, where "
                                                       "zoo run scores 0.125; a zoo train checkpoint given to zoo "
                                                       "score: the width it was trained at)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="ConvRNN override: a keyword of convrnn.create_model, as n_steps, image_steps or "
                             "num_classes, with a YAML value, e.g. --set n_steps=10 (repeat for several)")


def overrides_from_args(args) -> dict:
    """The model overrides of :func:`add_override_arguments`'s options."""
    from neurozoo.datasets.errors import UserFacingError

    overrides = parse_overrides(args.overrides)
    if args.width is not None:
        if overrides.get("width_multiplier", args.width) != args.width:
            raise UserFacingError(f"--width {args.width} and --set width_multiplier={overrides['width_multiplier']} "
                                  "disagree")
        overrides["width_multiplier"] = args.width
    return overrides


def parse_overrides(pairs) -> dict:
    import yaml

    from neurozoo.datasets.errors import UserFacingError, yaml_problem

    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserFacingError(f"override {pair!r} must look like KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:  # PyYAML's traceback: "while parsing a flow sequence ..."
            raise UserFacingError(f"--set {pair}: VALUE is not valid YAML: {yaml_problem(error)} (quote a string "
                                  f"that starts with [ {{ & * ! | > ' \" % @ or `)") from None
    return overrides


def _info(args) -> int:
    from neurozoo import convrnn
    from neurozoo.convrnn.profile import flops, parameter_counts
    from neurozoo.convrnn.spec import check_image_size
    from neurozoo.datasets.text_table import format_table

    overrides = overrides_from_args(args)
    model = convrnn.create_model(args.model, **overrides)
    check_image_size(model, args.image_size)
    if not hasattr(model, "spec"):  # a CORnet (convrnn.cornet): areas, not a graph spec
        return _cornet_info(args.model, model, args.image_size, overrides)
    counts = parameter_counts(model)
    cost = flops(model, image_size=args.image_size)
    spec = model.spec
    print(f"model {spec.name}: {spec.description}")
    _print_overrides(overrides)
    print(f"steps {model.n_steps} (image for {model.image_steps}, then the blank frame {spec.blank}); image-dependent "
          f"logits from step "
          f"{model.first_readout_step}; feedback: "
          + (", ".join(f"{e.source}->{e.target}" + (f" (delay {e.delay})" if e.delay != 1 else "")
                       for e in spec.feedback) or "none"))
    rows = []
    for layer in spec.layers:
        kind = (layer.cell or {}).get("kind", "-")
        rows.append((layer.name, model.layers[layer.name].channels, kind, model.first_output_step(layer.name),
                     sum(counts.get(f"{layer.name}.{part}", 0) for part in ("stage", "cell", "post"))))
    print(format_table(("layer", "channels", "cell", "image reaches it at step", "params"), rows))
    feedback = sum(v for k, v in counts.items() if k.startswith("feedback->"))
    print(f"parameters: {counts['total']:,}" + (f" (feedback {feedback:,}, readout {counts['readout']:,})"
                                                 if feedback else ""))
    print(f"FLOPs per step at {args.image_size}px (all layers active): {cost['per_step'] / 1e9:.3f} G")
    print(f"FLOPs per unrolled forward ({cost['n_steps']} steps): {cost['total'] / 1e9:.3f} G")
    return 0


def _print_overrides(overrides: dict) -> None:
    """The line under ``zoo info``'s first: the description there is the registered model's (its parameter count, its
    cells), not the one built with ``--width``/``--set``, whose steps, layers and counts follow."""
    if overrides:
        print(f"overrides: {', '.join(f'{key}={value}' for key, value in sorted(overrides.items()))} (the line above "
              "describes the model as its spec gives it; the steps, layers and counts below are of the model built "
              "with them)")


def _cornet_info(name: str, model, image_size: int, overrides: dict) -> int:
    """``zoo info`` of a CORnet: each area's channels, output size, steps per forward and parameters; FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from neurozoo import convrnn
    from neurozoo.datasets.model_modes import eval_mode
    from neurozoo.datasets.text_table import format_table

    x = torch.zeros(1, 3, image_size, image_size)
    with eval_mode(model), FlopCounterMode(display=False) as counter, torch.no_grad():
        recorded = model(x, record=list(model.layer_names)).recorded
    print(f"model {name}: {convrnn.MODELS.get(name).description}")
    _print_overrides(overrides)
    rows = [(area, steps.shape[2], f"{steps.shape[3]}x{steps.shape[4]}", steps.shape[0],
             sum(p.numel() for p in getattr(model, area).parameters())) for area, steps in recorded.items()]
    print(format_table(("area", "channels", f"output at {image_size}px", "steps per forward", "params"), rows))
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")
    print(f"FLOPs per forward at {image_size}px: {counter.get_total_flops() / 1e9:.3f} G")
    return 0
