"""The on-disk store of compiled model structures: a new process skips PyTensor's rewriting
and finds numba's machine code.

Compiling a structure (:mod:`poppk.model.compile_cache`) has two costly halves:
PyTensor builds, differentiates and rewrites the log-density graph, then numba
compiles the rewritten graph.  numba keeps machine code on disk (PyTensor's
numba cache, keyed by the rewritten graph), but a new process rewrites the graph
again and the rewritten graph's node order -- hence numba's key -- follows
Python's string-hash seed, so the code on disk is not found.  This store keeps
the *rewritten* graphs (pickled, with their inputs and the small helper graphs)
under a digest of the structure key and the code revision; a process that loads
them rebuilds exactly the graph numba's key was computed from, and numba's
cache then serves the compiled log density, its gradient and nutpie's C
callbacks.  A second, small entry (``<digest>.numba.pkl``, written once the
functions are compiled) holds where numba's cache keeps the two graph
functions (their key and source), so that a process that loads the graphs
need not turn them into PyTensor functions to find the machine code.

Where: ``$POPPK_COMPILE_CACHE`` if set (``0``, ``off`` or ``false`` turn the
store off), else ``$XDG_CACHE_HOME/poppk/compiled`` (default
``~/.cache/poppk/compiled``).  Entries are written atomically; one that cannot
be read (another version, a truncated file) is ignored and rewritten.  Entries
are never pruned; deleting the directory is always safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["store_dir", "digest", "load", "save", "loads", "discard"]

_LOG = logging.getLogger(__name__)
#: Bump when the pickled layout changes.
FORMAT = 1
_RECURSION = 100_000  # pickling a graph recurses along its longest chain of nodes
_STACK = 512 * 1024 * 1024  # bytes of stack for that thread (virtual: only what is used is touched)


def store_dir() -> Path | None:
    """The store's directory, or ``None`` when turned off (see module doc)."""
    env = os.environ.get("POPPK_COMPILE_CACHE")
    if env is not None and env.strip().lower() in ("0", "off", "false", "no", ""):
        return None
    if env:
        return Path(env).expanduser()
    try:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    except RuntimeError:  # no home directory (some containers): no store
        return None
    return Path(base) / "poppk" / "compiled"


def digest(key: Any) -> str:
    """A hex digest of a compile-cache key, the code that compiles it and the stack's versions.

    ``key`` must have a ``repr`` that is the same in every process (tuples of
    strings, numbers, booleans and ``None``).
    """
    from pytensor import config

    from poppk.model.reuse import code_revision

    h = hashlib.sha256()
    h.update(f"format={FORMAT};python={sys.version_info[:3]};code={code_revision()};".encode())
    # PyTensor settings that change the rewritten graph or its machine code
    flags = {k: str(getattr(config, k, None)) for k in ("floatX", "optimizer_excluding", "optimizer_including",
                                                           "numba__fastmath", "numba__vectorize_target")}
    h.update(repr(sorted(flags.items())).encode())
    h.update(repr(key).encode())
    return h.hexdigest()


def _path(name: str) -> Path | None:
    root = store_dir()
    return None if root is None else root / f"{name}.pkl"


_DEEP_LOCK = threading.Lock()


def _deep(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with room to recurse along a long graph: in a thread of its own with a
    large stack, the interpreter's recursion limit raised meanwhile (one call at a time)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn(*args))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            error.append(err)

    with _DEEP_LOCK:
        limit = sys.getrecursionlimit()
        size = threading.stack_size()
        sys.setrecursionlimit(max(limit, _RECURSION))
        try:
            try:
                threading.stack_size(_STACK)
            except (ValueError, RuntimeError):  # a platform that refuses it: the default stack
                pass
            worker = threading.Thread(target=run, name="poppk-compile-store")
            try:
                worker.start()  # the stack size is taken when the thread starts
            finally:
                threading.stack_size(size)
            worker.join()
        finally:
            sys.setrecursionlimit(limit)
    if error:
        raise error[0]
    return result[0]


def load(name: str) -> Any | None:
    """The entry ``name`` (a :func:`digest`), or ``None`` if absent, unreadable or the store is off."""
    path = _path(name)
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            return _deep(pickle.load, fh)
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - a bad entry is a miss, never an error
        _LOG.info("compile store: ignoring unreadable %s (%s)", path, err)
        return None


def discard(name: str, reason: str = "") -> None:
    """Remove entry ``name`` (one that loads but cannot be used); never raises."""
    path = _path(name)
    _LOG.info("compile store: discarding %s (%s)", path, reason)
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def save(name: str, obj: Any) -> bytes | None:
    """Pickle ``obj`` and write it as entry ``name`` (atomically); return the pickled bytes.

    Returns ``None`` when ``obj`` cannot be pickled; a store that cannot be
    written (read-only, full) is skipped with a log message, the bytes still returned.
    """
    try:
        blob = _deep(pickle.dumps, obj, pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # noqa: BLE001
        _LOG.info("compile store: cannot pickle the compiled graphs (%s)", err)
        return None
    path = _path(name)
    if path is None:
        return blob
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        _LOG.info("compile store: cannot write %s (%s)", path, err)
    return blob


def loads(blob: bytes) -> Any:
    """Unpickle bytes from :func:`save` (with the recursion headroom graphs need)."""
    return _deep(pickle.loads, blob)
