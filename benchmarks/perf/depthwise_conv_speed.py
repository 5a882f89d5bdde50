"""The RGC gates' 7x7 depthwise convolutions, timed alone in every layout and dtype, side by side.

    python benchmarks/perf/depthwise_conv_speed.py                         # GPU: rgc_intermediate's shapes at 224 px
    python benchmarks/perf/depthwise_conv_speed.py --device cpu --image-size 64 --batch-size 4 --width 0.25

The shapes are rgc_intermediate's own: one forward of the fast path records every depthwise convolution's input
(batch, channels, height, width, channel multiplier). Each distinct shape is then timed forward and forward +
backward (input and weight gradients) as the fast path runs it (bf16, channels-last) and in the other layouts,
dtypes and channel multipliers, so that the fastest way to run it shows in one table; the last rows sum each
variant over every call of one training step (shape x calls per step).
"""
from __future__ import annotations

import collections
import sys

import torch
import torch.nn.functional as F

from neurozoo.benchmarks.perf.convrnn_gpu_speed import configure, rgc_builder, timed_steps

VARIANTS = {  # name: (dtype, channels_last, split a channel multiplier n into n convolutions); "bf16-cl-split": the fast
    # path's default (unfused gates); "bf16-cl": its fuse_gates=True
    "bf16-cl": (torch.bfloat16, True, False),
    "bf16-nchw": (torch.bfloat16, False, False),
    "fp32-cl": (torch.float32, True, False),
    "fp32-nchw": (torch.float32, False, False),
    "bf16-cl-split": (torch.bfloat16, True, True),
    "bf16-nchw-split": (torch.bfloat16, False, True),
    "fp32-cl-split": (torch.float32, True, True),
}


def depthwise_shapes(args, device):
    """{(batch, channels, height, width, multiplier, kernel, padding): calls per forward} of the fast path."""
    # fused gates: the multiplier-2 shapes, so that the split variants time the default (unfused) gates
    model = rgc_builder(args.width)().to(device).to_fast(compile="none", fuse_gates=True)
    calls = collections.Counter()

    original = F.conv2d

    def spy(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if groups > 1 and groups == x.shape[1]:
            calls[(*x.shape, weight.shape[0] // groups, tuple(weight.shape[-2:]),
                   tuple(padding) if isinstance(padding, (tuple, list)) else (padding, padding))] += 1
        return original(x, weight, bias, stride, padding, dilation, groups)

    F.conv2d = spy
    try:
        with torch.no_grad():
            model(torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device))
    finally:
        F.conv2d = original
    return calls


def time_variant(shape, variant, device, iters):
    batch, channels, height, width, multiplier, kernel, padding = shape
    dtype, channels_last, split = VARIANTS[variant]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, channels, height, width, device=device, dtype=dtype).contiguous(memory_format=fmt)
    x.requires_grad_(True)
    pieces = multiplier if split else 1
    weights = [torch.randn(channels * multiplier // pieces, 1, *kernel, device=device, dtype=dtype,
                           requires_grad=True).contiguous(memory_format=fmt) for _ in range(pieces)]

    def forward():
        return [F.conv2d(x, w, None, 1, padding, 1, channels) for w in weights]

    def backward():
        outs = forward()
        torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])

    return [timed_steps(fn, device, 2, iters)[1] for fn in (forward, backward)]


def main(argv=None) -> int:
    from neurozoo.datasets.cli_args import ShowDefaultsRaw, ZooArgumentParser

    p = ZooArgumentParser(description=__doc__, formatter_class=ShowDefaultsRaw)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    args = p.parse_args(argv)
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    device = torch.device(args.device)
    configure(device)
    torch.manual_seed(0)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    calls = depthwise_shapes(args, device)
    totals = collections.defaultdict(lambda: [0.0, 0.0])
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}; torch {torch.__version__}; "
          f"{args.image_size} px, batch {args.batch_size}, width {args.width}; ms per call (forward / fwd+bwd)")
    header = f"{'shape (B,C,H,W) x mult':<26} {'calls':>5}  " + "  ".join(f"{v:>24}" for v in variants)
    print(header)
    for shape, count in sorted(calls.items()):
        cells = []
        for variant in variants:
            fwd, both = time_variant(shape, variant, device, args.iters)
            totals[variant][0] += count * fwd
            totals[variant][1] += count * both
            cells.append(f"{1e3 * fwd:10.3f} / {1e3 * both:10.3f}")
        label = f"{tuple(shape[:4])} x{shape[4]}"
        print(f"{label:<26} {count:5d}  " + "  ".join(f"{c:>24}" for c in cells), flush=True)
    print(f"\nper training step (every call; ms forward / forward+backward), ratio to the first ({variants[0]}) in time:")
    base = totals[variants[0]][1]
    for variant in variants:
        fwd, both = totals[variant]
        print(f"  {variant:<40} {1e3 * fwd:10.1f} / {1e3 * both:10.1f}   {base / both:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
