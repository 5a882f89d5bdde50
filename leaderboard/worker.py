"""Score one submission job. This is the TRUSTED side: it never imports submission code.

:func:`score_submission` loads the benchmark (stimuli, neural data, ceilings) here, gives the untrusted
side only the images (``stimuli.npy``) and the list of layers (``request.json``), runs
:mod:`leaderboard.model_runner` in the sandbox (:mod:`leaderboard.sandbox`), and reads back nothing but a
byte-capped stream of ``.npy`` arrays, one per layer. Each array is checked before it is trusted (dtype
float32, exact shape (stimuli, 1..max_features, bins), finite values) and becomes a labelled array with
the trusted side's own coordinates; the public and hidden splits are scored here and every field of both
records is built here. Anything else -- a crash, a hang, a limit, garbage, NaN -- raises
:class:`~leaderboard.zoo.ScoringError`, so the job fails with the reason and no score is stored.

The submitter sees the model process's console output only through a failure message, and only its
last lines, truncated: it was printed before any neural data was touched (the sandbox never holds any). That
output is untrusted text: the public pages never show it, only the scorer's own reason (``ScoringError.public``).
"""
from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from neurozoo.benchmarks.records import ScoreRecord
from neurozoo.datasets.cache import owned_temporary_folder
from neurozoo.leaderboard.sandbox import Limits
from neurozoo.leaderboard.zoo import ScoringError

DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_MEMORY_BYTES = 8 * 2 ** 30
CONSOLE_CHARS = 2000
CONSOLE_LINES = 20
CONSOLE_LINE_CHARS = 200


def shown_console(console: bytes) -> str:
    """What a submitter may see of the model process's output: printable text, at most 20 lines / 2000 chars."""
    # tabs as spaces: torch's load_state_dict error, a submission's commonest, indents each mismatch with one
    text = console.decode("utf-8", errors="replace").expandtabs(4)
    text = "".join(c if c.isprintable() or c == "\n" else "?" for c in text)
    lines = [line[:CONSOLE_LINE_CHARS] for line in text.strip().splitlines()][-CONSOLE_LINES:]
    return "\n".join(lines)[-CONSOLE_CHARS:]


def read_arrays(stream: bytes, count: int, n_stimuli: int, max_features: int, n_bins: int) -> List[Any]:
    """``count`` float32 arrays of shape (n_stimuli, 1..max_features, n_bins), finite, from ``.npy`` bytes.
    Headers are checked before any data is read (format 1.0 or 2.0, dimensions ints, not bools: numpy's parser
    passes ``True``, which equals 1 and crashed the reshape), and pickles are refused."""
    import numpy as np
    from numpy.lib import format as npy

    handle = io.BytesIO(stream)
    arrays = []
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    for index in range(count):
        where = f"the model process's output array {index + 1} of {count}"
        try:
            version = npy.read_magic(handle)
            if version not in readers:
                raise ValueError(f"format version {version[0]}.{version[1]}; np.save writes 1.0 or 2.0")
            shape, fortran, dtype = readers[version](handle, max_header_size=10000)
        except Exception as error:
            raise ScoringError(f"{where} is not a .npy array ({type(error).__name__}: {error})",
                               public=f"{where} is not a .npy array") from None
        if dtype != np.dtype("<f4") or fortran:
            raise ScoringError(f"{where} has dtype {dtype}{' (Fortran order)' if fortran else ''}; expected float32",
                               public=f"{where} is not a float32 array in C order")  # a dtype names its own fields
        if (len(shape) != 3 or any(type(size) is not int for size in shape) or shape[0] != n_stimuli
                or shape[2] != n_bins or not 1 <= shape[1] <= max_features):
            raise ScoringError(f"{where} has shape {shape}; expected ({n_stimuli}, 1..{max_features}, {n_bins})")
        size = int(np.prod(shape)) * 4
        data = handle.read(size)
        if len(data) != size:
            raise ScoringError(f"{where} is truncated ({len(data)} of {size} bytes)")
        array = np.frombuffer(data, dtype="<f4").reshape(shape).copy()
        if not np.isfinite(array).all():
            raise ScoringError(f"{where} holds {int((~np.isfinite(array)).sum())} NaN/infinite values")
        arrays.append(array)
    if handle.read(1):
        raise ScoringError("the model process wrote more than the requested arrays")
    return arrays


