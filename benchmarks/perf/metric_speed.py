"""Speed and memory of the span-time PLS metric: this harness vs Brain-Score's own metric, in one run.

Builds synthetic assemblies of Brain-Score's MajajHong2015-temporal size (2560 stimuli x 4 repetitions,
256 neuroids, 19 bins of 10 ms, 64 objects) and float32 model features (what the extraction produces),
then prints, side by side:

1. **Comparison** at each ``--features`` (default 300 and 1000) with ``--splits`` folds (default 10):
   this harness (``benchmarks.metrics.regression_score``, exact moment-space PLS) against
   brainscore-vision 2.4.2's ``SpanTimeCrossRegressedCorrelation(pls_regression(), pearsonr_correlation())``,
   installed from PyPI into a throw-away venv (never a project dependency; when that install fails the
   script says so and uses a re-implementation of Brain-Score's loop with sklearn ``PLSRegression``):
   wall and CPU time, peak memory, the ratios, the mean score and the largest per-bin difference.
3. **Why the per-bin scores differ** (``--explain``): on the first split only, sklearn's NIPALS
   (Brain-Score's regression) at its default ``tol=1e-6`` and converged (``tol=1e-12``) against this
   harness's exact solution. sklearn stops a component's power iteration when the squared change of its
   weight vector is below ``tol``, i.e. the weights carry errors of order ``sqrt(tol) = 1e-3``; converged,
   it lands on this harness's answer.
2. **Scaling** of this harness's time and memory with stimuli, features, bins and folds, one at a time
   around 2560 stimuli, 1000 features, 19 bins, 10 folds (``--scaling``).

Every measurement runs in its own child process: peak memory is that child's own high-water RSS (``VmHWM``;
``ru_maxrss`` would include this script's memory at fork time), which includes the imports and the loaded
inputs ("inputs" is the peak after loading, before scoring), CPU is its user+system time
(with Brain-Score's joblib workers). The machine's load average is printed beside each row: the ratios
measured side by side in one run are what counts on a shared machine.

    python benchmarks/perf/metric_speed.py [--features 300,1000] [--splits 10] [--explain] [--scaling] [--keep-venv]
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
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
n_splits = int(sys.argv[2])
options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
coords = lambda: dict(stimulus_id=('presentation', d['stimulus_id']), object_name=('presentation', d['object_name']),
                      time_bin_start=('time_bin', d['time_bin_start']), time_bin_end=('time_bin', d['time_bin_end']))
features_values, target_values = d['features'], d['target']
def maxrss_mb():
    # VmHWM: this process's own peak RSS. ru_maxrss would also count the parent's peak at fork time (Linux keeps
    # the pre-exec high-water mark), i.e. the memory of the script that generated the data.
    try:
        with open('/proc/self/status') as status:
            return next(int(line.split()[1]) for line in status if line.startswith('VmHWM')) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
def report(seconds, per_bin, method, cpu_start, inputs_mb):
    print('RESULT ' + json.dumps(dict(seconds=seconds, per_bin=[float(v) for v in per_bin], method=method,
                                      cpu_s=cpu_seconds() - cpu_start, maxrss_mb=maxrss_mb(), inputs_mb=inputs_mb)))
"""

OURS = LOAD + """
import xarray as xr
from neurozoo.benchmarks.metrics import regression_score
from neurozoo.benchmarks.metrics.regression import brainscore_splits
dims = ('presentation', 'neuroid', 'time_bin')
target = xr.DataArray(target_values, dims=dims, coords={**coords(), 'neuroid_id': ('neuroid', d['neuroid_id'])})
features = xr.DataArray(features_values, dims=dims,
                        coords={**coords(), 'neuroid_id': ('neuroid', np.arange(features_values.shape[1]))})
inputs_mb = maxrss_mb()
start, cpu_start = time.perf_counter(), cpu_seconds()
from neurozoo.benchmarks.metrics.assembly import average_repetitions, coord
splits = brainscore_splits(coord(average_repetitions(target), 'object_name'), n_splits=n_splits)
score = regression_score(features, target, mapping='pls', temporal='span', n_components=25, splits=splits)
report(time.perf_counter() - start, score.raw_per_bin, 'neurozoo exact moment-space PLS', cpu_start, inputs_mb)
"""

