"""Graph specifications for ConvRNNs: layers, cells, feedback edges and the unrolling schedule.

A spec is plain data (readable from and writable to YAML) and is validated before any module is
built, so a bad file fails with a message that names the file and the field.

Timing semantics (biological unrolling as the original's utils/main.py unroll, lines 190-258; REFERENCE.md
section 1): the first layer reads the frame of step t at step t; feedforward edges between consecutive layers and
the readout cost one step; feedback and skip edges cost ``delay`` steps (default 1). Every layer runs from t = 0 on
zero input. A zero-delay edge is read within the same step, so zero-delay edges must not form a cycle.
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from neurozoo.datasets.errors import SpecError, did_you_mean, yaml_problem
from neurozoo.datasets.json_files import write_atomic
from neurozoo.datasets.text_table import plural

NORMS = ("none", "batch", "group")
DECODERS = ("last", "max_conf", "thresh")
ACTIVATIONS = ("relu", "elu", "gelu", "identity")
PROJECTIONS = ("conv1x1", "identity")


@dataclass
class LayerSpec:
    name: str
    channels: int = 0
    kernel: int = 3
    stride: int = 1
    pool: Optional[Dict[str, int]] = None  # {"kernel": 2, "stride": 2} max-pool after the cell (TensorFlow SAME
    # unless an integer "padding" is given)
    cell: Optional[Dict[str, Any]] = None  # {"kind": "rgc", ...config}; None = no recurrence
    in_channels: Optional[int] = None  # optional declaration, checked against the previous layer
    timm_stage: Optional[str] = None  # take the feedforward part from a timm backbone's stage
    activation: Optional[str] = None  # after the convolution; None: the spec's (RGC layers: identity, the
    # cell applies its input_activation)
    post: Optional[Dict[str, Any]] = None  # {"kernel": 3, "residual": true}: conv, residual add, ELU after the cell


@dataclass
class FeedbackSpec:
    source: str
    target: str
    delay: int = 1
    projection: str = "conv1x1"  # conv1x1: concat with the target's input, 1x1 conv; identity: add


@dataclass
class GraphSpec:
    name: str
    layers: List[LayerSpec]
    feedback: List[FeedbackSpec] = field(default_factory=list)
    input_channels: int = 3
    num_classes: int = 1000
    n_steps: int = 17
    image_steps: int = 12  # the image is shown for steps [0, image_steps); the blank frame afterwards
    norm: str = "none"  # no released model normalises; "group" / "batch" are options
    activation: str = "elu"
    # blank: the frame after image_steps: 0.5 in the normalised input space (models/model_func.py make_movie, lines
    # 41-44), or "mean_gray"
    blank: Any = 0.5
    decoder: str = "last"  # last | max_conf (trainable softmax beta) | thresh
    # decoder_start: the first step the decoder reads; None: number of layers + 1 (models/model_func.py lines 114,
    # 196-197: num_layers = len(G), the convolutions and imnetds)
    decoder_start: Optional[int] = None
    # backbone_weight_decay: L2 on feedforward, post and readout weights and biases (models/*.json "weight_decay":
    # 0.0001, e.g. models/rgc_intermediate_t22.json lines 43 and 755; utils/model_tool.py conv lines 232 and 242)
    backbone_weight_decay: float = 1e-4
    readout_bias: float = 1.0  # utils/model_tool.py fc's default bias (line 521; a conv readout's is 0, line 186)
    readout_kernel: int = 0  # 0: global average pool then linear; k: k x k VALID conv then average (rgc_shallow)
    timm_backbone: Optional[str] = None
    timm_width: float = 1.0  # channel multiplier of the timm backbone's stages (width_multiplier scales it)
    description: str = ""

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "<dict>") -> "GraphSpec":
        if not isinstance(data, dict):
            raise SpecError(f"{source}: a graph spec must be a mapping, got {type(data).__name__}")
        data = copy.deepcopy(data)
        _check_keys(data, cls, source, "spec")
        layers_raw = data.pop("layers", None)
        if not layers_raw or not isinstance(layers_raw, list):
            raise SpecError(f"{source}: field 'layers' must be a non-empty list of layer mappings")
        defaults = data.pop("cell_defaults", None) or {}
        if not isinstance(defaults, dict):
            raise SpecError(f"{source}: field 'cell_defaults' must be a mapping of cell config keys, got {defaults!r}")
        layers = []
        for i, raw in enumerate(layers_raw):
            where = f"{source}: layers[{i}]"
            if not isinstance(raw, dict):
                raise SpecError(f"{where} must be a mapping, got {raw!r}")
            _check_keys(raw, LayerSpec, source, f"layers[{i}]")
            if "name" not in raw:
                raise SpecError(f"{where} has no 'name'")
            raw = dict(raw)
            if raw.get("cell") is not None:
                if isinstance(raw["cell"], str):
                    raw["cell"] = {"kind": raw["cell"]}
                if not isinstance(raw["cell"], dict):
                    raise SpecError(f"{where} ({raw['name']!r}): field 'cell' must be a mapping with a 'kind' (or a "
                                    f"kind's name, e.g. rgc), got {raw['cell']!r}")
                raw["cell"] = {**defaults, **raw["cell"]}
            layers.append(LayerSpec(**raw))
        feedback = []
        feedback_raw = data.pop("feedback", None) or []
        if not isinstance(feedback_raw, list):
            raise SpecError(f"{source}: field 'feedback' must be a list of edges (mappings with 'source' and 'target'), "
                            f"got {feedback_raw!r}")
        for i, raw in enumerate(feedback_raw):
            if not isinstance(raw, dict):
                raise SpecError(f"{source}: feedback[{i}] must be a mapping with 'source' and 'target', got {raw!r}")
            _check_keys(raw, FeedbackSpec, source, f"feedback[{i}]")
            missing = {"source", "target"} - set(raw)
            if missing:
                raise SpecError(f"{source}: feedback[{i}] is missing {sorted(missing)}")
            feedback.append(FeedbackSpec(**raw))
        if "name" not in data:
            data["name"] = os.path.splitext(os.path.basename(source))[0] if source != "<dict>" else "unnamed"
        spec = cls(layers=layers, feedback=feedback, **data)
        spec.validate(source)
        return spec

    @classmethod
    def from_yaml(cls, path: str) -> "GraphSpec":
        try:
            with open(path) as fh:
                data = yaml.safe_load(fh)
        except FileNotFoundError:
            raise SpecError(f"{path}: no such spec file") from None
        except yaml.YAMLError as error:
            raise SpecError(f"{path}: not valid YAML: {yaml_problem(error)}") from None
        return cls.from_dict(data, source=path)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        for layer in data["layers"]:
            for key in [k for k, v in layer.items() if v is None]:
                del layer[key]
        return data

    def to_yaml(self, path: Optional[str] = None) -> str:
        """The spec as YAML, written to ``path`` whole or not at all (a kill mid-write leaves no torn spec)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path:
            write_atomic(path, text)
        return text

    # ---------------------------------------------------------------- queries
    @property
    def layer_names(self) -> List[str]:
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise SpecError(f"spec {self.name!r}: no layer named {name!r} (layers: {', '.join(self.layer_names)})")

    @property
    def decoder_first_step(self) -> int:
        """The first step a "max_conf" / "thresh" decoder reads (models/model_func.py line 197)."""
        return self.decoder_start if self.decoder_start is not None else len(self.layers) + 1

    def index(self, name: str) -> int:
        """Position of a layer in the chain, counting from 1 (the image is position 0)."""
        return self.layer_names.index(name) + 1

    def layer_sides(self, image_size: int) -> Dict[str, int]:
        """Each layer's output side (pixels) on square ``image_size`` images, from the strides and pools alone:
        TensorFlow-SAME convolutions and pools give ceil(side / stride), which never reaches 0; a pool with an
        integer ``padding`` gives PyTorch's floor((side + 2 padding - kernel) / stride) + 1, which can (0 or less:
        no position left). Not for specs with timm stages, whose strides the spec does not give."""
        if self.timm_backbone is not None:
            raise SpecError(f"spec {self.name!r}: its timm stages' output sizes are not given by the spec")
        sides, side = {}, image_size
        for layer in self.layers:
            side = -(-side // layer.stride)
            pool = layer.pool or {}
            if pool.get("padding") is not None:
                side = (side + 2 * pool["padding"] - pool["kernel"]) // pool["stride"] + 1
            elif pool:
                side = -(-side // pool["stride"])
            sides[layer.name] = max(side, 0)
            side = max(side, 0)
        return sides

    def min_image_size(self, limit: int = 1 << 16) -> int:
        """The smallest image side at which every layer's output keeps at least one position (sides grow with the
        image's, so the first that does)."""
        return next((size for size in range(1, limit + 1) if min(self.layer_sides(size).values()) >= 1), limit)

    # ---------------------------------------------------------------- validation
    def _image_steps_hint(self) -> str:
        """Where n_steps alone is below image_steps (an override or a spec of one's own that leaves image_steps at the
        spec's, or the default): that image_steps is a field to set too, and where its value came from."""
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.n_steps, self.image_steps))
        if not ints or not 1 <= self.n_steps < self.image_steps:
            return ""
        default = type(self).__dataclass_fields__["image_steps"].default
        return (f" (the steps the image is shown, [0, image_steps): {default} unless the spec or an override gives it); "
                f"set image_steps <= n_steps too, e.g. image_steps={self.n_steps}")

    def validate(self, source: str = "<spec>") -> None:
        where = f"{source} (spec {self.name!r})"
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"{where}: field 'name' must be non-empty text, got {self.name!r}")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer.name, str) or not layer.name:
                raise SpecError(f"{where}: layers[{i}]: field 'name' must be non-empty text, got {layer.name!r}")
        names = self.layer_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(f"{where}: duplicate layer names {dupes}")
        if self.norm not in NORMS:
            raise SpecError(f"{where}: field 'norm' is {self.norm!r}; expected one of {NORMS}")
        if self.activation not in ACTIVATIONS:
            raise SpecError(f"{where}: field 'activation' is {self.activation!r}; expected one of {ACTIVATIONS}")
        if self.decoder not in DECODERS:
            raise SpecError(f"{where}: field 'decoder' is {self.decoder!r}; expected one of {DECODERS}")
        if self.blank != "mean_gray" and not isinstance(self.blank, (int, float)):
            raise SpecError(f"{where}: field 'blank' is {self.blank!r}; expected a number or 'mean_gray'")
        for key, minimum in (("num_classes", 1), ("input_channels", 1), ("readout_kernel", 0)):
            _require_int(getattr(self, key), minimum, f"{where}: field {key!r}")
        if self.decoder_start is not None:
            _require_int(self.decoder_start, 0, f"{where}: field 'decoder_start'")
        for key in ("backbone_weight_decay", "readout_bias", "timm_width"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"{where}: field {key!r} must be a number, got {value!r}")
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (self.n_steps, self.image_steps)) \
                or self.n_steps < 1 or not (0 <= self.image_steps <= self.n_steps):
            raise SpecError(
                f"{where}: need integers n_steps >= 1 and 0 <= image_steps <= n_steps, got n_steps={self.n_steps!r}, "
                f"image_steps={self.image_steps!r}{self._image_steps_hint()}"
            )
        if self.decoder != "last":
            check_decoder_window(self, self.n_steps, where)
        previous = self.input_channels
        for i, layer in enumerate(self.layers):
            lw = f"{where}: layer {layer.name!r}"
            if layer.timm_stage is not None:
                if not self.timm_backbone:
                    raise SpecError(f"{lw} takes timm_stage {layer.timm_stage!r} but the spec names no timm_backbone")
            else:
                if isinstance(layer.channels, bool) or not isinstance(layer.channels, int) or layer.channels < 1:
                    raise SpecError(f"{lw}: field 'channels' must be a positive integer, got {layer.channels!r}")
                for key in ("kernel", "stride"):
                    _require_int(getattr(layer, key), 1, f"{lw}: field {key!r}")
                if layer.in_channels is not None and layer.in_channels != previous:
                    raise SpecError(
                        f"{lw}: channel mismatch: declares in_channels={layer.in_channels} but its input "
                        f"({'image' if i == 0 else self.layers[i - 1].name}) has {previous} channels"
                    )
                previous = layer.channels
            if layer.pool is not None:
                if not isinstance(layer.pool, dict) or set(layer.pool) - {"kernel", "stride", "padding"} \
                        or not {"kernel", "stride"} <= set(layer.pool):
                    raise SpecError(f"{lw}: field 'pool' must be a mapping with 'kernel' and 'stride', got {layer.pool!r}")
                for key, value in layer.pool.items():
                    _require_int(value, 0 if key == "padding" else 1, f"{lw}: field 'pool.{key}'")
            if layer.activation is not None and layer.activation not in ACTIVATIONS:
                raise SpecError(f"{lw}: field 'activation' is {layer.activation!r}; expected one of {ACTIVATIONS}")
            if layer.post is not None and (not isinstance(layer.post, dict)
                                           or set(layer.post) - {"kernel", "residual", "activation"}):
                raise SpecError(f"{lw}: field 'post' must be a mapping with 'kernel', 'residual', 'activation', "
                                f"got {layer.post!r}")
            if layer.cell is not None and not isinstance(layer.cell, dict):
                raise SpecError(f"{lw}: field 'cell' must be a mapping with a 'kind' (or a kind's name), got {layer.cell!r}")
            if layer.cell is not None and "kind" not in layer.cell:
                raise SpecError(f"{lw}: field 'cell' needs a 'kind' (e.g. rgc, timedecay, ugrnn, gru, lstm, plain)")
            if layer.cell is not None and (not isinstance(layer.cell["kind"], str) or not layer.cell["kind"]):
                raise SpecError(f"{lw}: field 'cell.kind' must be a cell's name (e.g. rgc, timedecay, ugrnn, gru, lstm), "
                                f"got {layer.cell['kind']!r}")
        seen_edges: Dict[tuple, int] = {}
        for i, edge in enumerate(self.feedback):
            ew = f"{where}: feedback[{i}] {edge.source}->{edge.target}"
            first = seen_edges.setdefault((edge.source, edge.target), i)
            if first != i:
                # the unroll reads one value per source of a target: the second edge replaced the first's delay
                raise SpecError(f"{ew}: a second edge from {edge.source!r} to {edge.target!r} (feedback[{first}] is "
                                f"the first); a layer reads each source once: give one edge per pair")
            for end in (edge.source, edge.target):
                if end not in names:
                    raise SpecError(f"{ew}: edge to a missing layer {end!r} (layers: {', '.join(names)})")
            if not isinstance(edge.delay, int) or isinstance(edge.delay, bool) or edge.delay < 0:
                raise SpecError(f"{ew}: field 'delay' must be an integer >= 0 (time steps), got {edge.delay!r}")
            if edge.projection not in PROJECTIONS:
                raise SpecError(f"{ew}: projection {edge.projection!r}; expected one of {PROJECTIONS}")
            if edge.projection == "identity" and not self.timm_backbone:
                src, tgt = self.layer(edge.source), self.layer(edge.target)
                if src.channels != tgt.channels:
                    raise SpecError(
                        f"{ew}: channel mismatch: identity projection needs equal channels, "
                        f"source has {src.channels}, target has {tgt.channels}"
                    )
        cycle = self.zero_delay_cycle()
        if cycle:
            raise SpecError(f"{where}: cycle with no delay: {' -> '.join(cycle)} (give one of its edges delay >= 1)")

    def zero_delay_cycle(self) -> Optional[List[str]]:
        """A cycle made only of zero-delay edges (it could never be computed), or None."""
        graph: Dict[str, List[str]] = {n: [] for n in self.layer_names}
        for edge in self.feedback:
            if edge.delay == 0:
                graph[edge.source].append(edge.target)
        state: Dict[str, int] = {}
        stack: List[str] = []

        def visit(node: str) -> Optional[List[str]]:
            state[node] = 1
            stack.append(node)
            for nxt in graph[node]:
                if state.get(nxt) == 1:
                    return stack[stack.index(nxt):] + [nxt]
                if nxt not in state:
                    found = visit(nxt)
                    if found:
                        return found
            stack.pop()
            state[node] = 2
            return None

        for node in graph:
            if node not in state:
                found = visit(node)
                if found:
                    return found
        return None

    def image_arrival(self) -> Dict[str, int]:
        """Layer -> the first step whose output depends on the image: the first layer reads the frame at t = 0, a
        layer reads the layer below one step later and a feedback or skip edge's source ``delay`` steps later, so
        this is the shortest path from the image in steps (Bellman-Ford; delays are >= 0, zero-delay cycles are
        refused). Without skip or zero-delay edges layer l (counting from 1) is reached at l - 1."""
        names = self.layer_names
        arrival = {name: (0 if i == 0 else i) for i, name in enumerate(names)}  # the chain alone
        for _ in range(len(names)):
            changed = False
            for i, name in enumerate(names[1:], start=1):
                best = min([arrival[names[i - 1]] + 1]
                           + [arrival[e.source] + e.delay for e in self.feedback if e.target == name])
                if best < arrival[name]:
                    arrival[name], changed = best, True
            if not changed:
                break
        return arrival

    def compute_order(self) -> List[str]:
        """Layers in an order where every zero-delay edge's source comes before its target."""
        order, placed = [], set()
        deps = {n: {e.source for e in self.feedback if e.delay == 0 and e.target == n} for n in self.layer_names}
        while len(order) < len(deps):
            for name in self.layer_names:
                if name not in placed and deps[name] <= placed:
                    order.append(name)
                    placed.add(name)
                    break
        return order

    # ---------------------------------------------------------------- overrides
    def with_overrides(self, **overrides) -> "GraphSpec":
        """A copy with model-level overrides applied (see ``OVERRIDES``)."""
        unknown = set(overrides) - set(OVERRIDES)
        if unknown:
            raise SpecError(
                f"spec {self.name!r}: unknown {plural(len(unknown), 'override')} {sorted(unknown)}"
                f"{did_you_mean(sorted(unknown), OVERRIDES, show=str)}; valid: {', '.join(sorted(OVERRIDES))}"
            )
        data = self.to_dict()
        if overrides.get("wiring") is not None and overrides.get("cell_kind") is None:
            raise SpecError(f"spec {self.name!r}: override wiring={overrides['wiring']!r} says how the cells of "
                            f"cell_kind are wired; give cell_kind too")
        # the cell kind first: the cell configuration and width_multiplier then apply to the new cells
        order = sorted(overrides, key=lambda key: key != "cell_kind")
        for key in order:
            value = overrides[key]
            if value is None or key == "wiring":
                continue
            if key == "width_multiplier":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                    raise SpecError(f"spec {self.name!r}: width_multiplier must be > 0, got {value!r}")
                if data.get("timm_backbone"):
                    data["timm_width"] = data.get("timm_width", 1.0) * value
                for layer in data["layers"]:
                    if layer.get("channels"):
                        layer["channels"] = max(1, int(round(layer["channels"] * value)))
                    layer.pop("in_channels", None)
                    depth = _cell_depth(layer.get("cell"))
                    if depth is not None:
                        layer["cell"]["cell_depth"] = max(1, int(round(depth * value)))
                    if layer.get("cell") and layer["cell"].get("out_depth"):
                        layer["cell"]["out_depth"] = max(1, int(round(layer["cell"]["out_depth"] * value)))
            elif key == "cell":
                if not isinstance(value, Mapping):
                    raise SpecError(f"spec {self.name!r}: override 'cell' must be a mapping of cell config keys "
                                    f"(e.g. {{filter_size: 5}}), got {value!r}; to change the cell type use cell_kind")
                for layer in data["layers"]:
                    if layer.get("cell"):
                        layer["cell"] = {**layer["cell"], **value}
            elif key == "cell_kind":
                from neurozoo.convrnn.wiring import with_cell_kind

                model = with_cell_kind(data, value, overrides.get("wiring"), f"spec {self.name!r}")
                data["description"] = (f"{data.get('description') or self.name}; every cell {value}, wired as in "
                                       f"{self.name if model == 'base' else model}")
            elif key == "feedback":
                if not isinstance(value, (list, tuple)) or not all(isinstance(e, (FeedbackSpec, Mapping)) for e in value):
                    raise SpecError(f"spec {self.name!r}: override 'feedback' must be a list of edges "
                                    f"[{{source: conv8, target: conv5}}, ...], got {value!r}")
                data["feedback"] = [asdict(e) if isinstance(e, FeedbackSpec) else dict(e) for e in value]
            else:
                data[key] = value
        return GraphSpec.from_dict(data, source=f"{self.name} with overrides {sorted(overrides)}")


