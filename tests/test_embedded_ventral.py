"""Embedded ventral benchmark: rendered stimuli, teacher dynamics, and data that match the teacher's known answer."""
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from neurozoo import datasets
from neurozoo.datasets.cache import cache_dir
from neurozoo.datasets.embedded import images, load_expected, load_ventral, teacher, ventral
from neurozoo.datasets.embedded.shapes import OBJECTS, VARIATIONS, render_set
from neurozoo.datasets.embedded.teacher_network import DELAYS, TRIAL_GAIN_SD, VentralTeacher
from neurozoo.datasets.errors import DataError


@pytest.fixture(scope="module")
def module_cache(session_cache):
    """Module fixtures run before conftest's per-test cache fixture: point them at the same session cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROZOO_CACHE", session_cache)
        yield


@pytest.fixture(scope="module")
def data(module_cache):
    (v4, stimuli), (it, _) = load_ventral("V4"), load_ventral("IT")
    return {"V4": v4, "IT": it, "stimuli": stimuli}


@pytest.fixture(scope="module")
def expected(module_cache, data):
    """The teacher's noiseless expected counts for the stimulus set, (stimuli, neuroids, bins) per region."""
    return {region: load_expected(region).values for region in ("V4", "IT")}


def _by_repetition(assembly):
    reps = assembly["repetition"].values
    n_rep = reps.max() + 1
    order = np.lexsort((assembly["stimulus_id"].values, reps))
    return assembly.values[order].reshape(n_rep, -1, *assembly.shape[1:])  # (rep, stimulus sorted by id, n, t)


def test_layout_and_labels(data):
    stimuli = data["stimuli"]
    assert len(stimuli) == len(OBJECTS) * len(VARIATIONS) * 12 == 288
    assert stimuli.groupby(["object_name", "variation"]).size().eq(12).all()
    for region, n in (("V4", 40), ("IT", 60)):
        assembly = data[region]
        assert assembly.dims == ("presentation", "neuroid", "time_bin") and assembly.shape == (2880, n, 19)
        for name, dim in (("stimulus_id", "presentation"), ("object_name", "presentation"), ("repetition", "presentation"),
                          ("neuroid_id", "neuroid"), ("region", "neuroid"), ("time_bin_start", "time_bin"),
                          ("time_bin_end", "time_bin")):
            assert assembly[name].dims == (dim,)
        assert list(assembly["time_bin_start"].values) == list(range(70, 260, 10))
        assert list(assembly["time_bin_end"].values) == list(range(80, 270, 10))
        assert set(assembly["region"].values) == {region} and set(assembly["repetition"].values) == set(range(10))
        assert set(assembly["stimulus_id"].values) == set(stimuli["stimulus_id"])
        assert assembly.dtype == np.float64 and (assembly.values == np.round(assembly.values)).all()
    with Image.open(stimuli.get_stimulus("ventral_0100")) as image:
        assert image.size == (64, 64) and image.mode == "RGB"


def test_v0_has_no_pose_variation_and_v6_has_most(data):
    stimuli = data["stimuli"]
    spread = stimuli.groupby("variation")[["position_x", "size", "rotation"]].std()
    assert (spread.loc["V0"] == 0).all()
    assert (spread.loc["V6"] > spread.loc["V3"]).all()


def test_rendering_and_teacher_are_deterministic():
    first, records = render_set(seed=3, per_object_level=1)
    second, _ = render_set(seed=3, per_object_level=1)
    other, _ = render_set(seed=4, per_object_level=1)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other) and len(records) == 24
    a, b, c = VentralTeacher(7), VentralTeacher(7), VentralTeacher(8)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.convs["IT"].weight, c.convs["IT"].weight)


def test_trial_means_and_variances_recover_the_teacher(data, expected):
    for region in ("V4", "IT"):
        trials = _by_repetition(data[region])
        lam = expected[region]  # stimuli in row order == sorted ids (ventral_0000..)
        gain_mean = np.exp(TRIAL_GAIN_SD ** 2 / 2)
        gain_var = np.exp(2 * TRIAL_GAIN_SD ** 2) - gain_mean ** 2
        assert trials.mean() / (lam.mean() * gain_mean) == pytest.approx(1.0, abs=0.02)
        # Poisson with a trial gain: Var = E[g] lam + Var[g] lam^2
        predicted = (gain_mean * lam + gain_var * lam ** 2).sum()
        assert trials.var(axis=0, ddof=1).sum() / predicted == pytest.approx(1.0, abs=0.05)
        # correlation of the 10-trial means with the truth at the peak bin, as the noise model predicts it
        peak = lam.mean(axis=(0, 1)).argmax()
        truth, noise = gain_mean * lam[:, :, peak], (gain_mean * lam + gain_var * lam ** 2)[:, :, peak]
        predicted_r = np.sqrt(truth.var() / (truth.var() + noise.mean() / trials.shape[0]))
        r = np.corrcoef(trials.mean(0)[:, :, peak].ravel(), truth.ravel())[0, 1]
        assert r == pytest.approx(predicted_r, abs=0.02)


