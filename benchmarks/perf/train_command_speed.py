"""`zoo train`'s own speed: the whole command (an image folder, loading workers, the engine's per-step checks,
logging) with its default determinism against ``--no-deterministic`` (cuDNN autotuning, TF32), side by side, for
comparison with the bare training step of ``convrnn_gpu_speed.py``.

    python benchmarks/perf/train_command_speed.py                     # GPU: rgc_intermediate, 224 px, batch 64, --fast --amp
    python benchmarks/perf/train_command_speed.py --device cpu --model rgc_shallow --image-size 32 --batch-size 4 \\
        --steps 4 --log-every 2 --workers 0                           # CPU smoke run

Writes a synthetic ImageNet-layout folder (``convrnn.training.synthetic``, 8 classes, JPEGs at ``--image-size`` +
32 px) in a temporary folder, runs ``python -m neurozoo.convrnn.training`` once per variant for one epoch of
``--steps`` steps, and reports the images/s of its metrics rows after the first (the first holds cuDNN's autotuning
and the loading workers' start), with the command's wall time.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {"deterministic (default)": [], "--no-deterministic": ["--no-deterministic"]}


def steady_images_per_s(metrics: Path) -> float:
    """Images/s over the ``iter`` rows after the first: their harmonic mean (every row times the same number of
    images), so the total images over the total time."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rates = [row["images_per_s"] for row in rows if row.get("kind") == "iter"][1:]
    return len(rates) / sum(1 / r for r in rates) if rates else math.nan


def main(argv=None) -> int:
    from neurozoo.datasets.cli_args import ShowDefaultsRaw, ZooArgumentParser

    p = ZooArgumentParser(description=__doc__, formatter_class=ShowDefaultsRaw)
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="rgc_intermediate")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=24, help="training steps of the one epoch")
    p.add_argument("--log-every", type=int, default=4, help="steps per metrics row (the first row is left out)")
    p.add_argument("--workers", type=int, default=None, help="loading workers (default: zoo train's)")
    p.add_argument("--no-fast", dest="fast", action="store_false", help="without --fast --amp")
    args = p.parse_args(argv)
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    if args.steps < 2 * args.log_every:
        p.error(f"--steps {args.steps}: give at least two metrics rows (2 x --log-every = {2 * args.log_every})")

    from neurozoo.convrnn.training.synthetic import write_image_folder
    from neurozoo.datasets.cache import owned_temporary_folder

    rows = []
    # a killed run's images and checkpoints are removed by the next run (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-train-speed-") as tmp:
        classes = 8
        per_class = math.ceil(args.steps * args.batch_size / classes)
        started = time.perf_counter()
        data = write_image_folder(Path(tmp) / "data", n_classes=classes, per_class=per_class,
                                  size=args.image_size + 32, val_per_class=2)
        print(f"{classes * per_class} training images written in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
        common = [args.model, "--data", str(data), "--epochs", "1", "--max-steps-per-epoch", str(args.steps),
                  "--log-every", str(args.log_every), "--batch-size", str(args.batch_size), "--image-size",
                  str(args.image_size), "--device", args.device, "--quiet"]
        common += ["--fast", "--amp"] if args.fast else []
        common += ["--workers", str(args.workers)] if args.workers is not None else []
        for name, flags in VARIANTS.items():
            out = Path(tmp) / name.split()[0].strip("-")
            command = [sys.executable, "-m", "neurozoo.convrnn.training", *common, *flags, "--out", str(out)]
            print(f"running {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            done = subprocess.run(command, env=os.environ.copy())
            wall = time.perf_counter() - started
            if done.returncode:
                print(f"{name}: zoo train exited {done.returncode}", file=sys.stderr)
                return done.returncode
            rows.append((name, steady_images_per_s(out / "metrics.jsonl"), wall))
            print(f"  {name}: {rows[-1][1]:.2f} images/s after the first row, {wall:.1f} s wall", file=sys.stderr,
                  flush=True)

    print(f"\nzoo train {args.model}, {args.image_size} px, batch {args.batch_size}, {args.steps} steps "
          f"({args.log_every} a row), device {args.device}{', --fast --amp' if args.fast else ''}")
    print(f"{'variant':<24} {'images/s':>9} {'wall s':>7}")
    for name, rate, wall in rows:
        print(f"{name:<24} {rate:9.2f} {wall:7.1f}")
    (_, deterministic, _), (_, free, _) = rows
    print(f"--no-deterministic / deterministic images/s: {free / deterministic:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
