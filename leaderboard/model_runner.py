"""The untrusted side of a submission job; runs INSIDE the sandbox (see :mod:`leaderboard.sandbox`).

    python -m neurozoo.leaderboard.model_runner JOB_FOLDER SUBMISSION_FOLDER

Reads ``JOB_FOLDER/request.json`` (layers, time bins, reduction settings) and ``JOB_FOLDER/stimuli.npy``
(the images, float32 (N, 3, H, W); no stimulus ids, no neural data), imports the submission's ``model.py``,
builds the model, runs a smoke forward pass on two images, extracts the requested layers with
:func:`benchmarks.extraction.extract` (no cache) and writes one ``.npy`` array per layer, in request order,
to the pipe whose file descriptor is ``$NEUROZOO_RESULT_FD``. That stream is all the trusted side reads.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path


def import_submission(folder: Path):
    """Run the submission's ``model.py``. Only torch and the torchvision shim are imported before it: torchvision's
    C extension cannot load on a CPU-only torch, and ``import torchvision`` in a submission then died with
    "operator torchvision::nms does not exist" (:mod:`datasets.torchvision_compat`)."""
    import importlib.util

    import neurozoo.datasets.torchvision_compat  # noqa: F401  (before the submission imports torchvision or timm)

    sys.path.insert(0, str(folder))
    module_spec = importlib.util.spec_from_file_location("submission_model", folder / "model.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def build_model(module, folder: Path, weights):
    import torch

    from neurozoo.benchmarks.extraction.time_mapping import StepTable

    built = module.create_model(str(folder / weights) if weights else None)
    model, mapping = (built if isinstance(built, tuple) else (built, None))
    if not isinstance(model, torch.nn.Module):
        raise SystemExit(f"model.py: create_model returned {type(model).__name__}, expected a torch.nn.Module")
    timing = None
    if mapping is not None:
        try:
            timing = {}
            for layer, entry in dict(mapping).items():
                entry = list(entry)
                if len(entry) not in (3, 4):
                    raise ValueError(f"{layer!r} has {len(entry)} values")
                # steps as given (not int()'d: 2.5 steps was read as 2); StepTable refuses a fraction
                timing[layer] = StepTable(float(entry[0]), float(entry[1]), entry[2], *map(str, entry[3:]))
        except (TypeError, ValueError) as error:
            raise SystemExit(f"model.py: the time mapping must map layer -> [start_ms, width_ms, steps] or [start_ms, "
                             f"width_ms, steps, rule] with rule 'midpoint' or 'nearest_start' ({error})")
    return model.eval(), timing


def smoke_test(model, images) -> None:
    import torch

    with torch.inference_mode():
        output = model(images)
    tensors = [output] if torch.is_tensor(output) else [v for v in getattr(output, "__dict__", {}).values()
                                                        if torch.is_tensor(v)]
    for tensor in tensors:
        if not torch.isfinite(tensor).all():
            raise SystemExit("smoke test: the model's output on two benchmark images contains NaN or infinity")


def print_error(message: str) -> None:
    """``message`` in lines the submitter is shown whole (at most ``worker.CONSOLE_LINE_CHARS`` each), continuation
    lines indented: the failure's summary is the console's last line that is not indented."""
    import textwrap

    from neurozoo.leaderboard.worker import CONSOLE_LINE_CHARS

    print("\n".join(textwrap.wrap(f"error: {message}", CONSOLE_LINE_CHARS, subsequent_indent="  ")), file=sys.stderr)


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    job, submission = Path(argv[0]), Path(argv[1])
    out = os.fdopen(int(os.environ["NEUROZOO_RESULT_FD"]), "wb")
    sys.stdout.reconfigure(line_buffering=True)  # the model's prints stay before its traceback on the console
    request = json.loads((job / "request.json").read_text())
    module = import_submission(submission)

    import numpy as np
    import torch

    from neurozoo.benchmarks.extraction import Stimuli, extract

    from neurozoo.datasets.errors import UserFacingError

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    images = torch.from_numpy(np.load(job / "stimuli.npy", allow_pickle=False))
    model, timing = build_model(module, submission, request.get("weights"))
    smoke_test(model, images[:2])
    stimuli = Stimuli([str(i) for i in range(len(images))], images)
    try:
        features = extract(model, stimuli, request["layers"], bins=[tuple(b) for b in request["bins"]],
                           max_features=request["max_features"], seed=request["seed"], cache=False, progress=False,
                           **request.get("extraction", {}), **({"timing": timing} if timing is not None else {}))
    except UserFacingError as error:  # the submission's layers or time mapping: the message, not our traceback
        print_error(str(error))
        return 1
    for layer in request["layers"]:
        buffer = io.BytesIO()  # np.save cannot write to a pipe directly
        np.save(buffer, np.ascontiguousarray(features[layer].values, dtype=np.float32), allow_pickle=False)
        out.write(buffer.getvalue())
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
