"""Where the harness writes: ``$NEUROZOO_HOME`` (results store, plots) and ``$NEUROZOO_CACHE`` (activations)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from neurozoo.datasets.cache import cache_dir  # noqa: F401  (one cache for the whole suite)


def home() -> Path:
    return Path(os.environ.get("NEUROZOO_HOME") or Path.home() / ".neurozoo").expanduser()


def results_dir() -> Path:
    return home() / "results"


@contextmanager
def output_folder(path: Union[str, Path]) -> Iterator[Path]:
    """``path``, made with its missing parents, for a command's figures and summaries: an unusable ``--out`` fails
    here, before the work. When the block raises (the command refused its input, or was interrupted), the folders
    made here that are still empty are removed again, deepest first; a folder that existed before, or that holds a
    file by then, stays."""
    path = Path(path)
    if path.exists() and not path.is_dir():  # mkdir's FileExistsError said only "File exists"
        from neurozoo.datasets.errors import UserFacingError

        raise UserFacingError(f"{path}: is a file, not a folder (--out names the folder for figures and summaries)")
    made = [folder for folder in (path, *path.parents) if not os.path.lexists(folder)]
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (or not ours to remove): it and its parents stay
                break
        raise


def remade(path: Path) -> Path:
    """``path`` (an :func:`output_folder`) made again if it is gone, before the first file is written into it. Two
    commands given one new ``--out`` at once (jobs started together) each make it; when one is refused, its
    :func:`output_folder` removes the folder, still empty, while the other works: that one then stored its record and
    failed writing its summary ('<summary>.json.tmp-...: No such file or directory', exit 2)."""
    path.mkdir(parents=True, exist_ok=True)
    return path
