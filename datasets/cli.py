"""``zoo data list|verify|import``: the data catalog and cache from the command line."""
from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    data = sub.add_parser("data", help="list, verify and import data sets (nothing is downloaded)")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    commands.required = True

    listing = commands.add_parser("list", help="catalog entries, their cache status and the registered data sets")
    listing.set_defaults(handler=_list)

    verify = commands.add_parser("verify", help="re-hash the cached files (and generated data) against their sha256")
    verify.add_argument("names", nargs="*", help="catalog names or generated data (ventral_embedded.IT, "
                                                 "embedded:whitenoise...; default: all)")
    verify.set_defaults(handler=_verify)

    imp = commands.add_parser("import", help="hash local files and copy (or link) them into the cache")
    imp.add_argument("names", nargs="+", help="catalog names, e.g. cowley2023.v4_210325")
    imp.add_argument("--from", dest="source", default=None,
                     help="folder holding the files (default: $NEUROZOO_SHARED_DATA or <repo>/../shared/data)")
    imp.add_argument("--link", action="store_true", help="symlink instead of copying")
    imp.add_argument("--force", action="store_true", help="replace cached copies (also ones that fail their sha256)")
    imp.set_defaults(handler=_import)


def _list(args: argparse.Namespace) -> int:
    from neurozoo import datasets
    from neurozoo.datasets import catalog
    from neurozoo.datasets.cache import cache_dir
    from neurozoo.datasets.synthetic_retina import DESCRIPTIONS, embedded_retina_generated

    print(f"cache: {cache_dir()}")
    print(f"{'catalog name':28s} {'files':>5s} {'MB':>7s}  status")
    for name, entry in sorted(catalog.CATALOG.items()):
        states = [("missing" if not catalog.cached_path(f).is_file() else "cached") for f in entry.files]
        summary = "cached" if all(s == "cached" for s in states) else f"{states.count('missing')} missing"
        size = sum(f.size for f in entry.files) / 1e6
        print(f"{name:28s} {len(entry.files):5d} {size:7.1f}  {summary}  ({entry.source})")
    print()
    print(f"{'registered data set':28s} {'family':20s} {'local':14s} description")
    for entry in datasets.DATASETS.entries():
        print(f"{entry.name:28s} {entry.tags.get('family', ''):20s} {_local_state(entry.name):14s} {entry.description}")
    for kind, text in DESCRIPTIONS.items():  # the recordings `zoo fit --data embedded:KIND` reads
        state = "generated" if embedded_retina_generated(kind) else "not generated"
        print(f"{'embedded:' + kind:28s} {'retina':20s} {state:14s} {text}")
    return 0


def _local_state(name: str) -> str:
    from neurozoo.datasets import catalog
    from neurozoo.datasets.cache import MANIFEST
    from neurozoo.datasets.embedded import ventral

    if name.startswith("ventral_embedded."):
        return "generated" if (ventral.folder() / MANIFEST).is_file() else "not generated"
    if name in catalog.CATALOG:
        return "imported" if all(catalog.cached_path(f).is_file() for f in catalog.get(name).files) else "not imported"
    return "plugin"


def _verify(args: argparse.Namespace) -> int:
    from neurozoo.datasets import catalog
    from neurozoo.datasets.cache import MADE_ON_USE, MANIFEST, cache_dir, read_manifest, verify_folder
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.synthetic_retina import recordings_folder
    from neurozoo.datasets.text_table import counted

    names = args.names or sorted(catalog.CATALOG)
    generated = _generated_names()
    from neurozoo.datasets.registry import UnknownNameError, lookup

    for name in names:  # every name checked before any is verified: the registries' one refusal, with close names
        try:
            lookup(name, [], "data set", lambda name: "; expected a catalog name or generated data",
                   also=[*catalog.CATALOG, *generated])
        except UnknownNameError as error:
            raise DataError(f"{error}; `zoo data verify` without names checks everything in the cache, generated "
                            "data included") from None
    failures = checked = unknown = 0
    for name in names:
        if name in generated:  # was "unknown in the catalog", though verify without names checks it
            files, problems = _verify_generated(name)
            checked, failures = checked + files, failures + problems
            continue
        states = catalog.status(name)
        bad = {path: state for path, state in states.items() if state == "MISMATCH" or (state == "missing" and args.names)}
        for path, state in bad.items():
            print(f"{state:8s} {name}:{path}")
        failures += len(bad)
        present = sum(state == "ok" for state in states.values())
        checked += present
        if not bad and present:
            print(f"{'ok':8s} {name} ({present} of {len(states)} files)")
    if not args.names:  # derived folders (converted and generated data) carry their own manifest
        for manifest in sorted(cache_dir().glob(f"*/**/{MANIFEST}")):
            folder = manifest.parent
            try:
                files = verify_folder(folder, made_on_use=folder == recordings_folder())
                if not files and read_manifest(folder).get(MADE_ON_USE):
                    continue  # every file it recorded was deleted since (each is generated again on use)
                print(f"{'ok':8s} {folder.relative_to(cache_dir())} ({len(files)} files)")
                checked += len(files)
            except DataError as error:
                print(f"{'MISMATCH':8s} {error}")
                failures += 1
        for folder in _unfinished_folders():
            print(f"{'MISMATCH':8s} {folder}: no {MANIFEST}, so no finished build (a copy of the cache cut short, or "
                  f"its manifest deleted); its loader refuses it: delete it to rebuild it")
            failures += 1
        unknown = _unrecorded_recordings()
    if failures:
        print(f"{counted(failures, 'problem')}; "
              "fix a catalog file with `zoo data import NAME --force`, anything else as its "
              "line says")
    elif not checked and not unknown:  # silence read as "all verified"
        print(f"nothing to verify in {cache_dir()}: no catalog file imported (`zoo data import NAME`), "
              "no data generated yet (`zoo run` generates the embedded data)")
    return 1 if failures else 0


