"""Submissions: a folder or archive (.zip, .tar.gz, .tgz, .tar) holding

``metadata.yaml``
    name, authors (list), description, licence, benchmarks (list of registered names), layers (region ->
    layer name, e.g. ``{V4: layer3, IT: layer4}``), and ``weights: {file: weights.pt, sha256: <hex>}`` when
    weights are included.
``model.py``
    ``create_model(weights)`` (``weights`` is the weights file's path or None) returning ``model`` or
    ``(model, time_mapping)``: ``time_mapping`` maps a layer to ``[start_ms, width_ms, steps]`` (the step
    its k-th forward call stands for); without it, every time bin gets the same (static) features.
``weights.pt`` (optional)
``requirements.txt`` (optional)
    packages the model needs, one PEP 508 requirement a line; nothing is installed for a submission, so each must
    already hold in the scoring environment (:func:`check_requirements`).

:func:`validate` checks everything that can be checked without running the code (schema, names, sizes,
checksums, archive member paths) and raises :class:`SubmissionError` naming the file, field and what was
expected. The model code itself only ever runs in an isolated worker (:mod:`leaderboard.worker`), which
first does a smoke forward pass.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import re
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from neurozoo.datasets.cache import owned_temporary_folder
from neurozoo.datasets.errors import UserFacingError, did_you_mean, yaml_problem
from neurozoo.datasets.provenance import sha256_file
from neurozoo.datasets.text_table import plural

MAX_TOTAL_BYTES = 512 * 2 ** 20
MAX_FILES = 200
MAX_MEMBERS = 1000  # archive entries of any kind (folders too): each costs the server memory while it is read
MAX_ZIP_DIRECTORY_BYTES = 2 ** 20  # a zip's central directory: 1000 entries of long names and extra fields fit
MAX_TAR_HEADER_BYTES = 64 * 1024  # a tar member's extended header (pax records, GNU long name), read whole by tarfile
#: a tar's extended headers in all: tarfile keeps each member's pax records (a dict) in its member list
MAX_TAR_HEADERS_TOTAL_BYTES = 2 ** 20
#: a tar's global pax headers in all (git archive writes one of 52 bytes): tarfile copies their records into every
#: member that has a pax header of its own
MAX_TAR_GLOBAL_HEADER_BYTES = 4096
#: extended headers in a row before one member (a pax header, a GNU long name and a long link name at most): tarfile
#: reads each one's successor by recursion
MAX_TAR_HEADER_CHAIN = 4
#: path parts of a submission's file (its folders and its name), at most: Python's pathlib and shutil recurse once per
#: level (Path.mkdir's missing parents, rglob, rmtree in Python 3.11), so a zip of files 600, 1200 and 1800 folders
#: deep was a RecursionError in validation and in the removal of its staging folder, which stayed in the store and
#: failed every later intake (each removes a dead process's staging folders first)
MAX_DEPTH = 32
MAX_METADATA_BYTES = 64 * 1024
REQUIREMENTS = "requirements.txt"
MAX_REQUIREMENTS_BYTES, MAX_REQUIREMENTS_LINES = 16 * 1024, 200
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
REQUIRED = {"name": str, "authors": list, "description": str, "licence": str, "benchmarks": list, "layers": dict}
OPTIONAL = {"weights": dict}
TEXT_LIMITS = {"name": 64, "description": 5000, "licence": 200}
MAX_AUTHORS, AUTHOR_CHARS = 50, 200
#: Unicode categories refused in the text fields the board shows: controls, formatting (bidirectional overrides,
#: zero-width characters), surrogates, private use, unassigned, line and paragraph separators
UNSHOWN = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
#: combining marks (Unicode categories Mn, Me) in a row on one character, at most: each is drawn over the one before it,
#: so a few dozen ("Zalgo" text) stack into a column of glyphs over the lines above and below, in the ranking over other
#: models' rows. Written text stacks a few (Vietnamese 2, pointed Hebrew and Tibetan up to about 6).
MAX_COMBINING_MARKS = 8
REGIONS = ("V4", "IT")


class SubmissionError(UserFacingError):
    pass


class NameTaken(SubmissionError):
    """The model name belongs to another user (or to the built-in zoo)."""


class AlreadySubmitted(NameTaken):
    """The same files under the same name were submitted before: their jobs exist already."""


class _Budget:
    """Counts files and bytes while a submission is copied or extracted; refuses past the caps."""

    def __init__(self, source: Path):
        self.source, self.files, self.bytes = source, 0, 0

    def add_file(self, name: str) -> None:
        self.files += 1
        if self.files > MAX_FILES:
            raise SubmissionError(f"{self.source.name}: more than {MAX_FILES} files; at most {MAX_FILES} are allowed")

    def copy(self, reader, target: Path, member: str = "") -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "wb")
        except OSError:  # the host's path stays out of the message: it reaches web submitters
            raise SubmissionError(f"{self.source.name}: member {member!r} cannot be unpacked: a file and a folder "
                                  "share its name or a parent's name (or it names the archive's root)") from None
        with out:
            while chunk := reader.read(1 << 20):
                self.bytes += len(chunk)
                if self.bytes > MAX_TOTAL_BYTES:
                    raise SubmissionError(f"{self.source.name}: unpacked size exceeds {MAX_TOTAL_BYTES // 2 ** 20} MiB")
                out.write(chunk)


def _member_path(name: str, archive: Path) -> Path:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or not name or "\0" in name:
        raise SubmissionError(f"{archive.name}: member {name!r} points outside the archive; use relative paths")
    _check_name(name, f"{archive.name}: member")
    _check_depth(path, f"{archive.name}: member {_short(name)}")
    return path


def _check_depth(relative: Path, where: str) -> None:
    """Refuse a path of more than :data:`MAX_DEPTH` parts (``where`` names it)."""
    if len(relative.parts) > MAX_DEPTH:
        raise SubmissionError(f"{where} is {len(relative.parts)} levels deep; at most {MAX_DEPTH} (folders and the "
                              "file) are allowed")


def _check_name(name: str, where: str) -> None:
    """A file name must be UTF-8: a tar member's (or a folder's file's) name of other bytes is decoded with surrogate
    escapes, unpacked as such, and :func:`tree_sha256` then failed encoding it (a UnicodeEncodeError traceback from
    `zoo submit`, a 500 from the web API). And it holds no control character (Unicode category Cc: a newline, an
    escape): messages name files as they are (`zoo submit` on a folder: "x is a symbolic link"; `zoo submit --check`:
    the weights file), so a name holding a terminal's escape sequence (clear the screen, set the window's title, rewrite
    the lines above) was played on the terminal of the operator who submitted a stranger's folder."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SubmissionError(f"{where} {name!r} has a name that is not UTF-8 text; rename it") from None
    control = _first_control_character(name)
    if control is not None:
        raise SubmissionError(f"{where} {name!r} has a control character ({control!r}) in its name; rename it")


