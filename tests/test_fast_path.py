"""The fast ConvRNN path computes the reference function: same weights -> same logits, recorded layers and
gradients (float32 to tight tolerance, bfloat16 to its precision); the compiled step has no graph break
(so no host synchronisation inside the time loop); the CORnet-S-like baseline matches CORnet-S's size."""
import copy
import os

import pytest
import torch

from neurozoo import convrnn
from neurozoo.convrnn.cells import SameConv2d, fused_same_conv
from neurozoo.convrnn.cornet import cornet_s
from neurozoo.convrnn.fast import make_fast, to_reference

SPEC = {
    "name": "tiny_fast", "n_steps": 7, "image_steps": 5, "norm": "group", "num_classes": 5,
    "layers": [
        {"name": "conv1", "channels": 8, "kernel": 3, "stride": 2, "pool": {"kernel": 3, "stride": 2}},
        {"name": "conv2", "channels": 8, "kernel": 3,
         "cell": {"kind": "rgc", "cell_depth": 4, "gate_depth_separable": False, "cell_to_out": True}},
        {"name": "conv3", "channels": 16, "kernel": 3, "stride": 2, "cell": {"kind": "rgc", "cell_depth": 6}},
    ],
    "feedback": [{"source": "conv3", "target": "conv2"}],
}
RECORD = ("conv2", "conv3")


def reference_model(spec=SPEC, seed=0):
    torch.manual_seed(seed)
    model = convrnn.create_model(spec)
    with torch.no_grad():  # non-zero input-to-output convs (zero at init) so every path is exercised
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(0, 0.3)
                if module.bias is not None:
                    module.bias.normal_(0, 0.1)
        model.readout.weight.normal_(0, 0.5)
    return model


def run(model, x):
    out = model(x, record=RECORD)
    loss = out.logits.float().square().mean() + sum(out.recorded[n].float().square().mean() for n in RECORD)
    grads = torch.autograd.grad(loss, [p for p in model.parameters()], allow_unused=True)
    return out, grads


def assert_same(ref, fast, grads_ref, grads_fast, atol, rtol):
    torch.testing.assert_close(fast.logits.float(), ref.logits, atol=atol, rtol=rtol)
    for name in RECORD:
        torch.testing.assert_close(fast.recorded[name].float(), ref.recorded[name], atol=atol, rtol=rtol)
    for g_ref, g_fast in zip(grads_ref, grads_fast):
        assert (g_ref is None) == (g_fast is None)
        if g_ref is not None:
            torch.testing.assert_close(g_fast, g_ref, atol=atol * 10, rtol=rtol * 10)


@pytest.mark.parametrize("kernels", [(2, 3), (1, 3), (3, 5), (2, 2), (4, 1)])
def test_fused_same_conv_equals_the_separate_convolutions(kernels):
    torch.manual_seed(0)
    convs = [SameConv2d(5, c, k, bias=i == 0) for i, (c, k) in enumerate(zip((3, 4), kernels))]
    x = torch.randn(2, 5, 9, 8)
    for fused, conv in zip(fused_same_conv(x, convs), convs):
        torch.testing.assert_close(fused, conv(x), atol=1e-5, rtol=1e-5)


def test_fused_separable_gates_equal_the_separate_gates():
    from neurozoo.convrnn.cells import SeparableConv2d, fused_separable_conv

    torch.manual_seed(0)
    convs = [SeparableConv2d(5, c, 3) for c in (4, 6)]
    for conv in convs:
        torch.nn.init.normal_(conv.pointwise.bias)
    x = torch.randn(2, 5, 7, 6)
    for fused, conv in zip(fused_separable_conv(x, convs), convs):
        torch.testing.assert_close(fused, conv(x), atol=1e-5, rtol=1e-5)


