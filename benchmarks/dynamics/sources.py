"""Activity over time for ``zoo compare``, by name.

- ``<convrnn model>[:<layer>]``: a ConvRNN's layer output at every 10 ms step on the embedded ventral stimulus
  set (the image held for the model's ``image_steps``, gray after); default layer: the last one.
- ``neural:V4`` / ``neural:IT``: the embedded ventral assemblies (19 bins, 70-260 ms), averaged per stimulus
  (``trajectories.condition_means``: the benchmarks' ``average_repetitions``).
- ``neural:zhang_desimone2011.it``: the Zhang-Desimone IT rasters (21 object x position conditions); their
  images were not published, so they share stimuli only with themselves: compare the ``/even`` and ``/odd``
  repetitions (split halves) for the reliability of the representation over time.
- ``<example>`` (``flipflop-gru``, ``integration-lstm``...): a trained example's states on a fixed task batch,
  shared by every example of the same task.
Any name may end in ``/even`` or ``/odd`` for neural data (repetition parity).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import xarray as xr

from neurozoo.benchmarks.dynamics.trajectories import condition_means, from_states, record_convrnn
from neurozoo.datasets.errors import UserFacingError

EXAMPLE_TRIALS = 48


def _split(assembly: xr.DataArray, half: Optional[str]) -> xr.DataArray:
    if half is None:
        return assembly
    if half not in ("even", "odd"):
        raise UserFacingError(f"unknown split {half!r}: expected /even or /odd")
    keep = assembly["repetition"].values % 2 == (0 if half == "even" else 1)
    return assembly.isel(presentation=np.flatnonzero(keep))


def neural(name: str, half: Optional[str] = None) -> Tuple[xr.DataArray, str]:
    from neurozoo.datasets.provenance import sha256_array

    if name in ("V4", "IT"):
        from neurozoo.datasets.embedded.ventral import load_ventral

        assembly, _ = load_ventral(name)
    elif name == "zhang_desimone2011.it":
        from neurozoo import datasets

        assembly, _ = datasets.DATASETS.create(name)
    else:
        raise UserFacingError(f"unknown neural data {name!r}: expected one of {', '.join(NEURAL)}")
    assembly = _split(assembly, half)
    label = f"neural:{name}" + (f"/{half}" if half else "")
    return condition_means(assembly, label), sha256_array(assembly)


#: the side of the embedded ventral stimulus set's images, the ConvRNN systems' input without --image-size
VENTRAL_PIXELS = 64


def ventral_images(with_objects: bool = False, max_stimuli: Optional[int] = None, image_size: Optional[int] = None):
    """(images, stimulus ids[, object names]) of the embedded ventral stimulus set; ``max_stimuli`` of them spread
    evenly over the set (so over objects and variation levels); ``image_size``: resized from their own 64 px."""
    from neurozoo.datasets.embedded.ventral import images, load_ventral

    _, stimulus_set = load_ventral("IT")
    keep = np.arange(len(stimulus_set))
    if max_stimuli:
        keep = np.unique(np.linspace(0, len(stimulus_set) - 1, max_stimuli).round().astype(int))
    stimulus_set = stimulus_set.iloc[keep].reset_index(drop=True)
    pixels = images(stimulus_set)
    if image_size and image_size != pixels.shape[-1]:
        pixels = torch.nn.functional.interpolate(pixels, size=(image_size, image_size), mode="bilinear",
                                                 antialias=True, align_corners=False)
    out = (pixels, list(stimulus_set["stimulus_id"].astype(str)))
    return out + (list(stimulus_set["object_name"].astype(str)),) if with_objects else out


def convrnn(name: str, layers: Sequence[Optional[str]], images: torch.Tensor, ids: Sequence[str], checkpoint=None,
            n_steps: Optional[int] = None, seed: int = 0, overrides: Optional[dict] = None) -> Dict[Optional[str], xr.DataArray]:
    """{layer as asked (None: the last layer): its output at every step}, all layers from one run of the model."""
    model, chosen = convrnn_model(name, layers, checkpoint, n_steps, seed, overrides)
    return record_layers(model, name, chosen, images, ids, n_steps)


def convrnn_model(name: str, layers: Sequence[Optional[str]], checkpoint=None, n_steps: Optional[int] = None,
                  seed: int = 0, overrides: Optional[dict] = None) -> Tuple[torch.nn.Module, Dict[Optional[str], str]]:
    """``(model, {layer as asked: its name})``, each layer checked before anything is recorded: one the model lacks,
    and one the image does not reach within the steps run (``n_steps``, default the model's), whose output is then
    the same for every image: it was compared as "n/a (no informative bins)" and stored, where zoo dynamics refuses
    the same case (``adapters.ConvRNNCellMap``)."""
    from neurozoo.benchmarks.named_models import resolve_model

    model = resolve_model(name, checkpoint, seed=seed, overrides=overrides)
    chosen = {layer: layer or model.layer_names[-1] for layer in layers}
    steps = n_steps or model.n_steps
    for layer in chosen.values():
        if layer not in model.layer_names:
            raise UserFacingError(f"{name}: no layer {layer!r}; layers: {', '.join(model.layer_names)}")
        arrival = model.first_output_step(layer)
        if steps <= arrival:
            raise UserFacingError(f"{name}: the image reaches layer {layer!r} at step {arrival}; its output in "
                                  f"the {steps} steps run (n_steps={steps}) is the same for every image: give more "
                                  f"than {arrival} steps (--n-steps)")
    return model, chosen


def record_layers(model, name: str, chosen: Dict[Optional[str], str], images: torch.Tensor, ids: Sequence[str],
                  n_steps: Optional[int] = None) -> Dict[Optional[str], xr.DataArray]:
    """:func:`convrnn`'s recording of a model checked by :func:`convrnn_model`."""
    recorded = record_convrnn(model, images, ids, sorted(set(chosen.values())), n_steps=n_steps)
    return {asked: recorded[layer].rename(f"{name}:{layer}") for asked, layer in chosen.items()}


def example(name: str, seed: int = 0, train_steps: Optional[int] = None) -> Tuple[xr.DataArray, str]:
    """The example's hidden states on a fixed batch of its task, and the checksum of its training data and of
    that batch."""
    from neurozoo.benchmarks.dynamics.cases import EXAMPLES, checksum
    from neurozoo.benchmarks.dynamics.tasks import TASKS

    task_name = name.split("-")[0]
    options = {} if train_steps is None else {"steps": train_steps}
    case = EXAMPLES[name](seed=seed, **options)
    inputs, _, _ = TASKS[task_name]().batch(EXAMPLE_TRIALS, torch.Generator().manual_seed(12345))
    with torch.no_grad():
        states = case.model.states(inputs)[..., : case.model.n_hidden]
    # trial ids name the task: examples of one task see the same trials, those of different tasks share none
    ids = [f"{task_name}-trial{i:03d}" for i in range(EXAMPLE_TRIALS)]
    return (from_states(states, ids, 1.0, name=name, time_unit="steps", rows="trials"),
            checksum(case.data_sha256, inputs))


NEURAL = ("V4", "IT", "zhang_desimone2011.it")


def _kind(full: str) -> str:
    from neurozoo import convrnn as convrnn_package
    from neurozoo.benchmarks.dynamics.cases import EXAMPLES
    from neurozoo.benchmarks.named_models import spec_path_hint
    from neurozoo.datasets.registry import lookup

    hint = spec_path_hint(full.rsplit(":", 1)[0] if ":" in full else full)  # a spec path, maybe with folders and :layer
    if hint:
        raise UserFacingError(f"unknown system {full!r}{hint}")
    name, _, half = full.partition("/")
    if half and half not in ("even", "odd"):
        raise UserFacingError(f"{full}: unknown split {half!r}: expected /even or /odd")
    # the registries' one refusal of an unknown name (datasets.registry.lookup): close names, every known name
    if name.startswith("neural:"):
        lookup(name[len("neural:"):], [], "neural data", also=NEURAL)
        return "neural"
    if half:
        raise UserFacingError(f"{full}: /even and /odd split neural data only")
    model, _, layer = name.partition(":")
    if lookup(model, [convrnn_package.MODELS], "system", _system_hint, also=EXAMPLES) is None:  # an example's
        if layer:
            raise UserFacingError(f"{full}: an example has no layers (its hidden states are the system); give "
                                  f"{model}")
        return "example"
    check_unrolled_in_10_ms_steps(model)
    return "convrnn"


def _system_hint(name: str) -> str:
    """What a zoo compare system may be, beside the names that :func:`_kind`'s refusal lists (ConvRNNs, examples)."""
    return "; expected a ConvRNN name[:layer], an example or neural:V4|IT|zhang_desimone2011.it[/even|/odd]"


def check_unrolled_in_10_ms_steps(name: str) -> None:
    """Refuse a registered model whose steps are not the ConvRNNs' 10 ms (``trajectories.STEP_MS``), which zoo dynamics
    and zoo compare take every model step to be: a CORnet's area steps follow Brain-Score's time mapping instead
    (CORnet-S's V4: 4 steps from 90 ms, 50 ms apart), and were labelled 0-40 ms."""
    from neurozoo import convrnn as convrnn_package

    if convrnn_package.MODELS.get(name).tags.get("family") == "cornet":
        raise UserFacingError(f"{name}: a CORnet, whose steps are not 10 ms apart (its areas' steps follow Brain-Score's "
                              f"time mapping: benchmarks.extraction.time_mapping); zoo dynamics and zoo compare take "
                              f"the ConvRNNs (10 ms steps)")


def check_systems(names: Sequence[str]) -> Dict[str, str]:
    """{name: its kind} (``"convrnn"``, ``"example"``, ``"neural"``), every name checked (:func:`_kind`): ``zoo
    compare``'s refusal of a bad name, before it opens the results store or loads anything."""
    if len(set(names)) < 2:
        raise UserFacingError("zoo compare needs at least two systems")
    return {full: _kind(full) for full in names}


def load(names: Sequence[str], checkpoint=None, seed: int = 0, train_steps: Optional[int] = None,
         n_steps: Optional[int] = None, max_stimuli: Optional[int] = None, overrides: Optional[dict] = None,
         image_size: Optional[int] = None) -> Tuple[Dict[str, xr.DataArray], Optional[str]]:
    """{name: (stimulus_id, time_bin, neuroid)} for every name, and the sha256 of the data used: the neural data,
    the ConvRNNs' images and the examples' generated training and trial data;
    ``overrides`` and ``image_size`` shape the ConvRNN systems (and are refused without one)."""
    return prepare(names, checkpoint, seed, train_steps, n_steps, max_stimuli, overrides, image_size)()


def prepare(names: Sequence[str], checkpoint=None, seed: int = 0, train_steps: Optional[int] = None,
            n_steps: Optional[int] = None, max_stimuli: Optional[int] = None, overrides: Optional[dict] = None,
            image_size: Optional[int] = None) -> Callable[[], Tuple[Dict[str, xr.DataArray], Optional[str]]]:
    """:func:`load` in two steps: every refusal of the input here (the names, the options that shape no named system,
    the ConvRNNs built and their layers checked), then a function that loads the data and trains the examples. zoo
    compare opens the results store between the two: a refusal made an empty --db file (until 2026-12-05)."""
    kinds = check_systems(names)  # every name checked before anything is loaded
    # an option that shapes no named system was ignored (--max-stimuli with examples, --train-steps with ConvRNNs)
    if (overrides or image_size) and "convrnn" not in kinds.values():
        raise UserFacingError("--width, --image-size and --set apply to ConvRNN systems only; none was named")
    for flag, value, kind in (("--checkpoint", checkpoint, "convrnn"), ("--n-steps", n_steps, "convrnn"),
                              ("--max-stimuli", max_stimuli, "convrnn"), ("--train-steps", train_steps, "example")):
        if value is not None and kind not in kinds.values():
            raise UserFacingError(f"{flag} applies to {'ConvRNN systems' if kind == 'convrnn' else 'the examples'} "
                                  "only; none was named")
    by_model = {}
    for full in (full for full, kind in kinds.items() if kind == "convrnn"):
        model_name, _, layer = full.partition(":")
        by_model.setdefault(model_name, {})[full] = layer or None
    # each model built and its layers checked before any data is loaded or any example trained
    built = {model_name: convrnn_model(model_name, list(dict.fromkeys(wanted.values())), checkpoint, n_steps, seed,
                                       overrides)
             for model_name, wanted in by_model.items()}
    from neurozoo import convrnn as convrnn_package

    for model, _ in built.values():
        convrnn_package.check_image_size(model, image_size or VENTRAL_PIXELS)
    return lambda: _load(kinds, by_model, built, seed, train_steps, n_steps, max_stimuli, image_size)


def _load(kinds, by_model, built, seed, train_steps, n_steps, max_stimuli, image_size):
    """:func:`prepare`'s second step."""
    systems, hashes = {}, []
    for full, kind in kinds.items():
        name, _, half = full.partition("/")
        if kind == "neural":
            systems[full], digest = neural(name[len("neural:"):], half or None)
            hashes.append(digest)
        elif kind == "example":
            systems[full], digest = example(name, seed, train_steps)
            hashes.append(digest)
    if by_model:
        from neurozoo.datasets.provenance import sha256_array

        images = ventral_images(max_stimuli=max_stimuli, image_size=image_size)
        hashes.append(sha256_array(images[0].numpy()))
        for model_name, wanted in by_model.items():
            outputs = record_layers(built[model_name][0], model_name, built[model_name][1], *images, n_steps=n_steps)
            systems.update({full: outputs[layer] for full, layer in wanted.items()})
    systems = {full: systems[full] for full in kinds}  # in the order asked
    data_sha = None
    if hashes:
        import hashlib

        data_sha = hashlib.sha256("".join(hashes).encode()).hexdigest()
    return systems, data_sha
