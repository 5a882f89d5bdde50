"""What the pages show, computed from the database: the ranking and one model's scores (shared by the web
app and the static report)."""
from __future__ import annotations

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


def time_course_svg(per_bin: List[Dict[str, Any]], title: str, width: int = 520, height: int = 240) -> Optional[str]:
    """Score per 10 ms bin with the ceiling, as a small hand-written inline SVG (no plotting library at request
    time: a model page stays a few milliseconds)."""
    from html import escape

    rows = [r for r in per_bin or [] if r.get("time_bin_start") is not None]
    if not rows:
        return None
    x = [(r["time_bin_start"] + r["time_bin_end"]) / 2 for r in rows]
    series = {"score (r\u00b2 / ceiling)": ([r.get("value") for r in rows], "#1f77b4", ""),
              "ceiling (split-half, r\u00b2)": ([r.get("ceiling") for r in rows], "#777777", "5,4")}
    values = [v for ys, _, _ in series.values() for v in ys if v is not None]
    if not values:
        return None
    low, high = min(0.0, min(values)), max(1.0, max(values))
    left, right, top, bottom = 48, 12, 24, 36
    sx = lambda v: left + (v - x[0]) / ((x[-1] - x[0]) or 1) * (width - left - right)
    sy = lambda v: top + (high - v) / ((high - low) or 1) * (height - top - bottom)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="11">{escape(title)}</text>',
             f'<line x1="{left}" y1="{sy(low)}" x2="{width - right}" y2="{sy(low)}" stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{sy(low)}" stroke="#333"/>']
    for tick in (0.0, 0.5, high):
        parts.append(f'<text x="{left - 4}" y="{sy(tick) + 3:.1f}" text-anchor="end" font-size="9">{tick:.2g}</text>')
    for value in (x[0], x[len(x) // 2], x[-1]):
        parts.append(f'<text x="{sx(value):.1f}" y="{sy(low) + 12:.1f}" text-anchor="middle" font-size="9">{value:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" text-anchor="middle" font-size="10">'
                 'time after stimulus onset (ms)</text>')
    for i, (label, (ys, color, dash)) in enumerate(series.items()):
        points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(x, ys) if b is not None)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" stroke-dasharray="{dash}" '
                     f'points="{points}"><title>{escape(label)}</title></polyline>')
        parts.append(f'<text x="{width - right - 4}" y="{top + 12 + 12 * i}" text-anchor="end" font-size="9" '
                     f'fill="{color}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


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