def _first_control_character(text: str, allowed: str = "") -> Optional[str]:
    """The first control character (Unicode category Cc: a newline, an escape) of ``text`` but those ``allowed``, or
    None: what a file name and a requirements.txt line may not hold, since messages print them as they are."""
    return next((character for character in text
                 if unicodedata.category(character) == "Cc" and character not in allowed), None)


def _copy_folder(source: Path, target: Path, budget: _Budget) -> None:
    """Refuses symbolic links and special files BEFORE anything is copied; counts while copying."""
    entries = []
    for folder, dirs, files in os.walk(source, followlinks=False):  # top-down: refused before walking deeper
        for name in dirs + files:
            path = Path(folder) / name
            _check_name(str(path.relative_to(source)), "submission: file")
            _check_depth(path.relative_to(source), f"submission: {_short(str(path.relative_to(source)))}")
            if path.is_symlink():
                raise SubmissionError(f"submission: {path.relative_to(source)} is a symbolic link; "
                                      "links are not allowed (copy the file in)")
            if not (path.is_dir() or path.is_file()):
                raise SubmissionError(f"submission: {path.relative_to(source)} is not a plain file or folder")
            if path.is_file():
                budget.add_file(name)
                entries.append(path)
    for path in entries:
        relative = path.relative_to(source)
        with os.fdopen(_open_without_links(source, relative), "rb") as reader:
            budget.copy(reader, target / relative)


def _open_without_links(source: Path, relative: Path) -> int:
    """A descriptor of ``source/relative``, a plain file, opened folder by folder without following a link: one
    swapped in for a file or folder after the check above was followed to a host file, stored with the submission."""
    folder = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in relative.parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        # O_NONBLOCK: a pipe swapped in does not hang the copy
        fd = os.open(relative.parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        fd = None
    finally:
        os.close(folder)
    if fd is None or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd is not None:
            os.close(fd)
        raise SubmissionError(f"submission: {relative} is a symbolic link or not a plain file (it changed after it "
                              "was checked)")
    return fd


def _check_zip_directory(source: Path) -> None:
    """The entry count and central-directory size a zip's end record declares, checked before ``ZipFile`` builds an
    object per entry (a 512 MiB central directory of empty entries is millions of them, gigabytes of the server's
    memory). ``ZipFile`` reads the directory by its size, not its declared count: the size bounds what is built, and
    the count of what was built is checked again after opening."""
    with open(source, "rb") as handle:
        end = zipfile._EndRecData(handle)
    if end is None:
        raise zipfile.BadZipFile("no end of central directory record")
    entries, size = int(end[zipfile._ECD_ENTRIES_TOTAL]), int(end[zipfile._ECD_SIZE])
    if entries > MAX_MEMBERS:
        raise SubmissionError(f"{source.name}: {entries} archive entries; at most {MAX_MEMBERS} (files and folders) "
                              "are allowed")
    if size > MAX_ZIP_DIRECTORY_BYTES:
        raise SubmissionError(f"{source.name}: a central directory of {size} bytes; at most "
                              f"{MAX_ZIP_DIRECTORY_BYTES // 1024} KiB are allowed")


def _extract_zip(source: Path, target: Path, budget: _Budget) -> None:
    _check_zip_directory(source)
    with zipfile.ZipFile(source) as archive:
        if len(archive.infolist()) > MAX_MEMBERS:  # more than its end record declared
            raise SubmissionError(f"{source.name}: {len(archive.infolist())} archive entries; at most {MAX_MEMBERS} "
                                  "(files and folders) are allowed")
        for info in archive.infolist():
            path = _member_path(info.filename, source)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise SubmissionError(f"{source.name}: member {info.filename!r} is a symbolic link; not allowed")
            if info.flag_bits & 0x1:  # ZipFile.open raised a RuntimeError, which no caller takes: a web 500
                raise SubmissionError(f"{source.name}: member {info.filename!r} is encrypted; archive it without a "
                                      "password")
            if info.is_dir():
                continue
            budget.add_file(info.filename)
            with archive.open(info) as reader:
                budget.copy(reader, target / path, info.filename)


#: tar header types that describe the next member rather than being one (tarfile reads them whole, then the next)
EXTENDED_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                    tarfile.GNUTYPE_LONGLINK)