def test_fast_path_float32_matches_the_reference_logits_layers_and_gradients():
    ref = reference_model()
    fast = make_fast(copy.deepcopy(ref), dtype=None, compile="none")
    assert fast.layers["conv2"].cell.fuse_inputs and fast._fast.channels_last
    assert fast.layers["conv2"].stage[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    out_ref, g_ref = run(ref, x)
    out_fast, g_fast = run(fast, x)
    assert out_ref.logits.abs().max() > 0.1  # a non-trivial function is compared
    assert_same(out_ref, out_fast, g_ref, g_fast, atol=2e-5, rtol=1e-4)
    # the image reaches conv3 at step 2 on the fast path too (timing logic on step indices): before it, the
    # outputs do not depend on the image
    other = fast(torch.randn(2, 3, 32, 32), record=["conv3"]).recorded["conv3"]
    first = fast.first_output_step("conv3")
    assert torch.equal(other[:first], out_fast.recorded["conv3"][:first].detach())
    assert not torch.equal(other[first], out_fast.recorded["conv3"][first].detach())
    to_reference(fast)
    assert fast._fast is None and not fast.layers["conv2"].cell.fuse_inputs
    torch.testing.assert_close(fast(x).logits, out_ref.logits, atol=2e-5, rtol=1e-4)


def test_bfloat16_fast_path_is_close_and_keeps_float32_weights():
    ref = reference_model()
    fast = ref.to_fast(compile="none")  # default: bfloat16 autocast
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out_ref, out_fast = ref(x, record=RECORD), fast(x, record=RECORD)
    assert out_fast.recorded["conv3"].dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in fast.parameters())
    scale = out_ref.logits.abs().max()
    assert (out_fast.logits.float() - out_ref.logits).abs().max() < 0.05 * scale


