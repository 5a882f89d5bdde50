"""Jinja2 rendering shared by the web app and the static report (templates and assets ship in the package)."""
from __future__ import annotations

import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, Tuple
from urllib.parse import quote

from neurozoo.benchmarks.records import ScoreRecord

HERE = Path(__file__).resolve().parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters.update(first_clause=first_clause, label_parts=label_parts)
    return env


def first_clause(text) -> str:
    """``text`` up to its first ", " or " (": what a table cell shows of a weights or provenance line ("fitted on the
    embedded recordings (seed 0, at most 40 epochs)" -> "fitted on the embedded recordings"); the cell's title holds
    the whole line."""
    text = str(text)
    cuts = [i for i in (text.find(", "), text.find(" (")) if i > 0]
    return text[:min(cuts)] if cuts else text


def label_parts(name: str) -> Tuple[str, str]:
    """A column's name split after its first "." or "/" ("ventral_embedded." + "IT-temporal", "retina/" +
    "phenomena"): the header shows the first part muted and wraps there rather than inside a word."""
    cuts = [i for i in (name.find("."), name.find("/")) if i >= 0]
    cut = min(cuts) + 1 if cuts else 0
    return name[:cut], name[cut:]


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def safe_name(model: str) -> str:
    return quote(model, safe="")


