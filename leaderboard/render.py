"""Jinja2 rendering shared by the web app and the static report (templates and assets ship in the package)."""
from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Callable, Tuple
from urllib.parse import quote

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
    import hashlib

    name = safe_name(model)
    return name if len(name) <= 200 else "model-" + hashlib.sha256(model.encode()).hexdigest()


def write_report(db, folder) -> Path:
    """A static copy of the site: ``index.html``, ``models/<model>.html``, ``benchmarks/<benchmark>.html`` and
    ``static/``; returns index.html. Each page is written whole or not at all (renamed into place), index.html last:
    a kill or a full disk part-way leaves every page whole, and the index links only to pages already written. A model
    has a page where the web app serves one (a score, a failed job or an outdated score); a page left from an earlier
    report and not written now (a withdrawn submission's model) is removed after the index."""
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
    written = set()
    for model in dict.fromkeys([row["model"] for row in context["rows"]] + [j["model"] for j in failures + outdated]):
        page = model_page(db, model, records, failures, metadata, outdated)
        written.add(write_atomic(folder / "models" / f"{page_file(model)}.html",
                                 render("model.html", static="../static", home="../index.html", model_link=up(link),
                                        benchmark_link=up(bench_link), **page)))
    for name in context["benchmarks"]:
        written.add(write_atomic(folder / "benchmarks" / f"{page_file(name)}.html",
                                 render("benchmark.html", static="../static", home="../index.html",
                                        model_link=up(link), benchmark_link=up(bench_link),
                                        **benchmark_page(name, records, outdated, failures))))
    index = write_atomic(folder / "index.html", render("index.html", static="static", home="index.html",
                                                       model_link=link, benchmark_link=bench_link, **context))
    for stale in {*folder.glob("models/*.html"), *folder.glob("benchmarks/*.html")} - written:
        stale.unlink()
    return index