class _CappedTarInfo(tarfile.TarInfo):
    """A tar member whose extended header (pax records, a GNU long name or link) is refused past
    ``MAX_TAR_HEADER_BYTES`` before tarfile reads it: tarfile reads such a header into memory whole, so 600 KiB of
    gzipped zeros declaring a 600 MiB pax header took 600 MiB of the server's memory (and was then called "not a
    .tar archive")."""

    def _proc_member(self, tarfile_):
        # besides each header's size, counted over the archive (one TarFile): the headers in a row (5000 chained
        # long names were a RecursionError, a web 500), all headers' bytes, the global headers' bytes (2 MiB of
        # gzipped 60 KiB global headers between folder entries, then members with a pax header of their own, each
        # given a copy of all the global records, took the intake 9 GiB and 8 minutes)
        seen = tarfile_.__dict__.setdefault("_neurozoo_headers", {"chain": 0, "bytes": 0, "global": 0})
        _refuse_negative_size(self, tarfile_)
        if self.type not in EXTENDED_HEADERS:
            seen["chain"] = 0
        else:
            if self.size > MAX_TAR_HEADER_BYTES:
                raise SubmissionError(f"{_archive_name(tarfile_)}: a tar extended header (pax record or long name) of "
                                      f"{self.size} bytes; at most {MAX_TAR_HEADER_BYTES // 1024} KiB are allowed")
            seen["chain"] += 1
            seen["bytes"] += self.size
            seen["global"] += self.size if self.type == tarfile.XGLTYPE else 0
            for count, cap, what in ((seen["chain"], MAX_TAR_HEADER_CHAIN, "extended headers in a row"),
                                     (seen["bytes"], MAX_TAR_HEADERS_TOTAL_BYTES, "bytes of extended headers in all"),
                                     (seen["global"], MAX_TAR_GLOBAL_HEADER_BYTES, "bytes of global pax headers")):
                if count > cap:
                    raise SubmissionError(f"{_archive_name(tarfile_)}: more than {cap} {what} (pax records or long "
                                          "names); not a plain archive of files")
        if self.type == tarfile.GNUTYPE_SPARSE:  # its map is a chain of blocks tarfile reads to the end
            self._refuse_sparse(tarfile_)
        return super()._proc_member(tarfile_)

    def _proc_gnusparse_10(self, next, pax_headers, tarfile_):  # a sparse map of any declared length, in the data
        self._refuse_sparse(tarfile_)

    def _refuse_sparse(self, tarfile_):
        """GNU sparse maps are read into memory whole, block after block: 40 KiB of gzipped blocks were a list of
        millions of (offset, size) pairs. A submission has no use for a sparse file."""
        raise SubmissionError(f"{_archive_name(tarfile_)}: member {self.name!r} is a sparse file; not allowed "
                              "(archive it without --sparse)")


def _refuse_negative_size(member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
    """A size field may hold a negative number (base-256, or a pax ``size`` record), which tarfile takes as it is: the
    next header is then read that far BEFORE the member's data, so a gzipped archive is decompressed again from its
    start for each member read; the same member read over and over until the file cap, 256 MiB of zeros before it
    (255 KiB of upload) took the intake 38 s, and a negative total passed the declared-size cap."""
    if member.size < 0:
        raise SubmissionError(f"{_archive_name(archive)}: member {member.name!r} declares a negative size "
                              f"({member.size} bytes); not a valid archive")


def _archive_name(archive: tarfile.TarFile) -> str:
    return Path(archive.name or "archive").name  # the file's name, never the host's path to it


def _open_tar(source: Path) -> tarfile.TarFile:
    return tarfile.open(source, tarinfo=_CappedTarInfo)


#: the first bytes of the archives a submission may be, by kind
ARCHIVE_MAGIC = ((b"PK\x03\x04", ".zip"), (b"PK\x05\x06", ".zip"), (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"),
                 (b"\xfd7zXZ\x00", "xz"))


def _archive_kind(source: Path) -> Optional[str]:
    """The kind of archive ``source``'s first bytes say it is (None: none), for a file neither zipfile nor tarfile
    reads."""
    with open(source, "rb") as fh:
        head = fh.read(6)
    return next((kind for magic, kind in ARCHIVE_MAGIC if head.startswith(magic)), None)


def _is_tar(source: Path) -> bool:
    """``tarfile.is_tarfile`` with the header cap of :class:`_CappedTarInfo` (it reads the first member's header)."""
    try:
        _open_tar(source).close()
        return True
    except tarfile.TarError:
        return False


def _extract_tar(source: Path, target: Path, budget: _Budget) -> None:
    declared = 0
    with _open_tar(source) as archive:
        for count, member in enumerate(archive, 1):  # streamed: the caps hold before the whole archive is read
            if count > MAX_MEMBERS:  # folders too: tarfile keeps every member it has read
                raise SubmissionError(f"{source.name}: more than {MAX_MEMBERS} archive entries; at most {MAX_MEMBERS} "
                                      "(files and folders) are allowed")
            # every member's declared size, before tarfile decompresses past it to the next member: a folder
            # declaring 500 GiB of gzipped zeros was skipped by decompressing all of it
            _refuse_negative_size(member, archive)  # its header's was refused as read; this one is a pax record's
            declared += member.size
            if declared > MAX_TOTAL_BYTES:
                raise SubmissionError(f"{source.name}: member {member.name!r} declares {member.size} bytes; at most "
                                      f"{MAX_TOTAL_BYTES // 2 ** 20} MiB are allowed in all")
            path = _member_path(member.name, source)
            if member.isdir():
                continue
            if not member.isfile():
                raise SubmissionError(f"{source.name}: member {member.name!r} is not a plain file or folder "
                                      "(links and devices are not allowed)")
            budget.add_file(member.name)
            budget.copy(archive.extractfile(member), target / path, member.name)


def unpack(source: Path, target: Path) -> Path:
    """Copy a folder, or safely extract an archive, into ``target``; returns the submission root inside it.
    Symbolic links are refused before copying; file count and size are capped while extracting; a corrupt
    archive is a :class:`SubmissionError` naming it."""
    source = Path(source)
    budget = _Budget(source)
    target.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        raise SubmissionError(f"{source}: is a symbolic link; pass the folder or archive itself")
    try:
        if source.is_dir():
            _copy_folder(source, target, budget)
        elif source.is_file() and zipfile.is_zipfile(source):
            _extract_zip(source, target, budget)
        elif source.is_file() and _is_tar(source):
            _extract_tar(source, target, budget)
        elif not source.exists():
            raise SubmissionError(f"{source}: no such file or folder")
        elif _archive_kind(source):  # a zip cut short has no directory at its end: not "not a .zip"
            raise SubmissionError(f"{source.name}: corrupt or unreadable archive (it begins as a {_archive_kind(source)} "
                                  "archive but cannot be read as one: cut short or damaged; make it again)")
        else:
            raise SubmissionError(f"{source}: not a folder, .zip or .tar(.gz) archive")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
            OSError, ValueError, NotImplementedError) as error:
        if isinstance(error, SubmissionError):
            raise
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)[:200]  # no host path
        raise SubmissionError(f"{source.name}: corrupt or unreadable archive ({type(error).__name__}: {why})") from None
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if not (target / "metadata.yaml").exists() and len(entries) == 1 and entries[0].is_dir():
        return entries[0]  # an archive of one top-level folder
    return target