def page_file(model: str) -> str:
    """A model page's file name: the quoted name, or its hash where that would be too long for a file system."""
    name = safe_name(model)
    return name if len(name) <= 200 else "model-" + hashlib.sha256(model.encode()).hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The sha256 of what shapes every page besides the board's rows: templates, assets and the modules that compute
    and aggregate what the pages show. A change of the code renders every page again."""
    digest = hashlib.sha256()
    for path in sorted([*TEMPLATES.iterdir(), *STATIC.iterdir()]) + [HERE / f"{name}.py" for name in
                                                                      ("render", "views", "aggregate")]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def content_key(*parts) -> str:
    """A digest of what a page is made from (dates as text; a score record as its id and date: score rows never change
    once written, ``views.cached_svg``): equal keys, equal pages."""
    plain = lambda o: [o.id, str(o.created_at)] if isinstance(o, ScoreRecord) else str(o)
    return hashlib.sha256(json.dumps([code_digest(), *parts], default=plain, sort_keys=True).encode()).hexdigest()


def model_key(model: str, records, failures, outdated, metadata, ranks) -> str:
    """What ``model``'s page shows (``records``, ``failures``, ``outdated``: its own; ``ranks``: ``views.model_ranks``):
    its rows, submission's metadata, the board's kind of data ranked and tree, its row of the ranking (rank, rank
    group, aggregates), and what the registry says of its scores' benchmarks (the meaning of each raw number). Another
    model's new score changes it only where it moves this model's rank or group."""
    from neurozoo.leaderboard.views import raw_meaning

    ranked, tree, rows = ranks
    row = rows.get(model) or {}
    return content_key("model", model, list(records), list(failures), list(outdated), metadata.get(model), ranked,
                       [(node.name, depth) for node, depth in tree.walk() if not node.is_leaf],
                       [row.get(k) for k in ("rank", "ranked_among", "nodes")],
                       {b: raw_meaning(b) for b in sorted({r.benchmark for r in records})})


def model_keys(records, failures, outdated, metadata, models) -> Tuple[tuple, Dict[str, str]]:
    """(``views.model_ranks`` of ``records``, each of ``models``' :func:`model_key`): the board's score rows, failed
    and outdated jobs grouped by model once, for the static report and the web app alike."""
    from neurozoo.leaderboard.views import model_ranks

    own: Dict[str, Tuple[list, list, list]] = {m: ([], [], []) for m in models}
    for kind, rows in enumerate((records, failures, outdated)):
        for row in rows:
            model = row.model if kind == 0 else row["model"]
            if model in own:
                own[model][kind].append(row)
    ranks = model_ranks(records, models)
    return ranks, {m: model_key(m, *own[m], metadata, ranks) for m in models}


def benchmark_key(benchmark: str, records, outdated, failures, benchmarks) -> str:
    """What ``benchmark``'s page shows: its own records, outdated scores and failed jobs (each any benchmark's, the
    page's filtered here), whether it is registered (``benchmarks``: the board's) and what the registry says of it
    (``views.registry_facts``: description, declared data kind and scale): a plugin's changed description, with no
    code of ours changed, had left its page as it was."""
    from neurozoo.leaderboard.views import registry_facts

    return content_key("benchmark", benchmark, [r for r in records if r.benchmark == benchmark],
                       [j for j in outdated if j["benchmark"] == benchmark],
                       [j for j in failures if j["benchmark"] == benchmark], benchmark in benchmarks,
                       registry_facts(benchmark))


#: a static report's record of each page's :func:`content_key`, so that the next report writes only the pages whose
#: content changed
MANIFEST = ".pages.json"


def write_report(db, folder, everything: bool = False) -> Path:
    """A static copy of the site: ``index.html``, ``models/<model>.html``, ``benchmarks/<benchmark>.html`` and
    ``static/``; returns index.html. Each page is written whole or not at all (renamed into place), index.html last:
    a kill or a full disk part-way leaves every page whole, and the index links only to pages already written. A model
    has a page where the web app serves one (a score, a failed job or an outdated score); a page left from an earlier
    report and not written now (a withdrawn submission's model) is removed after the index.

    Only pages whose content changed are rendered again (``everything``: all): a page whose :func:`model_key` or
    :func:`benchmark_key` equals the one recorded in the folder's :data:`MANIFEST` (written after the index) and whose
    file is there is kept. One new score had rendered every model's page again; now it renders its model's, its
    benchmark's, the index and the pages of the models whose rank or rank group it moved."""
    from neurozoo.datasets.json_files import write_atomic
    from neurozoo.leaderboard.views import benchmark_page, board, model_page

    folder = Path(folder)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    shutil.copytree(STATIC, folder / "static", dirs_exist_ok=True)
    (folder / "benchmarks").mkdir(exist_ok=True)
    (records, outdated), failures, metadata = db.board_scores(), db.failed_jobs(), db.submission_metadata()
    context = board(db, records, metadata, outdated, failures)
    link: Callable[[str], str] = lambda m: f"models/{safe_name(page_file(m))}.html"
    bench_link: Callable[[str], str] = lambda b: f"benchmarks/{safe_name(page_file(b))}.html"
    up = lambda make: (lambda name: "../" + make(name))  # from a page in models/ or benchmarks/
    try:
        recorded = {} if everything else json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        recorded = {}
    # gone until this report is whole: a report cut short part-way renders every page next time, rather than trust a
    # record older than pages it had already rewritten
    (folder / MANIFEST).unlink(missing_ok=True)
    keys: Dict[str, str] = {}

    def changed(path: Path, key: str) -> bool:
        name = path.relative_to(folder).as_posix()
        keys[name] = key
        return recorded.get(name) != key or not path.is_file()

    models = list(dict.fromkeys([row["model"] for row in context["rows"]] + [j["model"] for j in failures + outdated]))
    ranks, page_keys = model_keys(records, failures, outdated, metadata, models)
    written = set()
    for model in models:
        path = folder / "models" / f"{page_file(model)}.html"
        written.add(path)
        if changed(path, page_keys[model]):
            page = model_page(db, model, records, failures, metadata, outdated, ranks=ranks)
            write_atomic(path, render("model.html", static="../static", home="../index.html", model_link=up(link),
                                      benchmark_link=up(bench_link), **page))
    for name in context["benchmarks"]:
        path = folder / "benchmarks" / f"{page_file(name)}.html"
        written.add(path)
        if changed(path, benchmark_key(name, records, outdated, failures, context["benchmarks"])):
            write_atomic(path, render("benchmark.html", static="../static", home="../index.html",
                                      model_link=up(link), benchmark_link=up(bench_link),
                                      **benchmark_page(name, records, outdated, failures)))
    index = write_atomic(folder / "index.html", render("index.html", static="static", home="index.html",
                                                       model_link=link, benchmark_link=bench_link, **context))
    for stale in {*folder.glob("models/*.html"), *folder.glob("benchmarks/*.html")} - written:
        stale.unlink()
    write_atomic(folder / MANIFEST, json.dumps(keys, sort_keys=True))
    return index
