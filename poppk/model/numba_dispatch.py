"""What a numba-backed PyTensor Op needs to run in PyTensor's NUMBA mode (what nutpie compiles).

Shared by the Laplace reparametrisation (:mod:`poppk.model.reparam`) and the
ODE solver Op (:mod:`poppk.model.ode_op`).
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Callable

__all__ = ["source_version", "funcify_register"]


def source_version(*objects: Any) -> int:
    """A hash of the objects' source: part of PyTensor's numba cache key, so that edited kernels
    are never served from a stale on-disk cache (the default key sees only the Op); 1 without source."""
    try:
        src = "".join(inspect.getsource(f) for f in objects)
    except (OSError, TypeError):  # pragma: no cover - no source available (frozen install)
        return 1
    return int(hashlib.sha256(src.encode()).hexdigest()[:15], 16)


def funcify_register() -> Callable[[type], Callable[[Any], Any]]:
    """The decorator registering ``f(op, node, **kw) -> (numba function, cache version)`` for an Op type.

    PyTensor >= 2.32 caches Ops by the returned version; older versions take the function alone.
    """
    try:
        from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
    except ImportError:  # pragma: no cover - PyTensor < 2.32: no numba caching of Ops
        from pytensor.link.numba.dispatch import numba_funcify

        def register(op_type: type) -> Callable[[Any], Any]:
            def decorator(f: Any) -> Any:
                numba_funcify.register(op_type)(lambda *a, **k: f(*a, **k)[0])
                return f

            return decorator

        return register
    return register_funcify_default_op_cache_key
