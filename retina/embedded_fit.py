"""A retina model fitted to an embedded ground-truth recording, cached on disk and shared by ``zoo fit MODEL --data
embedded:KIND``, ``zoo probe --fit-embedded``, the OSR benchmark and the held-out benchmark (same folder layout as
:mod:`retina.benchmark`)."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional, Tuple

if TYPE_CHECKING:
    from torch import nn

    from neurozoo.retina.fit import FitResult

#: The zoo's budget for a fit to an embedded recording (early-stopped before it: converged fits, issue 14); `zoo run`
#: and benchmarks/retina_table.py fit with it, so they share the cached fits.
DEFAULT_FIT_EPOCHS = 40

_FITS_ROOT: ContextVar[Optional[Path]] = ContextVar("fits_root", default=None)


@contextmanager
def fits_in(folder):
    """Fits made in this block go to ``folder`` instead of the shared fit cache: ``zoo reproduce`` refits from
    scratch there, without reading or replacing the fits that ``zoo run`` reuses."""
    token = _FITS_ROOT.set(Path(folder))
    try:
        yield Path(folder)
    finally:
        _FITS_ROOT.reset(token)


def fit_dir(path: Path, name: str, kind: str, seed: int, settings: Optional[dict] = None,
            model: Optional[nn.Module] = None, root: Optional[Path] = None) -> Path:
    """``<cache>/retina/fits/<model>-<kind>-<data sha256[:12]>-seed<seed>-fit<settings hash>``: one folder per
    model, data, seed and fitting protocol (``FIT_PROTOCOL`` and the :class:`retina.fit.FitConfig` that ``settings``
    resolve to for the model, :func:`fit_settings_key`), so a changed protocol never resumes or reuses an older fit,
    and two spellings of one fit (``--lr 0.01`` and the LN model's default rate 0.01) share one. ``model``: the model
    to be fitted (its defaults resolve the settings); default: ``name`` built for the recording's cells, the global
    random generators left as they were. ``root``: the folder of fits (default: ``fits`` beside the recording; a
    :func:`fits_in` block's folder overrides both)."""
    import hashlib
    import json

    from neurozoo.retina.fit import FIT_PROTOCOL, create_model, provenance

    if model is None:
        import torch

        from neurozoo.datasets.retina_h5 import read_experiment

        with torch.random.fork_rng(devices=[]):  # naming a folder must not move the caller's random stream
            cells = (settings or {}).get("cells")
            model = create_model(name, n_cells=len(read_experiment(path, "train", cells=cells).cells))
    key = fit_settings_key(model, seed, resolved_cells(path, settings), name)
    digest = hashlib.sha256(json.dumps([FIT_PROTOCOL, key], sort_keys=True).encode()).hexdigest()[:8]
    return (_FITS_ROOT.get() or root or path.parent / "fits") / f"{name}-{kind}-{provenance(path)['data_sha256'][:12]}-seed{seed}-fit{digest}"


def fit_settings_key(model: nn.Module, seed: int, settings: Optional[dict] = None, name: Optional[str] = None) -> dict:
    """What :func:`fit_dir` hashes: the settings a fit of ``model`` with ``settings`` uses
    (:func:`retina.fit.resolved_config`), each setting equal to the model's default written None, and a ``batching``
    equal to what ``"auto"`` resolves to written ``"auto"`` (as a fit without overrides gives them, so that such a
    fit's folder is that of before settings were resolved), and each float setting as a float (``l2=0`` and ``--l2 0``
    alike); without the device and progress bar, which do not change the result.

    The key holds the resolved batching, not the one asked for: ``batching="chunks"`` and ``"auto"`` are one fit of a
    model with ``forward_movie``, and share its folder. ``"auto"`` resolves by the model alone, never by the device,
    so it names the same fit on every machine; were it to depend on the device, the resolved value would still be
    the one to key on: chunked and windowed batches are two optimisations with two results, which one folder must
    not hold as one fit (the device itself is left out because it changes the result by rounding only)."""
    import dataclasses

    from neurozoo.retina.fit import MODEL_DEFAULTS, FitConfig, checked_config, resolved_config

    config = dataclasses.replace(FitConfig(), **(settings or {}), seed=seed)
    key = dataclasses.asdict(checked_config(model, config, name))  # settings a fit refuses name no folder
    defaults = resolved_config(model, FitConfig())
    key.update({name: None for name in MODEL_DEFAULTS if key[name] == getattr(defaults, name)})
    if key["batching"] == defaults.batching:
        key["batching"] = FitConfig.batching
    floats = {f.name for f in dataclasses.fields(FitConfig) if "float" in str(f.type)}
    key.update({name: float(key[name]) for name in floats
                if isinstance(key[name], (int, float)) and not isinstance(key[name], bool)})
    for name in ("progress", "device"):
        key.pop(name)
    if key["objective"] == FitConfig.objective:  # the zoo's: the key of before the setting, so its fits keep their folders
        key.pop("objective")
    if key["filter_l2"] is None:  # likewise (the L2 on the filter's stored factors, protocol 11)
        key.pop("filter_l2")
    if key["cells"] is None:  # likewise (every cell of the file); a selection: its indices (resolved_cells)
        key.pop("cells")
    else:
        key["cells"] = [int(i) for i in key["cells"]]
    return key


def resolved_cells(path: Path, settings: Optional[dict]) -> Optional[dict]:
    """``settings`` with its ``cells`` (:attr:`retina.fit.FitConfig.cells`: indices and/or names, a text or a list)
    as the indices into ``path``'s cells that they select (:func:`datasets.retina_h5.selected_cells`, sorted), so that
    one selection given two ways (``"cell01,cell03"``, ``[2, 0]``) keys one fit; as it is without one."""
    if not settings or settings.get("cells") is None:
        return settings
    from neurozoo.datasets.retina_h5 import read_experiment

    return {**settings, "cells": read_experiment(path, "train", cells=settings["cells"]).selection}


def fitted_embedded_model(name: str, kind: str = "whitenoise", seed: int = 0, device: str = "cpu",
                          progress: bool = True, sizes: Optional[dict] = None, refit: bool = False,
                          **fit_settings) -> Tuple[nn.Module, dict]:
    """``(model, provenance)``: ``name`` fitted to the embedded recording ``kind`` (reused when already fitted
    with the same settings; ``refit=True`` starts afresh)."""
    result, info = fit_embedded(name, kind, seed=seed, device=device, progress=progress, sizes=sizes, refit=refit,
                                **fit_settings)
    return result.model.eval(), info


def fit_embedded(name: str, kind: str = "whitenoise", seed: int = 0, device: str = "cpu", progress: bool = True,
                 sizes: Optional[dict] = None, refit: bool = False, **fit_settings) -> Tuple[FitResult, dict]:
    """``(fit result, provenance)`` of ``name`` fitted to the embedded recording ``kind`` in the fit cache
    (:func:`fit_dir`): the one fit that ``zoo fit MODEL --data embedded:KIND``, ``zoo probe --fit-embedded``, the
    retina benchmarks and ``zoo run`` make and reuse for a model, data, seed and fitting protocol. The provenance
    names the folder (``fit_dir``) and how the fit was come by (``fit_origin``, :func:`fit_origin`)."""
    with held_embedded_fit(name, kind, seed=seed, device=device, progress=progress, sizes=sizes, refit=refit,
                           **fit_settings) as (result, info):
        return result, info


@contextmanager
def held_embedded_fit(name: str, kind: str = "whitenoise", seed: int = 0, device: str = "cpu", progress: bool = True,
                      sizes: Optional[dict] = None, refit: bool = False,
                      **fit_settings) -> Iterator[Tuple[FitResult, dict]]:
    """:func:`fit_embedded`'s ``(fit result, provenance)``, the fit's folder locked (:func:`fit_lock`) until the block
    ends: what the block writes there beside the fit (``zoo fit``'s summary, metrics and figure) is of this fit,
    never removed half-written nor mixed with another's by a concurrent refit (``--no-resume``) of the same folder.
    The checkpoint records the recording's stimulus class, ``kind`` (:func:`retina.fit.fit`'s ``stimulus_class``), as
    a ``zoo fit --out`` fit's records the class it was told."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina
    from neurozoo.retina.fit import checked_fit_settings

    # before the recording is made or read: a misspelt setting ended in a TypeError inside FitConfig after both
    fit_settings = checked_fit_settings(fit_settings, f"fit settings of {name} on embedded:{kind}")
    with held_fit(name, load_embedded_retina(kind, **(sizes or {})), kind, f"embedded:{kind}", seed=seed,
                  device=device, progress=progress, refit=refit, stimulus_class=kind, **fit_settings) as held:
        yield held


def fitted_file_model(name: str, path, seed: int = 0, device: str = "cpu", progress: bool = True, refit: bool = False,
                      stimulus_class: Optional[str] = None, **fit_settings) -> Tuple[nn.Module, dict]:
    """``(model, provenance)``: ``name`` fitted to the training split of a recording of one's own (a deep-retina HDF5
    file, ``retina_h5.heldout``), as :func:`fitted_embedded_model` fits an embedded one, with the same protocol. The
    fit is cached beside the embedded recordings' fits (never beside the user's file), in a folder named by the
    file's stem and the sha256 of its bytes, so an edited file is fitted afresh. ``stimulus_class``: the file's class
    (``retina_h5.heldout``: :func:`datasets.retina_stimulus_class.experiment_stimulus_class`), kept in the fit's
    checkpoint: a later score that names another is refused (:func:`held_fit`)."""
    from neurozoo.datasets.synthetic_retina import recordings_folder
    from neurozoo.retina.fit import checked_fit_settings

    path = Path(path)
    fit_settings = checked_fit_settings(fit_settings, f"fit settings of {name} on {path}")
    with held_fit(name, path, path.stem, str(path), seed=seed, device=device, progress=progress, refit=refit,
                  root=recordings_folder() / "fits", stimulus_class=stimulus_class, **fit_settings) as (result, info):
        return result.model.eval(), info


@contextmanager
def held_fit(name: str, path: Path, label: str, what: str, seed: int = 0, device: str = "cpu", progress: bool = True,
             refit: bool = False, root: Optional[Path] = None, stimulus_class: Optional[str] = None,
             **fit_settings) -> Iterator[Tuple[FitResult, dict]]:
    """The fit of ``name`` to the recording ``path`` in its cache folder (:func:`fit_dir` with ``label`` for the
    recording, under ``root``), locked for the block; ``what`` names the recording in messages. ``stimulus_class``
    (the recording's) is kept in the checkpoint as :func:`retina.fit.fit` keeps it: a cached fit that records another
    is refused, naming both and the folder to delete (a folder holds one recording's fit, and a recording has one
    class: one of the two was said wrongly)."""
    import torch

    from neurozoo.datasets.activity import tell, tell_ended
    from neurozoo.datasets.provenance import module_sha256
    from neurozoo.datasets.retina_h5 import read_experiment
    from neurozoo.retina.fit import FitInterrupted, ResumeRefused, create_model, fit, provenance

    torch.manual_seed(seed)
    # the cell count: the split's responses only (~0.03 s); the fit reads the file again, its movie once, and frees it
    # when done (handing the fit this Recording kept the 229 MB movie alive through zoo fit's evaluation: +80 MiB peak)
    fit_settings = resolved_cells(path, fit_settings)  # a selection of cells (fit setting cells): its indices
    model = create_model(name, n_cells=len(read_experiment(path, "train", cells=fit_settings.get("cells")).cells))
    out = fit_dir(path, name, label, seed, fit_settings, model=model, root=root)
    with fit_folder_locked(out, f"{name} on {what}", progress):
        refit = refit or not _readable_checkpoint(out / "checkpoint.pt")
        origin = fit_origin(out, refit)  # under the lock: a caller that waited for another's fit reads it
        if origin != "cached":  # zoo run's job bar says it (datasets.activity): a first fit took minutes unsaid
            tell(f"fitting {name} on {what}", begins=True, why="resuming its checkpoint" if origin == "resumed" else
                 "not cached yet; later runs reuse it")
        try:
            result = fit(model, path, out=out, resume=not refit, seed=seed, device=device, progress=progress,
                         stimulus_class=stimulus_class, **fit_settings)
        except ResumeRefused as refused:  # its advice (another output folder, --no-resume) is not the cache's user's
            raise ResumeRefused(refused.checkpoint, refused.changed, f"it is the fit cache's fit of {name} on "
                                f"{what}: deleting {out} (or a refit) fits it afresh") from None
        except FitInterrupted as stopped:  # the caller (zoo score, probe, reproduce) gets the way on with what was kept
            raise FitInterrupted(stopped.signum, stopped.checkpoint, stopped.epochs_done, stopped.epochs,
                                 "rerunning the same command resumes the fit from there", seconds=stopped.seconds) \
                from None
        if origin != "cached":  # the bar said its epochs until the job's end (its scoring): now what was done
            tell_ended(f"{name} fitted on {what}")
        info = provenance(path, result)
        info.update(fit_dir=str(out), fit_origin=origin, model_sha256=module_sha256(result.model))
        yield result, info


@contextmanager
def fit_folder_locked(out: Path, what: str, progress: bool = True) -> Iterator[None]:
    """The fit folder ``out`` locked (:func:`fit_lock`) for the block: one fit per folder at a time, so that a second
    process (another zoo worker, a second ``zoo fit`` into the same ``--out``) waits for the first and then reads or
    resumes its fit, instead of fitting and writing checkpoints and results beside it. ``what`` (e.g. ``ln on
    embedded:whitenoise``) begins the line a wait prints to stderr (``progress``). SIGTERM or Ctrl-C while waiting
    stops at once, nothing done: ``KeyboardInterrupt`` saying so (``zoo``'s exit 130; a scorer hands its job back).
    A fit that leaves no folder, or an empty one (refused before it began: a recording too short to validate on, a
    spike-history model on a file without spike counts), removes its lock file too: it guards nothing.

    Inside a caller's :func:`~neurozoo.datasets.termination.sigterm_deferred` (``zoo fit``'s, from before the lock to
    its results), a SIGTERM that came before the lock, or while it was being granted, stops here too, before anything
    is done (the lock file then removed as above): the wait's own deferral ended with the wait, and such a SIGTERM was
    dropped (the fit then ran to its end) or, between the wait and the fit's own deferral, killed the process without
    a word, leaving the lock file."""
    from neurozoo.datasets.cache import locked
    from neurozoo.datasets.termination import raise_if_terminated

    waiting = f"waiting for the fit another process is making in {out}"
    holding = False
    folder = Path(out).resolve()
    try:
        raise_if_terminated()
    except KeyboardInterrupt as error:
        raise KeyboardInterrupt(f"{what}: stopped ({error}) before fitting or writing anything") from None
    try:
        with locked(fit_lock(out), waiting=f"{what}: {waiting}" if progress else None, stoppable=True,
                    remove_if=lambda: not folder.is_dir() or not any(folder.iterdir())):
            raise_if_terminated()
            holding = True
            yield
    except KeyboardInterrupt as error:
        if holding:
            raise
        how = str(error) or "Ctrl-C"
        raise KeyboardInterrupt(f"{what}: stopped ({how}) while {waiting}, before fitting or writing anything") from None


def fit_lock(out: Path) -> Path:
    """The lock file (:func:`datasets.cache.locked`) of the fit in ``out`` (:func:`fit_folder_locked`), beside it;
    one per folder however it is spelt (``--out .``, ``--out ../run``, a symbolic link)."""
    out = Path(out).resolve()
    return out.parent / f"{out.name}.lock"


def fit_origin(out: Path, refit: bool = False) -> str:
    """How :func:`retina.fit.fit` will come by the fit in ``out``: ``"cached"`` (a finished fit: its checkpoint and
    ``history.json``, read, nothing trained), ``"resumed"`` (a checkpoint without ``history.json``: a fit killed
    part-way, trained on from it) or ``"fitted"`` (from scratch). Only meaningful under the fit's lock."""
    if refit or not (out / "checkpoint.pt").is_file():
        return "fitted"
    return "cached" if (out / "history.json").is_file() else "resumed"


def _readable_checkpoint(checkpoint: Path) -> bool:
    """False, with a one-line warning, for a cached fit's checkpoint that cannot be read (truncated by a full disk,
    damaged) or that records no fitting protocol (cached before checkpoints recorded it: :func:`retina.fit.fit` would
    refuse to resume it): the cache is then refitted rather than failing every later score until someone deletes it."""
    import warnings

    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.torch_files import read_torch_file

    if not checkpoint.is_file():
        return True
    try:
        saved = read_torch_file(checkpoint, "cached fit")
    except DataError as error:
        warnings.warn(f"{error}; fitting again", stacklevel=3)
        return False
    if isinstance(saved, dict) and "fit_protocol" not in saved:
        warnings.warn(f"cached fit {checkpoint}: records no fitting protocol (cached before checkpoints recorded it); "
                      "fitting again", stacklevel=3)
        return False
    return True


def checkpoint_cells(name: str, checkpoint) -> Optional[int]:
    """How many cells the ``name`` weights in ``checkpoint`` were fitted for, read from the first tensor whose size
    grows with the cells (e.g. the BN-CNN's dense layer); None where no tensor says it (load_checkpoint then names the
    mismatch). A fit to a lab's own recording has its cells, not the embedded circuit's 12."""
    from neurozoo.datasets.torch_files import model_state, read_torch_file
    from neurozoo.retina.fit import create_model

    state = model_state(read_torch_file(Path(checkpoint), "checkpoint (zoo fit's model.pt or checkpoint.pt)"),
                        f"checkpoint {checkpoint}")
    one, two = create_model(name, n_cells=1).state_dict(), create_model(name, n_cells=2).state_dict()
    for key, a in one.items():
        b, got = two[key], state.get(key)
        if a.shape == b.shape or got is None or got.dim() != a.dim():
            continue
        axis = next(i for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y)
        step = b.shape[axis] - a.shape[axis]
        n, rest = divmod(got.shape[axis] - a.shape[axis] + step, step)
        if rest == 0 and n >= 1:
            return int(n)
    return None


def fitted_selection(fitted_to: dict, weights: Optional[int], file_cells: int) -> Optional[List[int]]:
    """The cells of a file of ``file_cells`` cells that ``weights`` weights (their cell count; None: not said) of a
    ``zoo fit --cells`` fit stand for: the selection its summary.json records (``fitted_to["cells"]``, of
    :func:`fitted_recording`), unless the file holds as many cells as the weights (a file of those cells alone: all of
    its cells, as the selection's indices name the fitted file's); None: every cell. ``zoo score --checkpoint``
    (``benchmarks.retina_file_cells``) and ``zoo probe reduction --data`` take the file's cells by this one rule."""
    fitted = fitted_to.get("cells")
    return fitted if fitted is not None and weights != file_cells else None


def fitted_recording(checkpoint, n_cells: int, circuit_cells: int) -> dict:
    """What ``n_cells`` weights in ``checkpoint`` were fitted to, and so whether their cells are the embedded circuit's
    ``circuit_cells`` to compare with the ground truth cell by cell (``circuit_cells`` True/False), by which ``rule``:

    * ``"summary.json"``: ``zoo fit --out DIR`` writes ``summary.json`` beside ``model.pt`` and ``checkpoint.pt``,
      naming the recording (``data``) and its sha256. Weights are a fit to the circuit when it names an embedded
      recording (:func:`datasets.synthetic_retina.embedded_kind`) and they hold its cells; a fit to a lab's own
      recording is one whatever its cell count, 12 included.
    * ``"cell count"``, without a readable ``summary.json`` (weights saved otherwise): ``circuit_cells`` cells are
      taken for a fit to the embedded recordings, any other count for one to one's own recording. Without a
      ``summary.json`` (a fit cache folder's weights), the class their fit recorded in its checkpoint is given as
      ``stimulus_class`` and ``stimulus_class_from`` (:func:`checkpoint_stimulus_class`).

    ``reason`` says which rule gave the answer, in a line for the probe's output. A ``summary.json`` that records the
    recording's stimulus class (``zoo fit`` since 2026-12-04) gives it as ``stimulus_class`` and ``stimulus_class_from``
    (read by :func:`benchmarks.retina_file_stimulus.training_stimulus_class`), and ``stimulus_class_checked`` where it
    records it (false: the fit's checkpoint recorded no class to check it by). ``summary.json`` describes the
    weights it records the sha256 of (``weights_sha256``: ``model.pt`` and ``checkpoint.pt``, :func:`weights_sha256`):
    other weights beside it (a summary.json of another fit, or weights copied over the fit's) are refused, naming
    both files; a summary.json written before zoo fit recorded the digest is trusted with a warning
    (``weights_checked`` False)."""
    import json
    import warnings

    from neurozoo.datasets.cell_names import cell_name
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.synthetic_retina import embedded_kind
    from neurozoo.datasets.text_table import counted

    checkpoint = Path(checkpoint)
    summary = checkpoint.parent / "summary.json"
    by_count = {"rule": "cell count", "circuit_cells": n_cells == circuit_cells, "data": None}
    taken = (f"taken by its cell count for a fit to "
             f"{'the embedded recordings' if by_count['circuit_cells'] else 'your own recording'} ({n_cells} cells, "
             f"{'the' if by_count['circuit_cells'] else 'not the'} embedded circuit's {circuit_cells})")
    if not summary.is_file():
        # zoo fit --data embedded:KIND without --out writes it into the fit cache's folder, whose weights zoo probe
        # --fit-embedded and zoo score leave without one: naming --out alone sent such a user to fit again
        return {**by_count, "reason": f"no summary.json beside {checkpoint.name} (zoo fit writes one into --out, or "
                                      f"into the fit cache's folder for --data embedded:KIND): {taken}",
                **checkpoint_stimulus_class(checkpoint)}
    try:
        record = json.loads(summary.read_text())
        provenance = record.get("provenance") or {}
        data = record.get("data") or provenance.get("data_path")
        sha256 = provenance.get("data_sha256")
        if not isinstance(data, str):
            raise ValueError("it names no recording (data)")
        described = record.get("weights_sha256")
        if described is not None and not (isinstance(described, dict) and described
                                          and all(isinstance(v, str) for v in described.values())):
            raise ValueError(f"weights_sha256: expected {{file name: sha256}}, found {described!r:.80}")
        cells = fitted_cells(record)
    except (OSError, ValueError, AttributeError) as error:  # AttributeError: JSON that is not an object
        problem = error.strerror if isinstance(error, OSError) else str(error)
        return {**by_count, "reason": f"{summary} unreadable ({problem}): {taken}"}
    if described is None:  # zoo fit before it recorded the weights' digest: trusted, as then, but said
        warnings.warn(f"{summary}: records no sha256 of the weights (written by a zoo fit before it did), so "
                      f"{checkpoint.name} is taken for the weights of the fit it describes unchecked; zoo fit again "
                      "records it", stacklevel=2)
    elif sha256_file(checkpoint) not in described.values():
        listed = ", ".join(f"{name} {digest[:12]}" for name, digest in described.items())
        raise DataError(f"{checkpoint}: not the weights that {summary} describes (sha256 {sha256_file(checkpoint)[:12]};"
                        f" it records {listed}): that summary.json is another fit's, and would name the wrong "
                        "recording. Keep each fit's weights in the folder zoo fit wrote them to, or move these to a "
                        "folder without a summary.json (their cell count then decides)")
    kind = embedded_kind(data, sha256 if isinstance(sha256, str) else None)
    absolute = record.get("data_absolute")  # the path resolved when zoo fit ran (data: as it was typed)
    found = {"rule": "summary.json", "data": data, "data_sha256": sha256, "embedded": kind,
             "weights_checked": described is not None,
             "data_absolute": absolute if isinstance(absolute, str) else None, "summary": str(summary),
             # the file's cells fitted (zoo fit --cells: the indices); absent for every cell (the records of before)
             **({"cells": cells} if cells is not None else {}),
             # the recording's stimulus class as zoo fit recorded it (absent from a summary written before it did), and
             # whether it was checked against the fit's checkpoint (absent from a summary written before 2026-12-05)
             **{key: record[key] for key in ("stimulus_class", "stimulus_class_from", "stimulus_class_checked")
                if key in record}}
    if cells is not None and not (kind is not None and cells == list(range(circuit_cells))):  # a choice of cells
        chosen = ", ".join(cell_name(i) for i in cells)
        if n_cells != len(cells):
            return {**found, "circuit_cells": False,
                    "reason": f"{summary} names a fit of {len(cells)} cells of {data} ({chosen}; zoo fit --cells), but "
                              f"the weights hold {n_cells}: not that fit's weights; no ground-truth comparison"}
        of = f"embedded:{kind} ({data})" if kind is not None else data
        return {**found, "circuit_cells": False,
                "reason": f"a fit of {counted(n_cells, 'cell')} of {of}, {chosen} (zoo fit --cells; {summary}), not "
                          f"of the embedded circuit's {circuit_cells}"}
    if kind is None:
        return {**found, "circuit_cells": False,
                "reason": f"a fit to {data} ({summary}), not to an embedded recording: its {n_cells} cells are that "
                          "recording's, not the embedded circuit's"}
    if n_cells != circuit_cells:
        return {**found, "circuit_cells": False,
                "reason": f"{summary} names embedded:{kind} ({data}), but the weights hold {n_cells} cells, not its "
                          f"{circuit_cells}: not that fit's weights; no ground-truth comparison"}
    return {**found, "circuit_cells": True, "reason": f"a fit to embedded:{kind} ({data}; {summary}): its "
                                                      f"{n_cells} cells are the embedded circuit's"}


def checkpoint_stimulus_class(weights: Path) -> dict:
    """``{"stimulus_class", "stimulus_class_from"}``: the stimulus class of the recording that ``weights`` were fitted
    to, as their fit recorded it in its ``checkpoint.pt`` (:func:`retina.fit.fit`'s ``stimulus_class``: the fit
    cache's fits, :func:`held_embedded_fit`'s kind, :func:`fitted_file_model`'s file class, and ``zoo fit``'s), for
    weights without a ``summary.json`` (a fit cache folder's, made by ``zoo score`` or ``zoo run``). Taken only where
    it is theirs: ``weights`` are that ``checkpoint.pt``, or the ``model.pt`` beside it holding the weights it gives
    (:func:`retina.fit.fitted_weights`: not those of another fit copied there, nor of a refit stopped part way); ``{}``
    otherwise, and where the checkpoint records no class (``unknown``, or one from before checkpoints recorded it)."""
    import torch

    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.retina_stimulus_class import STIMULUS_CLASSES
    from neurozoo.datasets.torch_files import model_state, read_torch_file
    from neurozoo.retina.fit import fitted_weights

    weights = Path(weights)
    checkpoint = weights.parent / "checkpoint.pt"
    try:
        saved = read_torch_file(checkpoint, "cached fit") if checkpoint.is_file() else None
        if not isinstance(saved, dict) or saved.get("stimulus_class") not in STIMULUS_CLASSES:
            return {}
        if weights.resolve() != checkpoint.resolve():
            given, fitted = model_state(read_torch_file(weights), str(weights)), fitted_weights(saved)[0]
            if given.keys() != fitted.keys() or not all(
                    isinstance(given[key], torch.Tensor) and given[key].shape == fitted[key].shape
                    and torch.equal(given[key], fitted[key].to(given[key].device)) for key in given):
                return {}
    except (DataError, KeyError, TypeError):  # unreadable, or not a fit's checkpoint: nothing recorded to take
        return {}
    return {"stimulus_class": saved["stimulus_class"],
            "stimulus_class_from": f"the class its fit recorded in {checkpoint}"}


def fitted_cells(record: dict) -> Optional[List[int]]:
    """The file's cells that the fit ``summary.json`` ``record`` describes was of (``zoo fit --cells``:
    ``provenance.settings.cells``, the indices from 0 in file order), None where it fitted every cell (no
    ``cells``); a ``ValueError`` naming the field where it holds anything else."""
    cells = ((record.get("provenance") or {}).get("settings") or {}).get("cells")
    if cells is None:
        return None
    if (not isinstance(cells, list) or not cells
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in cells)
            or cells != sorted(set(cells))):
        raise ValueError(f"provenance.settings.cells: expected the fitted cells' indices from 0, ascending, found "
                         f"{cells!r:.80}")
    return cells


