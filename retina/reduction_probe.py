"""``zoo probe reduction MODEL --checkpoint DIR/model.pt --data FILE.h5`` (or ``--fit-embedded``): per cell, the units
of a hidden layer ranked by integrated gradients on a stretch of the recording's held-out stimulus, and how much of
the full model's response a reduced model keeping the top k units keeps, for several k from one attribution per
cell (:func:`retina.reduction.reduction_report`); ``reduction.json`` and ``reduction.png``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

#: windows analysed by default (3 s of stimulus at 100 Hz): integrated gradients cost ``steps`` backward passes per
#: window and cell (about 19 s for 300 windows and 32 steps on 2 busy cores, layer 1)
DEFAULT_FRAMES = 300
#: windows shown in the figure's time course
SHOWN_WINDOWS = 200


def chosen_cells(spec: Optional[str], file_cells: List[str], fitted: Sequence[int]) -> List[int]:
    """``--cells`` (``zoo fit --cells``'s SPEC, :func:`datasets.retina_h5.selected_cells`: indices from 0 into the
    file's cells ``file_cells``, or their names, comma-separated) -> indices into the model's outputs, the
    file's cells ``fitted`` (all of them, or a ``zoo fit --cells`` fit's); a cell the model was not fitted to is
    refused, naming those it was. Default: every fitted cell."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.retina_h5 import selected_cells

    fitted = list(fitted)
    if spec is None:
        return list(range(len(fitted)))
    chosen = selected_cells(spec, file_cells, where=f"--cells {spec}")
    unfitted = [file_cells[i] for i in chosen if i not in fitted]
    if unfitted:
        raise UserFacingError(f"--cells {spec}: {', '.join(unfitted)} {'is' if len(unfitted) == 1 else 'are'} not "
                              f"among the cells the model was fitted to (zoo fit --cells: "
                              f"{', '.join(f'{file_cells[i]} ({i})' for i in fitted)})")
    return [fitted.index(i) for i in chosen]


