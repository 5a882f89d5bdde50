"""The layer wiring a cell kind brings with it, read from the registered spec of that kind's published model.

The published models wire their cells differently: the RGC's layers have no activation after the convolution (the
cell applies its own) and no post block, while the UGRNN, LSTM, SimpleRNN and time-decay layers apply ELU after the
convolution and a post block after the cell (3x3 convolution, residual add of the layer's input, ELU; convrnns
models/ugrnn_intermediate.json, nodes conv4-conv10, lines 222-789: component_conv "activation": "elu" line 259,
post_memory lines 277-291; against models/rgc_intermediate_t22.json conv4, lines 197-277: "activation": null line
234, post_memory a max_pool only, lines 259-276). A cell dropped into another kind's layers without its own
wiring is not that cell's model: a UGRNN at the RGC's layers has its output shrink layer after layer (no residual,
no activation) until every image gets the same logits. So layers given another cell kind (a search trial, the
``cell_kind`` model override) take, from the published spec of that kind, the layer's ``activation``, ``post`` and
cell configuration; the model keeps the rest (channels, kernel, stride, pool, feedback, readout).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from neurozoo.convrnn.spec import GraphSpec, LayerSpec
from neurozoo.datasets.errors import SpecError

#: ``wiring: {kind: base}`` (a search space) or override ``wiring=base`` keeps the layers' own wiring (the former
#: behaviour, a named option).
BASE = "base"


@dataclass
class LayerWiring:
    activation: Optional[str]
    post: Optional[Dict[str, Any]]
    cell: Dict[str, Any] = field(default_factory=dict)  # the published cell configuration, under the sampled one

    def apply(self, layer: Dict[str, Any], cell: Dict[str, Any]) -> None:
        """Wire ``layer`` (a spec mapping) for ``cell`` (the sampled ``{"kind": ..., **config}``)."""
        for key, value in (("activation", self.activation), ("post", self.post)):
            if value is None:
                layer.pop(key, None)
            else:
                layer[key] = dict(value) if isinstance(value, dict) else value
        layer["cell"] = {**self.cell, **cell}


def _cell_kind(cell: Optional[Dict[str, Any]]) -> str:
    return cell["kind"] if cell else "identity"  # a layer without a cell has no recurrence


def _wiring(layer: LayerSpec, kind: str) -> LayerWiring:
    """A layer's wiring; its cell configuration comes along only from a ``kind`` cell."""
    same = _cell_kind(layer.cell) == kind
    config = {k: v for k, v in (layer.cell or {}).items() if k != "kind"} if same else {}
    return LayerWiring(layer.activation, layer.post, config)


def wiring_from(spec: GraphSpec, kind: str, layers: Sequence[str], where: str) -> Dict[str, LayerWiring]:
    """Per searched layer, the wiring of ``spec``'s ``kind`` layer of the same name, or, when ``spec`` has no
    such layer, the one wiring that all its ``kind`` layers share. A model without ``kind`` layers lends the
    wiring of its recurrent layers, without their cell configuration (a cell with no published model)."""
    own = [layer for layer in spec.layers if _cell_kind(layer.cell) == kind]
    if not own:
        own = [layer for layer in spec.layers if layer.cell]
        if not own:
            raise SpecError(f"{where}: model {spec.name!r} has no recurrent layer to take the wiring from")
    by_name = {layer.name: _wiring(layer, kind) for layer in own}
    distinct: List[LayerWiring] = []
    for candidate in by_name.values():
        if candidate not in distinct:
            distinct.append(candidate)
    wiring = {}
    for name in layers:
        if name not in by_name and len(distinct) != 1:
            raise SpecError(f"{where}: model {spec.name!r} has no layer {name!r} wired for {kind!r} and its layers "
                            f"{', '.join(by_name)} are not wired alike; name another model")
        wiring[name] = by_name.get(name, distinct[0])
    return wiring