BRAINSCORE = LOAD + """
import warnings; warnings.filterwarnings('ignore')
from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
from brainscore_vision.metrics.regression_correlation.metric import (SpanTimeCrossRegressedCorrelation,
    pls_regression, pearsonr_correlation)
dims = ['presentation', 'neuroid', 'time_bin']
target = NeuroidAssembly(target_values, dims=dims, coords={**coords(), 'neuroid_id': ('neuroid', d['neuroid_id']),
                                                           'region': ('neuroid', ['IT'] * len(d['neuroid_id']))})
features = NeuroidAssembly(features_values, dims=dims, coords={**coords(),
    'neuroid_id': ('neuroid', [str(i) for i in range(features_values.shape[1])]),
    'layer': ('neuroid', ['layer'] * features_values.shape[1])})
inputs_mb = maxrss_mb()
metric = SpanTimeCrossRegressedCorrelation(regression=pls_regression(), correlation=pearsonr_correlation(),
                                           crossvalidation_kwargs=dict(splits=n_splits))
start, cpu_start = time.perf_counter(), cpu_seconds()
score = metric(features, target)
seconds = time.perf_counter() - start
per_bin = score.sortby('time_bin_start').values if 'time_bin' in score.dims else np.atleast_1d(score.values)
report(seconds, per_bin, 'brainscore-vision 2.4.2 SpanTimeCrossRegressedCorrelation', cpu_start, inputs_mb)
"""

SKLEARN = LOAD + """
# Brain-Score's span-time PLS loop with sklearn's PLSRegression(25, scale=False) (the regression Brain-Score wraps):
# stimuli sorted by stimulus_id, StratifiedShuffleSplit(n, train_size=.9, random_state=1) on object_name, bins
# stacked into samples, predict and correlate per bin, median over neuroids, mean over splits. options: tol, max_iter.
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import StratifiedShuffleSplit
X, Y = features_values, target_values
order = np.argsort(d['stimulus_id'])
X, Y, objects = X[order], Y[order], d['object_name'][order]
inputs_mb = maxrss_mb()
splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=0.9, random_state=1)
stack = lambda A: np.moveaxis(A, 2, 0).reshape(-1, A.shape[1])
start, cpu_start = time.perf_counter(), cpu_seconds()
scores, iterations = [], 0
for train, test in splitter.split(np.zeros(len(Y)), objects):
    pls = PLSRegression(n_components=25, scale=False, **options).fit(stack(X[train]), stack(Y[train]))
    iterations = max([iterations] + list(pls.n_iter_))
    per_bin = []
    for t in range(Y.shape[2]):
        prediction = pls.predict(X[test][:, :, t])
        r = [np.corrcoef(prediction[:, n], Y[test][:, n, t])[0, 1] for n in range(Y.shape[1])]
        per_bin.append(np.median(r))
    scores.append(per_bin)
report(time.perf_counter() - start, np.mean(scores, 0),
       f'sklearn PLSRegression {options or "defaults"} (max iterations per component {iterations})', cpu_start, inputs_mb)
"""


def synthetic_inputs(presentations=2560, neuroids=256, bins=19, repetitions=4, objects=64, features=1000,
                     noise=2.0) -> dict:
    from neurozoo.benchmarks.metrics.assembly import average_repetitions
    from neurozoo.benchmarks.synthetic import synthetic_assembly

    assembly, clean = synthetic_assembly(n_stimuli=presentations, n_neuroids=neuroids, n_bins=bins,
                                         n_repetitions=repetitions, n_objects=objects, noise=noise,
                                         latent=40, seed=0, dtype=np.float32)
    target = average_repetitions(assembly)
    rng = np.random.default_rng(1)
    # features: a random linear read-out of the noiseless signal plus independent feature noise, in float32
    mix = (rng.standard_normal((neuroids, features)) / np.sqrt(neuroids)).astype(np.float32)
    values = np.einsum("snt,nf->sft", clean.values.astype(np.float32), mix)
    values += 0.5 * rng.standard_normal(values.shape, dtype=np.float32)
    return dict(target=target.values.astype(np.float64), features=values,
                stimulus_id=target["stimulus_id"].values.astype(str), object_name=target["object_name"].values.astype(str),
                neuroid_id=target["neuroid_id"].values.astype(str), time_bin_start=target["time_bin_start"].values,
                time_bin_end=target["time_bin_end"].values)


def run_child(python: str, code: str, data: str, splits: int, options=None, env=None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(code)
    load = os.getloadavg()[0]
    try:
        completed = subprocess.run([python, handle.name, data, str(splits), json.dumps(options or {})],
                                   capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=REPO)
    finally:
        os.unlink(handle.name)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "load": (load + os.getloadavg()[0]) / 2}
    raise RuntimeError(f"{python} failed:\n{completed.stderr[-3000:]}")


