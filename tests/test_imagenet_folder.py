"""ImageNet-layout folders: class index by sorted WNID, errors that name the culprit, the flat
``<wnid>_<label>.JPEG`` layout, and the evaluation pipeline on the real ImageNet sample images."""
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from neurozoo.convrnn.training.imagefolder import (FlatImageFolder, ImageFolder, imagenet_wnids, is_flat, load_rgb,
                                          open_folder, open_imagenet)
from neurozoo.convrnn.training.synthetic import write_image_folder
from neurozoo.convrnn.training.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform
from neurozoo.datasets.errors import DataError

WNIDS = ["n03000134", "n01440764", "n02102040", "n01443537"]  # deliberately unsorted


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "data", per_class=3, val_per_class=2, wnids=WNIDS, greyscale_every=5)


@pytest.mark.parametrize("check", ["open_imagenet", "check_imagenet"])
def test_a_file_given_as_the_data_folder_is_named_a_file_not_said_to_be_missing(check, tmp_path):
    """zoo train/search --data images.tar (a file, not the folder) said "data folder images.tar does not exist"."""
    from neurozoo.convrnn.training import imagefolder

    (tmp_path / "images.tar").write_bytes(b"not a folder")
    expected = "(expected train/<wnid>/*.JPEG and val/<wnid>/*.JPEG)"
    for path, state in ((tmp_path / "images.tar", "is a file, not a folder"), (tmp_path / "gone", "does not exist")):
        with pytest.raises(DataError) as raised:
            getattr(imagefolder, check)(path)
        assert str(raised.value) == f"data folder {path} {state} {expected}"


def test_class_index_is_sorted_train_wnids_and_shared_with_val(folder):
    splits = open_imagenet(folder, build_transform(32, True), build_transform(32, False))
    train, val = splits["train"], splits["val"]
    assert train.classes == sorted(WNIDS)
    assert train.class_to_idx == {"n01440764": 0, "n01443537": 1, "n02102040": 2, "n03000134": 3}
    assert val.class_to_idx == train.class_to_idx
    assert len(train) == 12 and len(val) == 8
    for path, label in train.samples + val.samples:
        assert label == train.class_to_idx[os.path.basename(os.path.dirname(path))]
    image, label = val[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == 0


def test_val_may_lack_classes_but_keeps_train_indices(folder):
    shutil.rmtree(folder / "val" / "n01440764")
    val = open_imagenet(folder)["val"]
    assert sorted(set(val.targets)) == [1, 2, 3]


def test_greyscale_images_load_as_rgb(folder):
    greys = [p for p, _ in ImageFolder(folder / "train").samples if Image.open(p).mode == "L"]
    assert greys, "fixture should contain greyscale files"
    image = load_rgb(greys[0])
    assert image.mode == "RGB"
    rgb = np.asarray(image)
    assert rgb.shape[2] == 3 and np.array_equal(rgb[..., 0], rgb[..., 1])


def test_images_deeper_than_8_bits_load_only_when_their_values_fit_0_to_255(folder):
    """PIL's convert("RGB"), which torchvision's loader also uses, clipped a 16-bit PNG's values above 255 to white and
    truncated a float TIFF's 0.5 to black, silently: such images are named; one whose values fit loads unchanged."""
    ramp = np.tile(np.arange(0, 64 * 1000, 1000, dtype=np.uint16), (8, 1))  # 0..63000: all but 0 clip to 255
    wide = folder / "train" / "n01440764" / "n01440764_wide.png"
    Image.fromarray(ramp).save(wide)
    train = open_imagenet(folder)["train"]
    index = [p for p, _ in train.samples].index(str(wide))
    with pytest.raises(DataError, match=rf"^cannot read image {wide}: 16-bit integer values 0\.\.63000 \(PIL mode "
                                        r"I;16\); expected 8 bits per channel \(whole numbers 0-255\)"):
        train[index]
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(folder / "half.tif")
    with pytest.raises(DataError, match=r"half\.tif: floating-point values 0\.5\.\.0\.5 \(PIL mode F\)"):
        load_rgb(folder / "half.tif")
    narrow = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (8, 1))  # a 16-bit file holding 8-bit values
    Image.fromarray(narrow).save(wide)
    assert np.array_equal(np.asarray(train[index][0])[..., 1], narrow)


