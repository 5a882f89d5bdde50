import time

import numpy as np
import pytest

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.retina_h5 import firing_rates, read_experiment, read_spikes
from neurozoo.datasets.synthetic_retina import (GroundTruthRetina, default_retina, generate_recording,
                                       load_embedded_retina, simulate, white_noise)


@pytest.fixture(scope="module")
def circuit():
    return default_retina()


def _cells(circuit, kind):
    return [i for i, t in enumerate(circuit.cell_types) if t == kind]


def test_deterministic_with_seed(circuit):
    stim = white_noise(300, np.random.default_rng(0)).astype(np.float32)
    np.testing.assert_array_equal(GroundTruthRetina(seed=0).rates(stim), circuit.rates(stim))
    other = GroundTruthRetina(seed=1)
    assert not np.allclose(other.positions, circuit.positions)
    rates, counts = simulate(stim, seed=5, trials=3)
    _, again = simulate(stim, seed=5, trials=3)
    np.testing.assert_array_equal(counts, again)
    assert rates.shape == (12, 300) and counts.shape == (3, 12, 300)
    with pytest.raises(DataError, match=r"\(T, 50, 50\)"):
        simulate(np.zeros((10, 32, 32)))


def test_on_and_off_cells_respond_with_opposite_signs_to_a_step(circuit):
    step = np.zeros((200, 50, 50), np.float32)
    step[100:] = 1.0
    for sign, excited, silent in ((1, "on", "off"), (-1, "off", "on")):
        rates = circuit.rates(sign * step)
        change = rates[:, 100:130].max(1) - rates[:, 90:100].mean(1)
        assert (change[_cells(circuit, excited)] > 50).all()  # strong transient to its own polarity
        assert (change[_cells(circuit, silent)] <= 1e-3).all()  # and none to the other
        assert (change[_cells(circuit, "onoff")] > 50).all()


def test_adaptation_lowers_the_response_to_sustained_contrast(circuit):
    rng = np.random.default_rng(3)
    low, high = 0.3 * white_noise(300, rng), 1.5 * white_noise(600, rng)
    rates = circuit.rates(np.concatenate([low, high]).astype(np.float32))
    early, late = rates[:, 300:400].mean(1), rates[:, 800:900].mean(1)
    assert np.median(late / early) < 0.8
    assert (late < early).mean() >= 0.9


def test_trial_to_trial_noise_is_poisson(circuit):
    stim = white_noise(1000, np.random.default_rng(1)).astype(np.float32)
    rates, counts = circuit.simulate(stim, seed=0, trials=20)
    assert not np.array_equal(counts[0], counts[1])
    expected = rates / 100.0
    np.testing.assert_allclose(counts.mean(0).mean(1), expected.mean(1), rtol=0.1)
    busy = expected > 0.5
    np.testing.assert_allclose(counts.var(0, ddof=1)[busy].mean(), counts.mean(0)[busy].mean(), rtol=0.15)


def test_recording_layout_and_statistics(tmp_path):
    path = generate_recording(tmp_path / "wn.h5", "whitenoise", n_train=1200, n_test=300, n_repeats=5, seed=2)
    train, test = read_experiment(path, "train"), read_experiment(path, "test")
    assert train.stimulus.shape == (1200, 50, 50) and set(np.unique(train.stimulus)) == {-1.0, 1.0}
    assert test.repeats.shape == (12, 5, 300)
    np.testing.assert_allclose(test.time[0], 12.0)  # the test movie follows the training one
    spikes = read_spikes(path)
    assert len(spikes) == 12
    counts = np.histogram(spikes["cell01"], bins=np.arange(1201) / 100)[0]
    np.testing.assert_array_equal(counts, train.response("binned")[0])
    # the embedded recordings smooth with the "centered" option, as circuit version 4 was written (deep-retina's
    # rule, pyret's estfr, pyret/spiketools.py at 07421d2 lines 109-141, would change every recording's bytes under
    # the same version: switching needs a new VERSION)
    centered = firing_rates(train.response("binned"), rule="centered")
    for key in ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms"):
        np.testing.assert_array_equal(train.response(key), centered[key])
    # the stored ground truth is the rate the spikes were drawn from
    truth = test.response("true_rate")
    np.testing.assert_allclose(test.response("binned").mean(1) * 100, truth.mean(1), rtol=0.2)
    natural = generate_recording(tmp_path / "ns.h5", "naturalscene", n_train=400, n_test=200, n_repeats=3)
    movie = read_experiment(natural, "train").stimulus
    assert abs(movie.mean()) < 0.3 and 0.5 < movie.std() < 1.5
    # jittered images: consecutive frames are far more alike than white noise frames
    assert np.corrcoef(movie[10].ravel(), movie[11].ravel())[0, 1] > 0.5


