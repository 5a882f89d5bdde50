"""benchmarks/retina_table.py: the retina models' key-numbers table, from the zoo's fits and registered benchmarks."""
from pathlib import Path

import numpy as np
import pytest

from neurozoo import benchmarks
from neurozoo.benchmarks.retina_table import RECORDED_NOTE, markdown, measure, retina_benchmarks

SIZES = dict(n_train=2500, n_test=200, n_repeats=2)
HELDOUT, PAIRED = "retina_embedded.whitenoise-heldout", "retina_embedded.paired-flash"


def test_every_registered_retina_benchmark_is_scored_on_its_recording_held_out_first():
    by_kind = retina_benchmarks()
    retina = {e.name for e in benchmarks.BENCHMARKS.entries() if e.tags.get("family") == "retina"}
    retina.remove("retina_h5.heldout")  # on the user's own file, fitted there: no embedded recording's table row
    assert sorted(n for names in by_kind.values() for n in names) == sorted(retina)
    assert by_kind["whitenoise"][0] == HELDOUT and PAIRED in by_kind["whitenoise"]
    assert by_kind["naturalscene"] == ["retina_embedded.naturalscene-heldout"]
    assert by_kind["oms-whitenoise"] == ["retina_embedded.oms"]  # protocol version 2: fitted on its own circuit's


def test_row_is_the_zoo_fit_scored_by_the_benchmarks_and_a_rerun_reads_the_cached_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    row = measure("ln", "whitenoise", [HELDOUT, PAIRED], progress=False, sizes=SIZES, fit_settings={"epochs": 1})
    assert (row["epochs"], row["best_epoch"], row["cached"]) == (1, 0, False) and row["fit_wall_s"] > 0
    heldout = benchmarks.load(HELDOUT, sizes=SIZES).score("ln", progress=False, epochs=1)
    assert row["heldout_r"] == heldout.value and row["oracle"] == heldout.ceiling
    assert row["feve"] == heldout.provenance["settings"]["summary"]["median_feve"]
    assert set(row["scores"]) == {HELDOUT, PAIRED} and 0 <= row["scores"][PAIRED] <= 1

    # the fit's own time, recorded in its folder (fit_time.json): within this run's measurement of it
    assert row["fit_runs"] == 1 and 0 < row["fit_recorded_s"] <= row["fit_wall_s"] + 0.005
    again = measure("ln", "whitenoise", [HELDOUT], progress=False, sizes=SIZES, fit_settings={"epochs": 1})
    assert again["cached"] and again["fit_wall_s"] is None and again["heldout_r"] == row["heldout_r"]
    # a cached fit was "cached" and no time: now the fit's recorded one, the same as when it was made
    assert (again["fit_recorded_s"], again["fit_runs"]) == (row["fit_recorded_s"], 1)
    (Path(row["fit_dir"]) / "history.json").unlink()  # as a fit killed after its last checkpoint leaves it
    resumed = measure("ln", "whitenoise", [HELDOUT], progress=False, sizes=SIZES, fit_settings={"epochs": 1})
    assert resumed["resumed"] and not resumed["cached"] and resumed["heldout_r"] == row["heldout_r"]
    assert resumed["fit_recorded_s"] == row["fit_recorded_s"]  # its checkpoint was the last: nothing fitted now
    assert markdown([resumed], {"whitenoise": [HELDOUT]}).splitlines()[2].endswith(
        f" ({resumed['fit_cpu_s']:.0f}), resumed, recorded {row['fit_recorded_s']:.0f} s |")
    assert markdown([row], {"whitenoise": [HELDOUT]}).splitlines()[-1].endswith(
        f" | {row['fit_wall_s']:.0f} ({row['fit_cpu_s']:.0f}) |")  # a fit made now: measured only, no note

    natural = {**again, "kind": "naturalscene", "scores": {"retina_embedded.naturalscene-heldout": 0.5},
               "heldout_r": 0.5, "feve": np.nan}
    table = markdown([row, natural], {"whitenoise": [HELDOUT, PAIRED],
                                      "naturalscene": ["retina_embedded.naturalscene-heldout"]}).splitlines()
    assert table[0].split(" | ")[6:] == ["paired-flash", "fit wall s (CPU s) |"]
    first, second = ([c.strip() for c in line.strip("|").split("|")] for line in table[2:4])
    assert first[:3] == ["`ln`", "whitenoise", "1 (0)"] and first[3] == f"{row['heldout_r']:.3f}"
    assert first[6] == f"{row['scores'][PAIRED]:.3f}" and second[6] == "–"
    assert second[-1] == f"cached, recorded {row['fit_recorded_s']:.0f} s" and table[4:] == ["", RECORDED_NOTE]
    assert second[4] == "nan"
    # a run saved before the recorded time was kept (no fit_recorded_s): "cached", no note, as before
    old = {key: value for key, value in again.items() if key not in ("fit_recorded_s", "fit_runs")}
    assert markdown([old], {"whitenoise": [HELDOUT]}).splitlines()[-1].endswith(" | cached |")


