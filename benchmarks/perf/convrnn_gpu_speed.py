"""Training speed of rgc_intermediate: the fast path against the plain implementation and a CORnet-S-like
model of similar FLOPs, in one run, side by side.

    python benchmarks/perf/convrnn_gpu_speed.py                       # GPU: 224 px, batch 64, bf16
    python benchmarks/perf/convrnn_gpu_speed.py --device cpu --image-size 64 --batch-size 4 --width 0.25 \\
        --iters 2 --warmup 1 --compile none                            # CPU smoke run

Images/s is measured over ``--iters`` full training steps (forward over every unrolled step, final-step
cross-entropy, backward, SGD update) after ``--warmup`` steps (which include compilation). Model-FLOP
utilisation = 3 x forward FLOPs per image (torch.utils.flop_counter, counted on the meta device for the
reference graph, so fused or padded kernels of the fast path earn no credit) x images/s / peak bf16 FLOP/s
(table keyed by GPU name, or --peak-tflops). Targets on an H100: >= 40% MFU and >= 1.5x the plain path.
"""
from __future__ import annotations

import copy
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from neurozoo import convrnn
from neurozoo.benchmarks.perf.train_throughput import peak_flops
from neurozoo.convrnn.cornet import cornet_s


def forward_flops(build, image_size: int, counter: FlopCounterMode = None) -> float:
    """FLOPs of one forward per image, counted on the meta device (no memory, no compute); ``counter``: a
    FlopCounterMode of the caller's (e.g. with a ``custom_mapping`` that sorts the convolutions)."""
    with torch.device("meta"):
        model = build().eval()  # one image: batch statistics would be undefined
        x = torch.empty(1, 3, image_size, image_size)
        with (counter or FlopCounterMode(display=False)) as counter, torch.no_grad():
            model(x)
    return float(counter.get_total_flops())


