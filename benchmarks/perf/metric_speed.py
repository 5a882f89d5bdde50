"""Speed of the span-time PLS metric: this harness vs Brain-Score's own metric.

Builds a synthetic assembly of Brain-Score's MajajHong2015-temporal size (2560 stimuli x repetitions,
256 neuroids, 19 bins of 10 ms, 64 objects) and model features, then scores the features with

* this harness (``benchmarks.metrics.regression_score``, exact moment-space PLS), and
* brainscore-vision's ``SpanTimeCrossRegressedCorrelation(pls_regression(), pearsonr_correlation())``,
  installed from PyPI into a throw-away venv by this script (never a project dependency). When that
  install fails the script falls back to a faithful re-implementation of Brain-Score's loop with plain
  sklearn ``PLSRegression(25, scale=False)`` per split and says so.

Each side runs in its own child process, so the reported peak memory (ru_maxrss of the child) and time
are its own. Prints both times, the speed ratio, peak memory and the per-bin and mean score differences.

    python benchmarks/perf/metric_speed.py [--features 300] [--splits 10] [--keep-venv]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BRAINSCORE_PACKAGES = [  # brainscore-vision's metric code needs only these (torch etc. are for models)
    "numpy<2", "scikit-learn<1.6", "scipy", "pandas<2.2", "xarray<2022.6", "tqdm", "result-caching", "netCDF4",
    "boto3", "requests", "PyYAML>=6.0.3", "Pillow", "fire", "peewee", "pybtex", "psycopg2-binary",
    "importlib-metadata<5", "gitpython", "networkx", "psutil"]

LOAD = """
import json, resource, sys, time
import numpy as np
d = np.load(sys.argv[1])
coords = lambda: dict(stimulus_id=('presentation', d['stimulus_id']), object_name=('presentation', d['object_name']),
                      time_bin_start=('time_bin', d['time_bin_start']), time_bin_end=('time_bin', d['time_bin_end']))
def cpu_seconds():
    # this process, its worker processes still alive (Brain-Score's joblib/loky pool) and reaped children
    total = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                for f in ('ru_utime', 'ru_stime'))
    try:
        import psutil
        for child in psutil.Process().children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    except ImportError:
        pass
    return total
