"""Speed and memory of scoring a ConvRNN on the Cowley 2023 V4 benchmark: extraction before and after, in one run.

Scores full-width ``rgc_intermediate`` (seeded random weights: nothing is downloaded) on ``cowley2023.V4``
(real V4 recordings from ``$NEUROZOO_SHARED_DATA``, one 70-170 ms bin, layers conv5/conv6 with layer
selection, 10 splits, ceiling) end to end -- image loading, extraction, metric -- with

* **before**: ``benchmarks/extraction/activations.py`` as it was at ``--before-commit`` (read with
  ``git show``): every layer output of all 26 steps recorded, the reference path;
* **after**: the current extraction: the unroll stops after the last step the bins need (step 12 of 26
  here) and computes only the layer steps the recorded layers depend on (``readout=False``), the CPU fast
  path (``activations.CPU_FAST``: channels-last, separate gate convolutions, each layer's image-free first
  steps computed once for the batch), each step reduced as the model computes it (``on_step``), the images
  kept as uint8 pixels and normalised per batch, glibc's mmap threshold at 32 MB and the heap trimmed after
  each batch;
* ``--runs before,after,reference,bf16``: also the current extraction with ``fast=False`` (to separate the two
  gains), and with the CPU fast path in bfloat16 (``fast={**CPU_FAST, "dtype": torch.bfloat16}``); ``eager``:
  ``fast=True``, ``to_fast()``'s defaults (bfloat16, gates unfused, not compiled); ``compiled``: the same with
  ``compile="step"`` (minutes of compilation first). The first run is the
  baseline of the ratios.
* ``--device cuda``: the model and extraction on the GPU (there the fast path of **after** is
  ``activations.GPU_FAST``, as eager as the CPU's: float32, channels-last, not compiled), with the GPU's peak
  allocated memory; e.g. ``--device cuda --runs reference,after,eager`` where the git history is not at hand.

Both run the current model code (``convrnn``, including the RGC's in-place gate arithmetic without autograd);
before reads the images as one float32 tensor, as the old loader gave them. Each runs in its own child process,
one after the other (never side by side), with ``OMP_WAIT_POLICY=PASSIVE`` as the zoo CLI sets it: wall and
CPU time, peak memory (the child's own ``VmHWM``), the score and the raw r; the load average is printed at the
start and the end. ``--images N`` scores the first N of the 640 images (all 640 are loaded, then only the N
kept).

Measured on 2026-12-01 from 16:27 UTC (2 shared cores, the other engineer's work running: load average 1.45
at the start, 2.8-5.3 during, 1.92 at the end), batch 32, all 640 images, before then after: see docs/performance.md,
"Speed and memory of scoring". Before (extraction at 357f43b): 2329 s wall, 2301 CPU-s, peak 3.21 GB; after:
472 s wall, 644 CPU-s, peak 1.66 GB; score 0.21342 on both (2.1e-7 apart): 4.94x wall, 3.57x CPU.

    python benchmarks/perf/extraction_speed.py [--images 128] [--batch-size 32] [--device cpu|cuda]
        [--runs before,after[,reference,bf16,eager,compiled]]
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BEFORE_COMMIT = "357f43b"  # the extraction before issue 15 (all 26 steps recorded, reference path)

CHILD = r"""
import json, resource, subprocess, sys, time, types
import numpy as np
import torch

mode, n_images, batch_size, commit, repo, device = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                                    sys.argv[5], sys.argv[6])
def peak_mb():
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmHWM')) / 1024
def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

from neurozoo import benchmarks, convrnn
import neurozoo.benchmarks.neural as neural
from neurozoo.benchmarks.extraction import Stimuli
from neurozoo.benchmarks.metrics.assembly import coord

options = {}
if mode == 'before':
    source = subprocess.run(['git', '-C', repo, 'show', f'{commit}:benchmarks/extraction/activations.py'],
                            check=True, capture_output=True, text=True).stdout
    before = sys.modules['activations_before'] = types.ModuleType('activations_before')  # dataclasses look it up
    exec(compile(source, f'{commit}:benchmarks/extraction/activations.py', 'exec'), before.__dict__)
    neural.extract = before.extract
elif mode == 'reference':
    options['fast'] = False
elif mode == 'bf16':
    from neurozoo.benchmarks.extraction.activations import CPU_FAST
    options['fast'] = {**CPU_FAST, 'dtype': torch.bfloat16}
elif mode == 'eager':  # fast=True: to_fast()'s defaults (bfloat16, channels-last, gates unfused, not compiled)
    options['fast'] = True
elif mode == 'compiled':  # the same with the compiled steps
    options['fast'] = {'compile': 'step'}

start, cpu_start = time.perf_counter(), cpu_s()
full = benchmarks.load('cowley2023.V4')
stimuli = full.stimuli  # uint8 pixels, normalised batch by batch (benchmarks.extraction.images.PixelStimuli)
ids = sorted(stimuli.ids)[:n_images]
subset = stimuli.select([stimuli.ids.index(i) for i in ids])
if mode == 'before':  # the old extraction reads one float32 tensor of all normalised images, as it was loaded then
    subset = Stimuli(subset.ids, subset.images, subset.object_name)