def test_load_embedded_retina_generates_once_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    start = time.process_time()  # CPU time, which other processes on a loaded machine do not stretch as wall time
    path = load_embedded_retina("whitenoise", n_train=2000, n_test=300, n_repeats=4)
    assert time.process_time() - start < 30
    assert path.parent == tmp_path / "retina" and path.is_file()
    stamp = path.stat().st_mtime_ns
    assert load_embedded_retina("whitenoise", n_train=2000, n_test=300, n_repeats=4) == path
    assert path.stat().st_mtime_ns == stamp
    assert load_embedded_retina("whitenoise", n_train=2000, n_test=300, n_repeats=5) != path
    with pytest.raises(DataError, match="naturalscene"):
        load_embedded_retina("pinknoise")


def _zoo_data(*argv):
    import argparse

    from neurozoo.datasets.cli import add_commands

    parser = argparse.ArgumentParser(prog="zoo")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *argv])
    return args.handler(args)


def test_zoo_data_verify_checks_a_generated_recording_against_the_digest_recorded_when_it_was_generated(
        tmp_path, monkeypatch, capsys):
    """`zoo data verify` skipped the generated recordings (no digest is pinned for them: another CPU may compute the
    generator's floats differently), so a corrupted one went unreported. The digest of what was generated is
    recorded beside it now (retina/manifest.json) and checked like a download's."""
    import h5py

    from neurozoo.datasets.cache import recorded_sha256
    from neurozoo.datasets.provenance import sha256_file

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    sizes = dict(n_train=2000, n_test=300, n_repeats=2)
    path = load_embedded_retina("whitenoise", **sizes)
    generated = sha256_file(path)
    assert recorded_sha256(path) == generated
    assert _zoo_data("verify") == 0
    assert "ok       retina (1 files)" in capsys.readouterr().out
    with h5py.File(path, "r") as f:  # a bit flipped in the stimulus: the file stays a readable recording
        offset = f["train/stimulus"].id.get_offset() + 1234
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x02
    path.write_bytes(bytes(data))
    assert _zoo_data("verify") == 1
    out = capsys.readouterr().out
    assert f"MISMATCH {path}: sha256 {sha256_file(path)} differs from {generated}" in out
    assert f"delete {path} to generate it again" in out and "1 problem;" in out
    with pytest.warns(UserWarning, match="differs from the digest recorded when it was generated"):
        assert load_embedded_retina("whitenoise", **sizes) == path  # the next use generates it again
    assert sha256_file(path) == generated and _zoo_data("verify") == 0
    legacy = path.with_name("naturalscene-0123456789.h5")  # generated before digests were recorded
    legacy.write_bytes(b"anything")
    path.unlink()  # a generated file that is gone is generated again on use: not an error
    capsys.readouterr()
    assert _zoo_data("verify") == 0
    out = capsys.readouterr().out
    assert out.startswith("unknown  retina/naturalscene-0123456789.h5: generated before digests were recorded")
    assert len(out.splitlines()) == 1


def test_a_recording_stopped_as_its_digest_is_recorded_leaves_no_unverified_file(tmp_path, monkeypatch):
    """The recording was renamed into place, then its digest recorded: a stop in between (here as the manifest is
    written) left a file without a digest, which every later use read unverified (`zoo data verify`: unknown). The
    digest is now recorded before the rename: the stop leaves no file, and the next use generates and records it."""
    from neurozoo.datasets import cache
    from neurozoo.datasets.cache import MANIFEST, recorded_sha256
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.synthetic_retina import _embedded_path

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    sizes = dict(n_train=2000, n_test=300, n_repeats=2)
    write_atomic = cache.write_atomic

    def stopped_at_the_manifest(path, data, **kwargs):
        if path.name == MANIFEST:
            raise KeyboardInterrupt("signal 15")
        return write_atomic(path, data, **kwargs)

    monkeypatch.setattr(cache, "write_atomic", stopped_at_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        load_embedded_retina("whitenoise", **sizes)
    monkeypatch.setattr(cache, "write_atomic", write_atomic)
    path = _embedded_path("whitenoise", sizes)[0]
    assert sorted(p.name for p in tmp_path.joinpath("retina").iterdir()) == [f"{MANIFEST}.lock"]
    assert load_embedded_retina("whitenoise", **sizes) == path
    assert recorded_sha256(path) == sha256_file(path)


def test_a_recording_without_a_recorded_digest_is_generated_again_not_used_unverified(tmp_path, monkeypatch):
    """A cached recording with no digest recorded (a stop between its rename and its record, before 2026-12-04, or
    generated before digests were) was read unchecked, a modified one too. Its next use generates it again (the same
    bytes on the machine that made it) and records its digest."""
    import json

    import h5py

    from neurozoo.datasets.cache import MANIFEST, recorded_sha256
    from neurozoo.datasets.provenance import sha256_file

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    sizes = dict(n_train=2000, n_test=300, n_repeats=2)
    path = load_embedded_retina("whitenoise", **sizes)
    generated = sha256_file(path)
    with h5py.File(path, "r") as f:  # a bit flipped in the stimulus: the file stays a readable recording
        offset = f["train/stimulus"].id.get_offset() + 1234
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x02
    path.write_bytes(bytes(data))
    manifest = path.parent / MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "files": {}}))  # its digest never recorded
    with pytest.warns(UserWarning, match="has no recorded digest, so it cannot be verified .*; generating it again"):
        assert load_embedded_retina("whitenoise", **sizes) == path
    assert sha256_file(path) == recorded_sha256(path) == generated


