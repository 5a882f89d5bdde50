"""zoo list / zoo info, parameter counts and FLOPs against hand counts."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from neurozoo import convrnn
from neurozoo.convrnn.profile import flops, parameter_counts
from neurozoo.leaderboard.cli import main

REPO = Path(__file__).resolve().parents[1]

ONE_LAYER = {
    "name": "one_layer",
    "norm": "none",
    "activation": "relu",
    "n_steps": 4,
    "image_steps": 4,
    "num_classes": 10,
    "layers": [{"name": "conv1", "channels": 8, "kernel": 3, "stride": 1}],
}


def test_flops_and_parameters_match_hand_counts():
    model = convrnn.create_model(ONE_LAYER)
    counts = parameter_counts(model)
    assert counts["conv1.stage"] == 3 * 8 * 9 + 8
    assert counts["readout"] == 8 * 10 + 10
    assert counts["total"] == counts["conv1.stage"] + counts["readout"]
    cost = flops(model, image_size=16)
    conv = 2 * 3 * 8 * 9 * 16 * 16  # multiply-adds of a 3x3 conv, 3 -> 8 channels, 16x16 output
    readout = 2 * 8 * 10
    assert cost["per_step"] == conv + readout
    # 4 steps: every node runs at every step from t = 0 (utils/main.py unroll, lines 190-258; zero standins at t = 0,
    # lines 237-243)
    assert cost["total"] == 4 * conv + 4 * readout


def test_flops_are_counted_in_one_forward_with_the_numbers_of_one_forward_per_measurement():
    """zoo info ran three unrolled forwards (first_readout_step + 1 steps, first_readout_step steps, then all
    steps) to give two numbers; the running count at each step's end gives both from one."""
    model = convrnn.create_model("rgc_shallow", width_multiplier=0.125)
    calls = []
    model.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    cost = flops(model, image_size=32)
    assert len(calls) == 1
    # rgc_shallow at this width, 32 px: the numbers the three forwards gave (per step: steps 0-5 minus steps 0-4)
    assert (cost["per_step"], cost["total"], cost["n_steps"]) == (3989504.0, 63832064.0, 16)


@pytest.mark.parametrize("name", ["ugrnn_intermediate", "rgc_intermediate_tmaxconf", "rgc_shallow"])
def test_the_parts_sum_to_the_total_and_feedback_is_what_it_costs(name):
    """The post blocks (ugrnn_intermediate's conv + residual after each cell, 16% of its parameters at this width)
    were in no part, and an RGC's feedback convolution was counted in its cell with "feedback->conv5: 0", so the
    parts did not sum to the total and removing the feedback cost more than the table said."""
    model = convrnn.create_model(name, width_multiplier=0.125)
    counts = parameter_counts(model)
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]
    without = convrnn.create_model(name, width_multiplier=0.125, feedback=[])
    feedback = sum(v for k, v in counts.items() if k.startswith("feedback->"))
    assert counts["total"] - parameter_counts(without)["total"] == feedback
    assert (feedback > 0) == bool(model.spec.feedback)


def test_zoo_list_prints_models_benchmarks_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("rgc_intermediate", "rgc_shallow", "feedforward_intermediate", "rgc_resnet18"):
        assert re.search(rf"^model\s+convrnn\s+{name}\b", out, re.M)
    assert re.search(r"^benchmark\s", out, re.M) and re.search(r"^dataset\s", out, re.M)
    # the retina recordings `zoo fit --data` takes
    for kind in ("whitenoise", "naturalscene", "oms-whitenoise", "oms-naturalscene", "oms-gratingmotion"):
        assert re.search(rf"^dataset\s+retina\s+embedded:{kind}\s", out, re.M)


