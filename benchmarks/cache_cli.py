"""``zoo cache [info]`` and ``zoo cache clear``: what ``$NEUROZOO_CACHE`` holds, and the removal of what the harness
makes again by itself (:mod:`benchmarks.cache_contents`)."""
from __future__ import annotations

import argparse

from neurozoo.datasets.cli_args import ShowDefaultsRaw, non_negative

CLEAR_EPILOG = """examples:
  zoo cache clear --partial --dry-run     what would go, nothing removed
  zoo cache clear --partial               the partial entries of stopped extractions
  zoo cache clear --other-homes --older-than 30
  zoo cache clear --all

An entry an extraction or a fit is using (it holds the entry's lock) is kept and named; the exit status is then 1
(0: all removed, 2: an error). What is removed is made again by the next run that needs it, to the same features."""


def add_commands(sub) -> None:
    cache = sub.add_parser("cache", help="the cache ($NEUROZOO_CACHE): info on what it holds (the default), clear "
                                         "activation entries and retina fits no process is using",
                           description="What $NEUROZOO_CACHE holds, by kind (zoo cache, zoo cache info), and the "
                                       "removal of what the harness makes again by itself (zoo cache clear).")
    cache.set_defaults(handler=_info)
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION")
    info = actions.add_parser("info", help="each kind's entries, size and folder, and the option that clears it "
                                           "(the default action)")
    info.set_defaults(handler=_info)
    clear = actions.add_parser("clear", help="remove activation entries or fits no process is using",
                               formatter_class=ShowDefaultsRaw, epilog=CLEAR_EPILOG,
                               description="Remove what the options name, each entry under its lock: one that an "
                                           "extraction or a fit is using is kept and named. Data (imported, "
                                           "converted, generated) are not removed here: zoo data manages them.")
    clear.add_argument("--partial", action="store_true",
                       help="this home's partial activation entries: the batches kept by extractions stopped and not "
                            "run again with their settings (a rerun then extracts from its first batch)")
    clear.add_argument("--other-homes", action="store_true",
                       help="the activation entries signed under another home's secret (the partitions of "
                            "activations/ that are not this $NEUROZOO_HOME's), and those of the cache's earlier "
                            "layout, which no home reads")
    clear.add_argument("--fits", action="store_true", help="the cached retina fits (retina/fits/), finished or stopped "
                                                           "part-way: the next run that needs one fits it again")
    clear.add_argument("--all", action="store_true", help="all of the above: every activation entry and every fit")
    clear.add_argument("--older-than", type=non_negative, metavar="DAYS",
                       help="only entries not modified for more than DAYS days (default: any age)")
    clear.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    clear.set_defaults(handler=_clear)


def _info(args: argparse.Namespace) -> int:
    from neurozoo.benchmarks.cache_contents import KINDS, survey, size_text
    from neurozoo.benchmarks.extraction.cache import SECRET_FILE
    from neurozoo.benchmarks.paths import home
    from neurozoo.datasets.cache import unless_held
    from neurozoo.datasets.text_table import format_table

    found = survey()
    print(f"cache: {found.root}")
    print(f"this home: {home()}, " + (f"its activation entries in activations/{found.partition}/" if found.partition
                                      else f"no {SECRET_FILE} yet, so no activation entry is its own"))
    rows, total = [], 0
    for kind in KINDS:
        entries = found.of(kind.name)
        size = sum(entry.size for entry in entries)
        total += size
        count = str(len(entries))
        if kind.name == "partial":
            count += f" ({sum(len(list(_files(e.paths))) for e in entries)} batches)"
        if kind.name == "other-homes" and entries:
            count += f" in {len(found.other_partitions())} partitions"
        busy = [entry for entry in entries if entry.lock is not None and entry.lock.exists()]
        in_use = sum(1 for entry in busy if not _free(unless_held, entry.lock))
        cleared_by = ", ".join(kind.cleared_by) or ("-" if kind.name == "other" else "- (zoo data)")
        rows.append((kind.description, count, size_text(size), str(in_use) if kind.cleared_by else "",
                     _where(kind.name, found), cleared_by))
    print(format_table(("kind", "entries", "size", "in use", "folder", "cleared by"), rows))
    print(f"total: {size_text(total)}. zoo cache clear OPTION removes a kind (--dry-run: what it would remove); an "
          "entry in use (an extraction or fit running) is kept")
    return 0


def _free(unless_held, lock) -> bool:
    with unless_held(lock, dry_run=True) as free:
        return free


def _files(paths):
    for path in paths:
        yield from (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _where(kind: str, found) -> str:
    if kind in ("final", "partial"):
        return f"activations/{found.partition}/" if found.partition else "activations/ (none: no secret)"
    return {"other-homes": "activations/s*/ (others)", "earlier-layout": "activations/<xx>/",
            "fits": "retina/fits/", "recordings": "retina/", "ventral": "embedded/", "converted": "converted/",
            "imported": "data/", "other": "./"}[kind]


def _clear(args: argparse.Namespace) -> int:
    from neurozoo.benchmarks.cache_contents import CLEARED, KIND, clear, size_text
    from neurozoo.benchmarks.paths import cache_dir, home
    from neurozoo.datasets.errors import UserFacingError

    options = [option for option in CLEARED if getattr(args, option[2:].replace("-", "_"))]
    if not options:
        raise UserFacingError(f"name what to clear: {', '.join(CLEARED)} (with --dry-run: what would go, nothing "
                              f"removed); `zoo cache` shows what {cache_dir()} holds")
    kinds = sorted({kind for option in options for kind in CLEARED[option]}, key=list(KIND).index)
    days = args.older_than
    result = clear(kinds, None if days is None else days * 86400.0, dry_run=args.dry_run)
    root = cache_dir()
    verb = "would remove" if args.dry_run else "removed"
    for entry in result.removed:
        print(f"{verb} {_shown(entry, root)} ({size_text(entry.size)})")
    for entry in result.in_use:
        user = "a fit" if entry.kind == "fits" else "an extraction"
        print(f"kept {_shown(entry, root)} ({size_text(entry.size)}): in use by {user} running now (it holds "
              f"{entry.lock.name})")
    what = " or ".join(KIND[kind].description for kind in kinds)
    age = "" if days is None else f" older than {days:g} days"
    if not result.removed and not result.in_use:
        print(f"nothing to remove in {root}: no {what}{age}")
    else:
        counts = ", ".join(f"{sum(e.kind == kind for e in result.removed)} {KIND[kind].description}" for kind in kinds
                           if any(e.kind == kind for e in result.removed))
        kept = f"; kept {len(result.in_use)} in use: clear again once they are done" if result.in_use else ""
        print(f"{'would free' if args.dry_run else 'freed'} {size_text(result.freed())} in {root}"
              + (f" ({counts})" if counts else "") + kept)
    if "other-homes" in kinds and "final" not in kinds:  # whose entries stayed: the home this command ran for
        print(f"this home, whose activation entries stay: {home()}")
    return 1 if result.in_use else 0


def _shown(entry, root) -> str:
    return ", ".join(str(path.relative_to(root)) for path in entry.paths)
