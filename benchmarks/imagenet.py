"""``imagenet.val``: a model's top-1 / top-5 on an ImageNet-layout folder (``zoo score MODEL imagenet.val --data DIR``).

The images go through ``zoo train``'s evaluation transform (``convrnn.training.transforms.build_transform``: resize
to size / 0.875, center crop, ImageNet mean/std) and its evaluation loop
(``convrnn.training.evaluation.evaluation_sums``: the model's answer, ``model_answer``, as ``zoo train``'s validation
scores it), so a checkpoint scores here what its ``metrics.jsonl`` logged as ``val_top1`` on the same folder. For a ConvRNN the per-readout-step accuracies go into
``per_bin`` (one row per step from its first image-dependent readout on).

Folders (``--data``): ``DIR/<wnid>/<image>`` or ``DIR/val/<wnid>/<image>`` (an ImageNet root), or a flat folder of
``<wnid>_<label>.<ext>`` files. A class's index is, in this order: its position in a ``zoo train`` checkpoint's
classes; its ImageNet-1k index (a flat folder; class folders named by ImageNet WNIDs that are fewer than a
1000-class model's classes, e.g. a subset of the val set); its position among the sorted class folders.
"""
from __future__ import annotations

import functools
import math
import numbers
import os
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from neurozoo.benchmarks.score import Score
from neurozoo.datasets.errors import DataError, SpecError

IDENTIFIER = "imagenet.val"
EXPECTED = "DIR/<wnid>/<image>.JPEG, DIR/val/<wnid>/<image>.JPEG or a flat DIR/<wnid>_<label>.JPEG"


def val_folder(data) -> Path:
    """The folder of images that ``--data`` names: ``data/val`` of an ImageNet root, else ``data`` itself."""
    data = Path(data)
    if not data.is_dir():
        raise DataError(f"{IDENTIFIER}: --data {data} does not exist or is not a folder (expected {EXPECTED})")
    return data / "val" if (data / "val").is_dir() else data


def model_classes(model: torch.nn.Module, image_size: int, device) -> int:
    """The number of classes ``model`` answers with: its ``num_classes`` (timm, CORnet) or its spec's (ConvRNN),
    else the width of its answer to one gray image."""
    for owner in (model, getattr(model, "spec", None)):
        if isinstance(getattr(owner, "num_classes", None), int):
            return owner.num_classes
    from neurozoo.convrnn.training.loss import model_answer
    from neurozoo.datasets.model_modes import eval_mode

    channels = getattr(getattr(model, "spec", None), "input_channels", 3)
    with torch.no_grad(), eval_mode(model):
        return int(model_answer(model(torch.zeros(1, channels, image_size, image_size, device=device))).shape[-1])


def open_val(root: Path, transform, n_classes: int, classes: Optional[Sequence[str]] = None):
    """``(dataset, how the class index was chosen)``; a folder whose classes cannot be the model's is refused naming
    the folder, the classes expected and those found."""
    from neurozoo.convrnn.training.imagefolder import (WNID, class_folders, imagenet_class_to_idx, is_flat,
                                                        open_folder)

    if classes is not None:
        if len(classes) != n_classes:
            raise DataError(f"{IDENTIFIER}: the checkpoint names {len(classes)} classes, its model answers with "
                            f"{n_classes}")
        return open_folder(root, transform, {name: i for i, name in enumerate(classes)}), "checkpoint classes"
    if is_flat(root):
        if n_classes != 1000:
            raise DataError(f"{root}: a flat <wnid>_<label> folder is read with the 1000 ImageNet-1k classes, but the "
                            f"model has {n_classes} classes: expected a 1000-class model, or class folders "
                            f"{root}/<class>/ ({n_classes} of them)")
        return open_folder(root, transform), "imagenet-1k"
    found = class_folders(root)  # refuses a missing folder, or one without class folders
    if len(found) == n_classes:
        return open_folder(root, transform), "sorted class folders"
    if n_classes == 1000 and all(WNID.match(name) for name in found):
        index = imagenet_class_to_idx()
        unknown = [name for name in found if name not in index]
        if not unknown:
            return open_folder(root, transform, index), "imagenet-1k"
    raise DataError(f"{root}: {len(found)} class folders found, the model has {n_classes} classes: expected "
                    f"{n_classes} class folders (a class's index is its position among them, sorted)"
                    + (", or ImageNet-1k WNIDs for a 1000-class model" if n_classes == 1000 else "")
                    + " (a zoo train checkpoint's own classes are used with --checkpoint)")


def subset(dataset, max_images: Optional[int], seed: int) -> None:
    """Keep ``max_images`` of the dataset's images, drawn with ``seed`` (kept in file order): a prefix of a class-folder
    layout would hold the first classes only."""
    if max_images is None or max_images >= len(dataset.samples):
        return
    chosen = np.sort(np.random.default_rng(seed).choice(len(dataset.samples), size=max_images, replace=False))
    dataset.samples = [dataset.samples[i] for i in chosen]
    dataset.targets = [label for _, label in dataset.samples]


