"""A third party's cells, models and benchmarks, registered as the README's "Extending the suite" says: through an
installed package's entry points, or the registries' decorator. Each must work as a built-in one does, and a
clash or a factory that builds the wrong thing must be one error naming what and where."""
import sys
import warnings
from importlib.metadata import distribution

import pytest
import torch

from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.registry import DuplicateNameError, Entry, Registry, UnknownNameError, _LazyEntryPoint

CELL_MODULE = '''
import torch
from neurozoo.convrnn.cells import RecurrentCell, SameConv2d


class MinGatedCell(RecurrentCell):
    def __init__(self, channels, *, filter_size=3, gate_bias=1.0):
        super().__init__(channels)
        self.state_channels = (self.channels,)
        self.gate_bias = float(gate_bias)
        self.gate = SameConv2d(2 * self.channels, self.channels, (filter_size, filter_size))

    def forward(self, x, state=None, feedback=None, res_input=None):
        x = x if feedback is None else x + feedback
        (h,) = self._state(x, state)
        g = torch.sigmoid(self.gate(torch.cat([x, h], 1)) + self.gate_bias)
        h = g * h + (1 - g) * torch.relu(x)
        return h, (h,)
'''

SPEC = {"name": "tiny_mingated", "n_steps": 6, "image_steps": 4,
        "layers": [{"name": "conv1", "channels": 4, "kernel": 3, "stride": 2},
                   {"name": "conv2", "channels": 4, "kernel": 3, "cell": {"kind": "mingated", "gate_bias": 0.5}}],
        "feedback": [{"source": "conv2", "target": "conv1"}]}


def installed(tmp_path, monkeypatch, package, modules, entry_points_txt):
    """Install ``package`` 0.1 as pip would (its modules and a .dist-info) in a folder put on sys.path; return its
    entry points by (group, name)."""
    root = tmp_path / "site"
    for name, source in modules.items():
        (root / f"{name}.py").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.py").write_text(source)
        monkeypatch.delitem(sys.modules, name, raising=False)
    info = root / f"{package}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points_txt)
    monkeypatch.syspath_prepend(str(root))
    return {(ep.group, ep.name): ep for ep in distribution(package).entry_points}


def test_a_cell_from_an_entry_point_builds_and_is_checked_as_a_registered_one(tmp_path, monkeypatch, capsys):
    """The cell's factory behind an entry point was only a loader taking **kwargs: the network passed it in_channels,
    in_stride and feedback_channels (a TypeError traceback from any cell that does not take them, as the built-in
    ones do not) and its config went unchecked. `zoo list` showed no cells at all: `--kind cells` lists them."""
    from neurozoo.leaderboard.cli import main
    from neurozoo import convrnn
    from neurozoo.convrnn.cells import CELLS

    eps = installed(tmp_path, monkeypatch, "mycells", {"mycells": CELL_MODULE},
                    "[neurozoo.convrnn_cells]\nmingated = mycells:MinGatedCell\n")
    ep = eps["neurozoo.convrnn_cells", "mingated"]
    CELLS._load_entry_points()
    monkeypatch.setitem(CELLS._entries, "mingated", Entry("mingated", _LazyEntryPoint(ep, CELLS.kind), "(plugin)"))
    model = convrnn.create_model(SPEC)
    assert type(model.layers["conv2"].cell).__name__ == "MinGatedCell" and model.layers["conv2"].cell.gate_bias == 0.5
    out = model(torch.randn(2, 3, 16, 16), record=["conv2"])
    assert out.recorded["conv2"].shape == (6, 2, 4, 8, 8)
    bad = {**SPEC, "layers": [SPEC["layers"][0], {**SPEC["layers"][1], "cell": {"kind": "mingated", "gate_bais": 1}}]}
    with pytest.raises(SpecError, match=r"layer 'conv2': cell 'mingated': unknown config key 'gate_bais'; did "
                                        r"you mean 'gate_bias'\? \(valid keys: filter_size, gate_bias\)"):
        convrnn.create_model(bad)
    assert main(["list", "--kind", "cells"]) == 0
    rows = [line.split(None, 3) for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[2] for row in rows] == ["gru", "identity", "intersectionrnn", "lstm", "mingated", "rgc", "simplernn",
                                        "timedecay", "ugrnn"]
    assert rows[4] == ["cell", "convrnn", "mingated", "(plugin)"] and rows[5][3].startswith("median Reciprocal Gated")