def test_an_image_over_pils_decompression_bomb_limit_is_named(folder, monkeypatch):
    # PIL raises its DecompressionBombError (not an OSError) above twice MAX_IMAGE_PIXELS: a traceback before
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    big = folder / "train" / "n01440764" / "n01440764_big.png"
    Image.new("RGB", (20, 20)).save(big)
    train = open_imagenet(folder)["train"]
    with pytest.raises(DataError, match=rf"^cannot read image {big}: Image size \(400 pixels\) exceeds limit .*resize "
                                        "it first"):
        train[[p for p, _ in train.samples].index(str(big))]


def test_no_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "stray.JPEG")
    with pytest.raises(DataError, match="no class folders"):
        open_imagenet(tmp_path)


def test_imagenets_validation_images_as_distributed_are_named_with_what_to_do(tmp_path):
    """val/ as image-net.org distributes it (50000 ILSVRC2012_val_*.JPEG in one folder, labels in the devkit) was
    refused as 'no class folders' without a word of the images it held or of sorting them into class folders."""
    from neurozoo.convrnn.training.imagefolder import check_imagenet

    write_image_folder(tmp_path / "data", per_class=2, val_per_class=1, wnids=WNIDS[:2])
    shutil.rmtree(tmp_path / "data" / "val")
    (tmp_path / "data" / "val").mkdir()
    for i in (1, 2):
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    val = tmp_path / "data" / "val"
    for check in (open_imagenet, lambda folder: check_imagenet(folder, require_val=True)):
        with pytest.raises(DataError) as raised:
            check(tmp_path / "data")
        assert str(raised.value) == (
            f"image folder {val} has no class folders (expected {val}/<wnid>/<image>.JPEG); it holds 2 images "
            "directly, e.g. ILSVRC2012_val_00000001.JPEG, ILSVRC2012_val_00000002.JPEG, with no WNID in their names (a "
            "flat folder names them <wnid>_<anything>.JPEG): ImageNet's validation images as distributed "
            "(ILSVRC2012_val_*.JPEG) must first be sorted into class folders by the devkit's labels "
            "(torchvision.datasets.ImageNet(root, split='val') does it, as does the valprep.sh script)")


def test_missing_train_split(tmp_path):
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="no train/ folder"):
        open_imagenet(tmp_path)


def test_empty_class_folder_is_named(folder):
    """The error named the folder and the extensions read, not what the folder held instead (nothing, or a file of
    another extension, which is skipped as torchvision skips it)."""
    from neurozoo.convrnn.training.imagefolder import check_imagenet

    empty = folder / "train" / "n09999999"
    empty.mkdir()
    for check in (open_imagenet, check_imagenet):
        with pytest.raises(DataError, match=rf"^class folder {empty} has no images: it is empty; expected image files "
                                            r"\(\.jpg, \.jpeg, .*\), or remove the folder \(every class folder is a class\)$"):
            check(folder)
    (empty / "notes.txt").write_text("not an image")
    (empty / "sub").mkdir()
    (empty / "sub" / "n09999999_1.JPEG.part").write_text("half a download")
    for check in (open_imagenet, check_imagenet):
        with pytest.raises(DataError, match=r"n09999999 has no images: it holds 2 files, none with an image "
                                            r"extension, e.g\. notes\.txt, sub/n09999999_1\.JPEG\.part; expected"):
            check(folder)


