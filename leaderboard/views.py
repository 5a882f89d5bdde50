"""What the pages show, computed from the database: the ranking and one model's scores (shared by the web
app and the static report)."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

from neurozoo.benchmarks.records import in_utc, utc_text
from neurozoo.datasets.cell_names import cell_name
from neurozoo.leaderboard.aggregate import (OVERALL, RAW, Node, competition_ranks, data_kind, on_scale, ranked_kind,
                                            ranking, registry_tree, scale_of, shown)
from neurozoo.leaderboard.scorer import PUBLIC_REASON_CHARS

_MISSING_NOTE = ("Scores roll up benchmark -> region -> cortex / retina -> overall as the unweighted mean of the "
                 "children that have a score. A missing score is shown as {missing} and is left out of the mean, never "
                 "counted as zero; the coverage (scored / total benchmarks) is shown beside each aggregate, and its "
                 "\u00b1 error: the standard error of the mean, propagated from the errors stored with its scores "
                 "(each its spread over cross-validation splits, or a retina fit's bootstrap over cells) as if they "
                 "were independent. They are not by construction: a model's V4 and IT scores are on the same images "
                 "(their hidden halves overlap), its two retina held-out scores on the cells of one circuit, and the "
                 "per-split scores a covariance needs are not kept; so {bound} its upper bound, "
                 "the mean of those errors, which holds whatever their correlation. None where one of them has none.")
MISSING_NOTE = _MISSING_NOTE.format(missing="\u2014", bound="hovering over an error gives")
#: zoo run's printed ranking gives the bound after the error: "0.300 \u00b1 0.025 (\u2264 0.035)", and its table marks a
#: missing score "-" (leaderboard.run.format_ranking)
PRINTED_MISSING_NOTE = _MISSING_NOTE.format(missing="-", bound="\"(\u2264 x)\" after an error gives")
DATA_NOTE = ("Real and synthetic data are never averaged together. Families marked (synthetic) score embedded data: a "
             "teacher network's responses (ventral_embedded.*) or a ground-truth retina circuit's (retina_embedded.*), "
             "sanity checks of the pipeline, not recordings; the others score recordings (cowley2023.V4: macaque V4). "
             "The overall is the mean over {ranked} data only: {note}")
DATA_NOTES = {"real": "the synthetic families are shown beside it, not counted in it.",
              "synthetic": "no score on this board is on real data yet."}
SCALE_NOTE = ("Every mean, the overall too, averages one scale: each benchmark's score as a fraction of its own noise "
              "ceiling (Brain-Score's ceiled score): r\u00b2 / ceiling for the cortex benchmarks, median r / median "
              "oracle r for the retina's held-out responses (their columns here show that fraction; their pages show "
              "r). A benchmark without a ceiling (the retina phenomena: fractions of cells) is shown, its region's "
              "mean in its own units, and left out of every mean above it. A benchmark that does not declare whether "
              "its data are recordings or synthetic stands under \"(undeclared data)\", in no overall.")

RANK_NOTE = ("A rank compares like with like: a model's overall is ranked only against the models scored on the same "
             "benchmarks of the overall (its \"ranked among\" column names them: a whole family, or the family's "
             "benchmarks it is scored on), so a ConvRNN scored on the cortex benchmarks is never ranked against a "
             "retina model scored on the retina's. Each such group is ranked on its own, the widest coverage first. "
             "Brain-Score's leaderboard instead counts a missing score as 0 in its averages; this board does not, "
             "since that would still rank a cortex model against a retina model, each on a part of the benchmarks.")


def overall_label(ranked: str) -> str:
    return f"overall ({ranked} data)"


def data_note(ranked: str) -> str:
    return DATA_NOTE.format(ranked=ranked, note=DATA_NOTES[ranked])


#: the one line above the ranking; the notes it sums up are folded below the table
SUMMARY_NOTE = ("The overall is each model's mean score on {ranked} data, every score a fraction of its benchmark's "
                "noise ceiling; a rank compares only the models scored on the same benchmarks.")


HIDDEN_NOTE = ("Image benchmarks are scored on a hidden half of their stimuli, drawn from this server's secret key (no "
               "seed in the code gives it); this page shows those hidden-half scores. Submitters receive only the "
               "public-half scores.")


def clipped(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


#: the ranking's one-cell summary of a submission's authors and licence
SHORT_AUTHOR_CHARS, SHORT_LICENCE_CHARS = 40, 30


def public_metadata(meta: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """What the pages show of a submission's ``metadata.yaml`` (``db.submission_metadata()``): authors, licence and
    description, each bounded by the intake's own limits (``submission.TEXT_LIMITS``, ``MAX_AUTHORS``,
    ``AUTHOR_CHARS``) again, so a row stored before them stays bounded too, and each with the characters the intake
    refuses now escaped (``submission.shown_text``, by the intake's own rule: control and formatting characters such
    as a right-to-left override, combining marks stacked past ``MAX_COMBINING_MARKS``), so a row stored before that
    rule reorders or covers nothing around it; ``short``: "first author et al. (licence)" for the ranking. The text
    is shown as text (Jinja escapes it). None for a built-in model."""
    from neurozoo.leaderboard.submission import AUTHOR_CHARS, MAX_AUTHORS, MULTILINE, TEXT_LIMITS, shown_text

    if not meta:
        return None
    # clipped as stored, then escaped: clipping the escaped text cut an escape in two
    stored = [clipped(str(a), AUTHOR_CHARS) for a in list(meta.get("authors") or [])[:MAX_AUTHORS + 1]]
    authors = [shown_text(author) for author in stored]
    if len(authors) > MAX_AUTHORS:
        authors[MAX_AUTHORS:] = ["\u2026"]
    stored_licence = clipped(str(meta.get("licence") or ""), TEXT_LIMITS["licence"])
    licence = shown_text(stored_licence)
    first = (shown_text(clipped(stored[0], SHORT_AUTHOR_CHARS)) + (" et al." if len(authors) > 1 else "")
             if authors else "")
    short = " ".join(part for part in (first, f"({shown_text(clipped(stored_licence, SHORT_LICENCE_CHARS))})"
                                       if licence else "") if part)
    return {"authors": authors, "licence": licence, "short": short, "submission": meta.get("submission"),
            "description": shown_text(clipped(str(meta.get("description") or ""), TEXT_LIMITS["description"]),
                                      MULTILINE)}


def board(db, records=None, metadata=None, outdated=None, failures=None) -> Dict[str, Any]:
    """``metadata``: ``db.submission_metadata()``; ``outdated``: ``db.outdated_jobs()``, the scores left off the
    ranking; ``failures``: ``db.failed_jobs()`` (default: each read here)."""
    if records is None and outdated is None:
        records, outdated = db.board_scores()
    records = db.leaderboard_records() if records is None else records
    metadata = db.submission_metadata() if metadata is None else metadata
    outdated = db.outdated_jobs() if outdated is None else outdated
    failed = latest_failures(records, db.failed_jobs() if failures is None else failures)
    table, errors = score_tables(records)
    info: Dict[str, Dict[str, Any]] = {}
    details: Dict[str, Dict[str, str]] = defaultdict(dict)  # each score's error, ceiling, record and date (on hover)
    for record in records:
        details[record.model][record.benchmark] = score_summary(record)
        info.setdefault(record.model, {"weights": public_value((record.settings or {}).get("weights")),
                                       "family": (record.settings or {}).get("spec_family")})
    scored = sorted({r.benchmark for r in records})
    ranked = ranked_kind(scored)
    tree = registry_tree(ranked=ranked)
    leaves = set(tree.leaves())
    extra = [b for b in scored if b not in leaves]  # scored on a benchmark no longer registered
    if extra:  # of data neither real nor synthetic as far as the board knows: in no overall
        tree.children.append(Node("unregistered", [Node(b) for b in extra], pooled=False))
    # a column no model has a score under (a registered benchmark nobody is scored on yet) is left out; its page is
    # still listed (``benchmarks``)
    columns = [(node.name, depth, node.is_leaf) for node, depth in tree.walk()
               if node.name != OVERALL and any(leaf in scored for leaf in node.leaves())]
    rows = ranking(tree, table, errors) if table else []
    for row in rows:
        row.update(info.get(row["model"], {}))
        row["details"] = details.get(row["model"], {})
        row["failed"] = {benchmark: job for (model, benchmark), job in failed.items() if model == row["model"]}
        row["submitted"] = public_metadata(metadata.get(row["model"]))
    return {"rows": rows, "columns": columns, "benchmarks": tree.leaves(),
            "unscored": [b for b in tree.leaves() if b not in scored], "overall": OVERALL, "ranked": ranked,
            "overall_label": overall_label(ranked), "summary_note": SUMMARY_NOTE.format(ranked=ranked),
            "data_note": data_note(ranked), "missing_note": MISSING_NOTE, "scale_note": SCALE_NOTE,
            "rank_note": RANK_NOTE, "hidden_note": HIDDEN_NOTE, "n_records": len(records),
            "outdated": outdated_rows(outdated)}


def latest_failures(records, failures: List[Dict[str, Any]]) -> Dict[tuple, Dict[str, Any]]:
    """(model, benchmark) -> the newest failed job (as :func:`failed_rows` shows it, with ``reason``, its error's last
    line, a submission's public reason, and ``line``, a one-line summary) of a key whose score is shown: a failure that
    no done job has superseded (``db.failed_jobs()``) is newer than that score, which the pages had shown as current
    without comment."""
    shown_keys = {(r.model, r.benchmark) for r in records}
    out = {}
    for job in failed_rows([j for j in failures if (j["model"], j["benchmark"]) in shown_keys]):
        job["reason"] = (job["error"].strip().splitlines() or [""])[-1]
        job["line"] = (f"the latest run failed (job {job['job']}, {job['when']}): {job['reason']}; the score shown is "
                       "the one before it")
        out[(job["model"], job["benchmark"])] = job
    return out


def score_tables(records):
    """``({model: {benchmark: value}}, {model: {benchmark: error}})`` of ``records`` as the ranking averages them
    (:func:`shown_score`): what :func:`aggregate.ranking` takes."""
    table: Dict[str, Dict[str, Optional[float]]] = defaultdict(dict)
    errors: Dict[str, Dict[str, Optional[float]]] = defaultdict(dict)
    for record in records:
        table[record.model][record.benchmark], errors[record.model][record.benchmark] = shown_score(record)
    return table, errors


def shown_score(record):
    """``(value, error)`` of a score as the ranking shows and averages it: a fraction of its benchmark's ceiling
    (:func:`aggregate.on_scale`), or as stored for a benchmark without one."""
    scaled = on_scale(record.benchmark, record.value, record.error, record.ceiling)
    return (record.value, record.error) if scaled is None else scaled


def when_utc(moment) -> str:
    """A time on the pages: UTC to the minute (:func:`benchmarks.records.utc_text`) and said so; ``unknown`` for none
    (a record not stored, a job never updated)."""
    return "unknown" if moment is None else f"{utc_text(moment, 'minute')} UTC"


def score_summary(record) -> str:
    """One score whole, as a ranking cell shows it on hover: value, error, ceiling, record and date (and, for a raw
    score the ranking shows divided by its ceiling, that fraction first)."""
    ceiled = f"{_number(shown_score(record)[0])} of its ceiling: " if scale_of(record.benchmark) == RAW else ""
    return (f"{ceiled}{_number(record.value)} \u00b1 {_number(record.error)}, ceiling {_number(record.ceiling)}; "
            f"record {record.id}, scored {when_utc(record.created_at)}")


def outdated_rows(outdated: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The scores left off the ranking as outdated (``db.outdated_jobs()``): model, benchmark, job, when, why, and what
    scores it again."""
    return [{"model": job["model"], "benchmark": job["benchmark"], "job": job["id"],
             "submission": job.get("submission_id"), "reason": job["reason"],
             "when": when_utc(job.get("updated_at")),
             "again": ("zoo work --rescore-outdated" if job.get("submission_id") is not None
                       else "zoo run with the settings that scored it")} for job in outdated]


def time_course_svg(per_bin: List[Dict[str, Any]], title: str, width: int = 680, height: int = 240) -> Optional[str]:
    """Score per 10 ms bin with its error bar, and the ceiling; each bin's point shows its values on hover."""
    rows = [r for r in per_bin or [] if r.get("time_bin_start") is not None]
    if not rows:
        return None
    x = [(r["time_bin_start"] + r["time_bin_end"]) / 2 for r in rows]
    tips = [f"{r['time_bin_start']:g}-{r['time_bin_end']:g} ms: score {_number(r.get('value'))}"
            + (f" \u00b1 {_number(r['error'])}" if r.get("error") is not None else "")
            + f", ceiling {_number(r.get('ceiling'))}, raw r {_number(r.get('raw'))}" for r in rows]
    series = [("score (r\u00b2 / ceiling) \u00b1 error", x, [r.get("value") for r in rows], "#1f77b4", "",
               [r.get("error") for r in rows], tips),
              ("ceiling (split-half, r\u00b2)", x, [r.get("ceiling") for r in rows], "#777777", "5,4")]
    return line_chart_svg(series, title, "time after stimulus onset (ms)", y_label="score; ceiling (r\u00b2)",
                          y_range=(0.0, 1.0), width=width, height=height, legend_width=160)  # legend beside the lines


def _number(value) -> str:
    return "\u2014" if value is None else f"{value:.3f}"


def _slope(value) -> str:
    """An OSR slope as the figure legend shows it; a cell without a response to time has none (null)."""
    return "none (no response)" if value is None else f"{value:.2f}"


OSR_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def osr_svg(settings: Dict[str, Any], title: str, width: int = 700, height: int = 260) -> Optional[str]:
    """The OSR figure: peak latency after the last flash against flash period, per ground-truth OSR cell,
    the model (solid) next to the ground-truth circuit (dashed), from the summaries the OSR benchmark stores."""
    model, truth = settings.get("model_osr"), settings.get("truth_osr")
    if not model or not truth or not truth.get("periods"):
        return None
    periods = [10 * p for p in truth["periods"]]
    cells = [i for i, shows in enumerate(truth.get("is_osr", [])) if shows] or list(range(len(truth["latencies"])))
    series = []
    for n, cell in enumerate(cells[:len(OSR_COLORS)]):
        color = OSR_COLORS[n]
        series.append((f"{cell_name(cell)} model (slope {_slope(model['slope'][cell])})", periods,
                       [None if v is None else 10 * v for v in model["latencies"][cell]], color, ""))
        series.append((f"{cell_name(cell)} ground truth (slope {_slope(truth['slope'][cell])})", periods,
                       [None if v is None else 10 * v for v in truth["latencies"][cell]], color, "5,4"))
    return line_chart_svg(series, title, "flash period (ms)", y_label="response latency after last flash (ms)",
                          width=width, height=height, legend_width=200)


def mechanism_svg(settings: Dict[str, Any], title: str, width: int = 620, height: int = 240) -> Optional[str]:
    """The mechanism-recovery figure: per first-layer channel, its correlation with the ground truth's ON and OFF
    pathways, and the share of the ground truth's OSR cells whose top units (attribution after the omission)
    include it, from what ``retina_embedded.osr-mechanism`` stores."""
    mechanism = settings.get("mechanism") or {}
    channels, cells = mechanism.get("channels") or {}, mechanism.get("cells") or []
    if not channels.get("r_on") or not cells:
        return None
    x = list(range(len(channels["r_on"])))
    share = [sum(c in row["top_units"] for row in cells) / len(cells) for c in x]
    series = [("r with ON pathway", x, channels["r_on"], OSR_COLORS[0], ""),
              ("r with OFF pathway", x, channels["r_off"], OSR_COLORS[1], ""),
              ("share of OSR cells ranking it top", x, share, "#333333", "5,4")]
    return line_chart_svg(series, title, "first-layer channel", y_label="r; share of cells", y_range=(0.0, 1.0),
                          width=width, height=height, legend_width=170, integer_x=True)


def index_svg(settings: Dict[str, Any], title: str, width: int = 620, height: int = 240) -> Optional[str]:
    """The phenomenon figure (contrast adaptation, OMS, paired flash, frequency doubling): each cell's index, the
    model (solid) next to the ground-truth circuit (dashed), from the per-cell index lists the phenomenon benchmarks
    store."""
    model, truth = settings.get("model_index"), settings.get("truth_index")
    if not model or not truth:
        return None
    cells = list(range(1, len(truth) + 1))  # numbered as the tables name them: cell01 is 1
    series = [(name, cells, values, color, dash, None, [f"{cell_name(c - 1)}: {name} {_number(v)}"
                                                        for c, v in zip(cells, values)])
              for name, values, color, dash in (("model", model, OSR_COLORS[0], ""),
                                                ("ground truth", truth, OSR_COLORS[1], "5,4"))]
    label = {"contrast-adaptation": "adaptation index", "oms": "OMS index", "paired-flash": "depression index",
             "frequency-doubling": "log2 F2/F1"}.get(settings.get("phenomenon"), "index")
    return line_chart_svg(series, title, "cell", y_label=label, y_range=(0.0, 0.0), width=width, height=height,
                          legend_width=90, integer_x=True)


def heldout_svg(per_bin: List[Dict[str, Any]], title: str, width: int = 620, height: int = 240) -> Optional[str]:
    """The held-out figure of a retina fit: each cell's held-out correlation (model) next to its oracle
    correlation (the repeat-to-repeat reliability the median is compared with), from the per-cell rows the
    held-out benchmarks store; hovering a point names the cell and whether it passes the explainable-variance
    cut."""
    rows = [r for r in per_bin or [] if r.get("correlation") is not None or r.get("oracle") is not None]
    if not rows or not all("oracle" in r for r in rows):
        return None
    cells = list(range(1, len(rows) + 1))
    note = lambda r: "" if r.get("passes", True) else " (fails the explainable-variance cut: left out)"
    series = [("model held-out r", cells, [r.get("correlation") for r in rows], OSR_COLORS[0], "", None,
               [f"{r.get('cell')}: model r {_number(r.get('correlation'))}{note(r)}" for r in rows]),
              ("oracle r (repeat reliability)", cells, [r.get("oracle") for r in rows], "#777777", "5,4", None,
               [f"{r.get('cell')}: oracle r {_number(r.get('oracle'))}" for r in rows])]
    return line_chart_svg(series, title, "cell", y_label="correlation r", y_range=(0.0, 1.0), width=width,
                          height=height, legend_width=150, integer_x=True)


def ticks(low: float, high: float, integer: bool = False) -> List[float]:
    """At most about five round tick values within [low, high] (matplotlib's MaxNLocator: 0.2, 0.4, ... rather
    than the ends and the middle)."""
    from matplotlib.ticker import MaxNLocator

    if high <= low:
        return [low]
    values = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], integer=integer).tick_values(low, high)
    span = (high - low) * 1e-9
    return [float(v) + 0.0 for v in values if low - span <= v <= high + span]


