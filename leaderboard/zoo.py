"""The built-in zoo as job specs, and the function that scores one spec.

A *spec* is a JSON-able dict holding everything that determines a score (model family and name, overrides,
checkpoint checksum, benchmark, extraction settings, split seed); its sha256 keys the job, so a result is
reused exactly when nothing that could change it has changed.

CPU-friendly default: ConvRNNs are built with ``width_multiplier=0.125`` (1/8 of the channels; for the
timm-backed ``rgc_resnet18`` 1/8 of its four stages' channels) and scored on the embedded 64x64 stimuli
with 200 random-projection features per layer. Without ``--checkpoint`` they are **untrained, random
weights** -- a legitimate baseline that says how much of a score the architecture alone earns.

Retina models are fitted by the retina benchmarks on the embedded recordings with at most ``fit_epochs``
(default 40, the published budget) epochs of :class:`retina.fit.FitConfig`, early-stopped on validation
correlation (converged fits; cached under model, data sha256, fitting protocol and seed, so a re-run fits
nothing); the budget and the fitting protocol are part of the job's spec, so changing either queues new jobs. Models registered with
``default_zoo=False`` (``bncnn2016``: twice the BN-CNN's cost per epoch, and slow to fit without
BatchNorm) are scored only when named (``--models``). Converged fits measured: docs/retina.md.

Layer choice is fixed, not searched: the last layer the benchmarks commit the model to for the region
(``neural.committed_layers``: a CORnet's area of that name; a ConvRNN's released map, V4 -> conv6, IT -> conv10),
otherwise the last layer for IT and the one before it for V4 (:func:`region_layer`).

Hidden split: every image benchmark splits its stimuli, stratified by object, into a *public* half and a
*hidden* half. Which stimulus is in which half comes from the host's secret (:func:`split_seed`: an HMAC of
the benchmark's name keyed by ``$NEUROZOO_HOME/secret.key``), not from a seed in the code, so a submitter
cannot compute the hidden half. Both are scored with the same features; the leaderboard shows the
hidden-half score; a submitter gets back only the public-half score, so nobody can tune on the numbers
that rank them. A spec records only the secret's fingerprint (:func:`split_key_id`), which changes the job
key when the secret changes.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from neurozoo.benchmarks.records import ScoreRecord
from neurozoo.retina.embedded_fit import DEFAULT_FIT_EPOCHS

DEFAULT_WIDTH = 0.125
DEFAULT_MAX_FEATURES = 200
HIDDEN_FRACTION = 0.5
UNTRAINED = "untrained, random weights"


class ScoringError(RuntimeError):
    """A job that cannot produce a valid score (NaN, wrong shapes, ...): the job fails with this message.

    ``public``: what the public pages may show of it, where the message holds text the scorer does not vouch for (a
    submission's console output, a field of its output's header); None: the message is the scorer's own words and
    numbers (the first line is shown). The whole message goes to the submitter and the operator only."""

    def __init__(self, message: str, public: Optional[str] = None):
        super().__init__(message)
        self.public = public


def default_benchmarks() -> List[str]:
    """Registered benchmarks whose data are embedded (no download, no shared recordings needed; none on the user's
    own data, ``retina_h5.heldout``)."""
    from neurozoo import benchmarks
    from neurozoo.leaderboard.aggregate import SYNTHETIC, data_kind

    return [e.name for e in benchmarks.BENCHMARKS.entries() if data_kind(e) == SYNTHETIC and not e.tags.get("own_data")]


def benchmark_family(name: str) -> str:
    from neurozoo import benchmarks

    from neurozoo.leaderboard.aggregate import family_of

    return family_of(benchmarks.BENCHMARKS.get(name).tags)


def model_families(names: Optional[Sequence[str]] = None) -> List[Tuple[str, str]]:
    """(family, name) of the registered models, or of ``names`` (each looked up in both registries)."""
    from neurozoo import convrnn
    from neurozoo import retina

    try:
        import neurozoo.retina.models  # noqa: F401  (registers the built-in retina models)
    except ImportError:
        pass
    registries = {"convrnn": convrnn.MODELS, "retina": retina.MODELS}
    if names is None:  # the default zoo: every model not tagged ``default_zoo=False``
        known = [("convrnn", n) for n in convrnn.list_models()] + [("retina", n) for n in retina.list_models()]
        return [(f, n) for f, n in known if registries[f].get(n).tags.get("default_zoo", True)]
    from neurozoo.benchmarks.named_models import spec_path_hint
    from neurozoo.datasets.registry import lookup

    family = {id(registry): name for name, registry in registries.items()}
    # the registries' one refusal (zoo run --benchmarks's too), over both: close names, a spec path's hint
    return [(family[id(lookup(name, list(registries.values()), "model", spec_path_hint))], name) for name in names]


def zoo_specs(models: Optional[Sequence[str]] = None, benchmark_names: Optional[Sequence[str]] = None,
              width_multiplier: float = DEFAULT_WIDTH, max_features: int = DEFAULT_MAX_FEATURES,
              checkpoints: Optional[Dict[str, str]] = None,
              fit_epochs: int = DEFAULT_FIT_EPOCHS, layer_notes: Optional[List[str]] = None
              ) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Job specs for every (model, benchmark) pair that fits, and a note for each pair skipped. ``layer_notes``, if
    given, gets a line for each model whose layers ``zoo run`` picks itself (:func:`chosen_layers_note`)."""
    from neurozoo import benchmarks

    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.errors import UserFacingError

    names = list(benchmark_names) if benchmark_names else default_benchmarks()
    for name in names:  # the registry's one refusal, as zoo score's: a close name, a data set's or a file's hint
        benchmarks.BENCHMARKS.get(name)
    checkpoints = checkpoints or {}
    families = model_families(models)
    for model, path in checkpoints.items():  # one the run would not read must not pass as scored
        family = dict((name, f) for f, name in families).get(model)
        if family is None:
            raise UserFacingError(f"--checkpoint {model}={path}: no model {model} in this run (its models: "
                                  f"{', '.join(name for _, name in families)})")
        if family == "retina":
            raise UserFacingError(f"--checkpoint {model}={path}: {model} is a retina model, which its benchmarks fit "
                                  "on the embedded recordings themselves; a checkpoint applies to ConvRNNs (a fitted "
                                  "retina model: zoo probe --checkpoint)")
    if models is not None:  # a named model that no named benchmark scores got no job, and the run said nothing of it
        bench_families = {benchmark_family(bench) == "retina" for bench in names}
        for family, model in families:
            if (family == "retina") not in bench_families:
                kind, article = ("retina", "a retina") if family == "retina" else ("image", "an image")
                raise UserFacingError(f"--models {model}: {article} model, and none of the benchmarks "
                                      f"({', '.join(names)}) scores {kind} models: it would not be scored; name "
                                      f"{article} benchmark in --benchmarks (zoo score --list) or leave the model out")
    specs, skipped, built, weights_of, regions = [], [], {}, {}, {}
    for family, model in families:
        checkpoint = checkpoints.get(model)
        for bench in names:
            bench_family = benchmark_family(bench)
            if (family == "retina") != (bench_family == "retina"):
                continue
            from neurozoo.leaderboard.aggregate import benchmark_region, scores_models, unscored_reason

            if not scores_models(benchmarks.BENCHMARKS.get(bench)):
                skipped.append(f"{model} x {bench}: {unscored_reason(benchmarks.BENCHMARKS.get(bench))}")
                continue
            spec = {"family": family, "model": model, "benchmark": bench, "overrides": {},
                    "checkpoint": None, "weights": UNTRAINED if family == "convrnn" else "fitted",
                    "score": {"max_features": max_features, "seed": 0},
                    "split": split_spec()}
            spec.update(benchmark_version(bench))
            if family == "retina":
                from neurozoo.datasets.synthetic_retina import VERSION as RECORDING_VERSION
                from neurozoo.retina.fit import FIT_PROTOCOL

                spec["fit"] = {"epochs": fit_epochs}
                # in the job key: a new protocol changes the fits (protocol 10: the GLM's), and a new version of the
                # embedded circuit its recordings, so a re-run must score them again rather than reuse the old scores
                # (the fit cache is keyed by both too: fitting protocol, data sha256)
                spec["fit_protocol"] = FIT_PROTOCOL
                spec["recording_version"] = RECORDING_VERSION
            if family == "convrnn":
                spec["overrides"]["width_multiplier"] = width_multiplier
            if checkpoint:
                # resolved, as zoo score's record keeps it: a relative path reproduced only from the folder zoo run
                # ran in (the display name keeps the file's name, the weights' label the path as given)
                spec["checkpoint"] = {"path": str(Path(checkpoint).resolve()), "sha256": sha256_file(checkpoint)}
                spec["weights"] = f"checkpoint {checkpoint}"
                if family == "convrnn":
                    if model not in weights_of:  # the file is read and checked once per model
                        weights_of[model] = _checkpoint_weights(spec)
                    spec["weights"], overrides = weights_of[model]
                    spec["overrides"] = dict(overrides)
            if family == "convrnn":  # the layers and steps the jobs commit to: of the model the weights make
                if model not in built:
                    built[model] = _built_on_meta(model, spec["overrides"])
                spec.update(_commitments(built[model], benchmark_region(bench)))
                if "layer" in spec and benchmark_region(bench) not in regions.setdefault(model, []):
                    regions[model].append(benchmark_region(bench))
            specs.append(spec)
    if layer_notes is not None:
        layer_notes.extend(note for model, scored in regions.items()
                           if (note := chosen_layers_note(model, built[model], scored)))
    if models is None and "retina" not in {benchmark_family(b) for b in names}:
        # --benchmarks without a retina one left the default zoo's retina models out: that is the reason, not an
        # empty registry (the note said "no retina benchmark is registered yet" with retina benchmarks registered)
        skipped.append("retina models: none of --benchmarks is a retina benchmark" if benchmark_names
                       else "retina models: no retina benchmark is registered yet")
    return specs, skipped