def test_zoo_info_reports_parameters_and_flops(tmp_path, capsys):
    spec = convrnn.get_spec("rgc_shallow").with_overrides(width_multiplier=0.125, num_classes=4)
    path = tmp_path / "small.yaml"
    spec.to_yaml(str(path))
    assert main(["info", str(path), "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    model = convrnn.create_model(str(path))
    total = sum(p.numel() for p in model.parameters())
    assert f"parameters: {total:,}" in out
    assert re.search(r"FLOPs per step at 32px \(all layers active\): \d+\.\d+ G", out)
    assert "image-dependent logits from step 5" in out


def test_zoo_info_reports_a_cornets_areas(capsys):
    assert main(["info", "cornet_s", "--set", "width_multiplier=0.125", "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("overrides: width_multiplier=0.125 (the line above describes")  # 53.4 M above
    model = convrnn.create_model("cornet_s", width_multiplier=0.125)
    assert f"parameters: {sum(p.numel() for p in model.parameters()):,}" in out
    assert re.search(r"^V4\s+32\s+4x4\s+4\s+\d+$", out, re.M)  # 256 x 0.125 channels at 1/16 size, 4 steps
    assert re.search(r"FLOPs per forward at 64px: \d+\.\d+ G", out)


def test_zoo_reports_bad_input_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "neurozoo.leaderboard.cli", "info", "rgc_intermediat"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown ConvRNN model 'rgc_intermediat'" in result.stderr and "Traceback" not in result.stderr


def test_ci_runs_exactly_the_readme_commands():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Set up.*?```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    ci = (REPO / ".ci" / "run").read_text()
    assert len(block) == 2
    for command in block:
        assert command in ci, f"README command {command!r} is not what .ci/run runs"


def _heavy_modules_imported_by(code: str, modules=("torch", "numpy", "optuna")) -> list:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    code += f"; import sys; print(sorted(m for m in {tuple(modules)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return eval(out.strip().splitlines()[-1])


def test_zoo_parser_imports_no_torch_and_package_names_still_resolve():
    """``zoo --help`` and each command's parsing stay light (3.8 s -> 0.23 s measured): the packages whose ``cli``
    the parser imports load their torch-backed public names on first use (``neurozoo.datasets.lazy_exports``)."""
    assert _heavy_modules_imported_by("from neurozoo.leaderboard.cli import build_parser; build_parser()") == []
    from neurozoo.benchmarks import dynamics
    from neurozoo.convrnn import search, training
    from neurozoo.convrnn.network import ConvRNN

    assert convrnn.ConvRNN is ConvRNN and "ConvRNN" in dir(convrnn) and "ConvRNN" in convrnn.__all__
    assert callable(search.open_study) and callable(training.train) and callable(dynamics.find_fixed_points)
    with pytest.raises(AttributeError, match="'neurozoo.convrnn' has no attribute 'no_such_name'"):
        convrnn.no_such_name


def test_a_score_imports_no_metrics_or_plotting_library():
    """A retina score, a stored record and `zoo reproduce` build a ``Score``: its module imported the cortex metrics
    (sklearn, scipy.stats: ~1 s of a cached 6.5 s `zoo score ln retina_embedded.*`) for an annotation."""
    assert _heavy_modules_imported_by("import neurozoo.benchmarks.score", ("sklearn", "scipy.stats", "matplotlib")) == []


def test_zoo_list_imports_no_torch_and_the_lazily_registered_models_still_build():
    """`zoo list` imported torch (2.8 s of its 3 s) to register the ConvRNN and retina models: their factories now
    import their modules on first use (``lazy_factory``). It imported pandas and SQLAlchemy too (~0.5 s), through
    ``benchmarks.score`` -> ``benchmarks.records``; `--kind cells` imports torch (documented) but not those."""
    listing = "from neurozoo.leaderboard.cli import main; main(['list'{}])"
    assert _heavy_modules_imported_by(listing.format(""), ("torch", "pandas", "sqlalchemy")) == []
    assert _heavy_modules_imported_by(listing.format(", '--kind', 'cells'"), ("pandas", "sqlalchemy")) == []
    from neurozoo import retina
    from neurozoo.datasets.errors import SpecError
    from neurozoo.retina.models.bncnn import RetinaCNN

    names = retina.MODELS.names()
    assert {"bncnn", "bncnn2016", "ln", "glm", "twosubunit"} <= set(names)
    assert {"cornet_z", "cornet_s", "cornet_rt", "rgc_intermediate"} <= set(convrnn.MODELS.names())
    model = retina.create_model("bncnn2016", n_cells=3)
    assert isinstance(model, RetinaCNN) and model.n_cells == 3
    assert convrnn.MODELS.get("cornet_z").tags == {"family": "cornet", "default_zoo": False}
    with pytest.raises(SpecError, match=r"^ConvRNN model 'cornet_z': unknown override \['n_steps'\]; it takes: "):
        convrnn.create_model("cornet_z", n_steps=10)


def test_zoo_info_and_zoo_train_take_width_as_zoo_score_does(capsys):
    """--width W was zoo score's, zoo dynamics' and zoo compare's (zoo search's too) but not zoo info's or zoo
    train's, which refused it as an unrecognized argument."""
    from neurozoo.convrnn.training.cli import add_arguments, config_from_args
    from neurozoo.datasets.cli_args import ZooArgumentParser

    assert main(["info", "rgc_shallow", "--width", "0.125", "--image-size", "32"]) == 0
    total = sum(p.numel() for p in convrnn.create_model("rgc_shallow", width_multiplier=0.125).parameters())
    assert f"parameters: {total:,}" in capsys.readouterr().out
    parser = ZooArgumentParser(prog="zoo train")
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["rgc_shallow", "--data", "d", "--width", "0.5", "--set", "n_steps=8"]))
    assert config.overrides == {"n_steps": 8, "width_multiplier": 0.5}


def test_zoo_info_says_its_overrides_beside_the_description_of_the_model_as_registered(capsys):
    """The first line is the spec's description, of the model as registered ("15,445,800 parameters", "median
    Reciprocal Gated Cells"); with --width or --set the counts below are of another model, and zoo info printed
    nothing to say so (rgc_intermediate --width 0.5: "15,445,800 parameters" above "parameters: 4,056,456")."""
    assert main(["info", "rgc_shallow", "--width", "0.125", "--set", "n_steps=20", "--image-size", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model rgc_shallow: {convrnn.get_spec('rgc_shallow').description}"
    assert lines[1] == ("overrides: n_steps=20, width_multiplier=0.125 (the line above describes the model as its spec "
                        "gives it; the steps, layers and counts below are of the model built with them)")
    assert main(["info", "rgc_shallow", "--image-size", "32"]) == 0
    assert not any(line.startswith("overrides:") for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("command", ["train", "info", "score", "dynamics"])
def test_the_help_of_set_says_what_it_takes_without_naming_a_command(command, capsys):
    """`zoo train --help` described --set as "as zoo train --set": the command itself, saying nothing. The help is
    shared by every command that builds a ConvRNN; what it names is what --set takes (create_model's keywords)."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--set KEY=VALUE ConvRNN override: a keyword of convrnn.create_model, as n_steps, image_steps or "
            "num_classes, with a YAML value, e.g. --set n_steps=10 (repeat for several)") in text
    assert "as zoo train --set" not in text
    model = convrnn.create_model("rgc_shallow", width_multiplier=0.125, n_steps=9, image_steps=3, num_classes=7)
    assert (model.n_steps, model.image_steps, model.spec.num_classes) == (9, 3, 7)
