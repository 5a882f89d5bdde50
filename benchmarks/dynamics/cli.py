"""``zoo dynamics MODEL``: fixed points, eigenvalue spectra and trajectory plots; ``zoo compare SYSTEM...``:
similarity matrices over time. Both write figures, a JSON summary and records to the results store."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from neurozoo.convrnn.cli import add_override_arguments, overrides_from_args
from neurozoo.datasets.cli_args import add_db_argument, at_least, positive
from neurozoo.datasets.db_urls import stored_line
from neurozoo.datasets.json_files import write_json


class Recorded:
    """A subcommand's parser that keeps each argument added to it, as ``(action, kind)`` (``kind``: add_argument's
    ``action=``, None for a plain value): argparse keeps them in private attributes only, and :func:`command_line`
    writes a record's arguments back into a command line from them."""

    def __init__(self, parser):
        self.parser, self.arguments = parser, []

    def add_argument(self, *flags, **options):
        action = self.parser.add_argument(*flags, **options)
        self.arguments.append((action, options.get("action")))
        return action

    def set_defaults(self, **defaults) -> None:
        self.parser.set_defaults(**defaults)


def add_commands(sub) -> dict:
    """Adds ``zoo dynamics`` and ``zoo compare`` to ``sub``; returns their arguments (:class:`Recorded`) by command."""
    dynamics = Recorded(sub.add_parser(
        "dynamics", help="fixed points, linearised dynamics and trajectories of a recurrent model",
        description="Fixed and slow points (Sussillo & Barak 2013) of MODEL under a constant input, their Jacobian "
                    "spectra, and PCA trajectories. MODEL: an example (linear, bistable, flipflop-rnn|gru|lstm, "
                    "integration-rnn|gru|lstm; trained on the CPU first) or a ConvRNN name with --layer."))
    dynamics.add_argument("model", metavar="MODEL", help="an example or a ConvRNN name (see above)")
    dynamics.add_argument("--layer", help="ConvRNN layer whose cell is analysed (default: the last recurrent one)")
    dynamics.add_argument("--position", action="append", default=None, metavar="ROW,COL",
                          help="ConvRNN: analyse the state at this position only (repeatable; negative indices count "
                               "from the end, written with '=': --position=-1,0 is the last row's first column); "
                               "default: the whole map")
    dynamics.add_argument("--trajectory-layers", help="ConvRNN: comma-separated layers whose outputs are plotted over "
                                                       "time (default: the analysed layer)")
    dynamics.add_argument("--image", type=at_least(0),
                          help="ConvRNN: index of the held image among the --n-images images (spread over the "
                               "embedded ventral set; default 0)")
    dynamics.add_argument("--n-images", type=at_least(1),
                          help="ConvRNN: images whose trajectories seed the search (default 16)")
    dynamics.add_argument("--checkpoint", type=Path, help="ConvRNN: weights (default: untrained, drawn from --seed)")
    _convrnn_arguments(dynamics)
    dynamics.add_argument("--points", type=at_least(1), default=256,
                          help="initial states of the search, drawn from the trajectories' states (with noise)")
    dynamics.add_argument("--steps", type=at_least(0), default=3000,
                          help="Adam steps that lower each point's speed q before the Newton polish")
    dynamics.add_argument("--train-steps", type=at_least(0), help="examples: training steps (default: the example's)")
    dynamics.add_argument("--slow-tol", type=positive, help="largest q of a slow point (default 1e-6; 1e-4 for the "
                                                        "integration examples' line attractors)")
    dynamics.add_argument("--unique-tol", type=positive, help="points closer than this are one (default 1e-3)")
    dynamics.add_argument("--unique-norm", choices=("max", "euclidean"),
                          help="distance of --unique-tol: the largest coordinate difference (default, as "
                               "FixedPointFinder's tol_unique) or the Euclidean one (before 2026-12-04)")
    dynamics.add_argument("--seed", type=at_least(0), default=0,
                          help="random seed of the search's initial states, of an example (its system, trajectories "
                               "and training) and of an untrained ConvRNN's weights (without --checkpoint)")
    dynamics.add_argument("--float32", action="store_true", help="search in float32 (default float64)")
    _store_arguments(dynamics)
    dynamics.set_defaults(handler=run_dynamics)

    compare = Recorded(sub.add_parser(
        "compare", help="similarity of models and neural data over time (RSA, CKA, Procrustes)",
        description="Per time bin RSA, linear and debiased CKA between every pair of SYSTEMs, and the Procrustes "
                    "similarity of whole trajectories when two systems share a time grid. SYSTEM: ConvRNN "
                    "name[:layer], neural:V4|IT|zhang_desimone2011.it[/even|/odd], or an example (flipflop-gru...)."))
    compare.add_argument("systems", nargs="+", metavar="SYSTEM", help="the systems compared (see above)")
    compare.add_argument("--metrics", default="rsa,cka,debiased_cka",
                         help="comma-separated, some of rsa, cka, debiased_cka, each per pair of time bins (the "
                              "Procrustes similarity is added where two systems share a time grid)")
    compare.add_argument("--checkpoint", type=Path,
                         help="weights for the ConvRNN systems (default: untrained, drawn from --seed)")
    _convrnn_arguments(compare)
    compare.add_argument("--n-steps", type=at_least(1), help="ConvRNN steps (default: the model's)")
    compare.add_argument("--train-steps", type=at_least(0),
                         help="trained examples among the systems: training steps (default: the example's)")
    compare.add_argument("--max-stimuli", type=at_least(1),
                         help="ConvRNNs: this many ventral stimuli, spread over the set (default: all of them)")
    compare.add_argument("--seed", type=at_least(0), default=0,
                         help="random seed of the examples among the systems (their training) and of the untrained "
                              "ConvRNNs' weights (without --checkpoint)")
    _store_arguments(compare)
    compare.set_defaults(handler=run_compare)
    return {"dynamics": dynamics.arguments, "compare": compare.arguments}