#: the format of :func:`tree_sha256`'s digest: 2, the current one, kept in a submission's row (``sha256_format``) and
#: its jobs' specs; 1 (the rows and specs stored before, which hold no format) only to check those again
TREE_FORMAT, LEGACY_TREE_FORMAT = 2, 1
TREE_FORMATS = (LEGACY_TREE_FORMAT, TREE_FORMAT)
TREE_DOMAIN = b"neurozoo-tree-v2\0"


def tree_sha256(root: Path, version: int = TREE_FORMAT) -> str:
    """The sha256 of a submission's files, their relative paths and contents. Version 2 hashes
    ``neurozoo-tree-v2\\0``, then per file (by path) the path's UTF-8 length (8 bytes, big-endian), the path and
    the file's raw sha256 (32 bytes): no two trees give the same bytes. Version 1 (the digest of submissions stored
    before it) joined each path and its file's hex sha256 with no separator, so the boundary between a path and the
    digest before it could move: ``{w, x}`` and ``{w<sha256 of w>x}``, the file ``x``'s contents under the longer
    name, gave one digest (one folder in the store: the second submission was scored with the first one's files)."""
    return tree_sha256s(root, (version,))[version]


def tree_sha256s(root: Path, versions=TREE_FORMATS) -> Dict[int, str]:
    """:func:`tree_sha256` in each format of ``versions``, each file read once (the intake's two digests had read a
    512 MiB submission twice)."""
    unknown = [version for version in versions if version not in TREE_FORMATS]
    if unknown:
        raise ValueError(f"tree_sha256: no digest format {unknown[0]!r} (known: {', '.join(map(str, TREE_FORMATS))})")
    digests = {LEGACY_TREE_FORMAT: hashlib.sha256(), TREE_FORMAT: hashlib.sha256(TREE_DOMAIN)}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative, contents = path.relative_to(root), sha256_file(path)
        if LEGACY_TREE_FORMAT in versions:
            digests[LEGACY_TREE_FORMAT].update(str(relative).encode() + contents.encode())
        if TREE_FORMAT in versions:
            name = relative.as_posix().encode()
            digests[TREE_FORMAT].update(len(name).to_bytes(8, "big") + name + bytes.fromhex(contents))
    return {version: digests[version].hexdigest() for version in versions}


def tree_format(stored: Optional[Dict[str, Any]]) -> int:
    """The digest format of a stored submission row's or job spec's ``sha256`` (``sha256_format``; one stored before
    it holds none: format 1)."""
    return (stored or {}).get("sha256_format") or LEGACY_TREE_FORMAT


def changed_since_submitted(folder: Path, sha256: str, version: int = TREE_FORMAT) -> Optional[str]:
    """Why the stored submission ``folder`` is no longer the one submitted as ``sha256`` (:func:`tree_sha256` in
    format ``version``: a job spec's :func:`tree_format`), or None: a score of changed files (weights replaced, a file
    edited or removed) would be stored under the submitted sha256, and its rerun would give other numbers with no
    reason named."""
    if not Path(folder).is_dir():
        return f"the submission's stored folder is gone (submitted as sha256 {sha256[:12]})"
    found = tree_sha256(Path(folder), version)
    if found != sha256:
        return (f"the submission's stored files have changed since it was submitted (sha256 {sha256[:12]} then, "
                f"{found[:12]} now); submit it again")
    return None


MAX_METADATA_DEPTH = 8


