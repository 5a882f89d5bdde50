"""run.json's record of a run's parts (``segments``): each start and resume with its settings, code and data, the
checkpoint it resumed, and how it ended. A resume reads the segments so far from the run.json beside its checkpoint
(:func:`earlier_segments`), also as versions before segments, or before they kept their data or resume sources,
wrote it."""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

from neurozoo.convrnn.training.file_checksums import recorded_files_checksum


def utc_time(seconds: float) -> str:
    """``seconds`` since the epoch as run.json writes a time: ``2026-12-04T19:30:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def segments_with_resume_sources(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """``run``'s (run.json as read) segments, each with ``resumed_from`` (None for a fresh start). A version before
    segments kept theirs (``Trainer._resume_source``) recorded the latest resume only, at the top level: its last
    segment gets that path, the others their ``--resume`` path (``auto``: OUT/last.pth, or a fresh start at step 0),
    each with its start step; their position and time are unknown."""
    segments = [dict(segment) if isinstance(segment, dict) else segment for segment in run["segments"]]
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict) or "resumed_from" in segment:
            continue
        config = segment.get("config") or {}
        resume, step = config.get("resume"), segment.get("start_step")
        if index == len(segments) - 1:
            resume = run.get("resumed_from")
        elif resume == "auto":
            resume = str(Path(config.get("out", "")) / "last.pth") if step else None
        segment["resumed_from"] = {"checkpoint": resume, "step": step} if resume else None
    return segments


#: what each segment of run.json records of the data it trained on (Trainer._write_run_info)
SEGMENT_DATA = ("data_absolute", "files_checksum", "train_files_sha256", "val_files_sha256")


def segments_with_data(segments: List[Any], run: Dict[str, Any]) -> List[Any]:
    """``segments`` (of ``run``, run.json as read), the last one given the data checksums of ``run``'s top level
    where ``run`` was written by a version whose segments kept no data: the top level was rewritten by each part's
    start, so it held the last part's. A ``train_files_sha256`` without ``files_checksum`` covered the names and labels only
    (``names``, :data:`FILES_CHECKSUMS`). The earlier parts' data are unknown."""
    last = segments[-1] if segments else None
    if not isinstance(last, dict) or "files_checksum" in last or "train_files_sha256" not in run:
        return segments
    data = {key: run.get(key) for key in SEGMENT_DATA}
    data["files_checksum"] = recorded_files_checksum(run)
    segments[-1] = {**last, **data}
    return segments


def earlier_segments(resume, out: Path) -> List[Dict[str, Any]]:
    """The run's segments so far, from the run.json beside the resumed checkpoint (one made of its top level when
    it has none: a version before segments, start step unknown); none for a fresh run or where no readable
    run.json is found. All of them, with their outcomes: segments from the checkpoint's step on (a resume of
    best.pth, an earlier resume that diverged again or found nothing left to train) trained nothing the
    checkpoint holds, but were dropped with their divergences; the next segment's ``start_step`` says where the
    weights went on from. An unreadable run.json (cut short by a full disk, edited by hand) is warned of, and,
    where it is this run's own, kept as ``run.json.unreadable``: the resume overwrote it without a word, and with
    it the record of every earlier segment (``out``: this run's folder)."""
    if resume is None:
        return []
    path = Path(resume).parent / "run.json"
    try:
        before = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        _unreadable_run_json(path, out, f"{type(error).__name__}: {error}")
        return []
    if not isinstance(before, dict):
        _unreadable_run_json(path, out, f"a JSON {type(before).__name__}, not an object")
        return []
    if isinstance(before.get("segments"), list):
        return segments_with_data(segments_with_resume_sources(before), before)
    keys = ("config", "code_version", "git_commit", "environment", "device", "world_size")
    latest = before.get("resumed_from")
    return segments_with_data([{"start_step": None, "resumed_from": {"checkpoint": latest} if latest else None,
                                **{key: before.get(key) for key in keys}}], before)


def _unreadable_run_json(path: Path, out: Path, why: str) -> None:
    kept = ""
    if path.parent.resolve() == out.resolve():  # the run.json this resume writes would replace it
        copy = path.with_name("run.json.unreadable")
        os.replace(path, copy)
        kept = f"; it is kept as {copy}"
    warnings.warn(f"--resume: {path} is unreadable ({why}): its record of the run's earlier segments (their "
                  f"settings, code, data and how each ended) is lost, and run.json records the run from this "
                  f"resume on{kept}")