def features_array(values, benchmark, layer: str):
    """Trusted coordinates around the checked values: stimulus ids, object names and bins come from here."""
    from neurozoo.benchmarks.extraction.activations import activation_array

    return activation_array(values, benchmark.stimuli, benchmark.bins, layer)


def extraction_request(benchmark, spec: Dict[str, Any], layers: List[str]) -> Dict[str, Any]:
    extraction = {k: v for k, v in benchmark.extraction.items() if k in ("n_steps", "image_steps", "batch_size")}
    return {"layers": layers, "bins": [list(b) for b in benchmark.bins], "max_features": spec["score"]["max_features"],
            "seed": spec["score"].get("seed", 0), "extraction": extraction, "weights": spec.get("weights")}


def _extraction_options(request: Dict[str, Any]) -> Dict[str, Any]:
    """What of an extraction request changes the features: the benchmark's unroll options, ``max_features``, ``seed``."""
    return {**request["extraction"], "max_features": request["max_features"], "seed": request["seed"]}


def run_model(images, request: Dict[str, Any], folder: Path, limits: Limits, sandbox: bool = True) -> List[Any]:
    """The submission's features for ``images`` (float32 (N, 3, H, W)), one checked array per layer of ``request``
    (:func:`extraction_request`), from :mod:`leaderboard.model_runner` run in the sandbox; :class:`ScoringError`
    with the reason and the console's tail if it fails."""
    import numpy as np

    from neurozoo.leaderboard import sandbox as jail

    layers = request["layers"]
    expected_bytes = len(layers) * (len(images) * request["max_features"] * len(request["bins"]) * 4 + 4096)
    limits = dataclasses.replace(limits, result_bytes=min(limits.result_bytes, expected_bytes))
    # named with this process's host and pid: a worker killed (SIGKILL, the out-of-memory killer) while its job ran
    # left this folder (the stimuli, up to the dataset's size) in the temporary folder for good; the next job on this
    # host removes it, never a live worker's (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-job-") as job:
        np.save(job / "stimuli.npy", np.ascontiguousarray(images.numpy(), dtype=np.float32))
        (job / "request.json").write_text(json.dumps(request))
        where = ("/job", "/submission") if sandbox else (str(job), str(folder))
        # the store holding the other submissions' folders beside this one's: hidden wherever the operator put it
        # (zoo serve --submissions, zoo submit --store), inside a folder the sandbox binds too
        outcome = jail.run([sys.executable, "-m", "neurozoo.leaderboard.model_runner", *where],
                           read_only={str(job): "/job", str(folder): "/submission"} if sandbox else {},
                           limits=limits, sandbox=sandbox, hidden=[str(Path(folder).parent)])
    console = shown_console(outcome.console)
    # a traceback's last line is the error itself, shown first; an error the model runner prints is wrapped, its
    # continuation lines indented (model_runner.print_error)
    last = next((line for line in reversed(console.splitlines()) if not line.startswith(" ")), "")
    if outcome.killed:
        raise ScoringError(f"the submission's model process was killed: {outcome.killed}\n{console}".strip(),
                           public=f"the submission's model process was killed: {outcome.killed}")
    if outcome.returncode != 0:
        code = outcome.returncode
        why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        below = "" if console.strip() == last else f"\n{console}"  # a one-line error alone: shown twice
        raise ScoringError(f"the submission's model process failed ({why}){': ' + last if last else ''}{below}"
                           .strip(), public=f"the submission's model process failed ({why})")
    return read_arrays(outcome.result, len(layers), len(images), request["max_features"], len(request["bins"]))


