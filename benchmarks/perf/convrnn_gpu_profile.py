"""Where the time of a rgc_intermediate training step goes: device time per kind of work, under torch.profiler.

    python benchmarks/perf/convrnn_gpu_profile.py                      # GPU: fast path, 224 px, batch 64, bf16
    python benchmarks/perf/convrnn_gpu_profile.py --plain              # the reference path (fp32, eager)
    python benchmarks/perf/convrnn_gpu_profile.py --device cpu --image-size 64 --batch-size 4 --width 0.25 \\
        --fast-dtype float32                                            # CPU smoke run

The training step is convrnn_gpu_speed.py's (forward over every unrolled step, final-step cross-entropy,
backward, SGD). After ``--warmup`` steps (cuDNN autotuning), ``--steps`` steps are timed without the profiler
(the step's wall time), then the same number are profiled. Printed:

* device time a step per category: dense and depthwise (groups == input channels, the RGC gates' 7x7 filters)
  convolution forward, backward-input and backward-weight; elementwise & activation; pad/copy/cat/fill;
  normalisation/other; and the rest of the step's wall time, when no kernel ran (the device waiting for the
  host: launch overhead, Python). On a GPU each CUDA kernel is sorted by the aten op that launched it (the nearest
  convolution or copy op above it; its tensor shapes tell depthwise from dense) and, inside
  ``aten::convolution_backward``, by kernel name (cuDNN's dgrad/wgrad, PyTorch's depthwise grad_weight kernel;
  a kernel neither name matches stays "backward, not split"). On a CPU the aten ops' self CPU time is sorted the
  same way, and a convolution's backward is one op (input and weight gradient together);
* the convolutions' FLOPs per category (the reference graph's forward count, torch.utils.flop_counter, each
  backward gradient taken as one forward) and the rate they run at, and the dense convolutions' share of the
  FLOPs against their share of the time;
* the top ``--top`` ops by self device time (with their tensor input shapes), and on a GPU the top kernels.
"""
from __future__ import annotations

import collections
import re
import sys
import time

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from neurozoo.benchmarks.perf.convrnn_gpu_speed import (configure, forward_flops, peak_flops, rgc_builder, sync,
                                                        timed_steps, training_step)
from neurozoo.datasets.text_table import counted

DENSE, DEPTHWISE = "dense conv", "depthwise conv"
FORWARD, BWD_INPUT, BWD_WEIGHT, BWD_BOTH = "forward", "backward-input", "backward-weight", "backward, not split"
ELEMENTWISE, COPY, OTHER = "elementwise & activation", "pad/copy/cat/fill", "normalisation/other"
IDLE = "no kernel running (device idle)"
CATEGORIES = [f"{kind} {part}" for kind in (DENSE, DEPTHWISE) for part in (FORWARD, BWD_INPUT, BWD_WEIGHT, BWD_BOTH)]
CATEGORIES += [ELEMENTWISE, COPY, OTHER]

COPY_OPS = {"copy_", "_to_copy", "to", "clone", "contiguous", "constant_pad_nd", "pad", "cat", "_cat", "stack",
            "zeros", "zeros_like", "new_zeros", "fill_", "zero_", "select_backward", "slice_backward",
            "narrow_copy", "split_with_sizes_copy", "split_copy", "index", "index_put_", "flip", "repeat",
            "slice_scatter", "select_scatter", "as_strided_scatter", "expand_copy", "_reshape_copy"}
ELEMENTWISE_OPS = {"add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "neg_", "sigmoid",
                   "sigmoid_", "tanh", "tanh_", "elu", "elu_", "relu", "relu_", "hardtanh", "hardtanh_",
                   "hardsigmoid", "hardsigmoid_", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max",
                   "clamp_max_", "where", "sigmoid_backward", "tanh_backward", "elu_backward", "threshold_backward",
                   "hardtanh_backward", "hardsigmoid_backward", "addcmul", "addcmul_", "addcdiv", "addcdiv_", "exp",
                   "log", "pow", "sqrt", "rsqrt", "reciprocal", "abs", "sign", "maximum", "minimum", "lerp_",
                   "masked_fill", "masked_fill_", "gelu", "silu", "softplus", "logical_and", "ge", "le", "gt", "lt",
                   "eq", "ne"}