def test_compiled_step_has_no_graph_break_and_matches_the_reference():
    """fullgraph=True turns any graph break (e.g. a .item() or a branch on tensor values, which would
    synchronise with the host) into an error. The aot_eager backend traces forward and backward as Inductor
    would but skips C++ code generation, which takes minutes on this CPU; see the next test for Inductor."""
    import torch._dynamo

    torch._dynamo.reset()
    ref = reference_model()
    fast = make_fast(copy.deepcopy(ref), dtype=None, compile="step", backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    out_ref, g_ref = run(ref, x)
    out_fast, g_fast = run(fast, x)
    assert_same(out_ref, out_fast, g_ref, g_fast, atol=2e-5, rtol=1e-4)
    out_again, _ = run(fast, torch.randn(2, 3, 32, 32))  # cached graphs, no recompile errors
    assert out_again.logits.shape == (7, 2, 5)


@pytest.mark.parametrize("share", [False, True])
def test_compiled_step_compiles_one_graph_per_layer(share):
    """Only the steady step (state and feedback present) is compiled, each layer with its own code object; the
    first steps (no state, zero standin, feedback not yet arrived) and shared one-image steps run eagerly, and
    the blank frame is dense like the image. Before: 7 graphs on this model (20 on rgc_intermediate, where the
    Inductor compile of the first training step took 147 s on a CPU), all in one guard chain."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    ref = reference_model()
    fast = make_fast(copy.deepcopy(ref), dtype=None, compile="step", backend="eager", fullgraph=True,
                     share_image_free_steps=share)
    x = torch.randn(2, 3, 32, 32)
    out_ref, g_ref = run(ref, x)
    out_fast, g_fast = run(fast, x)
    assert_same(out_ref, out_fast, g_ref, g_fast, atol=2e-5, rtol=1e-4)
    run(fast, torch.randn(2, 3, 32, 32))
    assert counters["stats"]["unique_graphs"] == len(fast.layer_names) == 3


@pytest.mark.skipif(not os.environ.get("NEUROZOO_SLOW_TESTS"),
                    reason="Inductor compilation on CPU takes ~30 s for this model (C++ codegen of 3 graphs, "
                           "forward and backward); set NEUROZOO_SLOW_TESTS=1 to run it")
def test_inductor_compiled_step_matches_the_reference():
    ref = reference_model()
    fast = make_fast(copy.deepcopy(ref), dtype=None, compile="step")
    x = torch.randn(2, 3, 32, 32)
    out_ref, g_ref = run(ref, x)
    out_fast, g_fast = run(fast, x)
    assert_same(out_ref, out_fast, g_ref, g_fast, atol=1e-4, rtol=1e-3)


def test_cornet_s_like_baseline_has_cornet_s_size_and_runs():
    with torch.device("meta"):
        full = cornet_s()
    assert sum(p.numel() for p in full.parameters()) == pytest.approx(53.4e6, rel=0.002)  # CORnet-S: 53.4 M
    model = cornet_s(num_classes=7, width_multiplier=0.125)
    out = model(torch.randn(2, 3, 64, 64), record="V4")
    assert out.logits.shape == (1, 2, 7) and out.first_readout_step == 0
    assert out.recorded["V4"].shape == (4, 2, 32, 4, 4)  # V4's 4 steps: 256 x 0.125 channels at 1/16 resolution
    assert len(model.V4.norm1) == 4 and len(model.IT.norm1) == 2  # a separate BatchNorm per step


def test_cuda_graphs_are_refused_for_a_model_on_the_cpu():
    with pytest.raises(ValueError, match="needs the model on a GPU"):
        make_fast(reference_model(), cudagraphs=True)


def test_the_speed_scripts_whole_step_graph_is_refused_on_the_cpu():
    from neurozoo.benchmarks.perf.convrnn_gpu_speed import main

    with pytest.raises(SystemExit, match="--cuda-graph needs a GPU"):
        main(["--device", "cpu", "--image-size", "32", "--batch-size", "2", "--width", "0.0625", "--n-steps", "12",
              "--verify-graph"])


def test_per_layer_cuda_graphs_warn_that_they_train_slower_than_eager():
    """Measured on an H200 (docs/performance.md, third session): 5 images/s against 193 eager."""
    with pytest.warns(UserWarning, match="backward is pending.*5 images/s.*--cuda-graph"), \
            pytest.raises(ValueError, match="needs the model on a GPU"):
        make_fast(reference_model(), compile="step", cudagraphs=True)


def test_profile_script_sorts_a_training_step_by_kind_of_work(capsys):
    """benchmarks/perf/convrnn_gpu_profile.py at toy size on the CPU: every category of the table is there, they
    add up to the profiled aten time, and the FLOP split by convolution kind adds up to the model's forward FLOPs."""
    from neurozoo.benchmarks.perf.convrnn_gpu_profile import CATEGORIES, DENSE, DEPTHWISE, ConvFlops, main
    from neurozoo.benchmarks.perf.convrnn_gpu_speed import forward_flops, rgc_builder

    build = rgc_builder(0.0625, 12)
    counter = ConvFlops()
    total = forward_flops(build, 32, counter)
    assert total == forward_flops(build, 32)  # the custom formula changes no count
    assert counter.conv[DENSE] > counter.conv[DEPTHWISE] > 0
    readout = 512 * 0.0625 * 1000 * 2 * 12  # the linear readout (conv6's 32 channels to 1000) at each of 12 steps
    assert counter.conv[DENSE] + counter.conv[DEPTHWISE] + readout == total

    assert main(["--device", "cpu", "--image-size", "32", "--batch-size", "2", "--width", "0.0625", "--n-steps", "12",
                 "--fast-dtype", "float32", "--steps", "1", "--warmup", "0", "--top", "5"]) == 0
    out = capsys.readouterr().out
    rows = {line[:42].strip(): line[42:].split() for line in out.splitlines() if line[:42].strip() in CATEGORIES}
    assert set(CATEGORIES) - rows.keys() <= {f"{DENSE} backward, not split", f"{DEPTHWISE} backward, not split"}
    busy = float(out.split("self CPU time of aten ops: ")[1].split()[0])
    # the total is printed to 0.1 ms and each row to 0.01 ms: they agree within those roundings
    assert sum(float(r[0]) for r in rows.values()) == pytest.approx(busy, abs=0.05 + 0.005 * len(rows) + 1e-9)
    for needed in (f"{DENSE} forward", f"{DEPTHWISE} forward", f"{DEPTHWISE} backward, not split",
                   "elementwise & activation", "pad/copy/cat/fill"):
        assert float(rows[needed][0]) > 0, needed
    assert f"dense-conv share: {100 * 3 * counter.conv[DENSE] / (3 * total):.1f}% of the FLOPs in" in out
    top = out.split("top 5 ops by self CPU time")[1].splitlines()[3:8]
    assert len(top) == 5 and all(line.split()[3] in ("dense", "depthwise", "elementwise", "pad/copy/cat/fill",
                                                     "normalisation/other") for line in top)


def test_depthwise_script_times_the_gates_shapes_in_every_variant(capsys):
    """benchmarks/perf/depthwise_conv_speed.py at toy size: it finds the RGC gates' depthwise convolutions (7x7,
    channel multiplier 2 as the fused gates run them: 7 RGC layers x 2 states x 17 steps)
    and prints one row per shape and one total per variant."""
    from neurozoo.benchmarks.perf.depthwise_conv_speed import VARIANTS, depthwise_shapes, main
    from types import SimpleNamespace

    calls = depthwise_shapes(SimpleNamespace(width=0.0625, image_size=32, batch_size=2), torch.device("cpu"))
    assert {shape[4:] for shape in calls} == {(2, (7, 7), (3, 3))}
    assert {shape[0] for shape in calls} == {2} and sum(calls.values()) == 7 * 2 * 17
    assert main(["--device", "cpu", "--image-size", "32", "--batch-size", "2", "--width", "0.0625",
                 "--iters", "1", "--variants", "bf16-cl,fp32-cl-split"]) == 0
    out = capsys.readouterr().out
    assert sum(1 for line in out.splitlines() if line.endswith(("x2", "x2 ")) or " x2 " in line) == len(calls)
    totals = [line.split() for line in out.split("per training step")[1].splitlines()[1:] if line.strip()]
    assert [row[0] for row in totals] == ["bf16-cl", "fp32-cl-split"] and totals[0][-1] == "1.00x"
    assert set(VARIANTS) >= {"bf16-cl", "bf16-cl-split", "fp32-cl-split"}


def test_profile_sorts_cuda_kernels_by_op_shapes_and_kernel_name():
    """The GPU side of the profile, on recorded events as torch.profiler gives them (no GPU here): a kernel takes
    the category of the nearest copy or convolution op above it, a convolution's shapes tell depthwise from
    dense, and inside convolution_backward the kernel name tells the input gradient from the weight gradient."""
    from types import SimpleNamespace as Event

    from torch.autograd import DeviceType

    from neurozoo.benchmarks.perf.convrnn_gpu_profile import busy_us, category, device_times

    def op(name, shapes=(), parent=None, concrete=None, kernels=()):
        return Event(name=name, input_shapes=[list(s) for s in shapes], concrete_inputs=concrete, cpu_parent=parent,
                     device_type=DeviceType.CPU, is_async=False,
                     kernels=[Event(name=k, duration=d) for k, d in kernels])

    node = op("ConvolutionBackward0", parent=op("autograd::engine::evaluate_function: ConvolutionBackward0"))
    dense_bwd = op("aten::convolution_backward", [(64, 128, 56, 56), (64, 128, 56, 56), (128, 128, 3, 3)], node,
                   kernels=[("sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", 30.0),
                            ("sm90_xmma_wgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", 50.0),
                            ("nhwcToNchwKernel", 5.0)])
    depthwise_bwd = op("aten::convolution_backward", [(64, 256, 28, 28), (64, 128, 28, 28), (256, 1, 7, 7)], node,
                       kernels=[("void at::native::conv_depthwise2d_backward_kernel<c10::BFloat16>", 400.0),
                                ("void at::native::conv_depthwise2d_grad_weight_kernel<c10::BFloat16>", 900.0)])
    bias_grad = op("aten::sum", [(64, 128, 56, 56)], dense_bwd, kernels=[("reduce_kernel<512, 1>", 2.0)])
    first_layer = op("aten::convolution_backward", [(64, 64, 112, 112), (64, 3, 224, 224), (64, 3, 7, 7)], node,
                     concrete=[None] * 10 + [[False, True, True]], kernels=[("some_gemm_kernel", 7.0)])
    conv2d = op("aten::conv2d", [(64, 128, 56, 56), (128, 128, 3, 3)])
    cast = op("aten::copy_", [(128, 128, 3, 3), (128, 128, 3, 3)], op("aten::_to_copy", parent=conv2d),
              kernels=[("elementwise_kernel", 1.0)])
    forward = op("aten::cudnn_convolution", [(64, 128, 56, 56), (128, 128, 3, 3)], op("aten::_convolution",
                 parent=conv2d), kernels=[("sm90_xmma_fprop_implicit_gemm_bf16", 25.0)])
    depthwise_fwd = op("aten::_conv_depthwise2d", [(64, 128, 28, 28), (256, 1, 7, 7)],
                       kernels=[("conv_depthwise2d_forward_kernel", 300.0)])
    gate = op("aten::sigmoid", [(64, 128, 28, 28)], kernels=[("vectorized_elementwise_kernel", 8.0)])
    gate_bwd = op("aten::sigmoid_backward", [(64, 128, 28, 28)] * 2, node, kernels=[("elementwise_kernel", 9.0)])
    pad = op("aten::constant_pad_nd", [(64, 128, 28, 28)], kernels=[("elementwise_kernel", 4.0)])
    norm = op("aten::native_layer_norm", [(64, 128, 28, 28)], kernels=[("layer_norm_kernel", 3.0)])
    copy_h2d = op("cudaMemcpyAsync wrapper", kernels=[("Memcpy HtoD (Pageable -> Device)", 6.0)])
    events = [dense_bwd, depthwise_bwd, bias_grad, first_layer, cast, forward, depthwise_fwd, gate, gate_bwd, pad,
              norm, copy_h2d, op("aten::empty", [(4,)])]

    by_category, by_op, by_kernel = device_times(events, on_gpu=True)
    assert dict(by_category) == {
        "dense conv backward-input": 30.0, "dense conv backward-weight": 50.0 + 2.0 + 7.0,
        "dense conv backward, not split": 5.0, "depthwise conv backward-input": 400.0,
        "depthwise conv backward-weight": 900.0, "dense conv forward": 25.0, "depthwise conv forward": 300.0,
        "pad/copy/cat/fill": 1.0 + 4.0 + 6.0, "elementwise & activation": 8.0 + 9.0, "normalisation/other": 3.0}
    assert by_op[("depthwise conv backward-weight", "aten::convolution_backward", "64x256x28x28, 64x128x28x28, "
                  "256x1x7x7")] == [900.0, 1]
    assert by_kernel["elementwise_kernel"][:2] == [14.0, 3]
    assert category(depthwise_bwd) == "depthwise conv backward, not split"  # the CPU: one op, no kernel names

    kernel = lambda start, end: Event(device_type=DeviceType.CUDA, time_range=Event(start=start, end=end))
    assert busy_us([kernel(0, 10), kernel(5, 12), kernel(20, 25), dense_bwd]) == 17.0  # overlaps counted once


@pytest.mark.parametrize("fuse_gates", [False, True])
def test_fast_path_keeps_every_map_channels_last_across_the_unroll(fuse_gates):
    """A channels-first zero state made every later state, output and feedback resize channels-first once a
    channels-first operand led the cell's arithmetic (the fused gates' depthwise convolution did): on an H200 half
    of a training step went to PyTorch's NCHW bilinear-resize kernel (one thread per output pixel, looping over
    batch x channels) and to its generic depthwise kernels."""
    from torch.nn import functional as F

    torch.manual_seed(0)
    model = make_fast(convrnn.create_model("rgc_intermediate", width_multiplier=0.125, n_steps=12),
                      dtype=torch.bfloat16, compile="none", fuse_gates=fuse_gates)
    seen = []
    original = F.interpolate

    def spy(x, *args, **kwargs):
        seen.append(("resize", x.is_contiguous(memory_format=torch.channels_last)))
        return original(x, *args, **kwargs)

    for name, layer in model.layers.items():
        layer.cell.register_forward_hook(lambda module, args, out, name=name: seen.append(
            (name, all(t.is_contiguous(memory_format=torch.channels_last) for t in (out[0], *out[1])))))
    F.interpolate = spy
    try:
        model(torch.randn(2, 3, 64, 64)).logits.sum().backward()
    finally:
        F.interpolate = original
    assert sum(1 for kind, _ in seen if kind == "resize") >= 10
    assert sum(1 for kind, _ in seen if kind == "conv10") >= 1
    assert [entry for entry in seen if not entry[1]] == []