def test_a_name_registered_twice_names_both_registrations_whichever_came_first():
    registry = Registry("thing")

    @registry.register("a")
    def first():
        pass

    def second():
        pass

    with pytest.raises(DuplicateNameError, match=r"thing 'a' is already registered by test_plugins\.test_a_name_regi"
                                                 r"stered_twice_names_both_registrations_whichever_came_first\.<locals>"
                                                 r"\.first; test_plugins\..*<locals>\.second cannot register it again"):
        registry.add("a", second)
    registry.add("a", second, overwrite=True)
    assert registry.get("a").factory is second


def test_a_plugin_whose_name_is_taken_is_ignored_with_a_warning_naming_it_and_the_holder(tmp_path, monkeypatch):
    """It used to be dropped in silence: the researcher's `zoo fit bncnn` fitted the built-in BN-CNN."""
    installed(tmp_path, monkeypatch, "clash", {"clash": "def make(**kw):\n    return kw\n"},
              "[neurozoo.test_things]\na = clash:make\nb = clash:make\n")
    registry = Registry("thing", entry_point_group="neurozoo.test_things")
    registry.add("a", dict)
    with pytest.warns(UserWarning, match=r"^plugin thing 'a' \(entry point clash:make in group neurozoo.test_things, "
                                         r"package clash\) is ignored: the name is already registered by builtins\.dict;"
                                         r" rename it in its package's entry points$"):
        assert registry.names() == ["a", "b"]
    assert registry.create("a") == {} and registry.create("b", x=1) == {"x": 1}


def test_a_used_plugin_is_in_the_provenance_environment(tmp_path, monkeypatch):
    from neurozoo.datasets import registry as registry_module
    from neurozoo.datasets.provenance import environment

    monkeypatch.setattr(registry_module, "_LOADED_PLUGINS", {})
    assert "plugins" not in environment()
    installed(tmp_path, monkeypatch, "provpkg", {"provpkg": "def make(**kw):\n    return 3\n"},
              "[neurozoo.test_things]\nthree = provpkg:make\n")
    assert Registry("thing", entry_point_group="neurozoo.test_things").create("three") == 3
    assert environment()["plugins"] == {"neurozoo.test_things:three": "provpkg 0.1"}


def test_factories_that_build_the_wrong_thing_are_refused_naming_the_factory(monkeypatch):
    """A model factory's non-model and a benchmark factory's object without score() failed in a command with an
    AttributeError traceback."""
    from neurozoo import benchmarks, convrnn, retina

    def not_a_model(**overrides):
        return torch.nn.Linear(3, 3)

    monkeypatch.setitem(convrnn.MODELS._entries, "bad_net", Entry("bad_net", not_a_model))
    with pytest.raises(SpecError, match=r"ConvRNN model 'bad_net': its factory test_plugins\..*not_a_model returned a "
                                        r"Linear, not a model with named layers"):
        convrnn.create_model("bad_net")
    retina.MODELS._load_entry_points()
    monkeypatch.setitem(retina.MODELS._entries, "bad_cnn", Entry("bad_cnn", lambda n_cells=5: "weights.pt"))
    with pytest.raises(SpecError, match=r"retina model 'bad_cnn': its factory test_plugins\..*<lambda> returned a str, "
                                        r"not an nn.Module mapping stimulus windows"):
        retina.create_model("bad_cnn")

    class NoScore:
        identifier = "my.V4"

    class Other(NoScore):
        identifier = "other.V4"

        def score(self, model):
            return 0

    benchmarks.BENCHMARKS._load_entry_points()
    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "my.V4", Entry("my.V4", NoScore))
    with pytest.raises(SpecError, match=r"benchmark 'my.V4': its factory test_plugins\..*NoScore returned a NoScore "
                                        r"without score \(a benchmark has an identifier and score\(model, ...\)"):
        benchmarks.load("my.V4")
    # a variant registered under a name of its own keeps its class's identifier (the tests' smaller copies of the
    # retina benchmarks do): refusing it broke them, so the identifier is the registered name by convention only
    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "my.V4", Entry("my.V4", Other))
    assert benchmarks.load("my.V4").identifier == "other.V4"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert benchmarks.load("ventral_embedded.V4-temporal").identifier == "ventral_embedded.V4-temporal"