class ImageNetBenchmark:
    """Top-1 (the value, percent) and top-5 accuracy of a model's answer on an ImageNet-layout folder."""

    identifier = IDENTIFIER

    def score(self, model: torch.nn.Module, data, image_size: int = 224, batch_size: int = 32,
              max_images: Optional[int] = None, seed: int = 0, workers: int = 0, classes: Optional[Sequence[str]] = None,
              progress: bool = True, safe_point: Optional[Callable[[int, int], None]] = None) -> Score:
        """``safe_point(done, total)``: called before each batch (``zoo score``'s safe point for a SIGTERM, which
        raises there: :data:`datasets.termination.SafePoint`), as in the activation extraction
        (``extraction.activations.extract``)."""
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        from neurozoo.convrnn import check_image_size  # the package's export (tests/test_layers.py REGISTRIES)
        from neurozoo.convrnn.training.evaluation import evaluation_sums
        from neurozoo.convrnn.training.file_checksums import file_list_sha256
        from neurozoo.convrnn.training.imagefolder import raised_in_worker
        from neurozoo.convrnn.training.transforms import build_transform
        from neurozoo.datasets.model_modes import eval_mode
        from neurozoo.datasets.provenance import code_version, device_name, git_commit
        from neurozoo.datasets.termination import sigterm_from

        if not (isinstance(image_size, numbers.Integral) and image_size >= 1):  # failed inside torchvision's transform
            raise SpecError(f"image_size: expected an integer >= 1 (the center crop's side in px), got {image_size!r}")
        check_image_size(model, image_size, option="image_size")  # PyTorch's "Output size is too small"
        started = time.perf_counter()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        root = val_folder(data)
        transform = build_transform(image_size, train=False)
        n_classes = model_classes(model, image_size, device)
        dataset, class_index = open_val(root, transform, n_classes, classes)
        in_folder = len(dataset.samples)
        subset(dataset, max_images, seed)
        images_sha256 = file_list_sha256(dataset, contents=True)  # of the images read: the bytes, not the sizes
        # a scheduler's SIGTERM to the whole job leaves the loading workers to this process, which stops at its safe
        # point (safe_point): it killed them, and torch's SIGCHLD handler failed the run with a traceback
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                            worker_init_fn=functools.partial(sigterm_from, os.getpid()))

        def batches():
            for done, (images, target) in enumerate(loader):
                if safe_point is not None:  # the first too: it ends zoo score's stretch where a stop is at once
                    safe_point(done, len(loader))
                yield images.to(device), target.to(device)

        first_step = int(getattr(model, "first_readout_step", 0))
        bar = tqdm(total=len(loader), desc=f"{IDENTIFIER} {root}", unit="batch", leave=False, dynamic_ncols=True,
                   disable=not progress or None)  # None: shown on a terminal only
        try:
            with eval_mode(model):
                sums = evaluation_sums(model, batches(), device, first_step, on_batch=bar.update)
        except DataError as error:  # a corrupt image read in a loading worker: its one line
            raise DataError(raised_in_worker(error)) from None
        finally:
            bar.close()
        loss, top1, top5, n = sums["answer"].tolist()
        value = 100 * top1 / n
        per_step = [{"step": first_step + i, "top1": 100 * hits[0] / n, "top5": 100 * hits[1] / n}
                    for i, hits in enumerate(sums["steps"].tolist())] if sums["steps"].shape[0] > 1 else []
        settings: Dict[str, object] = {
            "benchmark": IDENTIFIER, "data": str(root.resolve()), "n_images": int(n), "n_images_in_folder": in_folder,
            "max_images": max_images, "subset_seed": seed if max_images is not None and max_images < in_folder else None,
            "n_classes": n_classes, "class_index": class_index, "top1": value, "top5": 100 * top5 / n,
            "loss": loss / n, "image_size": image_size, "batch_size": batch_size, "transform": repr(transform),
            "answer": "model_answer (the decoder's output, else the last step), as zoo train's validation",
            "first_readout_step": first_step, "model_class": type(model).__name__,
            # data_sha256 (names, labels, sizes) is kept as it was, so that earlier records still reproduce
            "images_sha256": images_sha256}
        return Score(value=value, error=100 * math.sqrt(value / 100 * (1 - value / 100) / n), per_bin=per_step,
                     provenance={"code_version": code_version(), "git_commit": git_commit(),
                                 "data_sha256": file_list_sha256(dataset, sizes=True), "seed": seed,
                                 "device": device_name(device), "duration_s": time.perf_counter() - started,
                                 "settings": settings})

    def __repr__(self) -> str:
        return f"ImageNetBenchmark({IDENTIFIER!r})"