def test_a_damaged_recording_removed_meanwhile_by_another_process_is_generated_again(tmp_path, monkeypatch):
    """Two runs that find the same damaged cached recording both remove it: the second's unlink found no file and
    failed (FileNotFoundError) instead of generating it. Simulated: the check itself sees the file vanish."""
    from neurozoo.datasets import synthetic_retina

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    sizes = dict(n_train=2000, n_test=300, n_repeats=2)
    path = load_embedded_retina("whitenoise", **sizes)
    path.write_bytes(path.read_bytes()[:20000])

    def removed_by_the_other_process(file):
        file.unlink()
        return False

    monkeypatch.setattr(synthetic_retina, "_readable_hdf5", removed_by_the_other_process)
    with pytest.warns(UserWarning, match="cannot be read"):
        assert load_embedded_retina("whitenoise", **sizes) == path
    assert read_experiment(path, "test").repeats.shape[1] == 2


def test_an_unreadable_recordings_manifest_is_to_be_deleted_alone_not_with_the_cached_fits(tmp_path):
    """The recordings' manifest sits beside the cached retina fits: its error said to delete the folder, which
    would have thrown every fit away with it."""
    from neurozoo.datasets.cache import MANIFEST, generated, recorded_sha256
    from neurozoo.datasets.errors import DataError

    def generate(path):  # records its digest
        with generated(path) as tmp:
            tmp.write_bytes(b"recording")

    recording = tmp_path / "retina" / "whitenoise.h5"
    recording.parent.mkdir()
    recording.write_bytes(b"recording")
    (tmp_path / "retina" / MANIFEST).write_text('{"files": {"whitenoise.h5": "ab')  # cut short by a crash
    for read in (recorded_sha256, generate):
        with pytest.raises(DataError, match="delete this file alone") as error:
            read(recording)
        assert str(tmp_path / "retina" / MANIFEST) in str(error.value) and "delete the folder" not in str(error.value)


def test_zoo_data_verify_says_to_delete_an_unreadable_recordings_manifest_alone(tmp_path, monkeypatch, capsys):
    """`zoo data verify` read every manifest with the derived folders' remedy, "delete the folder", where the load
    path says to delete retina/manifest.json alone (the folder holds the cached retina fits too)."""
    from neurozoo.datasets.cache import MANIFEST

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    fits = tmp_path / "retina" / "fits" / "bncnn-whitenoise"
    fits.mkdir(parents=True)
    (fits / "weights.pt").write_bytes(b"fit")
    (tmp_path / "retina" / "whitenoise-0123456789.h5").write_bytes(b"recording")
    (tmp_path / "retina" / MANIFEST).write_text('{"files": {"whitenoise-0123456789.h5": "ab')  # cut short
    assert _zoo_data("verify") == 1
    out = capsys.readouterr().out
    assert f"MISMATCH {tmp_path / 'retina' / MANIFEST}: unreadable manifest" in out
    assert "delete this file alone" in out and "delete the folder" not in out and "derived folder" not in out
    assert "1 problem;" in out


def test_zoo_data_list_shows_the_embedded_retina_recordings_and_whether_they_are_generated(
        tmp_path, monkeypatch, capsys):
    """`zoo data list` (README: "data sets, files, size, cache state") left out the embedded retina recordings that
    `zoo list` names and `zoo fit --data embedded:KIND` reads, so a user could not see whether they were generated."""
    from neurozoo.datasets.synthetic_retina import _embedded_path

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    assert _zoo_data("list") == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("embedded:")}
    assert set(rows) == {"embedded:whitenoise", "embedded:naturalscene", "embedded:oms-whitenoise",
                         "embedded:oms-naturalscene", "embedded:oms-gratingmotion"}
    assert all("not generated" in row for row in rows.values())
    path = _embedded_path("whitenoise", {})[0]  # the default-size file that embedded:whitenoise names
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert _zoo_data("list") == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("embedded:")}
    assert "not generated" not in rows["embedded:whitenoise"] and " generated " in rows["embedded:whitenoise"]
    assert "not generated" in rows["embedded:naturalscene"]
