"""Numeric options of the ``zoo`` commands are checked while the command line is parsed (datasets.cli_args):
one usage line and one error line naming the option, exit status 2, before any data are read or models built."""
import argparse
import re

import pytest

from neurozoo.datasets.cli_args import at_least, non_negative, number_in, positive
from neurozoo.leaderboard.cli import main


def test_at_least_and_positive_parse_and_refuse():
    assert at_least(1)("3") == 3 and at_least(0)("0") == 0 and positive("0.5") == 0.5
    assert non_negative("0") == 0.0 and non_negative("1e-8") == 1e-8
    assert number_in(0, 1)("0") == 0.0 and number_in(0, 1)("1") == 1.0 and number_in(0, 1, open_low=True)("1") == 1.0
    for parse, text, message in ((at_least(1), "0", "expected an integer >= 1, got 0"),
                                 (at_least(80), "79", "expected an integer >= 80, got 79"),
                                 (at_least(1), "2.5", "expected an integer >= 1, got '2.5'"),
                                 (positive, "0", "expected a positive number, got 0"),
                                 (positive, "-1", "expected a positive number, got -1"),
                                 (positive, "inf", "expected a positive number, got inf"),
                                 (positive, "nan", "expected a positive number, got nan"),
                                 (positive, "x", "expected a positive number, got 'x'"),
                                 (non_negative, "-1e-9", "expected a finite number >= 0, got -1e-9"),
                                 (non_negative, "nan", "expected a finite number >= 0, got nan"),
                                 (non_negative, "inf", "expected a finite number >= 0, got inf"),
                                 (number_in(0, 1), "1.5", "expected a number from 0 to 1, got 1.5"),
                                 (number_in(0, 1), "nan", "expected a number from 0 to 1, got nan"),
                                 (number_in(0, 1, open_low=True, open_high=True), "0",
                                  "expected a number > 0 and < 1, got 0"),
                                 (number_in(0, 1, open_low=True, open_high=True), "1",
                                  "expected a number > 0 and < 1, got 1"),
                                 (number_in(0, 1, open_high=True), "x", "expected a number >= 0 and < 1, got 'x'")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}$".replace(".", r"\.")):
            parse(text)


