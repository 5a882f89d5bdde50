"""StimulusSet: a table of stimuli (one row per stimulus_id) plus the folder of their image files.

Stored Brain-Score style as a CSV file (columns ``stimulus_id``, ``filename``, ``object_name``, any
others) next to a folder of images; ``filename`` is relative to that folder. ``sha256()`` hashes the
table (rows sorted by stimulus_id, columns by name) and every image's bytes, so it identifies the
content independently of row order or where the folder lives: downstream caches key on it.
"""
from __future__ import annotations

import contextlib
import hashlib
import re
import warnings
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import pandas as pd

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.json_files import written_whole
from neurozoo.datasets.text_table import counted

REQUIRED_COLUMNS = ("stimulus_id", "filename")
_TEXT_COLUMNS = ("stimulus_id", "filename", "object_name")
_OLD_NAMES = {"image_id": "stimulus_id", "image_file_name": "filename"}  # Brain-Score CSVs written before 2022
#: a number written with leading zeros ("007", "00.5"): an id, whose text a number would lose
_LEADING_ZEROS = re.compile(r"[+-]?0\d")


def is_id_column(name) -> bool:
    """Whether a stimulus set's column holds identifiers, read and held as text whatever they look like:
    ``stimulus_id``, ``filename``, ``object_name`` (and their older names), ``id`` and any ``*_id``."""
    name = str(name)
    return name in _TEXT_COLUMNS or name in _OLD_NAMES or name == "id" or name.endswith("_id")


