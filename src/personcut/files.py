"""Writing outputs safely: one atomic writer and one cleaner for what killed writes left.

Every output of the project (cut-outs, clips, frame folders, checkpoints, ONNX files, plots) is
written to a temporary name beside its final path, ``.NAME.<random>.part``, and renamed over it
only when complete: a reader never sees half a file, and an input is never half-overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

PART = ".part"
"""Suffix of the temporary names; a leftover is ``.NAME.<random>.part`` beside NAME."""

FILE_MODE, FOLDER_MODE = 0o644, 0o755
"""Outputs read like any other file (mkstemp makes 0600 and mkdtemp 0700)."""


@contextmanager
def atomic_path(path: str | Path, folder: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (a file, or an empty folder with ``folder``) to write
    into; renamed over ``path`` when the block ends without error, deleted when it fails.

    A folder replaces an existing ``path`` folder (which the caller has checked is its own to
    replace); a file replaces an existing file atomically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=PART, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=PART, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FOLDER_MODE if folder else FILE_MODE)
        if folder and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        _delete(tmp)
        raise


def replaceable(path: str | Path) -> str | None:
    """Why ``path`` must not be replaced by an output even with --overwrite (a link, a device,
    a FIFO, a folder: renaming over them would leave a regular file in their place), or None."""
    path = Path(path)
    if path.is_symlink():
        return "is a symbolic link"
    if not path.exists():
        return None
    if path.is_dir():
        return "is a folder"
    if not path.is_file():
        return "is not a regular file (a device, a FIFO or a socket)"
    return None


def write_atomic(
    path: str | Path, data: bytes | Callable[[Path], object], clean: bool = True
) -> None:
    """Write ``data`` (bytes, or a function that writes the file it is given) to ``path``
    atomically.

    ``clean``: first delete what a killed earlier write of ``path`` left beside it. That lists
    the folder; a caller writing many files into one folder does it once for all of them with
    :func:`remove_leftovers` and passes False."""
    path = Path(path)
    if clean:
        remove_leftovers([path])
    with atomic_path(path) as tmp:
        if isinstance(data, (bytes, bytearray, memoryview)):
            tmp.write_bytes(data)
        else:
            data(tmp)


def remove_leftovers(paths: Iterable[Path]) -> None:
    """Delete the temporary files and folders that killed earlier writes of ``paths`` left
    beside them, listing each folder once (per output it was quadratic in the folder's size:
    3 ms a file in a folder of 5,000)."""
    by_folder: dict[Path, set[str]] = {}
    for path in paths:
        path = Path(path)
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if leftover_of(entry.name) in names:
                _delete(Path(entry.path))


def leftover_of(name: str) -> str | None:
    """The output a temporary name ``.NAME.<random>.part`` belongs to (NAME), else None."""
    if not (name.startswith(".") and name.endswith(PART)) or name.count(".") < 3:
        return None
    return name[1:].rsplit(".", 2)[0]


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