def test_a_data_set_factory_that_returns_no_recording_is_refused_naming_it(monkeypatch):
    """A benchmark on it failed with "'tuple' object has no attribute 'assembly'" from inside the benchmark."""
    from neurozoo import datasets
    from neurozoo.benchmarks.neural import dataset_benchmark

    def pair():
        return "assembly", "stimuli"

    datasets.DATASETS._load_entry_points()
    monkeypatch.setitem(datasets.DATASETS._entries, "my.pair", Entry("my.pair", pair))
    with pytest.raises(SpecError, match=r"^data set 'my.pair': its factory test_plugins\..*pair returned a tuple, not a "
                                        r"datasets.Recording\(assembly, stimulus_set\)$"):
        dataset_benchmark("my.V4", "my.pair", "V4").assembly


def test_a_keyword_the_factory_does_not_take_is_refused_naming_the_entry_and_what_it_takes():
    """It was the factory's TypeError (``register.<locals>.cowley() got an unexpected keyword argument 'bogus'``),
    naming neither the benchmark nor what it takes. A factory taking **kwargs checks its own."""
    from neurozoo.benchmarks import load

    registry = Registry("thing")
    registry.add("plain", lambda size=1, *, colour="red": (size, colour))
    registry.add("open", lambda **kwargs: kwargs)
    assert registry.create("plain", size=2, colour="blue") == (2, "blue")
    assert registry.create("open", anything=1) == {"anything": 1}
    with pytest.raises(SpecError, match=r"^thing 'plain': unknown argument \['color'\]; did you mean colour\?; "
                                        r"it takes: size, colour$"):
        registry.create("plain", color="blue")
    with pytest.raises(SpecError, match=r"^benchmark 'cowley2023.V4': unknown argument \['bogus'\]; it takes: "
                                        r"ceiling_silent$"):
        load("cowley2023.V4", bogus=1)