def test_the_teacher_reproduces_the_expected_counts(data, expected):
    subset = data["stimuli"].iloc[[0, 50, 100, 150, 200, 287]]
    responses = teacher().responses(images(subset))
    rows = [int(s.split("_")[1]) for s in subset["stimulus_id"]]
    for region in ("V4", "IT"):
        np.testing.assert_allclose(responses[region].double().numpy(), expected[region][rows], rtol=1e-5, atol=1e-7)


def test_known_latencies_and_time_course(data, expected):
    v4, it = expected["V4"].mean(axis=(0, 1)), expected["IT"].mean(axis=(0, 1))
    baseline_it = teacher().baseline_IT.double().mean().item() / 100
    # IT's first drive arrives at step sum(DELAYS) = 8 (80 ms): the 70 ms bin is baseline only
    assert sum(DELAYS.values()) == 8
    assert it[0] == pytest.approx(baseline_it, rel=1e-6) and it[1] > 1.5 * baseline_it
    assert v4[0] > 2 * teacher().baseline_V4.double().mean().item() / 100
    assert it.argmax() > v4.argmax()  # IT peaks later
    assert v4[-1] < 0.7 * v4.max() and np.all(np.diff(v4[-6:]) < 0)  # offset: the image left at 100 ms
    # split-half reliability in the data follows: no stimulus information in IT's 70 ms bin, plenty at its peak
    trials = _by_repetition(data["IT"])
    half1, half2 = trials[0::2].mean(0), trials[1::2].mean(0)
    z1 = (half1 - half1.mean(0)) / (half1.std(0) + 1e-12)
    z2 = (half2 - half2.mean(0)) / (half2.std(0) + 1e-12)
    r = np.median((z1 * z2).mean(0), axis=0)
    assert abs(r[0]) < 0.1 and r[it.argmax()] > 0.4


def test_features_span_the_neural_signal(data):
    model = teacher()
    x = images(data["stimuli"].iloc[:24])
    features = model.features(x, ["V4", "IT"])
    responses = model.responses(x)
    for region in ("V4", "IT"):
        readout = model.__getattr__(f"readout_{region}").flatten(1)  # (n, C*H*W)
        linear = torch.einsum("bft,nf->bnt", features[region], readout)
        rate = model.__getattr__(f"baseline_{region}").view(1, -1, 1) + model.__getattr__(f"gain_{region}").view(1, -1, 1) * linear
        # the same sums in another order (einsum against the model's readout): float32 last bits, on any CPU
        torch.testing.assert_close(rate / 100, responses[region], rtol=1e-4, atol=1e-5)
    static = model.features(x, ["IT"], feedforward=True)["IT"]
    assert static.shape == (24, 64 * 4 * 4, 1) and features["IT"].shape == (24, 1024, 19)


def test_convrnn_contract_and_gray_input(data):
    model = teacher()
    x = images(data["stimuli"].iloc[:4])
    recorded = model(x, n_steps=26, image_steps=10, record=["V1", "IT"]).recorded
    assert recorded["V1"].shape == (26, 4, 16, 16, 16) and recorded["IT"].shape == (26, 4, 64, 4, 4)
    assert recorded["IT"][:8].abs().max() == 0 and recorded["IT"][8].abs().max() > 0
    assert recorded["V1"][:DELAYS["V1"]].abs().max() == 0
    blank = model(x, n_steps=26, image_steps=0, record=["IT"]).recorded["IT"]
    assert blank.abs().max() == 0  # mean gray drives nothing
    # a harness that loads the images at another size gets them resized back to the generation size (approximately)
    upsampled = torch.nn.functional.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False)
    resized = model(upsampled, record=["IT"]).recorded["IT"].flatten()
    assert resized.numel() == recorded["IT"].numel()
    assert np.corrcoef(resized.numpy(), recorded["IT"].flatten().numpy())[0, 1] > 0.95
    with pytest.raises(KeyError, match="no layer 'V2'"):
        model(x, record=["V2"])