def check_model(args) -> None:
    """Before anything is loaded or fitted: MODEL has the hidden layers the attribution needs, and each ``--k`` is at
    most its ``--layer``'s units."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.registry import UnknownNameError
    from neurozoo.retina.attribution import RULES, SITES, check_ranking
    from neurozoo.retina.fit import create_model
    from neurozoo.retina.reduction import FILLS, check_kept

    for option, value, choices in (("--fill", args.fill, FILLS), ("--rule", args.rule, RULES),
                                   ("--site", args.site, SITES)):
        if value not in choices:
            raise UserFacingError(f"{option}: expected one of {', '.join(choices)}; got {value!r}")
    try:
        check_ranking(args.by)
    except ValueError as error:
        raise UserFacingError(f"--by: {error}") from None
    try:
        model = create_model(args.model, n_cells=1)
    except UnknownNameError as error:
        raise UserFacingError(str(error)) from None
    try:
        check_kept(model, args.layer, args.k)
    except TypeError:
        raise UserFacingError(f"{args.model} ({type(model).__name__}) has no hidden layers to attribute (a CNN's "
                              "conv1, layer1, layer2 before its readout): `zoo probe reduction` takes a CNN (bncnn, "
                              "bncnn2016)") from None
    except ValueError as error:
        raise UserFacingError(f"--k: {error}") from None
    for option, needed in (("--fill pruned", args.fill == "pruned"), ("--site pre", args.site == "pre")):
        if needed and not all(hasattr(model, name) for name in ("bn1", "bn2")):
            raise UserFacingError(f"{option}: {args.model} has no BatchNorm layers (bn1, bn2)")


def stimulus_stretch(recording, start: int, frames):
    """The held-out movie's frames for ``frames`` windows from window ``start`` ``(frames + 39, 50, 50)``; the
    number of windows (default: :data:`DEFAULT_FRAMES`, fewer where the movie is shorter)."""
    import torch

    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.retina_h5 import N_FRAMES

    available = recording.n_frames - N_FRAMES + 1 - start
    if available < 1:
        raise UserFacingError(f"--start {start}: {recording.path}: {recording.split}/stimulus has {recording.n_frames} "
                              f"frames, {recording.n_frames - N_FRAMES + 1} windows of {N_FRAMES}")
    if frames is None:
        frames = min(DEFAULT_FRAMES, available)
    elif frames > available:
        raise UserFacingError(f"--frames {frames}: {recording.path}: {recording.split}/stimulus has {available} "
                              f"windows of {N_FRAMES} frames from --start {start}")
    return torch.as_tensor(recording.stimulus[start:start + frames + N_FRAMES - 1]), frames


def held_out(args, path, fitted=None):
    """The test split of ``path`` (a stimulus the fit did not see), of the cells ``fitted`` (a fit of some of the
    file's cells, ``zoo fit --cells``: their indices; None: every cell), the ``--cells`` as indices into those and the
    ``--start``/``--frames`` stretch of its stimulus with the number of windows."""
    from neurozoo.datasets.retina_h5 import narrowed, read_experiment

    whole = read_experiment(path, "test")
    recording = narrowed(whole, fitted)
    cells = chosen_cells(args.cells, whole.cells, range(len(whole.cells)) if fitted is None else fitted)
    return (recording, cells, *stimulus_stretch(recording, args.start, args.frames))


def fitted_recording_path(checkpoint, fitted_to: dict):
    """``(path, sha256)`` of the recording that the ``summary.json`` beside ``checkpoint`` names
    (:func:`retina.embedded_fit.fitted_recording`'s ``fitted_to``), refused by name where there is no readable
    summary.json, the file is gone or its sha256 is not the one the fit read."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.provenance import sha256_file

    if fitted_to["rule"] != "summary.json":
        why = fitted_to["reason"].split(": taken")[0]  # no summary.json, or an unreadable one, and why
        raise UserFacingError(f"--data: which recording {checkpoint} was fitted to is read from the summary.json that "
                              f"zoo fit writes beside it, and there is none to read ({why}): give the recording "
                              "with --data (a deep-retina HDF5 file, or embedded:whitenoise / embedded:naturalscene)")
    candidates = [Path(name) for name in (fitted_to["data_absolute"], fitted_to["data"]) if name]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise UserFacingError(f"--data: {fitted_to['summary']} names the recording {candidates[0]}, which is not there "
                              "(moved or deleted?): give its new place with --data")
    digest = sha256_file(path)
    if fitted_to["data_sha256"] not in (None, digest):
        raise UserFacingError(f"--data: {path}, the recording {fitted_to['summary']} names, has changed since the fit "
                              f"(sha256 {digest[:12]}; the fit read {fitted_to['data_sha256'][:12]}): give the "
                              "recording the weights were fitted to with --data")
    print(f"{checkpoint}: analysing the held-out split of {path} (the recording {fitted_to['summary']} names)")
    return path, digest


def run_probe_reduction(args) -> int:
    from tqdm.auto import tqdm

    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.json_files import write_json
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.retina_h5 import N_FRAMES
    from neurozoo.retina.attribution import integrated_gradients
    from neurozoo.retina.cli import resolve_data
    from neurozoo.retina.embedded_fit import fitted_selection
    from neurozoo.retina.probe_cli import _load_model, _make_out, figure_path
    from neurozoo.retina.reduction import FLAT_RESPONSE_SD, VARIANCE_EXPLAINED_VERSION, reduction_report
    from neurozoo.retina.reduction_figure import MAX_FIGURE_CELLS, plot_reduction, shown_cells_note

    check_model(args)  # before a fit of minutes
    args.k = sorted(args.k)  # the figure's axis
    given = args.data is not None or args.fit_embedded
    if given:  # checked before a fit of minutes (--fit-embedded)
        path = resolve_data(args.data or f"embedded:{args.kind}")
        data_sha256 = None
        recording, cells, x, frames = held_out(args, path)
    _make_out(args.out)
    model, info = _load_model(args)
    fitted_to = info["fitted_to"]
    if not given:  # the recording the fit's summary.json names
        path, data_sha256 = fitted_recording_path(args.checkpoint, fitted_to)
    fitted = fitted_to.get("cells")  # a fit of some of its cells (zoo fit --cells): those
    if given:  # --data: a file of as many cells as the weights (those cells alone) is analysed whole, as zoo score does
        fitted = fitted_selection(fitted_to, model.n_cells, len(recording.cells))
    if not given or fitted is not None:
        recording, cells, x, frames = held_out(args, path, fitted)
    if given and fitted_to["rule"] == "summary.json":  # --data beside a summary.json that names the fit's recording
        data_sha256 = sha256_file(path)
        if fitted_to["data_sha256"] not in (None, data_sha256):  # said, not refused: another stimulus of its cells
            print(f"note: {args.checkpoint} was fitted to {fitted_to['data']} ({fitted_to['summary']}, sha256 "
                  f"{fitted_to['data_sha256'][:12]}); analysing --data {path} (sha256 {data_sha256[:12]})")
    if model.n_cells != len(recording.cells):
        where = args.checkpoint if args.checkpoint is not None else "the fitted model"
        raise UserFacingError(f"{where}: weights for {model.n_cells} cells, but {path}: test/response has "
                              f"{len(recording.cells)}: the checkpoint is not a fit to this recording (--data)")
    model = model.to(args.device).eval()
    x = x.to(args.device)
    settings = {"layer": args.layer, "k": args.k, "steps": args.steps, "fill": args.fill, "rule": args.rule,
                "site": args.site, "by": args.by, "split": "test", "start": args.start, "frames": frames,
                "variance_explained_version": VARIANCE_EXPLAINED_VERSION}
    rows, traces = [], {}
    bar = tqdm(total=len(cells) * args.steps, desc="integrated gradients", unit="step", disable=args.quiet)
    with bar:
        for cell in cells:
            bar.set_postfix_str(recording.cells[cell])
            attribution = integrated_gradients(model, x, cell, layer=args.layer, steps=args.steps, rule=args.rule,
                                               site=args.site, on_step=bar.update)
            reports = reduction_report(model, x, cell, layer=args.layer, k=args.k, steps=args.steps, fill=args.fill,
                                       rule=args.rule, site=args.site, by=args.by, attribution=attribution)
            first = reports[0]
            per_k = ("correlation", "variance_explained", "contribution_correlation", "contribution_variance_explained")
            rows.append({"cell": cell, "name": recording.cells[cell], "ranking": first["ranking"],
                         "importance": first["importance"], "completeness_gap": first["completeness_gap"],
                         "full_response_sd": first["full_response_sd"], "flat": first["flat"],
                         "k": args.k, "kept_units": [r["kept_units"] for r in reports],
                         **{key: [r[key] for r in reports] for key in per_k}})
            top = first["ranking"][:max(args.k)]
            shown = slice(0, min(SHOWN_WINDOWS, frames))
            traces[cell] = {"units": top, "start": args.start + N_FRAMES - 1,  # the first window's last frame
                            "contributions": attribution.per_unit()[shown][:, top].double().cpu().numpy(),
                            "response": (attribution.output - attribution.baseline_output)[shown].double().cpu().numpy()}
    source = args.checkpoint.name if args.checkpoint is not None else f"{args.model} fitted to embedded:{args.kind}"
    figure = plot_reduction(rows, traces, figure_path(args.out, "reduction"),
                            title=f"{args.model} ({source}), layer {args.layer}: reduced models on {path.name}")
    data = {"path": str(path), "sha256": data_sha256 or sha256_file(path), "split": "test", "start": args.start,
            "frames": frames}
    json_path = write_json(args.out / "reduction.json", {"model": args.model, "settings": settings, "data": data,
                                                         "cells": rows, "provenance": info, "figure": str(figure),
                                                         "figure_cells": [row["name"] for row in rows[:MAX_FIGURE_CELLS]]})
    print(f"{args.model}: layer {args.layer} units ranked by integrated gradients ({args.steps} steps, {args.rule}, "
          f"{args.site}) over {frames} windows of {path.name}; reduced models ({args.fill} fill) vs the full model")
    for row in rows:
        shares = " ".join(f"{unit} ({row['importance'][unit]:.2f})" for unit in row["ranking"])
        print(f"  {row['name']}: units by importance (share): {shares}")
        if row["flat"]:
            print(f"    the full model's response is flat (sd {row['full_response_sd']:.1e} spikes/s over {frames} "
                  f"windows, below {FLAT_RESPONSE_SD}): nothing for a reduced model to explain, r and VE undefined")
        for i, n in enumerate(row["k"]):
            print(f"    k={n} {str(row['kept_units'][i]):<24} r {row['correlation'][i]:6.3f}  VE "
                  f"{row['variance_explained'][i]:7.3f}   contributions r {row['contribution_correlation'][i]:6.3f}  "
                  f"VE {row['contribution_variance_explained'][i]:7.3f}")
    note = shown_cells_note(rows)
    print(f"wrote {Path(figure).resolve()}{f' ({note})' if note else ''} and {Path(json_path).resolve()}")
    return 0