def median_run(repeat: int, *child_args, **child_kwargs) -> dict:
    """The run with the median wall time of ``repeat`` runs (a busy machine adds noise; the baseline runs once)."""
    runs = sorted((run_child(*child_args, **child_kwargs) for _ in range(repeat)), key=lambda result: result["seconds"])
    return runs[len(runs) // 2]


def brainscore_venv(path: Path) -> str:
    """Create the throw-away venv with brainscore-vision from PyPI; returns its python or raises."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # --no-deps for the two Brain-Score packages: their full requirements pull torch, jupyter and opencv,
    # none of which the metric code imports; the metric's own imports are listed in BRAINSCORE_PACKAGES.
    subprocess.run(pip + ["--no-deps", "brainscore-vision==2.4.2", "brainscore-core"], check=True, capture_output=True)
    subprocess.run(pip + BRAINSCORE_PACKAGES, check=True, capture_output=True)
    subprocess.run([str(python), "-c", "import brainscore_vision.metrics.regression_correlation.metric"], check=True,
                   capture_output=True)
    return str(python)


def write_inputs(folder: str, name: str, **sizes) -> str:
    path = os.path.join(folder, f"{name}.npz")
    np.savez(path, **synthetic_inputs(**sizes))
    return path


def row(label: str, result: dict) -> str:
    return (f"{label:38s} {result['seconds']:9.2f} {result['cpu_s']:9.1f} {result['maxrss_mb']:8.0f} "
            f"{result['inputs_mb']:8.0f} {result['load']:6.1f}")


HEADER = f"{'':38s} {'wall s':>9s} {'CPU s':>9s} {'peak MB':>8s} {'inputs':>8s} {'load':>6s}"


def compare(args, folder: str, ours_env: dict, baseline_python) -> None:
    print("\n== 1. this harness vs Brain-Score, same inputs, same splits ==", flush=True)
    baseline_splits = args.baseline_splits or args.splits
    for n_features in args.features:
        data = write_inputs(folder, f"compare{n_features}", features=n_features, **sizes(args))
        print(f"\n{args_line(args, n_features, baseline_splits)}\n{HEADER}", flush=True)
        ours = median_run(args.repeat, sys.executable, OURS, data, baseline_splits, env=ours_env)
        print(row(f"neurozoo (median of {args.repeat})", ours), flush=True)
        if baseline_python:
            baseline = run_child(baseline_python, BRAINSCORE, data, baseline_splits)
        else:
            baseline = run_child(sys.executable, SKLEARN, data, baseline_splits)
        print(row("baseline", baseline) + f"   [{baseline['method']}]")
        ours_bins, base_bins = np.array(ours["per_bin"]), np.array(baseline["per_bin"])
        print(f"ratio: {baseline['seconds'] / ours['seconds']:.1f}x wall, {baseline['cpu_s'] / ours['cpu_s']:.1f}x CPU, "
              f"peak memory {ours['maxrss_mb'] / baseline['maxrss_mb']:.2f} of the baseline's")
        print(f"score (mean over bins of the median-neuroid r): neurozoo {ours_bins.mean():.6f}, baseline "
              f"{base_bins.mean():.6f}, |diff| {abs(ours_bins.mean() - base_bins.mean()):.1e}; largest per-bin |diff| "
              f"{np.abs(ours_bins - base_bins).max():.1e} (bin {int(np.abs(ours_bins - base_bins).argmax())})", flush=True)
        if baseline_splits != args.splits:
            # Brain-Score fits every split from scratch (its cost is linear in splits); this harness shares one Gram
            full = median_run(args.repeat, sys.executable, OURS, data, args.splits, env=ours_env)
            factor = args.splits / baseline_splits
            print(row(f"neurozoo, {args.splits} splits", full), flush=True)
            print(f"{args.splits} splits: baseline extrapolated x{factor:g} from {baseline_splits} (linear in splits): "
                  f"{baseline['seconds'] * factor / full['seconds']:.1f}x wall, "
                  f"{baseline['cpu_s'] * factor / full['cpu_s']:.1f}x CPU", flush=True)


def explain(args, folder: str, ours_env: dict) -> None:
    print("\n== 3. per-bin differences come from NIPALS's stopping tolerance (first split only) ==", flush=True)
    for n_features in args.explain_features or args.features:
        data = os.path.join(folder, f"compare{n_features}.npz")
        if not os.path.exists(data):
            data = write_inputs(folder, f"compare{n_features}", features=n_features, **sizes(args))
        print(f"\n{args_line(args, n_features, 1)}\n{HEADER}", flush=True)
        ours = run_child(sys.executable, OURS, data, 1, env=ours_env)
        print(row("neurozoo (exact)", ours), flush=True)
        for label, options in (("sklearn NIPALS tol=1e-6 (Brain-Score)", {}),
                               ("sklearn NIPALS tol=1e-12", {"tol": 1e-12, "max_iter": args.max_iter})):
            result = run_child(sys.executable, SKLEARN, data, 1, options=options)
            difference = np.abs(np.array(result["per_bin"]) - np.array(ours["per_bin"]))
            print(row(label, result) + f"   largest per-bin |diff| to exact {difference.max():.1e}, mean "
                  f"{difference.mean():.1e}   [{result['method']}]", flush=True)


def scaling(args, folder: str, ours_env: dict) -> None:
    print("\n== 2. scaling of this harness (one size varied at a time; base 2560 stimuli, 1000 features, 19 bins, "
          "10 folds) ==", flush=True)
    print(f"{'stimuli':>8s} {'features':>8s} {'bins':>5s} {'folds':>5s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s} "
          f"{'inputs':>8s} {'metric':>8s} {'load':>5s}", flush=True)
    base = dict(presentations=2560, features=1000, bins=19, folds=10)
    grid = ([dict(base, presentations=n) for n in (640, 1280, 2560, 5120)]
            + [dict(base, features=f) for f in (100, 300, 2000, 4000)]
            + [dict(base, bins=t) for t in (1, 5, 38)]
            + [dict(base, folds=k) for k in (2, 5, 20)])
    for point in grid:
        data = write_inputs(folder, "scaling", presentations=point["presentations"], features=point["features"],
                            bins=point["bins"])
        result = run_child(sys.executable, OURS, data, point["folds"], env=ours_env)
        print(f"{point['presentations']:8d} {point['features']:8d} {point['bins']:5d} {point['folds']:5d} "
              f"{result['seconds']:8.2f} {result['cpu_s']:8.1f} {result['maxrss_mb']:8.0f} {result['inputs_mb']:8.0f} "
              f"{result['maxrss_mb'] - result['inputs_mb']:8.0f} {result['load']:5.1f}", flush=True)
        os.unlink(data)


def sizes(args) -> dict:
    return dict(presentations=args.presentations, neuroids=args.neuroids, bins=args.bins, objects=args.objects)


def args_line(args, n_features: int, splits: int) -> str:
    from neurozoo.datasets.text_table import counted  # the script's parent process imports no neurozoo otherwise

    return (f"-- {args.presentations} stimuli x 4 repetitions, {args.neuroids} neuroids, {args.bins} bins, "
            f"{args.objects} objects; {n_features} float32 features; {counted(splits, 'split')}")


def main(argv=None) -> int:
    from neurozoo.datasets.cli_args import ShowDefaultsRaw, ZooArgumentParser

    parser = ZooArgumentParser(description=__doc__, formatter_class=ShowDefaultsRaw)
    parser.add_argument("--features", default="300,1000", type=lambda text: [int(v) for v in text.split(",")])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--baseline-splits", type=int, default=None,
                        help="splits for the (slow) baseline when fewer than --splits; its time is then extrapolated "
                             "linearly to --splits (each split is an independent fit there)")
    parser.add_argument("--explain-features", default=None, type=lambda text: [int(v) for v in text.split(",")],
                        help="feature counts of section 2 (default: --features)")
    parser.add_argument("--presentations", type=int, default=2560, help="stimuli of sections 1 and 2")
    parser.add_argument("--neuroids", type=int, default=256)
    parser.add_argument("--bins", type=int, default=19)
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs of this harness in section 1 (median reported)")
    parser.add_argument("--explain", action="store_true", help="section 2: sklearn NIPALS at two tolerances")
    parser.add_argument("--max-iter", type=int, default=5000, help="sklearn max_iter for the converged NIPALS")
    parser.add_argument("--scaling", action="store_true", help="section 3: this harness's scaling table")
    parser.add_argument("--no-compare", action="store_true", help="skip section 1")
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "neurozoo-brainscore-venv")
    parser.add_argument("--keep-venv", action="store_true", help="keep the throw-away venv for a later run")
    parser.add_argument("--baseline", choices=["brainscore", "sklearn"], default="brainscore")
    args = parser.parse_args(argv)
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    sys.path.insert(0, str(REPO))
    ours_env = {"PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    from neurozoo.datasets.provenance import cpu_model

    cpu = cpu_model()
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs ({cpu}); "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    from neurozoo.datasets.cache import owned_temporary_folder

    # a killed run's inputs are removed by the next run (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-metric-speed-") as folder:
        baseline_python = None
        if not args.no_compare and args.baseline == "brainscore":
            try:
                started = time.perf_counter()
                baseline_python = brainscore_venv(args.venv)
                print(f"brainscore-vision venv ready at {args.venv} ({time.perf_counter() - started:.0f} s)", flush=True)
            except (subprocess.CalledProcessError, OSError) as error:
                detail = getattr(error, "stderr", None) or str(error)
                print(f"brainscore-vision unavailable ({str(detail).strip().splitlines()[-1] if detail else error}); "
                      "FALLING BACK to the sklearn re-implementation of Brain-Score's loop", flush=True)
        try:
            if not args.no_compare:
                compare(args, folder, ours_env, baseline_python)
            if args.scaling:
                scaling(args, folder, ours_env)
            if args.explain:
                explain(args, folder, ours_env)
        finally:
            if baseline_python and not args.keep_venv:
                subprocess.run(["rm", "-rf", str(args.venv)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