OVERRIDES = {
    "num_classes": "number of readout classes",
    "n_steps": "number of unrolled steps",
    "image_steps": "steps the image is shown before mean gray",
    "input_channels": "image channels",
    "width_multiplier": "scale every layer's channels (and RGC cell depth)",
    "cell": "mapping merged into every layer's cell config",
    "cell_kind": "give every cell layer this cell kind, wired as the kind's published model with these layers "
                 "(its activation, post block and cell config; ugrnn on rgc_intermediate: ugrnn_intermediate's)",
    "wiring": "with cell_kind: the registered model whose layer wiring the new cells take, or 'base' to keep the "
              "layers as they are (the former behaviour)",
    "feedback": "list of feedback edges replacing the spec's",
    "norm": f"normalisation after each convolution: {NORMS}",
    "blank": "frame after image_steps: a constant in the normalised input space (0.5) or 'mean_gray'",
    "decoder": f"temporal decoder of the logits: {DECODERS}",
    "activation": f"activation after each convolution: {ACTIVATIONS}",
    "name": "model name",
}


def _cell_depth(cell: Optional[Dict[str, Any]]) -> Optional[int]:
    """The cell depth a layer's cell config writes, or its kind's default (the RGC's 64) when it writes none."""
    if not cell:
        return None
    if "cell_depth" in cell:
        return cell["cell_depth"]
    import inspect

    from neurozoo.convrnn.cells import CELLS

    try:
        factory = CELLS.get(cell["kind"]).resolve()
        parameter = inspect.signature(factory).parameters.get("cell_depth")
    except Exception:  # unknown kinds are reported when the model is built
        return None
    return parameter.default if parameter is not None and isinstance(parameter.default, int) else None


