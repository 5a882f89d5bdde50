"""Training throughput of a ConvRNN next to its feedforward twin (forward + backward + SGD step).

For each model: images/s over ``--steps`` timed steps after ``--warmup`` untimed ones, milliseconds per
step, forward FLOPs per image (``FlopCounterMode`` on one unrolled forward; training counted as 3x),
peak GPU memory and, on a GPU, model-FLOP utilisation against the GPU's dense bf16 peak (a small table
by device name, or ``--peak-tflops``). The last line is the speed ratio of the first model to the second.

    python benchmarks/perf/train_throughput.py --device cuda --amp --channels-last --batch-size 128
    python benchmarks/perf/train_throughput.py --device cpu --image-size 64 --batch-size 8 --steps 3 \\
        --set width_multiplier=0.25
"""
from __future__ import annotations

import gc
import json
import time

import torch

# Dense (no sparsity) bf16 tensor-core peak, FLOP/s, matched by substring of the CUDA device name, first match.
PEAK_BF16 = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("V100", 125e12),  # fp16; V100 has no bf16
)


def peak_flops(device: torch.device, override_tflops=None):
    """(peak bf16 FLOP/s or None, where it came from: the flag, the GPU's name, or why none is known)."""
    if override_tflops:
        return override_tflops * 1e12, f"--peak-tflops {override_tflops}"
    if device.type != "cuda":
        return None, "no peak known for CPU (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    peak = next((peak for key, peak in PEAK_BF16 if key in name), None)
    return peak, name if peak else f"{name}: not in the peak table (pass --peak-tflops)"


def forward_flops(model, image_size: int, device) -> float:
    """FLOPs of one training-mode unrolled forward of one image (multiply-add = 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, image_size, image_size, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def measure(name: str, args, overrides: dict, device: torch.device) -> dict:
    from neurozoo import convrnn
    from neurozoo.convrnn.training.loss import unrolled_loss

    torch.manual_seed(0)
    model = convrnn.create_model(name, num_classes=args.num_classes, **overrides).to(device)
    params = sum(p.numel() for p in model.parameters())
    flops = forward_flops(model, args.image_size, device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    step_model = torch.compile(model) if args.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    images = images.contiguous(memory_format=memory_format)
    target = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    first = getattr(model, "first_readout_step", 0)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            output = step_model(images)
        loss = unrolled_loss(output, target, args.loss_steps, first)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - start
    images_per_s = args.batch_size * args.steps / seconds
    row = {"model": name, "params": params, "gflops_fwd_per_image": flops / 1e9, "ms_per_step": 1e3 * seconds / args.steps,
           "images_per_s": images_per_s, "warmup_s": warmup_s, "loss": float(loss.detach())}
    peak, _ = peak_flops(device, args.peak_tflops)
    row["mfu"] = 3 * flops * images_per_s / peak if peak else None
    row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return row


def main(argv=None) -> int:
    from neurozoo.datasets.cli_args import ShowDefaultsRaw, ZooArgumentParser

    parser = ZooArgumentParser(description=__doc__, formatter_class=ShowDefaultsRaw)
    parser.add_argument("--models", default="rgc_intermediate,feedforward_intermediate",
                        help="comma-separated; the ratio is first / second")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile (inductor)")
    parser.add_argument("--loss-steps", choices=("final", "all"), default="final")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s for MFU, overriding the table")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="model override applied to every model, e.g. width_multiplier=0.25")
    parser.add_argument("--json", default=None, help="also write the rows and settings to this JSON file")
    args = parser.parse_args(argv)

    from neurozoo.convrnn.cli import parse_overrides

    if args.threads:
        torch.set_num_threads(args.threads)
    from neurozoo.datasets.provenance import run_provenance, run_provenance_line

    stated = run_provenance()  # the code and versions these figures are of, once the thread count is set
    print(run_provenance_line(stated), flush=True)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    overrides = parse_overrides(args.overrides)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training throughput on {where}: {args.image_size}px, batch {args.batch_size}, {args.steps} steps "
          f"(+{args.warmup} warmup), amp={'bf16' if args.amp else 'off'}, channels_last={args.channels_last}, "
          f"compile={args.compile}, loss={args.loss_steps}, overrides={overrides or '-'}, torch {torch.__version__}")
    rows = []
    for name in names:
        rows.append(measure(name, args, overrides, device))
        gc.collect()  # the last model's memory back before the next one
        if device.type == "cuda":
            torch.cuda.empty_cache()

    header = ("model", "params", "GFLOPs fwd/img", "ms/step", "images/s", "warmup s", "peak GiB", "MFU")
    table = [(r["model"], f"{r['params'] / 1e6:.2f}M", f"{r['gflops_fwd_per_image']:.3f}", f"{r['ms_per_step']:.1f}",
              f"{r['images_per_s']:.1f}", f"{r['warmup_s']:.1f}",
              "-" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.1f}",
              "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%") for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *table)]
    for line in (header, *table):
        print("  ".join(str(x).rjust(w) for x, w in zip(line, widths)))
    if len(rows) >= 2:
        a, b = rows[0], rows[1]
        print(f"ratio {a['model']} / {b['model']}: {a['images_per_s'] / b['images_per_s']:.3f}x images/s, "
              f"{a['gflops_fwd_per_image'] / b['gflops_fwd_per_image']:.2f}x FLOPs per image")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"settings": vars(args), "device": where, "provenance": stated, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