def refuse_other_circuits_cells(checkpoint, model: str, n_cells: int, fitted_to: dict, kind: str, compared_by: str,
                                other_remedy: str = "", ending: str = "") -> None:
    """Weights of another circuit's cells (12, a fit to embedded:whitenoise, against the object-motion circuit's 6,
    or the reverse), refused before they are loaded, naming both counts and the recording to fit on: the one refusal
    of ``zoo score`` and ``zoo probe oms``. ``n_cells``: the weights' (:func:`checkpoint_cells`); ``fitted_to``: their
    :func:`fitted_recording`, read once by the caller, which keeps it; ``kind``: the recording of the circuit whose
    cells they are compared with; ``compared_by``: what compares them (a benchmark, a probe); ``other_remedy`` and
    ``ending``: what the caller adds to the remedy, inside its parentheses and after them. A fit to a lab's own
    recording (its summary.json names no embedded one) is not refused here: its callers refuse it for what it was
    fitted to, whatever its cell count."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.synthetic_retina import OMS_KINDS, circuit_of

    circuit_cells = len(circuit_of(kind).cell_types)
    if n_cells == circuit_cells or (fitted_to["rule"] == "summary.json" and fitted_to["embedded"] is None):
        return
    recording = f"embedded:{kind}" if kind in OMS_KINDS else "embedded:whitenoise or embedded:naturalscene"
    raise UserFacingError(f"{checkpoint}: weights of {n_cells} cells, but {compared_by} compares each cell with the "
                          f"{circuit_cells} of the circuit that records {recording}: fit the model on {recording} "
                          f"(zoo fit {model} --data {recording.split(' or ')[0]}{other_remedy}){ending}")


#: the weights `zoo fit --out DIR` leaves in DIR, whose sha256 its summary.json records (:func:`weights_sha256`)
WEIGHT_FILES = ("model.pt", "checkpoint.pt")


def weights_sha256(out: Path) -> dict:
    """``{file name: sha256}`` of the weights of the fit in ``out`` (:data:`WEIGHT_FILES` that are there), for its
    ``summary.json``: :func:`fitted_recording` checks that weights read beside it are these."""
    from neurozoo.datasets.provenance import sha256_file

    return {name: sha256_file(Path(out) / name) for name in WEIGHT_FILES if (Path(out) / name).is_file()}


def load_checkpoint(model: nn.Module, checkpoint) -> nn.Module:
    """Load weights saved by :func:`retina.fit.fit` (``model.pt`` state dict or ``checkpoint.pt``, whose fitted model
    is its best epoch's, calibrated: :func:`retina.fit.fitted_weights`; a warning where that fit is unfinished)."""
    import warnings

    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.torch_files import model_state, read_torch_file, state_mismatch
    from neurozoo.retina.fit import fitted_weights

    checkpoint = Path(checkpoint)
    saved = read_torch_file(checkpoint, "checkpoint (zoo fit's model.pt or checkpoint.pt)")
    if isinstance(saved, dict) and "best_state" in saved and isinstance(saved.get("model"), dict):  # zoo fit's
        state, shortfalls = fitted_weights(saved)
        if shortfalls:
            warnings.warn(f"{checkpoint}: {'; '.join(shortfalls)}: not the model a finished zoo fit saves as "
                          "model.pt; rerunning the zoo fit command finishes it", stacklevel=2)
    else:
        state = model_state(saved, f"checkpoint {checkpoint}")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as error:  # ValueError: a model's own reason (the GLM's link)
        detail = state_mismatch(model, state) if isinstance(error, RuntimeError) else str(error).splitlines()[0]
        fitted = fitted_model_name(checkpoint)
        raise DataError(f"{checkpoint}: does not hold weights of {type(model).__name__} with "
                        f"{getattr(model, 'n_cells', '?')} cells ({detail})"
                        + (f"; {checkpoint.parent / 'summary.json'} beside it: a zoo fit of {fitted}" if fitted else "")) \
            from None
    return model.eval()


def fitted_model_name(checkpoint: Path) -> Optional[str]:
    """The model name (``zoo fit MODEL``) that the summary.json beside ``checkpoint`` records, if it is readable."""
    import json

    try:
        name = json.loads((Path(checkpoint).parent / "summary.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None