def published_model(kind: str, base: GraphSpec) -> Optional[str]:
    """The registered model of cell ``kind`` with the base's layers (``ugrnn_intermediate`` for base
    ``rgc_intermediate``, ``ugrnn_shallow`` for ``rgc_shallow``): the shortest such name, or None."""
    from neurozoo.convrnn.models import MODELS, get_spec

    found = []
    for name in MODELS.names():
        if not name.startswith(f"{kind}_") or "spec_file" not in MODELS.get(name).tags:
            continue
        spec = get_spec(name)
        if spec.layer_names == base.layer_names and any(_cell_kind(l.cell) == kind for l in spec.layers):
            found.append(name)
    return min(found, key=lambda n: (len(n), n)) if found else None


def kind_wiring(kind: str, named: Optional[str], base: GraphSpec, layers: Sequence[str], where: str,
                option: Callable[[str], str], width_multiplier: Optional[float] = None):
    """``(model, wiring)``: the model whose layers ``kind`` cells at ``layers`` of ``base`` are wired as, and the
    per-layer wiring.

    The model is ``named``, else the published model of that kind with the base's layers, else the base itself where
    its ``layers`` already carry that kind; otherwise the caller must name one (``option(MODEL)`` says how)."""
    from neurozoo.convrnn.models import MODELS, get_spec

    model = named or published_model(kind, base)
    if model is None and all(_cell_kind(base.layer(name).cell) == kind for name in layers):
        model = BASE  # no published model, but the base's own layers carry this kind (rgc_resnet18)
    if model is None:
        example = (f"{kind}_intermediate" if f"{kind}_intermediate" in MODELS else
                   "ugrnn_intermediate, the wiring every published non-RGC intermediate model shares")
        raise SpecError(
            f"{where}: no published model of cell {kind!r} has the layers of {base.name!r}, so its layer wiring "
            f"(activation, post block, cell configuration) is unknown; name the model to take it from in "
            f"{option('MODEL')} (e.g. {example}) or {option(BASE)} to keep the layers of {base.name!r}")
    if model == BASE:
        return model, {name: _wiring(base.layer(name), kind) for name in layers}
    from neurozoo.datasets.registry import UnknownNameError, lookup

    try:  # the registries' one refusal: close names, every model, and the base
        lookup(model, [MODELS], "model", lambda name: f"; expected a registered model or {BASE!r}", also=[BASE])
    except UnknownNameError as error:
        raise SpecError(f"{where}: {option(model)}: {error}") from None
    spec = get_spec(model)
    if width_multiplier is not None:  # as the base: its cell depths scale alike
        spec = spec.with_overrides(width_multiplier=width_multiplier)
    return model, wiring_from(spec, kind, layers, f"{where}: {option(model)}")


def resolve_wiring(kinds: Sequence[str], named: Dict[str, str], base: GraphSpec, layers: List[str],
                   overrides: Dict[str, Any], where: str):
    """``(models, wiring)``: per cell kind of a search space, the model its layers are wired as and the per-layer
    wiring (:func:`kind_wiring`; the space's ``wiring: {KIND: MODEL}`` names one)."""
    models, wiring = {}, {}
    for kind in kinds:
        models[kind], wiring[kind] = kind_wiring(
            kind, named.get(kind), base, layers, where, lambda model, kind=kind: f"'wiring: {{{kind}: {model}}}'",
            overrides.get("width_multiplier"))
    return models, wiring


def with_cell_kind(data: Dict[str, Any], kind: str, named: Optional[str], where: str) -> str:
    """Give every cell of the spec mapping ``data`` the cell ``kind``, wired as its published model (or ``named``:
    a registered model or ``base``); returns the model it is wired as. The ``cell_kind`` model override."""
    base = GraphSpec.from_dict(data, source=where)
    layers = [layer.name for layer in base.layers if layer.cell]
    if not layers:
        raise SpecError(f"{where}: override cell_kind={kind!r}, but the model has no cell to replace")
    from neurozoo.convrnn.cells import CELLS

    if kind not in CELLS:
        raise SpecError(f"{where}: override cell_kind={kind!r} is not a cell kind ({', '.join(CELLS.names())})")
    model, wiring = kind_wiring(kind, named, base, layers, where, lambda model: f"override wiring={model}")
    for layer in data["layers"]:
        if layer["name"] in wiring:
            wiring[layer["name"]].apply(layer, {"kind": kind})
    return model
