"""``zoo score MODEL BENCHMARK``: score a model on a registered benchmark, store the record, plot next to it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from neurozoo.convrnn.cli import add_override_arguments, overrides_from_args
from neurozoo.datasets.cli_args import CELLS_SPEC, add_db_argument, add_device_argument, at_least
from neurozoo.datasets.json_files import write_json
from neurozoo.datasets.termination import SafePoint, raise_if_terminated
from neurozoo.benchmarks.named_models import resolve_model_and_weights
from neurozoo.retina.cli import add_heldout_history_argument, add_objective_argument, add_stimulus_class_argument


#: the options of an image model (ConvRNN, timm:) that a retina model does not take: ``zoo score`` refuses them
IMAGE_MODEL_ONLY = {"--layers": "layers", "--max-features": "max_features", "--batch-size": "batch_size",
                    "--no-cache": "no_cache", "--width": "width", "--set": "overrides"}
IMAGE_MODEL_DEFAULTS = {"max_features": 1000, "batch_size": 32}
#: the options of imagenet.val (your own folder) that no other benchmark takes
IMAGENET_ONLY = {"--max-images": "max_images", "--image-size": "image_size", "--workers": "workers"}
#: what --data a benchmark on your own data (registered with own_data=True) is given
OWN_DATA = {"imagenet.val": "DIR (DIR/<wnid>/*.JPEG, an ImageNet root with val/, or flat <wnid>_<label>.JPEG files)",
            "retina_h5.heldout": "FILE.h5 (a deep-retina HDF5 recording: train/ and test/ with the test repeats)"}


def add_commands(sub) -> None:
    parser = sub.add_parser("score", help="score a model on a neural benchmark and store the result",
                            description="Score MODEL (a ConvRNN registry name, or timm:<name>; for a retina "
                                        "benchmark a retina model name, fitted to the embedded recording or to "
                                        "--data's file, or read from the fit cache) on BENCHMARK (see `zoo score "
                                        "--list`); the score is written to the results store and plotted next to "
                                        "the results.")
    parser.add_argument("model", nargs="?", help="ConvRNN model name (convrnn.list_models()) or timm:<name>; for a "
                                                 "retina benchmark a retina model name (retina.list_models())")
    parser.add_argument("benchmark", nargs="?", help="benchmark name (benchmarks.list_benchmarks())")
    parser.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    parser.add_argument("--records", action="store_true",
                        help="list the records of the results store (--db), oldest first (by the time scored, then "
                             "the id), one a line: the id that zoo reproduce takes, when it was scored (UTC, to the "
                             "second), model, benchmark and value (MODEL and BENCHMARK, "
                             "given, keep the records of those recorded names), and exit")
    parser.add_argument("--checkpoint", type=Path, help="weights: a `zoo train` checkpoint (the model built as it "
                        "was trained: its --width, --set and classes, unless given) or a state dict; for a CORnet also "
                        "a file released by dicarlolab/CORnet (e.g. cornet_s-1d3f7974.pth), converted; for a retina "
                        "model zoo fit's model.pt or checkpoint.pt (the same model)")
    parser.add_argument("--layers", help="comma-separated layers to score (default: the region's layer map)")
    add_db_argument(parser, note=" the score is written to (and --records lists)")
    parser.add_argument("--out", type=Path,
                        help="folder for plots and the JSON summary (default: $NEUROZOO_HOME/results)")
    parser.add_argument("--max-features", type=at_least(1),
                        help="units per layer after the random projection "
                             f"(default {IMAGE_MODEL_DEFAULTS['max_features']})")
    parser.add_argument("--batch-size", type=at_least(1),
                        help=f"images per forward pass (default {IMAGE_MODEL_DEFAULTS['batch_size']})")
    add_device_argument(parser, "MODEL (its features; a retina benchmark's fit of it)")
    parser.add_argument("--seed", type=at_least(0), default=0, help="the fit's seed (retina benchmarks), or that of an "
                        "untrained model's weights (default 0)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
    parser.add_argument("--data", type=Path, help="your own data, for the benchmarks that score on it (required "
                        "there): " + "; ".join(f"{name}: {what}" for name, what in OWN_DATA.items()))
    parser.add_argument("--cross-stimulus", action="store_true",
                        help="retina_embedded.*-heldout or retina_h5.heldout with --checkpoint: score weights fitted "
                             "on the other stimulus class (natural scenes on white-noise repeats, or the reverse), "
                             "which is refused without it; the record is marked (settings.cross_stimulus, the model "
                             "named MODEL@W.pt (cross-stimulus: fitted on CLASS))")
    add_heldout_history_argument(parser, "retina_embedded.*-heldout or retina_h5.heldout: ",
                                 note="The record keeps it (settings.heldout_history) and names an observed score's "
                                      "model MODEL (observed spike history)")
    add_objective_argument(parser, "a retina benchmark's fit of MODEL",
                           note=", fitted into a fit cache folder of its own. The record keeps it (settings.objective, "
                                "settings.rerun.objective, which zoo reproduce fits again) and names its model MODEL "
                                "(deep-retina objective); refused for a model without deep-retina's penalty groups "
                                "and with --checkpoint")
    add_stimulus_class_argument(parser, "retina_h5.heldout: ",
                                note="; the record keeps the class (settings.stimulus_class, stimulus_class_from; "
                                     "settings.rerun.stimulus_class as given)")
    parser.add_argument("--cells", metavar="SPEC",
                        help="retina_h5.heldout: the cells of --data's file to fit MODEL to and score, as zoo fit "
                             f"--cells takes them: comma-separated {CELLS_SPEC}. Default: "
                             "every cell. The record keeps them (settings.cells, the indices; settings.rerun.cells, as "
                             "given), which zoo reproduce fits again. With --checkpoint: weights of every cell of the "
                             "file score their outputs of those cells (a cell silent through train/ left out, say); "
                             "weights of a zoo fit --cells fit, scored on the cells their summary.json records, must "
                             "be given those cells")
    imagenet = parser.add_argument_group("imagenet.val (top-1 / top-5 on your own ImageNet-layout folder)")
    imagenet.add_argument("--max-images", type=at_least(1), help="score this many of its images, drawn with --seed "
                          "(default: all)")
    imagenet.add_argument("--image-size", type=at_least(1), help="center-crop size of zoo train's evaluation transform "
                          "(default: a zoo train checkpoint's --image-size, else 224)")
    imagenet.add_argument("--workers", type=at_least(0), help="image-loading processes (default: min(4, CPUs - 1); "
                          "the result does not depend on it)")
    add_override_arguments(parser)  # e.g. --width 0.125, the ConvRNNs of zoo run's default zoo
    # each scoring option's flag and default: --list and --records refuse one given beside them (they ignored it)
    scoring = [(action.option_strings[-1], action.dest, action.default) for action in parser._actions
               if action.option_strings and action.dest not in ("help", "list", "records", "db")]
    parser.set_defaults(handler=run_score, scoring_options=scoring)


def run_score(args) -> int:
    from neurozoo import benchmarks
    from neurozoo.datasets.errors import UserFacingError

    check_listing_options(args)
    if args.list:
        for entry in benchmarks.BENCHMARKS.entries():
            print(f"{entry.name:40s} {entry.description}")
        return 0
    if args.records:
        return list_records(args)
    if not args.model or not args.benchmark:
        raise UserFacingError("usage: zoo score MODEL BENCHMARK (see `zoo score --list`)")
    check_own_data_options(args)
    if getattr(args, "stimulus_class", None) is not None:
        from neurozoo.datasets.retina_stimulus_class import checked_stimulus_class

        if args.benchmark != _file_heldout():
            raise UserFacingError(f"--stimulus-class applies to {_file_heldout()} (the stimulus class of --data's "
                                  f"file), not to {args.benchmark}")
        checked_stimulus_class(args.stimulus_class)
    check_cells_option(args)
    if args.checkpoint is not None:  # before anything is made: the record's sha256 of it was its first read
        from neurozoo.datasets.torch_files import check_torch_path

        check_torch_path(args.checkpoint)
    if getattr(args, "cross_stimulus", False) and not (_is_heldout(args.benchmark) and args.checkpoint):
        raise UserFacingError(f"--cross-stimulus applies to --checkpoint weights scored on a held-out retina benchmark "
                              f"({', '.join([*_embedded_heldout(), _file_heldout()])}), not to {args.benchmark}"
                              + ("" if args.checkpoint else " without --checkpoint (a model named alone is fitted on "
                                 "the benchmark's own stimulus)"))
    if _observed_history(args) and not _is_heldout(args.benchmark):
        raise UserFacingError(f"--heldout-history applies to the held-out retina benchmarks "
                              f"({', '.join([*_embedded_heldout(), _file_heldout()])}), not to {args.benchmark}")
    if _other_objective(args) and not _is_retina(args.benchmark):
        raise UserFacingError(f"--objective applies to the retina benchmarks (what their fit of a retina model "
                              f"minimises), not to {args.benchmark}")
    if _other_objective(args) and args.checkpoint is not None:
        raise UserFacingError(f"--objective {args.objective}: --checkpoint's weights are fitted already (their "
                              "summary.json records the objective they were fitted by); it applies to a model the "
                              "benchmark fits: leave one of the two out")
    if _is_retina(args.benchmark):
        # options that do not apply were silently ignored: `zoo score ln retina_embedded.* --layers conv1` scored
        given = [flag for flag, value in IMAGE_MODEL_ONLY.items() if getattr(args, value) not in (None, [], False)]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UserFacingError(f"{args.model}: {', '.join(given)} {verb} to image models (ConvRNNs, timm:) only, "
                                  f"not to a retina model")
    from neurozoo.benchmarks.paths import output_folder, results_dir
    from neurozoo.benchmarks.records import ResultsStore, missing_sqlite_file

    # a damaged (not a SQLite file, cut short) or unreachable --db is refused before the score is computed: it was
    # found only as the record was stored, and a retina fit or phenomena probe was lost (zoo run and zoo dynamics
    # open their store first too). A SQLite file not there yet is created as the record is stored, as before: a
    # command refused meanwhile (an unknown model) leaves no empty store behind; but one in a folder not there either
    # could never be made, and is refused now (ResultsStore names the folder; nothing is created)
    missing = missing_sqlite_file(args.db)
    creatable = missing and (args.db is None or Path(missing).absolute().parent.is_dir())
    store = None if creatable else ResultsStore(args.db)
    # an unusable --out fails before any scoring; one made here for input that is then refused is removed again
    with output_folder(args.out or results_dir()) as out:
        args.out = out
        return _score(args, store)


def check_cells_option(args) -> None:
    """``--cells`` applies to ``retina_h5.heldout``, the benchmark that fits MODEL to ``--data``'s file; refused
    elsewhere, naming the benchmark, as the other benchmark-specific options are. The SPEC itself is checked against
    the file's cells (:func:`retina.cli.selected_file_cells`, zoo fit --cells's parser) before any fit, and beside
    ``--checkpoint`` against the cells its weights score on
    (:func:`benchmarks.retina_file_cells.checkpoint_file_cells`)."""
    from neurozoo.datasets.errors import UserFacingError

    if getattr(args, "cells", None) is None:
        return
    if args.benchmark != _file_heldout():
        raise UserFacingError(f"--cells applies to {_file_heldout()} (the cells of --data's file it fits MODEL to and "
                              f"scores), not to {args.benchmark}")


def check_listing_options(args) -> None:
    """--list and --records list and exit: an option for scoring given beside them (``zoo score --records --objective
    deep-retina``), the other listing, or MODEL / BENCHMARK beside --list, was silently ignored; now refused."""
    from neurozoo.datasets.errors import UserFacingError

    if not (args.list or args.records):
        return
    flag = "--list" if args.list else "--records"
    given = [option for option, dest, default in getattr(args, "scoring_options", [])
             if getattr(args, dest, default) != default]
    if args.list and args.records:
        given.insert(0, "--records")
    if args.list and (args.model or args.benchmark):
        given.insert(0, "MODEL" + (" and BENCHMARK" if args.benchmark else ""))
    if args.list and args.db:
        given.append("--db")
    if given:
        what = ("the registered benchmarks" if args.list else
                "the results store's records (MODEL, BENCHMARK and --db choose which)")
        raise UserFacingError(f"{flag} lists {what} and scores nothing: {', '.join(given)} "
                              f"{'does' if len(given) == 1 else 'do'} not apply to it")


def list_records(args) -> int:
    """``zoo score --records [MODEL [BENCHMARK]]``: the records of the results store (``--db``; those of ``zoo
    score``, and of ``zoo run``, ``zoo work``, ``zoo dynamics`` and ``zoo compare``, which store there too), oldest
    first (:meth:`ResultsStore.records`: by the time scored, then the id; it filters by the recorded model and benchmark
    names), one a line with the id that ``zoo reproduce`` takes and the time to the second
    (:func:`benchmarks.records.utc_text`); then their count, the store and the ``zoo reproduce`` command for it."""
    import shlex

    from neurozoo.benchmarks.records import (ResultsStore, default_url, missing_sqlite_file, missing_store_problem,
                                             utc_text)
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.text_table import counted, format_table

    # opening a store creates it: a --db path misspelt here was left behind as a new, empty store, listed as 0 records
    if args.db and missing_sqlite_file(args.db):
        raise UserFacingError(missing_store_problem(args.db))
    if not args.db and missing_sqlite_file(None):
        print(f"0 records: no results store at {default_url()} yet (zoo score, zoo run and zoo work create it)")
        return 0
    store = ResultsStore(args.db)
    records = store.records(args.model, args.benchmark)
    rows = [(record.id, utc_text(record.created_at), record.model, record.benchmark,
             "-" if record.value is None else f"{record.value:.4f}") for record in records]
    # zoo run and zoo work store each image benchmark's score twice, on the hidden split's two halves: two rows of one
    # model and benchmark with other values, which read as a duplicate or a changed score without this column
    halves = [(record.settings or {}).get("split") for record in records]
    if any(halves):
        rows = [(*row, f"{half} half" if half else "all") for row, half in zip(rows, halves)]
    if rows:
        print(format_table(("record", "scored (UTC)", "model", "benchmark", "value")
                           + (("stimuli",) if any(halves) else ()), rows))
    command = "zoo reproduce RECORD" + ("" if store.url == default_url() else f" --db {shlex.quote(store.shown_url)}")
    print(f"{counted(len(records), 'record')} in {store.shown_url}; {command} scores one again")
    if not records and args.model:  # `--records glm` matched none of 'glm (deep-retina objective)' without a word
        named = sorted({record.model for record in store.records(None, args.benchmark)
                        if record.model.startswith(args.model) and record.model != args.model})
        if named:
            print(f"MODEL {args.model!r} keeps the records of that recorded name only; the store also has "
                  f"{', '.join(repr(name) for name in named)}: give one of them, quoted")
    return 0


def check_own_data_options(args) -> None:
    """A benchmark on your own data needs --data, and no other takes it; imagenet.val takes no layer options, and the
    other benchmarks take none of its options."""
    from neurozoo.datasets.errors import UserFacingError

    given = [flag for flag, value in IMAGENET_ONLY.items() if getattr(args, value, None) is not None]
    if _is_own_data(args.benchmark) and args.data is None:
        what = OWN_DATA.get(args.benchmark, "PATH")
        raise UserFacingError(f"{args.benchmark} scores on your own data: give it with --data {what}")
    if args.data is not None and not _is_own_data(args.benchmark):
        raise UserFacingError(f"--data applies to the benchmarks on your own data ({', '.join(OWN_DATA)}) only, not "
                              f"to {args.benchmark}")
    if not _is_imagenet(args.benchmark):
        if given:
            raise UserFacingError(f"{', '.join(given)} apply to imagenet.val only, not to {args.benchmark}")
        return
    wrong = [flag for flag in ("--layers", "--max-features", "--no-cache")
             if getattr(args, IMAGE_MODEL_ONLY[flag]) not in (None, False)]
    if wrong:
        raise UserFacingError(f"{', '.join(wrong)} apply to the neural benchmarks, not to imagenet.val (it scores "
                              "the model's answer, not a layer's features)")


def _score(args, store) -> int:
    """Score, store, then write the summary and plots, under SIGTERM deferred (a scheduler's preemption): it stops
    at the scoring's safe points (between extraction batches, imagenet.val's evaluation batches, a retina benchmark's
    probe stimuli and steps: ``safe_point``; at once in the imports, the model's building and the reading before the
    first, ``stopping_at_once``) or before the record is stored, with nothing stored, or, once the record
    is stored, saying so. Either way exit 130 with one line (:func:`_stopped`), and the same command run again goes
    on: it reads the activation cache (and resumes an extraction after the batches it finished, which the cache
    kept), and reuses an identical stored record rather than storing a duplicate."""

    from neurozoo.benchmarks.paths import remade
    from neurozoo.datasets.termination import sigterm_deferred, stopping_at_once

    state = {"extracted": None, "analysing": False, "cache": CacheCount(), "record": None, "written": False}

    def safe_point(done: Optional[int] = None, total: Optional[int] = None) -> None:  # datasets.termination.SafePoint
        if done is None:  # a retina benchmark's analysis, past its fit
            state["analysing"] = True
        else:  # how far the activation extraction (imagenet.val's evaluation) is
            state["extracted"] = (done, total)
        raise_if_terminated()

    try:
        with sigterm_deferred():
            # before its first safe point a benchmark writes nothing: a retina benchmark imports torch and scipy and
            # reads its recording (seconds) up to the fit folder's lock or its first probe stimulus; a neural one (or
            # imagenet.val) imports torch, builds the model, loads its images and reads the activation cache up to
            # the safe point before its first batch (the first write: that batch's, kept in the cache). A stop until
            # then is taken at once; it waited for the first batch to be extracted and kept (a minute for a
            # full-width ConvRNN on a CPU). A plugin's benchmark, which takes no safe point, ends the stretch before
            # its score begins (score_from_args)
            with stopping_at_once():
                score, model_name = score_from_args(args, safe_point, state["cache"])
            state["extracted"], state["analysing"] = None, False
            raise_if_terminated()
            remade(args.out)  # before the record is stored: a folder that cannot be made again stores nothing
            with sigterm_deferred(sigint_note=""):  # a Ctrl-C as the record is stored acts once it is
                store, record_id, reused = _store(args, store, score, model_name)
            state["record"] = (store, record_id)
            raise_if_terminated()
            _report(args, score, model_name, store, record_id, reused)
            state["written"] = True
    except KeyboardInterrupt as error:
        raise KeyboardInterrupt(_stopped(args, error, state)) from None
    return 0


def _stopped(args, error: KeyboardInterrupt, state: dict) -> str:
    """What ``zoo score`` stopped by a signal (or Ctrl-C) kept, and how to go on: after ``zoo <command>:
    interrupted;``."""
    signal = str(error) or "Ctrl-C"
    if state["record"] is not None:
        store, record_id = state["record"]
        made = "summary" if _is_retina(args.benchmark) or _is_imagenet(args.benchmark) else "summary and plots"
        kept = (f"its {made} written" if state["written"] else
                f"its {made} not all written: rerun the same command to write them (it reuses the record, "
                "storing no duplicate)")
        return f"{signal} after record {record_id} was stored in {store.shown_url}; {kept}"
    extracted = state["extracted"]
    if state["analysing"]:
        cached = f" (stopped part-way through {args.benchmark}'s analysis, which the rerun runs again)"
    elif _is_retina(args.benchmark) or _is_imagenet(args.benchmark):  # no activation cache
        cached = "" if extracted is None or not extracted[0] else (
            f" (stopped after {extracted[0]} of {extracted[1]} batches, which the rerun evaluates again)")
    elif args.no_cache:
        cached = " and nothing cached (--no-cache)"
    else:
        cached = _cache_kept(state["cache"].held, reported=state["cache"].counting)
    return f"{signal} before the score was stored: nothing stored{cached}; rerun the same command to score it"


class CacheCount:
    """What the activation cache holds of ``zoo score``'s extraction, as ``extract(cache_progress=...)`` counts it:
    ``held`` ``(batches, total, saved layers, layers)`` or None before the cache was read; ``counting``: the
    benchmark extracts through it (this package's neural benchmarks; a plugin's may not)."""

    def __init__(self):
        self.held: Optional[tuple] = None
        self.counting = False

    def __call__(self, batches: int, total: int, saved: int, layers: int) -> None:
        self.held = (batches, total, saved, layers)


def _cache_kept(cached, reported: bool) -> str:
    """What the activation cache keeps of a stopped ``zoo score``'s extraction, counted by the extraction itself
    (``extract(cache_progress=...)``: ``(batches, total, saved layers, layers)``, or None before it read the cache),
    for the stop line. It said "the activations extracted are in the activation cache" of a Ctrl-C in the first batch,
    when nothing was; ``reported``: False for a benchmark that does not count (a plugin's), of which it says
    nothing."""
    if cached is None:
        return "; no activations extracted yet" if reported else ""
    batches, total, saved, layers = cached
    if saved == layers:
        return "; the activations extracted are in the activation cache, which the rerun reads"
    if batches == total:  # stopped as the layers' final entries were saved: each batch of the others kept
        return (f"; all {total} batches extracted, kept in the activation cache for the next run, which extracts none "
                "again")
    if batches:  # extract() keeps each batch in the cache's partial entries as it is finished
        return (f"; {batches} of {total} batches extracted, kept in the activation cache for the next run, which "
                f"extracts the other {total - batches}")
    return f"; stopped in the first of {total} batches, before any was kept: the rerun extracts all {total}"


def _report(args, score, model_name: str, store, record_id: int, reused: bool) -> None:
    """The summary and plots of a stored score, and what it printed."""
    summary = _write_summary(args, score, model_name, store, record_id)
    if reused:
        print(f"record {record_id}: stored before with identical settings, data, code and score; reused, not stored "
              "again")
    if _is_imagenet(args.benchmark):
        settings = score.provenance["settings"]
        steps = ", ".join(f"{row['step']}: {row['top1']:.2f}" for row in score.per_bin)
        print(f"{model_name} on imagenet.val: top-1 {score.value:.2f} % (+- {score.error:.2f}), top-5 "
              f"{settings['top5']:.2f} % on {settings['n_images']} images of {settings['data']}")
        if steps:
            print(f"top-1 per readout step: {steps}")
        print(saved_where(store, record_id, summary, score))
        return
    if _is_retina(args.benchmark):
        # a phenomenon's raw value is not a correlation (the share of cells with the truth's sign, or passing the call)
        details = [f"+- {score.error:.3f}"] if score.error is not None else []
        details += [f"raw {score.raw:.4f}"] if score.raw is not None else []
        details += [f"ceiling {score.ceiling:.3f}"] if score.ceiling is not None else []
        print(f"{model_name} on {args.benchmark}: {score.value:.4f}" + (f" ({', '.join(details)})" if details else ""))
        cross = score.provenance["settings"].get("cross_stimulus")
        if cross:
            print(f"cross-stimulus score (--cross-stimulus): fitted on {cross['fitted_on']}, scored on the held-out "
                  f"repeats of {cross['scored_on']}; not comparable with {args.benchmark}'s scores of models fitted "
                  f"on {cross['scored_on']}")
        print(saved_where(store, record_id, summary, score))
        return
    from neurozoo.benchmarks.plots import plot_layer_profile, plot_time_course  # matplotlib: not for a retina score

    stem = summary.with_suffix("")
    plot = plot_time_course(score, Path(f"{stem}.png"), title=f"{model_name} on {args.benchmark}")
    selection = score.provenance["settings"].get("layer_selection") or {}
    if selection:
        plot_layer_profile(selection, Path(f"{stem}_layers.png"),
                           title=f"{model_name}: layer selection", ylabel="r²/ceiling (held-out selection stimuli)",
                           chosen=score.provenance["settings"].get("layer"))
    print(f"{model_name} on {args.benchmark}: {score}")
    print(f"layer {score.provenance['settings'].get('layer')}; plot {plot}")
    print(saved_where(store, record_id, summary, score))


def saved_where(store, record_id: int, summary: Path, score) -> str:
    """Where ``zoo score`` stored its score, and the provenance it recorded beside the settings (what a rerun must
    match: the code, torch and the device)."""
    provenance = score.provenance
    environment = provenance["settings"]["environment"]
    return (f"record {record_id} in {store.shown_url}; summary {summary}\n"
            f"recorded with code {provenance.get('code_version')}, torch {environment['torch']} "
            f"({environment['torch_threads']} threads), device {provenance.get('device')}")


def rerun_arguments(args) -> dict:
    """What ``zoo score`` was given, as its record keeps it: ``zoo reproduce`` rebuilds the command from this
    alone (the checkpoint by path and sha256, so that changed weights are noticed)."""
    from neurozoo.datasets.provenance import sha256_file

    checkpoint = ({"path": str(Path(args.checkpoint).resolve()), "sha256": sha256_file(args.checkpoint)}
                  if args.checkpoint else None)
    return {"command": "zoo score", "model": args.model, "benchmark": args.benchmark, "seed": args.seed,
            "width": args.width, "set": list(args.overrides or []), "layers": args.layers,
            "max_features": args.max_features, "batch_size": args.batch_size, "checkpoint": checkpoint,
            **({"data": str(Path(args.data).resolve())} if _is_own_data(args.benchmark) else {}),
            **({"cross_stimulus": True} if getattr(args, "cross_stimulus", False) else {}),
            **({"stimulus_class": args.stimulus_class} if getattr(args, "stimulus_class", None) else {}),
            **({"heldout_history": args.heldout_history} if _observed_history(args) else {}),
            **({"cells": args.cells} if getattr(args, "cells", None) is not None else {}),
            **_other_objective(args),
            **({"max_images": args.max_images, "image_size": args.image_size} if _is_imagenet(args.benchmark) else {})}


def score_from_args(args, safe_point: Optional[SafePoint] = None, cache_count: Optional["CacheCount"] = None):
    """``(Score, model name)`` of ``zoo score``'s arguments; the score's settings keep them under ``rerun``.
    ``safe_point``: ``zoo score``'s (:data:`datasets.termination.SafePoint`), handed to the benchmarks of this
    package that take it (a plugin's may not), never recorded; ``cache_count``: counts what the activation cache
    keeps of a neural benchmark's extraction, for the stop line."""
    from neurozoo import benchmarks
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.provenance import module_sha256

    benchmark = benchmarks.load(args.benchmark)
    if _is_imagenet(args.benchmark):
        return _score_imagenet(args, benchmark, safe_point)
    if not _is_retina(args.benchmark):
        for key, value in IMAGE_MODEL_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    rerun = rerun_arguments(args)
    if _is_retina(args.benchmark):
        from neurozoo.retina.cli import silent_cells_left_out_by

        # a cell of --data's file silent through train/ is left out by zoo score's --cells (beside --checkpoint too:
        # weights of every cell scored on the others)
        with silent_cells_left_out_by("zoo score"):
            score, model_name = _score_retina(args, benchmark, safe_point)
        score.provenance.setdefault("settings", {})["rerun"] = rerun
        return score, model_name
    from neurozoo.benchmarks.neural import DataOnlyBenchmark, NeuralBenchmark

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
    hooks = _safe_point_or_setup_ends(benchmark, NeuralBenchmark, safe_point)
    if cache_count is not None and isinstance(benchmark, NeuralBenchmark):  # a plugin's score may not take it
        cache_count.counting = True
        hooks["cache_progress"] = cache_count
    score = benchmark.score(model, layers=layers, max_features=args.max_features, batch_size=args.batch_size,
                            cache=not args.no_cache, **hooks)
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


def _safe_point_for(benchmark, takes_it, safe_point: Optional[SafePoint]) -> dict:
    """``{"safe_point": safe_point}`` for a benchmark of the classes ``takes_it`` (this package's, whose score takes
    it), else ``{}`` (a plugin's score may not)."""
    return {"safe_point": safe_point} if safe_point is not None and isinstance(benchmark, takes_it) else {}


def _safe_point_or_setup_ends(benchmark, takes_it, safe_point: Optional[SafePoint]) -> dict:
    """:func:`_safe_point_for`; for a plugin's score, which takes no safe point and may write at once, the stretch of
    ``zoo score``'s setup where a stop is taken at once (``stopping_at_once``) ends here, a stop pending raised."""
    hooks = _safe_point_for(benchmark, takes_it, safe_point)
    if safe_point is not None and not hooks:
        raise_if_terminated()
    return hooks


def _score_imagenet(args, benchmark, safe_point: Optional[SafePoint] = None):
    """imagenet.val: the model (with a ``zoo train`` checkpoint's classes and image size) on ``--data``."""
    import warnings

    from neurozoo.benchmarks.imagenet import ImageNetBenchmark
    from neurozoo.convrnn.spec import check_image_size
    from neurozoo.convrnn.training.cpus import cpu_path_problems, default_workers
    from neurozoo.datasets.provenance import module_sha256
    from neurozoo.datasets.torch_files import read_torch_file

    args.batch_size = args.batch_size or IMAGE_MODEL_DEFAULTS["batch_size"]
    saved = read_torch_file(args.checkpoint) if args.checkpoint else None
    trained = saved if isinstance(saved, dict) and isinstance(saved.get("config"), dict) else {}  # zoo train's
    if args.image_size is None:
        args.image_size = int(trained["config"].get("image_size", 224)) if trained else 224
    rerun = rerun_arguments(args)
    overrides = overrides_from_args(args)
    model, weights = resolve_model_and_weights(args.model, args.checkpoint, args.device, seed=args.seed,
                                               overrides=overrides)
    check_image_size(model, args.image_size)  # PyTorch's "Output size is too small" traceback from the first batch
    workers = default_workers() if getattr(args, "workers", None) is None else args.workers
    for problem in cpu_path_problems(next((p.device for p in model.parameters()), "cpu"), workers=workers):
        warnings.warn(problem)
    if trained and trained["config"].get("amp"):  # its val_top1 was computed under autocast
        warnings.warn(f"{args.checkpoint} was validated under {trained['config'].get('amp_dtype', 'bfloat16')} "
                      "autocast (zoo train --amp); zoo score evaluates in float32, so its top-1 can differ from the "
                      "val_top1 the run logged by the few images whose answer the precision changes")
    stoppable = _safe_point_or_setup_ends(benchmark, ImageNetBenchmark, safe_point)
    score = benchmark.score(model, args.data, image_size=args.image_size, batch_size=args.batch_size,
                            max_images=args.max_images, seed=args.seed, workers=workers,
                            classes=trained.get("classes"), progress=getattr(args, "progress", True),
                            **stoppable)
    if weights is not None:
        score.provenance["settings"].update(weights=weights["label"], weights_conversion=weights)
    score.provenance["settings"].update(checkpoint=str(args.checkpoint) if args.checkpoint else None,
                                        overrides=overrides, model_seed=args.seed, model_sha256=module_sha256(model),
                                        rerun=rerun)
    return score, args.model + (f"@{args.checkpoint.name}" if args.checkpoint else "")


def _is_imagenet(benchmark: str) -> bool:
    from neurozoo import benchmarks

    return benchmarks.BENCHMARKS.get(benchmark).tags.get("family") == "imagenet"


def _is_own_data(benchmark: str) -> bool:
    from neurozoo import benchmarks

    return bool(benchmarks.BENCHMARKS.get(benchmark).tags.get("own_data"))


def _is_retina(benchmark: str) -> bool:
    from neurozoo import benchmarks

    return benchmarks.BENCHMARKS.get(benchmark).tags.get("family") == "retina"


def _embedded_heldout() -> list:
    """The held-out benchmarks of the embedded retina: a model's responses to held-out repeats of one stimulus."""
    from neurozoo.benchmarks.retina import HELDOUT_KINDS

    return [f"retina_embedded.{kind}-heldout" for kind in HELDOUT_KINDS]


def _is_embedded_heldout(benchmark: str) -> bool:
    return benchmark in _embedded_heldout()


def _file_heldout() -> str:
    """The held-out benchmark on your own deep-retina file, ``retina_h5.heldout``."""
    from neurozoo.benchmarks.retina import RetinaFileHeldoutBenchmark

    return RetinaFileHeldoutBenchmark.identifier


def _is_heldout(benchmark: str) -> bool:
    """A held-out retina benchmark: of the embedded retina, or of your own file."""
    return _is_embedded_heldout(benchmark) or benchmark == _file_heldout()


def _store(args, store, score, model_name: str):
    """The score's record in the results store (``store``: opened before the score was computed, :func:`run_score`;
    None: a SQLite file not there then, created now): ``(store, record id, reused)``, reused where the store holds an
    identical one (:meth:`ResultsStore.identical`: the same command run again after a stop while writing plots)."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.datasets.provenance import environment

    # in the settings of the summary as of the record (ScoreRecord.to_row adds it to the record only where it is absent)
    score.provenance.setdefault("settings", {}).setdefault("environment", environment())
    store = store or ResultsStore(args.db)
    record = score.to_record(model_name, args.benchmark)
    stored = store.identical(record)
    if stored is not None:
        return store, stored.id, True
    return store, store.add(record), False


def _write_summary(args, score, model_name: str, store, record_id: int) -> Path:
    """The JSON summary of a stored score beside the plots (in ``args.out``, which :func:`run_score` made)."""
    summary = args.out / (summary_stem(store, record_id, args.benchmark, args.model) + ".json")
    write_json(summary, {"model": model_name, "benchmark": args.benchmark, "value": score.value, "error": score.error,
                         "ceiling": score.ceiling, "raw": score.raw, "per_bin": score.per_bin,
                         "provenance": score.provenance, "record": {"id": record_id, "store": store.shown_url}})
    return summary


def summary_stem(store, record_id: int, benchmark: str, model: str) -> str:
    """The name of a score's summary and plots: ``<record id>_<benchmark>_<model>``, after a digest of the store's
    URL for a store other than the default one. Record ids count per store, so two stores' records of one number
    wrote one file, the second over the first's, in the --out they share (by default $NEUROZOO_HOME/results)."""
    import hashlib

    from neurozoo.benchmarks.records import default_url

    stem = f"{record_id:06d}_{benchmark}_{model}".replace("/", "_").replace(":", "_")
    if store.url == default_url():
        return stem
    return f"{hashlib.sha256(store.shown_url.encode()).hexdigest()[:8]}-{stem}"


def _score_retina(args, benchmark, safe_point: Optional[SafePoint] = None):
    """A retina benchmark: it fits the named retina model on its recording (the embedded one, or ``--data``'s file;
    or reads the fit cache that ``zoo run`` shares), or scores the weights of ``--checkpoint``: ``(Score, model
    name)``. ``safe_point`` reaches the phenomenon benchmarks' analyses (the fit stops at its epochs' ends)."""
    from neurozoo import convrnn, retina
    from neurozoo.benchmarks.osr import OSRBenchmark, OSRMechanismBenchmark
    from neurozoo.benchmarks.phenomena import PhenomenonBenchmark
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.registry import lookup

    if args.model in convrnn.list_models() or args.model.startswith("timm:"):  # known, but not here: not "unknown"
        raise UserFacingError(f"{args.model} is an image model: it scores on the image benchmarks (ventral_embedded.*, "
                              f"cowley2023.V4, imagenet.val; see `zoo score --list`), not on {args.benchmark}, which "
                              f"scores retina models ({', '.join(sorted(retina.list_models()))})")
    # the registries' one refusal (zoo run --models's too): the benchmark's kind, close names, every retina model
    lookup(args.model, [retina.MODELS], "retina model", lambda name: f"; {args.benchmark} scores retina models")
    history = {"heldout_history": args.heldout_history} if _observed_history(args) else {}
    if history:  # before any fit or checkpoint read
        from neurozoo.retina.cli import checked_heldout_history

        checked_heldout_history(args, n_cells=1)  # the model's class says whether it has spike history
    objective = _other_objective(args)
    if objective:  # before any recording is read or fit begun: the fit's own check of its settings, as zoo fit's
        from neurozoo.retina.fit import FitConfig, checked_config, create_model

        checked_config(create_model(args.model, n_cells=1), FitConfig(**objective), args.model)  # has the penalty?
    model, data, fitted_to, cross_stimulus = args.model, getattr(args, "data", None), None, None
    given_class, scored_class, trained, why = getattr(args, "stimulus_class", None), None, None, ""
    cells = {}  # retina_h5.heldout's cells (--cells; --checkpoint's, its summary.json's), the file's indices
    if args.checkpoint is not None:
        from neurozoo.datasets.synthetic_retina import OMS_KINDS, circuit_of

        kind = getattr(benchmark, "kind", "whitenoise")
        circuit_cells = len(circuit_of(kind).cell_types)  # the object-motion circuit's 6 for retina_embedded.oms
    given = None
    if data is not None and getattr(args, "cells", None) is not None:  # zoo fit --cells's parser
        from neurozoo.retina.cli import selected_file_cells

        given = selected_file_cells(Path(data), args.cells)
        cells = {"cells": given}
    if data is not None and args.checkpoint is not None:
        from neurozoo.benchmarks.retina_file_cells import checkpoint_file_cells

        # the recording the weights were fitted to (their summary.json, read once, as zoo probe reads it), kept in the
        # record beside the one scored, and the cells they score on: a zoo fit --cells fit's, --cells agreeing
        fitted_to, n_cells, selection = checkpoint_file_cells(args, data, circuit_cells, given)
        cells = {"cells": selection} if selection is not None else {}
    if data is not None:  # retina_h5.heldout: the file's stimulus class (of the cells fitted), before any fit or score
        from neurozoo.datasets.retina_stimulus_class import experiment_stimulus_class

        scored_class = experiment_stimulus_class(data, given=given_class, **cells)
    if args.checkpoint is not None:
        from neurozoo.retina.embedded_fit import (checkpoint_cells, fitted_recording, load_checkpoint,
                                                  refuse_other_circuits_cells)

        # the recording to fit on for this benchmark's circuit (the phenomena and the OSR: either default one)
        remedy = f"embedded:{kind}" if kind in OMS_KINDS else "embedded:whitenoise or embedded:naturalscene"
        if data is None:
            n_cells = checkpoint_cells(args.model, args.checkpoint) or circuit_cells
            # the recording the weights were fitted to (their summary.json, read once), kept in the record; weights of
            # another circuit's cells are refused before they are loaded, a fit to a lab's recording below, for what
            # it was fitted to
            fitted_to = fitted_recording(Path(args.checkpoint).resolve(), n_cells, circuit_cells)  # as rerun reads it
            refuse_other_circuits_cells(args.checkpoint, args.model, n_cells, fitted_to, kind, args.benchmark,
                                        ending=" and score those weights")
        model = load_checkpoint(retina.create_model(args.model, n_cells=n_cells), args.checkpoint)
        if data is None and not fitted_to["circuit_cells"]:
            # the embedded benchmarks compare each cell with the circuit's (the phenomena with its ground truth, the
            # held-out ones with its recorded responses): another recording's cells have no counterpart there
            raise UserFacingError(f"{args.checkpoint}: {fitted_to['reason']}; {args.benchmark} scores on "
                                  f"embedded:{kind} and compares each cell with the embedded circuit's of the same "
                                  f"number, so it needs weights fitted to an embedded recording (zoo fit MODEL --data "
                                  f"{remedy}); weights fitted to your own recording "
                                  "score on it with retina_h5.heldout --data FILE (zoo probe osr runs on them too)")
        if data is None:
            cross_stimulus = _cross_stimulus(args, benchmark, fitted_to)
        else:
            from neurozoo.benchmarks.retina_file_stimulus import file_cross_stimulus

            cross_stimulus, trained, why = file_cross_stimulus(args, fitted_to, scored_class)
    if data is not None:
        from neurozoo.benchmarks.retina_file_stimulus import say_unknown

        say_unknown(args, scored_class, trained, why)
    progress = getattr(args, "progress", True)
    stoppable = _safe_point_for(benchmark, (OSRBenchmark, OSRMechanismBenchmark, PhenomenonBenchmark), safe_point)
    score = (benchmark.score(model, data, seed=args.seed, device=args.device, progress=progress,
                             **({"stimulus_class": given_class} if given_class else {}), **history, **objective,
                             **cells)
             if data is not None
             else benchmark.score(model, seed=args.seed, device=args.device, **stoppable, **history, **objective))
    if trained is not None:  # --checkpoint weights on your own file: the class they were fitted on, beside the file's
        score.provenance.setdefault("settings", {}).update(training_stimulus=trained.name,
                                                           training_stimulus_from=trained.known_from)
    if cross_stimulus is not None:
        score.provenance.setdefault("settings", {})["cross_stimulus"] = cross_stimulus
    if fitted_to is not None:
        score.provenance.setdefault("settings", {})["fitted_to"] = fitted_to  # settings: the store keeps them
        if _is_embedded_heldout(args.benchmark) and _training_stimulus(fitted_to)[0] is None:
            _unknown_training_stimulus(args, benchmark, fitted_to, score)
        scored = score.provenance.get("data_sha256")
        if (fitted_to["rule"] == "summary.json" and scored and fitted_to["data_sha256"] not in (None, scored)
                and cross_stimulus is None):  # that one is said with the score
            import sys

            fitted = fitted_to.get("data_absolute") or fitted_to["data"]
            print(f"note: {args.checkpoint} was fitted to {fitted} (sha256 {fitted_to['data_sha256'][:12]}; "
                  f"{fitted_to['summary']}), not to the recording scored ({score.provenance.get('data_path')}, sha256 "
                  f"{str(scored)[:12]}): scored as given, meaningful only for the same cells (another stimulus, say); "
                  "the record keeps both (settings.fitted_to)", file=sys.stderr)
    name = args.model + (f"@{args.checkpoint.name}" if args.checkpoint else "")
    if cross_stimulus is not None:  # its own row wherever scores are listed, never one with the benchmark's own
        name += f" (cross-stimulus: fitted on {cross_stimulus['fitted_on'].split(':')[-1]})"
    # likewise: a fit or score of some of the file's cells (--cells; a zoo fit --cells fit's weights on the whole
    # file), by another objective, or with the observed spike history, never a row with the benchmark's own score
    qualifiers = [*([f"cells {','.join(map(str, cells['cells']))}"] if cells else []),
                  *([f"{args.objective} objective"] if objective else []),
                  *(["observed spike history"] if history else [])]
    if qualifiers:
        name += f" ({', '.join(qualifiers)})"
    return score, name


def _observed_history(args) -> bool:
    """Whether ``zoo score`` was asked for the held-out score with the observed spike history (``--heldout-history
    observed``; a namespace without it, the default, simulated)."""
    return getattr(args, "heldout_history", "simulated") != "simulated"


def _other_objective(args) -> dict:
    """``{"objective": ...}``, the fit setting of ``zoo score --objective``, where it names another objective than the
    default (``"zoo"``, :class:`retina.fit.FitConfig`'s: ``--objective zoo`` is the default's score, record and fit);
    else ``{}`` (a namespace without it too)."""
    objective = getattr(args, "objective", None)
    return {"objective": objective} if objective not in (None, "zoo") else {}


def _unknown_training_stimulus(args, benchmark, fitted_to: dict, score) -> None:
    """Weights without a readable ``summary.json`` record no training stimulus, so :func:`_cross_stimulus` has nothing
    to check them against and they were scored on a held-out benchmark without a word. They still score (older
    checkpoints have none), but it is said on stderr and kept in the record (``settings.training_stimulus``)."""
    import sys

    scored = f"embedded:{benchmark.kind}"
    score.provenance["settings"]["training_stimulus"] = "unknown"
    print(f"note: {args.checkpoint}: the training stimulus of these weights is unknown ({fitted_to['reason']}); the "
          f"held-out score of {args.benchmark} assumes they were fitted on {scored}, the stimulus it scores (a "
          "held-out score is of the stimulus a model was fitted to); the record says training_stimulus: unknown. "
          "zoo fit --out writes the summary.json that records it", file=sys.stderr)


def _training_stimulus(fitted_to: dict):
    """``(kind, where it is recorded)`` of the embedded stimulus that weights scored on a held-out benchmark (their
    cells the circuit's) were fitted on: the embedded recording their ``summary.json`` names, or, without one (a fit
    cache folder's weights), the class their fit recorded in its checkpoint
    (:func:`retina.embedded_fit.checkpoint_stimulus_class`); ``(None, None)`` where nothing records it."""
    if fitted_to.get("embedded"):
        return fitted_to["embedded"], fitted_to["summary"]
    if fitted_to.get("rule") != "summary.json" and fitted_to.get("stimulus_class"):
        return fitted_to["stimulus_class"], fitted_to["stimulus_class_from"]
    return None, None


def _cross_stimulus(args, benchmark, fitted_to: dict):
    """For ``--checkpoint`` weights on an embedded held-out benchmark: ``{"fitted_on", "scored_on"}`` where the
    ``summary.json`` beside them names the other embedded recording (``fitted_to["embedded"]``) and ``--cross-stimulus``
    asks for it, else None. A held-out score is of the stimulus the model was fitted to (held-out repeats of that
    stimulus class: McIntosh et al. 2016; Maheswaranathan et al. 2023): weights fitted on the other one are refused,
    naming both, unless asked for (or ``args.before_the_rule``: ``zoo reproduce`` of a record scored before the rule,
    ``retina_file_stimulus.what_dates_it``); ``--cross-stimulus`` with nothing to allow is refused too."""
    from neurozoo.datasets.errors import UserFacingError

    wanted = getattr(args, "cross_stimulus", False)
    scored = benchmark.kind if _is_embedded_heldout(args.benchmark) else None
    fitted, known_from = _training_stimulus(fitted_to)
    if scored is not None and fitted is not None and fitted != scored:
        if not wanted and not getattr(args, "before_the_rule", False):
            raise UserFacingError(
                f"{args.checkpoint}: fitted on embedded:{fitted} ({known_from}), but {args.benchmark} scores "
                f"held-out repeats of embedded:{scored}: a held-out score is of the stimulus the model was fitted to "
                f"(McIntosh et al. 2016), so these weights score on retina_embedded.{fitted}-heldout; --cross-stimulus "
                f"scores them on embedded:{scored} all the same, the record marked as a cross-stimulus score")
        return {"fitted_on": f"embedded:{fitted}", "scored_on": f"embedded:{scored}"}
    if wanted:
        why = (f"{known_from} names embedded:{fitted}, the stimulus {args.benchmark} scores on" if fitted
               else f"{fitted_to['reason']}: no training stimulus is recorded to compare")
        raise UserFacingError(f"--cross-stimulus: nothing to allow ({args.checkpoint}: {why}); leave it out")
    return None
