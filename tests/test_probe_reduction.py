"""``zoo probe reduction``: on the embedded ground-truth retina's recording, with a BN-CNN whose first layer is the
circuit's own ON and OFF pathway filters (a known answer, as tests/test_mechanism.py), the command's ranking and
numbers are the library's (retina.reduction.reduction_report); bad inputs are refused by name."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neurozoo.datasets.synthetic_retina import load_embedded_retina
from neurozoo.leaderboard.cli import main as zoo

sys.path.insert(0, str(Path(__file__).parent))
from test_mechanism import _pathway_model as pathway_model  # noqa: E402

SIZES = dict(n_train=300, n_test=120, n_repeats=2)


def _pathway_model(n_cells=12):
    """tests/test_mechanism.py's model (channel 0: the circuit's ON bipolar filter, channel 1: its OFF filter; 2-7
    silent), the two pathways kept apart in layer 2 and mixed differently per cell: cell c's OFF weight 1 + c."""
    model = pathway_model(n_cells)
    with torch.no_grad():
        model.conv2.weight[0, 1] = 0.0
        model.conv2.weight[1, 1] = 1.0 / 121
        for c in range(n_cells):
            model.dense.weight[c, 676:2 * 676] = (1.0 + c) / 676
    return model


@pytest.fixture(scope="module")
def recording_and_weights(tmp_path_factory, session_cache):
    folder = tmp_path_factory.mktemp("reduction")
    torch.save(_pathway_model().state_dict(), folder / "model.pt")
    torch.save(_pathway_model(n_cells=3).state_dict(), folder / "three.pt")
    with pytest.MonkeyPatch.context() as patch:  # the session's cache (a module fixture comes before the autouse one)
        patch.setenv("NEUROZOO_CACHE", session_cache)
        return load_embedded_retina("whitenoise", **SIZES), folder