def _require_int(value, minimum: int, what: str) -> None:
    """YAML gives ``kernel: "3"`` or ``kernel: 3.0`` as str and float: refuse them here, not as a TypeError later."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _check_keys(raw: Dict[str, Any], cls, source: str, where: str) -> None:
    allowed = set(cls.__dataclass_fields__)
    if cls is GraphSpec:
        allowed |= {"cell_defaults"}
    unknown = set(raw) - allowed
    if unknown:
        raise SpecError(f"{source}: {where} has unknown {plural(len(unknown), 'field')} {sorted(unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}")


def load_spec(source) -> GraphSpec:
    """A GraphSpec from a GraphSpec, a mapping, or a YAML path."""
    if isinstance(source, GraphSpec):
        return source
    if isinstance(source, dict):
        return GraphSpec.from_dict(source)
    if isinstance(source, (str, os.PathLike)):
        return GraphSpec.from_yaml(os.fspath(source))
    raise SpecError(f"cannot read a graph spec from {type(source).__name__}")


def feedback_edges(pairs: Sequence[Sequence[str]]) -> List[Dict[str, Any]]:
    return [{"source": s, "target": t} for s, t in pairs]


def check_decoder_window(spec: GraphSpec, n_steps: int, where: str) -> None:
    """The original reads steps range(decoder_start, n_steps) (models/model_func.py lines 196-205) and stacks them
    (utils/decoders.py temporal_decoder, tf.stack): an empty window crashes there, so it is refused here."""
    first = spec.decoder_first_step
    if first >= n_steps:
        raise SpecError(f"{where}: the {spec.decoder!r} decoder reads steps {first} (its first step) to n_steps - 1, "
                        f"and n_steps={n_steps} leaves none; need n_steps > {first} (or decoder_start < {n_steps})")


def check_image_size(model, image_size: int, option: str = "--image-size") -> None:
    """Refuses images too small for ``model``: one on which some layer's output would have no position (a pool with
    an integer padding, e.g. 3x3 stride 2 padding 0, shrinks a 1 px side to 0), where PyTorch failed mid-run with
    "Output size is too small". ``zoo info``, ``zoo train``, ``zoo dynamics``, ``zoo compare`` and ``zoo score``'s
    imagenet.val (and ``ImageNetBenchmark.score``) check here; a model without a graph spec (a CORnet, whose
    convolutions pad kernel // 2) or with timm stages (which pad) keeps a position at every size."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, GraphSpec) or spec.timm_backbone is not None:
        return
    empty = [name for name, side in spec.layer_sides(image_size).items() if side < 1]
    if empty:
        raise SpecError(f"{option} {image_size}: {spec.name} needs at least {spec.min_image_size()} px (its "
                        f"{empty[0]} output would be 0x0)")


#: GraphSpec fields that name or describe a graph without changing it: a spec file whose description was edited
#: builds the graph its checkpoint was trained as
SPEC_LABELS = ("name", "description")


def spec_graph(spec: Dict[str, Any]) -> Dict[str, Any]:
    """A spec (``GraphSpec.to_dict``) as the graph it builds, for ``--resume``'s check: read back through
    ``GraphSpec.from_dict``, so that a field added after the checkpoint was written takes its default (the
    behaviour of the version that wrote it), and without :data:`SPEC_LABELS`. A spec this version cannot read (a
    later version's field, a plugin's cell not installed) is compared as it is."""
    try:
        spec = GraphSpec.from_dict(copy.deepcopy(spec)).to_dict()
    except (SpecError, TypeError, ValueError):
        pass
    return {key: value for key, value in spec.items() if key not in SPEC_LABELS}


def spec_difference(saved: Dict[str, Any], current: Dict[str, Any], ignore=()) -> Optional[str]:
    """The first difference between the graphs of two specs (:func:`spec_graph`), e.g. "n_steps was 4, is 6" or
    "layer conv3 cell was {...}, is {...}"; None for the same graph. ``ignore``: top-level fields not compared."""
    saved, current = spec_graph(saved), spec_graph(current)
    for key in ignore:
        saved.pop(key, None), current.pop(key, None)
    if saved == current:
        return None
    absent = "(absent)"  # a field one of the two lacks (a spec written by another version)
    differing = next(key for key in sorted(set(saved) | set(current))
                     if saved.get(key, absent) != current.get(key, absent))
    if differing == "layers" and len(saved["layers"]) == len(current["layers"]):
        was, is_now = next((a, b) for a, b in zip(saved["layers"], current["layers"]) if a != b)
        key = next(k for k in sorted(set(was) | set(is_now)) if was.get(k, absent) != is_now.get(k, absent))
        differing, before, now = f"layer {was.get('name')} {key}", was.get(key, absent), is_now.get(key, absent)
    else:
        before, now = saved.get(differing, absent), current.get(differing, absent)
    return f"{differing} was {before!r}, is {now!r}"
