"""``zoo train`` trains and scores the model's answer: the decoder's output for *_tmaxconf / *_dthresh.

The original's model_func returns only the decoded logits (neuroailab/convrnns models/model_func.py lines 192-209:
``logits = temporal_decoder(...)``; ``assert len(logits.shape) == 2``), so what its loss and its top-1 see is the
decoder's answer; the decoders are utils/decoders.py lines 116-129 (max_conf) and 157-202 (thresh). The parity
reference is tests/convrnn_reference.py (``model_func_logits``), written from that code.
"""
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from neurozoo import convrnn
from neurozoo.convrnn.training import TrainConfig, Trainer, read_metrics
from neurozoo.convrnn.training.evaluation import topk_correct
from neurozoo.convrnn.training.loss import model_answer, unrolled_loss

sys.path.insert(0, os.path.dirname(__file__))
import convrnn_reference as ref  # noqa: E402
pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
# model_func's num_layers (models/model_func.py line 114: len(G); decoder_start, line 197) for the intermediate
# models: conv1..conv10 and imnetds
NODES = 11
# A short flash (2 frames, then the blank) with a sharpened readout (x 30): the random network's confidence then
# peaks inside the decoder's window [11, 17), on another class than the last step's for most images.
FLASH = {"width_multiplier": 0.125, "image_steps": 2}
SHARPEN = 30.0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Noise images: the random network's answers then differ between images (on the stripe images of
    ``write_image_folder`` it gives every image the same class, whatever the step)."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in range(4):
            folder = root / split / f"n{label + 1:08d}"
            folder.mkdir(parents=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def sharpen(model):
    with torch.no_grad():
        model.readout.weight.mul_(SHARPEN)
        model.readout.bias.mul_(SHARPEN)
    return model


def flashed(name, seed=1, dtype=torch.float32):
    torch.manual_seed(seed)
    model = convrnn.create_model(name, num_classes=4, **FLASH).to(dtype).eval()
    return sharpen(model)


def reference_answer(model, out):
    beta = model.softmax_beta.item() if model.softmax_beta is not None else 1.0
    return ref.model_func_logits(out.logits.detach().numpy(), model.spec.decoder, NODES, beta)


@pytest.mark.parametrize("name", ["rgc_intermediate_tmaxconf", "rgc_intermediate_dthresh", "rgc_intermediate"])
def test_the_answer_used_in_evaluation_matches_the_original_decoders(name):
    model = flashed(name, dtype=torch.float64)
    x = torch.randn(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    expected, steps = reference_answer(model, out)
    np.testing.assert_allclose(model_answer(out).numpy(), expected, rtol=0, atol=1e-12)
    if name == "rgc_intermediate":
        assert (steps == out.logits.shape[0] - 1).all()
    else:  # a decoder that read the last step would fail here
        assert (steps < out.logits.shape[0] - 1).any() and (steps >= NODES).all()


def test_max_confidence_decoder_uses_the_trainable_beta_as_the_original():
    """decoders.py line 120: the beta-scaled softmax picks the step (line 122); the gather is of the unscaled
    logits (line 129). Random logits where beta 0.05 and beta 3 choose different steps for some samples."""
    model = convrnn.create_model("rgc_intermediate_tmaxconf", width_multiplier=0.125, num_classes=5)
    logits = torch.randn(17, 64, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    chosen = {}
    for beta in (0.05, 3.0):
        with torch.no_grad():
            model.softmax_beta.fill_(beta)
        expected, chosen[beta] = ref.model_func_logits(logits.numpy(), "max_conf", NODES, beta)
        np.testing.assert_array_equal(model.decode(logits).numpy(), expected)
    assert (chosen[0.05] != chosen[3.0]).any()


def test_the_t22_max_confidence_model_reads_steps_11_to_21_as_model_func():
    """rgc_intermediate_t22_tmaxconf (utils/loader.py lines 69-73): model_func unrolls a "t22" base for 22 steps of the
    constant image (long_unroll, lines 150-153; set_imagepres lines 56-59 and 67-69) and decodes steps
    range(num_layers, times) = 11 .. 21 (lines 196-203) with the trainable-beta max_conf decoder."""
    model = convrnn.create_model("rgc_intermediate_t22_tmaxconf", width_multiplier=0.125, num_classes=5)
    assert (model.spec.n_steps, model.spec.image_steps, model.spec.decoder) == (22, 22, "max_conf")
    logits = torch.randn(22, 256, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3
    with torch.no_grad():
        model.softmax_beta.fill_(0.7)
    expected, steps = ref.model_func_logits(logits.numpy(), "max_conf", NODES, 0.7)
    np.testing.assert_array_equal(model.decode(logits).numpy(), expected)
    assert steps.min() == NODES and steps.max() == 21  # the whole window is read, from its first step to the last


def test_the_loss_is_the_decoders_answer_and_leaves_softmax_beta_without_gradient():
    """The original's max_confidence_decoder reaches the loss only through tf.argmax (decoders.py line 122) and a
    gather of the unscaled logits (line 129): softmax_beta gets no gradient; we keep that."""
    model = flashed("rgc_intermediate_tmaxconf")
    x = torch.randn(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    target = torch.arange(16) % 4
    out = model(x)
    assert not torch.equal(out.final_logits.argmax(-1), out.logits[-1].argmax(-1))
    loss = unrolled_loss(out, target)
    assert torch.equal(loss, F.cross_entropy(out.final_logits, target))
    assert not torch.allclose(loss, F.cross_entropy(out.logits[-1], target))
    loss.backward()
    assert model.softmax_beta.grad is None
    assert model.readout.weight.grad is not None and model.readout.weight.grad.abs().sum() > 0


def config(data, out, name, **kw):
    base = dict(model=name, data=str(data), out=str(out), epochs=1, batch_size=8, lr=1e-3, optimizer="sgd",
                schedule="constant", image_size=SIZE, augment=False, workers=0, seed=1, log_every=1, quiet=True,
                max_steps_per_epoch=1, overrides=dict(FLASH))
    base.update(kw)
    return TrainConfig(**base)


def top1_percent(logits, target):
    return 100.0 * topk_correct(logits, target)[0].item() / len(target)


@pytest.mark.parametrize("name", ["rgc_intermediate_tmaxconf", "rgc_intermediate_dthresh"])
def test_evaluate_reports_the_decoders_top1(data, tmp_path, name):
    trainer = Trainer(config(data, tmp_path, name))
    try:
        sharpen(trainer.model)
        images, target = map(torch.cat, zip(*trainer.val_loader))
        with torch.no_grad():
            out = trainer.model.eval()(images)
        decoded, _ = reference_answer(trainer.model, out)
        decoded = torch.from_numpy(decoded)
        # the old code's figures (the last step's): its top-1 differs for tmaxconf, its loss for dthresh
        if name == "rgc_intermediate_tmaxconf":
            assert top1_percent(decoded, target) != top1_percent(out.logits[-1], target)
        last_loss = F.cross_entropy(out.logits[-1], target).item()
        assert F.cross_entropy(decoded, target).item() != pytest.approx(last_loss, rel=1e-3)
        row = trainer.evaluate()
        assert row["val_top1"] == top1_percent(decoded, target)
        assert row["val_loss"] == pytest.approx(F.cross_entropy(decoded, target).item(), rel=1e-6)
    finally:
        trainer.close()


def test_a_model_without_decoder_is_scored_and_trained_on_its_last_step(data, tmp_path):
    trainer = Trainer(config(data, tmp_path, "rgc_intermediate"))
    try:
        sharpen(trainer.model)
        images, target = map(torch.cat, zip(*trainer.val_loader))
        with torch.no_grad():
            out = trainer.model.eval()(images)
        assert out.decoded is None
        row = trainer.evaluate()
        assert row["val_top1"] == top1_percent(out.logits[-1], target)
        assert row["val_loss"] == pytest.approx(F.cross_entropy(out.logits[-1], target).item(), rel=1e-6)
        assert torch.equal(unrolled_loss(out, target), F.cross_entropy(out.logits[-1], target))
    finally:
        trainer.close()


@pytest.mark.parametrize("name", ["rgc_intermediate_tmaxconf", "rgc_intermediate"])
def test_the_training_step_minimises_the_answers_cross_entropy(data, tmp_path, name):
    """The first logged training loss is the cross-entropy of the model's answer on the first batch."""
    trainer = Trainer(config(data, tmp_path, name))
    try:
        sharpen(trainer.model)
        trainer.train_sampler.set_epoch(0)
        images, target = next(iter(trainer.train_loader))
        with torch.no_grad():
            out = trainer.model(images)
        trainer.fit()
    finally:
        trainer.close()
    logged = read_metrics(tmp_path / "metrics.jsonl", kind="iter")[0]["loss"]
    assert logged == pytest.approx(F.cross_entropy(out.final_logits, target).item(), rel=1e-5)
    if name != "rgc_intermediate":
        assert logged != pytest.approx(F.cross_entropy(out.logits[-1], target).item(), rel=1e-3)