#: options added after records were first kept, with the value the analysis used before each existed: a record
#: without one is rerun as it was made, not with the option's later default
BEFORE_OPTION = {"unique_norm": "euclidean"}  # duplicates were merged by Euclidean distance until --unique-norm


def command_line(command: str, arguments: dict) -> str:
    """The ``zoo dynamics ...`` / ``zoo compare ...`` command line of a record's ``arguments`` (:func:`run_tag`):
    each argument that differs from its default, as this version's parser reads it back (:data:`BEFORE_OPTION` for
    an argument the record predates)."""
    import argparse
    import shlex

    words = ["zoo", command]
    for action, kind in add_commands(argparse.ArgumentParser(prog="zoo").add_subparsers())[command]:
        value = arguments.get(action.dest, BEFORE_OPTION.get(action.dest) if command == "dynamics" else None)
        if value is None or value is False or value == [] or value == action.default:
            continue
        option = max(action.option_strings, key=len) if action.option_strings else None
        if option is None:
            words += value if isinstance(value, list) else [value]
        elif kind == "store_true":
            words.append(option)
        else:
            for v in (value if kind == "append" else [value]):
                # argparse reads a value that starts with '-' (--position=-1,0) only when joined to its option
                words += [f"{option}={v}"] if str(v).startswith("-") else [option, v]
    return " ".join(shlex.quote(str(word)) for word in words)


def _convrnn_arguments(parser) -> None:
    add_override_arguments(parser)
    parser.add_argument("--image-size", type=at_least(1), help="ConvRNN: resize the images to this many pixels "
                                                               "(default: the ventral set's own 64)")


def _store_arguments(parser) -> None:
    add_db_argument(parser, note=" the records are written to (unless --no-store)")
    parser.add_argument("--out", type=Path, help="folder for figures and the JSON summary (default: $NEUROZOO_HOME/results)")
    parser.add_argument("--no-store", action="store_true", help="do not write records to the results store")


#: ``zoo dynamics`` options for a ConvRNN only, and their argparse names
CONVRNN_ONLY = {"--layer": "layer", "--position": "position", "--trajectory-layers": "trajectory_layers",
                "--image": "image", "--n-images": "n_images", "--checkpoint": "checkpoint", "--width": "width",
                "--image-size": "image_size", "--set": "overrides"}


def _positions(values):
    from neurozoo.datasets.errors import UserFacingError

    if not values:
        return None
    positions = []
    for value in values:
        try:
            row, column = (int(v) for v in value.split(","))
        except ValueError:
            raise UserFacingError(f"--position {value!r}: expected ROW,COL (two integers)") from None
        positions.append((row, column))
    return positions