def test_a_resumed_fits_row_gives_this_runs_measured_time_and_the_fits_recorded_one_over_its_runs(
        tmp_path, monkeypatch, signal_in_epoch):
    """A fit stopped after its first epoch and resumed by the table: this run measured the second epoch only, and
    the row gave that alone; the fit's recorded time over its 2 runs is now beside it, marked as recorded."""
    import signal

    from neurozoo.retina.fit import FitInterrupted

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    settings = {"epochs": 2, "patience": 9}
    signal_in_epoch(1, signal.SIGTERM)
    with pytest.raises(FitInterrupted) as stopped:
        measure("ln", "whitenoise", [], progress=False, sizes=SIZES, fit_settings=settings)
    monkeypatch.undo()
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    row = measure("ln", "whitenoise", [], progress=False, sizes=SIZES, fit_settings=settings)
    assert row["resumed"] and (row["epochs"], row["fit_runs"]) == (2, 2)
    # the stopped run's seconds and this one's, which lie within its measured wall time
    now = row["fit_recorded_s"] - stopped.value.seconds
    assert 0 < now <= row["fit_wall_s"] + 0.01
    cell = markdown([row], {"whitenoise": []}).splitlines()[2].rsplit(" | ", 1)[1]
    assert cell == (f"{row['fit_wall_s']:.0f} ({row['fit_cpu_s']:.0f}), resumed, recorded {row['fit_recorded_s']:.0f} s "
                    f"over 2 runs |")


def test_a_saved_run_prints_as_its_header_and_table(tmp_path, capsys):
    import json

    from neurozoo.benchmarks.retina_table import main

    row = {"model": "glm", "kind": "naturalscene", "epochs": 9, "best_epoch": 5, "fit_wall_s": 30.4, "fit_cpu_s": 20.2,
           "cached": False, "load_average": [1.5, 2.5], "heldout_r": 0.5, "feve": 0.2, "oracle": 0.9,
           "scores": {"retina_embedded.naturalscene-heldout": 0.5}}
    (tmp_path / "run.json").write_text(json.dumps({"header": ["date X; host Y"], "rows": [row], "seconds": 61.2}))
    assert main(["--from-json", str(tmp_path / "run.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["date X; host Y", "1 fits and their benchmarks in 61 s; load average 1.5-2.5 before and after "
                         "the fits", ""]
    assert lines[-1] == "| `glm` | naturalscene | 9 (5) | 0.500 | 0.200 | 0.900 | 30 (20) |"


@pytest.mark.parametrize("bad", [["nosuchmodel"], ["--kinds", "moving"]])
def test_unknown_model_or_recording_is_refused_by_name(bad, capsys):
    from neurozoo.benchmarks.retina_table import main

    assert main(["--models", bad[0]] if len(bad) == 1 else bad) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "usage:" not in error  # one line, as every zoo command's; no argparse usage
    assert (f"unknown retina model '{bad[-1]}'" if len(bad) == 1 else f"unknown recording {bad[-1]};") in error


def test_unknown_model_is_the_registrys_one_refusal_before_any_fit(tmp_path, capsys):
    """--models had its own check ("unknown retina model(s) ...; registered: ..."): now the registry's one refusal
    (zoo score's and zoo run's form: close names, every retina model sorted), one error line, no run file written."""
    from neurozoo import retina
    from neurozoo.benchmarks.retina_table import main

    assert main(["--models", "ln,bnnc", "--json", str(tmp_path / "run.json")]) == 2
    error, = capsys.readouterr().err.splitlines()  # the one line: no argparse usage above it
    assert error.split(": error: ", 1)[1] == (f"unknown retina model 'bnnc'; did you mean bncnn? "
                                              f"(known: {', '.join(sorted(retina.list_models()))})")
    assert not (tmp_path / "run.json").exists()


def test_a_row_that_waited_for_another_process_fit_reads_it_as_cached(tmp_path, monkeypatch):
    """measure() looked at the fit's folder before the fit took its lock: a fit another process was making (its
    checkpoint, no history.json yet), waited for and then read, made a row "resumed", timed with the wait. The fit
    decides under its lock now."""
    import threading
    from contextlib import contextmanager

    from neurozoo.datasets import cache

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    folder = Path(measure("ln", "whitenoise", [], progress=False, sizes=SIZES, fit_settings={"epochs": 1})["fit_dir"])
    lock = folder.parent / f"{folder.name}.lock"
    history = (folder / "history.json").read_bytes()
    (folder / "history.json").unlink()  # the other process's fit, before it has finished
    blocked, original = threading.Event(), cache.locked

    @contextmanager
    def announced(path, waiting=None, **options):
        if Path(path) == lock:
            blocked.set()
        with original(path, waiting, **options):
            yield

    monkeypatch.setattr(cache, "locked", announced)
    rows = []
    with original(lock):  # the other process holds the fit's lock
        thread = threading.Thread(target=lambda: rows.append(
            measure("ln", "whitenoise", [], progress=False, sizes=SIZES, fit_settings={"epochs": 1})))
        thread.start()
        assert blocked.wait(120)
        (folder / "history.json").write_bytes(history)  # ... and finishes its fit
    thread.join(120)
    assert rows and rows[0]["cached"] and not rows[0]["resumed"], rows
    assert rows[0]["fit_wall_s"] is None and rows[0]["epochs"] == 1
