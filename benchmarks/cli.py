"""``zoo score MODEL BENCHMARK``: score a model on a registered benchmark, store the record, plot next to it."""
from __future__ import annotations

from pathlib import Path

from neurozoo.convrnn.cli import add_override_arguments, overrides_from_args
from neurozoo.datasets.cli_args import at_least
from neurozoo.datasets.json_files import write_json
from neurozoo.benchmarks.named_models import resolve_model_and_weights


#: the options of an image model (ConvRNN, timm:) that a retina model does not take: ``zoo score`` refuses them
IMAGE_MODEL_ONLY = {"--layers": "layers", "--max-features": "max_features", "--batch-size": "batch_size",
                    "--no-cache": "no_cache", "--width": "width", "--set": "overrides"}
IMAGE_MODEL_DEFAULTS = {"max_features": 1000, "batch_size": 32}


def add_commands(sub) -> None:
    parser = sub.add_parser("score", help="score a model on a neural benchmark and store the result",
                            description="Score MODEL (a ConvRNN registry name, or timm:<name>; for a retina "
                                        "benchmark a retina model name, fitted to the embedded recording or read "
                                        "from the fit cache) on BENCHMARK (see `zoo score --list`); the score is "
                                        "written to the results store and plotted next to the results.")
    parser.add_argument("model", nargs="?", help="ConvRNN model name (convrnn.list_models()) or timm:<name>; for a "
                                                 "retina benchmark a retina model name (retina.list_models())")
    parser.add_argument("benchmark", nargs="?", help="benchmark name (benchmarks.list_benchmarks())")
    parser.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    parser.add_argument("--checkpoint", type=Path, help="weights: a `zoo train` checkpoint or a state dict; for a "
                        "CORnet also a file released by dicarlolab/CORnet (e.g. cornet_s-1d3f7974.pth), converted")
    parser.add_argument("--layers", help="comma-separated layers to score (default: the region's layer map)")
    parser.add_argument("--db", help="SQLAlchemy URL of the results store (default: $NEUROZOO_HOME/results.sqlite)")
    parser.add_argument("--out", type=Path, help="folder for plots and the JSON summary (default: $NEUROZOO_HOME/results)")
    parser.add_argument("--max-features", type=at_least(1),
                        help=f"units per layer after the random projection (default {IMAGE_MODEL_DEFAULTS['max_features']})")
    parser.add_argument("--batch-size", type=at_least(1),
                        help=f"images per forward pass (default {IMAGE_MODEL_DEFAULTS['batch_size']})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=at_least(0), default=0, help="the fit's seed (retina benchmarks), or that of an "
                        "untrained model's weights (default 0)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
    add_override_arguments(parser)  # e.g. --width 0.125, the ConvRNNs of zoo run's default zoo
    parser.set_defaults(handler=run_score)


def run_score(args) -> int:
    from neurozoo import benchmarks
    from neurozoo.datasets.errors import UserFacingError

    if args.list:
        for entry in benchmarks.BENCHMARKS.entries():
            print(f"{entry.name:40s} {entry.description}")
        return 0
    if not args.model or not args.benchmark:
        raise UserFacingError("usage: zoo score MODEL BENCHMARK (see `zoo score --list`)")
    if _is_retina(args.benchmark):
        # options that do not apply were silently ignored: `zoo score ln retina_embedded.* --layers conv1` scored
        given = [flag for flag, value in IMAGE_MODEL_ONLY.items() if getattr(args, value) not in (None, [], False)]
        if given:
            raise UserFacingError(f"{args.model}: {', '.join(given)} apply to image models (ConvRNNs, timm:) only, "
                                  f"not to a retina model")
    from neurozoo.benchmarks.paths import output_folder, results_dir

    # an unusable --out fails before any scoring; one made here for input that is then refused is removed again
    with output_folder(args.out or results_dir()) as out:
        args.out = out
        return _score(args)


def _score(args) -> int:
    score, model_name = score_from_args(args)
    store, record_id, summary = _store(args, score, model_name)
    if _is_retina(args.benchmark):
        # a phenomenon's raw value is not a correlation (the share of cells with the truth's sign, or passing the call)
        details = [f"+- {score.error:.3f}"] if score.error is not None else []
        details += [f"raw {score.raw:.4f}"] if score.raw is not None else []
        details += [f"ceiling {score.ceiling:.3f}"] if score.ceiling is not None else []
        print(f"{model_name} on {args.benchmark}: {score.value:.4f}" + (f" ({', '.join(details)})" if details else ""))
        print(f"record {record_id} in {store.shown_url}; summary {summary}")
        return 0
    from neurozoo.benchmarks.plots import plot_layer_profile, plot_time_course  # matplotlib: not for a retina score

    stem = summary.with_suffix("")
    plot = plot_time_course(score, Path(f"{stem}.png"), title=f"{model_name} on {args.benchmark}")
    selection = score.provenance["settings"].get("layer_selection") or {}
    if selection:
        plot_layer_profile(selection, Path(f"{stem}_layers.png"),
                           title=f"{model_name}: layer selection", ylabel="r²/ceiling (held-out selection stimuli)",
                           chosen=score.provenance["settings"].get("layer"))
    print(f"{model_name} on {args.benchmark}: {score}")
    print(f"layer {score.provenance['settings'].get('layer')}; record {record_id} in {store.shown_url}; plot {plot}")
    return 0


def rerun_arguments(args) -> dict:
    """What ``zoo score`` was given, as its record keeps it: ``zoo reproduce`` rebuilds the command from this
    alone (the checkpoint by path and sha256, so that changed weights are noticed)."""
    from neurozoo.datasets.provenance import sha256_file

    checkpoint = ({"path": str(Path(args.checkpoint).resolve()), "sha256": sha256_file(args.checkpoint)}
                  if args.checkpoint else None)
    return {"command": "zoo score", "model": args.model, "benchmark": args.benchmark, "seed": args.seed,
            "width": args.width, "set": list(args.overrides or []), "layers": args.layers,
            "max_features": args.max_features, "batch_size": args.batch_size, "checkpoint": checkpoint}


def score_from_args(args):
    """``(Score, model name)`` of ``zoo score``'s arguments; the score's settings keep them under ``rerun``."""
    from neurozoo import benchmarks
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.provenance import module_sha256

    benchmark = benchmarks.load(args.benchmark)
    if not _is_retina(args.benchmark):
        for key, value in IMAGE_MODEL_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    rerun = rerun_arguments(args)
    if _is_retina(args.benchmark):
        score, model_name = _score_retina(args, benchmark)
        score.provenance.setdefault("settings", {})["rerun"] = rerun
        return score, model_name
    from neurozoo.benchmarks.neural import DataOnlyBenchmark

    if isinstance(benchmark, DataOnlyBenchmark):
        benchmark.score()  # raises: it has no images, so it scores no image-computable model
    from neurozoo import retina

    if args.model in retina.list_models():
        raise UserFacingError(f"{args.model} is a retina model: it scores on the retina benchmarks "
                              f"(retina_embedded.*; see `zoo score --list`), not on {args.benchmark}")
    overrides = overrides_from_args(args)
    model, weights = resolve_model_and_weights(args.model, args.checkpoint, args.device, seed=args.seed,
                                               overrides=overrides)
    layers = [layer.strip() for layer in args.layers.split(",")] if args.layers else None
    score = benchmark.score(model, layers=layers, max_features=args.max_features, batch_size=args.batch_size,
                            cache=not args.no_cache)
    model_name = args.model + (f"@{args.checkpoint.name}" if args.checkpoint else "")
    if weights is not None:  # a CORnet's released file, converted from dicarlolab/CORnet's names: labelled as zoo run's
        score.provenance["settings"].update(weights=weights["label"], weights_conversion=weights)
    score.provenance["settings"].update(checkpoint=str(args.checkpoint) if args.checkpoint else None,
                                        overrides=overrides, model_seed=args.seed, max_features=args.max_features,
                                        batch_size=args.batch_size, model_sha256=module_sha256(model), rerun=rerun,
                                        selection_seed=score.provenance.get("seed"))
    # the record's seed is --seed, as for a retina model's fit: the benchmark's own split seed never changes
    score.provenance["seed"] = args.seed
    return score, model_name


def _is_retina(benchmark: str) -> bool:
    from neurozoo import benchmarks

    return benchmarks.BENCHMARKS.get(benchmark).tags.get("family") == "retina"


def _store(args, score, model_name: str):
    """The score's record in the results store and its JSON summary beside the plots (in ``args.out``, which
    :func:`run_score` made): ``(store, record id, path)``."""
    from neurozoo.benchmarks.records import ResultsStore

    store = ResultsStore(args.db)
    record_id = store.add(score.to_record(model_name, args.benchmark))
    summary = args.out / (f"{record_id:06d}_{args.benchmark}_{args.model}".replace("/", "_").replace(":", "_") + ".json")
    write_json(summary, {"model": model_name, "benchmark": args.benchmark, "value": score.value, "error": score.error,
                         "ceiling": score.ceiling, "raw": score.raw, "per_bin": score.per_bin,
                         "provenance": score.provenance})
    return store, record_id, summary


def _score_retina(args, benchmark):
    """A retina benchmark: it fits the named retina model on its embedded recording (or reads the fit cache that
    ``zoo run`` shares), or scores the weights of ``--checkpoint``: ``(Score, model name)``."""
    from neurozoo import retina
    from neurozoo.datasets.errors import UserFacingError

    if args.model not in retina.list_models():
        raise UserFacingError(f"{args.benchmark} scores retina models; unknown retina model {args.model!r} "
                              f"(registered: {', '.join(retina.list_models())})")
    model = args.model
    if args.checkpoint is not None:
        from neurozoo.datasets.synthetic_retina import default_retina
        from neurozoo.retina.embedded_fit import load_checkpoint

        model = load_checkpoint(retina.create_model(args.model, n_cells=len(default_retina().cell_types)), args.checkpoint)
    score = benchmark.score(model, seed=args.seed, device=args.device)
    return score, args.model + (f"@{args.checkpoint.name}" if args.checkpoint else "")