def _case(args):
    """A function that makes the analysed case, returned once every refusal of the input has been made, so that
    :func:`run_dynamics` opens the results store only after them. A ConvRNN's case is built here: its refusals need
    the model (a recurrent cell, the layers, --image, --position). An example is trained when the function is
    called, after the store has been opened: a bad --db is refused before the training."""
    import functools

    from neurozoo.benchmarks.dynamics import cases, sources
    from neurozoo.benchmarks.dynamics.adapters import recurrent_layers
    from neurozoo.convrnn.spec import check_image_size
    from neurozoo.datasets.errors import UserFacingError

    if args.model in cases.EXAMPLES:
        # options that do not apply were silently ignored: `zoo dynamics linear --layer conv4` ran the linear system
        given = [flag for flag, value in CONVRNN_ONLY.items() if getattr(args, value) not in (None, [])]
        if given:
            raise UserFacingError(f"{args.model}: {', '.join(given)} apply to ConvRNNs only")
        options = {"seed": args.seed}
        if args.train_steps is not None:
            if args.model in ("linear", "bistable"):
                raise UserFacingError(f"{args.model}: --train-steps applies to the trained examples only "
                                      "(flipflop-*, integration-*); this system is not trained")
            options["steps"] = args.train_steps
        return functools.partial(cases.EXAMPLES[args.model], **options)
    if args.train_steps is not None:
        raise UserFacingError(f"{args.model}: --train-steps applies to the trained examples only; a ConvRNN is "
                              "analysed with the weights it has (--checkpoint)")
    from neurozoo.benchmarks.named_models import resolve_model

    overrides = overrides_from_args(args)
    model = resolve_model(args.model, args.checkpoint, seed=args.seed, overrides=overrides)
    check_image_size(model, args.image_size or sources.VENTRAL_PIXELS)
    recurrent = recurrent_layers(model)
    if not recurrent:  # said "--layer None is not a layer" when no --layer was given
        raise UserFacingError(f"{args.model}: no layer has a recurrent cell (no cell keeps a state), so it has no "
                              "dynamics to analyse; zoo compare takes its trajectories")
    layer = args.layer or recurrent[-1]
    if layer not in model.layer_names:
        raise UserFacingError(f"{args.model}: --layer {layer!r} is not a layer; layers: {', '.join(model.layer_names)}")
    trajectory_layers = [l.strip() for l in args.trajectory_layers.split(",")] if args.trajectory_layers else None
    unknown = [l for l in trajectory_layers or [] if l not in model.layer_names]
    if unknown:
        raise UserFacingError(f"{args.model}: --trajectory-layers {', '.join(unknown)} not layers; "
                              f"layers: {', '.join(model.layer_names)}")
    image = args.image or 0
    images, ids, objects = sources.ventral_images(with_objects=True, max_stimuli=args.n_images or 16,
                                                  image_size=args.image_size)
    if not 0 <= image < len(ids):
        raise UserFacingError(f"--image {image}: expected 0..{len(ids) - 1}, an index among the --n-images {len(ids)} "
                              "images (spread over the ventral set)")
    try:
        case = cases.convrnn_case(model, args.model, layer, images, ids, _positions(args.position),
                                  image_index=image, labels=objects, trajectory_layers=trajectory_layers)
    except ValueError as error:
        raise UserFacingError(str(error)) from None
    case.settings.update(overrides=overrides, image_size=int(images.shape[-1]), n_images=len(ids),
                         checkpoint=str(args.checkpoint) if args.checkpoint else None,
                         checkpoint_sha256=checkpoint_sha256(args.checkpoint))
    return lambda: case


def summary_line(name: str, condition: str, found) -> str:
    """One line per condition: the counts, then the first 8 points' spectral radii (or that none was found: the
    whole-map search of an untrained ConvRNN often ends with no point below the slow tolerance)."""
    counts = found.summary()
    line = (f"{name} [{condition}]: {counts['n_fixed']} fixed ({counts['n_stable_fixed']} stable, "
            f"{counts['n_saddles_1']} with one unstable mode), {counts['n_slow']} slow")
    if counts.get("n_unstable_lower_bound"):  # only the top K eigenvalues computed, all of them unstable
        line += (f" ({counts['n_unstable_lower_bound']} with at least {found.eigenvalues.shape[1]} unstable modes: "
                 f"only the top {found.eigenvalues.shape[1]} eigenvalues computed)")
    if "n_converged" in found.settings:  # how many searches the points stand for: 3 points from 3 of 256 is not 256
        line += f", reached by {found.settings['n_converged']} of {found.settings['n_initial']} searches"
    if not len(found):
        return line + "; no fixed or slow point found"
    radius = ", ".join(f"{r:.3f}" for r in found.spectral_radius[:8])
    shown = "" if len(found) <= 8 else f" (first 8 of {len(found)} points, in the summary's order)"
    return line + f"; spectral radii {radius}" + shown


