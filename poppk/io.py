"""Atomic writing of output files and directories.

Every file poppk writes goes first to a temporary name next to its
destination and is then renamed into place with :func:`os.replace`, which is
atomic on POSIX and Windows when both names are on one file system.  A
reader therefore never sees a half-written file, an interrupted or failed
write leaves any previous file untouched, and rerunning overwrites cleanly.

New files get the permissions ``open`` would give them under the current
umask (``0o666 & ~umask``; :func:`tempfile.mkstemp` alone would leave
``0o600``), new directories ``0o777 & ~umask``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_writer", "atomic_directory", "jsonable"]


def _umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush the contents of the file ``path`` to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_writer(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a file through a temporary file in the same directory.

    Parameters
    ----------
    path
        Destination.  Its directory must exist.
    write
        Called once with the path of the temporary file, which it writes
        (e.g. ``lambda tmp: df.to_csv(tmp)`` or ``fig.savefig``).  The
        temporary name starts with ``"."`` and ends with the suffix of
        ``path`` (``.x.csv.1a2b.tmp.csv``), so writers that choose the format
        from the name (pandas, matplotlib) see the intended one.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    After ``write`` returns, the temporary file is flushed to disk
    (``fsync``), given the usual permissions and renamed to ``path``.  If
    ``write`` or any later step raises, the temporary file is removed and the
    exception propagates; a previous file at ``path`` is left as it was.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`).

    Parameters
    ----------
    path
        Destination.  Its directory must exist.
    data
        The whole content of the file.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_writer(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_writer`).

    Parameters
    ----------
    path
        Destination.  Its directory must exist.
    text
        The whole content of the file, written as is (no newline translation).
    encoding
        Text encoding.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write_bytes(path, text.encode(encoding))


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``path`` on success.

    Parameters
    ----------
    path
        Destination directory.  Missing parents are created.

    Yields
    ------
    pathlib.Path
        An empty temporary directory next to ``path`` to write into.

    Notes
    -----
    If the ``with`` block raises, the temporary directory is removed and
    ``path`` is left as it was.  Otherwise an existing ``path`` is first moved
    aside, the temporary directory renamed to ``path`` and the old one
    deleted; if that rename fails, the old directory is moved back.

    Examples
    --------
    >>> with atomic_directory("out/fit") as tmp:          # doctest: +SKIP
    ...     (tmp / "fit.json").write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; output directories are meant to be shared
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def jsonable(x: Any) -> Any:
    """``x`` with every value made strict JSON (for ``json.dumps``).

    Mappings and sequences recurse (keys become strings); NumPy scalars and
    arrays become Python numbers and lists; non-finite floats, ``pd.NA`` and
    ``pd.NaT`` become ``None``; paths and any other object become strings.
    """
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if x is None or isinstance(x, str):
        return x
    if x is pd.NA or x is pd.NaT:
        return None
    return str(x)
