"""TensorFlow tensor-bundle checkpoints read without TensorFlow, and `zoo convert-weights` on a checkpoint in the
released format with the released variable names (made by our bundle writer: the released files are not
downloaded in tests)."""
import os
import struct

import numpy as np
import pytest
import torch

from neurozoo import convrnn
from neurozoo.convrnn import tf_bundle as tb
from neurozoo.convrnn.convert import PUBLISHED, convert, published_weights
from neurozoo.convrnn.weights import tf_variables, to_tf
from neurozoo.leaderboard.cli import main


def test_crc32c_and_mask_match_the_published_check_values():
    assert tb.crc32c(b"123456789") == 0xE3069283  # the CRC-32C (Castagnoli) check value
    assert tb.crc32c(b"") == 0
    assert tb.mask(0) == 0xA282EAD8  # leveldb::crc32c::Mask(0): rotate right 15, add kMaskDelta


def test_bundle_entry_proto_is_parsed_from_hand_written_wire_bytes():
    """tensor_bundle.proto BundleEntryProto: dtype=1 DT_FLOAT, shape {dim {size 2} dim {size 3}}, offset=7,
    size=24, crc32c=0x01020304 (fixed32)."""
    raw = bytes([0x08, 0x01, 0x12, 0x08, 0x12, 0x02, 0x08, 0x02, 0x12, 0x02, 0x08, 0x03, 0x20, 0x07, 0x28, 0x18,
                 0x35, 0x04, 0x03, 0x02, 0x01])
    entry = tb.parse_entry(raw)
    assert (entry["dtype"], entry["shape"], entry["offset"], entry["size"], entry["crc32c"]) == (
        1, [2, 3], 7, 24, 0x01020304)
    assert tb.entry_proto(1, (2, 3), 7, 24, 0x01020304) == raw


def test_bundle_round_trip_and_sstable_layout(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"tnn_model/conv1/pre_0/weights_basenet": rng.normal(size=(7, 7, 3, 4)).astype(np.float32),
              "tnn_model/conv1/pre_0/bias": rng.normal(size=4).astype(np.float32),
              "global_step": np.array(12345, dtype=np.int64), "scalar": np.array(0.5, dtype=np.float32),
              "empty": np.zeros((0, 3), dtype=np.float32), "d": rng.normal(size=(2, 2))}
    prefix = str(tmp_path / "ckpt" / "model.ckpt")
    tb.write_bundle(prefix, arrays)
    index = open(prefix + ".index", "rb").read()
    assert struct.unpack("<Q", index[-8:])[0] == 0xDB4775248B80FB57 and len(index) > 48
    back = tb.read_bundle(prefix, verify=True)
    assert set(back) == set(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)


def test_corrupt_or_foreign_files_fail_with_the_file_named(tmp_path):
    prefix = str(tmp_path / "model.ckpt")
    tb.write_bundle(prefix, {"w": np.ones((3, 3), dtype=np.float32)})
    data = bytearray(open(prefix + ".index", "rb").read())
    data[3] ^= 0xFF  # inside the data block
    open(prefix + ".index", "wb").write(bytes(data))
    with pytest.raises(tb.BundleError, match="CRC32C"):
        tb.read_bundle(prefix)
    (tmp_path / "x.index").write_bytes(b"not a checkpoint" * 4)
    with pytest.raises(tb.BundleError, match=r"x\.index: not a TensorFlow checkpoint index"):
        tb.read_bundle(str(tmp_path / "x"))
    with pytest.raises(tb.BundleError, match="no such file"):
        tb.read_bundle(str(tmp_path / "missing"))
    tb.write_bundle(prefix, {"w": np.ones((3, 3), dtype=np.float32)})
    data = bytearray(open(prefix + ".data-00000-of-00001", "rb").read())
    data[0] ^= 0xFF
    open(prefix + ".data-00000-of-00001", "wb").write(bytes(data))
    with pytest.raises(tb.BundleError, match="'w' fails its CRC32C"):
        tb.read_bundle(prefix, verify=True)