assembly = full.assembly.isel(presentation=np.flatnonzero(np.isin(coord(full.assembly, 'stimulus_id'), ids)))
benchmark = neural.NeuralBenchmark(full.identifier, full.region, load_assembly=lambda: assembly,
                                   load_stimuli=lambda: subset, data_sha256='subset')
del stimuli, full.__dict__['stimuli']  # only the subset stays in memory
torch.manual_seed(0)
model = convrnn.create_model('rgc_intermediate').eval().to(device)
loaded = time.perf_counter()
score = benchmark.score(model, batch_size=batch_size, cache=False, progress=False, **options)
settings = score.provenance['settings']
print('RESULT ' + json.dumps(dict(
    seconds=time.perf_counter() - start, scoring_s=time.perf_counter() - loaded, cpu_s=cpu_s() - cpu_start,
    peak_mb=peak_mb(), gpu_peak_mb=torch.cuda.max_memory_allocated() / 2**20 if device.startswith('cuda') else None,
    device=device if device == 'cpu' else torch.cuda.get_device_name(), value=float(score.value), raw=float(score.raw), layer=settings.get('layer'),
    selection={k: float(v) for k, v in settings.get('layer_selection', {}).items()},
    threads=torch.get_num_threads())))
"""


def run(mode: str, args) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(CHILD)
    load = os.getloadavg()[0]
    # as the zoo CLI runs (leaderboard/cli.py): idle OpenMP threads sleep instead of spinning, which on shared
    # cores would count as CPU time
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    try:
        completed = subprocess.run([sys.executable, handle.name, mode, str(args.images), str(args.batch_size),
                                    args.before_commit, str(REPO), args.device], capture_output=True, text=True, cwd=REPO, env=env)
    finally:
        os.unlink(handle.name)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "load": (load + os.getloadavg()[0]) / 2}
    raise RuntimeError(f"{mode} failed:\n{completed.stderr[-3000:]}")


LABELS = {"before": "before", "after": "after", "reference": "after, reference path", "bf16": "after, bfloat16",
          "eager": "after, to_fast() bf16 not compiled", "compiled": "after, to_fast() bf16 compiled"}


def main(argv=None) -> int:
    from neurozoo.datasets.cli_args import ShowDefaultsRaw, ZooArgumentParser

    parser = ZooArgumentParser(description=__doc__, formatter_class=ShowDefaultsRaw)
    parser.add_argument("--images", type=int, default=640, help="score the first N images (sorted by stimulus_id)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--before-commit", default=BEFORE_COMMIT)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the model and extraction on that device)")
    parser.add_argument("--runs", default="before,after",
                        help=f"comma-separated runs, in order, the first the baseline: {', '.join(LABELS)} "
                             "(reference: fast=False; bf16: the CPU fast path in bfloat16; eager: fast=True, "
                             "to_fast()'s bf16 defaults, not compiled; compiled: the same with compile='step'; "
                             "before needs the git history)")
    parser.add_argument("--variants", default="", help="runs added after --runs (kept for older command lines)")
    args = parser.parse_args(argv)
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    runs = [r for r in (args.runs + "," + args.variants).split(",") if r]
    unknown = sorted(set(runs) - set(LABELS))
    if unknown or not runs:
        parser.error(f"--runs: unknown {', '.join(unknown) or '(none given)'}; choose among {', '.join(LABELS)}")
    from neurozoo.datasets.provenance import cpu_model

    cpu = cpu_model()
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs ({cpu}); "
          f"device {args.device}; load average at start {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"rgc_intermediate (full width, seeded weights) on cowley2023.V4, first {args.images} of 640 images, "
          f"batch {args.batch_size}; before = extraction at {args.before_commit}", flush=True)
    print(f"{'':24s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s} {'GPU MB':>7s} {'score':>9s} {'raw r':>9s} "
          f"{'layer':>6s} {'load':>5s}", flush=True)
    results = {}
    for mode in runs:
        result = results[mode] = run(mode, args)
        gpu = "" if result.get("gpu_peak_mb") is None else f"{result['gpu_peak_mb']:.0f}"
        print(f"{LABELS[mode]:24s} {result['seconds']:8.1f} {result['cpu_s']:8.1f} {result['peak_mb']:8.0f} {gpu:>7s} "
              f"{result['value']:9.5f} {result['raw']:9.5f} {result['layer']:>6s} {result['load']:5.1f}   "
              f"selection {json.dumps(result['selection'])}; {result['device']}", flush=True)
    base = results[runs[0]]
    for mode in runs[1:]:
        other = results[mode]
        print(f"{mode} vs {runs[0]}: {base['seconds'] / other['seconds']:.2f}x wall, "
              f"{base['cpu_s'] / other['cpu_s']:.2f}x CPU, peak memory {other['peak_mb']:.0f} MB vs "
              f"{base['peak_mb']:.0f} MB; |score diff| {abs(other['value'] - base['value']):.1e}, "
              f"|raw r diff| {abs(other['raw'] - base['raw']):.1e}")
    print(f"{datetime.datetime.now(datetime.timezone.utc):%H:%M} UTC; load average at the end "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; the runs were sequential, one child at a time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
