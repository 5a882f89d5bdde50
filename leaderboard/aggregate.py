"""Roll scores up a tree: benchmark -> region (V4, IT, ...) -> family (cortex, retina) -> overall.

Each inner node is the unweighted mean of its children *that have a score*; a child without a score is
missing (``None``), never zero, and a node all of whose children are missing is missing too. Every node
also carries its coverage (scored leaves / leaves), which the pages show next to the value, so a model
scored on fewer benchmarks is visibly so.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from neurozoo.datasets.errors import UserFacingError

OVERALL = "overall"


@dataclass
class Node:
    name: str
    children: List["Node"] = field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def leaves(self) -> List[str]:
        return [self.name] if self.is_leaf else [leaf for c in self.children for leaf in c.leaves()]

    def walk(self, depth: int = 0):
        yield self, depth
        for child in self.children:
            yield from child.walk(depth + 1)


def family_of(tags: Mapping) -> str:
    family = tags.get("family") or ""
    return "retina" if family == "retina" or tags.get("region") == "retina" else "cortex"


class BenchmarkBuildError(UserFacingError):
    """A registered benchmark whose factory raised (an installed plugin whose import fails), remembered per process
    (:func:`built_region`)."""


def benchmark_region(name: str) -> Optional[str]:
    """The region a registered benchmark scores: its ``region`` tag, else (a plugin registered through an entry
    point carries no tags) the benchmark's own ``region``. Without the second, every layer of a submission to a
    plugin benchmark was dropped from its job, which then failed with "the submission names no layer", and the
    board showed the plugin's scores under region "other". The plugin's benchmark is built once per process
    (:func:`built_region`), not on every board and leaderboard page; one that cannot be built raises
    :class:`BenchmarkBuildError`, each time, without building it again."""
    from neurozoo import benchmarks

    entry = benchmarks.BENCHMARKS.get(name)
    if entry.tags.get("region"):
        return entry.tags["region"]
    region, error = built_region(entry.name, entry.factory)
    if error is not None:
        raise BenchmarkBuildError(error)
    return region


@functools.lru_cache(maxsize=None)
def built_region(name: str, factory) -> Tuple[Optional[str], Optional[str]]:
    """``(region, None)``: the ``region`` of the benchmark ``factory()`` builds; ``(None, error)`` for a factory that
    raised, said once, as a warning (the operator's log: its scores are shown under "other" until the process
    restarts). Both are cached per benchmark name and factory (a name registered again with another factory is built
    again; ``built_region.cache_clear()`` forgets all): a broken plugin was imported again on every board build, up to
    three times a page, and said nothing."""
    import warnings

    try:
        return getattr(factory(), "region", None), None
    except Exception as error:  # noqa: BLE001 -- any error of a third party's factory
        line = f"benchmark {name!r} cannot be built ({type(error).__name__}: {error})"
        warnings.warn(f"{line}; its scores are shown under other, and it is not built again until this process "
                      "restarts", stacklevel=2)
        return None, line


def build_tree(benchmarks: Iterable[Tuple[str, Mapping]]) -> Node:
    """``benchmarks``: (name, tags) pairs; tags ``region`` and ``family`` place each leaf."""
    families: Dict[str, Dict[str, List[str]]] = {}
    for name, tags in benchmarks:
        region = tags.get("region") or "other"
        families.setdefault(family_of(tags), {}).setdefault(region, []).append(name)
    root = Node(OVERALL)
    for family in sorted(families):
        family_node = Node(family)
        for region in sorted(families[family]):
            family_node.children.append(Node(f"{family}/{region}", [Node(b) for b in sorted(families[family][region])]))
        root.children.append(family_node)
    return root


def scores_models(entry) -> bool:
    """False for data-only benchmarks (recordings without stimuli, registered with ``data_only=True``), which no
    model can be scored on, and for those that score on the user's own data (``own_data=True``: ``imagenet.val``,
    ``retina_h5.heldout``; ``zoo score --data``), for which a leaderboard job has no data."""
    return not entry.tags.get("data_only") and not entry.tags.get("own_data")


def unscored_reason(entry) -> str:
    """Why no leaderboard job or submission scores a benchmark that :func:`scores_models` refuses."""
    return ("scored on your own data: zoo score --data" if entry.tags.get("own_data")
            else "data-only benchmark (no stimulus images)")


def registry_tree(names: Optional[Iterable[str]] = None) -> Node:
    """The tree of the registered model benchmarks (or of ``names`` among them), each under its
    :func:`benchmark_region`."""
    from neurozoo import benchmarks

    entries = [e for e in benchmarks.BENCHMARKS.entries() if scores_models(e)]
    wanted = None if names is None else set(names)
    return build_tree((e.name, {**e.tags, "region": _shown_region(e.name)}) for e in entries
                      if wanted is None or e.name in wanted)


def _shown_region(name: str) -> Optional[str]:
    """:func:`benchmark_region`, or None ("other") for a plugin that cannot be built: an installed plugin whose import
    fails must not take down every page and ``zoo run``'s report, which never built it before."""
    try:
        return benchmark_region(name)
    except BenchmarkBuildError:
        return None


def aggregate(tree: Node, scores: Mapping[str, Optional[float]]) -> Dict[str, Tuple[Optional[float], int, int]]:
    """node name -> (value or None, scored leaves, leaves) for one model's ``{benchmark: value}``."""
    out: Dict[str, Tuple[Optional[float], int, int]] = {}

    def visit(node: Node) -> Tuple[Optional[float], int, int]:
        if node.is_leaf:
            value = scores.get(node.name)
            result = (value, int(value is not None), 1)
        else:
            parts = [visit(child) for child in node.children]
            present = [v for v, _, _ in parts if v is not None]
            result = (sum(present) / len(present) if present else None,
                      sum(p[1] for p in parts), sum(p[2] for p in parts))
        out[node.name] = result
        return result

    visit(tree)
    return out


def ranking(tree: Node, table: Mapping[str, Mapping[str, Optional[float]]]) -> List[Dict]:
    """Rows sorted by overall score (missing last): {"model", "rank", "nodes": {node: (value, n, of)}}.
    Equal scores share a rank and the next score skips the shared places (1, 1, 3: "standard competition"
    ranking); a model without an overall score has no rank."""
    rows = [{"model": model, "nodes": aggregate(tree, scores)} for model, scores in table.items()]
    rows.sort(key=lambda r: (r["nodes"][OVERALL][0] is None, -(r["nodes"][OVERALL][0] or 0.0), r["model"]))
    previous = None
    for i, row in enumerate(rows, 1):
        value = row["nodes"][OVERALL][0]
        row["rank"] = None if value is None else previous["rank"] if previous and previous["nodes"][OVERALL][0] == value else i
        previous = row
    return rows
