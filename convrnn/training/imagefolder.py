"""ImageNet-layout folders read with PIL.

Two layouts:

* ``split/<wnid>/<image>`` (torchvision ``ImageFolder``): the class index of a WNID is its position
  among the sorted WNIDs of ``train/``; ``val/`` is read with that same mapping and may not name a
  WNID that ``train/`` lacks.
* a flat folder of ``<wnid>_<anything>.<ext>`` files (e.g. one image per class, as in the public
  ImageNet sample), mapped to the standard ImageNet-1k index (the 1000 sorted WNIDs).

Problems are reported as ``DataError`` naming the folder or file, not as a bare ``FileNotFoundError``
or PIL traceback halfway through an epoch.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.image_files import load_rgb  # noqa: F401 (decodes the images; imported from here too)
from neurozoo.datasets.text_table import counted, plural

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
WNID = re.compile(r"^n\d{8}$")
FLAT_NAME = re.compile(r"^(n\d{8})_.*$")
#: ImageNet's validation images as distributed: one folder, no WNID in the name (labels in the devkit)
RAW_VAL_NAME = re.compile(r"^ILSVRC20\d\d_val_\d+\.", re.IGNORECASE)


def is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


def imagenet_wnids() -> List[str]:
    """The 1000 ImageNet-1k WNIDs in sorted order: index i is class i of the standard label set."""
    import neurozoo.datasets.torchvision_compat  # noqa: F401  (before timm)
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


def imagenet_class_to_idx() -> Dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


def class_folders(root: Path) -> List[str]:
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not names:
        images = sorted(e.name for e in os.scandir(root) if e.is_file() and is_image(e.name))
        loose = ""
        if images:
            loose = (f"; it holds {counted(len(images), 'image')} directly, e.g. {shown_names(images)}, with no WNID "
                     "in their names (a flat folder names them <wnid>_<anything>.JPEG)")
            if any(RAW_VAL_NAME.match(name) for name in images):
                loose += (": ImageNet's validation images as distributed (ILSVRC2012_val_*.JPEG) must first be sorted "
                          "into class folders by the devkit's labels (torchvision.datasets.ImageNet(root, split='val') "
                          "does it, as does the valprep.sh script)")
        raise DataError(f"image folder {root} has no class folders (expected {root}/<wnid>/<image>.JPEG){loose}")
    return names


def class_difference(saved: List[str], current: List[str], other: str = "the checkpoint") -> str:
    """Where two class lists (sorted WNID folders) first differ, in words: ``current``'s against ``other``'s."""
    if len(saved) != len(current):
        return f"{len(current)} class folders in train/, {other} has {len(saved)}"
    index = next(i for i, (a, b) in enumerate(zip(saved, current)) if a != b)
    return f"class {index} is {current[index]!r}, {other}'s is {saved[index]!r}"


def shown_names(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _images_below(folder: Path) -> List[str]:
    """Image files in ``folder`` and its subfolders, in torchvision ``make_dataset``'s order (sorted ``os.walk``
    with links followed, names sorted within each folder)."""
    return [os.path.join(root, name) for root, _, names in sorted(os.walk(folder, followlinks=True))
            for name in sorted(names) if is_image(name)]


def no_images(folder: Path) -> DataError:
    """The error of a class folder without an image: what it holds instead (nothing, or files of other extensions,
    which are skipped as torchvision skips them) and the extensions read."""
    others = sorted(os.path.relpath(os.path.join(root, name), folder)
                    for root, _, names in os.walk(folder, followlinks=True) for name in names)
    hidden = [name for name in others if os.path.basename(name).startswith(".")]
    if others and len(hidden) == len(others):  # "none with an image extension" was said of ._x.JPEG
        found = (f"it holds only {counted(len(hidden), 'hidden file')}, e.g. {', '.join(hidden[:3])}, which "
                 f"{'is' if len(hidden) == 1 else 'are'} skipped (a "
                 "name starting with '.': macOS's .DS_Store and ._* resource forks)")
        if folder.name == "__MACOSX":
            found += "; __MACOSX is the folder of resource forks that a zip made on a Mac unpacks to: delete it"
    else:
        found = (f"it holds {counted(len(others), 'file')}, none with an image extension, e.g. {', '.join(others[:3])}"
                 if others else "it is empty")
    return DataError(f"class folder {folder} has no images: {found}; expected image files ({', '.join(IMG_EXTENSIONS)}), "
                     "or remove the folder (every class folder is a class)")


class ImageFolder(torch.utils.data.Dataset):
    """``root/<class>/<image>`` -> (transform(image), class index).

    ``class_to_idx`` defaults to the sorted class folders of ``root``; pass the train split's
    mapping when reading ``val/`` so that a class means the same index in both."""

    def __init__(self, root, transform: Optional[Callable] = None, class_to_idx: Optional[Dict[str, int]] = None):
        self.root = Path(root)
        found = class_folders(self.root)
        if class_to_idx is None:
            class_to_idx = {name: i for i, name in enumerate(found)}
        else:
            unknown = [name for name in found if name not in class_to_idx]
            if unknown:
                raise DataError(f"{self.root} has {plural(len(unknown), 'class folder')} {shown_names(unknown)} "
                                "that the training split does "
                                "not have; train/ and val/ must use the same WNIDs")
        self.class_to_idx = dict(class_to_idx)
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.get)
        self.samples: List[Tuple[str, int]] = []
        for name in found:
            folder = self.root / name
            files = _images_below(folder)
            if not files:
                raise no_images(folder)
            label = self.class_to_idx[name]
            self.samples.extend((path, label) for path in files)
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = load_rgb(path)
        return (self.transform(image) if self.transform else image), label


class FlatImageFolder(ImageFolder):
    """A flat folder of ``<wnid>_<anything>.<ext>`` files with the standard ImageNet-1k index."""

    def __init__(self, root, transform: Optional[Callable] = None, class_to_idx: Optional[Dict[str, int]] = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root} does not exist or is not a folder")
        self.class_to_idx = dict(class_to_idx) if class_to_idx is not None else imagenet_class_to_idx()
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.get)
        self.samples = []
        for name in sorted(e.name for e in os.scandir(self.root) if e.is_file() and is_image(e.name)):
            match = FLAT_NAME.match(name)
            if not match:
                raise DataError(f"{self.root / name}: a flat image folder needs files named <wnid>_<label>.<ext>")
            if match.group(1) not in self.class_to_idx:
                raise DataError(f"{self.root / name}: WNID {match.group(1)} is not one of the "
                                f"{len(self.class_to_idx)} known classes")
            self.samples.append((str(self.root / name), self.class_to_idx[match.group(1)]))
        if not self.samples:
            raise DataError(f"image folder {self.root} has no images")
        self.targets = [label for _, label in self.samples]
        self.transform = transform


def is_flat(root) -> bool:
    """True when ``root`` holds ``<wnid>_*.ext`` images directly rather than class folders."""
    root = Path(root)
    if not root.is_dir():
        return False
    entries = list(os.scandir(root))
    return not any(e.is_dir() for e in entries) and any(e.is_file() and FLAT_NAME.match(e.name) and is_image(e.name)
                                                        for e in entries)


def open_folder(root, transform=None, class_to_idx: Optional[Dict[str, int]] = None) -> ImageFolder:
    """An ``ImageFolder`` or, for a flat ``<wnid>_*`` folder, a ``FlatImageFolder``."""
    if is_flat(root):
        return FlatImageFolder(root, transform, class_to_idx)
    return ImageFolder(root, transform, class_to_idx)


def split_wnids(folder: Path) -> List[str]:
    """The classes of a split: its class folders, or for a flat folder the WNIDs its file names start with."""
    if is_flat(folder):
        return sorted({FLAT_NAME.match(e.name).group(1) for e in os.scandir(folder)
                       if e.is_file() and is_image(e.name) and FLAT_NAME.match(e.name)})
    return class_folders(folder)


def _not_there(folder: Path) -> str:
    """Why ``folder`` is no folder: a file given for it was said not to exist (``--data images.tar``)."""
    return "is a file, not a folder" if folder.exists() else "does not exist"


def check_imagenet(data_dir, require_val: bool = False, batch_size: Optional[int] = None) -> None:
    """The checks of ``open_imagenet`` that need no full listing (folders, class folders, an image in each), for a
    caller that must refuse a bad folder before it records anything (``zoo search``: a failed trial per bad folder).
    ``require_val`` (the search, which trains on train/ and scores on val/): val/ must exist and both splits must hold
    the same classes; a train/ with classes val/ lacks was accepted, and so was a flat val/ whose WNIDs train/ lacks,
    found only when a trial opened the folder. ``batch_size``: train/ must hold one full batch of images (the trainer's
    check, made when each trial set up its trainer: a FAIL trial in the study with optuna's warning, then the error);
    images are counted until there are that many, so a large folder is not walked whole."""
    data_dir = Path(data_dir)
    expected = "(expected train/<wnid>/*.JPEG and val/<wnid>/*.JPEG)"
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} {_not_there(data_dir)} {expected}")
    for split in ("train", "val") if require_val else ("train",):
        if not (data_dir / split).is_dir():
            raise DataError(f"data folder {data_dir} has no {split}/ folder {expected}")
    wnids = {split: split_wnids(data_dir / split) for split in ("train", "val") if (data_dir / split).is_dir()}
    if "val" in wnids:
        unknown = sorted(set(wnids["val"]) - set(wnids["train"]))
        if unknown:
            raise DataError(f"{data_dir / 'val'} has {plural(len(unknown), 'class folder')} {shown_names(unknown)} "
                            "that the training split "
                            "does not have; train/ and val/ must use the same WNIDs")
        unscored = sorted(set(wnids["train"]) - set(wnids["val"]))
        if require_val and unscored:
            raise DataError(f"{data_dir / 'train'} has {plural(len(unscored), 'class folder')} {shown_names(unscored)} "
                            "that val/ does not have; "
                            f"trials train on train/ and are scored on val/, so train/ must hold the class folders of "
                            f"val/, no more ({len(wnids['val'])} in {data_dir / 'val'})")
    for split, names in wnids.items():
        if is_flat(data_dir / split):
            continue
        for name in names:
            folder = data_dir / split / name
            if not any(is_image(f) for _, _, files in os.walk(folder, followlinks=True) for f in files):
                raise no_images(folder)
    if batch_size is not None:
        train, found = data_dir / "train", 0
        for _, _, files in os.walk(data_dir / "train", followlinks=True):
            found += sum(map(is_image, files))
            if found >= batch_size:
                return
        raise DataError(f"{train}: {found} training images give no full batch of {batch_size} per process on 1 "
                        "process; lower --batch-size")


def raised_in_worker(error: Exception) -> str:
    """``error``'s message as it was raised in a DataLoader worker process: torch raises it again in the main process
    with the worker's traceback in its message ("Caught DataError in DataLoader worker process 0.\nOriginal
    Traceback ..."), so a one-line error naming a bad image came out as a traceback. Other errors: their message."""
    text = str(error)
    if not (text.startswith("Caught ") and "\nOriginal Traceback" in text):
        return text
    last = text.rstrip().splitlines()[-1]
    raised_as = f"{type(error).__module__}.{type(error).__qualname__}: "
    return last[len(raised_as):] if last.startswith(raised_as) else last


def open_imagenet(data_dir, train_transform=None, val_transform=None,
                  splits: Sequence[str] = ("train", "val")) -> Dict[str, ImageFolder]:
    """The ``train`` and ``val`` splits of an ImageNet-layout folder with one shared class index.

    ``val`` is optional (absent -> not in the result)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} {_not_there(data_dir)} (expected train/<wnid>/*.JPEG and "
                        "val/<wnid>/*.JPEG)")
    out: Dict[str, ImageFolder] = {}
    if "train" in splits:
        if not (data_dir / "train").is_dir():
            raise DataError(f"data folder {data_dir} has no train/ folder (expected train/<wnid>/*.JPEG and val/<wnid>/*.JPEG)")
        out["train"] = open_folder(data_dir / "train", train_transform)
    if "val" in splits and (data_dir / "val").is_dir():
        mapping = out["train"].class_to_idx if "train" in out else None
        out["val"] = open_folder(data_dir / "val", val_transform, mapping)
    return out
