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