def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """SafeLoader refusing a key given twice (``name: a`` then ``name: b``: the reader sees one, the last wins)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # a collection as a key: SafeLoader's own "unhashable key" error
                key = self.construct_object(key_node)
                if key in seen:
                    raise SubmissionError(f"metadata.yaml: field {key!r} is given twice "
                                          f"(line {key_node.start_mark.line + 1})")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def construct_object(self, node, deep=False):
            """A scalar PyYAML resolves to a number or date it cannot build (an integer of more than 4300 digits,
            ``9999-99-99``) raised a ValueError, not a YAMLError: a traceback from `zoo submit`, a web 500."""
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, OverflowError) as error:
                raise SubmissionError(f"metadata.yaml: line {node.start_mark.line + 1}: the value "
                                      f"{_short(node.value) if isinstance(node, yaml.ScalarNode) else ''} cannot be "
                                      f"read ({str(error).splitlines()[0][:120] if str(error) else type(error).__name__})"
                                      "; quote it to make it text") from None

    return UniqueKeyLoader


def load_metadata(path: Path) -> Dict[str, Any]:
    """metadata.yaml, size-capped, with YAML anchors/aliases refused, every field type-checked."""
    import yaml

    size = path.stat().st_size
    if size > MAX_METADATA_BYTES:
        raise SubmissionError(f"metadata.yaml: {size} bytes; at most {MAX_METADATA_BYTES // 1024} KiB are allowed")
    text = path.read_text(errors="replace")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise SubmissionError("metadata.yaml: YAML anchors and aliases (&, *) are not allowed; "
                                      "write every value out")
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > MAX_METADATA_DEPTH:  # PyYAML builds nested values recursively: '[' x 30000 was a
                raise SubmissionError(  # RecursionError traceback (web: 500)
                    f"metadata.yaml: values nested more than {MAX_METADATA_DEPTH} deep (line {event.start_mark.line + 1}); "
                    "the fields need 3 at most")
        meta = yaml.load(text, Loader=_unique_key_loader())
    except yaml.YAMLError as error:
        raise SubmissionError(f"metadata.yaml: not valid YAML: {yaml_problem(error)}") from None
    if not isinstance(meta, dict):
        raise SubmissionError("metadata.yaml: expected a mapping of fields at the top level")
    _refuse_other_families(meta.get("benchmarks"))
    unknown = [str(k) for k in meta if k not in REQUIRED and k not in OPTIONAL]
    if unknown:
        raise SubmissionError(f"metadata.yaml: unknown {plural(len(unknown), 'field')} {', '.join(map(repr, unknown))}"
                              f"{did_you_mean(unknown, [*REQUIRED, *OPTIONAL])} (known: {', '.join([*REQUIRED, *OPTIONAL])})")
    for field, kind in REQUIRED.items():
        if field not in meta:
            raise SubmissionError(f"metadata.yaml: field {field!r} is missing (expected {kind.__name__})")
        if not isinstance(meta[field], kind) or not meta[field]:
            raise SubmissionError(f"metadata.yaml: field {field!r} must be a non-empty {kind.__name__}, "
                                  f"got {_short(meta[field])}")
    for field, limit in TEXT_LIMITS.items():
        if len(meta[field]) > limit:
            raise SubmissionError(f"metadata.yaml: field {field!r} is {len(meta[field])} characters; at most {limit}")
    if not re.fullmatch(NAME_PATTERN, meta["name"]):
        raise SubmissionError(f"metadata.yaml: field 'name' {_short(meta['name'])} may use letters, digits, '-', '_', "
                              "'.' and must start with a letter or digit")
    if len(meta["authors"]) > MAX_AUTHORS or not all(isinstance(a, str) and a.strip() and len(a) <= AUTHOR_CHARS
                                                     for a in meta["authors"]):
        raise SubmissionError(f"metadata.yaml: field 'authors' must be a list of names (strings, at most {MAX_AUTHORS} "
                              f"of at most {AUTHOR_CHARS} characters), got {_short(meta['authors'])}")
    _check_text(meta)
    if len(meta["benchmarks"]) > 50 or not all(isinstance(b, str) for b in meta["benchmarks"]):
        raise SubmissionError(f"metadata.yaml: field 'benchmarks' must be a list of benchmark names (strings), "
                              f"got {_short(meta['benchmarks'])}")
    for region, layer in meta["layers"].items():
        if not isinstance(region, str) or region not in REGIONS:
            raise SubmissionError(f"metadata.yaml: layers: key {_short(region)} must be a region name "
                                  f"({', '.join(REGIONS)})")
        if not isinstance(layer, str) or not layer or len(layer) > 200:
            raise SubmissionError(f"metadata.yaml: layers.{region} must be a layer name (string), got {_short(layer)}")
        _check_shown(f"layers.{region}", layer, "")  # shown too: a failed job's public reason names it
    weights = meta.get("weights")
    if weights is not None:
        if not isinstance(weights, dict) or set(weights) != {"file", "sha256"} \
                or not isinstance(weights.get("file"), str) or not isinstance(weights.get("sha256"), str) \
                or not re.fullmatch(r"[0-9a-fA-F]{64}", weights["sha256"]):
            raise SubmissionError("metadata.yaml: field 'weights' must be {file: <name>, sha256: <64 hex digits>}, "
                                  f"got {_short(weights)}")
    return meta


def _refuse_other_families(names: Any) -> None:
    """Refuse a registered benchmark of a family other than the image benchmarks' (cortex) among ``names`` (the
    ``benchmarks`` field as read, checked before the other fields): a retina model's submitter was told first that
    ``layers`` must name V4 or IT, then that ``layers`` is missing, and only in the third message that submissions
    take image models."""
    from neurozoo import benchmarks
    from neurozoo.leaderboard.aggregate import family_of

    for name in names if isinstance(names, list) else ():
        if isinstance(name, str) and name in benchmarks.BENCHMARKS:
            family = family_of(benchmarks.BENCHMARKS.get(name).tags)
            if family != "cortex":
                raise SubmissionError(
                    f"metadata.yaml: benchmark {name!r} is a {family} benchmark, which fits registered models by "
                    f"name; submissions take image models only, scored on the image benchmarks (cortex). A {family} "
                    f"model reaches the local leaderboard through `zoo run --models MODEL --benchmarks {name}` "
                    "(MODEL registered, as the built-in ones are; see the README)")


#: the characters of :data:`UNSHOWN` a text field on several lines keeps (the description's); the others keep none
MULTILINE = "\n\t"


def _check_text(meta: Dict[str, Any]) -> None:
    """The text fields the board shows: not blank, and no control, format or separator character but spaces (no
    invisible formatting such as a right-to-left override, which reorders what the page shows around it); an author
    and the licence on one line, the description on several (newlines and tabs allowed)."""
    fields = [("description", meta["description"], MULTILINE), ("licence", meta["licence"], "")]
    fields += [(f"authors[{i}]", author, "") for i, author in enumerate(meta["authors"])]
    for field, value, allowed in fields:
        _check_shown(field, value, allowed)


#: what :func:`unshown_characters` finds: a character of :data:`UNSHOWN`, a combining mark past
#: :data:`MAX_COMBINING_MARKS` in a row
UNSHOWN_CHARACTER, STACKED_MARK = "unshown", "stacked"
#: the stretches of a text that :func:`unshown_characters` looks at: all but printable ASCII (space to ``~``)
OUTSIDE_PRINTABLE_ASCII = re.compile("[^ -~]+")


def unshown_characters(value: str, allowed: str = "") -> List[Tuple[int, str]]:
    """The characters of ``value`` that the board does not show, as ``(position, kind)``: each of a category in
    :data:`UNSHOWN` but those ``allowed`` (:data:`UNSHOWN_CHARACTER`), and each combining mark past the
    :data:`MAX_COMBINING_MARKS`-th in a row (:data:`STACKED_MARK`). The one rule of both the intake, which refuses
    such a field (:func:`_check_shown`), and the pages, which show text stored before the rule with those
    characters escaped (:func:`shown_text`)."""
    import unicodedata

    found = []
    # printable ASCII is of no category of UNSHOWN, nor a combining mark (a run of marks ends at it): only the stretches
    # of other characters are looked up, each character by character (the pages run this on every submission's text
    # fields each time the ranking is built: 3 ms a row of the intake's longest, character by character)
    for stretch in OUTSIDE_PRINTABLE_ASCII.finditer(value):
        run = 0
        for position, character in enumerate(stretch.group(), stretch.start()):
            category = unicodedata.category(character)
            run = run + 1 if category in ("Mn", "Me") else 0
            if category in UNSHOWN and character not in allowed:
                found.append((position, UNSHOWN_CHARACTER))
            elif run > MAX_COMBINING_MARKS:
                found.append((position, STACKED_MARK))
    return found


def shown_text(value: str, allowed: str = "") -> str:
    """``value`` with each character :func:`unshown_characters` finds written as its Python escape (``\\u202e``,
    ``\\x1b``, ``\\u0301``): a field stored before the intake refused them (a right-to-left override reordering the
    page around it, a terminal escape, a stack of combining marks over the rows above) is shown without their
    effect, and what it held stays readable."""
    parts, shown = [], 0
    for position, _kind in unshown_characters(value, allowed):  # the text between them copied whole, not by character
        parts += [value[shown:position], value[position].encode("unicode_escape").decode("ascii")]
        shown = position + 1
    return "".join(parts) + value[shown:] if parts else value


def _check_shown(field: str, value: str, allowed: str) -> None:
    """One text field the board shows: not blank, nothing :func:`unshown_characters` finds (characters of
    :data:`UNSHOWN` but those ``allowed``, found first, then combining marks stacked past the cap)."""
    import unicodedata

    if not value.strip():
        raise SubmissionError(f"metadata.yaml: field {field!r} is blank; expected text")
    found = unshown_characters(value, allowed)
    bad = next((position for position, kind in found if kind == UNSHOWN_CHARACTER), None)
    if bad is not None:
        where = "on one line, " if not allowed else ""
        raise SubmissionError(f"metadata.yaml: field {field!r} holds the character {value[bad]!r} at position "
                              f"{bad} (Unicode category {unicodedata.category(value[bad])}); expected "
                              f"text {where}without control or formatting characters"
                              f"{' (newlines and tabs allowed)' if allowed else ''}")
    if found:
        position = found[0][0]
        raise SubmissionError(f"metadata.yaml: field {field!r} holds more than {MAX_COMBINING_MARKS} combining marks "
                              f"in a row (from position {position - MAX_COMBINING_MARKS}, "
                              f"U+{ord(value[position]):04X}); each is drawn over the character before it, so a stack "
                              "of them covers the lines around it")


def check_requirements(path: Path) -> List[str]:
    """A submission's requirements.txt against the environment that runs it: every line a PEP 508 requirement
    (``packaging``), its package installed at a version it allows where the sandbox looks for packages (nothing is
    installed for a submission: a requirement this environment misses would only fail later, inside the sandbox).
    A package this process sees from elsewhere (user site-packages, a ``PYTHONPATH`` folder the sandbox does not
    bind) does not count. What each package depends on must hold too, its extras' requirements included, checked
    the same way down the whole tree of dependencies (:func:`_installed`). Returns one
    line per requirement, ``"numpy>=1.24 (installed 2.1.3)"``; a requirement whose environment marker excludes this
    platform is said so. Read bounded: at most ``MAX_REQUIREMENTS_BYTES`` and ``MAX_REQUIREMENTS_LINES``."""
    from packaging.requirements import InvalidRequirement, Requirement

    with open(path, "rb") as handle:
        data = handle.read(MAX_REQUIREMENTS_BYTES + 1)
    if len(data) > MAX_REQUIREMENTS_BYTES:
        raise SubmissionError(f"{REQUIREMENTS}: more than {MAX_REQUIREMENTS_BYTES // 1024} KiB; at most "
                              f"{MAX_REQUIREMENTS_BYTES // 1024} KiB and {MAX_REQUIREMENTS_LINES} lines are allowed")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise SubmissionError(f"{REQUIREMENTS}: not UTF-8 text (byte {error.start}); expected one requirement a "
                              "line") from None
    if len(lines) > MAX_REQUIREMENTS_LINES:
        raise SubmissionError(f"{REQUIREMENTS}: {len(lines)} lines; at most {MAX_REQUIREMENTS_LINES} are allowed")
    checked, paths = [], sandbox_sys_path()
    for number, line in enumerate(lines, 1):
        text = re.sub(r"(^|\s)#.*", "", line).strip()  # pip's comments: '#' at the start or after a space
        if not text:
            continue
        where = f"{REQUIREMENTS}: line {number}: {_short(text)}"
        control = _first_control_character(text, allowed="\t")
        if control is not None:  # zoo submit --check prints each line: a marker's string may hold any character
            raise SubmissionError(f"{where} has a control character ({control!r}); expected one requirement a line")
        if text.startswith("-"):
            raise SubmissionError(f"{where}: pip options (-r, -e, --index-url, ...) are not supported; nothing is "
                                  "installed for a submission: list only packages, e.g. 'numpy>=1.24'")
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise SubmissionError(f"{where} is not a valid requirement ({str(error).splitlines()[0]}); expected "
                                  "a package name and optional version, e.g. 'numpy>=1.24'") from None
        if requirement.url:
            raise SubmissionError(f"{where}: a direct reference (name @ url) is never installed for a submission; "
                                  "name a package the scoring environment has")
        if requirement.marker is not None and not requirement.marker.evaluate():
            checked.append(f"{text} (not for this platform: skipped)")
            continue
        checked.append(f"{text} (installed {_installed(requirement, where, paths)})")
    return checked


def sandbox_sys_path() -> List[str]:
    """Where the sandboxed model process finds packages: this interpreter's ``sys.path`` entries inside the folders
    the sandbox binds (:func:`sandbox.environment_paths`), without user site-packages or other folders."""
    from neurozoo.leaderboard.sandbox import environment_paths, sandbox_python_path

    return [entry for entry in sandbox_python_path(environment_paths()).split(os.pathsep) if entry]


def _installed(requirement, where: str, paths: List[str], needed_by: str = "",
               checked: Optional[set] = None) -> str:
    """The version of ``requirement``'s package found on ``paths``, at a version it allows, with what it depends on
    satisfied too, its own requirements and its extras', and theirs in turn (each package and extra once:
    ``checked``); else SubmissionError beginning ``where``. A package installed without its dependencies (one removed
    later, or found only outside what the sandbox binds) had passed intake and failed at the model's import, inside
    the sandbox; ``needed_by`` names the chain that pulled a dependency in."""
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion

    checked = set() if checked is None else checked
    needed = f" (needed by {needed_by})" if needed_by else ""
    found = next(iter(importlib.metadata.distributions(name=requirement.name, path=paths)), None)
    if found is None:
        raise SubmissionError(f"{where}: {requirement.name!r}{needed} is not installed in the scoring environment "
                              "(the sandbox sees only the packages of its Python installation, not user site-packages "
                              "or PYTHONPATH folders), and nothing is installed for a submission")
    version = found.version
    try:
        satisfied = requirement.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        satisfied = False
    if not satisfied:
        raise SubmissionError(f"{where}: the scoring environment has {requirement.name} {version}, which "
                              f"{requirement.specifier} excludes{needed}")
    provided = {canonicalize_name(e) for e in found.metadata.get_all("Provides-Extra") or []}
    for extra in sorted(requirement.extras):
        if canonicalize_name(extra) not in provided:
            raise SubmissionError(f"{where}: {requirement.name} {version} has no extra {extra!r}")
    chain = f"{needed_by} -> " if needed_by else ""
    for extra in [""] + sorted(canonicalize_name(e) for e in requirement.extras):
        if (canonicalize_name(requirement.name), extra) in checked:
            continue
        checked.add((canonicalize_name(requirement.name), extra))
        for line in found.requires or []:
            try:
                dependency = Requirement(line)
            except InvalidRequirement:  # metadata pip installed but packaging cannot read: nothing to check
                continue
            marker = dependency.marker
            if extra:  # what the extra adds, not what the package needs anyway
                if marker is None or not marker.evaluate({"extra": extra}) or marker.evaluate({"extra": ""}):
                    continue
            elif marker is not None and not marker.evaluate({"extra": ""}):
                continue
            _installed(dependency, where, paths, f"{chain}{requirement.name}" + (f"[{extra}]" if extra else ""),
                       checked)
    return version


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(root: Path, source: Optional[Path] = None) -> Tuple[Dict[str, Any], Optional[List[str]]]:
    """Check a submission folder (raises SubmissionError on the first problem); returns the parsed metadata and the
    checked requirements (:func:`check_requirements`; None without a requirements.txt). ``source``: the folder or
    archive the user gave, named where the problem is the submission as a whole (``root`` is its unpacked copy)."""
    from neurozoo import benchmarks

    root = Path(root)
    files = [p for p in root.rglob("*") if p.is_file()]
    if any(p.is_symlink() for p in root.rglob("*")):
        raise SubmissionError("submission: symbolic links are not allowed")
    if len(files) > MAX_FILES:
        raise SubmissionError(f"submission: {len(files)} files; at most {MAX_FILES} are allowed")
    total = sum(p.stat().st_size for p in files)
    if total > MAX_TOTAL_BYTES:
        raise SubmissionError(f"submission: {total} bytes; at most {MAX_TOTAL_BYTES // 2 ** 20} MiB are allowed")
    meta_path = root / "metadata.yaml"
    if not meta_path.is_file():
        raise SubmissionError(f"submission {source or root}: metadata.yaml is missing (fields: " + ", ".join(REQUIRED) + ")")
    meta = load_metadata(meta_path)
    from neurozoo.leaderboard.aggregate import (BenchmarkBuildError, benchmark_region, family_of, scores_models,
                                                unscored_reason)

    for name in meta["benchmarks"]:
        if name not in benchmarks.BENCHMARKS:
            open_to_submissions = [entry.name for entry in benchmarks.BENCHMARKS.entries()
                                   if scores_models(entry) and family_of(entry.tags) == "cortex"]
            raise SubmissionError(f"metadata.yaml: benchmark {name!r} is not registered (submissions are scored on: "
                                  f"{', '.join(open_to_submissions)})")
        if not scores_models(benchmarks.BENCHMARKS.get(name)):
            raise SubmissionError(f"metadata.yaml: benchmark {name!r} scores no submission: "
                                  f"{unscored_reason(benchmarks.BENCHMARKS.get(name))}")
    for name in meta["benchmarks"]:  # another family's benchmark was refused first (_refuse_other_families)
        try:
            region = benchmark_region(name)
        except BenchmarkBuildError:  # the server's plugin, not the submission: its error is in the server's log
            raise SubmissionError(f"metadata.yaml: benchmark {name!r} cannot be scored on this server now (it fails "
                                  "to build)") from None
        if region and region not in meta["layers"]:
            raise SubmissionError(f"metadata.yaml: benchmark {name!r} needs layers.{region} (the layer to score)")
    if not (root / "model.py").is_file():
        raise SubmissionError("submission: model.py is missing (it must define create_model(weights))")
    if not _holds(root / "model.py", b"def create_model"):
        raise SubmissionError("model.py: no `def create_model(weights)` found")
    requirements = check_requirements(root / REQUIREMENTS) if (root / REQUIREMENTS).is_file() else None
    weights = meta.get("weights")
    if weights is not None:
        path = root / weights["file"]
        if not path.is_file() or Path(weights["file"]).is_absolute() or ".." in Path(weights["file"]).parts:
            raise SubmissionError(f"metadata.yaml: weights.file {weights['file']!r} is not a file in the submission")
        actual = sha256_file(path)
        if actual != weights["sha256"].lower():
            raise SubmissionError(f"{weights['file']}: sha256 is {actual}, but metadata.yaml weights.sha256 says "
                                  f"{weights['sha256']}")
    return meta, requirements


def _holds(path: Path, text: bytes, chunk: int = 1 << 20) -> bool:
    """Whether the file holds ``text`` (ASCII), read a chunk at a time. model.py is capped only by the submission's
    512 MiB; read whole as text it took the intake three times its size (bytes, then a str of U+FFFD for each byte
    that is not UTF-8): a 256 MiB model.py of 0xff bytes, 255 KiB gzipped, 820 MB of the server's memory for one
    upload, at once for each of the web app's concurrent uploads."""
    tail = b""
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            if text in tail + block:
                return True
            tail = block[1 - len(text):]
    return False


