"""Submissions: a folder or archive (.zip, .tar.gz, .tgz, .tar) holding

``metadata.yaml``
    name, authors (list), description, licence, benchmarks (list of registered names), layers (region ->
    layer name, e.g. ``{V4: layer3, IT: layer4}``), and ``weights: {file: weights.pt, sha256: <hex>}`` when
    weights are included.
``model.py``
    ``create_model(weights)`` (``weights`` is the weights file's path or None) returning ``model`` or
    ``(model, time_mapping)``: ``time_mapping`` maps a layer to ``[start_ms, width_ms, steps]`` (the step
    its k-th forward call stands for); without it, every time bin gets the same (static) features.
``weights.pt`` (optional)

:func:`validate` checks everything that can be checked without running the code (schema, names, sizes,
checksums, archive member paths) and raises :class:`SubmissionError` naming the file, field and what was
expected. The model code itself only ever runs in an isolated worker (:mod:`leaderboard.worker`), which
first does a smoke forward pass.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from neurozoo.datasets.errors import UserFacingError
from neurozoo.datasets.provenance import sha256_file

MAX_TOTAL_BYTES = 512 * 2 ** 20
MAX_FILES = 200
REQUIRED = {"name": str, "authors": list, "description": str, "licence": str, "benchmarks": list, "layers": dict}
REGIONS = ("V4", "IT")


class SubmissionError(UserFacingError):
    pass


def _safe_members(names: List[str], archive: Path) -> None:
    for name in names:
        path = Path(name)
        if path.is_absolute() or ".." in path.parts:
            raise SubmissionError(f"{archive.name}: member {name!r} points outside the archive; use relative paths")


def unpack(source: Path, target: Path) -> Path:
    """Copy a folder, or safely extract an archive, into ``target``; returns the submission root inside it."""
    source = Path(source)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            _safe_members(archive.namelist(), source)
            if sum(i.file_size for i in archive.infolist()) > MAX_TOTAL_BYTES:
                raise SubmissionError(f"{source.name}: unpacked size exceeds {MAX_TOTAL_BYTES // 2 ** 20} MiB")
            archive.extractall(target)
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            members = archive.getmembers()
            _safe_members([m.name for m in members], source)
            bad = [m.name for m in members if not (m.isfile() or m.isdir())]
            if bad:
                raise SubmissionError(f"{source.name}: only plain files and folders are allowed; found {bad[:3]}")
            if sum(m.size for m in members) > MAX_TOTAL_BYTES:
                raise SubmissionError(f"{source.name}: unpacked size exceeds {MAX_TOTAL_BYTES // 2 ** 20} MiB")
            archive.extractall(target, filter="data")
    else:
        raise SubmissionError(f"{source}: not a folder, .zip or .tar(.gz) archive")
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if not (target / "metadata.yaml").exists() and len(entries) == 1 and entries[0].is_dir():
        return entries[0]  # an archive of one top-level folder
    return target


def tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def validate(root: Path) -> Dict[str, Any]:
    """Check a submission folder; returns the parsed metadata (raises SubmissionError on the first problem)."""
    import yaml

    from neurozoo import benchmarks

    root = Path(root)
    files = [p for p in root.rglob("*") if p.is_file()]
    if any(p.is_symlink() for p in root.rglob("*")):
        raise SubmissionError("submission: symbolic links are not allowed")
    if len(files) > MAX_FILES:
        raise SubmissionError(f"submission: {len(files)} files; at most {MAX_FILES} are allowed")
    total = sum(p.stat().st_size for p in files)
    if total > MAX_TOTAL_BYTES:
        raise SubmissionError(f"submission: {total} bytes; at most {MAX_TOTAL_BYTES // 2 ** 20} MiB are allowed")
    meta_path = root / "metadata.yaml"
    if not meta_path.is_file():
        raise SubmissionError("submission: metadata.yaml is missing (fields: " + ", ".join(REQUIRED) + ")")
    try:
        meta = yaml.safe_load(meta_path.read_text())
    except yaml.YAMLError as error:
        raise SubmissionError(f"metadata.yaml: not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(meta, dict):
        raise SubmissionError("metadata.yaml: expected a mapping of fields at the top level")
    for field, kind in REQUIRED.items():
        if field not in meta:
            raise SubmissionError(f"metadata.yaml: field {field!r} is missing (expected {kind.__name__})")
        if not isinstance(meta[field], kind) or (kind in (str, list, dict) and not meta[field]):
            raise SubmissionError(f"metadata.yaml: field {field!r} must be a non-empty {kind.__name__}, "
                                  f"got {meta[field]!r}")
    if not all(isinstance(a, str) and a.strip() for a in meta["authors"]):
        raise SubmissionError("metadata.yaml: field 'authors' must be a list of names (strings)")
    if not all(c.isalnum() or c in "-_." for c in meta["name"]) or len(meta["name"]) > 100:
        raise SubmissionError(f"metadata.yaml: field 'name' {meta['name']!r} may use letters, digits, '-', '_', '.' "
                              "(at most 100 characters)")
    for name in meta["benchmarks"]:
        if name not in benchmarks.BENCHMARKS:
            raise SubmissionError(f"metadata.yaml: benchmark {name!r} is not registered "
                                  f"(known: {', '.join(benchmarks.list_benchmarks())})")
        from neurozoo.leaderboard.aggregate import scores_models

        if not scores_models(benchmarks.BENCHMARKS.get(name)):
            raise SubmissionError(f"metadata.yaml: benchmark {name!r} is data-only (no stimulus images)")
    for region, layer in meta["layers"].items():
        if not isinstance(layer, str) or not layer:
            raise SubmissionError(f"metadata.yaml: layers.{region} must be a layer name (string), got {layer!r}")
    for name in meta["benchmarks"]:
        from neurozoo.leaderboard.aggregate import family_of

        tags = benchmarks.BENCHMARKS.get(name).tags
        region = tags.get("region") if family_of(tags) == "cortex" else None  # a retina model's outputs are its cells
        if region and region not in meta["layers"]:
            raise SubmissionError(f"metadata.yaml: benchmark {name!r} needs layers.{region} (the layer to score)")
    if not (root / "model.py").is_file():
        raise SubmissionError("submission: model.py is missing (it must define create_model(weights))")
    source = (root / "model.py").read_text(errors="replace")
    if "def create_model" not in source:
        raise SubmissionError("model.py: no `def create_model(weights)` found")
    weights = meta.get("weights")
    if weights is not None:
        if not isinstance(weights, dict) or not isinstance(weights.get("file"), str) \
                or not isinstance(weights.get("sha256"), str):
            raise SubmissionError("metadata.yaml: field 'weights' must be {file: <name>, sha256: <64 hex digits>}")
        path = root / weights["file"]
        if not path.is_file() or Path(weights["file"]).is_absolute() or ".." in Path(weights["file"]).parts:
            raise SubmissionError(f"metadata.yaml: weights.file {weights['file']!r} is not a file in the submission")
        actual = sha256_file(path)
        if actual != weights["sha256"].lower():
            raise SubmissionError(f"{weights['file']}: sha256 is {actual}, but metadata.yaml weights.sha256 says "
                                  f"{weights['sha256']}")
    return meta


def prepare(source: Path, store: Path) -> Dict[str, Any]:
    """Unpack and validate ``source``; keep it under ``store/<sha256>``; returns {meta, folder, sha256}."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store) as scratch:
        root = unpack(Path(source), Path(scratch) / "unpacked")
        meta = validate(root)
        digest = tree_sha256(root)
        folder = store / digest[:32]
        if not folder.exists():
            shutil.copytree(root, folder)
    return {"meta": meta, "folder": str(folder), "sha256": digest}


def submission_specs(prepared: Dict[str, Any], max_features: int = 200) -> List[Dict[str, Any]]:
    from neurozoo.leaderboard.zoo import split_spec

    meta = prepared["meta"]
    return [{"model": meta["name"], "benchmark": name,
             "spec": {"family": "submission", "model": meta["name"], "benchmark": name, "folder": prepared["folder"],
                      "sha256": prepared["sha256"], "layers": meta["layers"],
                      "weights": (meta.get("weights") or {}).get("file"), "overrides": {},
                      "score": {"max_features": max_features, "seed": 0},
                      "split": split_spec()}}
            for name in meta["benchmarks"]]


def submit(db, source: Path, store: Path, user: Optional[str] = None) -> int:
    """Validate ``source`` and queue one job per benchmark; returns the submission id."""
    prepared = prepare(source, store)
    return db.add_submission(prepared["meta"]["name"], prepared["folder"], prepared["sha256"], prepared["meta"],
                             user, submission_specs(prepared))