# a kernel inside aten::convolution_backward: which gradient (cuDNN names its engines fprop/dgrad/wgrad;
# PyTorch's depthwise kernels are conv_depthwise2d_backward_kernel and conv_depthwise2d_grad_weight_kernel)
WEIGHT_KERNEL = re.compile(r"wgrad|grad_weight|weight_grad|bwd_filter|backward_weight|filter_grad", re.I)
INPUT_KERNEL = re.compile(r"dgrad|bwd_data|backward_input|grad_input|depthwise2d_backward|fprop", re.I)


def _op(name: str):
    return name[6:] if name.startswith("aten::") else None


def _is_conv(op) -> bool:
    return op is not None and "conv" in op and "convert" not in op


def _conv_kind(event) -> str:
    """Depthwise (a 1-channel filter per input channel: groups == input channels) or dense, from the op's shapes."""
    first = 1 if "backward" in event.name else 0  # convolution_backward(grad_output, input, weight, ...)
    shapes = event.input_shapes or []
    if len(shapes) > first + 1:
        x, w = shapes[first], shapes[first + 1]
        if len(x) == 4 and len(w) == 4 and w[1] == 1 and x[1] > 1:
            return DEPTHWISE
    return DENSE


def _output_mask(event):
    mask = (event.concrete_inputs or [None])[-1] if "backward" in event.name else None
    return mask if isinstance(mask, (list, tuple)) and len(mask) == 3 else None


def category(event, kernel: str = None) -> str:
    """The category of ``event``'s self time, or of a kernel it launched (on a GPU): the nearest copy or
    convolution op from the event up to the top decides; otherwise the event's own (or nearest) aten op."""
    fallback, op_event = None, event
    while op_event is not None:
        op = _op(op_event.name)
        if op in COPY_OPS:
            return COPY
        if _is_conv(op):
            kind = _conv_kind(op_event)
            if "backward" not in op:
                return f"{kind} {FORWARD}"
            mask = _output_mask(op_event)
            if mask is not None and mask[0] != mask[1]:  # one gradient only (the first layer: no input gradient)
                return f"{kind} {BWD_INPUT if mask[0] else BWD_WEIGHT}"
            if kernel is None:
                return f"{kind} {BWD_BOTH}"
            if WEIGHT_KERNEL.search(kernel) or _op(event.name) == "sum":  # sum: the bias gradient
                return f"{kind} {BWD_WEIGHT}"
            return f"{kind} {BWD_INPUT if INPUT_KERNEL.search(kernel) else BWD_BOTH}"
        if fallback is None and op is not None:
            fallback = ELEMENTWISE if op in ELEMENTWISE_OPS else OTHER
        op_event = op_event.cpu_parent
    if kernel is not None and re.match(r"Mem(cpy|set)", kernel):
        return COPY
    if kernel is not None and fallback is None and kernel.startswith("triton"):  # Inductor's fused kernels
        return ELEMENTWISE
    return fallback or OTHER


def _shapes(event) -> str:
    text = ", ".join("x".join(map(str, s)) for s in (event.input_shapes or []) if isinstance(s, list) and s)
    return text if len(text) <= 60 else text[:57] + "..."


def device_times(events, on_gpu: bool):
    """Per category and per (category, op, shapes): total time (us) and call counts; on a GPU also per kernel name.
    On a CPU each aten op's self CPU time (the time outside aten ops is the framework's: autograd engine, Python)."""
    by_category = collections.Counter()
    by_op = collections.defaultdict(lambda: [0.0, 0])
    by_kernel = collections.defaultdict(lambda: [0.0, 0, collections.Counter()])
    for event in events:
        if event.device_type != DeviceType.CPU or event.is_async:
            continue
        if on_gpu:
            parts = collections.Counter()
            for kernel in event.kernels:
                cat = category(event, kernel.name)
                parts[cat] += kernel.duration
                entry = by_kernel[kernel.name]
                entry[0] += kernel.duration
                entry[1] += 1
                entry[2][cat] += kernel.duration
        else:
            parts = collections.Counter({category(event): event.self_cpu_time_total}) if _op(event.name) else {}
        for cat, us in parts.items():
            by_category[cat] += us
            entry = by_op[(cat, event.name, _shapes(event))]
            entry[0] += us
            entry[1] += 1
    return by_category, by_op, by_kernel