@contextmanager
def staged(source: Path, store: Path) -> Iterator[Dict[str, Any]]:
    """Unpack and validate ``source`` into a staging folder of ``store`` (the same filesystem: :func:`keep`'s one
    rename); yields {meta, folder, sha256, sha256_format, legacy_sha256, staged}: ``folder``, where :func:`keep` puts
    the files (``store/<sha256>``); the files' :func:`tree_sha256`, its format, and their digest in format 1, which
    the refusal of an identical submission compares with the rows stored before format 2; ``staged``, the files now.
    The staging folder goes as the block ends, however it ends: a refused submission (its name another's, the same
    files submitted before) left its folder in the store for good, a disk filled by anyone with a token. ``folder`` is
    absolute: the database keeps it for a worker run from any folder (``zoo submit --store subs`` had recorded
    ``subs/<sha256>``, found by no ``zoo work`` run elsewhere)."""
    store = Path(os.path.abspath(store))
    store.mkdir(parents=True, exist_ok=True)
    # named with this process's host and pid: a submission killed while unpacked (SIGKILL) left its folder in the
    # store for good; the next one removes it, never a live one's (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder(".unpacking-", store) as scratch:
        root = unpack(Path(source), Path(scratch) / "unpacked")
        meta, _requirements = validate(root, Path(source))
        digests = tree_sha256s(root)
        digest, legacy = digests[TREE_FORMAT], digests[LEGACY_TREE_FORMAT]
        yield {"meta": meta, "folder": str(store / digest[:32]), "sha256": digest, "sha256_format": TREE_FORMAT,
               "legacy_sha256": legacy, "staged": root}


