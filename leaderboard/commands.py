"""Subcommands owned by the top layer: ``zoo list`` (every registry in one table)."""
from __future__ import annotations

import argparse

from neurozoo.datasets.text_table import format_table


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models, benchmarks and data sets (--kind cells: the ConvRNN "
                                    "cells, a spec's cell kinds)")
    p.add_argument("--kind", choices=["models", "benchmarks", "datasets", "cells", "all"], default="all",
                   help="what to list; cells only when asked, as listing them imports torch (default: all, the "
                        "models, benchmarks and data sets)")
    p.set_defaults(handler=_list)


def registry_rows(kind: str = "all"):
    """(kind, family, name, description) for every registered entry."""
    from neurozoo import convrnn
    from neurozoo import retina
    from neurozoo import benchmarks
    from neurozoo import datasets

    rows = []
    if kind in ("models", "all"):
        for family, registry in (("convrnn", convrnn.MODELS), ("retina", retina.MODELS)):
            rows += [("model", family, e.name, e.description) for e in registry.entries()]
    if kind in ("benchmarks", "all"):
        rows += [("benchmark", e.tags.get("family") or e.tags.get("region", ""), e.name, e.description)
                 for e in benchmarks.BENCHMARKS.entries()]
    if kind in ("datasets", "all"):
        rows += [("dataset", e.tags.get("family", ""), e.name, e.description) for e in datasets.DATASETS.entries()]
        from neurozoo.datasets.synthetic_retina import DESCRIPTIONS  # recordings for `zoo fit --data`, not assemblies

        rows += [("dataset", "retina", f"embedded:{name}", text) for name, text in DESCRIPTIONS.items()]
    if kind == "cells":  # the cell classes are the registry: importing them imports torch
        from neurozoo.convrnn.cells import CELLS

        rows += [("cell", "convrnn", e.name, e.description) for e in CELLS.entries()]
    return rows


def _list(args) -> int:
    rows = registry_rows(args.kind)
    print(format_table(("kind", "family", "name", "description"), rows))
    return 0
