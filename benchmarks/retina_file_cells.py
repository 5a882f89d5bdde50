"""``retina_h5.heldout``'s cells for ``--checkpoint`` weights (``zoo score MODEL retina_h5.heldout --data FILE
--checkpoint DIR/model.pt``).

Weights with as many outputs as the file has cells score on all of them, as before (a file holding only the cells
fitted, say). Weights of a ``zoo fit --cells`` fit of fewer cells score on the cells their ``summary.json`` records
(``provenance.settings.cells``, read by :func:`retina.embedded_fit.fitted_recording`, the reader ``zoo probe
--checkpoint`` uses): the file's test split narrowed to those cells, as ``zoo score --cells`` scores a fit of them.
``--cells`` beside ``--checkpoint`` states the cells scored: for weights of a ``zoo fit --cells`` fit it is accepted
where it names those, refused naming both otherwise; weights of every cell of the file are scored on the cells it names
(their outputs of those cells: :func:`retina.benchmark.scored_outputs`). Weights whose output count is not the file's
and that have no ``summary.json`` naming a selection are refused when they are loaded
(:func:`retina.embedded_fit.load_checkpoint`), as before.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple


def checkpoint_file_cells(args, data, circuit_cells: int,
                          given: Optional[Sequence[int]] = None) -> Tuple[dict, int, Optional[List[int]]]:
    """``(fitted_to, n_cells, selection)`` for ``args.checkpoint``'s ``args.model`` weights scored on ``data``:
    what the weights were fitted to (:func:`retina.embedded_fit.fitted_recording`; ``circuit_cells``: the embedded
    circuit's count, for its reason line), the model's cell count to load them with, and the indices into ``data``'s
    cells they score on (None: every cell). ``given``: the indices ``args.cells`` (``--cells``) selects
    (:func:`retina.cli.selected_file_cells`), which must be those cells."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.retina_h5 import read_experiment
    from neurozoo.retina.embedded_fit import checkpoint_cells, fitted_recording, fitted_selection

    names = read_experiment(data, "train").cells
    weights = checkpoint_cells(args.model, args.checkpoint)
    # by its resolved path, as the record's rerun names it: a relative --checkpoint's summary.json, recorded in
    # settings.fitted_to, is the one zoo reproduce reads
    fitted_to = fitted_recording(Path(args.checkpoint).resolve(), weights or len(names), circuit_cells)
    selection = fitted_selection(fitted_to, weights, len(names))
    if selection is not None and selection[-1] >= len(names):
        raise UserFacingError(f"{args.checkpoint}: a zoo fit --cells fit of the cells {selection} of "
                              f"{fitted_to['data']} ({fitted_to['summary']}), but {data} holds {len(names)} cells "
                              f"(indices 0..{len(names) - 1}): not a recording of those cells")
    scored = selection if selection is not None else list(range(len(names)))
    if given is not None and selection is None and weights in (None, len(names)):
        # weights of every cell of the file: --cells scores their outputs of those cells (a cell silent through
        # train/ left out, say), the outputs run as fitted
        return fitted_to, len(names), list(given)
    if given is not None and list(given) != scored:
        if selection is not None:
            why = f"a zoo fit --cells fit of those, as {fitted_to['summary']} records"
        elif weights is not None and weights != len(names):
            why = (f"its weights hold {weights} cells, and no summary.json beside them records which of the file's "
                   f"{len(names)} they are ({fitted_to['reason']})")
        else:
            why = f"its weights hold {len(names)} cells, as many as the file"
        raise UserFacingError(f"--cells {args.cells} selects {_named(given, names)} of {data}, but --checkpoint "
                              f"{args.checkpoint} scores on {_named(scored, names)} ({why}): leave --cells out, or "
                              "give those")
    return fitted_to, len(scored), selection


def _named(indices: Sequence[int], names: Sequence[str]) -> str:
    """The cells ``indices`` by their names in the file, or "every cell" where they are all of them."""
    if list(indices) == list(range(len(names))):
        return f"every cell ({len(names)})"
    return ", ".join(names[i] for i in indices)