def _segments(x, ys):
    """Runs of consecutive points with a value: a missing value (None) breaks the line."""
    run = []
    for a, b in zip(x, ys):
        if b is None:
            if run:
                yield run
            run = []
        else:
            run.append((a, b))
    if run:
        yield run


def line_chart_svg(series, title: str, x_label: str, y_label: str = "", y_range=None, width: int = 520,
                   height: int = 240, legend_width: int = 0, integer_x: bool = False) -> Optional[str]:
    """Lines ``(label, x, y, color, dash[, errors, tips])`` as a small hand-written inline SVG (no figure drawn by a
    plotting library at request time, only matplotlib's tick locator: a model page stays a few milliseconds). ``None`` values are gaps; ``y_range`` is widened to fit.
    ``errors``: a bar of +- that much at each point; ``tips``: each point's text on hover (points are drawn then).
    ``legend_width``: a column that wide right of the plot holds the legend (default: inside, top right).
    ``integer_x``: the x values are indices (cells, channels): integer ticks that include the first one."""
    from html import escape

    from neurozoo.retina.phenomena.figures import index_ticks

    xs = [a for s in series for a in s[1]]
    values = [v for s in series for v in s[2] if v is not None]
    values += [v + sign * e for s in series if len(s) > 5 and s[5] for v, e in zip(s[2], s[5]) if v is not None and e
               for sign in (-1, 1)]
    if not values or not xs:
        return None
    low, high = min(values), max(values)
    if y_range is not None:
        low, high = min(y_range[0], low), max(y_range[1], high)
    x0, x1 = min(xs), max(xs)
    left, right, top, bottom = 52, 12 + legend_width, 24, 36
    sx = lambda v: left + (v - x0) / ((x1 - x0) or 1) * (width - left - right)
    sy = lambda v: top + (high - v) / ((high - low) or 1) * (height - top - bottom)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="11">{escape(title)}</text>',
             f'<line x1="{left}" y1="{sy(low)}" x2="{width - right}" y2="{sy(low)}" stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{sy(low)}" stroke="#333"/>']
    for tick in ticks(low, high):
        parts.append(f'<line x1="{left - 3}" y1="{sy(tick):.1f}" x2="{left}" y2="{sy(tick):.1f}" stroke="#333"/>'
                     f'<text x="{left - 5}" y="{sy(tick) + 3:.1f}" text-anchor="end" font-size="9">{tick:g}</text>')
    if low < 0 < high:
        parts.append(f'<line x1="{left}" y1="{sy(0):.1f}" x2="{width - right}" y2="{sy(0):.1f}" stroke="#bbb" '
                     f'stroke-width="0.8"/>')
    for value in (index_ticks(x0, x1) if integer_x else ticks(x0, x1)):
        parts.append(f'<line x1="{sx(value):.1f}" y1="{sy(low):.1f}" x2="{sx(value):.1f}" y2="{sy(low) + 3:.1f}" '
                     f'stroke="#333"/><text x="{sx(value):.1f}" y="{sy(low) + 13:.1f}" text-anchor="middle" '
                     f'font-size="9">{value:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" text-anchor="middle" font-size="10">'
                 f'{escape(x_label)}</text>')
    if y_label:
        parts.append(f'<text x="10" y="{(top + sy(low)) / 2:.1f}" text-anchor="middle" font-size="9" '
                     f'transform="rotate(-90 10 {(top + sy(low)) / 2:.1f})">{escape(y_label)}</text>')
    for i, (label, x, ys, color, dash, *rest) in enumerate(series):
        errors, tips = (rest + [None, None])[:2]
        for run in _segments(x, ys):
            points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in run)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" stroke-dasharray="{dash}" '
                         f'points="{points}"><title>{escape(label)}</title></polyline>')
        for k, (a, b) in enumerate(zip(x, ys)):
            if b is None:
                continue
            if errors and errors[k]:
                parts.append(f'<line class="error-bar" x1="{sx(a):.1f}" y1="{sy(b - errors[k]):.1f}" x2="{sx(a):.1f}" '
                             f'y2="{sy(b + errors[k]):.1f}" stroke="{color}" stroke-width="1"/>')
            if tips:
                parts.append(f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="2.5" fill="{color}">'
                             f'<title>{escape(tips[k])}</title></circle>')
        anchor, legend_x = ("start", width - right + 10) if legend_width else ("end", width - right - 4)
        parts.append(f'<text x="{legend_x}" y="{top + 12 + 11 * i}" text-anchor="{anchor}" font-size="9" '
                     f'fill="{color}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_SVG_CACHE: Dict[Any, Optional[str]] = {}


def cached_svg(record, title: str, draw=None) -> Optional[str]:
    """Score rows never change once written, so each one's figure is drawn once per process.
    ``draw(record, title)``: the figure (default: the per-bin time course)."""
    draw = draw or (lambda r, t: time_course_svg(r.per_bin, t))
    key = (record.id, record.created_at, title)
    if key not in _SVG_CACHE:
        if len(_SVG_CACHE) > 4096:
            _SVG_CACHE.clear()
        _SVG_CACHE[key] = draw(record, title)
    return _SVG_CACHE[key]


def figures(record, model: str) -> Dict[str, str]:
    """Extra figures of a score row besides its time course: the OSR figure for OSR benchmarks, the per-cell
    index for the other phenomenon benchmarks."""
    svg = cached_svg(record, f"{model}: held-out correlation per cell", lambda r, t: heldout_svg(r.per_bin, t))
    if svg:
        return {"held-out correlation per cell (model solid, oracle dashed)": svg}
    svg = cached_svg(record, f"{model}: omitted-stimulus response", lambda r, t: osr_svg(r.settings or {}, t))
    if svg:
        return {"latency vs flash period (model solid, ground truth dashed)": svg}
    svg = cached_svg(record, f"{model}: OSR mechanism recovery", lambda r, t: mechanism_svg(r.settings or {}, t))
    if svg:
        return {"first-layer units vs the ground truth's ON and OFF pathways": svg}
    svg = cached_svg(record, f"{model}: {(record.settings or {}).get('phenomenon', '')} index per cell",
                     lambda r, t: index_svg(r.settings or {}, t))
    return {"index per cell (model solid, ground truth dashed)": svg} if svg else {}


RAW_MEANINGS = {  # by the module of the benchmark's factory (and its name for the two OSR benchmarks)
    "neurozoo.benchmarks.registered": "Pearson r before the ceiling normalisation, mean over the time bins the "
                                      "score uses (ceiling above 0)",
    "osr": "fraction of the ground truth's OSR cells in which the model shows an OSR",
    "osr-mechanism": "fraction of the OSR cells whose reduced model (its top 2 first-layer units) keeps the OSR",
    "neurozoo.benchmarks.phenomena": "fraction of cells whose model index has the ground truth's sign (an index "
                                     "within 1e-6 of 0, float32 rounding, has none)",
}


def raw_meaning(benchmark: str) -> Optional[str]:
    """What the ``raw`` number of a benchmark's score is: Pearson r for the neural benchmarks, a fraction of
    cells for the retina phenomena (the pages said "raw r" for all of them)."""
    from neurozoo import benchmarks

    if benchmark not in benchmarks.BENCHMARKS:
        return None
    module = getattr(benchmarks.BENCHMARKS.get(benchmark).factory, "__module__", "")
    if module == "neurozoo.benchmarks.osr":
        return RAW_MEANINGS["osr-mechanism" if benchmark.endswith("osr-mechanism") else "osr"]
    return RAW_MEANINGS.get(module)


ERROR_LINES = 8  # the last lines of a failed job's error a page shows (the traceback's end says why)


#: an absolute POSIX path of at least two components, not part of a URL or a relative path (``a/b``, ``http://h/x``)
HOST_PATH = re.compile(r"(?<![\w.~/-])/(?:[^\s/\"'<>():,;]+/)+[^\s/\"'<>():,;]*")


#: a setting that is one absolute path of at least two components (spaces allowed), alone or after one word
WHOLE_PATH = re.compile(r"(?P<word>[A-Za-z_]+ )?(?P<path>/[^\n/]+/[^\n]*)\Z")


def _shortened(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f".../{name}" if "." in name.strip(".") else "<host path>"


def without_host_paths(text: str) -> str:
    """``text`` for the public pages: each absolute host path (a traceback's ``/home/...``, a submission's folder)
    shortened to its file name (``.../model.py``), or to ``<host path>`` when it names a folder (the settings of a
    score too: :func:`public_settings`)."""
    return HOST_PATH.sub(lambda match: _shortened(match.group(0)), text)


def public_value(value):
    """A setting as the public pages and API show it: every string in it (keys too, at any depth) without host
    paths (:func:`without_host_paths`); a string that is one absolute path, alone or after one word (``weights``:
    ``checkpoint /home/...``), is shortened whole, so that a path with a space in it (``/home/a/my runs/c.pt``) does
    not leave its end behind."""
    if isinstance(value, str):
        whole = WHOLE_PATH.match(value)
        return (whole["word"] or "") + _shortened(whole["path"]) if whole else without_host_paths(value)
    if isinstance(value, dict):
        return {public_value(key): public_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(item) for item in value]
    return value


def public_settings(settings: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A record's settings as the public pages and API show them. Settings name files and folders of the host that
    scored: ``weights`` ("checkpoint /home/..."), ``checkpoint``, a zoo dynamics / zoo compare record's
    ``arguments``, and any benchmark's own (a data or cache folder); each is shortened as a failed job's error is.
    The ``rerun`` spec (a job's whole spec: a submission's folder, a checkpoint's path) is left out: zoo reproduce
    reads it from the database, by record id."""
    return {key: public_value(value) for key, value in (settings or {}).items() if key != "rerun"}


#: a submission's failed job stored before the scorer kept a public reason: its error is untrusted text, not shown
NO_PUBLIC_REASON = ("failed (this job's reason was stored before the board kept one it can show; the submitter and "
                    "the operator see the whole error)")


def failed_rows(failures: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A model's failed jobs as the public pages show them: job, benchmark, when, and why, with host paths shortened
    (:func:`without_host_paths`). A built-in model's job (trusted code) shows the last lines of its error; a
    submission's job only the scorer's one-line reason (``public_reason``): its error holds the submitted model's
    console output, text anyone with a token could write onto the public page. The submitter's
    ``/api/submissions/{id}`` and the operator's ``zoo submission ID`` show the error whole. The reason may name a
    layer of the submission's ``metadata.yaml``: one stored before the intake's character rules is shown with what they
    refuse escaped (``submission.shown_text``), as the metadata's text fields are (:func:`public_metadata`)."""
    from neurozoo.leaderboard.submission import shown_text

    rows = []
    for job in sorted(failures, key=lambda j: (j["benchmark"], j["id"])):
        if job.get("submission_id") is not None:
            reason = without_host_paths(job.get("public_reason") or NO_PUBLIC_REASON).strip().splitlines()[0]
            lines = [shown_text(reason[:PUBLIC_REASON_CHARS])]
        else:
            lines = without_host_paths(job.get("error") or "no error message was kept").rstrip().splitlines()
        when = job.get("updated_at")
        rows.append({"job": job["id"], "submission": job.get("submission_id"), "model": job["model"],
                     "benchmark": job["benchmark"],
                     "when": when_utc(when),
                     "error": "\n".join(lines[-ERROR_LINES:]), "cut": max(0, len(lines) - ERROR_LINES)})
    return rows


def model_ranks(records, models=()) -> Tuple[str, Node, Dict[str, Dict[str, Any]]]:
    """(the kind of data ranked, the tree, {model: its row of the whole board's ranking}) for the model pages: a
    page's rank, rank group and aggregates. ``models``: those with a page but no score (a row without a rank)."""
    ranked = ranked_kind({r.benchmark for r in records})  # the board's, so a page's overall is the ranking's
    table, errors = score_tables(records)
    for model in models:
        table.setdefault(model, {})
    tree = registry_tree(ranked=ranked)
    return ranked, tree, {row["model"]: row for row in ranking(tree, table, errors)}


def model_page(db, model: str, records=None, failures=None, metadata=None, outdated=None,
               ranks=None) -> Optional[Dict[str, Any]]:
    """``failures``: the failed jobs (``db.failed_jobs()``, any model's); ``metadata``: the submissions'
    (``db.submission_metadata()``); ``outdated``: the scores left off the ranking (``db.outdated_jobs()``, any model's;
    each default: read here); ``ranks``: :func:`model_ranks` of ``records`` with ``model`` among them (default: made
    here; a caller with many pages makes it once, where each page had ranked the whole board again)."""
    if records is None and outdated is None:
        records, outdated = db.board_scores()
    metadata = db.submission_metadata() if metadata is None else metadata
    records = db.leaderboard_records() if records is None else records
    ranked, tree, rows = ranks if ranks is not None and model in ranks[2] else model_ranks(records, [model])
    row = rows[model]
    records = [r for r in records if r.model == model]
    failures = [j for j in (db.failed_jobs() if failures is None else failures) if j["model"] == model]
    outdated = [j for j in (db.outdated_jobs() if outdated is None else outdated) if j["model"] == model]
    if not records and not failures and not outdated:
        return None
    nodes = row["nodes"]
    scores, failed = [], latest_failures(records, failures)
    for record in sorted(records, key=lambda r: r.benchmark):
        settings = record.settings or {}
        scores.append({"benchmark": record.benchmark, "value": record.value, "error": record.error,
                       "failed": failed.get((model, record.benchmark)),
                       "ceiling": record.ceiling, "raw": record.raw, "raw_meaning": raw_meaning(record.benchmark),
                       "svg": cached_svg(record, f"{model} on {record.benchmark}"),
                       "figures": figures(record, model),
                       "provenance": {"record": record.id, "code_version": record.code_version,
                                      "git_commit": record.git_commit, "data_sha256": record.data_sha256,
                                      "seed": record.seed, "device": record.device, "duration_s": record.duration_s,
                                      "created_at": None if record.created_at is None else
                                      str(in_utc(record.created_at)), **public_settings(settings)}})
    weights = public_value((records[0].settings or {}).get("weights")) if records else None
    return {"model": model, "scores": scores, "weights": weights, "failures": failed_rows(failures),
            "outdated": outdated_rows(outdated), "rank": row["rank"], "ranked_among": row["ranked_among"],
            "submitted": public_metadata(metadata.get(model)),
            "aggregates": [(overall_label(ranked) if node.name == OVERALL else node.name, depth, nodes[node.name])
                           for node, depth in tree.walk() if not node.is_leaf],
            "data_note": data_note(ranked), "missing_note": MISSING_NOTE, "scale_note": SCALE_NOTE,
            "rank_note": RANK_NOTE, "hidden_note": HIDDEN_NOTE}


def registered_benchmarks() -> set:
    """The benchmarks a model can be scored on (data-only ones are not)."""
    return set(registry_tree().leaves())


BENCHMARK_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                    "#bcbd22", "#17becf")


DATA_KINDS = {"synthetic": "synthetic: embedded data, a teacher network's or a ground-truth circuit's responses, not "
                            "recordings (a sanity check)",
              "real": "real: recordings",
              "undeclared": "undeclared: the benchmark does not say whether its data are recordings or synthetic (its "
                            "tag or attribute embedded), so its scores are in no overall"}


def has_benchmark_page(benchmark: str, records, outdated=()) -> bool:
    """Whether ``benchmark`` has a page: registered, or scored (``records``; ``outdated``: its outdated scores)."""
    return (benchmark in registered_benchmarks() or any(r.benchmark == benchmark for r in records)
            or any(job["benchmark"] == benchmark for job in outdated))


def benchmark_page(benchmark: str, records, outdated=(), failures=()) -> Optional[Dict[str, Any]]:
    """Every model's score on one benchmark, best first (equal scores share a rank, a missing score has none),
    with error, ceiling, raw r and provenance, and the time courses of the (up to ten) best models in one figure;
    ``outdated`` (``db.outdated_jobs()``, any benchmark's) gives its outdated scores, listed apart as on the ranking;
    ``failures`` (``db.failed_jobs()``) marks a score whose model's latest run on it failed (:func:`latest_failures`).
    None when the benchmark is neither registered nor scored."""
    if not has_benchmark_page(benchmark, records, outdated):
        return None
    records = [r for r in records if r.benchmark == benchmark]
    outdated = [job for job in outdated if job["benchmark"] == benchmark]
    failed = latest_failures(records, [job for job in failures if job["benchmark"] == benchmark])
    facts = registry_facts(benchmark)
    records.sort(key=lambda r: (r.value is None, -(shown(r.value) or 0.0), r.model))
    rows = []
    for record, rank in zip(records, competition_ranks([r.value for r in records])):
        rows.append({"rank": rank, "model": record.model, "value": record.value, "error": record.error,
                     "failed": failed.get((record.model, benchmark)), "record": record.id,
                     "ceiling": record.ceiling, "raw": record.raw,
                     "weights": public_value((record.settings or {}).get("weights")),
                     "scored": when_utc(record.created_at),
                     "provenance": f"record {record.id}, code {record.code_version or 'unknown'}, data sha256 "
                                   f"{(record.data_sha256 or 'unknown')[:12]}, seed "
                                   f"{'unknown' if record.seed is None else record.seed}, scored "
                                   f"{when_utc(record.created_at)}"})
    timed = [r for r in records if r.value is not None and any(b.get("time_bin_start") is not None
                                                                for b in r.per_bin or [])][:len(BENCHMARK_COLORS)]
    series = []
    for record, color in zip(timed, BENCHMARK_COLORS):
        bins = [b for b in record.per_bin if b.get("time_bin_start") is not None]
        x = [(b["time_bin_start"] + b["time_bin_end"]) / 2 for b in bins]
        series.append((record.model, x, [b.get("value") for b in bins], color, "", None,
                       [f"{record.model}, {b['time_bin_start']:g}-{b['time_bin_end']:g} ms: score "
                        f"{_number(b.get('value'))}" for b in bins]))
    svg = line_chart_svg(series, f"{benchmark}: score over time", "time after stimulus onset (ms)",
                         y_label="score (r\u00b2 / ceiling)", y_range=(0.0, 1.0), width=720, height=260,
                         legend_width=180) if series else None
    return {"benchmark": benchmark, **{k: facts[k] for k in ("description", "data", "raw_meaning", "hidden_note")},
            "rows": rows, "svg": svg, "n_timed": len(timed), "outdated": outdated_rows(outdated)}


def registry_facts(benchmark: str) -> Dict[str, Any]:
    """What a benchmark's page shows from the registry, not from its scores: its description, declared data kind
    (``data``; both None for a benchmark no longer registered), the meaning of its raw number, whether its scores are
    on a hidden half, and its declared ``scale`` (how its ceiling enters the means). ``render.benchmark_key`` keys the
    page on them, so that a plugin's new description (no code of ours changed) renders its page again."""
    from neurozoo import benchmarks
    from neurozoo.leaderboard.zoo import benchmark_family

    registered = benchmark in registered_benchmarks()
    entry = benchmarks.BENCHMARKS.get(benchmark) if registered else None
    # the hidden half is the image benchmarks' (a retina benchmark's page said its scores were on one)
    retina = registered and benchmark_family(benchmark) == "retina"
    return {"description": entry.description if entry else None,
            "data": DATA_KINDS[data_kind(entry)] if entry else None, "raw_meaning": raw_meaning(benchmark),
            "hidden_note": "" if retina else HIDDEN_NOTE, "scale": scale_of(benchmark) if entry else None}