def keep(prepared: Dict[str, Any]) -> None:
    """Move the staged files (:func:`staged`) to their folder in the store, unless it holds them already: the same
    files (one digest) of an earlier submission, never replaced. One rename: a process killed here leaves the whole
    folder or none (a copy left a partial one)."""
    folder = Path(prepared["folder"])
    if not folder.exists():
        try:
            os.rename(prepared["staged"], folder)
        except OSError:
            if not folder.is_dir():  # else another process stored the same files first
                raise


def prepare(source: Path, store: Path) -> Dict[str, Any]:
    """Unpack, validate and keep ``source`` under ``store/<sha256>`` (:func:`staged`, :func:`keep`); returns
    {meta, folder, sha256, sha256_format, legacy_sha256}. :func:`submit` keeps the files only once the database
    has accepted them."""
    with staged(source, store) as prepared:
        keep(prepared)
    return {key: value for key, value in prepared.items() if key != "staged"}


def submission_specs(prepared: Dict[str, Any], max_features: int = 200) -> List[Dict[str, Any]]:
    """One job per benchmark. A job's layers are those of the submitted benchmarks' regions: one model run
    extracts them all (:func:`leaderboard.worker.model_features`), so a layer of another region stays out. A versioned
    benchmark's version is in the spec, as in zoo run's: the board ranks only scores of the current version
    (:func:`leaderboard.zoo.outdated_reason`), and ``zoo work --rescore-outdated`` scores a submission again after a
    new one."""
    from neurozoo.leaderboard.aggregate import benchmark_region
    from neurozoo.leaderboard.zoo import benchmark_version, split_spec

    meta = prepared["meta"]
    regions = {benchmark_region(name) for name in meta["benchmarks"]}
    layers = {region: layer for region, layer in meta["layers"].items() if region in regions}
    return [{"model": meta["name"], "benchmark": name,
             "spec": {"family": "submission", "model": meta["name"], "benchmark": name, "folder": prepared["folder"],
                      "sha256": prepared["sha256"], "sha256_format": prepared["sha256_format"], "layers": layers,
                      "weights": (meta.get("weights") or {}).get("file"), "overrides": {},
                      "score": {"max_features": max_features, "seed": 0},
                      "split": split_spec(), **benchmark_version(name)}}
            for name in meta["benchmarks"]]