class StimulusSet(pd.DataFrame):
    """A ``pandas.DataFrame`` with ``identifier`` and ``image_dir`` that survive slicing."""

    _metadata = ["identifier", "image_dir"]
    identifier: Optional[str] = None
    image_dir: Optional[Path] = None

    @property
    def _constructor(self):
        return StimulusSet

    def __init__(self, *args, identifier: Optional[str] = None, image_dir: Union[str, Path, None] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if identifier is not None:
            self.identifier = identifier
        if image_dir is not None:
            self.image_dir = Path(image_dir)

    def get_stimulus(self, stimulus_id) -> Path:
        """Path of the image file of ``stimulus_id``."""
        rows = np.flatnonzero(self["stimulus_id"].to_numpy() == stimulus_id)
        if len(rows) == 0:
            raise DataError(f"stimulus set {self.identifier!r}: no stimulus_id {stimulus_id!r}")
        filename = self["filename"].iloc[rows[0]] if "filename" in self.columns else None
        if self.image_dir is None or not isinstance(filename, str) or not filename:
            raise DataError(f"stimulus set {self.identifier!r}: no image file for stimulus_id {stimulus_id!r} "
                            "(this set has no images)")
        return Path(self.image_dir) / filename

    def stimulus_paths(self) -> list:
        return [self.get_stimulus(s) for s in self["stimulus_id"]]

    @property
    def has_images(self) -> bool:
        return self.image_dir is not None and "filename" in self.columns and bool(len(self)) \
            and self["filename"].map(lambda f: isinstance(f, str) and bool(f)).all()

    def validate(self, source: str = "stimulus set") -> "StimulusSet":
        for column in REQUIRED_COLUMNS:
            if column not in self.columns:
                raise DataError(f"{source}: missing column {column!r} (columns: {list(self.columns)})")
        empty = np.flatnonzero(self["stimulus_id"].map(lambda i: pd.isna(i) or str(i) == "").to_numpy())
        if len(empty):  # an empty CSV cell read as NaN: no assembly's id, and get_stimulus could not find it
            raise DataError(f"{source}: column 'stimulus_id' is empty in "
                            f"{len(empty)} of {counted(len(self), 'row')}, e.g. "
                            f"row {empty[:3].tolist()} (from 0, the header not counted); expected an id for every "
                            "stimulus")
        duplicated = self["stimulus_id"][self["stimulus_id"].duplicated()]
        if len(duplicated):
            raise DataError(f"{source}: column 'stimulus_id' has duplicates, e.g. {list(duplicated[:3])}")
        if "filename" in self.columns:
            unnamed = self["filename"].map(lambda f: not isinstance(f, str) or not f).to_numpy()
            if unnamed.any() and not unnamed.all():  # has_images said no images for the whole set, without a word
                raise DataError(f"{source}: column 'filename' is empty for {int(unnamed.sum())} of {len(self)} stimuli, "
                                f"e.g. stimulus_id {self['stimulus_id'][unnamed][:3].tolist()}; expected an image file "
                                "for every stimulus (or for none: a set without images)")
        if self.has_images:
            missing = [f for f in self["filename"] if not (Path(self.image_dir) / f).is_file()]
            if missing:
                raise DataError(f"{source}: {counted(len(missing), 'image file')} listed in column 'filename' "
                                f"{'is' if len(missing) == 1 else 'are'} missing "
                                f"from {self.image_dir}, e.g. {missing[:3]}")
        return self

    def table_bytes(self) -> bytes:
        table = pd.DataFrame(self).sort_values("stimulus_id", kind="stable")
        table = table[sorted(table.columns)]
        return table.to_csv(index=False, lineterminator="\n").encode()

    def sha256(self) -> str:
        digest = hashlib.sha256(self.table_bytes())
        if self.has_images:
            for _, filename in sorted(zip(self["stimulus_id"], self["filename"])):
                digest.update(filename.encode() + b"\0")
                digest.update((Path(self.image_dir) / filename).read_bytes())
        return digest.hexdigest()


def make_stimulus_set(records: Union[pd.DataFrame, Iterable[dict], dict], identifier: str,
                      image_dir: Union[str, Path, None] = None) -> StimulusSet:
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(records)
    # integer ids as text, as load_stimulus_set reads a CSV's ids and load_assembly a file's: integer stimulus ids
    # matched neither, and the images of stimulus 1 were looked up as '1' and not found
    frame = frame.assign(**{str(column): frame[column].astype(str) for column in frame.columns
                            if is_id_column(column) and frame[column].dtype.kind in "iu"})
    if "filename" not in frame.columns:
        frame = frame.assign(filename="")
    return StimulusSet(frame.reset_index(drop=True), identifier=identifier, image_dir=image_dir).validate(identifier)


def write_stimulus_set(stimulus_set: StimulusSet, csv_path: Union[str, Path], image_dir: Union[str, Path, None] = None,
                       copy_images: bool = True) -> Path:
    """Write the CSV and (unless already there) copy the images into ``image_dir`` (default: CSV path without suffix).
    All or nothing: every file is written to a temporary first, and they are renamed into place together once all
    are written, the CSV last; an interrupted write leaves the set of before (until 2026-12-04 each file was renamed
    as it was written: a rewrite stopped halfway left the old CSV with some of the new images under its names).
    The set is checked first as the reader checks it (:meth:`StimulusSet.validate`, naming ``csv_path``): a set
    without stimulus_id, with repeated ids or with an image file missing was written (or half copied) and refused
    only when read; a plain DataFrame failed with an AttributeError and a folder for ``csv_path`` with an
    IsADirectoryError naming the writer's temporary."""
    csv_path = Path(csv_path)
    if not isinstance(stimulus_set, StimulusSet):
        raise DataError(f"{csv_path}: expected a StimulusSet to write (datasets.stimuli.StimulusSet(frame, "
                        f"image_dir=...)), got {type(stimulus_set).__name__}")
    if csv_path.is_dir():
        raise DataError(f"{csv_path}: is a folder; expected the path of the CSV file to write (e.g. "
                        f"{csv_path / 'stimuli.csv'})")
    stimulus_set.validate(str(csv_path))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    target = Path(image_dir) if image_dir is not None else csv_path.with_suffix("")
    with contextlib.ExitStack() as stack:  # renamed as the stack closes, in reverse: the images, then the CSV
        with_csv = stack.enter_context(written_whole(csv_path))  # a CSV cut at a line end read as a smaller set
        pd.DataFrame(stimulus_set).to_csv(with_csv, index=False, lineterminator="\n")
        if copy_images and stimulus_set.has_images and Path(stimulus_set.image_dir).resolve() != target.resolve():
            for filename in stimulus_set["filename"]:
                destination = target / filename
                destination.parent.mkdir(parents=True, exist_ok=True)
                temporary = stack.enter_context(written_whole(destination))
                temporary.write_bytes((Path(stimulus_set.image_dir) / filename).read_bytes())
    return csv_path


def _typed(column: pd.Series) -> pd.Series:
    """A CSV column read as text (not an id column): as numbers where every value is a number written without
    leading zeros (a number would lose the zeros of "007"), as bools where every value is True or False (what
    ``write_stimulus_set`` writes of a bool column), else as the text it is; an empty cell is NaN."""
    values = column.dropna()
    if values.empty:
        return column.astype(float)
    if values.isin(["True", "False"]).all() and len(values) == len(column):
        return column == "True"
    if values.str.match(_LEADING_ZEROS).any():
        return column
    try:
        numbers = pd.to_numeric(column)
    except (ValueError, TypeError):
        return column
    if numbers.dtype.kind not in "iuf" or (numbers.dtype.kind == "f" and values.str.fullmatch(r"[+-]?\d+").all()
                                           and len(values) == len(column)):
        return column  # integers beyond int64, which a float would round
    return numbers


def _default_image_dir(csv_path: Path, frame: pd.DataFrame) -> Path:
    """The image folder of ``csv_path`` when none is given (:func:`load_stimulus_set`): the folder named as the CSV,
    else Brain-Score's layout, the images unzipped beside the CSV or the zip beside it, unpacked."""
    own = csv_path.with_suffix("")
    names = [f for f in frame.get("filename", pd.Series(dtype=object)) if isinstance(f, str) and f]
    if own.is_dir() or not names:
        return own
    if all((csv_path.parent / name).is_file() for name in names):
        return csv_path.parent
    archive = csv_path.with_suffix(".zip")
    return _unpacked_zip(archive, own) if archive.is_file() else own


def _unpacked_zip(archive: Path, folder: Path) -> Path:
    """``archive`` (a Brain-Score stimulus zip) unpacked into ``folder``, whole or not at all
    (:func:`datasets.cache.building`: a temporary folder renamed into place, with a manifest of the files' sha256;
    another process's finished unpacking is kept). A member that would land outside ``folder`` (an absolute name,
    ``..``), an archive that is no zip, or a folder that cannot be written is a ``DataError`` naming it."""
    import zipfile

    from neurozoo.datasets.cache import building

    try:
        with zipfile.ZipFile(archive) as opened:
            outside = [n for n in opened.namelist() if Path(n).is_absolute() or ".." in Path(n).parts]
            if outside:
                raise DataError(f"{archive}: member {outside[0]!r} would be unpacked outside {folder}; expected the "
                                "image files the CSV's 'filename' column names, relative to the zip's root")
            with building(folder, {"unpacked_from": archive.name}) as temporary:
                opened.extractall(temporary)
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive}: not a readable zip ({error}); expected the stimulus set's images, zipped as "
                        "brainio packages them") from None
    except OSError as error:
        raise DataError(f"{archive}: cannot unpack it into {folder} ({error}); unpack it yourself and pass "
                        "image_dir") from None
    return folder