def _check_model_name(model: str) -> None:
    """The registries' one refusal of a name that is neither an example nor a registered ConvRNN: a spec path's hint,
    close names, every name (:func:`datasets.registry.lookup`); and of a ConvRNN not unrolled in 10 ms steps."""
    from neurozoo import convrnn
    from neurozoo.benchmarks.dynamics import cases, sources
    from neurozoo.benchmarks.named_models import spec_path_hint
    from neurozoo.datasets.registry import lookup

    if lookup(model, [convrnn.MODELS], "model", lambda name: spec_path_hint(name) or
              "; expected an example or a registered ConvRNN", also=cases.EXAMPLES) is not None:  # None: an example's
        sources.check_unrolled_in_10_ms_steps(model)


def run_dynamics(args, draw: bool = True) -> int:
    """``draw=False``: no figures (zoo reproduce, which compares the records and deletes its scratch folder)."""
    from neurozoo.benchmarks.paths import output_folder, results_dir
    from neurozoo.benchmarks.records import ResultsStore

    from neurozoo.benchmarks.dynamics.analysis import Timer

    _check_model_name(args.model)  # before the store: a bad name made an empty --db file (until 2026-12-05)
    with Timer() as timer:  # and so is every other refusal: one that needed the model built (no recurrent cell,
        make_case = _case(args)  # --image out of range) made an empty --db file too (until 2026-12-05)
    store = None if args.no_store else ResultsStore(args.db)  # a bad --db is refused before the analysis
    # and so is an unusable --out; one made here for input that is then refused is removed again
    with output_folder(args.out or results_dir()) as out:
        return _dynamics(args, make_case, timer, store, out, draw)


def _dynamics(args, make_case, timer, store, out: Path, draw: bool = True) -> int:
    """``timer`` (an ``analysis.Timer``) holds the seconds :func:`_case` took to return ``make_case`` (a ConvRNN's case
    built), part of the run's duration; it goes on through the analysis."""
    import torch

    from neurozoo.benchmarks.dynamics.analysis import analyse, dynamics_records, figures, file_name, provenance

    with timer:
        case = make_case()
        finder = {"steps": args.steps, "dtype": torch.float32 if args.float32 else torch.float64,
                  "slow_tol": args.slow_tol, "unique_tol": args.unique_tol, "unique_norm": args.unique_norm,
                  "progress": True}
        if args.float32:
            finder["fixed_tol"] = 1e-9
        results = analyse(case, n_initial=args.points, seed=args.seed, **finder)
    seconds = timer.seconds
    tag, arguments = run_tag(args)
    case.settings["arguments"] = arguments
    stem = file_name(f"dynamics_{case.name}_{tag}")
    paths = figures(case, results, out, stem) if draw else []
    # "finder": the tolerances that make a point fixed or slow, the steps... (the records had them, the summary not)
    summary = {condition: {**found.summary(), "finder": found.settings, "table": found.table().to_dict(orient="records")}
               for condition, found in results.items()}
    summary_path = out / f"{stem}.json"
    write_json(summary_path, {"model": case.name, "settings": case.settings, "time_unit": case.time_unit,
                              "dt": case.step_ms, "conditions": summary,  # table: slowest_tau_<time_unit>, < 0: growth
                              "provenance": {**provenance(args.seed, case.data_sha256), "duration_s": seconds}})
    for condition, found in results.items():
        print(summary_line(case.name, condition, found))
    if store is not None:
        ids = store.add_many(dynamics_records(case, results, seconds, args.seed, case.data_sha256))
        print(stored_line(ids, store.shown_url))
    if paths:
        print("figures: " + ", ".join(str(p) for p in paths))
    print(f"summary: {summary_path}")
    return 0


COMPARE_VALUE = ("per pair A ~ B and metric, value = the mean over A's bins of the similarity of A's bin to B's same "
                 "bin when both share one time grid (same_grid), else to B's best bin (per_bin: best_b_start), on "
                 "the n_stimuli stimuli both share; procrustes: whole trajectories, shared grids only")


def _compare_summary(systems, records, settings, provenance: dict) -> dict:
    """What the records hold, in one file: per pair and metric the value and its bins, and their provenance."""
    pairs = {}
    for record in records:
        metric = record.benchmark.split(".", 1)[1]
        pairs.setdefault(record.model, {})[metric] = (
            {"value": record.value, "window_bins": record.settings["window_bins"]} if metric == "procrustes" else
            {"value": record.value, "n_stimuli": record.settings["n_stimuli"],
             "same_grid": record.settings["same_grid"], "per_bin": record.per_bin})
    return {"systems": {name: {**activity.sizes, "time_unit": activity.attrs.get("time_unit", "ms")}
                        for name, activity in systems.items()},
            "value": COMPARE_VALUE, "settings": settings, "pairs": pairs, "provenance": provenance}