def benchmark_version(name: str) -> Dict[str, int]:
    """``{"benchmark_version": N}`` for a benchmark registered with a ``version`` tag (its definition changed: the
    same model scores otherwise), else ``{}``, so the keys of unversioned benchmarks' jobs stay as they were. In the
    job key: after the contrast-adaptation index's version 2, a re-run of zoo run reused every version-1 score as a
    done job, and the board kept them."""
    from neurozoo import benchmarks

    version = benchmarks.BENCHMARKS.get(name).tags.get("version")
    return {} if version is None else {"benchmark_version": version}


def outdated_reason(spec: Dict[str, Any], split_key: Optional[str] = None) -> Optional[str]:
    """Why a done job's score is no longer comparable with one scored now, or None: it was scored under another
    version of its benchmark (:func:`benchmark_version`; a spec without one: version 1), or, for a retina model,
    fitted under another fitting protocol or on another version of the embedded recordings. Such a job's key differs
    from the current one, so a re-run scores it again; until then the board had ranked its score beside scores of the
    new version (``zoo run --models ln`` after the contrast-adaptation index's version 2 ranked ln's version-2 score
    against the other models' version-1 scores), so it is left out (:meth:`LeaderboardDB.outdated_jobs`). So is a score
    whose hidden split was drawn with another secret than this host's (``split_key``, default :func:`split_key_id`): a
    database restored without its ``secret.key`` ranked the old host's scores beside new ones on another split. A
    benchmark no longer registered: None (the board shows it apart)."""
    from neurozoo import benchmarks

    name = spec.get("benchmark")
    if name not in benchmarks.BENCHMARKS:
        return None
    scored, current = spec.get("benchmark_version", 1), benchmark_version(name).get("benchmark_version", 1)
    if scored != current:
        return f"scored under version {scored} of {name}; the benchmark is now version {current}"
    if spec.get("family") == "retina":
        from neurozoo.datasets.synthetic_retina import VERSION as RECORDING_VERSION
        from neurozoo.retina.fit import FIT_PROTOCOL

        for key, what, now_ in (("fit_protocol", "fitting protocol", FIT_PROTOCOL),
                                ("recording_version", "version of the embedded recordings", RECORDING_VERSION)):
            if spec.get(key) != now_:
                was = "an unrecorded " + what if spec.get(key) is None else f"{what} {spec[key]}"
                return f"fitted under {was}; the current {what} is {now_}"
    scored_key = (spec.get("split") or {}).get("key")
    if scored_key is not None and scored_key != (split_key := split_key or split_key_id()):
        return (f"its hidden split was drawn with another secret key (split key {scored_key}, this host's "
                f"{split_key}): restore the $NEUROZOO_HOME/secret.key that scored it, or score it again")
    return None