def report(seconds, per_bin, method, cpu_start):
    print('RESULT ' + json.dumps(dict(seconds=seconds, per_bin=[float(v) for v in per_bin], method=method,
                                      cpu_s=cpu_seconds() - cpu_start,
                                      maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""

OURS = LOAD + """
import xarray as xr
from neurozoo.benchmarks.metrics import regression_score
dims = ('presentation', 'neuroid', 'time_bin')
target = xr.DataArray(d['target'], dims=dims, coords={**coords(), 'neuroid_id': ('neuroid', d['neuroid_id'])})
features = xr.DataArray(d['features'], dims=dims, coords={**coords(), 'neuroid_id': ('neuroid', np.arange(d['features'].shape[1]))})
start, cpu_start = time.perf_counter(), cpu_seconds()
score = regression_score(features, target, mapping='pls', temporal='span', n_components=25)
report(time.perf_counter() - start, score.raw_per_bin, 'neurozoo exact moment-space PLS', cpu_start)
"""

BRAINSCORE = LOAD + """
import warnings; warnings.filterwarnings('ignore')
from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
from brainscore_vision.metrics.regression_correlation.metric import (SpanTimeCrossRegressedCorrelation,
    pls_regression, pearsonr_correlation)
dims = ['presentation', 'neuroid', 'time_bin']
target = NeuroidAssembly(d['target'], dims=dims, coords={**coords(), 'neuroid_id': ('neuroid', d['neuroid_id']),
                                                         'region': ('neuroid', ['IT'] * len(d['neuroid_id']))})
features = NeuroidAssembly(d['features'], dims=dims, coords={**coords(),
    'neuroid_id': ('neuroid', [str(i) for i in range(d['features'].shape[1])]),
    'layer': ('neuroid', ['layer'] * d['features'].shape[1])})
metric = SpanTimeCrossRegressedCorrelation(regression=pls_regression(), correlation=pearsonr_correlation(),
                                           crossvalidation_kwargs=dict(splits=int(sys.argv[2])))
start, cpu_start = time.perf_counter(), cpu_seconds()
score = metric(features, target)
seconds = time.perf_counter() - start
per_bin = score.sortby('time_bin_start').values if 'time_bin' in score.dims else np.atleast_1d(score.values)
report(seconds, per_bin, 'brainscore-vision SpanTimeCrossRegressedCorrelation (PyPI)', cpu_start)
"""

SKLEARN = LOAD + """
# Faithful re-implementation of Brain-Score's span-time PLS loop (used only when brainscore-vision cannot be
# installed): stimuli sorted by stimulus_id, StratifiedShuffleSplit(10, train_size=.9, random_state=1) on
# object_name, bins stacked into samples, sklearn PLSRegression(25, scale=False), predict and correlate per bin,
# median over neuroids, mean over splits.
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import StratifiedShuffleSplit
X, Y = d['features'], d['target']
order = np.argsort(d['stimulus_id'])
X, Y, objects = X[order], Y[order], d['object_name'][order]
splitter = StratifiedShuffleSplit(n_splits=int(sys.argv[2]), train_size=0.9, random_state=1)
stack = lambda A: np.moveaxis(A, 2, 0).reshape(-1, A.shape[1])
start, cpu_start = time.perf_counter(), cpu_seconds()
scores = []
for train, test in splitter.split(np.zeros(len(Y)), objects):
    pls = PLSRegression(n_components=25, scale=False).fit(stack(X[train]), stack(Y[train]))
    per_bin = []
    for t in range(Y.shape[2]):
        prediction = pls.predict(X[test][:, :, t])
        r = [np.corrcoef(prediction[:, n], Y[test][:, n, t])[0, 1] for n in range(Y.shape[1])]
        per_bin.append(np.median(r))
    scores.append(per_bin)
report(time.perf_counter() - start, np.mean(scores, 0), 'sklearn PLSRegression re-implementation (brainscore-vision unavailable)',
       cpu_start)
"""


def synthetic_inputs(args) -> dict:
    sys.path.insert(0, str(REPO))
    from neurozoo.benchmarks.metrics.assembly import average_repetitions
    from neurozoo.benchmarks.synthetic import synthetic_assembly

    assembly, clean = synthetic_assembly(n_stimuli=args.presentations, n_neuroids=args.neuroids, n_bins=args.bins,
                                         n_repetitions=args.repetitions, n_objects=args.objects, noise=args.noise,
                                         latent=40, seed=0, dtype=np.float32)
    target = average_repetitions(assembly)
    rng = np.random.default_rng(1)
    # features: a random linear read-out of the noiseless signal plus independent feature noise
    mix = rng.standard_normal((args.neuroids, args.features)) / np.sqrt(args.neuroids)
    features = np.einsum("snt,nf->sft", clean.values, mix) + 0.5 * rng.standard_normal(
        (args.presentations, args.features, args.bins))
    return dict(target=target.values.astype(np.float64), features=features.astype(np.float64),
                stimulus_id=target["stimulus_id"].values.astype(str), object_name=target["object_name"].values.astype(str),
                neuroid_id=target["neuroid_id"].values.astype(str), time_bin_start=target["time_bin_start"].values,
                time_bin_end=target["time_bin_end"].values)


def run_child(python: str, code: str, data: str, splits: int, env=None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(code)
    try:
        completed = subprocess.run([python, handle.name, data, str(splits)], capture_output=True, text=True,
                                   env={**os.environ, **(env or {})}, cwd=REPO)
    finally:
        os.unlink(handle.name)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{python} failed:\n{completed.stderr[-3000:]}")


def brainscore_venv(path: Path) -> str:
    """Create the throw-away venv with brainscore-vision from PyPI; returns its python or raises."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # --no-deps for the two Brain-Score packages: their full requirements pull torch, jupyter and opencv,
    # none of which the metric code imports; the metric's own imports are listed in BRAINSCORE_PACKAGES.
    subprocess.run(pip + ["--no-deps", "brainscore-vision", "brainscore-core"], check=True, capture_output=True)
    subprocess.run(pip + BRAINSCORE_PACKAGES, check=True, capture_output=True)
    subprocess.run([str(python), "-c", "import brainscore_vision.metrics.regression_correlation.metric"], check=True,
                   capture_output=True)
    return str(python)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presentations", type=int, default=2560)
    parser.add_argument("--neuroids", type=int, default=256)
    parser.add_argument("--bins", type=int, default=19)
    parser.add_argument("--repetitions", type=int, default=4)
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--features", type=int, default=300)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "neurozoo-brainscore-venv")
    parser.add_argument("--keep-venv", action="store_true", help="keep the throw-away venv for a later run")
    parser.add_argument("--baseline", choices=["brainscore", "sklearn"], default="brainscore")
    args = parser.parse_args(argv)

    print(f"synthetic assembly: {args.presentations} stimuli x {args.repetitions} repetitions, {args.neuroids} neuroids, "
          f"{args.bins} bins, {args.objects} objects; features: {args.features}; splits: {args.splits}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        data = os.path.join(folder, "inputs.npz")
        np.savez(data, **synthetic_inputs(args))
        ours = run_child(sys.executable, OURS, data, args.splits, env={"PYTHONPATH": str(REPO)})
        print(f"neurozoo:   {ours['seconds']:8.2f} s wall {ours['cpu_s']:8.1f} s CPU   peak RSS {ours['maxrss_mb']:7.0f} MB",
              flush=True)
        baseline = None
        if args.baseline == "brainscore":
            try:
                started = time.perf_counter()
                python = brainscore_venv(args.venv)
                print(f"brainscore-vision venv ready at {args.venv} ({time.perf_counter() - started:.0f} s)", flush=True)
                baseline = run_child(python, BRAINSCORE, data, args.splits)
            except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
                detail = getattr(error, "stderr", None) or str(error)
                print(f"brainscore-vision unavailable ({str(detail).strip().splitlines()[-1] if detail else error}); "
                      "FALLING BACK to the sklearn re-implementation of Brain-Score's loop", flush=True)
            finally:
                if not args.keep_venv:
                    subprocess.run(["rm", "-rf", str(args.venv)])
        if baseline is None:
            baseline = run_child(sys.executable, SKLEARN, data, args.splits)
    print(f"baseline:   {baseline['seconds']:8.2f} s wall {baseline['cpu_s']:8.1f} s CPU   peak RSS "
          f"{baseline['maxrss_mb']:7.0f} MB   [{baseline['method']}]")
    ours_bins, base_bins = np.array(ours["per_bin"]), np.array(baseline["per_bin"])
    print(f"speed-up:   {baseline['seconds'] / ours['seconds']:8.1f} x wall   {baseline['cpu_s'] / ours['cpu_s']:8.1f} x CPU   "
          f"memory ratio {baseline['maxrss_mb'] / ours['maxrss_mb']:.2f}")
    print(f"score (mean over bins of median-neuroid r): neurozoo {ours_bins.mean():.6f}  baseline {base_bins.mean():.6f}  "
          f"|diff| {abs(ours_bins.mean() - base_bins.mean()):.2e}")
    if ours_bins.shape == base_bins.shape:
        print(f"max per-bin |diff|: {np.abs(ours_bins - base_bins).max():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