def test_a_factory_forwarding_its_keywords_is_checked_against_the_callable_it_forwards_to():
    """``retina.create_model('ln', bogus=1)`` was LN's TypeError (``LN.__init__() got an unexpected keyword argument
    'bogus'``): the registry's check stopped at the lazy factory's and ``ln``'s ``**kwargs``. Each registry whose
    factories forward their keywords (retina models, benchmarks, data sets) now names the entry, the keyword, a close
    match and the keywords taken."""
    from neurozoo import benchmarks, convrnn, datasets, retina
    from neurozoo.datasets.registry import accepted_keywords, forwards_keywords
    from neurozoo.retina.fit import create_model

    cases = [(lambda: retina.create_model("ln", bogus=1),
              r"^retina model 'ln': unknown argument \['bogus'\]; it takes: n_cells, rank, n_frames, frame_size$"),
             (lambda: create_model("glm", 2, histroy=3),
              r"^retina model 'glm': unknown argument \['histroy'\]; did you mean history\?; it takes: n_cells, "
              r"rank, history, n_frames, frame_size, post_spike_penalty, link$"),
             (lambda: retina.create_model("bncnn2016", chanels=(4, 4)),
              r"did you mean channels\?; it takes: n_cells, "),
             (lambda: benchmarks.load("retina_embedded.oms", analysys={}),
              r"^benchmark 'retina_embedded.oms': unknown argument \['analysys'\]; did you mean analysis\?; it "
              r"takes: kind, analysis, sizes, fit_settings$"),
             (lambda: benchmarks.load("retina_embedded.naturalscene-heldout", bogus=1),
              r"^benchmark 'retina_embedded.naturalscene-heldout': unknown argument \['bogus'\]; it takes: "
              r"sizes, fit_settings$"),
             # the bound argument (the region) is not one it takes
             (lambda: datasets.load("ventral_embedded.V4", region="IT"),
              r"^data set 'ventral_embedded.V4': unknown argument \['region'\]; it takes: seed, nan_policy$"),
             (lambda: datasets.load("allen_bo.v1_natural_scenes", nan_polcy="raise"),
              r"did you mean nan_policy\?; it takes: nan_policy$")]
    for make, message in cases:
        with pytest.raises(SpecError, match=message):
            make()
    # a ConvRNN spec checks its own overrides, the registry a CORnet's: they now suggest the close one too
    with pytest.raises(SpecError, match=r"^spec 'rgc_shallow': unknown override \['n_step'\]; did you mean "
                                        r"n_steps\?; valid: "):
        convrnn.create_model("rgc_shallow", n_step=10)
    with pytest.raises(SpecError, match=r"^ConvRNN model 'cornet_z': unknown override \['num_class'\]; did you "
                                        r"mean num_classes\?; it takes: num_classes, width_multiplier$"):
        convrnn.create_model("cornet_z", num_class=10)
    assert retina.create_model("ln", n_cells=2, rank=1).filter.rank == 1  # what it takes still reaches the model

    registry = Registry("thing")  # a chain of wrappers; an unmarked **kwargs still checks its own
    registry.add("chain", forwards_keywords(lambda: forwarding)(lambda **kwargs: forwarding(**kwargs)))
    forwarding = forwards_keywords(lambda: (lambda size=1, *, colour="red": (size, colour)))(
        lambda shape=None, **kwargs: kwargs)
    assert accepted_keywords(registry.get("chain").factory) == ["shape", "size", "colour"]
    assert registry.create("chain", shape=1, colour="blue") == {"colour": "blue"}
    with pytest.raises(SpecError, match=r"^thing 'chain': unknown argument \['color'\]; did you mean colour\?; "
                                        r"it takes: shape, size, colour$"):
        registry.create("chain", color="blue")
    assert accepted_keywords(lambda **kwargs: kwargs) is None


def test_a_name_in_another_case_is_suggested():
    """``create_model('BNCNN')`` named no close match: difflib is case-sensitive. A name equal but for case is the
    suggestion; other near names are matched case-insensitively."""
    from neurozoo import retina
    from neurozoo.datasets.errors import did_you_mean

    with pytest.raises(UnknownNameError, match=r"^unknown retina model 'BNCNN'; did you mean bncnn\? \(known: "):
        retina.create_model("BNCNN")
    registry = Registry("thing")
    for name in ("Alpha", "beta", "Gamma2"):
        registry.add(name, lambda: None)
    with pytest.raises(UnknownNameError,
                       match=r"^unknown thing 'ALPHA'; did you mean Alpha\? \(known: Alpha, Gamma2, beta\)$"):
        registry.get("ALPHA")
    with pytest.raises(UnknownNameError, match=r"^unknown thing 'gamma'; did you mean Gamma2\? "):
        registry.get("gamma")
    assert did_you_mean(["COLOR"], ["colour", "color"]) == "; did you mean 'color'?"
    assert did_you_mean(["zzz"], ["alpha"]) == ""