def test_cached_and_registered(data):
    folder = ventral.folder()
    stamp = (folder / "IT.nc").stat().st_mtime_ns
    recording = datasets.DATASETS.create("ventral_embedded.IT")
    assert (folder / "IT.nc").stat().st_mtime_ns == stamp  # loaded from the cache, not regenerated
    assembly, stimuli = recording
    np.testing.assert_array_equal(assembly.values, data["IT"].values)
    assert stimuli.sha256() == data["stimuli"].sha256()
    entry = datasets.DATASETS.get("ventral_embedded.V4")
    assert entry.tags["family"] == "ventral_embedded" and entry.tags["region"] == "V4"
    assert teacher() is teacher()


def test_tampered_cache_is_refused(data, tmp_path, monkeypatch):
    # tampered in a copy: the run's cache is shared by the workers of a parallel run, where other tests read V4.nc
    shutil.copytree(ventral.folder(), tmp_path / ventral.folder().relative_to(cache_dir()))
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    path = ventral.folder() / "V4.nc"
    assert path.is_relative_to(tmp_path)
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(DataError, match=r"V4\.nc: sha256 .* differs"):
        load_ventral("V4")
    with pytest.raises(DataError, match="region must be one of"):
        load_ventral("V1")


def test_selectivity_shifts_during_the_response(expected):
    """A static model predicts one pattern across stimuli for every bin; the teacher's patterns change over time.

    The share of the (per-bin z-scored) signal that the time-averaged pattern leaves unexplained bounds
    what any static feature set can reach with one mapping; the teacher's own features reach it exactly.
    """
    for region, first in (("V4", 0), ("IT", 2)):  # IT has no signal before 80 ms
        signal = expected[region][:, :, first:]
        z = (signal - signal.mean(0)) / signal.std(0)
        unexplained = ((z - z.mean(axis=2, keepdims=True)) ** 2).sum() / (z ** 2).sum()
        assert 0.04 < unexplained < 0.3


#: CPU kernels the data must not depend on: oneDNN's float32 convolutions and MKL's vector math and matrix
#: products each pick their code by instruction set (a host with AMX and AVX-512 FP16 once gave a third digest
#: through MKL's float32 exp), and torch's scalar kernels stand for CPUs without AVX2
OTHER_KERNELS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
                 "sse4.2-math": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
                 "no-avx2": {"ATEN_CPU_CAPABILITY": "default"}}


def test_the_data_generated_with_other_cpu_kernels_match_a_digest_pinned_in_code(tmp_path):
    """The pinned digest must hold on other CPUs: rebuild under each of OTHER_KERNELS (at once, one thread each)."""
    import subprocess
    import sys

    from neurozoo.datasets.checksums import EMBEDDED_SHA256
    from neurozoo.datasets.embedded import ventral

    code = "from neurozoo.datasets.embedded import ventral; ventral.ensure(); print(ventral.folder().name)"
    runs = {name: subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=dict(os.environ, NEUROZOO_CACHE=str(tmp_path / name),
                                                       OMP_NUM_THREADS="1", **kernels))
            for name, kernels in OTHER_KERNELS.items()}
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, (name, stderr[-2000:])  # ensure() raises DataError on an unpinned digest
        assert stdout.split()[-1] == ventral.folder().name in EMBEDDED_SHA256


def test_a_second_process_waits_for_the_generation_under_way_and_reads_it(tmp_path, monkeypatch):
    """Two processes (a parallel test run's workers, two `zoo score`s) each generated the same 10 s data set: one now
    waits on the folder's lock (flock, held here as the other process would) and reads what the other made."""
    import fcntl
    import threading
    import time

    from neurozoo.datasets.cache import building

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    generated = []
    monkeypatch.setattr(ventral, "_generate", lambda target, seed: generated.append(seed))
    monkeypatch.setattr(ventral, "verify_pinned", lambda folder, pins: None)  # the folder below holds no real data
    target = ventral.folder()
    target.parent.mkdir(parents=True)
    other = open(target.parent / f".{target.name}.lock", "a")
    fcntl.flock(other, fcntl.LOCK_EX)
    done = []
    waiter = threading.Thread(target=lambda: done.append(ventral.ensure()))
    waiter.start()
    time.sleep(0.3)
    assert not done and not generated  # it waits for the other process
    with building(target, {"generator_version": ventral.GENERATOR_VERSION, "seed": ventral.DEFAULT_SEED}) as tmp:
        (tmp / "IT.nc").write_bytes(b"made by the other process")
    fcntl.flock(other, fcntl.LOCK_UN)
    other.close()
    waiter.join(10)
    assert done == [target] and generated == []  # read, not generated again
    assert (target / "IT.nc").read_bytes() == b"made by the other process"