def run_compare(args, draw: bool = True) -> int:
    """``draw=False``: no figures, as :func:`run_dynamics`."""
    from neurozoo.benchmarks.dynamics import sources
    from neurozoo.benchmarks.dynamics.analysis import Timer
    from neurozoo.benchmarks.dynamics.similarity import METRICS
    from neurozoo.benchmarks.paths import output_folder, results_dir
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.datasets.errors import UserFacingError

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS or m == "procrustes"]
    if unknown:
        raise UserFacingError(f"--metrics: unknown {', '.join(unknown)}; expected some of rsa, cka, debiased_cka")
    if not metrics:
        raise UserFacingError(f"--metrics: none given in {args.metrics!r}; expected some of rsa, cka, debiased_cka")
    sources.check_systems(args.systems)  # before the store: a bad name made an empty --db file (until 2026-12-05)
    with Timer() as timer:  # and so is every other refusal (an option that shapes no named system, a ConvRNN's
        overrides = overrides_from_args(args)  # layer), which made an empty --db file too (until 2026-12-05)
        load = sources.prepare(args.systems, args.checkpoint, args.seed, args.train_steps, args.n_steps,
                               args.max_stimuli, overrides=overrides, image_size=args.image_size)
    store = None if args.no_store else ResultsStore(args.db)  # a bad --db is refused before the systems are run
    # and so is an unusable --out; one made here for input that is then refused is removed again
    with output_folder(args.out or results_dir()) as out:
        return _compare(args, metrics, overrides, load, timer, store, out, draw)


def _compare(args, metrics, overrides, load, timer, store, out: Path, draw: bool = True) -> int:
    """``timer`` (an ``analysis.Timer``) holds the seconds :func:`sources.prepare` took to return ``load`` (the
    ConvRNNs built), part of the run's duration; it goes on through the comparison."""
    from neurozoo.benchmarks.dynamics.analysis import compare, compare_figures, compare_records, file_name, provenance
    from neurozoo.datasets.errors import UserFacingError

    with timer:
        systems, data_sha = load()
        try:
            results = compare(systems, metrics)
        except ValueError as error:
            raise UserFacingError(str(error)) from None
    seconds = timer.seconds
    tag, arguments = run_tag(args)
    stem = f"compare_{tag}"
    paths = compare_figures(results, out, stem, systems) if draw else []
    settings = {"checkpoint": str(args.checkpoint) if args.checkpoint else None,
                "checkpoint_sha256": checkpoint_sha256(args.checkpoint), "n_steps": args.n_steps,
                "train_steps": args.train_steps, "max_stimuli": args.max_stimuli, "overrides": overrides,
                "image_size": args.image_size, "arguments": arguments}
    records = compare_records(systems, results, seconds, data_sha, seed=args.seed, settings=settings)
    summary = out / f"{file_name('compare_' + '__'.join(systems))}_{tag}.json"
    write_json(summary, _compare_summary(systems, records, settings,
                                         {**provenance(args.seed, data_sha), "duration_s": seconds}))
    for record in records:
        value = "n/a (no informative bins)" if record.value is None else f"{record.value:.3f}"
        print(f"{record.model}: {record.benchmark} {value}")
    if store is not None:
        ids = store.add_many(records)
        print(stored_line(ids, store.shown_url))
    if paths:
        print("figures: " + ", ".join(str(p) for p in paths))
    print(f"summary: {summary}")
    return 0


def checkpoint_sha256(checkpoint) -> Optional[str]:
    """The sha256 of a --checkpoint file (None without one), kept in the records: ``zoo reproduce`` refuses weights
    changed since, naming the file, as it does for ``zoo score``'s records (a rerun had analysed them as the
    record's)."""
    from neurozoo.datasets.provenance import sha256_file

    return sha256_file(checkpoint) if checkpoint else None


def run_tag(args):
    """``(tag, arguments)``: the arguments that can change a result (not where it is written) and a short digest
    of them for the output files' names, so that runs with other settings (a seed, a width, a checkpoint) write
    their figures and JSON summary beside the earlier ones, not over them; the records keep the arguments."""
    import hashlib
    import json

    skip = {"handler", "command", "db", "out", "no_store"}
    arguments = {key: (str(value) if isinstance(value, Path) else value) for key, value in sorted(vars(args).items())
                 if key not in skip}
    if arguments.get("checkpoint"):  # absolute: zoo reproduce runs the command again from any folder (a relative
        arguments["checkpoint"] = str(Path(arguments["checkpoint"]).resolve())  # one was not found elsewhere)
    return hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode()).hexdigest()[:8], arguments