def current_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """``spec`` under its benchmark's current version (:func:`benchmark_version`) and this host's split: a submission's
    outdated job scored again (``zoo work --rescore-outdated``)."""
    out = {key: value for key, value in spec.items() if key != "benchmark_version"}
    if "split" in out:
        out["split"] = split_spec()
    return {**out, **benchmark_version(spec["benchmark"])}


def _built_on_meta(model: str, overrides: Dict[str, Any]):
    """``model`` built on the meta device (no weights allocated), for what its jobs commit to (:func:`_commitments`);
    None where it cannot be built there (a plugin's model: its layer is then chosen when scored, and ``zoo run`` names
    it from the records: ``leaderboard.run.scored_layers_notes``). A model at settings
    it cannot take -- a CORnet-RT width that leaves GroupNorm(32) areas of other than a multiple of 32 channels --
    fails here, before any job is queued, instead of failing every job of the run."""
    import torch

    from neurozoo import convrnn
    from neurozoo.datasets.errors import UserFacingError

    try:
        with torch.device("meta"):
            return convrnn.create_model(model, **overrides)
    except UserFacingError as error:
        raise UserFacingError(f"{model} with {overrides}: {error}") from None
    except Exception:  # noqa: BLE001 -- not buildable on meta: scored as before, its layer picked by score_model
        return None


