"""``zoo probe osr MODEL [--checkpoint PATH | --fit-embedded]``: the omitted-stimulus response of a retina model
next to the ground-truth circuit's (figure + numbers)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_probe_command(sub: argparse._SubParsersAction) -> None:
    probe = sub.add_parser("probe", help="in-silico experiments on a retina model (omitted-stimulus response, ...)")
    phenomena = probe.add_subparsers(dest="phenomenon", metavar="PHENOMENON")
    phenomena.required = True
    p = phenomena.add_parser("osr", help="omitted-stimulus response: latency vs flash period, model vs ground truth",
                             description="Run the OSR period sweep (2-frame dark flashes of intensity -2, 8 flashes, "
                                         "one omitted) on MODEL and on the embedded ground-truth circuit; write "
                                         "osr.png (latency vs period, side by side) and osr.json.")
    p.add_argument("model", help="retina model name (retina.MODELS, e.g. bncnn)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="weights saved by `zoo fit` (model.pt or checkpoint.pt)")
    source.add_argument("--fit-embedded", action="store_true",
                        help="fit MODEL to the embedded recording first (cached; reused on later runs)")
    p.add_argument("--kind", default="whitenoise", choices=["whitenoise", "naturalscene"],
                   help="embedded recording (fixes the number of cells and the ground truth)")
    p.add_argument("--periods", type=int, nargs="+", default=[2, 3, 4, 5], help="flash periods in frames (10 ms)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for osr.png and osr.json")
    p.add_argument("--epochs", type=int, default=None, help="with --fit-embedded: training epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run_probe_osr)


def run_probe_osr(args) -> int:
    import json

    from datasets.registry import UnknownNameError
    from datasets.errors import UserFacingError
    from datasets.synthetic_retina import default_retina
    from retina.embedded_fit import fitted_embedded_model, load_checkpoint
    from retina.fit import create_model
    from retina.phenomena.osr import compare_to_ground_truth, omitted_stimulus_response, plot_osr

    if min(args.periods) < 1:
        raise UserFacingError(f"--periods: flash periods must be >= 1 frame; got {args.periods}")
    try:
        if args.fit_embedded:
            settings = {"epochs": args.epochs} if args.epochs else {}
            model, info = fitted_embedded_model(args.model, args.kind, seed=args.seed, device=args.device,
                                                progress=not args.quiet, **settings)
        else:
            # the embedded recordings' cells are the circuit's cells
            model = load_checkpoint(create_model(args.model, n_cells=default_retina().n_cells), args.checkpoint)
            info = {"checkpoint": str(args.checkpoint)}
    except UnknownNameError as error:
        raise UserFacingError(str(error)) from None
    truth = omitted_stimulus_response(default_retina(), periods=args.periods)
    fitted = omitted_stimulus_response(model, periods=args.periods)
    comparison = compare_to_ground_truth(fitted, truth)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = plot_osr({args.model: fitted, "ground truth": truth}, args.out / "osr.png",
                      title=f"omitted-stimulus response ({args.kind})")
    record = {"model": args.model, "kind": args.kind, "model_osr": fitted.summary(), "truth_osr": truth.summary(),
              "comparison": comparison, "provenance": info, "figure": str(figure)}
    (args.out / "osr.json").write_text(json.dumps(record, indent=1, default=str))
    print(f"{args.model}: OSR in {int(fitted.is_osr.sum())}/{len(fitted.is_osr)} cells; ground truth: "
          f"{int(truth.is_osr.sum())}/{len(truth.is_osr)}; score {comparison['value']:.3f}")
    for row in comparison["cells"]:
        print(f"  cell {row['cell']:2d}: slope model {row['model_slope']:6.2f} (R^2 {row['model_r2']:.2f}) "
              f"truth {row['truth_slope']:5.2f}  OSR {'yes' if row['model_osr'] else 'no'}")
    print(f"wrote {figure} and {args.out / 'osr.json'}")
    return 0
