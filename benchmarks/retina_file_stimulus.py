"""``retina_h5.heldout``'s stimulus-class rule for ``--checkpoint`` weights, the embedded held-out benchmarks' rule
(``benchmarks.cli._cross_stimulus``) on a file of your own.

A held-out score is of the stimulus class a model was fitted to (held-out repeats of that class: McIntosh et al. 2016;
Maheswaranathan et al. 2023). The class of the file scored is read from it
(:func:`datasets.retina_stimulus_class.experiment_stimulus_class`: ``--stimulus-class``, the embedded recordings'
``kind`` attribute, or deep-retina's file name ``<experiment>/whitenoise.h5`` / ``naturalscene.h5``); that of the
weights is the class their ``summary.json`` records (``zoo fit --stimulus-class``, or what the same reading gave at
the fit), else, for a summary written before it recorded one (or recording ``unknown``), that of the recording it names
(:func:`retina.embedded_fit.fitted_recording`). Weights of the
other class are refused unless ``--cross-stimulus`` asks for that score; where either class is unknown nothing is
checked, and it is said (a note on stderr) and recorded (``unknown``), never assumed.

The rule dates from 2026-12-04, as the embedded held-out benchmarks' (7d86c80): a record scored before it
(:func:`what_dates_it`) states no stimulus class (``retina_h5.heldout``), or no ``cross_stimulus`` for
weights fitted on the other embedded stimulus (``retina_embedded.KIND-heldout``: ``settings.fitted_to.embedded``), and
``zoo reproduce`` reruns it as it was scored (weights of the other class included, the rerun marked as a
cross-stimulus score and the reproduction saying why), not under the rule it predates.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Tuple

from neurozoo.datasets.retina_stimulus_class import (CONVENTION, UNKNOWN, StimulusClass, checked_stimulus_class,
                                                     recording_stimulus_class)


def training_stimulus_class(fitted_to: dict, data, scored: StimulusClass) -> Tuple[StimulusClass, str]:
    """``(class, why)``: the stimulus class of the recording that ``fitted_to`` (the weights' :func:`fitted_recording`)
    names, and, when it is unknown, why. An embedded recording's is its kind; else the class its ``summary.json``
    records (``stimulus_class``, which ``zoo fit`` read or was told, ``--stimulus-class``; how it was known says where
    the fit's checkpoint recorded none to check it by, ``stimulus_class_checked`` false); else, a summary without one
    (``zoo fit`` before 2026-12-04) or recording ``unknown``: the file scored itself (by its resolved path) has the
    class of the file scored, ``--stimulus-class`` included; another file the class its own attribute or name gives
    (its name alone where it is no longer there). Weights without a readable ``summary.json`` have the class their fit
    recorded in its checkpoint (a fit cache folder's: :func:`retina.embedded_fit.checkpoint_stimulus_class`), else
    none."""
    summary = fitted_to.get("summary")
    if fitted_to.get("embedded"):
        return StimulusClass(fitted_to["embedded"], f"embedded:{fitted_to['embedded']} ({summary})"), ""
    if fitted_to.get("rule") != "summary.json":  # a fit cache folder's weights: the class their checkpoint records
        recorded = fitted_to.get("stimulus_class")
        return ((StimulusClass(recorded, fitted_to["stimulus_class_from"]), "") if recorded else
                (StimulusClass(UNKNOWN), fitted_to["reason"]))
    fitted = fitted_to.get("data_absolute") or fitted_to["data"]
    recorded = fitted_to.get("stimulus_class")
    if recorded is not None and recorded != UNKNOWN:
        checked_stimulus_class(recorded, where=f"{summary}: stimulus_class")  # an edited summary, named
        unchecked = ("" if fitted_to.get("stimulus_class_checked", True) else
                     ", unchecked: the fit's checkpoint recorded no class (stimulus_class_checked false)")
        return StimulusClass(recorded, f"{fitted}: {fitted_to.get('stimulus_class_from')}{unchecked}; {summary}"), ""
    if Path(fitted).expanduser().resolve() == Path(data).expanduser().resolve():
        return StimulusClass(scored.name, f"{scored.known_from}; {summary}" if scored.known else None), (
            "" if scored.known else f"a fit to the file scored, whose class is unknown ({summary})")
    found = recording_stimulus_class(fitted)
    if found.known:
        return StimulusClass(found.name, f"{fitted}: {found.known_from}; {summary}"), ""
    return found, (f"fitted to {fitted} ({summary}), which is not {CONVENTION} nor a neurozoo embedded recording; "
                   "zoo fit --stimulus-class records it")


def file_cross_stimulus(args, fitted_to: dict, scored: StimulusClass) -> Tuple[Optional[dict], StimulusClass, str]:
    """``(cross, trained, why)`` for ``--checkpoint`` weights scored on ``args.data`` (of class ``scored``): ``cross``
    is ``{"fitted_on", "scored_on"}`` (the two classes) where the weights' class (``trained``,
    :func:`training_stimulus_class`, and ``why`` it is unknown) is the other one and ``--cross-stimulus`` asks for it
    (or ``args.before_the_rule``: ``zoo reproduce`` of a record scored before the rule, :func:`what_dates_it`),
    else None. Weights of the
    other class without ``--cross-stimulus``, and ``--cross-stimulus`` with nothing to allow, are refused."""
    from neurozoo.datasets.errors import UserFacingError

    wanted = getattr(args, "cross_stimulus", False)
    trained, why = training_stimulus_class(fitted_to, args.data, scored)
    if scored.known and trained.known and trained.name != scored.name:
        if not wanted and not getattr(args, "before_the_rule", False):
            raise UserFacingError(
                f"{args.checkpoint}: fitted on {trained.name} ({trained.known_from}), but {args.data} holds "
                f"{scored.name} ({scored.known_from}): a held-out score is of the stimulus class the model was fitted "
                f"to (McIntosh et al. 2016), so these weights score on a {trained.name} recording's held-out repeats; "
                f"--cross-stimulus scores them on {args.data} all the same, the record marked as a cross-stimulus "
                "score")
        return {"fitted_on": trained.name, "scored_on": scored.name}, trained, why
    if wanted:
        if not scored.known:
            reason = (f"the stimulus class of {args.data} is unknown (it is not {CONVENTION}): nothing to compare; "
                      "--stimulus-class names it")
        elif not trained.known:
            reason = f"{args.checkpoint}: the training stimulus is unknown ({why}): nothing to compare"
        else:
            reason = (f"{args.checkpoint} was fitted on {trained.name} ({trained.known_from}), the class {args.data} "
                      f"holds ({scored.known_from})")
        raise UserFacingError(f"--cross-stimulus: nothing to allow ({reason}); leave it out")
    return None, trained, why


def say_unknown(args, scored: StimulusClass, trained: Optional[StimulusClass], why: str = "") -> None:
    """One line on stderr where a class the held-out score depends on is unknown: the file's (the score is recorded
    with ``stimulus_class: unknown``; weights of a known class go unchecked), or, the file's known, the weights'
    (``why``)."""
    if not scored.known:
        unchecked = (f"; the weights' training stimulus ({trained.name}) cannot be checked against it"
                     if trained is not None and trained.known else "")
        print(f"note: {args.data}: stimulus class unknown (not {CONVENTION}, nor a neurozoo embedded recording): "
              f"recorded as stimulus_class: unknown{unchecked}; --stimulus-class whitenoise|naturalscene names it",
              file=sys.stderr)
    elif trained is not None and not trained.known:
        print(f"note: {args.checkpoint}: the training stimulus of these weights is unknown ({why}); the held-out "
              f"score on {args.data} assumes they were fitted on {scored.name}, the class it holds "
              f"({scored.known_from}); the record says training_stimulus: unknown", file=sys.stderr)


def what_dates_it(benchmark: str, settings: Optional[dict]) -> str:
    """What in a record of ``benchmark`` with ``settings`` shows it a held-out score stored before the benchmark applied
    the rule (2026-12-04), else "". A ``retina_h5.heldout`` record states the file's class since (``stimulus_class``,
    ``unknown`` included); a ``retina_embedded.KIND-heldout`` one of weights fitted on the other embedded stimulus
    (``fitted_to.embedded``, from their ``summary.json``) is a ``--cross-stimulus`` score since, marked
    ``cross_stimulus`` (7d86c80), as it could not be before."""
    from neurozoo.benchmarks.retina import HELDOUT_KINDS
    from neurozoo.retina.benchmark import FILE_HELDOUT

    settings = settings if isinstance(settings, dict) else {}
    if benchmark == FILE_HELDOUT:
        return "" if "stimulus_class" in settings else "the record states no settings.stimulus_class"
    fitted_to = settings.get("fitted_to") if isinstance(settings.get("fitted_to"), dict) else {}
    fitted = fitted_to.get("embedded")
    kind = next((kind for kind in HELDOUT_KINDS if benchmark == f"retina_embedded.{kind}-heldout"), None)
    if kind is None or fitted is None or fitted == kind or "cross_stimulus" in settings:
        return ""
    return (f"the record names weights fitted on embedded:{fitted}, settings.fitted_to.embedded, and states no "
            "settings.cross_stimulus")