def busy_us(events) -> float:
    """Time (us) in which at least one kernel or copy ran on the GPU (the union of their intervals)."""
    spans = sorted((e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA)
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


class ConvFlops(FlopCounterMode):
    """FlopCounterMode that also sums the convolutions' FLOPs as dense or depthwise (groups == input channels)."""

    def __init__(self):
        self.conv = collections.Counter()

        def conv(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None, **kwargs):
            flops = conv_flop_count(x_shape, w_shape, out_shape, transposed=transposed)
            self.conv[DEPTHWISE if w_shape[1] == 1 and x_shape[1] > 1 else DENSE] += flops
            return flops

        aten = torch.ops.aten
        super().__init__(display=False, custom_mapping={aten.convolution: conv, aten._convolution: conv})


def main(argv=None) -> int:
    from neurozoo.datasets.cli_args import ShowDefaultsRaw, ZooArgumentParser, at_least

    p = ZooArgumentParser(description=__doc__, formatter_class=ShowDefaultsRaw)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--image-size", type=at_least(8), default=224)
    p.add_argument("--batch-size", type=at_least(1), default=64)
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of rgc_intermediate")
    p.add_argument("--n-steps", type=at_least(1), default=None, help="unrolled steps (default 17)")
    path = p.add_mutually_exclusive_group()
    path.add_argument("--fast", dest="path", action="store_const", const="fast", default="fast",
                      help="the fast path (bf16 autocast, channels-last, fused convolutions)")
    path.add_argument("--plain", dest="path", action="store_const", const="plain",
                      help="the reference path (fp32, eager)")
    p.add_argument("--steps", type=at_least(1), default=2, help="training steps timed, then as many profiled")
    p.add_argument("--warmup", type=at_least(0), default=1, help="untimed steps first (cuDNN autotuning)")
    p.add_argument("--compile", choices=("none", "step", "model"), default="none",
                   help="fast path: torch.compile scope (Inductor's fused kernels count as elementwise)")
    p.add_argument("--fast-dtype", choices=("bfloat16", "float32"), default="bfloat16",
                   help="fast path autocast dtype (float32 on CPUs without fast bf16 convolutions)")
    p.add_argument("--top", type=at_least(0), default=20, help="rows of the top-ops (and top-kernels) tables")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s (default: table by GPU name)")
    p.add_argument("--trace", default=None, help="also write the profile as a Chrome trace to this file")
    args = p.parse_args(argv)
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    configure(device)
    torch.manual_seed(0)

    build = rgc_builder(args.width, args.n_steps)
    counter = ConvFlops()
    flops = forward_flops(build, args.image_size, counter)  # per image, the reference graph
    model = build()
    if args.path == "fast":
        model = model.to(device).to_fast(dtype=getattr(torch, args.fast_dtype), compile=args.compile)
        label = (f"fast path ({'bf16' if args.fast_dtype == 'bfloat16' else 'fp32'}, channels-last, fused inputs, "
                 f"compile={args.compile})")
    else:
        label = "reference path (fp32, eager)"
    step = training_step(model, device, args.batch_size, args.image_size, amp=False, channels_last=False)

    print(f"warm-up: {counted(args.warmup, 'step')} ...", file=sys.stderr, flush=True)
    warm, step_s, _ = timed_steps(step, device, args.warmup, args.steps)
    step_us = step_s * 1e6
    print(f"warm-up {warm:.1f} s; step {step_us / 1e3:.1f} ms; "
          f"profiling {counted(args.steps, 'step')} ...", file=sys.stderr,
          flush=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities, record_shapes=True) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync(device)
        profiled_us = (time.perf_counter() - start) / args.steps * 1e6
    start = time.perf_counter()
    events = prof.events()
    kernels = on_gpu  # the CUDA kernels' times, or the aten ops' self CPU times
    by_category, by_op, by_kernel = device_times(events, kernels)
    if kernels and not by_category:
        print("no CUDA kernel in the profile (CUPTI missing?): the aten ops' self CPU time instead", flush=True)
        kernels = False
        by_category, by_op, by_kernel = device_times(events, kernels)
    busy = busy_us(events) if kernels else sum(by_category.values())
    print(f"profile read in {time.perf_counter() - start:.1f} s ({len(events)} events)", file=sys.stderr, flush=True)
    if args.trace:
        prof.export_chrome_trace(args.trace)

    n = args.steps
    per_step = {cat: us / n for cat, us in by_category.items()}
    busy /= n
    peak, peak_source = peak_flops(device, args.peak_tflops)
    images_per_s = args.batch_size / (step_us / 1e6)
    achieved = 3 * flops * images_per_s
    where = torch.cuda.get_device_name(device) if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"rgc_intermediate, {label} on {where}; {args.image_size} px, batch {args.batch_size}, width {args.width}, "
          f"{model.n_steps} unrolled steps; torch {torch.__version__}")
    mfu = f", {100 * achieved / peak:.1f}% MFU ({peak_source})" if peak else ""
    print(f"step: {step_us / 1e3:.1f} ms wall (mean of {n} unprofiled after {args.warmup} warm-up, {warm:.1f} s): "
          f"{images_per_s:.2f} images/s, {achieved / 1e12:.3f} TFLOP/s{mfu}; profiled: {profiled_us / 1e3:.1f} ms")
    # kernel times are the same under the profiler; a CPU op's self time is not (the profiler's own cost per op),
    # so on a CPU the shares are of the profiled step
    wall_us = step_us if kernels else profiled_us
    unit = "device time (CUDA kernels)" if kernels else "self CPU time of aten ops"
    print(f"{unit}: {busy / 1e3:.1f} ms a step = {100 * busy / wall_us:.1f}% of the "
          f"{'' if kernels else 'profiled '}step's wall time\n")

    # forward FLOPs per image of each conv kind; each backward gradient counted as one forward
    conv_flops = {f"{kind} {part}": counter.conv[kind] * (2 if part == BWD_BOTH else 1)
                  for kind in (DENSE, DEPTHWISE) for part in (FORWARD, BWD_INPUT, BWD_WEIGHT, BWD_BOTH)}
    for kind in (DENSE, DEPTHWISE):  # the backward's FLOPs go where most of its time is: split or not
        split = sum(per_step.get(f"{kind} {part}", 0.0) for part in (BWD_INPUT, BWD_WEIGHT))
        for part in ((BWD_BOTH,) if split > per_step.get(f"{kind} {BWD_BOTH}", 0.0) else (BWD_INPUT, BWD_WEIGHT)):
            conv_flops[f"{kind} {part}"] = 0
    header = f"{'category':<42} {'ms/step':>9} {'% device':>9} {'% step':>7} {'GFLOP/step':>11} {'TFLOP/s':>8}"
    print(header)
    print("-" * len(header))
    shown = [c for c in CATEGORIES if BWD_BOTH not in c or per_step.get(c)]
    for cat in shown:
        us = per_step.get(cat, 0.0)
        f = conv_flops.get(cat, 0) * args.batch_size
        rate = f"{f / (us * 1e-6) / 1e12:8.2f}" if f and us else f"{'-':>8}"
        gflop = f"{f / 1e9:11.1f}" if f else f"{'-':>11}"
        print(f"{cat:<42} {us / 1e3:9.2f} {100 * us / max(busy, 1e-9):8.1f}% {100 * us / wall_us:6.1f}% {gflop} {rate}")
    rest = max(wall_us - busy, 0.0)
    print(f"{IDLE if kernels else 'outside aten ops (autograd engine, Python)':<42} {rest / 1e3:9.2f} {'-':>9} "
          f"{100 * rest / wall_us:6.1f}%")

    total_flops = 3 * flops * args.batch_size
    dense_flops = 3 * counter.conv[DENSE] * args.batch_size
    depthwise_flops = 3 * counter.conv[DEPTHWISE] * args.batch_size
    dense_us = sum(us for cat, us in per_step.items() if cat.startswith(DENSE))
    depthwise_us = sum(us for cat, us in per_step.items() if cat.startswith(DEPTHWISE))
    print(f"\nFLOPs a step (forward x3, the reference graph): {total_flops / 1e12:.3f} TFLOP; dense convolutions "
          f"{100 * dense_flops / total_flops:.1f}%, depthwise {100 * depthwise_flops / total_flops:.2f}%, "
          f"the rest (readout) {100 * (total_flops - dense_flops - depthwise_flops) / total_flops:.2f}%")
    print(f"dense-conv share: {100 * dense_flops / total_flops:.1f}% of the FLOPs in "
          f"{100 * dense_us / wall_us:.1f}% of the step ({dense_us / 1e3:.1f} ms): "
          f"{dense_flops / max(dense_us * 1e-6, 1e-12) / 1e12:.2f} TFLOP/s while they run")
    print(f"depthwise-conv share: {100 * depthwise_flops / total_flops:.2f}% of the FLOPs in "
          f"{100 * depthwise_us / wall_us:.1f}% of the step ({depthwise_us / 1e3:.1f} ms)")
    print(f"everything else: {100 * (wall_us - dense_us - depthwise_us) / wall_us:.1f}% of the step "
          f"({(wall_us - dense_us - depthwise_us) / 1e3:.1f} ms)")
    if dense_us:
        ceiling = args.batch_size / (dense_us * 1e-6)
        extra = f", {100 * 3 * flops * ceiling / peak:.1f}% MFU" if peak else ""
        print(f"with the dense convolutions alone at their rate: {ceiling:.1f} images/s{extra} (the ceiling once "
              f"everything else is free)")

    if args.top:
        kind = "self device time" if kernels else "self CPU time"
        print(f"\ntop {args.top} ops by {kind} (a step; shapes: the op's tensor inputs)")
        header = f"{'ms/step':>9} {'% device':>9} {'calls':>7}  {'category':<42} {'op':<34} shapes"
        print(header)
        print("-" * len(header))
        rows = sorted(by_op.items(), key=lambda item: -item[1][0])[:args.top]
        for (cat, name, shapes), (us, calls) in rows:
            print(f"{us / n / 1e3:9.2f} {100 * us / n / max(busy, 1e-9):8.1f}% {calls / n:7.0f}  {cat:<42} "
                  f"{name:<34} {shapes}")
    if args.top and kernels:
        print(f"\ntop {args.top} CUDA kernels by device time (a step)")
        header = f"{'ms/step':>9} {'% device':>9} {'launches':>8}  {'category (most time)':<42} kernel"
        print(header)
        print("-" * len(header))
        rows = sorted(by_kernel.items(), key=lambda item: -item[1][0])[:args.top]
        for name, (us, calls, cats) in rows:
            short = name if len(name) <= 100 else name[:97] + "..."
            print(f"{us / n / 1e3:9.2f} {100 * us / n / max(busy, 1e-9):8.1f}% {calls / n:8.0f}  "
                  f"{cats.most_common(1)[0][0]:<42} {short}")
        unsplit = collections.Counter()
        for name, (us, _, cats) in by_kernel.items():
            for cat, t in cats.items():
                if BWD_BOTH in cat:
                    unsplit[name] += t
        if unsplit:
            names = "; ".join(f"{k[:80]} ({v / n / 1e3:.1f} ms)" for k, v in unsplit.most_common(5))
            print(f"\nconvolution-backward kernels not split by name (the patterns in {__file__} miss them): {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
