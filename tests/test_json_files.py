"""datasets.json_files: strict JSON for the files people and programs read."""
import json

import numpy as np
import pytest

from neurozoo.datasets.json_files import json_safe, write_json


def strict(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_write_json_writes_nan_and_infinity_as_null_and_numpy_as_numbers(tmp_path):
    path = write_json(tmp_path / "s.json", {"median": np.float32("nan"), "r": np.array([0.5, np.inf]), "n": np.int64(3),
                                            "ok": np.bool_(True), "pair": (1, float("-inf")), "where": tmp_path})
    assert strict(path.read_text()) == {"median": None, "r": [0.5, None], "n": 3, "ok": True, "pair": [1, None],
                                        "where": str(tmp_path)}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left


def test_json_safe_keeps_plain_values_and_names_other_objects():
    assert json_safe({"a": [1, "x", None, 2.5]}) == {"a": [1, "x", None, 2.5]}
    assert json_safe({1: object}) == {"1": repr(object)}
    with pytest.raises(ValueError):
        strict('{"a": NaN}')


def test_save_figure_killed_mid_write_leaves_the_previous_figure_whole(tmp_path, monkeypatch):
    """A process killed while the PNG was being written had left a half-written figure as the final one."""
    from matplotlib.figure import Figure

    from neurozoo.datasets.figures import save_figure

    path = save_figure(Figure(figsize=(2, 2)), tmp_path / "fit.png")
    whole = path.read_bytes()
    assert whole[:4] == b"\x89PNG"

    def dies_mid_write(self, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(whole[:20])
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Figure, "savefig", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_figure(Figure(figsize=(2, 2)), path)
    assert path.read_bytes() == whole and [p.name for p in tmp_path.iterdir()] == ["fit.png"]