def test_a_class_folder_of_only_macos_hidden_files_is_said_to_hold_hidden_files(folder):
    """A zip made on a Mac unpacks a __MACOSX/ folder beside the classes, holding ._<name>.JPEG resource forks for
    every image: the error said it held files "none with an image extension, e.g. n01440764/._a.JPEG" (they have one;
    they are skipped because hidden, as .DS_Store is)."""
    from neurozoo.convrnn.training.imagefolder import check_imagenet

    forks = folder / "train" / "__MACOSX" / "n01440764"
    forks.mkdir(parents=True)
    (forks / "._a.JPEG").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (forks / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    for check in (open_imagenet, check_imagenet):
        with pytest.raises(DataError) as raised:
            check(folder)
        assert str(raised.value).startswith(
            f"class folder {folder / 'train' / '__MACOSX'} has no images: it holds only 2 hidden files, e.g. "
            "n01440764/.DS_Store, n01440764/._a.JPEG, which are skipped (a name starting with '.': macOS's .DS_Store "
            "and ._* resource forks); __MACOSX is the folder of resource forks that a zip made on a Mac unpacks to: "
            "delete it; expected image files (.jpg")


def test_a_class_folder_of_one_file_says_one_file(folder):
    """It said "it holds 1 hidden file(s), e.g. .DS_Store, which are skipped" of a single file."""
    from neurozoo.convrnn.training.imagefolder import check_imagenet

    lone = folder / "train" / "n09999999"
    lone.mkdir()
    (lone / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    with pytest.raises(DataError) as hidden:
        check_imagenet(folder)
    assert str(hidden.value).startswith(f"class folder {lone} has no images: it holds only 1 hidden file, e.g. "
                                        ".DS_Store, which is skipped (a name starting with '.'")
    (lone / "notes.txt").write_text("not an image")
    with pytest.raises(DataError) as other:
        check_imagenet(folder)
    assert str(other.value).startswith(f"class folder {lone} has no images: it holds 2 files, none with an image "
                                       "extension, e.g. .DS_Store, notes.txt; expected")
    (lone / ".DS_Store").unlink()
    with pytest.raises(DataError) as one:
        check_imagenet(folder)
    assert str(one.value).startswith(f"class folder {lone} has no images: it holds 1 file, none with an image "
                                     "extension, e.g. notes.txt; expected")


def test_val_class_missing_from_train(folder):
    (folder / "val" / "n04000000").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "val" / "n04000000" / "x.JPEG")
    with pytest.raises(DataError, match="n04000000.*training split does not have"):
        open_imagenet(folder)


def test_unreadable_file_is_named(folder):
    bad = folder / "train" / "n01440764" / "n01440764_broken.JPEG"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    train = open_imagenet(folder, build_transform(32, True))["train"]
    index = [p for p, _ in train.samples].index(str(bad))
    with pytest.raises(DataError, match="n01440764_broken.JPEG"):
        train[index]
    train[index - 1]  # its neighbours still load


def test_flat_folder_maps_to_the_standard_1000_class_index(tmp_path):
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids == sorted(wnids)
    assert wnids[0] == "n01440764" and wnids[999] == "n15075141"
    for wnid, name in (("n15075141", "toilet_tissue"), ("n01440764", "tench"), ("n02102040", "English_springer")):
        Image.new("L", (40, 30), 128).save(tmp_path / f"{wnid}_{name}.JPEG")
    assert is_flat(tmp_path)
    data = open_folder(tmp_path, build_transform(32, False))
    assert isinstance(data, FlatImageFolder)
    assert data.targets == [0, wnids.index("n02102040"), 999]
    image, label = data[2]
    assert image.shape == (3, 32, 32) and label == 999


def test_flat_folder_rejects_unknown_names(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "n01440764_tench.JPEG")
    Image.new("RGB", (8, 8)).save(tmp_path / "n99999999_nothing.JPEG")
    with pytest.raises(DataError, match="n99999999_nothing.JPEG.*not one of the 1000"):
        FlatImageFolder(tmp_path)


def test_eval_transform_resizes_then_center_crops():
    # a 64x48 image whose left and right thirds differ: resize shorter side to 32/0.875 = 36, crop 32
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, 32:] = 255
    x = build_transform(32, train=False)(Image.fromarray(pixels))
    assert x.shape == (3, 32, 32)
    white = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    black = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    assert torch.allclose(x[:, 16, 0], black, atol=1e-4) and torch.allclose(x[:, 16, -1], white, atol=1e-4)