BAD_NUMBERS = [  # one option of each command; each had been a traceback, a silent default, or a failed job
    (["info", "rgc_shallow", "--image-size", "0"], "--image-size: expected an integer >= 1, got 0"),
    (["score", "rgc_shallow", "ventral_embedded.V4-temporal", "--max-features", "0"],
     "--max-features: expected an integer >= 1, got 0"),
    (["score", "ln", "retina_embedded.osr", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["run", "--fit-epochs", "0"], "--fit-epochs: expected an integer >= 1, got 0"),  # 0 had meant 40
    (["work", "--memory-gb", "-1"], "--memory-gb: expected a positive number, got -1"),  # every job's sandbox limit
    (["dynamics", "linear", "--points", "0"], "--points: expected an integer >= 1, got 0"),
    (["dynamics", "linear", "--slow-tol", "-1"], "--slow-tol: expected a positive number, got -1"),
    (["compare", "rgc_shallow:conv5", "neural:V4", "--max-stimuli", "-5"],
     "--max-stimuli: expected an integer >= 1, got -5"),
    (["search", "--data", "d", "--trials", "1", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    # zoo train took a negative seed (every other --seed refuses it) and a negative --max-steps-per-epoch (refused
    # only by TrainConfig, after the model was looked up; zoo search's was refused here)
    (["train", "rgc_shallow", "--data", "d", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["train", "rgc_shallow", "--data", "d", "--max-steps-per-epoch", "-1"],
     "--max-steps-per-epoch: expected an integer >= 0, got -1"),
    # tracebacks deep in the command: numpy's SeedSequence, optuna's heartbeat storage, np.random.default_rng
    (["search", "--data", "d", "--trials", "1", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["search", "--data", "d", "--trials", "1", "--heartbeat", "-1"], "--heartbeat: expected an integer >= 0, got -1"),
    (["search", "--data", "d", "--trials", "1", "--grace", "0"], "--grace: expected an integer >= 1, got 0"),
    (["dynamics", "linear", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["compare", "flipflop-rnn", "flipflop-gru", "--seed", "-2"], "--seed: expected an integer >= 0, got -2"),
    (["search", "--data", "d", "--trials", "1", "--export", "-1"], "--export: expected an integer >= 0, got -1"),
    (["probe", "adaptation", "ln", "--fit-embedded", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["probe", "adaptation", "ln", "--fit-embedded", "--block", "40"], "--block: expected an integer from 139 to 5000, got 40"),
    # a few zeros too many: numpy's MemoryError traceback (559 GiB) after the model was loaded
    (["probe", "adaptation", "ln", "--fit-embedded", "--block", "10000000"],
     "--block: expected an integer from 139 to 5000, got 10000000"),
    (["probe", "oms", "ln", "--fit-embedded", "--frames", "100000000"],
     "--frames: expected an integer from 200 to 20000, got 100000000"),
    (["probe", "gain-control", "ln", "--fit-embedded", "--frames", "1000000"],
     "--frames: expected an integer from 3000 to 50000, got 1000000"),
    (["probe", "oms", "ln", "--fit-embedded", "--radius", "0"], "--radius: expected a positive number, got 0"),
    # a negative or NaN tolerance lets no record pass, whatever the rerun gives
    (["reproduce", "1", "--tolerance", "-1"], "--tolerance: expected a finite number >= 0, got -1"),
    (["reproduce", "1", "--tolerance", "nan"], "--tolerance: expected a finite number >= 0, got nan"),
    # zoo train's settings, refused by TrainConfig.validate only after the model was looked up (and the spec built)
    (["train", "rgc_shallow", "--data", "d", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["train", "rgc_shallow", "--data", "d", "--batch-size", "0"], "--batch-size: expected an integer >= 1, got 0"),
    (["train", "rgc_shallow", "--data", "d", "--image-size", "-8"], "--image-size: expected an integer >= 1, got -8"),
    (["train", "rgc_shallow", "--data", "d", "--lr", "0"], "--lr: expected a positive number, got 0"),
    (["train", "rgc_shallow", "--data", "d", "--lr", "nan"], "--lr: expected a positive number, got nan"),
    (["train", "rgc_shallow", "--data", "d", "--momentum", "-0.9"], "--momentum: expected a finite number >= 0, got -0.9"),
    (["train", "rgc_shallow", "--data", "d", "--weight-decay", "-0.0001"],
     "--weight-decay: expected a finite number >= 0, got -0.0001"),
    (["train", "rgc_shallow", "--data", "d", "--warmup-epochs", "-1"],
     "--warmup-epochs: expected a finite number >= 0, got -1"),
    (["train", "rgc_shallow", "--data", "d", "--step-epochs", "0"], "--step-epochs: expected an integer >= 1, got 0"),
    (["train", "rgc_shallow", "--data", "d", "--gamma", "0"], "--gamma: expected a positive number, got 0"),
    (["train", "rgc_shallow", "--data", "d", "--min-lr", "-0.5"], "--min-lr: expected a finite number >= 0, got -0.5"),
    (["train", "rgc_shallow", "--data", "d", "--label-smoothing", "1.5"],
     "--label-smoothing: expected a number from 0 to 1, got 1.5"),
    (["train", "rgc_shallow", "--data", "d", "--label-smoothing", "-0.1"],
     "--label-smoothing: expected a number from 0 to 1, got -0.1"),
    (["train", "rgc_shallow", "--data", "d", "--grad-clip", "0"], "--grad-clip: expected a positive number, got 0"),
    (["train", "rgc_shallow", "--data", "d", "--workers", "-1"], "--workers: expected an integer >= 0, got -1"),
    (["train", "rgc_shallow", "--data", "d", "--checkpoint-every", "-1"],
     "--checkpoint-every: expected an integer >= 0, got -1"),
    (["train", "rgc_shallow", "--data", "d", "--log-every", "-50"], "--log-every: expected an integer >= 0, got -50"),
    # zoo fit's settings, refused by retina.fit's config check only after the recording was read and the model built
    (["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--lr", "-0.01"], "--lr: expected a positive number, got -0.01"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--batch-size", "0"], "--batch-size: expected an integer >= 1, got 0"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--l2", "-1"], "--l2: expected a finite number >= 0, got -1"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--filter-l2", "inf"],
     "--filter-l2: expected a finite number >= 0, got inf"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--l1", "nan"], "--l1: expected a finite number >= 0, got nan"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--val-fraction", "0"],
     "--val-fraction: expected a number > 0 and < 1, got 0"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--val-fraction", "1"],
     "--val-fraction: expected a number > 0 and < 1, got 1"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--patience", "0"], "--patience: expected an integer >= 1, got 0"),
    (["fit", "ln", "--data", "embedded:whitenoise", "--min-delta", "-0.01"],
     "--min-delta: expected a finite number >= 0, got -0.01"),
    # the leaderboard's: a port refused in zoo serve's handler; a niceness the kernel clamps to 19 without a word; a
    # submission id (the store's ids start at 1) looked up in the store first
    (["serve", "--port", "0"], "--port: expected an integer from 1 to 65535, got 0"),
    (["serve", "--port", "99999"], "--port: expected an integer from 1 to 65535, got 99999"),  # had been checked by
    # zoo serve's handler, after uvicorn was imported (tests/test_leaderboard_cli.py's BAD_INPUT had this row)
    (["work", "--nice", "40"], "--nice: expected an integer from -20 to 19, got 40"),
    (["work", "--retry-submission", "0"], "--retry-submission: expected an integer >= 1, got 0"),
    (["submission", "-3"], "ID: expected an integer >= 1, got -3"),
    # zoo probe osr's periods, refused by retina.phenomena.osr.check_protocol in the command
    (["probe", "osr", "ln", "--fit-embedded", "--periods", "2", "6", "8"],
     "--periods: expected an integer from 3 to 100, got 2"),
    (["probe", "osr", "ln", "--fit-embedded", "--periods", "6", "8", "1000"],
     "--periods: expected an integer from 3 to 100, got 1000"),
]


@pytest.mark.parametrize("argv, message", BAD_NUMBERS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_NUMBERS])
def test_a_number_out_of_range_is_refused_while_parsing(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    error = err.strip().splitlines()[-1]
    assert err.startswith("usage: zoo ") and "Traceback" not in err
    assert error.startswith("zoo ") and error.endswith(f": error: argument {message}"), error
    assert not any(tmp_path.iterdir())  # nothing read, fitted or written


def test_the_defaults_and_valid_numbers_parse_as_before():
    """Declaring the ranges changed no default and no valid value, nor its type: a fit setting is part of the fit
    cache's key and of what ``zoo reproduce`` compares (``--lr 0.01`` a float, ``--epochs 5`` an int, as with
    ``type=float`` and ``type=int``); the edges the commands take (0 meaning none, a smoothing of 1) still parse."""
    from neurozoo.leaderboard.cli import build_parser

    parser = build_parser()
    train = vars(parser.parse_args(["train", "m", "--data", "d"]))
    assert {k: train[k] for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup_epochs",
                                  "step_epochs", "gamma", "min_lr", "label_smoothing", "grad_clip", "image_size",
                                  "checkpoint_every", "log_every")} == {
        "epochs": 90, "batch_size": 256, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4, "warmup_epochs": 0.0,
        "step_epochs": 30, "gamma": 0.1, "min_lr": 0.0, "label_smoothing": 0.0, "grad_clip": None, "image_size": 224,
        "checkpoint_every": 0, "log_every": 50}
    edges = vars(parser.parse_args(["train", "m", "--data", "d", "--workers", "0", "--checkpoint-every", "0",
                                    "--log-every", "0", "--label-smoothing", "1", "--momentum", "0", "--lr", "0.05",
                                    "--warmup-epochs", "0.5", "--grad-clip", "1"]))
    assert [(edges[k], type(edges[k])) for k in ("workers", "checkpoint_every", "log_every", "label_smoothing",
                                                  "momentum", "lr", "warmup_epochs", "grad_clip")] == [
        (0, int), (0, int), (0, int), (1.0, float), (0.0, float), (0.05, float), (0.5, float), (1.0, float)]
    from neurozoo.retina.cli import FIT_OPTIONS

    fit = parser.parse_args(["fit", "ln", "--data", "embedded:whitenoise", "--lr", "0.01", "--epochs", "5", "--l2",
                             "0", "--val-fraction", "0.2", "--patience", "3", "--min-delta", "0", "--filter-l2", "0.01"])
    settings = {k: getattr(fit, k) for k in FIT_OPTIONS if getattr(fit, k) is not None}
    assert [(k, v, type(v)) for k, v in settings.items()] == [
        ("epochs", 5, int), ("lr", 0.01, float), ("l2", 0.0, float), ("filter_l2", 0.01, float),
        ("val_fraction", 0.2, float), ("patience", 3, int), ("min_delta", 0.0, float)]
    assert all(getattr(parser.parse_args(["fit", "ln", "--data", "d"]), k) is None
               for k in FIT_OPTIONS if k != "output_calibration")  # None: FitConfig's or the model's default
    assert parser.parse_args(["serve"]).port == 8000 and parser.parse_args(["serve", "--port", "65535"]).port == 65535
    work = parser.parse_args(["work", "--nice", "0", "--retry-submission", "3", "--retry-submission", "4"])
    assert (parser.parse_args(["work"]).nice, work.nice, work.retry_submission) == (10, 0, [3, 4])
    assert parser.parse_args(["submission", "7"]).id == 7
    osr = ["probe", "osr", "ln", "--fit-embedded"]
    assert parser.parse_args(osr).periods == [6, 8, 10, 12, 14, 16]
    assert parser.parse_args([*osr, "--periods", "3", "50", "100"]).periods == [3, 50, 100]


def test_zoo_probe_osr_periods_bound_is_the_analysis_bound():
    """--periods' range is declared in retina.probe_cli (importing retina.phenomena.osr would load numpy at every zoo
    start); it must stay the analysis' own: longer than the 2-frame flash, at most MAX_PERIOD frames."""
    from neurozoo.retina.phenomena.osr import MAX_PERIOD
    from neurozoo.retina.probe_cli import MAX_OSR_PERIOD

    assert MAX_OSR_PERIOD == MAX_PERIOD


def _parsers(parser):
    """``parser`` and every subcommand's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def test_every_commands_help_shows_each_options_default():
    """No command's --help said its defaults (zoo train --epochs: 90, --lr: 0.1 were in the code only)."""
    from neurozoo.convrnn.training.cli import add_arguments
    from neurozoo.datasets.cli_args import ZooArgumentParser
    from neurozoo.leaderboard.cli import build_parser

    torchrun = ZooArgumentParser(prog="python -m neurozoo.convrnn.training")
    add_arguments(torchrun)
    checked = 0
    for parser in [*_parsers(build_parser()), torchrun]:
        for action in parser._actions:
            shown = not (action.default in (None, argparse.SUPPRESS) or action.default == []
                         or (action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)))
            if not shown:
                continue
            formatter = parser._get_formatter()
            formatter.add_argument(action)
            text = formatter.format_help()
            assert "default" in text, (parser.prog, action.option_strings or action.dest)
            if isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
                # a number is stated as that number, "(default: 0.01)" or in words ("default 0.25: ..."); a help
                # naming an earlier default ("0.1, the default before ...") hid the current one from the formatter
                number = {str(action.default), format(action.default, "g")}
                assert any(n in text for n in number), (parser.prog, action.option_strings, text)
            checked += 1
    assert checked > 100
    usage = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--seed SEED           random seed of the initial weights" in usage  # it had no help: "(default: 0)"
    assert "each image's augmentation (default: 0)" in " ".join(usage.split())
    assert "(default: True)" in usage  # --deterministic
    assert "--epochs EPOCHS       epochs to train (default: 90)" in usage
    assert "random crops and flips\n" in usage  # --no-augment: a switch, its default not shown as "True"


def test_every_option_without_a_default_value_says_what_it_is():
    """An option whose default is None shows no ``(default: ...)``, so its help must say what it does and what leaving
    it out means: ``zoo submit``, ``zoo work``, ``zoo submission`` and ``zoo token``'s ``--db`` had no help at all,
    where every other command's names the results store it defaults to."""
    from neurozoo.leaderboard.cli import build_parser

    silent = [(parser.prog, action.option_strings[0])
              for parser in _parsers(build_parser()) for action in parser._actions
              if action.option_strings and action.nargs != 0 and action.default is None and not action.help]
    assert silent == []
    databases = [action.help for parser in _parsers(build_parser()) for action in parser._actions
                 if "--db" in action.option_strings]
    assert len(databases) >= 13 and all("$NEUROZOO_HOME/results.sqlite" in text for text in databases), databases
    epochs = {parser.prog: action.help for parser in _parsers(build_parser()) for action in parser._actions
              if "--epochs" in action.option_strings and action.default is None}  # zoo probe's: the fit's 40 unsaid
    assert len(epochs) == 6 and all(re.search(r"default:? 40", text) for text in epochs.values()), epochs


def test_every_option_of_every_command_says_what_it_does():
    """Each argument of each command (and of torchrun's ``python -m neurozoo.convrnn.training``) has a help text of
    its own. A switch has no default to show, so its help is all a user gets: ``zoo run --no-progress``, ``zoo work
    --no-progress``, ``zoo probe ... --quiet``, ``zoo search --quiet`` and ``--channels-last`` showed their name
    alone; an option with a default showed only that: ``--seed`` (zoo train, fit, probe, dynamics, compare),
    ``--device`` (zoo search, fit, probe, score, run, work, reproduce), ``zoo search --batch-size`` and
    ``--optimizer`` said ``(default: 0)``, ``(default: cpu)``, ``(default: 64)``, ``(default: sgd)``."""
    from neurozoo.convrnn.training.cli import add_arguments
    from neurozoo.datasets.cli_args import ZooArgumentParser
    from neurozoo.leaderboard.cli import build_parser

    torchrun = ZooArgumentParser(prog="python -m neurozoo.convrnn.training")
    add_arguments(torchrun)
    arguments = [(parser.prog, action) for parser in [*_parsers(build_parser()), torchrun] for action in parser._actions
                 if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))]
    silent = [(prog, action.option_strings[0] if action.option_strings else action.dest)
              for prog, action in arguments if not (action.help or "").strip()]
    assert silent == []
    assert len(arguments) > 300 and sum(action.nargs == 0 for _, action in arguments) > 40  # switches among them


def test_the_options_of_many_commands_are_declared_once():
    """``--db`` and ``--device`` come from one declaration each (datasets.cli_args.add_db_argument,
    add_device_argument): ``--db`` said "SQLAlchemy URL (default: sqlite:///$NEUROZOO_HOME/results.sqlite)" in eight
    commands and "... of the results store (default: $NEUROZOO_HOME/results.sqlite)" in four, and zoo search named
    the same store ``--results``, which still works, as the same option."""
    from neurozoo.datasets.cli_args import RESULTS_STORE
    from neurozoo.leaderboard.cli import build_parser

    parser = build_parser()
    stores = {p.prog: a for p in _parsers(parser) for a in p._actions if "--db" in a.option_strings}
    assert {"zoo search", "zoo score", "zoo run", "zoo work", "zoo reproduce", "zoo token list"} <= set(stores)
    shared = f"(default: {RESULTS_STORE}, the same store for every zoo command)"
    for prog, action in stores.items():
        assert action.help.startswith("SQLAlchemy URL of the results store") and shared in action.help, prog
        assert (action.dest, action.metavar, action.default) == ("db", "URL", None), prog
    assert stores["zoo search"].option_strings == ["--db", "--results"] and "--storage" in stores["zoo search"].help
    assert not [p.prog for p in _parsers(parser) for a in p._actions if "--results" in a.option_strings
                and a is not stores["zoo search"]]
    for flag in ("--db", "--results"):
        args = parser.parse_args(["search", "--data", "d", "--trials", "1", flag, "sqlite:////tmp/x.sqlite"])
        assert args.db == "sqlite:////tmp/x.sqlite" and not hasattr(args, "results")
    devices = {p.prog: a for p in _parsers(parser) for a in p._actions if "--device" in a.option_strings}
    assert len(devices) == 12, sorted(devices)
    for prog, action in devices.items():  # every command takes auto (leaderboard.cli resolves it for each)
        assert action.help.startswith("torch device for ") and ": auto (a GPU where there is one, else the CPU; the " \
            "device it gives is the one recorded), cpu, cuda or cuda:N" in action.help, (prog, action.help)
    assert {prog for prog, action in devices.items() if action.default == "auto"} == {"zoo train", "zoo search"}


def test_the_command_list_names_each_subcommand_of_a_command():
    """``zoo --help`` is where a user looks for what there is: its line for ``zoo probe`` named three of the five
    probes (not gain-control and reduction), and ``zoo token``'s none of create, revoke and list."""
    from neurozoo.leaderboard.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0]
    lines = {choice.dest: choice.help for choice in commands._choices_actions}
    with_subcommands = 0
    for name, parser in commands.choices.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                with_subcommands += 1
                missing = [sub for sub in action.choices if sub not in lines[name]]
                assert missing == [], (name, lines[name])
    assert with_subcommands == 4  # data, probe, token, cache


def test_the_scripts_under_benchmarks_show_their_defaults_too():
    """The README says so of the scripts under ``benchmarks/`` as of ``zoo``: ``leaderboard_report.py`` built a plain
    ``argparse.ArgumentParser``, whose --help showed neither ``--models``' 200 nor ``--repeat``'s 3."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    parsers = {}
    for path in sorted(root.rglob("*.py")):
        if "__main__" not in path.read_text():  # the scripts, not the modules that zoo's own commands build
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name.endswith("ArgumentParser"):
                    parsers.setdefault(name, []).append(path.relative_to(root).as_posix())
    assert "perf/leaderboard_report.py" in parsers.get("ZooArgumentParser", [])
    assert len(parsers["ZooArgumentParser"]) >= 10 and "ArgumentParser" not in parsers, parsers


def test_zoo_fits_data_help_names_every_embedded_recording():
    """`zoo fit --data`'s help lists the embedded recordings by hand: built from datasets.synthetic_retina.KINDS it
    would import the recordings' generator (0.54 s of imports, `python -X importtime`) at every zoo start, --help
    included (0.56-0.68 s in all). The list must equal KINDS, in order, so that a recording added there is added to
    the help too."""
    from neurozoo.datasets.synthetic_retina import KINDS
    from neurozoo.leaderboard.cli import build_parser

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    [data] = [action for action in fit._actions if "--data" in action.option_strings]
    assert re.findall(r"embedded:([\w-]+)", data.help) == list(KINDS)


SHARED = [  # (option, the two commands, what both helps say in the same words)
    ("--hash-images", ("zoo train", "zoo search"), "cover each image's bytes (its sha256), so that an image edited to "
                                                   "the same size changes them: reads ALL images once"),
    ("--amp", ("zoo train", "zoo search"), "mixed precision: training and validation autocast to "),
    ("--channels-last", ("zoo train", "zoo search"), "channels-last memory format for model and images"),
    ("--max-steps-per-epoch", ("zoo train", "zoo search"),
     "at most this many steps per epoch (quick runs; 0 or none given: whole epochs)"),
    ("--heldout-history", ("zoo fit", "zoo score"),
     "the spike history a spike-history model (glm) is scored with on the held-out repeats: simulated (default), its "
     "own sampled spikes, 20 trials averaged; observed, the test split's binned counts"),
    ("--objective", ("zoo fit", "zoo score"), " minimises: zoo (default), the Poisson loss in spikes/s + an L2 penalty "
                                              "on the weights + an L1 penalty on the rates, every model's protocol; "
                                              "deep-retina (glm), deep-retina's scripts/fit_glms.py objective"),
    ("--stimulus-class", ("zoo fit", "zoo score"), "the stimulus class of --data's file, whitenoise or naturalscene, "
                                                   "for a file not named by the deep-retina convention"),
]


@pytest.mark.parametrize("flag, progs, words", SHARED, ids=[flag for flag, _, _ in SHARED])
def test_an_option_two_commands_share_is_declared_once(flag, progs, words):
    """Each was declared twice, its helps drifting apart: zoo search's --amp said "bfloat16 autocast", train's
    "autocast to --amp-dtype"; train's --max-steps-per-epoch took a negative number, search's did not; zoo score's
    --heldout-history left out the 20 trials, its --objective the objective. One declaration now (convrnn.training.cli,
    retina.cli), with what differs per command (what it applies to, where it is kept) as its arguments."""
    from neurozoo.leaderboard.cli import build_parser

    first, second = ([a for p in _parsers(build_parser()) if p.prog == prog for a in p._actions
                      if flag in a.option_strings][0] for prog in progs)
    same = lambda a: (type(a), a.option_strings, a.dest, a.choices, a.default, a.metavar, a.nargs)  # noqa: E731
    assert same(first) == same(second) and words in first.help and words in second.help
    if first.type is not None:
        for text in ("0", "7", "-1"):
            outcomes = []
            for action in (first, second):
                try:
                    outcomes.append(action.type(text))
                except argparse.ArgumentTypeError as error:
                    outcomes.append(str(error))
            assert outcomes[0] == outcomes[1], (text, outcomes)


def test_zoo_search_amp_says_the_dtype_its_trials_autocast_to():
    """zoo search has no --amp-dtype: its trials train with TrainConfig's default, bfloat16, as its help says."""
    from neurozoo.convrnn.search.cli import settings_from_args
    from neurozoo.convrnn.training.engine import TrainConfig
    from neurozoo.leaderboard.cli import build_parser

    parsers = {p.prog: p for p in _parsers(build_parser())}
    flags = {prog: {flag for action in parsers[prog]._actions for flag in action.option_strings}
             for prog in ("zoo train", "zoo search")}
    assert "--amp-dtype" in flags["zoo train"] and "--amp-dtype" not in flags["zoo search"]
    args = parsers["zoo search"].parse_args(["--data", "d", "--trials", "1", "--amp"])
    assert settings_from_args(args).amp and TrainConfig.amp_dtype == "bfloat16"
    assert "autocast to bfloat16" in parsers["zoo search"]._option_string_actions["--amp"].help
    assert "autocast to --amp-dtype" in parsers["zoo train"]._option_string_actions["--amp"].help


def test_the_width_option_says_what_leaving_it_out_builds():
    """``--width`` (zoo train, info, score, dynamics, compare) showed no default: its default is None, so the help
    must say it, and a user could not tell that ``zoo score rgc_intermediate ...`` builds the full-width model where
    ``zoo run`` scores 0.125 (README, "Neural benchmarks" and "The main job")."""
    from neurozoo.leaderboard.cli import build_parser

    widths = {parser.prog: action for parser in _parsers(build_parser()) for action in parser._actions
              if "--width" in action.option_strings}
    assert {"zoo train", "zoo info", "zoo score", "zoo dynamics", "zoo compare"} <= set(widths), sorted(widths)
    for prog, action in widths.items():
        if action.default is None:
            assert "default: the model's own, 1 (full width)" in action.help and "0.125" in action.help, prog
