"""``zoo submit --check``: a submission checked where it was written, before it is uploaded.

The server's intake (:func:`submission.validate`: files, metadata, benchmarks, layers, weights' checksum,
requirements.txt against this environment; a built-in model's name), then a dry run: the model process of a
submission job (:func:`worker.run_model`, in the sandbox) on the first two images of each benchmark's stimuli, its
features checked as a job's are. Nothing is stored or queued. Where a leaderboard database is at hand (``--db``, or the
default one where it exists), the files are compared with its submissions as ``zoo submit`` compares them: the same
files under the same name are refused there, and so here; whether the name belongs to another user only the server's
database knows.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

from neurozoo.leaderboard.sandbox import Limits

DRY_RUN_IMAGES = 2


def check(source: Path, sandbox: Optional[bool], limits: Limits, say: Callable[[str], None] = print,
          db=None) -> None:
    """Raises :class:`~submission.SubmissionError` or :class:`~zoo.ScoringError` at the first problem; ``say``
    gets the report line by line. ``sandbox``: True sandboxed, False without isolation, None no dry run. ``db``: a
    :class:`~db.LeaderboardDB` whose submissions the files are compared with, as ``zoo submit`` compares them
    (:meth:`~db.LeaderboardDB.refuse_identical`: :class:`~submission.AlreadySubmitted`); None, none."""
    from neurozoo.datasets.cache import owned_temporary_folder
    from neurozoo.datasets.text_table import counted
    from neurozoo.leaderboard.submission import (LEGACY_TREE_FORMAT, REQUIREMENTS, TREE_FORMAT, check_not_builtin,
                                                 submission_specs, tree_sha256s, unpack, validate)

    # named with this process's host and pid: a check killed (SIGKILL) left the unpacked submission for good; the next
    # one on this host removes it (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-check-") as scratch:
        root = unpack(Path(source), scratch / "unpacked")
        meta, requirements = validate(root, Path(source))
        check_not_builtin(meta["name"])
        say(f"intake: ok: {meta['name']}, {counted(len(meta['benchmarks']), 'benchmark')}: {', '.join(meta['benchmarks'])}; "
            f"layers {', '.join(f'{region} {layer}' for region, layer in meta['layers'].items())}"
            f"{'; weights ' + meta['weights']['file'] + ' (sha256 matches)' if meta.get('weights') else ''}")
        if requirements is not None:
            say(f"{REQUIREMENTS}: ok: {'; '.join(requirements) or 'no requirements'}")
        digests = tree_sha256s(root)
        if db is not None:
            db.refuse_identical(meta["name"], digests[TREE_FORMAT], digests[LEGACY_TREE_FORMAT])
            say(f"database: ok: no submission of these files as {meta['name']} in {db.shown_url}")
        if sandbox is None:
            say("dry run: skipped: no sandbox can be made here (see above); pass --unsafe-no-sandbox to run your "
                "model without isolation")
            return
        prepared = {"meta": meta, "folder": str(root), "sha256": digests[TREE_FORMAT], "sha256_format": TREE_FORMAT}
        dry_run(submission_specs(prepared), sandbox, limits, say)


def dry_run(jobs, sandbox: bool, limits: Limits, say: Callable[[str], None]) -> None:
    """The model process of each job on the first images of its benchmark (one run for benchmarks on the same
    images and bins), its arrays checked by :func:`worker.read_arrays` and :func:`zoo.check_features`."""
    from neurozoo import benchmarks
    from neurozoo.leaderboard.worker import extraction_request, run_model
    from neurozoo.leaderboard.zoo import check_features

    done = {}
    for job in jobs:
        spec = job["spec"]
        benchmark = benchmarks.load(spec["benchmark"])
        layers = list(spec["layers"].values())
        request = extraction_request(benchmark, spec, layers)
        images = benchmark.stimuli.images[:DRY_RUN_IMAGES]
        key = hashlib.sha256(json.dumps(request).encode() + images.numpy().tobytes()).hexdigest()
        if key in done:
            say(f"dry run: {spec['benchmark']}: the same images and bins as {done[key]}")
            continue
        arrays = run_model(images, request, Path(spec["folder"]), limits, sandbox)
        for layer, values in zip(layers, arrays):
            check_features(values, spec["model"], layer, spec["benchmark"])
        shapes = ", ".join(f"{layer} {tuple(values.shape)}" for layer, values in zip(layers, arrays))
        say(f"dry run{'' if sandbox else ' (NOT sandboxed)'}: {spec['benchmark']}: ok on {len(images)} images "
            f"{tuple(images.shape[1:])} with values from {float(images.min()):.2f} to {float(images.max()):.2f}: "
            f"{shapes} (images, features, time bins)")
        done[key] = spec["benchmark"]
