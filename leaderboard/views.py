"""What the pages show, computed from the database: the ranking and one model's scores (shared by the web
app and the static report)."""
from __future__ import annotations

import io
from collections import defaultdict
from typing import Any, Dict, List, Optional

from leaderboard.aggregate import OVERALL, Node, ranking, registry_tree

MISSING_NOTE = ("Scores roll up benchmark -> region -> cortex / retina -> overall as the unweighted mean of the "
                "children that have a score. A missing score is shown as \u2014 and is left out of the mean, never "
                "counted as zero; the coverage (scored / total benchmarks) is shown beside each aggregate.")
HIDDEN_NOTE = ("Image benchmarks are scored on a seeded hidden half of their stimuli; this page shows those "
               "hidden-half scores. Submitters receive only the public-half scores.")


def board(db) -> Dict[str, Any]:
    records = db.leaderboard_records()
    table: Dict[str, Dict[str, Optional[float]]] = defaultdict(dict)
    info: Dict[str, Dict[str, Any]] = {}
    for record in records:
        table[record.model][record.benchmark] = record.value
        info.setdefault(record.model, {"weights": (record.settings or {}).get("weights"),
                                       "family": (record.settings or {}).get("spec_family")})
    scored = sorted({r.benchmark for r in records})
    tree = registry_tree()
    leaves = set(tree.leaves())
    extra = [b for b in scored if b not in leaves]  # scored on a benchmark no longer registered
    if extra:
        tree.children.append(Node("unregistered", [Node(b) for b in extra]))
    columns = [(node.name, depth, node.is_leaf) for node, depth in tree.walk() if node.name != OVERALL]
    rows = ranking(tree, table) if table else []
    for row in rows:
        row.update(info.get(row["model"], {}))
    return {"rows": rows, "columns": columns, "overall": OVERALL, "missing_note": MISSING_NOTE,
            "hidden_note": HIDDEN_NOTE, "n_records": len(records)}


def time_course_svg(per_bin: List[Dict[str, Any]], title: str) -> Optional[str]:
    """Score per 10 ms bin with the ceiling, as an inline SVG (matplotlib, Agg-free SVG backend)."""
    rows = [r for r in per_bin or [] if r.get("time_bin_start") is not None]
    if not rows:
        return None
    from matplotlib.figure import Figure

    x = [(r["time_bin_start"] + r["time_bin_end"]) / 2 for r in rows]
    nan = float("nan")
    value = [r.get("value") if r.get("value") is not None else nan for r in rows]
    ceiling = [r.get("ceiling") if r.get("ceiling") is not None else nan for r in rows]
    figure = Figure(figsize=(5.5, 2.6))
    ax = figure.add_subplot()
    ax.plot(x, value, "o-", color="#1f77b4", label="score (r\u00b2 / ceiling)")
    ax.plot(x, ceiling, "--", color="#777777", label="ceiling (split-half, r\u00b2)")
    ax.set_xlabel("time after stimulus onset (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]


_SVG_CACHE: Dict[Any, Optional[str]] = {}


def cached_svg(record, title: str) -> Optional[str]:
    """Score rows never change once written, so each one's figure is drawn once per process."""
    key = (record.id, record.created_at, title)
    if key not in _SVG_CACHE:
        if len(_SVG_CACHE) > 4096:
            _SVG_CACHE.clear()
        _SVG_CACHE[key] = time_course_svg(record.per_bin, title)
    return _SVG_CACHE[key]


def model_page(db, model: str) -> Optional[Dict[str, Any]]:
    records = [r for r in db.leaderboard_records() if r.model == model]
    if not records:
        return None
    tree = registry_tree()
    nodes = ranking(tree, {model: {r.benchmark: r.value for r in records}})[0]["nodes"]
    scores = []
    for record in sorted(records, key=lambda r: r.benchmark):
        settings = record.settings or {}
        scores.append({"benchmark": record.benchmark, "value": record.value, "error": record.error,
                       "ceiling": record.ceiling, "raw": record.raw,
                       "svg": cached_svg(record, f"{model} on {record.benchmark}"),
                       "figures": settings.get("figures_svg") or {},
                       "provenance": {"code_version": record.code_version, "git_commit": record.git_commit,
                                      "data_sha256": record.data_sha256, "seed": record.seed, "device": record.device,
                                      "duration_s": record.duration_s, "created_at": str(record.created_at),
                                      **settings}})
    weights = (records[0].settings or {}).get("weights")
    return {"model": model, "scores": scores, "weights": weights,
            "aggregates": [(node.name, depth, nodes[node.name]) for node, depth in tree.walk() if not node.is_leaf],
            "missing_note": MISSING_NOTE, "hidden_note": HIDDEN_NOTE}