def _commitments(model, region: Optional[str]) -> Dict[str, Any]:
    """What a ConvRNN's or CORnet's job on a benchmark of ``region`` scores, in its spec and so in the job's key: the
    layer (:func:`region_layer`) and a CORnet's time mapping (time_mapping.model_timing, as the extraction settings
    describe it). Jobs are reused by that key: without them a changed layer map (the shallow ConvRNNs' V4, conv5 ->
    conv3) or CORnet table kept the scores of the old one."""
    from neurozoo.benchmarks.extraction.time_mapping import model_timing

    if model is None:
        return {}
    out: Dict[str, Any] = {}
    if region and getattr(model, "layer_names", None):
        out["layer"] = region_layer(model, region)
    timing = model_timing(model)
    if timing is not None:
        out["time_mapping"] = {layer: table.describe() for layer, table in sorted(timing.items())}
    return out


def _checkpoint_weights(spec: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """``(weights label, model overrides)`` of a ConvRNN's or CORnet's checkpoint: released weights run at their own
    width (a ``zoo convert-weights`` file: the width it records; a CORnet's file in dicarlolab/CORnet's format,
    converted when loaded: width 1), a ``zoo train`` checkpoint at the settings it was trained with (its width, not
    the run's --width-multiplier, which is the untrained zoo's: it was refused as a size mismatch unless repeated),
    any other checkpoint at the run's. Checked here, before any job is queued: a
    checkpoint of another width or model failed every job with torch's size-mismatch report (dozens of lines, stored
    as the jobs' error and shown on the model page)."""
    from neurozoo import convrnn
    from neurozoo.convrnn.cornet_weights import checkpoint_state
    from neurozoo.benchmarks.named_models import refuse_another_graph
    from neurozoo.convrnn import with_trained_settings
    from neurozoo.datasets.errors import DataError, UserFacingError
    from neurozoo.datasets.torch_files import read_torch_file, state_mismatch

    path = spec["checkpoint"]["path"]
    label, overrides = spec["weights"], spec["overrides"]
    published = _published_weights(path)
    if published:  # zoo convert-weights: the released model at its own width
        label, overrides = published["label"], dict(published.get("overrides") or {})
    saved = read_torch_file(path)
    if with_trained_settings({}, saved):  # a zoo train checkpoint: its settings and classes, its width over the run's
        overrides = {key: value for key, value in overrides.items() if key != "width_multiplier"}
    given, overrides = overrides, with_trained_settings(overrides, saved)
    model = convrnn.create_model(spec["model"], **overrides)
    try:  # a CORnet's released file is converted for the CORnet at the release's width, 1
        state, release = checkpoint_state(model, saved, path, f"checkpoint {path}",
                                          release_model=lambda: convrnn.create_model(spec["model"]))
    except DataError as error:
        raise UserFacingError(f"--checkpoint {spec['model']}={path}: {error}") from None
    if release is not None:
        return release["label"], {}
    try:
        model.load_state_dict(state)
    except RuntimeError:
        width = overrides.get("width_multiplier")
        raise UserFacingError(f"--checkpoint {spec['model']}={path} does not fit {spec['model']}"
                              + (f" at --width-multiplier {width:g}" if width is not None else "")
                              + f"{convrnn.trained_as_hint(saved, spec['model'])}: {state_mismatch(model, state)}"
                              ) from None
    refuse_another_graph(model, saved, f"--checkpoint {spec['model']}={path}", spec["model"], given)
    return label, overrides


def _published_weights(path) -> Optional[Dict[str, Any]]:
    from neurozoo.convrnn.convert import published_weights

    return published_weights(path)


def display_name(spec: Dict[str, Any]) -> str:
    """The model's name on the leaderboard, which keeps one score per (name, benchmark): every setting that makes
    another model of the same registered name is in it (a width, a feature count or a fitting budget other than the
    zoo's default, the checkpoint's file name and sha256), so that two configurations never replace or mix with
    each other's scores in one row."""
    name, variant = spec["model"], []
    if spec.get("checkpoint"):
        name += f"@{Path(spec['checkpoint']['path']).stem}"
        variant.append(f"weights {spec['checkpoint']['sha256'][:8]}")
    if spec["family"] == "convrnn":
        width = (spec.get("overrides") or {}).get("width_multiplier")
        if width is not None and width != DEFAULT_WIDTH and not _published_label(spec):
            variant.append(f"width {width:g}")
        if spec["score"]["max_features"] != DEFAULT_MAX_FEATURES:
            variant.append(f"{spec['score']['max_features']} features")
    epochs = (spec.get("fit") or {}).get("epochs", DEFAULT_FIT_EPOCHS)
    if spec["family"] == "retina" and epochs != DEFAULT_FIT_EPOCHS:
        variant.append(f"fit {epochs} epochs")
    return f"{name} ({', '.join(variant)})" if variant else name


def _published_label(spec: Dict[str, Any]) -> bool:
    """Converted weights (``zoo convert-weights``, a CORnet release) run at their own width: the name need not say it
    (a converted file's label names its settings)."""
    from neurozoo.convrnn.convert import is_conversion_label

    label = spec.get("weights", "")
    return bool(spec.get("checkpoint")) and (label.startswith("published") or is_conversion_label(label))


# ------------------------------------------------------------------------------------------------ scoring
def build_model(spec: Dict[str, Any], device: str = "cpu"):
    import torch

    torch.manual_seed(spec["score"].get("seed", 0))  # untrained weights are reproducible (and cacheable)
    if spec["family"] == "convrnn":
        from neurozoo import convrnn

        model = convrnn.create_model(spec["model"], **spec["overrides"])
        if spec.get("checkpoint"):
            from neurozoo.convrnn.cornet_weights import checkpoint_state
            from neurozoo.datasets.torch_files import read_torch_file

            path = spec["checkpoint"]["path"]
            model.load_state_dict(checkpoint_state(model, read_torch_file(path), path, f"checkpoint {path}")[0])
        return model.to(device).eval()
    from neurozoo import retina

    return retina.create_model(spec["model"], **spec["overrides"]).to(device)


def region_layer(model, region: str) -> str:
    """The layer ``zoo run`` scores for ``region``: the last of the layers the benchmarks commit ``model`` to it
    (``neural.committed_layers``, as ``zoo score`` and ``BrainModel`` take them: the model's layer of that name, else a
    ConvRNN's released map), else -- a ConvRNN off the map, ``rgc_resnet18``'s timm stages, which the benchmarks leave
    to the caller -- the last layer for IT and the one before it otherwise."""
    from neurozoo.benchmarks.neural import committed_layers

    mapped = committed_layers(model, region)
    if mapped:
        return mapped[-1]
    names = list(getattr(model, "layer_names", []))
    if not names:
        raise ScoringError(f"model has no layer_names; cannot pick a layer for {region}")
    return names[-1] if region == "IT" or len(names) < 2 else names[-2]


#: a score's ``layer_choice`` (its settings) where the layer is the model's own for the region (its layer of that name,
#: the released ConvRNN map's last), where the model has none (:func:`region_layer`'s fallback, which
#: :func:`chosen_layers_note` announces), and where the caller named it
MAP_LAYER = "fixed (last layer of the region's map)"
FALLBACK_LAYER = "fixed (no layer of the region's map: the model's last layer for IT, the one before it otherwise)"
NAMED_LAYER = "named by the caller"


def layer_choice(model, region: str, layer: str, layers: Optional[Dict[str, str]] = None) -> str:
    """How :func:`score_model` came to score ``layer`` for ``region`` (:data:`MAP_LAYER`, :data:`FALLBACK_LAYER`,
    :data:`NAMED_LAYER`): rgc_resnet18's and a plugin's ConvRNN's records had said the map's last layer of a map that
    has none of their layers."""
    from neurozoo.benchmarks.neural import committed_layers

    committed = committed_layers(model, region)
    if (layers or {}).get(region) or (committed and layer not in committed):
        return NAMED_LAYER
    return MAP_LAYER if committed else FALLBACK_LAYER


def chosen_layers_note(name: str, model, regions: Sequence[str]) -> Optional[str]:
    """The line ``zoo run`` prints for a ``model`` that commits no layer to some of the ``regions`` it is scored on (a
    ConvRNN off the released map: ``rgc_resnet18``, a plugin's): the layers :func:`region_layer` picks for them, which
    it scored without a word where ``zoo score`` refuses the model and asks for ``--layers``. None for any other."""
    from neurozoo.benchmarks.neural import committed_layers

    return layers_note(name, [(region, region_layer(model, region)) for region in regions
                              if not committed_layers(model, region)])


def layers_note(name: str, chosen: Sequence[Tuple[str, str]]) -> Optional[str]:
    """:func:`chosen_layers_note`'s line for model ``name`` and the (region, layer) pairs ``zoo run`` chose itself
    (:data:`FALLBACK_LAYER`): from the model built on the meta device before scoring, or, for one that cannot be built
    there (a plugin's), from its records' settings once scored (``leaderboard.run``). None where there are none."""
    if not chosen:
        return None
    return (f"{name} commits no layer to {' or '.join(region for region, _ in chosen)} (none named so, none on the "
            f"released ConvRNN layer map): zoo run scores "
            f"{' and '.join(f'{layer} for {region}' for region, layer in chosen)} (the last layer for IT, the one "
            f"before it otherwise) and has no option to choose others; zoo score {name} BENCHMARK --layers A,B "
            f"scores the layers named")


def split_spec() -> Dict[str, Any]:
    return {"hidden_fraction": HIDDEN_FRACTION, "key": split_key_id()}


def split_key_id() -> str:
    """A fingerprint of the host's secret (it does not reveal the secret)."""
    import hashlib

    from neurozoo.benchmarks.extraction.cache import server_secret

    return hashlib.sha256(b"split-key-id\0" + server_secret()).hexdigest()[:16]


def split_seed(benchmark_id: str) -> int:
    from neurozoo.benchmarks.extraction.cache import keyed_digest

    return int(keyed_digest("hidden-split", benchmark_id.encode())[:8], 16)


def split_ids(benchmark, fraction: float, seed: Optional[int] = None):
    """(public ids, hidden ids): a split of the benchmark's stimuli, stratified by object, drawn with
    :func:`split_seed` (the host's secret) unless ``seed`` is given."""
    import numpy as np
    from sklearn.model_selection import StratifiedShuffleSplit

    from neurozoo.benchmarks.metrics.assembly import average_repetitions, coord

    target = average_repetitions(benchmark.assembly)
    ids, objects = coord(target, "stimulus_id"), coord(target, "object_name")
    seed = split_seed(benchmark.identifier) if seed is None else seed
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    public, hidden = next(splitter.split(np.zeros(len(ids)), objects))
    return ids[np.sort(public)], ids[np.sort(hidden)]


def split_digest(ids) -> str:
    """Which stimuli a half of the split holds (``ids``, sorted, as text): an HMAC with the host's secret, as the split
    itself is drawn, so that a public score's settings give no offline test of a guessed split seed."""
    from neurozoo.benchmarks.extraction.cache import keyed_digest

    return keyed_digest("split-ids", "\x1f".join(sorted(str(i) for i in ids)).encode())


def check_record(record: ScoreRecord) -> ScoreRecord:
    if record.value is None or not math.isfinite(record.value):
        raise ScoringError(f"{record.model} on {record.benchmark}: the score is {record.value} (NaN or missing); "
                           "the model's features are probably NaN, infinite or constant")
    for row in record.per_bin or []:
        value = row.get("value")
        if value is not None and not math.isfinite(float(value)):
            raise ScoringError(f"{record.model} on {record.benchmark}: per-bin score {value} is not finite")
    return record


def score_model(model, spec: Dict[str, Any], name: str, device: str = "cpu", layers: Optional[Dict[str, str]] = None,
                timing=None, progress: bool = False, cache: bool = True,
                work_begins: Optional[Callable[..., None]] = None) -> Tuple[ScoreRecord, Optional[ScoreRecord]]:
    """(public record, hidden record) of ``model`` on ``spec['benchmark']``; raises ScoringError on bad output.
    ``cache=False``: the activations are computed, never read from (or written to) the activation cache.
    ``work_begins``: called where the work begins: before the extraction's first batch (its safe point: the batch is
    then kept in the activation cache), after an extraction read whole from the cache, or before a benchmark's own
    score (which may write at once): :func:`_score_spec`'s."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.neural import NeuralBenchmark, extraction_settings
    from neurozoo.datasets.activity import tell

    started = time.perf_counter()
    tell("loading the benchmark", begins=True)  # its stimuli and recordings: zoo run's job bar, display only
    benchmark = benchmarks.load(spec["benchmark"])
    provenance = {"weights": spec.get("weights"), "overrides": spec.get("overrides"), "spec_family": spec["family"]}
    if not isinstance(benchmark, NeuralBenchmark):
        if work_begins is not None:
            work_begins()
        score = benchmark.score(model)
        score.provenance.setdefault("settings", {}).update(provenance)
        return check_record(score.to_record(name, spec["benchmark"])), None
    layer = (layers or {}).get(benchmark.region) or spec.get("layer") or region_layer(model, benchmark.region)
    options = dict(spec["score"])
    # Extract every region's layer at once: the other region's benchmark on the same stimuli then reads
    # them from the activation cache instead of running the model again.
    wanted = [layer] if layers or not hasattr(model, "layer_names") else \
        sorted({layer, *(region_layer(model, r) for r in ("V4", "IT"))})
    extraction = {"max_features": options["max_features"], "seed": options.get("seed", 0),
                  **({"timing": timing} if timing is not None else {})}
    features = benchmark.extract(model, wanted, cache=cache, progress=progress, **extraction,
                                 **({"safe_point": work_begins} if work_begins is not None else {}))
    if work_begins is not None:  # all of it read from the cache (no batch extracted): the scoring begins here
        work_begins()
    image_size = list(benchmark.stimuli.images.shape[-2:])
    # the options extracted with, as zoo score's records keep them (the benchmark's {} was recorded: a default one)
    settings = {"layer": layer, "layer_choice": layer_choice(model, benchmark.region, layer, layers),
                "image_size": image_size, "max_features": options["max_features"],
                "extraction": extraction_settings({**benchmark.extraction, **extraction}, model), **provenance}
    return score_splits(benchmark, features[layer], spec, name, settings, started, device)


#: The largest feature magnitude the scorer takes. The regression summed squares of features in float32: features up to
#: 1.7e18 on 144 stimuli overflowed, and a model whose honest features scored 0.244 scored 0.0 at that scale, stored
#: as done without a word. The PLS fit now rescales its features by a power of two first
#: (``benchmarks.metrics.regression.unit_scale``), which removes that overflow at its cause; the bound stays as a
#: sanity bound on what a model returns.
FEATURE_MAGNITUDE_LIMIT = 1e12

#: The smallest largest-magnitude the scorer takes: float32's smallest normal number (1.2e-38). Below it every value is
#: subnormal and has lost bits of precision (1e-40 keeps 16 of 24) before the scorer sees it. Any magnitude from here
#: to the upper bound scores as the same features at scale 1 do: PLS (Brain-Score's, ``scale=False``) predicts the same
#: from ``c X`` as from ``X``, and the fit rescales, so features of 1e-30 no longer underflow to a score of 0.
FEATURE_MAGNITUDE_FLOOR = 2.0 ** -126


def check_features(values, name: str, layer, benchmark: str) -> None:
    """Refuse features that cannot be scored, by name, instead of storing the score of 0 they would get: non-finite
    values, magnitudes outside [FEATURE_MAGNITUDE_FLOOR, FEATURE_MAGNITUDE_LIMIT], all zeros, and features the same
    for every stimulus in every time bin (a constant prediction: r = 0 everywhere). ``values``: presentation first,
    (presentation, feature, time_bin). A time bin whose features alone are constant is scored (its r is 0, as for any
    model before its response begins, e.g. a ConvRNN's steps before the image reaches the layer): not refused."""
    import numpy as np

    values = np.asarray(values)
    where = f"{name}: layer {layer} on {benchmark}"
    scale = f"(rescale the layer: any magnitude from {FEATURE_MAGNITUDE_FLOOR:.3g} to {FEATURE_MAGNITUDE_LIMIT:g} " \
            "scores the same)"
    if not np.all(np.isfinite(values)):
        raise ScoringError(f"{name}: layer {layer} produced {int((~np.isfinite(values)).sum())} "
                           f"NaN/infinite feature values on {benchmark}")
    largest = max(abs(float(values.max())), abs(float(values.min()))) if values.size else 0.0
    if largest > FEATURE_MAGNITUDE_LIMIT:
        raise ScoringError(f"{name}: layer {layer} produced feature values up to {largest:.3g} on {benchmark}; "
                           f"expected magnitudes of at most {FEATURE_MAGNITUDE_LIMIT:g} {scale}")
    if largest == 0.0:
        raise ScoringError(f"{where}: every feature value is 0 ({values.shape[0]} stimuli, {values[0].size} values "
                           "each): zero features carry nothing to regress (a dead layer, or the wrong layer named)")
    if largest < FEATURE_MAGNITUDE_FLOOR:
        raise ScoringError(f"{where}: feature values of at most {largest:.3g}, below float32's smallest normal number: "
                           f"subnormal values have lost precision {scale}")
    if not (values.max(axis=0) > values.min(axis=0)).any():
        raise ScoringError(f"{where}: each of its {values[0].size} values (features x time bins) is the same for all "
                           f"{values.shape[0]} stimuli: features that do not depend on the image carry nothing to "
                           "regress (a layer that ignores its input, or the wrong layer named)")


def score_splits(benchmark, features, spec: Dict[str, Any], name: str, settings: Dict[str, Any], started: float,
                 device: str = "cpu") -> Tuple[ScoreRecord, ScoreRecord]:
    """(public record, hidden record) of precomputed ``features`` (presentation, neuroid, time_bin); every
    field is computed here, on the trusted side."""
    from neurozoo.datasets.activity import tell

    check_features(features.transpose("presentation", ...).values, name, settings.get("layer"),
                   spec["benchmark"])
    public, hidden = split_ids(benchmark, spec["split"]["hidden_fraction"])
    # the images read (data_sha256 is the responses') and which stimuli each half holds, as zoo reproduce compares
    # them: a rerun on other images, or whose split drew other stimuli (another scikit-learn), is named so
    settings = {**settings, "stimuli_sha256": benchmark.stimuli_sha256}
    records = []
    # zoo run's and zoo work's job bar (datasets.activity): display only
    tell(f"scoring layer {settings['layer']}", begins=True)
    for split, ids in (("public", public), ("hidden", hidden)):
        tell(f"{split} split")
        score = benchmark.score_features(features, stimulus_ids=ids, settings={**settings, "split": split,
                                                                               "split_key": spec["split"]["key"],
                                                                               "split_digest": split_digest(ids)},
                                         started=started, device=device)
        records.append(check_record(score.to_record(name, spec["benchmark"])))
    return records[0], records[1]


def score_spec(spec: Dict[str, Any], device: str = "cpu", progress: bool = False, cache: bool = True):
    """Score one built-in zoo spec (trusted code, run in the scorer's own process). Each record keeps the spec
    (``settings["rerun"]``), from which ``zoo reproduce`` scores it again.

    Retina benchmarks take the registered model *name*: they fit it on the embedded recordings themselves."""
    records = _score_spec(spec, device, progress, cache)
    for record in records:
        if record is not None:
            record.settings["rerun"] = {"command": "zoo run", "spec": spec}
    return records


def _score_spec(spec: Dict[str, Any], device: str, progress: bool, cache: bool):
    if spec["family"] == "retina":
        from neurozoo import benchmarks
        from neurozoo.datasets.termination import stopping_at_once

        seed = spec["score"].get("seed", 0)
        fit = spec.get("fit", {})
        # until the fit folder's lock (the job's first safe point), imports and reading, nothing written: a stop
        # (zoo run's SIGTERM) is taken at once, the job handed back, rather than after them and the first epoch
        with stopping_at_once():
            score = benchmarks.load(spec["benchmark"]).score(spec["model"], seed=seed, device=device,
                                                             progress=progress, **fit)
        settings = score.provenance.setdefault("settings", {})
        budget = f", at most {fit['epochs']} epochs" if "epochs" in fit else ""
        settings.update(weights=f"fitted on the embedded recordings (seed {seed}{budget})", spec_family="retina")
        return check_record(score.to_record(display_name(spec), spec["benchmark"])), None
    from neurozoo.datasets.activity import tell
    from neurozoo.datasets.provenance import module_sha256
    from neurozoo.datasets.termination import raise_if_terminated, stopping_at_once

    begun = []

    def work_begins(*position) -> None:  # the extraction's safe point: only its first call, before the first batch
        if not begun:
            begun.append(position)
            raise_if_terminated()

    # until the extraction's first batch (its first write: the batch kept in the activation cache; or the scoring of
    # features read whole from the cache) the job imports, builds its model and reads its images and the cache,
    # writing nothing: a stop (zoo run's SIGTERM) is taken at once, the job handed back, as a retina job's before its
    # fit; it waited for the whole job. From there on the job is finished and stored first, as ever
    with stopping_at_once():
        tell("building the model", begins=True)  # zoo run's job bar (datasets.activity): display only
        model = build_model(spec, device)
        public, hidden = score_model(model, spec, display_name(spec), device=device, progress=progress, cache=cache,
                                     work_begins=work_begins)
    for record in (public, hidden):
        if record is not None:  # None: a benchmark without a hidden split
            record.settings["model_sha256"] = module_sha256(model)
    return public, hidden