def builtin_model_names() -> List[str]:
    from neurozoo import convrnn, retina

    try:
        import neurozoo.retina.models  # noqa: F401  (registers the built-in retina models)
    except ImportError:
        pass
    return list(convrnn.list_models()) + list(retina.list_models())


#: Look-alikes within NAME_PATTERN's characters, each made one (after case folding and dropping separators)
CONFUSABLES = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"), ("5", "s"))


def name_skeleton(name: str) -> str:
    """What a name looks like: case folded, separators ('.', '-', '_') dropped, look-alikes made one.
    'RGC-1ntermediate' and 'rgc_intermediate' have one skeleton; so have 'cor-net_s' and 'comet_s' ('rn', 'm')."""
    skeleton = re.sub(r"[._-]", "", name.casefold())
    for lookalike, kept in CONFUSABLES:
        skeleton = skeleton.replace(lookalike, kept)
    return skeleton


def check_not_builtin(name: str) -> None:
    builtin = next((known for known in builtin_model_names() if name_skeleton(known) == name_skeleton(name)), None)
    if builtin is not None:  # in any look-alike spelling: 'RGC_1ntermediate' beside rgc_intermediate impersonated it
        raise NameTaken(f"metadata.yaml: name {name!r} is a built-in model of the zoo ({builtin}); choose another name")


def submit(db, source: Path, store: Path, user: Optional[str] = None) -> int:
    """Validate ``source`` and queue one job per benchmark; returns the submission id. A model name belongs
    to the user who first submitted it (:class:`NameTaken` for anyone else) and never to a built-in model. The store
    gains the files' folder only when the submission is accepted (:func:`staged`, :meth:`LeaderboardDB.add_submission`'s
    ``store_files``)."""
    with staged(source, store) as prepared:
        check_not_builtin(prepared["meta"]["name"])
        # the files move to their folder inside the database's transaction, after its checks and inserts: a refused
        # or failed submission leaves the store as it was, and no worker sees a queued job before its folder
        return db.add_submission(prepared["meta"]["name"], prepared["folder"], prepared["sha256"], prepared["meta"],
                                 user, submission_specs(prepared), legacy_sha256=prepared["legacy_sha256"],
                                 store_files=lambda: keep(prepared))
