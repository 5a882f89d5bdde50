"""The fast contiguous-chunk path equals the plain model: outputs, gradients and BatchNorm statistics."""
import copy

import pytest
import torch

from neurozoo.retina import fast_conv
from neurozoo.retina.fast_conv import conv2d_fft, conv_first_layer, resolve_method
from neurozoo.retina.models.bncnn import RetinaCNN, windows


def _rel(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


@pytest.mark.parametrize("method", ["fft", "fft_taps", "conv3d", "windows"])
def test_first_layer_equals_windowed_conv2d(method):
    torch.manual_seed(0)
    movie = torch.randn(40 + 11, 50, 50, dtype=torch.float64)
    weight, bias = torch.randn(8, 40, 15, 15, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    reference = torch.nn.functional.conv2d(windows(movie).contiguous(), weight, bias)
    assert _rel(conv_first_layer(movie, weight, bias, method=method), reference) < 1e-10


@pytest.mark.parametrize("x_shape,w_shape", [((6, 8, 36, 36), (8, 8, 11, 11)), ((3, 2, 9, 7), (5, 2, 3, 4))])
def test_conv2d_fft_equals_conv2d_with_gradients(x_shape, w_shape):
    """The FFT second layer: outputs and the gradients of input, weight and bias equal F.conv2d's (float64)."""
    torch.manual_seed(2)
    x = torch.randn(*x_shape, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(*w_shape, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(w_shape[0], dtype=torch.float64, requires_grad=True)
    reference = torch.nn.functional.conv2d(x, weight, bias)
    out = conv2d_fft(x, weight, bias)
    assert out.shape == reference.shape and _rel(out, reference) < 1e-12
    upstream = torch.randn_like(reference)
    expected = torch.autograd.grad((reference * upstream).sum(), (x, weight, bias))
    got = torch.autograd.grad((out * upstream).sum(), (x, weight, bias))
    for name, g, e in zip(("input", "weight", "bias"), got, expected):
        assert _rel(g, e) < 1e-12, name
    with pytest.raises(ValueError, match="conv2d_fft needs"):
        conv2d_fft(x[0], weight)


def test_fft_first_layer_weight_gradient_and_no_stimulus_gradient():
    """The FFT first layer's own backward: the weight gradient equals conv3d's, for a chunk and a batch of chunks."""
    torch.manual_seed(4)
    weight = torch.randn(3, 6, 5, 4, dtype=torch.float64, requires_grad=True)  # any sizes: small ones are quick
    for movie in (torch.randn(6 + 9, 20, 17, dtype=torch.float64), torch.randn(2, 6 + 4, 20, 17, dtype=torch.float64)):
        reference = conv_first_layer(movie, weight, method="conv3d")
        upstream = torch.randn_like(reference)
        expected, = torch.autograd.grad((reference * upstream).sum(), weight)
        out = conv_first_layer(movie, weight, method="fft")
        got, = torch.autograd.grad((out * upstream).sum(), weight)
        assert _rel(out, reference) < 1e-12 and _rel(got, expected) < 1e-12
    with pytest.raises(ValueError, match="no gradient with respect to the movie"):
        conv_first_layer(movie.requires_grad_(), weight, method="fft")


def test_first_layer_rejects_short_movie():
    with pytest.raises(ValueError, match="at least 40"):
        conv_first_layer(torch.zeros(30, 50, 50), torch.zeros(8, 40, 15, 15))


def _perturbed_model(**factory):
    torch.manual_seed(1)
    model = RetinaCNN(n_cells=5, noise_std=0.0, **factory)
    with torch.no_grad():  # non-trivial BatchNorm state and affine parameters
        for bn in (model.bn1, model.bn2, model.bn3):
            if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
                bn.running_mean.uniform_(-0.1, 0.1), bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5)
    return model


def _run(model, movie, target, fast, dtype, train):
    model = copy.deepcopy(model).to(dtype).train(train)
    movie = movie.to(dtype)
    out = model.forward_movie(movie) if fast else model(windows(movie).contiguous())
    if train:
        torch.nn.functional.poisson_nll_loss(out, target.to(dtype), log_input=False).backward()
    return model, out.double()


@pytest.mark.parametrize("factory", [dict(), dict(channels=(16, 8), kernel_sizes=(15, 9), batchnorm=False,
                                                   parametric_softplus=True)])
def test_fast_equals_plain_eval_and_training_with_gradients(factory):
    """Same weights, same chunk: outputs and all gradients within 1e-4 relative of the plain model.

    The reference is the plain model in float64; the fast path is checked in float64 (outputs and gradients
    within 1e-4) and float32 (outputs within 1e-4; gradients within 1e-2, the size of the plain float32
    model's own deviation from float64 in conv1's gradient on this CPU)."""
    base = _perturbed_model(**factory)
    movie, target = torch.randn(40 + 15, 50, 50), torch.rand(16, 5)
    for train in (False, True):  # training: BatchNorm statistics over the chunk's 16 windows
        ref_model, ref_out = _run(base, movie, target, False, torch.float64, train)
        for dtype in (torch.float64, torch.float32):
            model, out = _run(base, movie, target, True, dtype, train)
            assert _rel(out, ref_out) < 1e-4, (train, dtype)
            if train:
                # float32 rounding is amplified in the gradients by BatchNorm's mean subtraction (the plain
                # float32 model deviates from float64 by up to ~1e-2 too); exactness is checked in float64
                tolerance = 1e-4 if dtype == torch.float64 else 1e-2
                for (name, p), q in zip(ref_model.named_parameters(), model.parameters()):
                    if name.endswith("bias") and name[:5] in ("conv1", "conv2") and factory.get("batchnorm", True):
                        # a per-channel bias before a per-unit BatchNorm: its gradient is exactly zero in training
                        # (the published model has it all the same); both paths agree to rounding
                        assert p.grad.abs().max() < 1e-12 and q.grad.abs().max() < 1e-4, (name, dtype)
                        continue
                    assert _rel(q.grad.double(), p.grad) < tolerance, (name, dtype)
                for m_ref, m in zip(ref_model.modules(), model.modules()):
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        assert torch.allclose(m.running_mean.double(), m_ref.running_mean, rtol=1e-4, atol=1e-6)
                        assert torch.allclose(m.running_var.double(), m_ref.running_var, rtol=1e-4, atol=1e-6)


def test_fast_training_step_is_faster():
    """Not the benchmark (benchmarks/perf/retina_fit_speed.py), just a guard against losing the speed-up."""
    import time

    torch.manual_seed(0)
    model = RetinaCNN(n_cells=3)
    movie = torch.randn(48 + 39, 50, 50)
    batch = windows(movie).contiguous()

    def step(fn):
        model.zero_grad()
        tic = time.process_time()  # CPU time: robust to other processes on the machine
        fn().sum().backward()
        return time.process_time() - tic

    step(lambda: model.forward_movie(movie)), step(lambda: model(batch))  # warm-up
    fast = min(step(lambda: model.forward_movie(movie)) for _ in range(2))
    plain = min(step(lambda: model(batch)) for _ in range(2))
    assert plain / fast > 2.0, (plain, fast)


def test_batch_of_chunks_equals_plain_batch_with_shared_batchnorm():
    torch.manual_seed(3)
    model = RetinaCNN(n_cells=4, noise_std=0.0).double().train()
    chunks = torch.randn(3, 40 + 5, 50, 50, dtype=torch.float64)
    plain = model(torch.cat([windows(c) for c in chunks]).contiguous())  # one batch of 18 windows
    assert _rel(model.forward_movie(chunks), plain) < 1e-8
    for method in ("conv3d", "windows"):  # windows: all chunks as one conv2d batch
        assert _rel(conv_first_layer(chunks, model.conv1.weight, model.conv1.bias, method=method),
                    conv_first_layer(chunks, model.conv1.weight, model.conv1.bias, method="fft")) < 1e-8
    with pytest.raises(ValueError, match="need at least 40"):
        conv_first_layer(torch.zeros(2, 30, 50, 50), model.conv1.weight)


def test_layers_split_over_threads_equal_the_unsplit_layers():
    """split_threads: the first layer's channels (and the movie's spectrum) and the second layer's batch computed in
    parts on two threads give the unsplit outputs and gradients, biases included (float64), which equal conv3d's and
    conv2d's; torch's thread count is restored after."""
    from neurozoo.retina.fast_conv import split_threads

    torch.manual_seed(5)
    movie = torch.randn(2, 6 + 9, 20, 17, dtype=torch.float64)
    w1 = torch.randn(3, 6, 5, 4, dtype=torch.float64, requires_grad=True)
    b1 = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 4, 12, 11, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(3, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    b2 = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def run(method="fft"):
        out1 = conv_first_layer(movie, w1, b1, method=method)
        out2 = conv2d_fft(x, w2, b2) if method == "fft" else torch.nn.functional.conv2d(x, w2, b2)
        grads = torch.autograd.grad((out1 * out1.detach()).sum() + (out2 * out2.detach()).sum(), (w1, b1, x, w2, b2))
        return (out1, out2, *grads)

    threads = torch.get_num_threads()
    unsplit = run()
    for a, b in zip(unsplit, run("conv3d")):
        assert a.shape == b.shape and _rel(a, b) < 1e-12
    with split_threads(2):
        assert torch.get_num_threads() == 1
        split = run()
    assert torch.get_num_threads() == threads
    for a, b in zip(split, unsplit):
        assert a.shape == b.shape and _rel(a, b) < 1e-12


def test_fused_batchnorm_noise_relu_equals_the_module_layers_split_or_not():
    """unit_batchnorm_noise_relu (the hidden layers in training): without noise, the outputs, the input, gain and
    offset gradients and the running statistics of BatchNorm1d -> ReLU (float64), unsplit and split over two threads;
    with noise, bit for bit the published layers' BatchNorm -> GaussianNoise -> ReLU for the same global seed (the
    same draw: a fit follows the same path), split or not."""
    from neurozoo.retina.fast_conv import split_threads, unit_batchnorm_noise_relu
    from neurozoo.retina.models.bncnn import GaussianNoise, UnitBatchNorm

    torch.manual_seed(6)
    x = torch.randn(9, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    reference = UnitBatchNorm((3, 5, 4), eps=1e-3, momentum=0.01).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5), reference.bias.uniform_(-0.5, 0.5)
        reference.running_var.uniform_(0.5, 2.0)
    upstream = torch.randn_like(x)
    fused = copy.deepcopy(reference)
    expected = torch.relu(reference(x))
    expected_grads = torch.autograd.grad((expected * upstream).sum(), (x, reference.weight, reference.bias))
    for ways in (1, 2):
        norm = copy.deepcopy(fused)
        with split_threads(ways):
            out = unit_batchnorm_noise_relu(x, norm, 0.0)
            grads = torch.autograd.grad((out * upstream).sum(), (x, norm.weight, norm.bias))
        assert _rel(out, expected) < 1e-12, ways
        for name, g, e in zip(("input", "weight", "bias"), grads, expected_grads):
            assert _rel(g, e) < 1e-12, (ways, name)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.allclose(getattr(norm, name), getattr(reference, name), rtol=1e-12, atol=0), (ways, name)
    x32 = torch.randn(64, 4, 10, 10)
    norm = UnitBatchNorm((4, 10, 10))
    torch.manual_seed(7)
    published = torch.relu(GaussianNoise(0.05).train()(norm(x32))).detach()
    for ways in (1, 2):
        torch.manual_seed(7)
        with split_threads(ways):
            assert torch.equal(unit_batchnorm_noise_relu(x32, UnitBatchNorm((4, 10, 10)), 0.05).detach(), published)
    with pytest.raises(ValueError, match="more than 1 value"):
        unit_batchnorm_noise_relu(torch.zeros(1, 4, 10, 10), UnitBatchNorm((4, 10, 10)), 0.05)


def test_keep_freed_memory_stops_page_faults_on_large_temporaries():
    """After keep_freed_memory (the fit calls it on the CPU), freeing and reallocating step-sized temporaries (1-8 MB)
    reuses the process's memory: 30 rounds fault in about one round's pages, not every round's (~130 000 without)."""
    import platform
    import resource

    from neurozoo.retina.fast_conv import keep_freed_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt only")
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
    pages_per_round = sum((5, 3, 8, 2, 1, 6)) * (1 << 20) // resource.getpagesize()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(30):
        blocks = [torch.ones(n << 18) for n in (5, 3, 8, 2, 1, 6)]  # n MB each
        del blocks
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 3 * pages_per_round


def test_training_step_noise_drawn_ahead_is_the_published_draw():
    """forward_movie in training draws both hidden layers' noise before the first layer (on the pool's thread when
    split): the outputs equal the published graph's Conv -> BatchNorm -> GaussianNoise -> ReLU (x2) run with the same
    global seed (float64), split or not, and the global generator ends in the same state."""
    from torch.nn import functional as F_

    from neurozoo.retina.fast_conv import split_threads

    base = _perturbed_model()
    for module in (base.noise1, base.noise2):
        module.std = 0.05
    base = base.double().train()
    movie = torch.randn(40 + 11, 50, 50, dtype=torch.float64)
    published = copy.deepcopy(base)
    torch.manual_seed(11)
    h1 = F_.relu(published.noise1(published.bn1(published.conv1(windows(movie).contiguous()))))
    expected = published.readout(F_.relu(published.noise2(published.bn2(published.conv2(h1)))))
    after = torch.rand(3)
    for ways in (1, 2):
        model = copy.deepcopy(base)
        torch.manual_seed(11)
        with split_threads(ways):
            out = model.forward_movie(movie)
        assert _rel(out, expected) < 1e-8, ways
        assert torch.equal(torch.rand(3), after), ways


def test_auto_resolves_to_fft_on_cpu_and_direct_convolutions_elsewhere():
    """cuDNN's direct convolutions beat the FFT layers on CUDA (H200: plain 22799 vs fast[fft] 9827 frames/s)."""
    for device in (torch.device("cpu"), "cpu"):
        assert resolve_method("auto", device) == "fft"
        assert resolve_method("auto", device, layer=2) == "fft"
    for device in (torch.device("cuda"), torch.device("cuda", 1), "cuda:0", torch.device("mps"), torch.device("meta")):
        assert resolve_method("auto", device) == "windows"
        assert resolve_method("auto", device, layer=2) == "direct"
    for device in (torch.device("cpu"), torch.device("cuda")):  # explicit methods honoured on any device
        assert [resolve_method(m, device) for m in ("fft", "fft_taps", "conv3d", "windows")] == \
            ["fft", "fft_taps", "conv3d", "windows"]
        assert [resolve_method(m, device, layer=2) for m in ("fft", "direct")] == ["fft", "direct"]
    with pytest.raises(ValueError, match="unknown layer-1 method"):
        resolve_method("cudnn", torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown layer-2 method"):
        resolve_method("windows", "cpu", layer=2)
    with pytest.raises(ValueError, match="second_layer must be one of"):
        RetinaCNN(second_layer="conv3d")


def _count_fft_layers(monkeypatch):
    calls = {"first": 0, "second": 0}
    fft3d, fft2 = fast_conv._fft3d, fast_conv.conv2d_fft

    def first(*args):
        calls["first"] += 1
        return fft3d(*args)

    def second(*args):
        calls["second"] += 1
        return fft2(*args)

    monkeypatch.setattr(fast_conv, "_fft3d", first)
    monkeypatch.setattr("neurozoo.retina.models.bncnn.conv2d_fft", second)
    return calls


def test_auto_fast_forward_on_cpu_is_the_fft_path_unchanged(monkeypatch):
    torch.manual_seed(5)
    model = RetinaCNN(n_cells=3, noise_std=0.0).train()
    explicit = copy.deepcopy(model)
    explicit.first_layer, explicit.second_layer = "fft", "fft"
    movie = torch.randn(2, 40 + 6, 50, 50)
    calls = _count_fft_layers(monkeypatch)
    auto_out = model.forward_movie(movie)
    assert calls == {"first": 1, "second": 1}
    assert torch.equal(auto_out, explicit.forward_movie(movie))  # bit for bit the FFT path
    assert _rel(auto_out, copy.deepcopy(model)(torch.cat([windows(c) for c in movie]).contiguous())) < 1e-4


def test_auto_fast_forward_off_cpu_runs_the_plain_convolutions(monkeypatch):
    """On a non-CPU device (meta here: no GPU needed) neither FFT layer runs; explicit methods still do."""
    model = RetinaCNN(n_cells=3).eval().to("meta")
    movie = torch.empty(2, 40 + 6, 50, 50, device="meta")
    calls = _count_fft_layers(monkeypatch)
    assert model.forward_movie(movie).shape == (14, 3)
    assert calls == {"first": 0, "second": 0}
    model.second_layer = "fft"
    model.forward_movie(movie, method="fft")
    assert calls == {"first": 1, "second": 1}


def test_speed_script_labels_the_fast_path_with_the_methods_run():
    from neurozoo.benchmarks.perf.retina_fit_speed import fast_label

    assert fast_label("auto", torch.device("cpu")) == "fft"
    assert fast_label("auto", torch.device("cuda")) == "windows+conv2"
    assert fast_label("fft", torch.device("cuda")) == "fft+conv2"