def test_the_commands_ranking_and_numbers_are_the_librarys(recording_and_weights, tmp_path, capsys):
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.retina_h5 import read_experiment
    from neurozoo.retina.reduction import reduction_report

    data, folder = recording_and_weights
    out = tmp_path / "out"
    assert zoo(["probe", "reduction", "bncnn", "--checkpoint", str(folder / "model.pt"), "--data", str(data),
                "--cells", "cell01,3", "--k", "8,1,2", "--steps", "4", "--start", "10", "--frames", "50",
                "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "reduction.json").read_text())
    assert (out / "reduction.png").read_bytes()[:4] == b"\x89PNG" and record["figure"] == str(out / "reduction.png")
    assert record["data"]["sha256"] == sha256_file(data) and record["data"]["frames"] == 50
    assert record["provenance"]["checkpoint_sha256"] == sha256_file(folder / "model.pt")
    assert record["provenance"]["code_version"] and record["settings"]["k"] == [1, 2, 8]
    assert record["figure_cells"] == ["cell01", "cell04"]

    movie = torch.as_tensor(read_experiment(data, "test").stimulus[10:10 + 50 + 39])
    model = _pathway_model()
    assert [row["cell"] for row in record["cells"]] == [0, 3]
    for row in record["cells"]:
        reports = reduction_report(model, movie, row["cell"], layer=1, k=[1, 2, 8], steps=4)
        assert row["ranking"] == reports[0]["ranking"] and row["importance"] == reports[0]["importance"]
        assert row["kept_units"] == [r["kept_units"] for r in reports]
        for key in ("correlation", "variance_explained", "contribution_correlation", "contribution_variance_explained"):
            assert row[key] == [r[key] for r in reports], key
        # the known answer: the ON and OFF channels are the two that matter, and with them the response is whole
        assert set(row["ranking"][:2]) == {0, 1} and row["kept_units"][1] == [0, 1]
        assert row["correlation"][1] > 0.99999 and row["correlation"][0] < 0.999
    printed = capsys.readouterr().out
    assert "cell04: units by importance (share): " in printed and "k=2 [0, 1]" in printed


@pytest.mark.parametrize("arguments,message", [
    (["--checkpoint", "{folder}/three.pt", "--data", "{data}"],
     "{folder}/three.pt: weights for 3 cells, but {data}: test/response has 12: the checkpoint is not a fit to this "
     "recording (--data)"),
    (["--checkpoint", "{folder}/model.pt", "--data", "{data}", "--k", "2,9"],
     "--k: k must be between 1 and 8 (layer 1's units); got 9"),
    (["--checkpoint", "{folder}/model.pt", "--data", "{data}", "--cells", "cell13"],
     "--cells cell13: 'cell13' is not a cell of the file; did you mean 'cell12'? (the file's 12 cells: indices 0..11 or names "
     "cell01..cell12)"),
    (["--checkpoint", "{folder}/model.pt"], "--data: which recording {folder}/model.pt was fitted to is read from "
     "the summary.json that zoo fit writes beside it, and there is none to read (no summary.json beside "
     "model.pt (zoo fit writes one into --out, or into the fit cache's folder for --data embedded:KIND)): give the "
     "recording with --data (a deep-retina HDF5 file, or "
     "embedded:whitenoise / embedded:naturalscene)"),
    (["--checkpoint", "{folder}/model.pt", "--data", "{data}", "--frames", "500"],
     "--frames 500: {data}: test/stimulus has 81 windows of 40 frames from --start 0"),
    (["--checkpoint", "{folder}/model.pt", "--data", "{data}", "--fill", "grey"],
     "--fill: expected one of baseline, zero, mean, pruned; got 'grey'"),
])
def test_bad_inputs_are_refused_naming_the_file_and_field(recording_and_weights, tmp_path, capsys, arguments, message):
    data, folder = recording_and_weights
    filled = [a.format(folder=folder, data=data) for a in arguments]
    assert zoo(["probe", "reduction", "bncnn", *filled, "--out", str(tmp_path), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"zoo probe: error: {message.format(folder=folder, data=data)}"
    assert not (tmp_path / "reduction.json").exists()


def _fit_folder(tmp_path, data, data_sha256=None):
    """A folder as `zoo fit --out` leaves it: the weights and a summary.json naming the recording they were fitted to
    (``data`` as typed, ``data_absolute`` resolved) with its sha256 and theirs."""
    from neurozoo.datasets.provenance import sha256_file

    folder = tmp_path / "fit"
    folder.mkdir()
    torch.save(_pathway_model().state_dict(), folder / "model.pt")
    (folder / "summary.json").write_text(json.dumps({
        "model": "bncnn", "data": "elsewhere/" + Path(data).name, "data_absolute": str(data),
        "weights_sha256": {"model.pt": sha256_file(folder / "model.pt")},
        "provenance": {"data_path": str(data), "data_sha256": data_sha256 or sha256_file(data)}}))
    return folder


def test_the_recording_is_read_from_the_fits_summary_json(recording_and_weights, tmp_path, capsys):
    """A user had to repeat --data, the recording zoo fit had already recorded beside the weights."""
    from neurozoo.datasets.provenance import sha256_file

    data, _ = recording_and_weights
    folder = _fit_folder(tmp_path, data)
    settings = ["--cells", "cell02", "--k", "2", "--steps", "2", "--frames", "20", "--quiet"]
    assert zoo(["probe", "reduction", "bncnn", "--checkpoint", str(folder / "model.pt"), *settings,
                "--out", str(tmp_path / "read")]) == 0
    assert f"analysing the held-out split of {data} (the recording {folder / 'summary.json'} names)" in \
        capsys.readouterr().out
    assert zoo(["probe", "reduction", "bncnn", "--checkpoint", str(folder / "model.pt"), "--data", str(data),
                *settings, "--out", str(tmp_path / "given")]) == 0
    read, given = (json.loads((tmp_path / name / "reduction.json").read_text()) for name in ("read", "given"))
    assert read["data"] == given["data"] and read["data"]["sha256"] == sha256_file(data)
    assert read["cells"] == given["cells"]


@pytest.mark.parametrize("problem", ["changed", "gone"])
def test_a_recording_the_summary_names_that_changed_or_is_gone_is_refused(recording_and_weights, tmp_path, capsys,
                                                                           problem):
    data, _ = recording_and_weights
    if problem == "gone":
        data = tmp_path / "moved.h5"
    folder = _fit_folder(tmp_path, data, data_sha256="ab" * 32)
    assert zoo(["probe", "reduction", "bncnn", "--checkpoint", str(folder / "model.pt"), "--out", str(tmp_path),
                "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    summary = folder / "summary.json"
    if problem == "gone":
        assert error == (f"zoo probe: error: --data: {summary} names the recording {data}, which is not there (moved "
                         "or deleted?): give its new place with --data")
    else:
        assert error.startswith(f"zoo probe: error: --data: {data}, the recording {summary} names, has changed since "
                                "the fit (sha256 ") and error.endswith("; the fit read abababababab): give the recording "
                                                                      "the weights were fitted to with --data")
    assert not (tmp_path / "reduction.json").exists()
    if problem == "changed":  # given with --data, another recording of the fit's cells is analysed, and said
        assert zoo(["probe", "reduction", "bncnn", "--checkpoint", str(folder / "model.pt"), "--data", str(data),
                    "--k", "1", "--steps", "1", "--frames", "5", "--cells", "1", "--out", str(tmp_path), "--quiet"]) == 0
        assert (f"note: {folder / 'model.pt'} was fitted to elsewhere/{data.name} ({summary}, sha256 abababababab); "
                f"analysing --data {data} (sha256 ") in capsys.readouterr().out


def test_a_model_without_hidden_layers_and_a_layer_out_of_range_are_refused(recording_and_weights, tmp_path, capsys):
    data, folder = recording_and_weights
    assert zoo(["probe", "reduction", "ln", "--checkpoint", str(folder / "model.pt"), "--data", str(data)]) == 2
    assert "ln (LN) has no hidden layers to attribute (a CNN's conv1, layer1, layer2 before its readout)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        zoo(["probe", "reduction", "bncnn", "--checkpoint", str(folder / "model.pt"), "--data", str(data),
             "--layer", "3"])
    assert exit.value.code == 2 and "argument --layer: invalid choice: 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        zoo(["probe", "reduction", "bncnn", "--checkpoint", str(folder / "model.pt"), "--k", "1,x"])
    assert "argument --k: expected integers >= 1 separated by commas" in capsys.readouterr().err


def test_the_figure_has_a_row_per_cell_and_its_texts_and_legends_clear_of_each_other_and_of_the_curves():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.retina.reduction_figure import reduction_figure
    from test_plots import legends_clear_of_axes, overlapping_texts

    rng = np.random.default_rng(0)
    cells = [{"cell": c, "k": [1, 2, 4, 8], "correlation": [0.5, 0.8, 0.9, 1.0], "variance_explained": [0.2, 0.6, 0.8, 1.0],
              "contribution_correlation": [0.6, 0.85, 0.95, 1.0], "contribution_variance_explained": [0.3, 0.7, 0.9, 1.0]}
             for c in (0, 4, 11)]
    traces = {c: {"units": [3, 1, 0, 7, 2, 5, 4, 6], "start": 39, "contributions": rng.normal(size=(200, 8)),
                  "response": rng.normal(size=200)} for c in (0, 4, 11)}
    figure = reduction_figure(cells, traces, title="bncnn (model.pt), layer 1: reduced models on recording.h5")
    FigureCanvasAgg(figure).draw()
    assert [axis.get_title() for axis in figure.axes[::2]] == ["cell01", "cell05", "cell12"]
    assert list(figure.axes[1].get_lines()[0].get_xdata()[:2]) == [0.39, 0.4]  # seconds: the first window's end
    assert overlapping_texts(figure) == [] and legends_clear_of_axes(figure)


def test_a_recording_of_many_cells_draws_the_first_ten_and_says_where_the_rest_are():
    """220 cells once gave a 68,725 px tall figure; the rows are bounded, the title names the cells shown, and no
    unit shares a colour with the left panels' curves."""
    from neurozoo.retina.reduction_figure import reduction_figure

    rng = np.random.default_rng(0)
    cells = [{"cell": c, "k": [1, 8], "correlation": [0.5, 1.0], "variance_explained": [0.2, 1.0],
              "contribution_correlation": [0.6, 1.0], "contribution_variance_explained": [0.3, 1.0]} for c in range(30)]
    traces = {c: {"units": list(range(8)), "start": 39, "contributions": rng.normal(size=(20, 8)),
                  "response": rng.normal(size=20)} for c in range(30)}
    figure = reduction_figure(cells, traces, title="bncnn")
    assert len(figure.axes) == 20 and figure.get_size_inches()[1] == pytest.approx(2.6 * 10 + 0.6)
    assert figure.get_suptitle() == ("bncnn\nthe first 10 of 30 cells shown (cell01 to cell10); every cell is in "
                                     "reduction.json, pick cells to draw with --cells")
    left = {line.get_color() for line in figure.axes[0].get_lines()[:4]}
    units = [line.get_color() for line in figure.axes[1].get_lines()[1:9]]  # after the full response
    assert len(left) == 2 and len(set(units)) == 8 and not left & set(units)