def model_features(benchmark, spec: Dict[str, Any], layer: str, limits: Limits, sandbox: bool = True,
                   use_cache: bool = True):
    """The submission's features for ``layer`` on the benchmark's stimuli: from the activation cache (written
    and verified by this side only), else computed by the model process in the sandbox. One run extracts every
    layer the submission names, so the other region's benchmark on the same stimuli finds its layer cached.
    ``use_cache=False`` (``zoo reproduce``): computed by the model process, the cache neither read nor written."""
    from neurozoo.benchmarks.extraction.cache import ActivationCache, cache_key, stimuli_sha256

    layers = list(dict.fromkeys([layer, *spec["layers"].values()]))
    request = extraction_request(benchmark, spec, layers)
    stimuli = benchmark.stimuli
    stimuli_hash = stimuli_sha256(stimuli.ids, stimuli.images)
    keys = {name: cache_key("submission:" + spec["sha256"], stimuli_hash,
                            {k: v for k, v in request.items() if k not in ("weights", "layers")}, name)
            for name in layers}
    cache = ActivationCache() if use_cache else None
    # held from before the entry is read until every layer's is saved, as an extraction holds its own
    # (ActivationCache.in_use): zoo cache clear leaves them alone meanwhile, and never removes one just written
    with cache.in_use(keys.values()) if cache is not None else nullcontext():
        cached = cache.load(keys[layer]) if cache is not None else None
        if cached is not None:
            return cached
        from neurozoo.leaderboard.submission import changed_since_submitted, tree_format

        changed = changed_since_submitted(Path(spec["folder"]), spec["sha256"], tree_format(spec))
        if changed:
            raise ScoringError(changed)
        arrays = run_model(stimuli.images, request, Path(spec["folder"]), limits, sandbox)
        features = {name: features_array(values, benchmark, name) for name, values in zip(layers, arrays)}
        for name in layers:
            if cache is not None:
                cache.save(keys[name], features[name])
    return features[layer]


def score_submission(spec: Dict[str, Any], limits: Optional[Limits] = None, sandbox: bool = True,
                     device: str = "cpu", use_cache: bool = True) -> Tuple[ScoreRecord, ScoreRecord]:
    """(public record, hidden record) of a submission job; see the module docstring."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.neural import NeuralBenchmark, extraction_settings
    from neurozoo.leaderboard.zoo import score_splits

    started = time.perf_counter()
    benchmark = benchmarks.load(spec["benchmark"])
    if not isinstance(benchmark, NeuralBenchmark):
        raise ScoringError(f"{spec['benchmark']}: submissions are scored on image benchmarks only")
    layer = spec["layers"].get(benchmark.region)
    if not isinstance(layer, str):
        raise ScoringError(f"{spec['benchmark']}: the submission names no layer for region {benchmark.region}")
    features = model_features(benchmark, spec, layer, limits or Limits(), sandbox, use_cache)
    settings = {"layer": layer, "layer_choice": "named by the submission", "image_size":
                list(benchmark.stimuli.images.shape[-2:]), "max_features": spec["score"]["max_features"],
                "weights": "submitted" if spec.get("weights") else "none (as built by create_model)",
                "spec_family": "submission", "submission_sha256": spec["sha256"],
                "sandboxed": bool(sandbox),
                # the options the sandbox extracted with, as zoo score's and zoo run's records keep them
                "extraction": extraction_settings(_extraction_options(extraction_request(benchmark, spec, [layer])))}
    public, hidden = score_splits(benchmark, features, spec, spec["model"], settings, started, device)
    for record in (public, hidden):
        record.duration_s = time.perf_counter() - started
        record.settings["rerun"] = {"command": "zoo work", "spec": spec}  # for zoo reproduce
    return public, hidden


def score_job(job: Dict[str, Any], device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S,
              memory_bytes: int = DEFAULT_MEMORY_BYTES, sandbox: bool = True,
              limits: Optional[Limits] = None) -> Tuple[ScoreRecord, Optional[ScoreRecord]]:
    """Built-in zoo jobs run in this process (trusted code); submissions run sandboxed."""
    from neurozoo.leaderboard.zoo import score_spec

    if job["spec"]["family"] == "submission":
        limits = limits or Limits(memory_bytes=memory_bytes, wall_s=timeout_s, cpu_s=2 * timeout_s)
        return score_submission(job["spec"], limits, sandbox=sandbox, device=device)
    return score_spec(job["spec"], device=device)