def matching_cornet_width(target: float, image_size: int) -> float:
    """Width multiplier whose CORnet-S forward FLOPs match ``target`` (FLOPs ~ a w^2 + b w)."""
    f1 = forward_flops(lambda: cornet_s(), image_size)
    f2 = forward_flops(lambda: cornet_s(width_multiplier=2.0), image_size)
    a, b = (f2 - 2 * f1) / 2, (4 * f1 - f2) / 2
    return (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def configure(device: torch.device) -> None:
    """cuDNN autotuning and TF32 on a GPU, as every figure here is measured."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def rgc_builder(width: float = 1.0, n_steps=None):
    """A builder of rgc_intermediate with the scripts' overrides (width multiplier, unrolled steps)."""
    overrides = {"width_multiplier": width if width != 1.0 else None, "n_steps": n_steps}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return lambda: convrnn.create_model("rgc_intermediate", **overrides)


def training_step(model, device, batch_size: int, image_size: int, amp: bool, channels_last: bool,
                  cuda_graph: bool = False):
    """One full training step as a function: forward over every unrolled step, final-step cross-entropy,
    backward, SGD update (momentum 0.9) on a fixed random batch; returns the loss. ``cuda_graph``: the whole
    step captured once in a CUDA graph and replayed (see ``graphed``)."""
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=gen).to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 1000, (batch_size,), generator=gen).to(device)

    def step():
        # a graph replays its casts, so autocast must not cache casts made outside it
        context = (torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=not cuda_graph) if amp
                   else torch.autocast(device.type, enabled=False))
        with context:
            logits = model(images).logits
        loss = F.cross_entropy(logits[-1].float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return graphed(step, device) if cuda_graph else step


GRAPH_WARMUP = 3


def graphed(step, device, warmup: int = GRAPH_WARMUP):
    """``step`` captured whole (forward, loss, backward, optimizer update) in one CUDA graph on its first call, as
    in PyTorch's whole-network capture: ``warmup`` eager steps on a side stream (cuDNN autotuning, the optimizer's
    momentum buffers), then the capture; every later call replays the graph, so the host launches one graph
    instead of the step's thousands of kernels. The step must not synchronise with the host (no ``.item()``, no
    branch on a tensor's value) and its inputs must stay in the same tensors (the batch here is fixed)."""
    if device.type != "cuda":
        raise SystemExit(f"--cuda-graph needs a GPU (device {device})")
    graph, captured = None, []

    def replay():
        nonlocal graph
        if graph is None:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    step()
            torch.cuda.current_stream(device).wait_stream(side)
            torch.cuda.empty_cache()  # the warm-up's cached blocks, which the graph's private pool cannot reuse
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                captured.append(step())  # gradients and the loss live in the graph's memory pool
        graph.replay()
        return captured[0]

    return replay


def verify_graph(build, device, args, replays: int = 4) -> int:
    """The graphed step against the eager one, from the same weights on the same batch: the loss before every update
    agrees (bf16 autocast, cuDNN autotuned per run: to 2 %), so the replays train what eager steps train (a replay
    that updated nothing would repeat one loss). Prints both loss sequences; returns 0 if they agree."""
    model = build()
    twin = copy.deepcopy(model)
    options = dict(dtype=getattr(torch, args.fast_dtype), fuse_inputs=args.fuse)
    eager = training_step(model.to(device).to_fast(**options), device, args.batch_size, args.image_size, False, False)
    graph = training_step(twin.to(device).to_fast(**options), device, args.batch_size, args.image_size, False, False,
                          cuda_graph=True)
    eager_losses = [eager().item() for _ in range(GRAPH_WARMUP + replays)][GRAPH_WARMUP:]
    graph_losses = [graph().item() for _ in range(replays)]  # the first call also runs the eager warm-up
    print("update  eager loss  graphed loss")
    for i, (a, b) in enumerate(zip(eager_losses, graph_losses)):
        print(f"{GRAPH_WARMUP + i + 1:6d}  {a:10.5f}  {b:12.5f}")
    agree = all(abs(a - b) <= 0.02 * abs(a) for a, b in zip(eager_losses, graph_losses))
    print(f"graphed step {'agrees with' if agree else 'DIFFERS from'} the eager step")
    return 0 if agree else 1


def timed_steps(step, device, warmup: int, iters: int):
    """(warm-up seconds, seconds per timed step, last loss): ``warmup`` untimed steps, then ``iters`` timed ones."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(iters):
        loss = step()
    sync(device)
    return warm, (time.perf_counter() - start) / iters, loss


def measure(name, model, device, args, amp: bool, channels_last: bool, cuda_graph: bool = False):
    step = training_step(model, device, args.batch_size, args.image_size, amp, channels_last, cuda_graph)
    warm, seconds, loss = timed_steps(step, device, args.warmup, args.iters)
    seconds *= args.iters
    if not torch.isfinite(loss):
        print(f"warning: {name} loss is {loss.item()}", file=sys.stderr)
    return args.iters * args.batch_size / seconds, warm


def main(argv=None) -> int:
    from neurozoo.datasets.cli_args import ShowDefaultsRaw, ZooArgumentParser

    p = ZooArgumentParser(description=__doc__, formatter_class=ShowDefaultsRaw)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of rgc_intermediate")
    p.add_argument("--n-steps", type=int, default=None, help="unrolled steps (default 17)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--compile", choices=("step", "model", "none"), default="none",
                   help="fast path: compile the per-layer step update, the whole model, or nothing")
    p.add_argument("--mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    p.add_argument("--cudagraphs", action="store_true", help="fast path: mode=reduce-overhead (CUDA graphs)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="fast path: capture the whole eager training step in one CUDA graph and replay it "
                        "(no host launch overhead; no torch.compile)")
    p.add_argument("--verify-graph", action="store_true",
                   help="only check --cuda-graph: its losses against eager steps' from the same weights, then exit")
    p.add_argument("--backend", default="inductor",
                   help="fast path: torch.compile backend ('eager' or 'aot_eager': Dynamo's tracing without Inductor)")
    p.add_argument("--fast-dtype", choices=("bfloat16", "float32"), default="bfloat16",
                   help="fast path autocast dtype (float32 on CPUs without fast bf16 convolutions)")
    p.add_argument("--no-fuse", dest="fuse", action="store_false", help="fast path: keep the input convs separate")
    p.add_argument("--cornet-width", default="match", help="CORnet-S width multiplier, or 'match' (same FLOPs)")
    p.add_argument("--skip", default="", help="comma-separated variants to leave out: plain,fast,cornet")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s (default: table by GPU name)")
    args = p.parse_args(argv)
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    device = torch.device(args.device)
    configure(device)
    torch.manual_seed(0)
    build_rgc = rgc_builder(args.width, args.n_steps)
    if args.verify_graph:
        return verify_graph(build_rgc, device, args)
    rgc_flops = forward_flops(build_rgc, args.image_size)
    cornet_width = (matching_cornet_width(rgc_flops, args.image_size) if args.cornet_width == "match"
                    else float(args.cornet_width))
    cornet_flops = forward_flops(lambda: cornet_s(width_multiplier=cornet_width), args.image_size)
    peak, peak_source = peak_flops(device, args.peak_tflops)
    skip = set(filter(None, args.skip.split(",")))

    plain = build_rgc()
    rows = []
    variants = [
        ("plain", "rgc_intermediate, reference path (fp32, eager)", lambda: plain, rgc_flops, False, False, False),
        ("fast", f"rgc_intermediate, fast path ({'bf16' if args.fast_dtype == 'bfloat16' else 'fp32'}, channels-last, "
                 f"{'fused inputs' if args.fuse else 'unfused inputs'}, compile={args.compile}"
                 + (f", backend {args.backend}" if args.compile != "none" and args.backend != "inductor" else "")
                 + (", CUDA graphs" if args.cudagraphs else "")
                 + (", whole step in one CUDA graph" if args.cuda_graph else "") + ")",
         lambda: copy.deepcopy(plain).to(device).to_fast(dtype=getattr(torch, args.fast_dtype), compile=args.compile,
                                                         mode=args.mode, backend=args.backend,
                                                         cudagraphs=args.cudagraphs, fuse_inputs=args.fuse),
         rgc_flops, False, False, args.cuda_graph),
        ("cornet", f"CORnet-S-like x{cornet_width:.3f} (bf16, channels-last"
                   + (", compiled" if args.compile != "none" else "") + ")",
         lambda: _cornet(cornet_width, args), cornet_flops, True, True, False),
    ]
    for key, label, build, flops, amp, channels_last, cuda_graph in variants:
        if key in skip:
            continue
        print(f"measuring {key}: {label} ...", file=sys.stderr, flush=True)
        images_per_s, warm = measure(key, build(), device, args, amp, channels_last, cuda_graph)
        achieved = 3 * flops * images_per_s
        rows.append((key, label, flops, images_per_s, achieved, achieved / peak if peak else None, warm))
        print(f"  {key}: {images_per_s:.2f} images/s, {achieved / 1e12:.3f} TFLOP/s, warm-up {warm:.1f} s",
              file=sys.stderr, flush=True)  # kept if a later variant runs past the call's time limit

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\ndevice {device_name}; {args.image_size} px, batch {args.batch_size}, width {args.width}, "
          f"{args.iters} timed steps after {args.warmup} warm-up; torch {torch.__version__}; peak: {peak_source}")
    header = f"{'variant':<8} {'fwd GFLOP/img':>13} {'images/s':>10} {'TFLOP/s':>9} {'MFU':>7} {'warm-up s':>9}  description"
    print(header)
    print("-" * len(header))
    for key, label, flops, ips, achieved, mfu, warm in rows:
        shown = f"{100 * mfu:6.1f}%" if mfu is not None else "    n/a"
        print(f"{key:<8} {flops / 1e9:13.2f} {ips:10.2f} {achieved / 1e12:9.3f} {shown} {warm:9.1f}  {label}")
    speed = {key: ips for key, _, _, ips, *_ in rows}
    if "plain" in speed and "fast" in speed:
        print(f"fast / plain images/s:  {speed['fast'] / speed['plain']:.2f}x  (target >= 1.5x on an H100)")
    if "cornet" in speed and "fast" in speed:
        by_flops = {key: achieved for key, _, _, _, achieved, *_ in rows}
        print(f"fast / cornet images/s: {speed['fast'] / speed['cornet']:.2f}x; "
              f"fast / cornet FLOP/s: {by_flops['fast'] / by_flops['cornet']:.2f}x")
    if peak and "fast" in speed:
        fast_mfu = next(r[5] for r in rows if r[0] == "fast")
        print(f"fast MFU {100 * fast_mfu:.1f}% (target >= 40% bf16 on an H100)")
    return 0


def _cornet(width: float, args):
    model = cornet_s(width_multiplier=width)
    if args.compile != "none":
        return torch.compile(model, mode=args.mode or ("reduce-overhead" if args.cudagraphs else None))
    return model


if __name__ == "__main__":
    sys.exit(main())