def _generated_names() -> list:
    """The generated data sets as `zoo data list` names them: the embedded ventral set's, ``embedded:KIND``."""
    from neurozoo import datasets
    from neurozoo.datasets.synthetic_retina import KINDS

    ventral = [e.name for e in datasets.DATASETS.entries() if e.name.startswith("ventral_embedded.")]
    return sorted(ventral) + [f"embedded:{kind}" for kind in KINDS]


def _verify_generated(name: str) -> tuple:
    """``(files verified, problems)`` of one generated data set, printed as `zoo data verify` prints the others: the
    ventral set's folder against its manifest, an ``embedded:KIND`` recording against the sha256 recorded when it was
    generated."""
    from neurozoo.datasets.cache import MANIFEST, cache_dir, recorded_sha256, verify_file, verify_folder
    from neurozoo.datasets.embedded import ventral
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.synthetic_retina import _embedded_path

    path = _embedded_path(name.split(":", 1)[1], {})[0] if name.startswith("embedded:") else ventral.folder()
    shown = path.relative_to(cache_dir())
    if not (path.is_file() or (path / MANIFEST).is_file()):
        print(f"{'missing':8s} {name}: {shown} not generated yet (its first use generates it, e.g. `zoo run`)")
        return 0, 1
    try:
        if path.is_file():
            recorded = recorded_sha256(path)
            if recorded is None:
                print(f"{'unknown':8s} {name}: {shown} generated before digests were recorded (or stopped before its "
                      "digest was), so not verifiable; its next use generates it again with one")
                return 0, 0
            verify_file(path, recorded, path.parent, on_use=True)  # as verify_folder checks it without names
            print(f"{'ok':8s} {name} ({shown})")
            return 1, 0
        files = verify_folder(path)
    except DataError as error:
        print(f"{'MISMATCH':8s} {name}: {error}")
        return 0, 1
    print(f"{'ok':8s} {name} ({shown}, {len(files)} files)")
    return len(files), 0


def _unfinished_folders() -> list:
    """The derived folders (``converted/<name>/<key>``, ``embedded/<key>``) without a manifest: every build renames its
    folder into place with one, so these are no build's, and were passed over by a check of the manifests alone."""
    from neurozoo.datasets.cache import MANIFEST, cache_dir

    folders = [*cache_dir().glob("converted/*/*"), *cache_dir().glob("embedded/*")]
    return sorted(f for f in folders if f.is_dir() and not f.name.startswith(".")  # a build's temporary: ".<name>.*"
                  and not (f / MANIFEST).is_file())


def _unrecorded_recordings() -> int:
    """Say which generated retina recordings have no recorded digest (generated before digests were recorded, or
    stopped before its digest was, until 2026-12-04): they cannot be verified, which is not an error (their next use
    generates them again, :func:`datasets.synthetic_retina.load_embedded_retina`). Returns how many."""
    from neurozoo.datasets.cache import cache_dir, recorded_sha256
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.synthetic_retina import recordings_folder

    count = 0
    for path in sorted(recordings_folder().glob("*.h5")):
        try:
            recorded = recorded_sha256(path)
        except DataError:  # an unreadable manifest: reported above
            return count
        if recorded is None:
            print(f"{'unknown':8s} {path.relative_to(cache_dir())}: generated before digests were recorded (or "
                  "stopped before its digest was), so not verifiable; its next use generates it again with one")
            count += 1
    return count


def _import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from neurozoo.datasets import catalog
    from neurozoo.datasets.text_table import counted

    for name in args.names:
        done = []

        def report(imported: catalog.ImportedFile) -> None:  # once all are in place (import_files: all or none)
            done.append(imported.status)
            print(f"{name}: {imported.file.path}: {_import_line(imported, args.link)}", flush=True)

        catalog.import_files(name, Path(args.source) if args.source else None, link=args.link, force=args.force,
                             report=report)
        counts = ", ".join(f"{done.count(status)} {status}" for status in (catalog.IMPORTED, catalog.REPLACED,
                                                                           catalog.PRESENT) if status in done)
        print(f"{name}: {counted(len(done), 'file')} verified in {catalog.data_dir()} ({counts})")
    return 0


def _import_line(imported, link: bool) -> str:
    """What ``zoo data import`` did with one file: already present, imported or replaced, and from where."""
    from neurozoo.datasets import catalog

    if imported.status == catalog.PRESENT:
        if imported.origin is not None:  # --from the cache's own data folder
            return f"already present, sha256 verified: the source {imported.origin} is the cached file itself"
        return "already present, sha256 verified (--force replaces it)"
    how = f"linked to {imported.origin.resolve()}" if link else f"copied from {imported.origin}"
    return f"{imported.status} ({how}), sha256 verified"
