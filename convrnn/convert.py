"""``zoo convert-weights``: the released TensorFlow checkpoints of neuroailab/convrnns as PyTorch checkpoints.

The original's get_checkpoints.sh downloads ``ckpts/<model>/model.ckpt.{index,data-00000-of-00001,meta}`` for
20 models. ``convert(model, prefix, out)`` reads the tensor bundle (``convrnn.tf_bundle``, no TensorFlow
needed), copies every variable of the model by its original name (``convrnn.weights``), and saves
``{"model": state_dict, "weights": {...}}``; ``weights["label"]`` is what ``zoo run --checkpoint`` and the
leaderboard show. The label names the files' sha256 and, for the released architecture, the accuracy the release
reports ("rgc_intermediate TF checkpoint, converted (sha256 1a2b3c4d5e6f); released: ImageNet top-1 73.00% (top-5
91.16%)"): any checkpoint of the released format converts, the released files are not available here to compare
digests with, so the label claims the release's figures as the release's, not as this file's; a model built with
overrides (another width) is labelled as not the released architecture, without them. Variables the model does
not use (optimizer slots, ``global_step``, the constant decay of non-recurrent nodes) are listed in
``weights["unused"]``. ``weights["source"]`` stays "published weights": the tag that marks a converted file.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
from pathlib import Path
from typing import Dict, Optional, Tuple

#: ImageNet validation top-1 / top-5 (%) of the released models (neuroailab/convrnns README.md).
PUBLISHED: Dict[str, Tuple[float, float]] = {
    "timedecay_shallow": (50.06, 72.97), "simplernn_shallow": (61.11, 83.15), "gru_shallow": (62.16, 84.02),
    "lstm_shallow": (63.43, 84.89), "intersectionrnn_shallow": (65.42, 86.02), "ugrnn_shallow": (60.82, 83.23),
    "rgc_shallow": (66.97, 87.02), "timedecay_intermediate": (67.52, 87.80), "simplernn_intermediate": (70.47, 89.48),
    "gru_intermediate": (69.81, 89.25), "lstm_intermediate": (69.57, 89.18),
    "intersectionrnn_intermediate": (68.98, 88.67), "ugrnn_intermediate": (69.78, 89.21),
    "ugrnn_intermediate_t30": (70.09, 89.29), "ugrnn_intermediate_t30_dthresh": (69.30, 88.97),
    "ugrnn_intermediate_t30_tmaxconf": (70.04, 89.29), "rgc_intermediate": (73.00, 91.16),
    "rgc_intermediate_dthresh": (71.81, 90.16), "rgc_intermediate_tmaxconf": (72.29, 90.52),
    "rgc_intermediate_t22_tmaxconf": (72.98, 90.80),
}
IGNORED_SUFFIXES = ("/Momentum", "global_step")


def published_label(model: str) -> str:
    """The accuracy the release reports for ``model`` (neuroailab/convrnns README.md)."""
    top1, top5 = PUBLISHED[model]
    return f"released: ImageNet top-1 {top1:.2f}% (top-5 {top5:.2f}%)"


def bundle_sha256(prefix: str) -> Dict[str, str]:
    """sha256 of each file of the tensor bundle ``prefix`` (the ``.index`` and its data shards), by file name."""
    from neurozoo.datasets.provenance import sha256_file

    files = [prefix + ".index", *sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))]
    return {Path(f).name: sha256_file(f) for f in files}


def is_conversion_label(label: str) -> bool:
    """Whether ``label`` is a converted file's (:func:`conversion_label`, or the "published weights, ..." of before)."""
    return label.startswith("published weights, ") or (" TF checkpoint" in label and ", converted (sha256 " in label)


def conversion_label(model: str, digests: Dict[str, str], overrides: dict) -> str:
    digest = hashlib.sha256("".join(f"{n}:{d}\n" for n, d in sorted(digests.items())).encode()).hexdigest()[:12]
    if overrides:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        return f"{model} TF checkpoint with {settings}, converted (sha256 {digest}); not the released architecture"
    return f"{model} TF checkpoint, converted (sha256 {digest}); {published_label(model)}"


def convert(model_name: str, prefix: str, out: str, verify: bool = False, **overrides) -> dict:
    """Convert the released checkpoint ``prefix`` of ``model_name`` into ``out``; returns the weights record.

    ``overrides`` (model overrides, e.g. a width for tests on small checkpoints) are recorded with the weights."""
    from neurozoo import convrnn
    from neurozoo.convrnn.tf_bundle import read_bundle
    from neurozoo.convrnn.training.checkpoint import save_checkpoint
    from neurozoo.convrnn.weights import load_tf_variables
    from neurozoo.datasets.errors import UserFacingError

    from neurozoo.datasets.registry import lookup

    lookup(model_name, [], "released ConvRNN", also=PUBLISHED)  # the registries' one refusal, with close names
    if model_name not in convrnn.MODELS:
        raise UserFacingError(f"{model_name!r} is released but not (yet) built here; registered ConvRNNs: "
                              f"{', '.join(convrnn.list_models())}")
    arrays = read_bundle(prefix, verify=verify)
    model = convrnn.create_model(model_name, **overrides)
    unused = load_tf_variables(model, arrays)
    top1, top5 = PUBLISHED[model_name] if not overrides else (None, None)  # another architecture: not the release's
    digests = bundle_sha256(prefix)
    record = {"source": "published weights", "label": conversion_label(model_name, digests, overrides),
              "model": model_name, "imagenet_top1": top1, "imagenet_top5": top5, "checkpoint": str(prefix),
              "sha256": digests,
              "original": "neuroailab/convrnns get_checkpoints.sh", "overrides": dict(overrides),
              "unused": [n for n in unused if not n.endswith(IGNORED_SUFFIXES)]}
    # renamed into place: a kill or a full disk mid-write leaves the earlier file whole, never a torn one
    save_checkpoint({"model": model.state_dict(), "weights": record}, out)
    return record


def published_weights(path) -> Optional[dict]:
    """The weights record of a converted checkpoint (None for any other checkpoint)."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        return None
    record = state.get("weights") if isinstance(state, dict) else None
    return record if isinstance(record, dict) and record.get("source") == "published weights" else None


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-weights", help="convert a released TensorFlow ConvRNN checkpoint to PyTorch")
    p.add_argument("model", help=f"released model name ({', '.join(sorted(PUBLISHED))})")
    p.add_argument("checkpoint", help="TensorFlow checkpoint prefix, e.g. ckpts/rgc_intermediate/model.ckpt")
    p.add_argument("--out", required=True, help="PyTorch checkpoint to write (.pt)")
    p.add_argument("--verify", action="store_true", help="check every tensor's CRC32C (slow: pure Python)")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    record = convert(args.model, args.checkpoint, args.out, verify=args.verify)
    print(f"{args.model}: {record['label']} -> {args.out}")
    if record["unused"]:
        print(f"variables in the checkpoint that the model does not use: {', '.join(record['unused'])}")
    return 0