def released_like_checkpoint(prefix, name, **overrides):
    """A checkpoint with the released variable names and layouts, plus what a training checkpoint also holds."""
    torch.manual_seed(1)
    model = convrnn.create_model(name, **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # non-zero biases too
    arrays = {n: to_tf(p, layout) for n, (p, layout) in tf_variables(model).items()}
    extras = {"global_step": np.array(5, dtype=np.int64), "tnn_model/conv1/memory_decay": np.zeros(1, np.float32)}
    extras.update({n + "/Momentum": np.zeros_like(a) for n, a in list(arrays.items())[:3]})
    tb.write_bundle(prefix, {**arrays, **extras})
    return model


@pytest.mark.parametrize("name", ["rgc_intermediate", "ugrnn_intermediate"])
def test_convert_weights_reproduces_the_model_and_labels_it_published(tmp_path, name):
    overrides = {"width_multiplier": 1 / 16, "num_classes": 7}
    prefix = str(tmp_path / name / "model.ckpt")
    original = released_like_checkpoint(prefix, name, **overrides)
    out = tmp_path / f"{name}.pt"
    record = convert(name, prefix, str(out), **overrides)
    assert record["unused"] == ["tnn_model/conv1/memory_decay"]  # optimizer slots and global_step are expected
    assert record["imagenet_top1"] is None  # another width: not the release's architecture, not its accuracy
    assert set(record["sha256"]) == {"model.ckpt.index", "model.ckpt.data-00000-of-00001"}
    converted = convrnn.create_model(name, **overrides).eval()
    state = torch.load(out, weights_only=True)
    converted.load_state_dict(state["model"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(converted(x, n_steps=12).logits, original(x, n_steps=12).logits)
    label = published_weights(out)["label"]
    assert label.startswith(f"{name} TF checkpoint with num_classes=7, width_multiplier=0.0625, converted (sha256 ")
    assert label.endswith("; not the released architecture") and "ImageNet" not in label


def test_a_converted_checkpoint_is_labelled_by_its_digest_and_the_release_by_its_reported_accuracy(tmp_path):
    """Any checkpoint in the released format converts, and the released files are not here to compare digests with:
    the label names the files' digest and gives the accuracy as the release's report, not as this file's; another
    file gets another digest."""
    from neurozoo.convrnn.convert import is_conversion_label

    first, second = str(tmp_path / "a" / "model.ckpt"), str(tmp_path / "b" / "model.ckpt")
    released_like_checkpoint(first, "timedecay_shallow")
    arrays = tb.read_bundle(first)
    name = next(n for n in arrays if n.endswith("/weights"))
    arrays[name] = arrays[name] + np.float32(0.01)  # another training run's file: one tensor differs
    os.makedirs(os.path.dirname(second))
    tb.write_bundle(second, arrays)
    labels = []
    for i, prefix in enumerate((first, second)):
        record = convert("timedecay_shallow", prefix, str(tmp_path / f"{i}.pt"))
        assert record["imagenet_top1"] == PUBLISHED["timedecay_shallow"][0]
        labels.append(record["label"])
    for label in labels:
        assert label.startswith("timedecay_shallow TF checkpoint, converted (sha256 ") and is_conversion_label(label)
        assert label.endswith("; released: ImageNet top-1 50.06% (top-5 72.97%)")
    assert labels[0] != labels[1]
    assert is_conversion_label("published weights, ImageNet top-1 73.00% (top-5 91.16%)")  # files converted before
    assert not is_conversion_label("untrained, random weights")


def test_rgc_intermediate_checkpoint_label_in_the_leaderboard_specs(tmp_path):
    from neurozoo.leaderboard.zoo import default_benchmarks, zoo_specs

    prefix = str(tmp_path / "rgc" / "model.ckpt")
    released_like_checkpoint(prefix, "rgc_intermediate", width_multiplier=1 / 16)
    out = tmp_path / "rgc.pt"
    convert("rgc_intermediate", prefix, str(out), width_multiplier=1 / 16)
    bench = [b for b in default_benchmarks() if b.startswith("ventral_embedded.")][:1]
    specs, _ = zoo_specs(["rgc_intermediate"], bench, checkpoints={"rgc_intermediate": str(out)})
    assert specs[0]["weights"].startswith("rgc_intermediate TF checkpoint with width_multiplier=0.0625, converted")
    assert specs[0]["overrides"] == {"width_multiplier": 1 / 16}  # the converted model's own width, not 0.125
    plain, _ = zoo_specs(["rgc_intermediate"], bench)
    assert plain[0]["weights"] == "untrained, random weights"


def test_zoo_convert_weights_command(tmp_path, capsys):
    assert main(["convert-weights", "rgc_intermediate", str(tmp_path / "none" / "model.ckpt"), "--out",
                 str(tmp_path / "x.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["convert-weights", "vgg16", "x", "--out", str(tmp_path / "x.pt")]) == 2
    assert "error: unknown released ConvRNN 'vgg16' (known: gru_intermediate, " in capsys.readouterr().err
    # the registries' one refusal (datasets.registry.lookup): a misspelt name got the list without the close names
    assert main(["convert-weights", "rgc_intermediat", "x", "--out", str(tmp_path / "x.pt")]) == 2
    assert "unknown released ConvRNN 'rgc_intermediat'; did you mean rgc_intermediate, " in capsys.readouterr().err
    mismatch = str(tmp_path / "m" / "model.ckpt")
    released_like_checkpoint(mismatch, "rgc_intermediate", width_multiplier=1 / 16)
    assert main(["convert-weights", "rgc_intermediate", mismatch, "--out", str(tmp_path / "x.pt")]) == 2
    assert "does not fit 'rgc_intermediate'" in capsys.readouterr().err  # a 1/16-width file for the full model


def test_a_conversion_that_fails_part_way_leaves_the_earlier_converted_file(tmp_path):
    """The converted checkpoint was written in place: a kill or a full disk mid-write left a torn file under the name
    `zoo run --checkpoint` reads, where a whole one had been. It is renamed into place now."""
    from full_disk import files_limited_to

    prefix = str(tmp_path / "rgc" / "model.ckpt")
    released_like_checkpoint(prefix, "rgc_intermediate", width_multiplier=1 / 16)
    out = tmp_path / "rgc.pt"
    convert("rgc_intermediate", prefix, str(out), width_multiplier=1 / 16)
    before = out.read_bytes()
    with files_limited_to(len(before) // 2), pytest.raises((OSError, RuntimeError)):  # torch's writer: RuntimeError
        convert("rgc_intermediate", prefix, str(out), width_multiplier=1 / 16)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["rgc", "rgc.pt"]