def test_train_transform_is_random_crop_and_flip():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    transform = build_transform(32, train=True)
    torch.manual_seed(0)
    outputs = [transform(image) for _ in range(4)]
    assert all(o.shape == (3, 32, 32) for o in outputs)
    assert not torch.equal(outputs[0], outputs[1])


def test_real_imagenet_sample_through_the_val_pipeline(shared_data):
    root = shared_data / "imagenet_sample"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    data = open_folder(root, build_transform(224, train=False))
    assert isinstance(data, FlatImageFolder)
    assert len(data) == 1000 and len(data.classes) == 1000
    by_wnid = {os.path.basename(p).split("_")[0]: label for p, label in data.samples}
    assert by_wnid["n01440764"] == 0 and by_wnid["n15075141"] == 999
    assert sorted(by_wnid.values()) == list(range(1000))
    assert sorted(by_wnid) == imagenet_wnids()
    greys = [i for i, (p, _) in enumerate(data.samples) if Image.open(p).mode == "L"]
    assert len(greys) == 23
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data, greys[:4] + [0, 999]), batch_size=6)
    images, labels = next(iter(loader))
    assert images.shape == (6, 3, 224, 224) and labels[-2:].tolist() == [0, 999]
    pixels = images * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert torch.allclose(pixels[0, 0], pixels[0, 1], atol=1e-5) and torch.allclose(pixels[0, 0], pixels[0, 2], atol=1e-5)
    assert not torch.allclose(pixels[4, 0], pixels[4, 2], atol=0.05)  # a colour image is not grey
    mean = images[4:].mean(dim=(0, 2, 3))
    assert (mean.abs() < 1.5).all()  # normalised, not raw [0, 1] or [0, 255] pixels


def test_classes_samples_and_preprocessing_equal_torchvisions(tmp_path):
    """Independent reference: torchvision's ImageFolder (class index = sorted folder names, files sorted) and the
    standard ImageNet preprocessing written out with torchvision (resize the short side to 256, center crop 224;
    RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3) + horizontal flip p=0.5 for training), with the mean/std the
    original normalises by (convrnns run_model.py normalize_ims, lines 8-21; mean and std lines 18-19)."""
    import neurozoo.datasets.torchvision_compat  # noqa: F401
    import torchvision
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    for name in ("n02", "n10", "n01", "B", "a"):  # unsorted, mixed case: byte order as Python's sorted()
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 255, (300 + 37 * i, 411, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "train" / name / f"im{i}.JPEG")
    reference = torchvision.datasets.ImageFolder(tmp_path / "train")
    ours = open_imagenet(tmp_path)["train"]
    assert ours.class_to_idx == reference.class_to_idx and ours.classes == reference.classes == ["B", "a", "n01", "n02", "n10"]
    assert ours.samples == [(str(p), label) for p, label in reference.samples]

    image = load_rgb(ours.samples[-1][0])  # 337 x 411: a non-square image
    normalise = [T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    evaluation = T.Compose([T.Resize(256), T.CenterCrop(224), *normalise])
    assert torch.equal(build_transform(224, train=False)(image), evaluation(image))
    training = build_transform(224, train=True)
    crops = [t for t in training.transforms if "RandomResizedCrop" in type(t).__name__]
    flips = [t for t in training.transforms if isinstance(t, T.RandomHorizontalFlip)]
    assert len(crops) == 1 and crops[0].size == (224, 224) and tuple(crops[0].scale) == (0.08, 1.0)
    assert tuple(crops[0].ratio) == pytest.approx((3 / 4, 4 / 3)) and len(flips) == 1 and flips[0].p == 0.5
    assert len(training.transforms) == 4  # crop, flip, to-tensor, normalise: no colour jitter or other augmentation
    assert torch.equal(training.transforms[-1].mean, torch.tensor(IMAGENET_MEAN))
    assert torch.equal(training.transforms[-1].std, torch.tensor(IMAGENET_STD))