def load_stimulus_set(csv_path: Union[str, Path], image_dir: Union[str, Path, None] = None,
                      identifier: Optional[str] = None) -> StimulusSet:
    """Read a CSV (+ image folder, default: CSV path without suffix); checks columns, ids and image files.

    Without ``image_dir``, the images are in the folder named as the CSV without ``.csv``; where there is none, in
    Brain-Score's layout (brainio's ``package_stimulus_set``: ``stimulus_<name>.csv`` beside ``stimulus_<name>.zip``,
    whose members the ``filename`` column names): the CSV's own folder where it holds every named image (brainio's
    ``get_stimulus_set`` unzips there), else the zip, unpacked whole into the folder named as the CSV
    (:func:`_unpacked_zip`).
    Older Brain-Score CSVs name the columns ``image_id`` / ``image_file_name``; they are renamed. Id columns
    (:func:`is_id_column`) are read as the text they are, as is any column with a value written with leading zeros
    ("007"); the other columns are numbers or bools where every value is one. Brain-Score's loader lets pandas parse
    every column, so that a ``stimulus_id`` "007" becomes 7 there (README, deviations).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: stimulus set CSV not found")
    try:  # every column as text, then the columns of numbers (not ids) converted: pandas' own parsing read "007" as 7
        with warnings.catch_warnings():
            # rows of one field more than the header were read with their first field as the index: every column
            # shifted by one, without a word (index_col=False makes that a ParserWarning)
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_values=[""], index_col=False)
    except pd.errors.ParserWarning:
        header = pd.read_csv(csv_path, nrows=0).columns.tolist()
        raise DataError(f"{csv_path}: its rows hold more fields than the header names ({len(header)}: "
                        f"{', '.join(header)}); expected one value per column in every row") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{csv_path}: empty file; expected a CSV with columns {', '.join(REQUIRED_COLUMNS)} and a "
                        "row per stimulus") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{csv_path}: not a readable CSV ({str(error).strip()})") from None
    if frame.empty:
        raise DataError(f"{csv_path}: no stimuli (a header and no rows); expected a row per stimulus")
    frame = frame.assign(**{str(column): _typed(frame[column]) for column in frame.columns if not is_id_column(column)})
    frame = frame.rename(columns={k: v for k, v in _OLD_NAMES.items() if k in frame.columns and v not in frame.columns})
    if "filename" in frame.columns:
        frame["filename"] = frame["filename"].fillna("")
    folder = Path(image_dir) if image_dir is not None else _default_image_dir(csv_path, frame)
    result = StimulusSet(frame, identifier=identifier or csv_path.stem, image_dir=folder if folder.is_dir() else None)
    result = result.validate(str(csv_path))
    named = [f for f in result["filename"] if isinstance(f, str) and f]
    if named and result.image_dir is None:  # a set without images leaves 'filename' empty; this one lost its folder
        where = ("as image_dir" if image_dir is not None else f"beside the CSV, named as it without .csv; or, in "
                 f"Brain-Score's layout, {csv_path.with_suffix('.zip').name} or the images themselves beside the CSV")
        raise DataError(f"{csv_path}: column 'filename' names {counted(len(named), 'image file')}, "
                        f"e.g. {named[:3]}, but the "
                        f"image folder {folder} does not exist (expected {where})")
    return result
